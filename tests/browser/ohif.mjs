// OHIF Viewer v3 opening each sample study from its Endpoint address (ohif.sh starts the servers). For every
// study of the `demo` tenant, and of the `smart` tenant with a token of the sandbox's per-patient issuer, in both
// `enableStudyLazyLoad` modes: an app-config.js whose one `dicomweb` data source is the study's Endpoint
// address, then `/viewer?StudyInstanceUIDs={uid}&token={token}`. Each case passes when a viewport canvas holds
// pixels that are not all alike, no request to the imaging server failed or answered 4xx/5xx, no console
// error names it, and nothing left 127.0.0.1.

import { writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const { BASE, SANDBOX, OHIF, CONFIG_DIR } = process.env;
const SERVER = new URL(BASE).host;
const CASE_MS = 90_000;
let passed = 0;
let failed = 0;

function check(ok, what) {
  if (ok) passed++; else failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  return ok;
}

/** OHIF's app-config.js with one data source, its default. */
function withSource(source) {
  const config = {
    routerBasename: null,
    extensions: [],
    modes: [],
    showStudyList: false,
    investigationalUseDialog: { option: "never" },
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: false,
    defaultDataSourceName: source.sourceName,
    dataSources: [source],
  };
  return `window.config = ${JSON.stringify(config, null, 2)};\n`;
}

/** The data source that works against an Endpoint address; docs/viewer.md explains each flag. */
function appConfig(address, lazy) {
  return withSource({
    namespace: "@ohif/extension-default.dataSourcesModule.dicomweb",
    sourceName: "smart-imaging",
    configuration: {
      friendlyName: "smart-imaging",
      name: "smart-imaging",
      wadoRoot: address,
      qidoRoot: address,
      wadoUriRoot: address,
      qidoSupportsIncludeField: true,
      imageRendering: "wadors",
      // OHIF's default, thumbnails from …/thumbnail, in one mode; from the frames in the other.
      thumbnailRendering: lazy ? "wadors" : "thumbnail",
      enableStudyLazyLoad: lazy,
      supportsFuzzyMatching: false,
      supportsWildcard: false,
      staticWado: false,
      omitQuotationForMultipartRequest: true,
      bulkDataURI: { enabled: true },
      dicomUploadEnabled: false,
    },
  });
}

/** An access token of patient p1 from the sandbox's per-patient issuer, which approves without a person. */
async function sandboxToken() {
  const issuer = `${SANDBOX}/p1/fhir`;
  const conf = await (await fetch(`${issuer}/.well-known/smart-configuration`)).json();
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const verifier = Buffer.from(bytes).toString("base64url");
  const challenge = Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))).toString("base64url");
  const redirect = "http://127.0.0.1:9/callback";
  const params = new URLSearchParams({
    response_type: "code", client_id: "ohif-test", redirect_uri: redirect, state: "s",
    scope: "launch/patient patient/ImagingStudy.rs", aud: `${BASE}/smart/fhir`,
    code_challenge: challenge, code_challenge_method: "S256",
  });
  const approved = await fetch(`${conf.authorization_endpoint}?${params}`, { redirect: "manual" });
  const code = new URL(approved.headers.get("location")).searchParams.get("code");
  const form = new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: redirect,
    client_id: "ohif-test", code_verifier: verifier });
  const answer = await (await fetch(conf.token_endpoint, { method: "POST", body: form })).json();
  return answer.access_token;
}

/** The studies of p1 on a tenant, as (uid, Endpoint address). */
async function studies(tenant, token) {
  const reply = await fetch(`${BASE}/${tenant}/fhir/ImagingStudy?patient=p1`, { headers: { Authorization: `Bearer ${token}` } });
  const bundle = await reply.json();
  // Each study names its Endpoint: an entry whose fullUrl is the reference, or (`#id`) one it contains.
  const entries = bundle.entry || [];
  const endpoint = (study) => {
    const reference = study.endpoint[0].reference;
    if (reference.startsWith("#")) return study.contained.find((r) => r.id === reference.slice(1));
    return entries.find((e) => e.fullUrl === reference).resource;
  };
  return entries.filter((e) => e.search.mode === "match").map((e) => [e.resource.id, endpoint(e.resource).address]);
}

/** Whether some viewport canvas holds pixels that are not all alike. */
async function drawn(page) {
  return page.evaluate(() => [...document.querySelectorAll("canvas.cornerstone-canvas, .cornerstone-viewport-element canvas")]
    .some((canvas) => {
      if (!canvas.width || !canvas.height) return false;
      const ctx = canvas.getContext("2d");
      if (!ctx) return false;
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 4; i < data.length; i += 4) {
        if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) return true;
      }
      return false;
    }));
}

async function openStudy(browser, tenant, token, uid, address, lazy) {
  const what = `${tenant} ${uid} (enableStudyLazyLoad: ${lazy})`;
  writeFileSync(`${CONFIG_DIR}/app-config.js`, appConfig(address, lazy));
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const outside = [];
  const failures = [];
  const errors = [];
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.protocol === "data:" || url.protocol === "blob:") return route.continue();
    outside.push(url.href);
    return route.abort();
  });
  page.on("response", (r) => {
    if (new URL(r.url()).host === SERVER && r.status() >= 400) failures.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on("requestfailed", (r) => {
    if (new URL(r.url()).host === SERVER) failures.push(`failed ${r.request().method()} ${r.url()}: ${r.failure()?.errorText}`);
  });
  page.on("console", (m) => { if (m.type() === "error" && (m.text().includes(SERVER) || m.text().includes("/wado/"))) errors.push(m.text()); });
  page.on("pageerror", (e) => { if (String(e).includes(SERVER)) errors.push(String(e)); });
  try {
    await page.goto(`${OHIF}/viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}&token=${encodeURIComponent(token)}`);
    const deadline = Date.now() + CASE_MS;
    let ok = false;
    while (!ok && Date.now() < deadline && failures.length === 0) {
      ok = await drawn(page).catch(() => false);
      if (!ok) await page.waitForTimeout(500);
    }
    // Let the requests that the first image set off (other series, thumbnails) finish or fail.
    await page.waitForLoadState("networkidle", { timeout: 15_000 }).catch(() => {});
    check(ok, `${what}: a viewport drawn with pixels that are not all alike`);
    check(failures.length === 0, `${what}: no failed request to the server${failures.length ? `: ${failures.slice(0, 5).join("; ")}` : ""}`);
    check(errors.length === 0, `${what}: no console error naming the server${errors.length ? `: ${errors.slice(0, 3).join("; ")}` : ""}`);
    check(outside.length === 0, `${what}: nothing outside 127.0.0.1${outside.length ? `: ${outside.slice(0, 3).join(", ")}` : ""}`);
    check(!page.url().includes("token="), `${what}: OHIF took the token out of the address bar`);
  } catch (e) {
    check(false, `${what}: ${e}`);
  } finally {
    await context.close();
  }
}

/** OHIF's configuration for the viewer page's "Open in OHIF" links: its dicomwebproxy data source, which reads
 * the DICOMweb configuration from the `url` of the link. */
function proxyConfig() {
  return withSource({
    namespace: "@ohif/extension-default.dataSourcesModule.dicomwebproxy",
    sourceName: "dicomwebproxy",
    configuration: {
      friendlyName: "smart-imaging, from the viewer page",
      name: "dicomwebproxy",
      // The proxy fetches its configuration from the imaging server's /viewer/ohif.json, another origin.
      dangerouslyAllowedOriginsForAuthenticatedEnvironments: [new URL(BASE).origin],
    },
  });
}

/** The built-in viewer page with `viewer.ohif` pointing at this OHIF: each demo study's "Open in OHIF" link opens
 * the study there. (config.json is the server's own, with `ohif` set as the setting would set it.) */
async function openFromViewerPage(browser) {
  writeFileSync(`${CONFIG_DIR}/app-config.js`, proxyConfig());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const failures = [];
  context.on("response", (r) => {
    if (new URL(r.url()).host === SERVER && r.status() >= 400) failures.push(`${r.status()} ${r.url()}`);
  });
  await context.route(`${BASE}/viewer/config.json`, async (route) => {
    const real = await (await fetch(`${BASE}/viewer/config.json`)).json();
    return route.fulfill({ contentType: "application/json", body: JSON.stringify({ ...real, ohif: OHIF }) });
  });
  try {
    const page = await context.newPage();
    await page.goto(`${BASE}/viewer/`);
    await page.selectOption("#tenant", "demo");
    await page.click("#go");
    await page.waitForSelector("#studies tbody tr a");
    const links = await page.locator("#studies tbody tr a", { hasText: "Open in OHIF" }).count();
    check(links === 2, `the viewer page links each of p1's studies to OHIF (${links})`);
    for (let n = 0; n < links; n++) {
      const [ohif] = await Promise.all([
        context.waitForEvent("page"),
        page.locator("#studies tbody tr a", { hasText: "Open in OHIF" }).nth(n).click(),
      ]);
      const said = [];
      ohif.on("console", (m) => { if (m.type() === "error") said.push(m.text()); });
      ohif.on("pageerror", (e) => said.push(String(e)));
      const asked = [];
      ohif.on("request", (r) => asked.push(r.url().slice(0, 100)));
      ohif.on("console", (m) => said.push(`${m.type()}: ${m.text()}`.slice(0, 200)));
      const deadline = Date.now() + CASE_MS;
      let ok = false;
      while (!ok && Date.now() < deadline && failures.length === 0) {
        ok = await drawn(ohif).catch(() => false);
        if (!ok) await ohif.waitForTimeout(500);
      }
      check(ok, `"Open in OHIF" of study ${n + 1}: a viewport drawn with pixels that are not all alike${ok ? "" : ` (at ${ohif.url().slice(0, 120)}; console: ${said.slice(0, 8).join("; ").slice(0, 1600)}; asked: ${asked.filter((u) => !u.includes(".js")).slice(0, 12).join(" ")})`}`);
      await ohif.close();
    }
    check(failures.length === 0, `"Open in OHIF": no failed request to the server${failures.length ? `: ${failures.slice(0, 5).join("; ")}` : ""}`);
  } catch (e) {
    check(false, `"Open in OHIF" from the viewer page: ${e}`);
  } finally {
    await context.close();
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
  });
  try {
    const cases = [["demo", "anything"], ["smart", await sandboxToken()]];
    for (const [tenant, token] of cases) {
      const found = await studies(tenant, token);
      if (!check(found.length > 0, `${tenant}: p1's studies found (${found.length})`)) continue;
      for (const [uid, address] of found) {
        for (const lazy of [true, false]) await openStudy(browser, tenant, token, uid, address, lazy);
      }
    }
    await openFromViewerPage(browser);
  } catch (e) {
    check(false, String(e));
  } finally {
    await browser.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();

// The viewer page in headless Chromium, against the real binary (run by tests/browser/run.sh, which starts
// the server and passes its address in BASE).
//
// It opens /viewer/, opens the patient's studies, a CT series and an MR series, and checks that the canvas
// holds the pixels the DICOM files say: a few pixels of each first image are computed here from the file's
// own Pixel Data (read from disk at the offset the index records) through the rescale and the window the
// data set names (or, without one, the full range), by the linear VOI function of PS3.3 C.11.2.1.2.1. It
// scrolls to the next instance, saves screenshots of a CT and an MR series (viewer-ct.png, viewer-mr.png) in
// target/, or in the folder SCREENSHOTS names (docs/ for the ones the docs show), and fails on any console
// error and on any request to a protected path without an Authorization header when the tenant needs one. A refused address is
// replaced once from the search, and a second refusal is shown in words. Each check prints one line; the last
// line is `N passed, N failed`.

import { readFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { burstFlow } from "./frames.mjs";
import { ehrLaunchFlow } from "./launch.mjs";
import { refreshFlow } from "./refresh.mjs";
import { sandboxFlow } from "./sandbox.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BASE = process.env.BASE;
// SCREENSHOTS, when set, is a folder relative to the repository root (or absolute).
const SHOTS = resolve(ROOT, process.env.SCREENSHOTS || "target");
let passed = 0;
let failed = 0;

function check(ok, what) {
  console.log(`${ok ? "PASS" : "FAIL"}  ${what}`);
  if (ok) passed++;
  else failed++;
  return ok;
}

/** The instances of the sample index, with the fields the oracle needs, from data/index.toml. */
function indexedInstances() {
  const text = readFileSync(join(ROOT, "data", "index.toml"), "utf8");
  const out = [];
  let series = null;
  let current = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("[[study.series]]")) { series = {}; current = series; continue; }
    if (line.startsWith("[[study.series.instance]]")) { current = { series }; out.push(current); continue; }
    if (line.startsWith("[[study]]")) { current = null; continue; }
    const m = /^(\w+) = (.*)$/.exec(line.trim());
    if (m && current) current[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : Number(m[2]);
  }
  return out;
}

/** What an image of a series must show (the first, or the `item`th frame counted through the instances in
 * order): at the points given, and at up to five more points whose value falls inside the window (so that the
 * check is not only of saturated pixels); `[points, values]`. */
function expectedPixels(seriesUid, fixed, attributes, item = 1) {
  const instances = indexedInstances().filter((i) => i.series.uid === seriesUid).sort((a, b) => a.number - b.number);
  const frames = instances[0].frames || 1;
  const file = instances[Math.floor((item - 1) / frames)];
  const bytes = readFileSync(join(ROOT, "data", file.path));
  const big = file.transfer_syntax === "1.2.840.10008.1.2.2";
  const { rows, columns, slope, intercept, center, width } = attributes;
  const start = file.pixel_data_offset + ((item - 1) % frames) * rows * columns * 2;
  const value = (i) => {
    const at = start + i * 2;
    const stored = (big ? bytes.readUInt16BE(at) : bytes.readUInt16LE(at)) & 0x0fff; // BitsStored 12
    return stored * slope + intercept;
  };
  let c = center;
  let w = width;
  if (!Number.isFinite(c)) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < rows * columns; i++) { const v = value(i); lo = Math.min(lo, v); hi = Math.max(hi, v); }
    c = (lo + hi) / 2;
    w = Math.max(1, hi - lo);
  }
  const gray = (i) => {
    const v = value(i);
    if (v <= c - 0.5 - (w - 1) / 2) return 0;
    if (v > c - 0.5 + (w - 1) / 2) return 255;
    return Math.round(((v - (c - 0.5)) / (w - 1) + 0.5) * 255);
  };
  const points = [...fixed];
  for (let i = 0; i < rows * columns && points.length < fixed.length + 5; i += 37) {
    const g = gray(i);
    if (g > 0 && g < 255) points.push([i % columns, Math.floor(i / columns)]);
  }
  return [points, points.map(([x, y]) => gray(y * columns + x))];
}

async function shownPixels(page, points) {
  return page.evaluate((pts) => {
    const canvas = document.getElementById("canvas");
    const context = canvas.getContext("2d");
    return pts.map(([x, y]) => context.getImageData(x, y, 1, 1).data[0]);
  }, points);
}

async function openSeries(page, modality) {
  const item = page.locator("#series li", { hasText: ` ${modality} ` }).first();
  const uid = await item.getAttribute("data-series");
  await item.click();
  await page.waitForSelector('#canvas[data-ready="yes"]');
  return uid;
}

// A corner (air), the middle of the image and points in the body or the head, and the opposite corner.
const POINTS = [[0, 0], [128, 128], [80, 120], [170, 100], [128, 200], [255, 255]];

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  const unauthenticated = [];
  let needsToken = false;
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    const protectedPath = /\/fhir\/ImagingStudy|\/wado\//.test(path);
    if (needsToken && protectedPath && !r.headers().authorization) unauthenticated.push(path);
  });
  try {
    await page.goto(`${BASE}/viewer/`);
    check(await page.locator("#tenant option").count() >= 2, "the page lists the tenants");

    // The demo tenant mocks its EHR: no sign-in, patient p1.
    await page.selectOption("#tenant", "demo");
    await page.click("#go");
    await page.waitForSelector("#studies tbody tr");
    const rows = await page.locator("#studies tbody tr").count();
    check(rows === 2, `the studies of patient p1 are listed (${rows})`);
    const said = { who: await page.textContent("#who"), status: await page.textContent("#status") };
    check(said.who === "Patient in context: Anna Müller." && said.status === "2 studies.",
      `the mock patient is named and the studies counted in words (${JSON.stringify(said)})`);

    // A CT series: window 40/400 from the data set, rescale -1024.
    await page.locator("#studies tbody tr", { hasText: "CT" }).first().click();
    const ct = await openSeries(page, "CT");
    const [ctPoints, ctExpected] = expectedPixels(ct, POINTS, { rows: 256, columns: 256, slope: 1, intercept: -1024, center: 40, width: 400 });
    const ctShown = await shownPixels(page, ctPoints);
    check(ctExpected.some((g) => g > 0 && g < 255), "some CT pixels fall inside the window");
    check(JSON.stringify(ctShown) === JSON.stringify(ctExpected), `CT pixels after window/level ${ctShown} = ${ctExpected}`);
    const info = await page.textContent("#image-info");
    check(/window 400, level 40/.test(info), `the window of the data set is used (${info})`);
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, "viewer-ct.png"), fullPage: true });
    check(true, `screenshot of a CT series saved to ${join(SHOTS, "viewer-ct.png")}`);

    // Next instance with the arrow key.
    await page.focus("#canvas");
    await page.keyboard.press("ArrowDown");
    await page.waitForSelector('#canvas[data-instance="1"][data-ready="yes"]');
    check(true, "ArrowDown shows the next instance");
    // Drag to change window/level.
    const box = await page.locator("#canvas").boundingBox();
    await page.mouse.move(box.x + 50, box.y + 50);
    await page.mouse.down();
    await page.mouse.move(box.x + 150, box.y + 60);
    await page.mouse.up();
    const width = Number(await page.getAttribute("#canvas", "data-width"));
    check(width === 600, `dragging right widens the window (400 → ${width})`);

    // An MR series: no window in the data set, so the full range of values.
    await page.locator("#studies tbody tr", { hasText: "MR" }).first().click();
    const mr = await openSeries(page, "MR");
    const [mrPoints, mrExpected] = expectedPixels(mr, POINTS, { rows: 256, columns: 256, slope: 1, intercept: 0, center: NaN, width: NaN });
    const mrShown = await shownPixels(page, mrPoints);
    check(JSON.stringify(mrShown) === JSON.stringify(mrExpected), `MR pixels in the full range ${mrShown} = ${mrExpected}`);
    const mrBox = await page.locator("#canvas").boundingBox();
    await page.mouse.move(mrBox.x + mrBox.width / 2, mrBox.y + mrBox.height / 2);
    await page.mouse.wheel(0, 120);
    await page.waitForSelector('#canvas[data-instance="1"][data-ready="yes"]');
    check(true, "the wheel shows the next instance");
    await page.focus("#canvas");
    await page.keyboard.press("ArrowUp"); // back to the first slice, through both ventricles
    await page.waitForSelector('#canvas[data-instance="0"][data-ready="yes"]');
    await page.screenshot({ path: join(SHOTS, "viewer-mr.png"), fullPage: true });
    check(true, `screenshot of an MR series saved to ${join(SHOTS, "viewer-mr.png")}`);

    // A tampered study token is refused, and the viewer gets a fresh address from the search once. The search's
    // answer is rewritten so that each Endpoint is contained in its study (what `images.endpoints = "contained"`
    // answers), the other form the viewer reads (the TTL flow of refresh.mjs reads the default Bundle entries).
    await page.route(/\/ImagingStudy\?.*identifier=/, async (route) => {
      const bundle = await (await route.fetch()).json();
      const included = bundle.entry.filter((e) => e.search.mode === "include");
      check(included.length > 0, "the search answers its Endpoints as Bundle entries");
      bundle.entry = bundle.entry.filter((e) => e.search.mode === "match");
      for (const entry of bundle.entry) {
        const endpoint = included.find((e) => e.fullUrl === entry.resource.endpoint[0].reference).resource;
        entry.resource.contained = [{ ...endpoint, id: "wado" }];
        entry.resource.endpoint = [{ reference: "#wado" }];
      }
      await route.fulfill({ json: bundle, headers: { "Content-Type": "application/fhir+json" } });
    });
    const searches = [];
    page.on("request", (r) => {
      if (new URL(r.url()).searchParams.has("identifier")) searches.push(r.url());
    });
    const study = await page.evaluate(() => {
      const s = window.viewerState;
      const uid = s.items[0].study;
      s.addresses.set(uid, s.addresses.get(uid).replace("/wado/", "/wado/x"));
      s.at = 0;
      return uid;
    });
    await page.focus("#canvas");
    await page.keyboard.press("ArrowDown");
    await page.waitForSelector('#canvas[data-instance="1"][data-ready="yes"]');
    const fresh = await page.evaluate((uid) => window.viewerState.addresses.get(uid), study);
    check(searches.length === 1 && searches[0].endsWith(`identifier=urn:oid:${study}`) && await page.textContent("#status") === "" &&
      /\/wado\/[A-Za-z0-9_-]+$/.test(fresh), `a refused address is replaced by the search's Bundle entry, once, and the image drawn (${searches})`);
    // When the fresh address is refused too, the 403 is shown in words a person reads.
    await page.route(/\/wado\//, (route) => route.fulfill({ status: 403, body: "refused" }));
    await page.keyboard.press("ArrowDown");
    await page.waitForFunction(() => document.getElementById("status").textContent.includes("not for this patient"));
    check(searches.length === 2, `a second 403 says the study is not for this patient, after one search (${searches.length - 1})`);
    await page.unroute(/\/wado\//);
    await page.unroute(/\/ImagingStudy\?.*identifier=/);
    // The 403 is the server's answer to a tampered token, not an error of the page.
    const pageErrors = errors.filter((e) => !e.includes("403"));
    check(pageErrors.length === 0, `no console errors (${pageErrors.join(" | ")})`);
    check(unauthenticated.length === 0, `no request to a protected path without Authorization (${unauthenticated})`);
  } catch (e) {
    check(false, `the walk through the viewer: ${e.stack || e}`);
  }
  // The smart tenant: the viewer's SMART launch at the built-in sandbox EHR (sandbox.mjs).
  try {
    // The last frame asked is the one shown (frames.mjs).
    await burstFlow(browser, BASE, check, expectedPixels);
    await sandboxFlow(browser, BASE, check);
    await ehrLaunchFlow(browser, BASE, check);
    // The viewer refreshing an expired address, against the second server (refresh.mjs).
    await refreshFlow(browser, process.env.TTL_BASE, Number(process.env.TTL), check);
  } finally {
    await browser.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();

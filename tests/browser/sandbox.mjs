// The viewer's SMART launch against the built-in sandbox EHR (docs/ehr.md, The built-in sandbox EHR), in the same
// headless Chromium as viewer.mjs, which calls `sandboxFlow` before its summary line.
//
// The viewer is a browser app the sandbox was not written for: it discovers the `smart` tenant's EHR (the
// sandbox), leaves for its authorize endpoint with PKCE, comes back with a code, exchanges it with a
// cross-origin fetch (CORS), reads the patient's name from the sandbox's Patient resource, and lists the
// studies of the patient chosen. Launches: at the issuer with the patient picker, where a person clicks
// "Approve for Anna Müller"; at the per-patient issuer of p2, which approves at once; at the picker again, where
// the person clicks "Deny"; and at p2's issuer with the Patient read refused, where the page names the id.

/** Runs the launches on a new page of `browser` against the server at `base`; `check(ok, what)` counts. */
export async function sandboxFlow(browser, base, check) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  // A smart-on-fhir tenant needs the token on every protected request.
  const unauthenticated = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (/\/fhir\/ImagingStudy|\/wado\//.test(path) && r.method() !== "OPTIONS" && !r.headers().authorization) {
      unauthenticated.push(path);
    }
  });
  try {
    const config = await (await fetch(`${base}/viewer/config.json`)).json();
    const smart = config.tenants.find((t) => t.name === "smart");
    if (!check(smart && smart.kind === "smart-on-fhir", "the viewer offers the smart tenant")) return;
    const sandbox = smart.issuer.replace(/\/fhir$/, "");

    await page.goto(`${base}/viewer/`);
    await page.selectOption("#tenant", "smart");
    await page.fill("#issuer", smart.issuer);
    await page.click("#go");
    await page.waitForURL((url) => url.href.startsWith(`${sandbox}/auth/authorize`));
    check(await page.locator("text=for teaching and tests only").count() === 1, "the sandbox's picker says it is a sandbox");
    await page.click("button:has-text('Approve for Anna Müller')");
    await page.waitForSelector("#studies tbody tr");
    const rows = await page.locator("#studies tbody tr").count();
    check(rows === 2, `signed in at the sandbox's picker as Anna: her studies are listed (${rows})`);
    const who = await page.textContent("#who");
    check(who === "Patient in context: Anna Müller.", `the patient is named from the sandbox's Patient/p1 (${who})`);
    await page.locator("#studies tbody tr", { hasText: "CT" }).first().click();
    await page.locator("#series li").first().click();
    await page.waitForSelector('#canvas[data-ready="yes"]');
    check(true, "a CT series drawn with the sandbox's token");
    await page.locator("#studies tbody tr", { hasText: "MR" }).first().click();
    await page.locator("#series li").first().click();
    await page.waitForSelector('#canvas[data-ready="yes"]');
    await page.focus("#canvas");
    await page.keyboard.press("ArrowDown");
    await page.waitForSelector('#canvas[data-instance="1"][data-ready="yes"]');
    check(true, "an MR series drawn and scrolled with the sandbox's token");
    const offered = await page.$$eval("#issuers option", (os) => os.map((o) => o.value));
    check(offered.includes(`${sandbox}/p1/fhir`) && offered.includes(`${sandbox}/fhir`),
      `the page offers the sandbox's issuers (${offered.join(", ")})`);

    await page.goto(`${base}/viewer/`);
    await page.selectOption("#tenant", "smart");
    await page.fill("#issuer", `${sandbox}/p2/fhir`);
    await page.click("#go");
    await page.waitForSelector("#studies tbody tr");
    const p2 = await page.locator("#studies tbody tr").count();
    check(p2 === 1, `the per-patient issuer of p2 approves at once: p2's study is listed (${p2})`);
    const said = { who: await page.textContent("#who"), status: await page.textContent("#status") };
    check(said.who === "Patient in context: Yuki Tanaka." && said.status === "1 study.",
      `p2 is named and the one study counted in the singular (${JSON.stringify(said)})`);

    // A person who clicks Deny on the picker is told so, in words.
    await page.goto(`${base}/viewer/`);
    await page.selectOption("#tenant", "smart");
    await page.fill("#issuer", smart.issuer);
    await page.click("#go");
    await page.waitForURL((url) => url.href.startsWith(`${sandbox}/auth/authorize`));
    await page.click("button:has-text('Deny')");
    await page.waitForURL((url) => url.href.startsWith(`${base}/viewer/`));
    await page.waitForFunction(() => document.getElementById("status").textContent !== "");
    const denied = await page.textContent("#status");
    check(denied.startsWith("Access was denied at the EHR") && !/went wrong|access_denied/.test(denied),
      `a Deny at the picker is worded as a Deny (${denied})`);
    check(errors.length === 0, `no console errors in the sandbox launches (${errors.join(" | ")})`);
    check(unauthenticated.length === 0, `no protected request without Authorization (${unauthenticated.join(", ")})`);

    // Where the Patient read is refused, the page names the patient by id.
    await page.route(/\/Patient\/p2$/, (route) => route.fulfill({ status: 403, contentType: "application/fhir+json", body: "{}" }));
    await page.goto(`${base}/viewer/`);
    await page.selectOption("#tenant", "smart");
    await page.fill("#issuer", `${sandbox}/p2/fhir`);
    await page.click("#go");
    await page.waitForSelector("#studies tbody tr");
    const fallback = await page.textContent("#who");
    check(fallback === "Patient in context: p2.", `without the Patient read, the id (${fallback})`);
  } catch (e) {
    check(false, `the viewer's launch at the sandbox: ${e.stack || e}`);
  } finally {
    await page.close();
  }
}

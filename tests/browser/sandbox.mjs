// The viewer's SMART launch against the built-in sandbox EHR (docs/ehr.md, The built-in sandbox EHR), in the same
// headless Chromium as viewer.mjs, which calls `sandboxFlow` before its summary line.
//
// The viewer is a browser app the sandbox was not written for: it discovers the `smart` tenant's EHR (the
// sandbox), leaves for its authorize endpoint with PKCE, comes back with a code, exchanges it with a
// cross-origin fetch (CORS), and lists the studies of the patient chosen. Two launches: at the issuer with the
// patient picker, where a person clicks "Approve for Anna Müller"; and at the per-patient issuer of p2, which
// approves at once.

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
    check(errors.length === 0, `no console errors in the sandbox launches (${errors.join(" | ")})`);
    check(unauthenticated.length === 0, `no protected request without Authorization (${unauthenticated.join(", ")})`);
  } catch (e) {
    check(false, `the viewer's launch at the sandbox: ${e.stack || e}`);
  } finally {
    await page.close();
  }
}

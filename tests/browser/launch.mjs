// The EHR launch from the built-in sandbox EHR (docs/ehr.md, The EHR launch), in the same headless Chromium as
// viewer.mjs, which calls `ehrLaunchFlow` before its summary line.
//
// A person at the sandbox's page for Anna Müller clicks "Launch app" for the built-in viewer: the sandbox
// opens the viewer with `iss` and `launch`, the viewer discovers the EHR at `iss`, asks for the `launch`
// scope with that value (PKCE), gets the patient from the token answer without a picker, and draws her
// images. Then the same launch value, opened a second time, is refused.

/** Runs the launch on a new page of `browser` against the server at `base`; `check(ok, what)` counts. */
export async function ehrLaunchFlow(browser, base, check) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  const authorizations = [];
  page.on("request", (r) => { if (r.url().includes("/auth/authorize")) authorizations.push(r.url()); });
  try {
    const config = await (await fetch(`${base}/viewer/config.json`)).json();
    const smart = config.tenants.find((t) => t.name === "smart");
    const sandbox = smart.issuer.replace(/\/fhir$/, "");

    await page.goto(`${sandbox}/p1/`);
    check(await page.locator("text=for teaching and tests only").count() === 1, "the patient's page says it is a sandbox");
    await page.click("button:has-text('Launch app: smart-imaging viewer')");
    await page.waitForSelector("#studies tbody tr");
    const launched = new URL(authorizations[0] || "http://x/");
    check(launched.searchParams.get("launch") && launched.searchParams.get("scope").split(" ").includes("launch"),
      `the viewer asks for the launch scope with the launch value (${launched.search})`);
    check(launched.searchParams.get("code_challenge_method") === "S256", "with PKCE S256");
    check(!launched.searchParams.has("patient") && !(await page.locator("text=Choose a patient").count()),
      "no patient picker: the patient comes from the launch");
    const rows = await page.locator("#studies tbody tr").count();
    check(rows === 2, `launched from Anna's page: her studies are listed (${rows})`);
    await page.locator("#studies tbody tr", { hasText: "CT" }).first().click();
    await page.locator("#series li").first().click();
    await page.waitForSelector('#canvas[data-ready="yes"]');
    const drawn = await page.$eval("#canvas", (c) => {
      const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      const seen = new Set();
      for (let i = 0; i < data.length; i += 4 * 97) seen.add(data[i]);
      return seen.size;
    });
    check(drawn > 1, `an image is drawn after the EHR launch (${drawn} gray levels sampled)`);
    check(errors.length === 0, `no console errors in the EHR launch (${errors.join(" | ")})`);

    // The launch value is good once: the same address again is refused by the EHR.
    const again = new URL(authorizations[0]);
    const redirect = new URL(again.searchParams.get("redirect_uri"));
    const reply = await fetch(again.href, { redirect: "manual" });
    const location = new URL(reply.headers.get("location") || "http://x/", redirect);
    check(location.searchParams.get("error") === "invalid_request", `a launch used twice is refused (${location.search})`);
  } catch (e) {
    check(false, `the EHR launch of the viewer from the sandbox: ${e.stack || e}`);
  } finally {
    await page.close();
  }
}

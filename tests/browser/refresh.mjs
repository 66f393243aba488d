// The viewer refreshing an expired Endpoint address, in the same headless Chromium as viewer.mjs, which calls
// `refreshFlow` before its summary line, against a second server whose study tokens live `ttl` seconds
// (run.sh starts it with `server.study_token_ttl` set).
//
// SMART Imaging Access answers a retrieval under an expired address 403 and has the client repeat the
// ImagingStudy search for the patient and the Study Instance UID to get a fresh Endpoint. The flow opens a CT
// series, waits until its address is refused, then moves to the next instance (a frame request) and opens an
// MR series whose address expired with it (a metadata request): each is drawn after one search with
// `identifier=urn:oid:{uid}`, with no error shown, and the instance after that uses the fresh address at once.

/** Runs the flow on a new page of `browser` against the short-lived server at `base`; `check(ok, what)` counts. */
export async function refreshFlow(browser, base, ttl, check) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  const searches = [];
  const frames = [];
  page.on("response", (r) => {
    const url = new URL(r.url());
    if (url.pathname.endsWith("/fhir/ImagingStudy") && url.searchParams.has("identifier")) {
      searches.push({ status: r.status(), patient: url.searchParams.get("patient"), identifier: url.searchParams.get("identifier") });
    }
    const wado = /\/wado\/([^/]+)\/.*\/frames\//.exec(url.pathname);
    if (wado) frames.push({ status: r.status(), token: wado[1] });
  });
  const shown = async () => ({
    status: await page.textContent("#status"),
    error: await page.getAttribute("#status", "class"),
  });
  try {
    await page.goto(`${base}/viewer/`);
    await page.selectOption("#tenant", "demo");
    await page.click("#go");
    await page.waitForSelector("#studies tbody tr");
    const ct = page.locator("#studies tbody tr", { hasText: "CT" }).first();
    const ctUid = await ct.getAttribute("data-study");
    await ct.click();
    await page.locator("#series li").first().click();
    await page.waitForSelector('#canvas[data-instance="0"][data-ready="yes"]');

    // Wait until the server refuses the address the page holds: the study token has expired.
    const old = await page.evaluate((uid) => window.viewerState.addresses.get(uid), ctUid);
    const deadline = Date.now() + (ttl + 10) * 1000;
    let refused = 0;
    while (Date.now() < deadline) {
      refused = (await fetch(`${old}/studies/${ctUid}/series`, { headers: { Accept: "application/dicom+json" } })).status;
      if (refused === 403) break;
      await new Promise((done) => setTimeout(done, 250));
    }
    if (!check(refused === 403, `after ${ttl} s the CT study's address is refused (${refused})`)) return;

    // The next instance: its frame request is refused, the search asked again, the frame asked again.
    frames.length = 0;
    await page.focus("#canvas");
    await page.keyboard.press("ArrowDown");
    await page.waitForSelector('#canvas[data-instance="1"][data-ready="yes"]');
    const painted = await page.evaluate(() => {
      const canvas = document.getElementById("canvas");
      const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      return data.some((v, i) => i % 4 !== 3 && v > 0);
    });
    check(painted, "after the address expired, the next CT instance is drawn");
    check(searches.length === 1 && searches[0].identifier === `urn:oid:${ctUid}` && searches[0].patient === "p1" &&
      searches[0].status === 200, `the search was asked again once, for p1 and urn:oid:${ctUid} (${JSON.stringify(searches)})`);
    const fresh = await page.evaluate((uid) => window.viewerState.addresses.get(uid), ctUid);
    const [first, second] = frames;
    check(frames.length === 2 && first.status === 403 && second.status === 200 && first.token !== second.token &&
      fresh.endsWith(`/wado/${second.token}`), `the frame was refused, then answered under the fresh address (${frames.map((f) => f.status)})`);
    const after = await shown();
    check(after.status === "" && after.error !== "error", `no error is shown (${JSON.stringify(after)})`);

    // The open series keeps the fresh address: the instance after is asked under it, with no search.
    frames.length = 0;
    await page.keyboard.press("ArrowDown");
    await page.waitForSelector('#canvas[data-instance="2"][data-ready="yes"]');
    check(searches.length === 1 && frames.length === 1 && frames[0].status === 200 && frames[0].token === second.token,
      `the open series goes on under the fresh address (${frames.map((f) => f.status)}, ${searches.length} searches)`);

    // The MR study's address, from the same first search, has expired too: its metadata request refreshes it.
    const mr = page.locator("#studies tbody tr", { hasText: "MR" }).first();
    const mrUid = await mr.getAttribute("data-study");
    await mr.click();
    await page.locator("#series li").first().click();
    await page.waitForSelector('#canvas[data-instance="0"][data-ready="yes"]');
    check(searches.length === 2 && searches[1].identifier === `urn:oid:${mrUid}`,
      `an expired MR address is refreshed when its series' metadata is asked (${searches.map((s) => s.identifier)})`);
    const mrAfter = await shown();
    check(mrAfter.status === "" && mrAfter.error !== "error", `no error is shown for the MR series (${JSON.stringify(mrAfter)})`);
    // The refused requests are the server's answers to expired addresses, not errors of the page.
    const pageErrors = errors.filter((e) => !e.includes("403"));
    check(pageErrors.length === 0, `no console errors while refreshing (${pageErrors.join(" | ")})`);
  } catch (e) {
    check(false, `the viewer refreshing an expired address: ${e.stack || e}`);
  } finally {
    await page.close();
  }
}

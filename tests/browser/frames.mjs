// The frame shown and its label are those of the last request, in the same headless Chromium as viewer.mjs,
// which calls `burstFlow` before its summary line.
//
// On the open tenant (every study) it opens the multi-frame series (two instances of four frames), presses
// ArrowDown five times without waiting, holds the five frame answers, and gives them to the page newest first:
// the last request's answer, then each superseded one, each only once the page is done with the one before.
// A page that drew every answer as it came would end on the second frame; this one must end on the last frame
// of the second instance, labelled so, with the pixels of that frame of the file. The same page shows the
// study count and a series' instance count in words ("3 studies", "1 instance").

const BURST = 5; // under Chromium's six connections to one host, so that every request is sent and held

/** Runs the flow on a new page of `browser` against the server at `base`; `check(ok, what)` counts;
 * `expected(seriesUid, points, attributes, item)` is the oracle of viewer.mjs. */
export async function burstFlow(browser, base, check, expected) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    // The search's answer says the lung series holds one instance, to see the singular.
    await page.route(/\/open\/fhir\/ImagingStudy$/, async (route) => {
      const bundle = await (await route.fetch()).json();
      for (const entry of bundle.entry) {
        for (const series of entry.resource.series || []) {
          if (series.description === "AXIAL 5MM LUNG") series.numberOfInstances = 1;
        }
      }
      await route.fulfill({ json: bundle, headers: { "Content-Type": "application/fhir+json" } });
    });
    await page.goto(`${base}/viewer/`);
    await page.selectOption("#tenant", "open");
    await page.click("#go");
    await page.waitForSelector("#studies tbody tr");
    const status = await page.textContent("#status");
    check(status === "3 studies.", `the open tenant's studies are counted in words (${status})`);
    await page.locator("#studies tbody tr", { hasText: "CT CHEST" }).click();
    const chest = await page.$$eval("#series li", (items) => items.map((li) => li.textContent));
    check(chest.some((t) => t.endsWith("(10 instances)")) && chest.some((t) => t.endsWith("(1 instance)")),
      `a series of one instance says "1 instance", of ten "10 instances" (${chest.join(" | ")})`);

    await page.locator("#studies tbody tr", { hasText: "CT ABDOMEN" }).click();
    const item = page.locator("#series li", { hasText: "MULTIFRAME" });
    const series = await item.getAttribute("data-series");
    await item.click();
    await page.waitForSelector('#canvas[data-instance="0"][data-ready="yes"]');
    await page.focus("#canvas");
    for (const at of ["1", "2"]) {
      await page.keyboard.press("ArrowDown");
      await page.waitForSelector(`#canvas[data-instance="${at}"][data-ready="yes"]`);
    }

    const held = [];
    let allHeld;
    const arrived = new Promise((done) => { allHeld = done; });
    await page.route(/\/frames\/\d+$/, (route) => {
      held.push(route);
      if (held.length === BURST) allHeld();
    });
    const answered = await page.evaluate(() => window.viewerState.answered);
    for (let n = 0; n < BURST; n++) await page.keyboard.press("ArrowDown");
    await arrived;
    for (const [n, route] of held.reverse().entries()) {
      await route.fulfill({ response: await route.fetch() });
      await page.waitForFunction((k) => window.viewerState.answered >= k, answered + n + 1);
    }
    await page.unroute(/\/frames\/\d+$/);

    const shown = await page.evaluate(() => {
      const canvas = document.getElementById("canvas");
      return { at: canvas.dataset.instance, ready: canvas.dataset.ready, label: document.getElementById("image-info").textContent };
    });
    check(shown.at === "7" && shown.ready === "yes" && shown.label.startsWith("Instance 2 (8 of 8), frame 4 of 4 "),
      `after ${BURST} quick ArrowDowns answered newest first, the last frame asked is shown and labelled (${JSON.stringify(shown)})`);
    const [points, values] = expected(series, [[0, 0], [128, 128], [60, 120], [190, 90], [128, 210]],
      { rows: 256, columns: 256, slope: 1, intercept: 0, center: 1064, width: 400 }, 8);
    const pixels = await page.evaluate((pts) => {
      const context = document.getElementById("canvas").getContext("2d");
      return pts.map(([x, y]) => context.getImageData(x, y, 1, 1).data[0]);
    }, points);
    check(JSON.stringify(pixels) === JSON.stringify(values),
      `the canvas holds instance 2's frame 4, not a superseded one (${pixels} = ${values})`);
    check(await page.textContent("#status") === "", "no error shown for the superseded requests");
    check(errors.length === 0, `no console errors in the burst (${errors.join(" | ")})`);
  } catch (e) {
    check(false, `the ArrowDown burst on the multi-frame series: ${e.stack || e}`);
  } finally {
    await page.close();
  }
}

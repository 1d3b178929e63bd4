// How long the dashboard takes to show its numbers: headless chromium opens the page
// served by an api (fresh browser context each time, so nothing is cached), and the
// clock runs from navigation to the numbers being drawn (totals, chart and the
// side-by-side table: the page sets `#totals[data-range]` once their aggregates have
// answered), and on to the integration health table (`#health[data-loaded]`). Prints the median and the
// worst of RUNS loads per view, and, as the baseline measured in the same run, the
// same page's load against the same api for a range with no calls.
//
//   node benches/load/dashboard_load.mjs API_URL [RUNS=5]
//
// benches/load/dashboard_load.sh runs it against the 10M-call bench database. Uses
// the playwright-core that deploy/test.sh installs under tests/browser.
import { chromium } from "../../tests/browser/node_modules/playwright-core/index.mjs";

const [apiUrl, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 5);
const views = [
  ["empty range (baseline): 2030-01-01, one day", "?range=custom&from=2030-01-01&to=2030-01-01&zone=America%2FNew_York"],
  ["last 24 h (the default)", "?range=24h&zone=America%2FNew_York"],
  ["last 30 days", "?range=30d&zone=America%2FNew_York"],
  ["2026 as a custom range, by day", "?range=custom&from=2026-01-01&to=2026-12-31&zone=America%2FNew_York"],
  ["2026 by day, by source", "?range=custom&from=2026-01-01&to=2026-12-31&zone=America%2FNew_York&by=source"],
  ["2026, one buyer, side by side by buyer (a rollup answers)", "?range=custom&from=2026-01-01&to=2026-12-31&zone=America%2FNew_York&buyer=buyer3&side=buyer"],
  ["last 30 days, one campaign, side by side by publisher (the calls answer)", "?range=30d&zone=America%2FNew_York&campaign=camp7&side=publisher"],
  ["2026, one campaign, side by side by publisher (the calls answer)", "?range=custom&from=2026-01-01&to=2026-12-31&zone=America%2FNew_York&campaign=camp7&side=publisher"],
];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
  headless: true,
});
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
try {
  console.log(`${new Date().toISOString()} dashboard load, ${runs} runs per view, ${apiUrl}`);
  for (const [name, query] of views) {
    const times = [], whole = [];
    let calls = "";
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await context.newPage();
      const started = Date.now();
      await page.goto(apiUrl + "/" + query);
      await page.waitForFunction(() => document.getElementById("totals").dataset.range !== undefined, null, { timeout: 120000 });
      times.push(Date.now() - started);
      await page.waitForFunction(() => document.getElementById("health").dataset.loaded !== undefined, null, { timeout: 120000 });
      whole.push(Date.now() - started);
      calls = await page.getAttribute("#totals", "data-calls");
      await context.close();
    }
    console.log(`${name}: numbers (totals, chart, side by side) median ${median(times)} ms (worst ${Math.max(...times)}); with integration health median ${median(whole)} ms (worst ${Math.max(...whole)}); ${calls} calls shown`);
  }
} finally {
  await browser.close();
}

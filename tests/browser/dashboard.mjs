// The dashboard in a real browser: open it, deliver a webhook, and see the call
// arrive in the live feed and the 24-hour total change. Saves a screenshot.
//
//   node tests/browser/dashboard.mjs API_URL INGEST_URL SCREENSHOT_PATH
//
// Run by tests/tests/dashboard_browser.rs against the real stack; Debian's chromium
// (CHROMIUM, default /usr/bin/chromium) driven by playwright-core.
import { chromium } from "playwright-core";

const [apiUrl, ingestUrl, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
  headless: true,
});
try {
  // A zone other than UTC: the chart's hours are cut in the browser's zone.
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, timezoneId: "America/Chicago" });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(apiUrl + "/");
  await page.waitForSelector("#status.live", { timeout: 30000 });
  await page.waitForFunction(() => document.getElementById("t-calls").textContent !== "–", null, { timeout: 30000 });
  const before = Number(await page.textContent("#t-calls"));

  const started = new Date(Date.now() - 3600 * 1000).toISOString().slice(0, 19) + "Z";
  const body = JSON.stringify({ call: { id: "browser_1", caller: { number: "3125550199" }, started_at: started, duration: "2:00", payout: "$12.50" } });
  const response = await fetch(ingestUrl + "/api/integrations/webhook/arroyo", { method: "POST", headers: { "content-type": "application/json" }, body });
  if (response.status !== 202) throw new Error("the webhook answered " + response.status);

  await page.waitForSelector('#feed tr[data-external-id="browser_1"]', { timeout: 60000 });
  const status = await page.textContent('#feed tr[data-external-id="browser_1"] td:nth-child(4)');
  await page.waitForFunction((n) => Number(document.getElementById("t-calls").textContent) === n + 1, before, { timeout: 30000 });
  // Integration health comes from /api/integrations: arroyo has just sent, so it is ok.
  await page.waitForFunction(() => document.querySelector('#health tr[data-client="arroyo"] td:nth-child(2)')?.textContent === "ok", null, { timeout: 30000 });
  // The chart by source stacks the webhook call.
  await page.selectOption("#chart-by", "source");
  await page.waitForFunction(() => [...document.querySelectorAll("#chart rect title")].some((t) => t.textContent.startsWith("webhook: ")), null, { timeout: 30000 });
  await page.selectOption("#chart-by", "status");
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("errors on the page: " + errors.join("; "));
  console.log(`ok: browser_1 (${status}) appeared in the live feed; calls in 24 h went ${before} -> ${before + 1}; screenshot ${screenshot}`);
} finally {
  await browser.close();
}

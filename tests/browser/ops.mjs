// The dashboard's operations view (issue 37) with an admin token (here: no tokens
// configured): it appears, and shows what GET /api/ops says: the alerts (ingest's
// CallMatrixProcessDown among them), the processor's consumer group, acme-leads'
// freshness, ingest's scrape failing. Saves a screenshot.
//
//   node tests/browser/ops.mjs API_URL PROCESSOR_GROUP SCREENSHOT_PATH
//
// Run by tests/tests/it/ops_view.rs once Prometheus sees ingest down.
import { openPage } from "./launch.mjs";

const [apiUrl, group, screenshot] = process.argv.slice(2);
const { browser, page, errors } = await openPage();
try {
  await page.goto(apiUrl + "/");
  await page.waitForSelector("#ops:not([hidden])", { timeout: 30000 })
    .catch(async () => { throw new Error("the operations view did not appear"); });
  await page.waitForSelector('#ops-alerts tr[data-alert="CallMatrixProcessDown"]', { timeout: 30000 })
    .catch(async () => { throw new Error("no CallMatrixProcessDown row: " + (await page.textContent("#ops-alerts"))); });
  const api = await (await fetch(apiUrl + "/api/ops")).json();
  const shown = await page.evaluate(() => ({
    alerts: [...document.querySelectorAll("#ops-alerts tr[data-alert]")].map((tr) => tr.dataset.alert + ":" + tr.dataset.state).sort(),
    groups: Object.fromEntries([...document.querySelectorAll("#ops-groups tr[data-group]")].map((tr) => [tr.dataset.group, tr.children[2].textContent])),
    accounts: [...document.querySelectorAll("#ops-freshness tr[data-account]")].map((tr) => tr.dataset.account).sort(),
    down: [...document.querySelectorAll("#ops-down tr[data-job]")].map((tr) => tr.dataset.job + ": " + tr.children[1].textContent),
  }));
  const wantAlerts = api.alerts.map((a) => a.name + ":" + a.state).sort();
  // The page reads every 10 s; an alert may have moved from pending to firing between.
  const names = (list) => list.map((a) => a.split(":")[0]).join();
  if (names(shown.alerts) !== names(wantAlerts)) throw new Error(`alerts: the page shows ${shown.alerts}, the API ${wantAlerts}`);
  if (!(Number(shown.groups[group]) > 0)) throw new Error(`the processor's group ${group}: ${JSON.stringify(shown.groups)}`);
  if (!shown.accounts.includes("acme-leads")) throw new Error("freshness: " + shown.accounts);
  if (!shown.down.some((d) => d.startsWith("callmatrix-ingest: scrape of"))) throw new Error("down: " + shown.down);
  await page.screenshot({ path: screenshot, fullPage: false });
  if (errors.length) throw new Error("errors on the page: " + errors.join("; "));
  console.log(`ok: the operations view shows ${shown.alerts.length} alerts, ${Object.keys(shown.groups).length} groups, ${shown.accounts.length} accounts, ${shown.down.length} down`);
} finally {
  await browser.close();
}

// Drift on the dashboard (issue 38): the integration's health row says "drift", and
// each sign's "first" button opens the story of the call that first showed it, with
// the partner's record as sent. Checks the new key's: the story is the call's (its
// partner id) and its raw record carries the new key. Saves a screenshot.
//
//   node tests/browser/drift.mjs API_URL CLIENT_ID EXTERNAL_ID NEW_KEY SCREENSHOT_PATH
//
// Run by tests/tests/it/mapping_drift.rs once the api reports the drift.
import { openPage } from "./launch.mjs";

const [apiUrl, client, external, newKey, screenshot] = process.argv.slice(2);
const { browser, page, errors } = await openPage();
try {
  await page.goto(apiUrl + "/");
  const row = `#health tr[data-client="${client}"]`;
  await page.waitForFunction((row) => document.querySelector(row + " td:nth-child(2)")?.textContent.startsWith("drift"), row, { timeout: 30000 })
    .catch(async () => { throw new Error("no drift on the health row: " + (await page.textContent("#health"))); });
  const kinds = await page.evaluate((row) => [...document.querySelectorAll(row + " button.drift-first")].map((b) => b.dataset.kind).sort(), row);
  if (kinds.join() !== "fill,new_key,new_status,type_changed") throw new Error("the drift buttons: " + kinds.join());
  const title = await page.getAttribute(row + ' button.drift-first[data-kind="new_key"]', "title");
  if (!title.includes(newKey)) throw new Error("the new key's button says " + title);
  await page.click(row + ' button.drift-first[data-kind="new_key"]');
  await page.waitForSelector("#story:not([hidden])", { timeout: 30000 });
  const heading = await page.textContent("#story-title");
  if (!heading.startsWith(external + " ")) throw new Error("the story opened is " + heading);
  const raw = await page.textContent("#story-raw");
  if (!raw.includes(newKey)) throw new Error("the story's record does not carry " + newKey + ": " + raw.slice(0, 400));
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("errors on the page: " + errors.join("; "));
  console.log(`ok: ${client} shows drift (${kinds.join(", ")}); the new key's first call is ${external}, its record carries ${newKey}`);
} finally {
  await browser.close();
}

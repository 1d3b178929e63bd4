// The dashboard in a real browser: open it, deliver a webhook, and see the call
// arrive in the live feed and the 24-hour total change; deliver a repeat of it and
// open its story (by click, then the first call's by keyboard); correct a call so its
// status changes and see it move between the counts live; the side-by-side table by
// source against the aggregates API; narrow to a campaign and a status (URL, numbers,
// feed, reload); choose a range and a zone, checked against the aggregates API and
// kept in the URL across a reload; a dead-letter group (payloads, field errors, a
// mapping preview), a mapping fix and a replay from the page; a Ringba-shaped
// integration's custom attributes as a side-by-side dimension, a filter and in the
// story. Saves screenshots at desktop and phone widths.
//
//   node tests/browser/dashboard.mjs API_URL INGEST_URL SCREENSHOT_PATH
//
// Run by tests/tests/dashboard_browser.rs against the real stack; Debian's chromium
// (CHROMIUM, default /usr/bin/chromium) driven by playwright-core.
import { readFileSync } from "node:fs";
import { openPage } from "./launch.mjs";

const [apiUrl, ingestUrl, screenshot] = process.argv.slice(2);
// A zone other than UTC: the chart's hours are cut in the browser's zone.
const { browser, page, errors } = await openPage({ timezoneId: "America/Chicago" });
try {
  const post = async (call) => {
    const r = await fetch(ingestUrl + "/api/integrations/webhook/arroyo", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ call }) });
    if (r.status !== 202) throw new Error(`the webhook for ${call.id} answered ${r.status}`);
  };
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
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1400, height: 900 });

  // The same caller 30 minutes later: a repeat. Its story, opened by a click, names
  // the first call (its id as the live feed showed it) and when it started.
  const firstId = await page.getAttribute('#feed tr[data-external-id="browser_1"]', "data-id");
  const later = new Date(Date.parse(started) + 1800 * 1000).toISOString().slice(0, 19) + "Z";
  const second = JSON.stringify({ call: { id: "browser_2", caller: { number: "3125550199" }, started_at: later, duration: "3:00", payout: "$12.50" } });
  const again = await fetch(ingestUrl + "/api/integrations/webhook/arroyo", { method: "POST", headers: { "content-type": "application/json" }, body: second });
  if (again.status !== 202) throw new Error("the second webhook answered " + again.status);
  const row2 = '#feed tr[data-external-id="browser_2"]';
  await page.waitForFunction((sel) => document.querySelector(sel + " td:nth-child(4)")?.textContent.startsWith("repeat"), row2, { timeout: 60000 });
  await page.click(row2);
  await page.waitForSelector('#story:not([hidden]) #story-decisions li[data-about="repeat"]', { timeout: 30000 });
  const repeatText = await page.textContent('#story-decisions li[data-about="repeat"]');
  if (!repeatText.includes(firstId) || !repeatText.includes(started.replace("T", " ").replace("Z", " UTC"))) {
    throw new Error("the repeat's story does not name the first call and its start: " + repeatText);
  }
  const rawShown = await page.textContent("#story-raw");
  if (!rawShown.includes('"browser_2"')) throw new Error("the partner's record is not shown: " + rawShown);
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-story.png"), fullPage: true });

  // By keyboard: Escape closes it, Enter on the first call's row opens that one.
  await page.keyboard.press("Escape");
  await page.waitForSelector("#story[hidden]", { state: "attached", timeout: 5000 });
  await page.focus('#feed tr[data-external-id="browser_1"]');
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.getElementById("story-title").textContent.startsWith("browser_1") && !document.getElementById("story").hidden, null, { timeout: 30000 });

  // A duplicate: the partner's sample call on CallMatrix's number, 2 s after
  // CallMatrix's own cm_0001 (loaded by the Rust side). Its story names the CmCall.
  const sample = JSON.parse(readFileSync(new URL("../fixtures/arroyo-webhook.json", import.meta.url)))[0];
  await post(sample.call);
  const dupRow = '#feed tr[data-external-id="ar_9f8e7d6c"]';
  await page.waitForFunction((sel) => document.querySelector(sel + " td:nth-child(4)")?.textContent.startsWith("duplicate"), dupRow, { timeout: 60000 });
  await page.click(dupRow);
  // The story open before (browser_1's) has a duplicate line too: wait for this one.
  await page.waitForFunction(() => document.getElementById("story-title").textContent.startsWith("ar_9f8e7d6c") && document.querySelector('#story-decisions li[data-about="duplicate"]'), null, { timeout: 30000 });
  const dupText = await page.textContent('#story-decisions li[data-about="duplicate"]');
  if (!dupText.includes("cm_0001") || !dupText.includes("started 2 s after it")) throw new Error("the duplicate's story does not name the CmCall and the start delta: " + dupText);
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-story-duplicate.png"), fullPage: true });

  // A phone's width: one column, the story still readable.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-story-phone.png"), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`the page is ${overflow} px wider than a phone`);

  await page.setViewportSize({ width: 1400, height: 900 });
  await page.keyboard.press("Escape");

  // Live: a new qualified call raises the counts without a reload; its correction to
  // no payout makes it unqualified (arroyo qualifies by payout), and it moves from
  // one count to the other, not twice.
  const counts = () => page.evaluate(() => { const d = document.getElementById("totals").dataset; return { calls: +d.calls, qualified: +d.qualified, unqualified: +d.unqualified }; });
  const countsBecome = (want, what) => page.waitForFunction((w) => { const d = document.getElementById("totals").dataset; return +d.calls === w.calls && +d.qualified === w.qualified && +d.unqualified === w.unqualified; }, want, { timeout: 15000 })
    .catch(async () => { throw new Error(`${what}: the totals show ${JSON.stringify(await counts())}, expected ${JSON.stringify(want)}`); });
  // Where the counts start: the calls posted above, read from the calls themselves
  // (exact=true). The page's whole hours come from the rollups, which follow the
  // calls by a rollup batch (batch.rollup_wait_ms); its refresh after the last event
  // must catch up to this before the live call is posted.
  const range = await page.evaluate(() => ({ ...document.getElementById("totals").dataset }));
  const exact = (await (await fetch(`${apiUrl}/api/aggregates?bucket=none&exact=true&from=${range.from}&to=${range.to}`)).json()).rows[0] || {};
  const c0 = { calls: exact.calls ?? 0, qualified: exact.qualified ?? 0, unqualified: exact.unqualified ?? 0 };
  await countsBecome(c0, "the calls posted before the live one");
  const third = { id: "browser_3", caller: { number: "3125550777" }, started_at: new Date(Date.now() - 1200 * 1000).toISOString().slice(0, 19) + "Z", duration: "2:00", payout: "$20.00", campaign: { name: "Live Test" } };
  await post(third);
  await page.waitForSelector('#feed tr[data-external-id="browser_3"]', { timeout: 60000 });
  await countsBecome({ calls: c0.calls + 1, qualified: c0.qualified + 1, unqualified: c0.unqualified }, "a new qualified call");
  await post({ id: "browser_3", payout: "0" });
  await page.waitForFunction(() => document.querySelector('#feed tr[data-external-id="browser_3"] td:nth-child(4)')?.textContent === "unqualified ↻", null, { timeout: 60000 });
  await countsBecome({ calls: c0.calls + 1, qualified: c0.qualified, unqualified: c0.unqualified + 1 }, "its correction to no payout");

  // Side by side by source: each row as the aggregates API answers for the page's range.
  const sideIs = (by) => page.waitForFunction((b) => document.getElementById("side").dataset.by === b && document.getElementById("side-rows").rows.length > 0, by, { timeout: 30000 });
  await page.selectOption("#side-by", "source");
  await sideIs("source");
  const side = await page.evaluate(() => ({ ...document.getElementById("side").dataset, rows: [...document.querySelectorAll("#side-rows tr")].map((tr) => ({ value: tr.dataset.value, calls: tr.querySelector('td[data-key="calls"]').textContent, margin: tr.querySelector('td[data-key="margin"]').textContent })) }));
  const bySource = await (await fetch(`${apiUrl}/api/aggregates?bucket=none&group_by=source&from=${side.from}&to=${side.to}`)).json();
  const expected = bySource.rows.map((r) => ({ value: r.source, calls: String(r.calls), margin: ((Number(r.revenue) - Number(r.payout)) < 0 ? "-$" : "$") + Math.abs(Number(r.revenue) - Number(r.payout)).toFixed(2) }));
  if (JSON.stringify(side.rows) !== JSON.stringify(expected)) throw new Error(`side by side by source: the page shows ${JSON.stringify(side.rows)}, the API ${JSON.stringify(expected)}`);
  await page.click('#side-head th[data-key="calls"]');
  if ((await page.getAttribute('#side-head th[data-key="calls"]', "aria-sort")) !== "ascending") throw new Error("a second click on calls does not sort ascending");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-side.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-side-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1400, height: 900 });

  // A filter from the table: only the campaign "Live Test", then only its repeats;
  // the URL and the numbers change, and the numbers are the API's for that filter.
  await page.selectOption("#side-by", "campaign");
  await sideIs("campaign");
  await page.click('#side-rows tr[data-value="Live Test"] button');
  await page.waitForFunction(() => document.getElementById("totals").dataset.filters === "campaign=Live Test" && location.search.includes("campaign=Live+Test"), null, { timeout: 30000 });
  const narrowedTo = async (filters, query) => {
    const d = await page.evaluate(() => ({ ...document.getElementById("totals").dataset }));
    const answer = await (await fetch(`${apiUrl}/api/aggregates?bucket=none&from=${d.from}&to=${d.to}&${query}`)).json();
    const want = String(answer.rows[0]?.calls ?? 0);
    if (d.filters !== filters || d.calls !== want) throw new Error(`${filters}: the page shows ${d.calls} calls (${d.filters}), the API ${want}`);
    return Number(want);
  };
  if ((await narrowedTo("campaign=Live Test", "campaign=Live%20Test")) !== 1) throw new Error("Live Test should hold browser_3 only");
  const feedIds = await page.evaluate(() => [...document.querySelectorAll("#feed tr")].map((tr) => tr.dataset.externalId));
  if (feedIds.join() !== "browser_3") throw new Error("the live feed keeps calls of other campaigns: " + feedIds.join());
  await page.selectOption("#f-status", "unqualified");
  await page.waitForFunction(() => document.getElementById("totals").dataset.filters === "status=unqualified&campaign=Live Test" && location.search.includes("status=unqualified"), null, { timeout: 30000 });
  await narrowedTo("status=unqualified&campaign=Live Test", "campaign=Live%20Test&status=unqualified");
  const filteredView = await page.evaluate(() => location.search);
  await page.goto(apiUrl + "/" + filteredView);
  await page.waitForFunction(() => document.getElementById("totals").dataset.filters === "status=unqualified&campaign=Live Test", null, { timeout: 30000 });
  if ((await page.inputValue("#f-campaign")) !== "Live Test" || (await page.inputValue("#f-status")) !== "unqualified") throw new Error("the filters did not survive a reload");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-filtered.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-filtered-phone.png"), fullPage: true });
  const phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (phoneOverflow > 0) throw new Error(`the filtered view is ${phoneOverflow} px wider than a phone`);
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.click("#f-clear");
  await page.waitForFunction(() => document.getElementById("totals").dataset.filters === "" && !location.search.includes("campaign="), null, { timeout: 30000 });

  // A range in the URL: last 7 days, the totals those of the API for the same range,
  // and the view survives a reload.
  const firstFrom = await page.getAttribute("#totals", "data-from");
  await page.selectOption("#range", "7d");
  await page.waitForFunction((f) => document.getElementById("totals").dataset.from !== f && document.getElementById("totals").dataset.range === "7d" && location.search.includes("range=7d"), firstFrom, { timeout: 30000 });
  const shown = await page.evaluate(() => ({ ...document.getElementById("totals").dataset, search: location.search }));
  const asked = await (await fetch(`${apiUrl}/api/aggregates?bucket=none&from=${shown.from}&to=${shown.to}`)).json();
  const apiCalls = String(asked.rows[0]?.calls ?? 0);
  if (shown.calls !== apiCalls || Number(apiCalls) < 2) throw new Error(`7 days: the page shows ${shown.calls} calls, the API ${apiCalls}`);
  if (!shown.search.includes("zone=America%2FChicago")) throw new Error("the zone is not in the URL: " + shown.search);
  await page.goto(apiUrl + "/" + shown.search);
  await page.waitForFunction(() => document.getElementById("totals").dataset.range === "7d", null, { timeout: 30000 });
  const reloaded = await page.evaluate(() => ({ range: document.getElementById("range").value, label: document.querySelector(".range-name").textContent, calls: document.getElementById("totals").dataset.calls }));
  if (reloaded.range !== "7d" || reloaded.label !== "last 7 days" || reloaded.calls !== apiCalls) throw new Error("the reloaded view differs: " + JSON.stringify(reloaded));
  // Yesterday is cut at midnight in the chosen zone, whatever its offset that day.
  const midnightIn = (zone) => (at) => at !== undefined &&
    new Intl.DateTimeFormat("en-US", { timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).format(new Date(at)) === "00:00:00";
  const cutAtMidnight = async (zone) => {
    const { from, to } = await page.evaluate(() => ({ ...document.getElementById("totals").dataset }));
    if (!midnightIn(zone)(from) || !midnightIn(zone)(to) || Date.parse(to) - Date.parse(from) < 23 * 3600000) {
      throw new Error(`yesterday in ${zone} is ${from} to ${to}`);
    }
  };
  await page.selectOption("#range", "yesterday");
  await page.waitForFunction(() => location.search.includes("range=yesterday") && document.getElementById("totals").dataset.range === "yesterday", null, { timeout: 30000 });
  await cutAtMidnight("America/Chicago");
  const chicagoTo = await page.getAttribute("#totals", "data-to");
  await page.fill("#zone", "Asia/Tokyo");
  await page.dispatchEvent("#zone", "change");
  await page.waitForFunction(() => location.search.includes("zone=Asia%2FTokyo") && document.getElementById("totals").dataset.zone === "Asia/Tokyo", null, { timeout: 30000 });
  if ((await page.getAttribute("#totals", "data-to")) === chicagoTo) throw new Error("the range did not move with the zone");
  await cutAtMidnight("Asia/Tokyo");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-range.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-range-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1400, height: 900 });

  // Dead letters you can act on. Two records whose start is in a form the mapping
  // does not read ("02.12.2026 09h15", Los Angeles time) are refused; their group
  // opens with the payloads and field errors; the preview says they are still
  // refused; the mapping is fixed (an explicit format), the preview now maps them,
  // and the replay button stores them, each once (counted by partner id through
  // /api/calls, not by the page's own numbers).
  const laParts = (at) => Object.fromEntries(new Intl.DateTimeFormat("en-GB", { timeZone: "America/Los_Angeles", hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }).formatToParts(at).map((p) => [p.type, p.value]));
  const dotted = (at) => { const p = laParts(at); return `${p.day}.${p.month}.${p.year} ${p.hour}h${p.minute}`; };
  const badIds = ["browser_dl1", "browser_dl2"];
  for (const [i, id] of badIds.entries()) {
    await post({ id, caller: { number: "3125550888" }, started_at: dotted(new Date(Date.now() - (3 - i) * 3600 * 1000)), duration: "1:30", payout: "$7.00" });
  }
  const group = '#dead tr[data-client="arroyo"]';
  await page.waitForFunction((sel) => [...document.querySelectorAll(sel)].some((tr) => tr.textContent.includes("started_at") && +tr.dataset.letters >= 2), group, { timeout: 60000 });
  const groupRow = await page.evaluateHandle((sel) => [...document.querySelectorAll(sel)].find((tr) => tr.textContent.includes("started_at")), group);
  await groupRow.asElement().click();
  await page.waitForFunction(() => !document.getElementById("dead-letters").hidden && document.querySelectorAll("#dead-list .letter").length >= 2, null, { timeout: 30000 });
  const listed = await page.textContent("#dead-list");
  if (!badIds.every((id) => listed.includes(id)) || !listed.includes("started_at")) throw new Error("the group's letters do not show the payloads and the field error: " + listed.slice(0, 400));
  const firstPreview = "#dead-list .letter:first-child button";
  await page.click(firstPreview);
  await page.waitForSelector('#dead-list .letter:first-child .preview[data-outcome="refused"]', { timeout: 15000 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-dead.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-dead-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1400, height: 900 });

  const samples = JSON.parse(readFileSync(new URL("../../deploy/integrations/samples.json", import.meta.url)));
  const listedIntegrations = await (await fetch(apiUrl + "/api/integrations")).json();
  const current = listedIntegrations.integrations.find((e) => e.integration.client_id === "arroyo").integration.version;
  const fixed = samples.find((i) => i.client_id === "arroyo");
  fixed.version = current + 1;
  fixed.mapping.fields.started_at.format = "%d.%m.%Y %Hh%M";
  const saved = await fetch(apiUrl + "/api/integrations", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(fixed) });
  if (!saved.ok) throw new Error("fixing the mapping answered " + saved.status + ": " + (await saved.text()));
  await page.click(firstPreview);
  await page.waitForSelector('#dead-list .letter:first-child .preview[data-outcome="maps"]', { timeout: 15000 });
  const replayButton = await page.evaluateHandle((sel) => [...document.querySelectorAll(sel)].find((tr) => tr.textContent.includes("started_at")).querySelector("button[data-replay]"), group);
  await replayButton.asElement().click();
  await page.waitForFunction(() => document.getElementById("replay-status").dataset.state === "done", null, { timeout: 60000 })
    .catch(async () => { throw new Error("the replay did not finish: " + (await page.textContent("#replay-status"))); });
  const replayLine = await page.textContent("#replay-status");
  if (!/[1-9]\d* records replayed/.test(replayLine)) throw new Error("the replay's progress: " + replayLine);
  await page.waitForFunction((sel) => { const tr = [...document.querySelectorAll(sel)].find((r) => r.textContent.includes("started_at")); return tr && +tr.dataset.storedSince === +tr.dataset.letters && !tr.querySelector("button[data-replay]"); }, group, { timeout: 60000 })
    .catch(async () => { throw new Error("the group does not count its letters as stored: " + (await page.textContent("#dead"))); });
  const stored = await (await fetch(`${apiUrl}/api/calls?client_id=arroyo&caller=3125550888&limit=50`)).json();
  const storedIds = stored.calls.map((c) => c.external_id).sort();
  if (storedIds.join() !== badIds.join()) throw new Error("after the replay, the calls of the refused records are " + storedIds.join());
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-replayed.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-replayed-phone.png"), fullPage: true });

  // Custom attributes (issue 38): a Ringba-shaped integration keeps recordingUrl,
  // publisherSubId and two `tag:` values. The side-by-side table by publisherSubId
  // is the aggregates API's, a value's button narrows the totals to it (the API's
  // count for that value, and the calls posted with it, counted by partner id),
  // and a call's story lists its attributes with the recording as a link.
  await page.setViewportSize({ width: 1400, height: 900 });
  const ringba = {
    client_id: "ringba_browser", account: "acme-leads", name: "Ringba (browser test)", source: "webhook", version: 1,
    timezone: "UTC", currency: "USD", default_region: "US", auth: { scheme: "none" },
    mapping: {
      fields: { external_id: { path: "inboundCallId" }, caller: { path: "inboundPhoneNumber" }, started_at: { path: "callDt" }, payout: { path: "payoutAmount" } },
      attributes: {
        recordingUrl: { path: "recordingUrl" }, publisherSubId: { path: "publisherSubId" },
        "tag:User:sub5": { path: '["tag:User:sub5"]' }, "tag:User:gclid": { path: '["tag:User:gclid"]' },
      },
    },
  };
  const created = await fetch(apiUrl + "/api/integrations", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(ringba) });
  if (!created.ok) throw new Error("creating the Ringba integration answered " + created.status + ": " + (await created.text()));
  const ringbaCalls = [["RGB-1", "pub-7", "fb"], ["RGB-2", "pub-7", "tt"], ["RGB-3", "pub-9", "fb"]];
  for (const [i, [id, sub, sub5]] of ringbaCalls.entries()) {
    const record = { inboundCallId: id, inboundPhoneNumber: "+1312555070" + i, callDt: Date.now() - (40 - i) * 60000, payoutAmount: 10,
      recordingUrl: `https://media.example/recordings/${id}.mp3`, publisherSubId: sub, "tag:User:sub5": sub5, "tag:User:gclid": "Cj0K" + id };
    // Ingest learns of the new integration from the integrations topic: retry its 404 a while.
    for (let attempt = 0; ; attempt++) {
      const r = await fetch(ingestUrl + "/api/integrations/webhook/ringba_browser", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(record) });
      if (r.status === 202) break;
      if (attempt > 60) throw new Error(`the Ringba webhook for ${id} answered ${r.status}`);
      await new Promise((done) => setTimeout(done, 500));
    }
  }
  const storedRingba = async () => (await (await fetch(`${apiUrl}/api/calls?client_id=ringba_browser&limit=50`)).json()).calls;
  for (let attempt = 0; (await storedRingba()).length < 3; attempt++) {
    if (attempt > 120) throw new Error("the Ringba calls were not stored: " + JSON.stringify(await storedRingba()));
    await new Promise((done) => setTimeout(done, 500));
  }
  await page.goto(apiUrl + "/?range=24h&side=attr.publisherSubId");
  await page.waitForFunction(() => [...document.getElementById("side-by").options].some((o) => o.value === "attr.tag:User:sub5"), null, { timeout: 30000 })
    .catch(async () => { throw new Error("the attributes are not offered as dimensions: " + (await page.innerHTML("#side-by"))); });
  await sideIs("attr.publisherSubId");
  const attrSide = await page.evaluate(() => ({ ...document.getElementById("side").dataset, rows: [...document.querySelectorAll("#side-rows tr")].map((tr) => ({ value: tr.dataset.value, calls: tr.querySelector('td[data-key="calls"]').textContent })) }));
  const byAttr = await (await fetch(`${apiUrl}/api/aggregates?bucket=none&group_by=attr.publisherSubId&from=${attrSide.from}&to=${attrSide.to}`)).json();
  const attrWant = byAttr.rows.map((r) => ({ value: r["attr.publisherSubId"], calls: String(r.calls) })).sort((a, b) => b.calls - a.calls || a.value.localeCompare(b.value));
  const attrShown = [...attrSide.rows].sort((a, b) => b.calls - a.calls || a.value.localeCompare(b.value));
  if (JSON.stringify(attrShown) !== JSON.stringify(attrWant)) throw new Error(`side by side by publisherSubId: the page shows ${JSON.stringify(attrShown)}, the API ${JSON.stringify(attrWant)}`);
  const pub7 = attrWant.find((r) => r.value === "pub-7");
  if (!pub7 || pub7.calls !== "2" || !attrWant.some((r) => r.value === "pub-9" && r.calls === "1")) throw new Error("by publisherSubId the API counts " + JSON.stringify(attrWant));
  await page.click('#side-rows tr[data-value="pub-7"] button');
  await page.waitForFunction(() => document.getElementById("totals").dataset.filters === "attr=publisherSubId=pub-7" && location.search.includes("attr=publisherSubId%3Dpub-7"), null, { timeout: 30000 });
  if ((await narrowedTo("attr=publisherSubId=pub-7", "attr=publisherSubId%3Dpub-7")) !== 2) throw new Error("pub-7 should count RGB-1 and RGB-2");
  const byPartner = (await (await fetch(`${apiUrl}/api/calls?client_id=ringba_browser&attr=publisherSubId%3Dpub-7&limit=50`)).json()).calls.map((c) => c.external_id).sort();
  if (byPartner.join() !== "RGB-1,RGB-2") throw new Error("the calls with publisherSubId pub-7 are " + byPartner.join());
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-attributes.png"), fullPage: true });
  // The story of RGB-1 (opened by the calls API's id) lists its four attributes.
  const rgb1 = (await storedRingba()).find((c) => c.external_id === "RGB-1");
  await page.evaluate(([id, client]) => openStory(id, client), [rgb1.id, "ringba_browser"]);
  await page.waitForSelector('#story:not([hidden]) #story-attributes:not([hidden]) tr[data-name="recordingUrl"] a', { timeout: 30000 });
  const attrRows = await page.evaluate(() => [...document.querySelectorAll("#story-attributes tbody tr")].map((tr) => tr.dataset.name + "=" + tr.lastElementChild.textContent));
  const wantRows = ["publisherSubId=pub-7", "recordingUrl=https://media.example/recordings/RGB-1.mp3", "tag:User:gclid=Cj0KRGB-1", "tag:User:sub5=fb"];
  if (attrRows.join() !== wantRows.join()) throw new Error("the story's attributes: " + attrRows.join());
  if ((await page.getAttribute('#story-attributes tr[data-name="recordingUrl"] a', "rel")) !== "noopener noreferrer") throw new Error("the recording link carries the page as referrer");
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-attributes-story.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-attributes-phone.png"), fullPage: true });
  const attrOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (attrOverflow > 0) throw new Error(`the story with attributes is ${attrOverflow} px wider than a phone`);

  // The integration's history (issue 36's audit trail): its creation above, by
  // this test's token-less api, with the attributes it defined among the changes.
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.keyboard.press("Escape");
  const historyButton = '#health tr[data-client="ringba_browser"] button.history';
  for (let attempt = 0; ; attempt++) {
    await page.click(historyButton);
    const created = await page.waitForSelector('#history:not([hidden]) #history-rows tr[data-action="integration.created"]', { timeout: 5000 }).catch(() => null);
    if (created) break;
    if (attempt > 12) throw new Error("the history does not show the creation: " + (await page.textContent("#history")));
  }
  await page.click('#history-rows tr[data-action="integration.created"] summary');
  const historyText = await page.textContent("#history");
  if (!historyText.includes("mapping.attributes.publisherSubId.path") || !historyText.includes("open (no tokens configured)")) throw new Error("the history row: " + historyText.slice(0, 600));
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-history.png"), fullPage: true });
  if (errors.length) throw new Error("errors on the page: " + errors.join("; "));
  console.log(`ok: browser_1 (${status}) appeared in the live feed; calls in 24 h went ${before} -> ${before + 1}; browser_2's story names ${firstId}; screenshots ${screenshot} and -story, -story-phone`);
} finally {
  await browser.close();
}

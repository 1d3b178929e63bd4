//! The fault matrix's load generator and checker (`tests/chaos/fault_matrix.sh`).
//!
//! `fault_load load DIR` sends distinct calls to the arroyo webhook until DIR/stop
//! exists, as a partner would: every request is retried (same `Idempotency-Key`)
//! until it is acknowledged. A third of the calls get a late payout, sent after the
//! call was acknowledged; every tenth of those also moves the call's start by two
//! hours (a correction). Each acknowledged request is appended to DIR/acked.log,
//! the generator's own record of what we promised to keep. Two SSE clients follow
//! `/api/events` and, whenever their stream breaks (the api or the broker killed),
//! reconnect with the last event id they saw; each logs what it received to
//! DIR/sse-N.log.
//!
//! `fault_load check DIR` waits for the pipeline to settle, then compares with
//! queries that can fail: every acknowledged call stored (by partner id, from
//! acked.log), none twice (by partner id and by natural key), the stored payouts
//! equal to what acked.log says they must be, `count()` and `sum(payout)` equal
//! across `calls FINAL`, `calls_by_time FINAL`, `calls_hourly` and
//! `calls_hourly_dims` (the last two through `/api/aggregates`), and every SSE
//! client's events each call version exactly once. It prints the figures and exits
//! non-zero when one is wrong.
//!
//! Settings (environment): CM_INGEST_URL, CM_API_URL (either may list several
//! instances, comma-separated: senders take the ingests in turn, the two SSE
//! clients the apis, the check the first api), CM_CLICKHOUSE_URL,
//! CM_CLICKHOUSE_USER/PASSWORD (the reader), CM_TOKEN (an admin api token),
//! CM_LOAD_CONCURRENCY (default 4), CM_LOAD_RATE (new calls per second, default
//! 150: what a debug-build processor on a shared 2-core machine keeps up with while
//! parts are killed around it, so the check measures faults, not a backlog).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, TimeZone, Utc};
use integration_tests::sse::SseReader;

/// How long the check waits for the rollups to agree with the calls: as the settle,
/// time for a stalled rollup consumer to join again twice.
const ROLLUP_WAIT: Duration = Duration::from_secs(150);

/// Calls start at this instant plus their number in seconds (spread over hours).
fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
}

struct Call {
    n: u64,
}

impl Call {
    fn id(&self) -> String {
        format!("fm_{}", self.n)
    }
    fn started(&self) -> DateTime<Utc> {
        base() + chrono::Duration::seconds(self.n as i64 * 7)
    }
    /// Cents.
    fn payout(&self) -> u64 {
        100 + (self.n % 7) * 25
    }
    fn late_payout(&self) -> u64 {
        1000 + (self.n % 5) * 50
    }
    fn has_late(&self) -> bool {
        self.n.is_multiple_of(3)
    }
    fn moves(&self) -> bool {
        self.n.is_multiple_of(30)
    }
    /// A distinct caller per call, so the natural key is distinct too.
    fn caller(&self) -> String {
        format!("+1415{:07}", 2_000_000 + self.n % 7_000_000)
    }
    fn record(&self) -> String {
        format!(
            r#"{{"call": {{"id": "{}", "caller": {{"number": "{}"}}, "tracking_number": "8885550199", "started_at": "{}", "duration": "2:00", "payout": "${}.{:02}", "campaign": {{"name": "Fault {}"}}}}}}"#,
            self.id(),
            self.caller(),
            self.started().to_rfc3339(),
            self.payout() / 100,
            self.payout() % 100,
            self.n % 4
        )
    }
    fn late_record(&self) -> String {
        let moved = if self.moves() {
            format!(
                r#", "started_at": "{}""#,
                (self.started() + chrono::Duration::hours(2)).to_rfc3339()
            )
        } else {
            String::new()
        };
        format!(
            r#"{{"call": {{"id": "{}", "payout": "${}.{:02}"{moved}}}}}"#,
            self.id(),
            self.late_payout() / 100,
            self.late_payout() % 100
        )
    }
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        bail!("usage: fault_load load|check DIR");
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    match mode.as_str() {
        "load" => load(&dir).await,
        "check" => check(&dir).await,
        other => bail!("unknown mode {other}"),
    }
}

/// Appends lines to a log file, flushed per line (the generator may be killed).
#[derive(Clone)]
struct Log(Arc<Mutex<std::fs::File>>);

impl Log {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self(Arc::new(Mutex::new(file))))
    }
    fn line(&self, text: &str) {
        let mut file = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(file, "{text}");
        let _ = file.flush();
    }
}

async fn load(dir: &Path) -> anyhow::Result<()> {
    let ingests = instances("CM_INGEST_URL")?;
    let apis = instances("CM_API_URL")?;
    let token = std::env::var("CM_TOKEN").unwrap_or_default();
    let concurrency: u64 = std::env::var("CM_LOAD_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    let rate: f64 = std::env::var("CM_LOAD_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(150.0);
    // Each sender sends five new calls per tick.
    let tick = Duration::from_secs_f64(5.0 * concurrency as f64 / rate.max(1.0));
    let acked = Log::create(&dir.join("acked.log"))?;
    let stop = dir.join("stop");
    let next = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let mut tasks = Vec::new();
    for client in 0..2 {
        let (api, token, log) = (
            apis[client % apis.len()].clone(),
            token.clone(),
            Log::create(&dir.join(format!("sse-{client}.log")))?,
        );
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            follow(&api, &token, &log, &stop).await
        }));
    }
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..concurrency as usize {
        let (http, url, acked, next, stop) = (
            http.clone(),
            format!(
                "{}/api/integrations/webhook/arroyo",
                ingests[sender % ingests.len()]
            ),
            acked.clone(),
            next.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut late: Vec<Call> = Vec::new();
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.exists() {
                ticks.tick().await;
                // Five new calls per request, and the late payouts of earlier ones.
                let calls: Vec<Call> = (0..5)
                    .map(|_| Call {
                        n: next.fetch_add(1, Ordering::Relaxed),
                    })
                    .collect();
                let body: Vec<String> = calls.iter().map(Call::record).collect();
                let key = format!("calls-{}", calls[0].n);
                if !deliver(&http, &url, &key, body.join("\n"), &stop).await {
                    break;
                }
                for call in &calls {
                    acked.line(&format!("call {} {}", call.id(), call.payout()));
                }
                late.extend(calls.into_iter().filter(Call::has_late));
                if late.len() >= 5 {
                    let batch: Vec<Call> = std::mem::take(&mut late);
                    let body: Vec<String> = batch.iter().map(Call::late_record).collect();
                    let key = format!("late-{}", batch[0].n);
                    if !deliver(&http, &url, &key, body.join("\n"), &stop).await {
                        break;
                    }
                    for call in &batch {
                        acked.line(&format!(
                            "late {} {} {}",
                            call.id(),
                            call.late_payout(),
                            u8::from(call.moves())
                        ));
                    }
                }
            }
        }));
    }
    for sender in senders {
        let _ = sender.await;
    }
    let sent = next.load(Ordering::Relaxed);
    eprintln!(
        "load: {sent} calls numbered in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // The SSE clients keep following until the checker is done with them.
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// The instances a variable lists, comma-separated (at least one).
fn instances(name: &str) -> anyhow::Result<Vec<String>> {
    let listed: Vec<String> = env(name)?
        .split(',')
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect();
    if listed.is_empty() {
        bail!("{name} lists no URL");
    }
    Ok(listed)
}

/// POSTs until acknowledged (2xx), as a partner retries; `false` if told to stop
/// first. Each attempt carries the same delivery key.
async fn deliver(http: &reqwest::Client, url: &str, key: &str, body: String, stop: &Path) -> bool {
    let mut pause = Duration::from_millis(200);
    loop {
        let sent = http
            .post(url)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", key)
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            if response.status().is_success() {
                return true;
            }
        }
        if stop.exists() && stop.with_extension("hard").exists() {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Follows `/api/events` for arroyo, reconnecting with the last event id after
/// every break, and logs `event external_id version event_id` per event and
/// `reconnect resume_id` per reconnection; stops once DIR/sse-done exists.
async fn follow(api: &str, token: &str, log: &Log, stop: &Path) {
    let done = stop.with_file_name("sse-done");
    let url = format!("{api}/api/events?client_id=arroyo");
    let authorization = format!("Bearer {token}");
    let mut last_id: Option<String> = None;
    while !done.exists() {
        let mut headers = vec![("authorization", authorization.as_str())];
        if let Some(id) = &last_id {
            headers.push(("last-event-id", id.as_str()));
        }
        let Ok(mut reader) = SseReader::try_connect_with(&url, &headers).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        if let Some(id) = &last_id {
            log.line(&format!("reconnect {id}"));
        }
        loop {
            let event = tokio::select! {
                event = reader.next_event() => event,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if done.exists() { return; }
                    continue;
                }
            };
            let Some(event) = event else { break };
            if let Some(id) = event.id {
                last_id = Some(id);
            }
            if event.event.starts_with("call.") {
                let call: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
                // The event id last: a version sent twice can be placed in the topic.
                log.line(&format!(
                    "{} {} {} {}",
                    event.event,
                    call["external_id"].as_str().unwrap_or("?"),
                    call["version"].as_u64().unwrap_or(0),
                    last_id.as_deref().unwrap_or("-")
                ));
            } else {
                log.line(&format!("other {}", event.event));
            }
        }
    }
}

/// Per acknowledged call (partner id): its payout in cents, and whether it moved.
type Expected = BTreeMap<String, (u64, bool)>;

/// What acked.log says each call must be, and how many records it acknowledged.
fn expected(dir: &Path) -> anyhow::Result<(Expected, u64)> {
    let text = std::fs::read_to_string(dir.join("acked.log"))?;
    let mut calls = BTreeMap::new();
    let mut requests = 0;
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["call", id, payout] => {
                requests += 1;
                calls
                    .entry((*id).to_owned())
                    .or_insert((payout.parse()?, false));
            }
            ["late", id, payout, moved] => {
                requests += 1;
                calls.insert((*id).to_owned(), (payout.parse()?, *moved == "1"));
            }
            _ => {}
        }
    }
    Ok((calls, requests))
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Stored {
    external_id: String,
    payout: String,
    started: i64,
}

async fn check(dir: &Path) -> anyhow::Result<()> {
    let client = clickhouse::Client::default()
        .with_validation(false)
        .with_url(env("CM_CLICKHOUSE_URL")?)
        .with_user(env("CM_CLICKHOUSE_USER")?)
        .with_password(env("CM_CLICKHOUSE_PASSWORD")?)
        .with_database(std::env::var("CM_DATABASE").unwrap_or_else(|_| "callmatrix".into()));
    let api = instances("CM_API_URL")?.swap_remove(0);
    let token = std::env::var("CM_TOKEN").unwrap_or_default();
    let (want, acked_lines) = expected(dir)?;
    let want_payout: u64 = want.values().map(|(p, _)| p).sum();

    // Settle: the stored calls match the acknowledged ones, or stop changing for
    // 150 s: long enough for a processor left without partitions to notice (30 s,
    // `runtime::kafka::STALLED_AFTER`) and join again (11 s and a rebalance), twice.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = (u64::MAX, String::new());
    let mut stable_since = Instant::now();
    loop {
        let now: (u64, String) = client
            .query("SELECT count(), toString(assumeNotNull(sum(payout))) FROM calls FINAL WHERE client_id = 'arroyo' AND startsWith(external_id, 'fm_')")
            .fetch_one()
            .await
            .unwrap_or((0, String::new()));
        let cents = (now.1.parse::<f64>().unwrap_or(0.0) * 100.0).round() as u64;
        if now.0 == want.len() as u64 && cents == want_payout {
            break;
        }
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() > Duration::from_secs(150) || Instant::now() > deadline {
            eprintln!("check: stopped waiting for the pipeline to settle");
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let stored: Vec<Stored> = client
        .query("SELECT external_id, toString(assumeNotNull(payout)), toInt64(toUnixTimestamp(started_at)) FROM calls FINAL WHERE client_id = 'arroyo' AND startsWith(external_id, 'fm_')")
        .fetch_all()
        .await?;
    let mut by_id: HashMap<&str, u32> = HashMap::new();
    for row in &stored {
        *by_id.entry(row.external_id.as_str()).or_default() += 1;
    }
    let lost: Vec<&String> = want
        .keys()
        .filter(|id| !by_id.contains_key(id.as_str()))
        .collect();
    let doubled_by_id = by_id.values().filter(|n| **n > 1).count();
    let doubled_by_natural_key: u64 = client
        .query("SELECT count() FROM (SELECT caller, called, started_at, count() AS n FROM calls FINAL WHERE client_id = 'arroyo' AND startsWith(external_id, 'fm_') GROUP BY caller, called, started_at HAVING n > 1)")
        .fetch_one()
        .await?;
    let mut wrong_payout = 0;
    let mut wrong_start = 0;
    for row in &stored {
        if let Some((cents, moved)) = want.get(&row.external_id) {
            let got = (row.payout.parse::<f64>().unwrap_or(-1.0) * 100.0).round() as i64;
            if got != *cents as i64 {
                wrong_payout += 1;
            }
            let n: i64 = row
                .external_id
                .trim_start_matches("fm_")
                .parse()
                .unwrap_or(-1);
            let start = base().timestamp() + n * 7 + if *moved { 7200 } else { 0 };
            if row.started != start {
                wrong_start += 1;
            }
        }
    }

    let dead_letters: u64 = client
        .query("SELECT count() FROM dead_letters FINAL WHERE client_id = 'arroyo'")
        .fetch_one()
        .await?;

    // The same count and sum from the four tables.
    let calls: (u64, String) = client
        .query("SELECT count(), toString(assumeNotNull(sum(payout))) FROM calls FINAL WHERE client_id = 'arroyo'")
        .fetch_one()
        .await?;
    let by_time: (u64, String) = client
        .query("SELECT count(), toString(assumeNotNull(sum(payout))) FROM calls_by_time FINAL WHERE client_id = 'arroyo' AND deleted = 0")
        .fetch_one()
        .await?;
    // The whole account (only arroyo's calls are in this stack) from `calls_hourly`,
    // the client from `calls_hourly_dims`, both in whole hours.
    let range = "from=2026-11-24T00:00:00Z&to=2026-12-31T00:00:00Z&bucket=none";
    let http = reqwest::Client::new();
    let aggregate = |query: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let answer: serde_json::Value = http
                .get(query)
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            let rows = answer["rows"].as_array().cloned().unwrap_or_default();
            let count: u64 = rows.iter().map(|r| r["calls"].as_u64().unwrap_or(0)).sum();
            let cents: u64 = rows
                .iter()
                .map(|r| {
                    (r["payout"]
                        .as_str()
                        .unwrap_or("0")
                        .parse::<f64>()
                        .unwrap_or(0.0)
                        * 100.0)
                        .round() as u64
                })
                .sum();
            anyhow::Ok((
                count,
                cents,
                answer["table"].as_str().unwrap_or("?").to_owned(),
            ))
        }
    };
    let cents = |text: &str| (text.parse::<f64>().unwrap_or(0.0) * 100.0).round() as u64;
    // The rollups follow the calls through the rollup worker, which may still be
    // working through the hours marked while ClickHouse was down, or whose group
    // consumer is joining again after a stall (as the processor's, above): wait for
    // them to agree with the calls, for at most ROLLUP_WAIT, and say how long it took.
    let rollups_waited = Instant::now();
    let (hourly, dims) = loop {
        let hourly = aggregate(format!("{api}/api/aggregates?{range}&account=acme-leads")).await?;
        let dims = aggregate(format!("{api}/api/aggregates?{range}&client_id=arroyo")).await?;
        let caught_up = [&hourly, &dims]
            .iter()
            .all(|(count, sum, _)| *count == calls.0 && *sum == cents(&calls.1));
        if caught_up || rollups_waited.elapsed() > ROLLUP_WAIT {
            break (hourly, dims);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let rollups_waited = rollups_waited.elapsed();

    // SSE: each client got each call version once, and every call.
    let mut sse = Vec::new();
    for n in 0..2 {
        let text = std::fs::read_to_string(dir.join(format!("sse-{n}.log"))).unwrap_or_default();
        let mut versions: HashMap<(String, String), u32> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut reconnects = 0;
        for line in text.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["reconnect", ..] => reconnects += 1,
                [kind, id, version, ..] if kind.starts_with("call.") && id.starts_with("fm_") => {
                    *versions
                        .entry(((*id).to_owned(), (*version).to_owned()))
                        .or_default() += 1;
                    seen.insert((*id).to_owned());
                }
                _ => {}
            }
        }
        let twice = versions.values().filter(|n| **n > 1).count();
        let missing = want.keys().filter(|id| !seen.contains(*id)).count();
        sse.push((reconnects, versions.len(), twice, missing));
    }

    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| acknowledged records (acked.log: calls and late payouts) | {acked_lines} |");
    println!("| acknowledged calls | {} |", want.len());
    println!("| stored (calls FINAL, by partner id) | {} |", by_id.len());
    println!("| lost | {} |", lost.len());
    println!("| doubled by partner id | {doubled_by_id} |");
    println!("| doubled by natural key | {doubled_by_natural_key} |");
    println!("| stored payout differing from acked.log | {wrong_payout} |");
    println!("| stored start differing from acked.log | {wrong_start} |");
    println!("| dead letters | {dead_letters} |");
    println!(
        "| expected sum(payout) from acked.log | {:.2} |",
        want_payout as f64 / 100.0
    );
    println!("| calls FINAL count / sum | {} / {} |", calls.0, calls.1);
    println!(
        "| calls_by_time FINAL count / sum | {} / {} |",
        by_time.0, by_time.1
    );
    println!(
        "| {} (api) count / sum | {} / {:.2} |",
        hourly.2,
        hourly.0,
        hourly.1 as f64 / 100.0
    );
    println!(
        "| {} (api, client) count / sum | {} / {:.2} |",
        dims.2,
        dims.0,
        dims.1 as f64 / 100.0
    );
    println!(
        "| rollups caught up with the calls after | {:.1} s (at most {}) |",
        rollups_waited.as_secs_f64(),
        ROLLUP_WAIT.as_secs()
    );
    for (n, (reconnects, versions, twice, missing)) in sse.iter().enumerate() {
        println!("| SSE client {n}: reconnects, call versions, twice, calls missing | {reconnects}, {versions}, {twice}, {missing} |");
    }
    let mut failures = Vec::new();
    if !lost.is_empty() {
        failures.push(format!(
            "{} acknowledged calls lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }
    if doubled_by_id > 0 || doubled_by_natural_key > 0 {
        failures.push("calls doubled".to_owned());
    }
    if wrong_payout > 0 || wrong_start > 0 {
        failures.push(format!(
            "{wrong_payout} payouts and {wrong_start} starts differ from what was acknowledged"
        ));
    }
    let totals = [
        (calls.0, cents(&calls.1)),
        (by_time.0, cents(&by_time.1)),
        (hourly.0, hourly.1),
        (dims.0, dims.1),
    ];
    if (hourly.2.as_str(), dims.2.as_str()) != ("calls_hourly", "calls_hourly_dims") {
        failures.push(format!(
            "the rollups did not answer: {} and {}",
            hourly.2, dims.2
        ));
    }
    if totals.iter().any(|t| *t != totals[0]) {
        failures.push(format!("the four tables disagree: {totals:?}"));
    }
    for (n, (_, _, twice, missing)) in sse.iter().enumerate() {
        if *twice > 0 || *missing > 0 {
            failures.push(format!(
                "SSE client {n}: {twice} call versions twice, {missing} calls never seen"
            ));
        }
    }
    if failures.is_empty() {
        println!("\nfault matrix check: passed");
        Ok(())
    } else {
        bail!("fault matrix check failed: {}", failures.join("; "))
    }
}

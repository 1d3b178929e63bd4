//! End-to-end latency under a steady load (benches/load/latency.sh):
//!
//!   latency_probe INGEST_URL API_URL RATE SECONDS
//!
//! Sends RATE distinct calls per second to the arroyo webhook for SECONDS, open loop
//! (a call is sent on schedule whether or not earlier ones were answered), and times
//! each from its 2xx:
//! - to its `call.created` event at an SSE client of the api (every call);
//! - to the api's `/api/calls` returning it, for one call in 100 (started on
//!   2026-11-30, a day no other call uses, so one page read every 100 ms sees every
//!   such call). Reading every call that way would load the api more than the calls
//!   themselves.
//!
//! Every call starts in November 2026, as live traffic starts in the current month:
//! `calls_by_time` is partitioned by month, and a batch holding calls of two months
//! writes a part for each (these calls were in October until 2026-12-03, which added a
//! part to about half the batches).
//!
//! Prints the counts and the p50, p95, p99 and max of both, in ms, and the SSE p99 of
//! each 10 s of the run (by the 2xx), which shows whether the tail is spread over the
//! run or comes in stretches. Times are this process's own clock: the send, the 2xx,
//! the event, the page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use integration_tests::sse::SseReader;

/// One call in this many is also read back through `/api/calls`.
const QUERY_EVERY: u64 = 100;
/// 2026-11-01T00:00:00Z and 2026-11-30T00:00:00Z.
const NOVEMBER: i64 = 1_793_491_200;
const QUERIED_DAY: i64 = 1_795_996_800;

#[derive(Default)]
struct Times {
    acked: HashMap<String, Instant>,
    event: HashMap<String, Instant>,
    listed: HashMap<String, Instant>,
    /// Acknowledged calls that the page reader should find.
    acked_to_list: usize,
    refused: u64,
}

fn body(run: u64, n: u64) -> (String, String) {
    let id = format!("lat_{run}_{n}");
    let started = if n.is_multiple_of(QUERY_EVERY) {
        // 2026-11-30: only these calls.
        chrono::DateTime::from_timestamp(QUERIED_DAY + (n / QUERY_EVERY) as i64, 0)
    } else {
        // From 2026-11-01, one a second, never into the queried day.
        chrono::DateTime::from_timestamp(NOVEMBER + (n % (QUERIED_DAY - NOVEMBER) as u64) as i64, 0)
    }
    .unwrap_or_default()
    .to_rfc3339();
    let body = serde_json::json!({"call": {
        "id": id,
        "caller": {"number": format!("415555{:04}", 1000 + n % 9000), "zip": "94103"},
        "tracking_number": "8885550100",
        "started_at": started,
        "duration": "4:12",
        "payout": "$45.00",
    }})
    .to_string();
    (id, body)
}

fn lock(times: &Mutex<Times>) -> std::sync::MutexGuard<'_, Times> {
    match times.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn percentiles(label: &str, mut ms: Vec<f64>) {
    if ms.is_empty() {
        println!("{label}: no samples");
        return;
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: n {} p50 {:.0} p95 {:.0} p99 {:.0} max {:.0} ms",
        ms.len(),
        at(0.50),
        at(0.95),
        at(0.99),
        ms[ms.len() - 1]
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (ingest, api) = (
        args.get(1).context("INGEST_URL")?,
        args.get(2).context("API_URL")?,
    );
    let rate: u64 = args.get(3).context("RATE")?.parse()?;
    let seconds: u64 = args.get(4).context("SECONDS")?.parse()?;
    let run = std::process::id() as u64;
    let times = Arc::new(Mutex::new(Times::default()));

    // Every call's `call.created`, from the moment before the first call is sent.
    let mut events =
        SseReader::try_connect_with(&format!("{api}/api/events?client_id=arroyo"), &[])
            .await
            .map_err(|e| anyhow::anyhow!("the event stream: {e}"))?;
    let sse_times = times.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next_event().await {
            let at = Instant::now();
            if event.event != "call.created" {
                continue;
            }
            let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
            if let Some(id) = data["external_id"]
                .as_str()
                .filter(|id| id.starts_with("lat_"))
            {
                lock(&sse_times).event.entry(id.to_owned()).or_insert(at);
            }
        }
    });
    // The calls of the queried day, newest first, a page every 100 ms.
    let http = reqwest::Client::new();
    let page = format!(
        "{api}/api/calls?client_id=arroyo&from=2026-11-30T00:00:00Z&to=2026-12-01T00:00:00Z&limit=200"
    );
    let (list_times, list_http) = (times.clone(), http.clone());
    tokio::spawn(async move {
        loop {
            if let Ok(response) = list_http.get(&page).send().await {
                let at = Instant::now();
                if let Ok(answer) = response.json::<serde_json::Value>().await {
                    let mut times = lock(&list_times);
                    for call in answer["calls"].as_array().into_iter().flatten() {
                        if let Some(id) = call["external_id"]
                            .as_str()
                            .filter(|id| id.starts_with(&format!("lat_{run}_")))
                        {
                            times.listed.entry(id.to_owned()).or_insert(at);
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let url = format!("{ingest}/api/integrations/webhook/arroyo");
    let total = rate * seconds;
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (id, body) = body(run, n);
        let (http, url, times) = (http.clone(), url.clone(), times.clone());
        sends.push(tokio::spawn(async move {
            let answer = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let at = Instant::now();
            let mut times = lock(&times);
            match answer {
                Ok(response) if response.status().is_success() => {
                    times.acked.insert(id, at);
                    times.acked_to_list += usize::from(n.is_multiple_of(QUERY_EVERY));
                }
                _ => times.refused += 1,
            }
        }));
    }
    for send in sends {
        send.await?;
    }
    let sent_for = started.elapsed();
    // Everything acknowledged should arrive; give it up to 30 s.
    let waited = Instant::now();
    loop {
        {
            let times = lock(&times);
            if times.event.len() >= times.acked.len() && times.listed.len() >= times.acked_to_list {
                break;
            }
        }
        if waited.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let times = lock(&times);
    let since_ack = |at: &HashMap<String, Instant>| -> Vec<f64> {
        at.iter()
            .filter_map(|(id, seen)| {
                let acked = times.acked.get(id)?;
                Some(seen.saturating_duration_since(*acked).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    let events = since_ack(&times.event);
    let listed = since_ack(&times.listed);
    println!(
        "sent {total} calls in {:.1} s ({:.0}/s asked, {:.0}/s sent); acknowledged {}, refused or failed {}",
        sent_for.as_secs_f64(),
        rate,
        total as f64 / sent_for.as_secs_f64(),
        times.acked.len(),
        times.refused
    );
    println!(
        "events received for {} of {} acknowledged calls; {} of the one-in-{QUERY_EVERY} calls listed",
        events.len(),
        times.acked.len(),
        listed.len()
    );
    percentiles("2xx -> SSE call.created", events);
    percentiles("2xx -> returned by /api/calls", listed);
    let mut by_window: Vec<Vec<f64>> = Vec::new();
    for (id, seen) in &times.event {
        if let Some(acked) = times.acked.get(id) {
            let window = (acked.saturating_duration_since(started).as_secs() / 10) as usize;
            if by_window.len() <= window {
                by_window.resize_with(window + 1, Vec::new);
            }
            by_window[window].push(seen.saturating_duration_since(*acked).as_secs_f64() * 1000.0);
        }
    }
    let p99s: Vec<String> = by_window
        .into_iter()
        .map(|mut ms| {
            ms.sort_by(f64::total_cmp);
            ms.get(((ms.len().max(1) - 1) as f64 * 0.99).round() as usize)
                .map_or("-".to_owned(), |p99| format!("{p99:.0}"))
        })
        .collect();
    println!("2xx -> SSE p99 by 10 s of the run (ms): {}", p99s.join(" "));
    Ok(())
}

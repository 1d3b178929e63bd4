//! Polling in `{until}` windows, and a run cut short by `max_pages`, against the real
//! stack. A local server plays a partner that filters by `updated_since` and
//! `updated_until` and pages one record at a time:
//! - a backfill over twelve days in one-day windows reads every record once, each
//!   request's window follows the last, and the cursor lands on the newest record;
//! - a partner that answers newest first, read with too small a `max_pages`, ends the
//!   run with an error naming `max_pages` (the cursor stays: moving it to the newest
//!   record seen would skip the unread older pages), which the api announces as an
//!   `integration.error` event;
//! - the same for a partner without paging whose answer is as full as its page limit
//!   (`page_limit`): it may have left records out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use integration_tests::fake_http::{query, Canned, FakeHttp};
use integration_tests::sse::SseReader;
use integration_tests::{eventually, final_count, sample_integration, TestEnv};
use serde_json::json;

/// Six calls over three days: (CallId, UpdatedAt).
const CALLS: [(u64, &str); 6] = [
    (7001, "2026-11-17T10:00:00Z"),
    (7002, "2026-11-17T20:00:00Z"),
    (7003, "2026-11-18T10:00:00Z"),
    (7004, "2026-11-18T20:00:00Z"),
    (7005, "2026-11-19T10:00:00Z"),
    (7006, "2026-11-19T20:00:00Z"),
];

fn record(id: u64, updated_at: &str) -> serde_json::Value {
    let at: DateTime<Utc> = updated_at.parse().unwrap();
    json!({
        "CallId": id, "CallerId": format!("41555{:05}", id), "DialedNumber": "18885550123",
        "CallDate": at.format("%m/%d/%Y %I:%M:%S %p").to_string(), "DurationSeconds": 60,
        "Revenue": "10.00", "Currency": "USD", "Zip": "94103", "Status": "Converted",
        "Buyer": null, "UpdatedAt": updated_at
    })
}

fn param(target: &str, name: &str) -> Option<String> {
    query(target).get(name).map(|v| v.replace("%3A", ":"))
}

/// The partner: the calls updated in [since, until) (no `until`: up to now), oldest or
/// newest first, `per_page` per page (`page` from 1).
fn answer(target: &str, newest_first: bool, per_page: usize) -> Canned {
    let Some(since) = param(target, "updated_since").and_then(|s| s.parse::<DateTime<Utc>>().ok())
    else {
        return Canned::status(400);
    };
    let until = param(target, "updated_until").and_then(|s| s.parse::<DateTime<Utc>>().ok());
    let page: usize = param(target, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let mut matching: Vec<_> = CALLS
        .iter()
        .filter(|(_, at)| {
            let at: DateTime<Utc> = at.parse().unwrap();
            at >= since && until.is_none_or(|u| at < u)
        })
        .collect();
    if newest_first {
        matching.reverse();
    }
    let data: Vec<_> = matching
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(id, at)| record(*id, at))
        .collect();
    Canned::ok("application/json", json!({ "data": data }).to_string())
}

async fn poll_status(ingest_url: String, client_id: &str) -> Option<serde_json::Value> {
    let polls: serde_json::Value = reqwest::get(ingest_url).await.ok()?.json().await.ok()?;
    let status = polls["polls"]
        .as_array()?
        .iter()
        .find(|p| p["client_id"] == client_id)?
        .clone();
    status["last_ok"].is_boolean().then_some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_backfills_read_everything_and_max_pages_never_skips() {
    let env = TestEnv::new("polling-windows").await;
    let partner = FakeHttp::start(|target| {
        if target.starts_with("/oldest-first/calls?") {
            answer(target, false, 1)
        } else if target.starts_with("/newest-first/calls?") {
            answer(target, true, 1)
        } else if target.starts_with("/newest-unpaged/calls?") {
            // No paging: the partner answers its 2 newest and says nothing more.
            answer(target, true, 2)
        } else {
            Canned::status(404)
        }
    })
    .await;
    let poll = |path: &str, windowed: bool, max_pages: u32| {
        let mut query = json!({"updated_since": "{since}"});
        if windowed {
            query["updated_until"] = json!("{until}");
        }
        json!({
            "interval_s": 3600,
            "url": format!("{}/{path}/calls", partner.base_url),
            "query": query,
            "records_path": "data",
            "paging": {"type": "page_number", "param": "page"},
            "cursor_field": "UpdatedAt",
            "overlap_s": 0,
            "initial_since": "2026-11-17T00:00:00Z",
            "window_s": if windowed { json!(86400) } else { json!(null) },
            "max_pages": max_pages,
        })
    };
    let windowed = sample_integration("ringpartner", |v| {
        v["poll"] = poll("oldest-first", true, 10);
    });
    let cut_short = sample_integration("ringpartner", |v| {
        v["client_id"] = json!("ringpartner-newest");
        v["poll"] = poll("newest-first", false, 2);
    });
    let unpaged = sample_integration("ringpartner", |v| {
        v["client_id"] = json!("ringpartner-unpaged");
        v["poll"] = poll("newest-unpaged", false, 10);
        v["poll"]["paging"] = json!({"type": "none"});
        v["poll"]["page_limit"] = json!(2);
    });
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "50")])
        .await;
    let api = env.start("api", &[]).await;
    let mut events = SseReader::connect(&api.url("/api/events?client_id=ringpartner-newest")).await;
    cmctl::publish_integrations(&env.kafka, &[windowed, cut_short, unpaged])
        .await
        .unwrap();
    let ingest = env
        .start("ingest", &[("INGEST_KAFKA__INSTANCE_ID", "ingest-0")])
        .await;

    // The windowed backfill: every call once, the cursor on the newest.
    let client = env.client();
    eventually("the 6 partner calls", Duration::from_secs(90), || async {
        (final_count(&client, "ringpartner").await == 6).then_some(())
    })
    .await;
    let status = eventually("the windowed run", Duration::from_secs(30), || async {
        poll_status(ingest.url("/api/polls"), "ringpartner")
            .await
            .filter(|s| s["last_ok"] == true)
    })
    .await;
    assert_eq!(status["cursor"], "2026-11-19T20:00:00Z", "{status}");
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = partner
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /oldest-first/calls?"))
        .filter_map(|r| {
            let target = r.split_whitespace().nth(1)?;
            Some((
                param(target, "updated_since")?.parse().ok()?,
                param(target, "updated_until")?.parse().ok()?,
            ))
        })
        .collect();
    let mut distinct = windows.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 12,
        "a window per day since the 17th: {distinct:?}"
    );
    assert_eq!(
        distinct[0].0,
        "2026-11-17T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    for pair in distinct.windows(2) {
        assert_eq!(
            pair[0].1, pair[1].0,
            "windows follow each other: {distinct:?}"
        );
    }
    assert!(
        distinct
            .iter()
            .all(|(since, until)| (*until - *since).num_seconds() <= 86_400 && since < until),
        "each window at most window_s: {distinct:?}"
    );

    // Poll now: a run starts at once (not in an hour), from the cursor.
    let before = partner.requests().len();
    let response = reqwest::Client::new()
        .post(ingest.url("/api/integrations/ringpartner/poll"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let asked = eventually("the run asked for now", Duration::from_secs(30), || async {
        partner
            .requests()
            .into_iter()
            .skip(before)
            .find(|r| r.starts_with("GET /oldest-first/calls?"))
    })
    .await;
    assert!(
        asked.contains("updated_since=2026-11-19T20%3A00%3A00Z"),
        "from the cursor (overlap 0): {}",
        asked.lines().next().unwrap_or("")
    );
    let unknown = reqwest::Client::new()
        .post(ingest.url("/api/integrations/no-such-partner/poll"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Newest first with max_pages 2: the two newest are sent, then the run fails
    // rather than moving the cursor past the four unread older calls.
    let failed = eventually("the cut-short run", Duration::from_secs(60), || async {
        poll_status(ingest.url("/api/polls"), "ringpartner-newest")
            .await
            .filter(|s| s["last_ok"] == false)
    })
    .await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("max_pages (2)") && error.contains("UpdatedAt"),
        "{failed}"
    );
    assert_ne!(failed["cursor"], "2026-11-19T20:00:00Z", "{failed}");
    let event = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.next_event().await {
                Some(event) if event.event == "integration.error" => return event,
                Some(_) => continue,
                None => panic!("the event stream ended"),
            }
        }
    })
    .await
    .expect("an integration.error event within 30 s");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        (data["client_id"].as_str(), data["stage"].as_str()),
        (Some("ringpartner-newest"), Some("poll")),
        "{data}"
    );
    assert!(
        data["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("max_pages"),
        "{data}"
    );

    // No paging, and a response as full as the partner's page limit: the same
    // rule. Moving the cursor to the newest of the two would skip the other four.
    let full = eventually("the full unpaged run", Duration::from_secs(60), || async {
        poll_status(ingest.url("/api/polls"), "ringpartner-unpaged")
            .await
            .filter(|s| s["last_ok"] == false)
    })
    .await;
    let error = full["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("page_limit (2)"), "{full}");
    assert_ne!(full["cursor"], "2026-11-19T20:00:00Z", "{full}");
}

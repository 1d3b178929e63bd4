//! Aggregates against the real stack: counts, sums and durations by day in the
//! caller's zone and by status; a correction that moves a call to another day moves
//! it in the aggregates too (not counted twice).

use std::time::Duration;

use integration_tests::Service;
use integration_tests::{
    eventually, final_count, fixture, metric_sum, sample_integration, TestEnv,
};
use serde_json::json;

async fn aggregate(url: &str) -> serde_json::Value {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_by_day_and_status_follow_corrections() {
    let env = TestEnv::new("aggregates").await;
    let processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    let client = env.client();
    eventually("the 3 sample calls", Duration::from_secs(60), || async {
        (final_count(&client, "arroyo").await == 3).then_some(())
    })
    .await;
    let url = |query: &str| {
        api.url(&format!(
            "/api/aggregates?client_id=arroyo&from=2026-11-20T00:00:00Z&{query}"
        ))
    };

    // One integration's whole hours come from the per-dimension rollup, which follows
    // the calls by one rollup batch.
    let total = eventually(
        "the rollup to hold the calls",
        Duration::from_secs(60),
        || async {
            let total = aggregate(&url("to=2026-11-22T00:00:00Z&bucket=none")).await;
            (total["rows"][0]["calls"].as_u64() == Some(3)).then_some(total)
        },
    )
    .await;
    assert_eq!(total["table"], "calls_hourly_dims");
    let row = &total["rows"][0];
    assert_eq!(
        (
            row["calls"].as_u64(),
            row["qualified"].as_u64(),
            row["unqualified"].as_u64(),
            row["repeat"].as_u64()
        ),
        (Some(3), Some(1), Some(1), Some(1)),
        "{total}"
    );
    assert_eq!(
        (row["payout"].as_str(), row["total_duration_s"].as_u64()),
        (Some("90.00"), Some(860))
    );

    // Days in Los Angeles: 22:03Z and 22:11Z are the afternoon of the 20th, 14:58Z on
    // the 21st is that morning.
    let by_day = aggregate(&url(
        "to=2026-11-22T00:00:00Z&bucket=day&tz=America/Los_Angeles&group_by=status",
    ))
    .await;
    let rows: Vec<(String, String, u64)> = by_day["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["bucket"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
                r["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("2026-11-20".to_owned(), "qualified".to_owned(), 1),
            ("2026-11-20".to_owned(), "unqualified".to_owned(), 1),
            ("2026-11-21".to_owned(), "repeat".to_owned(), 1),
        ]
    );

    // The partner corrects a start time by a few days: the call moves, once.
    let correction = r#"{"call": {"id": "ar_1a2b3c4d", "started_at": "2026-11-25T09:00:00Z"}}"#;
    ingest
        .post_webhook("arroyo", "application/json", correction.to_owned())
        .await;
    eventually("the call to move", Duration::from_secs(60), || async {
        let moved = aggregate(&url("to=2026-11-22T00:00:00Z&bucket=none")).await;
        (moved["rows"][0]["calls"].as_u64() == Some(2)).then_some(())
    })
    .await;
    // The old position is retired before the moved version is written (a crash in
    // between must not leave it counted twice), so for a moment the call is in
    // neither range: wait for the new one.
    let later = eventually(
        "the call at its new start",
        Duration::from_secs(30),
        || async {
            let later = aggregate(&url("to=2026-11-26T00:00:00Z&bucket=none")).await;
            (later["rows"][0]["calls"].as_u64() >= Some(3)).then_some(later)
        },
    )
    .await;
    assert_eq!(
        later["rows"][0]["calls"].as_u64(),
        Some(3),
        "moved, not doubled: {later}"
    );

    // The hourly rollup answers whole-hour ranges without an integration filter, and
    // agrees with the calls themselves, the moved call included.
    let rolled = |query: &str| {
        api.url(&format!(
            "/api/aggregates?from=2026-11-20T00:00:00Z&{query}"
        ))
    };
    let both = eventually(
        "the rollup to agree with the calls",
        Duration::from_secs(60),
        || async {
            let fast = aggregate(&rolled(
                "to=2026-11-26T00:00:00Z&bucket=day&group_by=status",
            ))
            .await;
            let exact = aggregate(&rolled(
                "to=2026-11-26T00:00:00Z&bucket=day&group_by=status&exact=true",
            ))
            .await;
            (fast["rows"] == exact["rows"]).then_some((fast, exact))
        },
    )
    .await;
    assert_eq!(
        (both.0["table"].as_str(), both.1["table"].as_str()),
        (Some("calls_hourly"), Some("calls_by_time"))
    );
    let days: Vec<&str> = both.0["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(
        days,
        ["2026-11-20", "2026-11-21", "2026-11-25"],
        "{}",
        both.0
    );
    // The per-dimension rollup answers one other dimension (with or without status),
    // and a query narrowed to one value of it (an integration, a campaign, a source);
    // a status filter is answered by any rollup. Each agrees with the calls, and
    // holds the calls the fixture has: 2 of its 3 are Auto Insurance CA, 1 a repeat.
    for (query, table, expected) in [
        (
            "bucket=day&group_by=campaign,status",
            "calls_hourly_dims",
            3,
        ),
        (
            "bucket=month&tz=America/Chicago&group_by=publisher",
            "calls_hourly_dims",
            3,
        ),
        ("bucket=none&group_by=state", "calls_hourly_dims", 3),
        (
            "bucket=day&client_id=arroyo&group_by=status",
            "calls_hourly_dims",
            3,
        ),
        ("bucket=day&group_by=campaign,state", "calls_by_time", 3),
        (
            "bucket=day&campaign=Auto%20Insurance%20CA&group_by=status",
            "calls_hourly_dims",
            2,
        ),
        ("bucket=none&status=repeat", "calls_hourly", 1),
        (
            "bucket=none&source=webhook&status=qualified&group_by=source",
            "calls_hourly_dims",
            1,
        ),
        (
            "bucket=none&campaign=Medicare%20IL&group_by=state",
            "calls_by_time",
            1,
        ),
        ("bucket=none&source=csv", "calls_hourly_dims", 0),
    ] {
        let query = format!("to=2026-11-26T00:00:00Z&{query}");
        let (fast, exact) = eventually(
            "the dimension rollup to agree with the calls",
            Duration::from_secs(60),
            || async {
                let fast = aggregate(&rolled(&query)).await;
                let exact = aggregate(&rolled(&format!("{query}&exact=true"))).await;
                (fast["rows"] == exact["rows"]).then_some((fast, exact))
            },
        )
        .await;
        assert_eq!(fast["table"], table, "{query}");
        assert_eq!(exact["table"], "calls_by_time", "{query}");
        let calls: u64 = fast["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["calls"].as_u64().unwrap())
            .sum();
        assert_eq!(
            calls, expected,
            "every call once, the moved one where it is now ({query}): {fast}"
        );
    }
    let by_campaign = aggregate(&rolled(
        "to=2026-11-26T00:00:00Z&bucket=none&group_by=campaign",
    ))
    .await;
    let campaigns: Vec<(&str, u64)> = by_campaign["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["campaign"].as_str().unwrap(),
                r["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        campaigns,
        [("Auto Insurance CA", 2), ("Medicare IL", 1)],
        "{by_campaign}"
    );

    // A range inside hours at its ends (as "the last 30 days" up to now is): the
    // rollup answers its whole hours, the calls its partial ones, and the sum is
    // what the calls alone answer. Within one hour, only the calls can.
    for (query, table) in [
        ("to=2026-11-26T00:30:00Z&bucket=none", "calls_hourly"),
        (
            "to=2026-11-25T09:30:00Z&bucket=day&tz=America/Chicago&group_by=status",
            "calls_hourly",
        ),
        (
            "to=2026-11-25T09:30:00Z&bucket=hour&group_by=campaign",
            "calls_hourly_dims",
        ),
    ] {
        // From inside an hour too: 2026-11-20T22:10Z cuts the first call's hour.
        for from in ["2026-11-20T00:00:00Z", "2026-11-20T22:10:00Z"] {
            let url = |extra: &str| api.url(&format!("/api/aggregates?from={from}&{query}{extra}"));
            let (split, exact) = eventually(
                "the split answer to agree with the calls",
                Duration::from_secs(60),
                || async {
                    let split = aggregate(&url("")).await;
                    let exact = aggregate(&url("&exact=true")).await;
                    (split["rows"] == exact["rows"]).then_some((split, exact))
                },
            )
            .await;
            assert_eq!(
                (split["table"].as_str(), split["edges_from"].as_str()),
                (Some(table), Some("calls_by_time")),
                "{query} from {from}: {split}"
            );
            assert_eq!(exact["table"], "calls_by_time");
            let calls: u64 = split["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["calls"].as_u64().unwrap())
                .sum();
            // From 22:10Z the call of 22:03Z is out; the moved call (09:00Z on the
            // 25th) is in every one of these ranges.
            let expected = if from.ends_with("22:10:00Z") { 2 } else { 3 };
            assert_eq!(calls, expected, "{query} from {from}: {split}");
        }
    }
    let within = aggregate(&rolled("to=2026-11-20T00:30:00Z&bucket=none")).await;
    assert_eq!(within["table"], "calls_by_time", "{within}");
    assert!(within.get("edges_from").is_none(), "{within}");

    // Bad queries are 400s naming the parameter.
    for (query, parameter) in [
        ("group_by=colour", "group_by"),
        ("group_by=campaign,state,source,publisher", "group_by"),
        ("tz=Mars/Olympus_Mons", "tz"),
        ("bucket=fortnight", "bucket"),
        ("to=2026-11-19T00:00:00Z", "from"),
        ("to=yesterday", "to"),
        ("client_id=no%20spaces%20here", "client_id"),
        ("source=fax", "source"),
        ("status=maybe", "status"),
    ] {
        let response = reqwest::get(rolled(query)).await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            problem["error"]["parameter"], parameter,
            "{query}: {problem}"
        );
    }
    let unknown = reqwest::get(url("colour=red")).await.unwrap();
    assert_eq!(unknown.status(), 400, "unknown parameters are refused");

    // Each binary counts what it did on its /metrics page.
    assert!(metric_sum(&ingest, "ingest_records_total", None).await >= 4.0);
    assert!(metric_sum(&processor, "processor_records_total", None).await >= 4.0);
    assert!(metric_sum(&processor, "processor_rollup_hours_total", None).await >= 1.0);
    for table in ["calls_hourly", "calls_hourly_dims", "calls_by_time"] {
        let label = format!("table=\"{table}\"");
        assert!(
            metric_sum(&api, "api_aggregate_seconds_count", Some(&label)).await >= 1.0,
            "api_aggregate_seconds_count{{{label}}}"
        );
    }
}

/// Buyers and CallMatrix links through the whole pipeline: an integration that maps
/// a buyer and a routed CallMatrix id, three calls; grouped and narrowed by buyer,
/// the rollup answers (and agrees with the calls), with the links counted per buyer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_and_callmatrix_links_are_aggregated() {
    let env = TestEnv::new("buyers").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let hook = sample_integration("arroyo", |v| {
        v["client_id"] = json!("buyer-hook");
        v["mapping"]["fields"]["buyer"] = json!({"path": "call.buyer"});
    });
    let created = reqwest::Client::new()
        .post(api.url("/api/integrations"))
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    ingest.wait_for_integration("buyer-hook", 1).await;
    // Partner ids and what each one is: buyer, and whether CallMatrix routed it.
    let calls = [
        ("b_1", "3125550101", "10:05", "Acme Insurance", Some("cm_1")),
        ("b_2", "3125550102", "10:35", "Acme Insurance", None),
        ("b_3", "3125550103", "11:15", "Zen Health", Some("cm_3")),
    ];
    let body: Vec<String> = calls
        .iter()
        .map(|(id, caller, at, buyer, routed)| {
            json!({"call": {"id": id, "caller": {"number": caller}, "started_at": format!("2026-11-20T{at}:00Z"),
                "payout": "$10.00", "buyer": buyer, "routed_call_id": routed}})
            .to_string()
        })
        .collect();
    let (status, _) = ingest
        .post_webhook("buyer-hook", "application/x-ndjson", body.join("\n"))
        .await;
    assert_eq!(status, 202);
    let client = env.client();
    eventually("the 3 calls", Duration::from_secs(60), || async {
        (final_count(&client, "buyer-hook").await == 3).then_some(())
    })
    .await;
    let range = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";
    let by_buyer = agreed(&api, range, "bucket=none&group_by=buyer").await;
    assert_eq!(by_buyer["table"], "calls_hourly_dims");
    let rows: Vec<(&str, u64, u64)> = by_buyer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["buyer"].as_str().unwrap(),
                r["calls"].as_u64().unwrap(),
                r["linked_to_callmatrix"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("Acme Insurance", 2, 1), ("Zen Health", 1, 1)],
        "{by_buyer}"
    );
    let zen = agreed(&api, range, "bucket=hour&buyer=Zen%20Health").await;
    assert_eq!(zen["table"], "calls_hourly_dims");
    assert_eq!(zen["filters"]["buyer"], "Zen Health");
    let hours: Vec<(&str, u64)> = zen["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["bucket"].as_str().unwrap(), r["calls"].as_u64().unwrap()))
        .collect();
    assert_eq!(hours, [("2026-11-20 11:00:00", 1)], "{zen}");
    let total = agreed(&api, range, "bucket=none").await;
    assert_eq!(total["table"], "calls_hourly");
    assert_eq!(total["rows"][0]["linked_to_callmatrix"], 2, "{total}");
}

/// The rollup's answer to `query` once it agrees with the calls' (`exact=true`) and
/// has rows.
async fn agreed(api: &Service, range: &str, query: &str) -> serde_json::Value {
    eventually(
        "the rollup to agree with the calls",
        Duration::from_secs(60),
        || async {
            let fast = aggregate(&api.url(&format!("/api/aggregates?{range}&{query}"))).await;
            let exact =
                aggregate(&api.url(&format!("/api/aggregates?{range}&{query}&exact=true"))).await;
            (fast["rows"] == exact["rows"]
                && fast["rows"].as_array().is_some_and(|r| !r.is_empty()))
            .then_some(fast)
        },
    )
    .await
}

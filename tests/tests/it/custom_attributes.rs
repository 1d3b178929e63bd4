//! Issue 38's custom attributes on the real stack: a Ringba-shaped feed keeps
//! `recordingUrl`, `publisherSubId` and `tag:` values, typed, with the call; a later
//! record of a call adds one; a value that is not its type is a warning on a call
//! still stored. Then every way out: the calls API (answer and `attr` filter),
//! aggregates grouped by and narrowed to an attribute, the CSV export, and the
//! analysts' view in ClickHouse. Counted by the partner's call ids.

use std::time::Duration;

use integration_tests::{eventually, TestEnv};
use serde_json::{json, Value};

fn ringba_integration() -> schemas::Integration {
    serde_json::from_value(json!({
        "client_id": "ringba-attrs", "account": "acme-leads", "name": "Ringba (attributes)",
        "source": "webhook", "version": 1, "timezone": "UTC", "auth": {"scheme": "none"},
        "mapping": {
            "fields": {
                "external_id": {"path": "inboundCallId"},
                "caller": {"path": "inboundPhoneNumber"},
                "started_at": {"path": "callDt"},
                "payout": {"path": "payoutAmount"}
            },
            "attributes": {
                "recordingUrl": {"path": "recordingUrl"},
                "publisherSubId": {"path": "publisherSubId"},
                "tag:User:sub5": {"path": "[\"tag:User:sub5\"]"},
                "share": {"path": "share", "type": "number"},
                "consent": {"path": "consent", "type": "boolean"}
            }
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringba_feed_keeps_its_attributes_and_every_answer_shows_them() {
    let env = TestEnv::new("attributes").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let http = reqwest::Client::new();
    let created = http
        .post(api.url("/api/integrations"))
        .json(&ringba_integration())
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );
    ingest.wait_for_integration("ringba-attrs", 1).await;

    let now_ms = chrono::Utc::now().timestamp_millis();
    let record = |id: &str, n: i64, extra: Value| {
        let mut record = json!({"inboundCallId": id, "inboundPhoneNumber": format!("+1312555{:04}", 100 + n),
            "callDt": now_ms - (60 - n) * 60_000, "payoutAmount": 10});
        for (k, v) in extra.as_object().unwrap() {
            record[k] = v.clone();
        }
        record.to_string()
    };
    let body = [
        record(
            "RGB-1",
            1,
            json!({"publisherSubId": "pub-7", "tag:User:sub5": "fb", "share": "12.50", "consent": "yes"}),
        ),
        record(
            "RGB-2",
            2,
            json!({"publisherSubId": "pub-7", "tag:User:sub5": "tt"}),
        ),
        record(
            "RGB-3",
            3,
            json!({"publisherSubId": "pub-9", "tag:User:sub5": "fb"}),
        ),
        record("RGB-4", 4, json!({"share": "twelve"})),
    ];
    let (status, answer) = ingest
        .post_webhook("ringba-attrs", "application/x-ndjson", body.join("\n"))
        .await;
    assert_eq!(status, 202, "{answer}");
    let client = env.client();
    let stored = |n: usize| {
        let client = client.clone();
        async move {
            let rows: Vec<String> = client
                .query("SELECT external_id FROM calls FINAL WHERE client_id = 'ringba-attrs' ORDER BY external_id")
                .fetch_all()
                .await
                .ok()?;
            (rows.len() >= n).then_some(rows)
        }
    };
    eventually("the 4 calls", Duration::from_secs(60), || stored(4)).await;
    // The recording comes later (Ringba sends it once the call is done): the
    // call keeps the attributes it had and gains the new one.
    let late = json!({"inboundCallId": "RGB-3", "recordingUrl": "https://media.example/RGB-3.mp3"});
    let (status, _) = ingest
        .post_webhook("ringba-attrs", "application/json", late.to_string())
        .await;
    assert_eq!(status, 202);

    let calls = eventually(
        "RGB-3 with its recording",
        Duration::from_secs(60),
        || async {
            let page: Value = http
                .get(api.url("/api/calls?client_id=ringba-attrs&limit=50"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let calls = page["calls"].as_array()?.clone();
            calls
                .iter()
                .any(|c| c["external_id"] == "RGB-3" && c["attributes"]["recordingUrl"].is_object())
                .then_some(calls)
        },
    )
    .await;
    let by_id = |id: &str| {
        calls
            .iter()
            .find(|c| c["external_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_id("RGB-1")["attributes"],
        json!({
            "consent": {"type": "boolean", "value": "true"},
            "publisherSubId": {"type": "string", "value": "pub-7"},
            "share": {"type": "number", "value": "12.5"},
            "tag:User:sub5": {"type": "string", "value": "fb"}
        })
    );
    assert_eq!(
        by_id("RGB-3")["attributes"],
        json!({
            "publisherSubId": {"type": "string", "value": "pub-9"},
            "recordingUrl": {"type": "string", "value": "https://media.example/RGB-3.mp3"},
            "tag:User:sub5": {"type": "string", "value": "fb"}
        }),
        "the late record added the recording and kept the rest"
    );
    let rgb4 = by_id("RGB-4");
    assert_eq!(rgb4["attributes"], json!({}));
    assert!(
        rgb4["warnings"].to_string().contains("attributes.share"),
        "the bad number is said on the call: {rgb4}"
    );

    // The calls API narrowed to an attribute's value.
    let narrowed: Value = http
        .get(api.url("/api/calls?client_id=ringba-attrs&attr=publisherSubId%3Dpub-7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<&str> = narrowed["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["RGB-1", "RGB-2"]);

    // Aggregates by an attribute, and narrowed to one.
    let aggregates = |query: String| {
        let http = http.clone();
        let url = api.url(&format!(
            "/api/aggregates?bucket=none&client_id=ringba-attrs&{query}"
        ));
        async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, grouped) = aggregates("group_by=attr.publisherSubId".into()).await;
    assert_eq!(status, 200, "{grouped}");
    assert_eq!(grouped["table"], "calls_by_time");
    let counts: Vec<(String, u64)> = grouped["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["attr.publisherSubId"].as_str().unwrap().to_owned(),
                r["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("".to_owned(), 1),
            ("pub-7".to_owned(), 2),
            ("pub-9".to_owned(), 1)
        ]
    );
    let (_, fb) = aggregates("attr=tag%3AUser%3Asub5%3Dfb".into()).await;
    assert_eq!(fb["rows"][0]["calls"], 2, "{fb}");
    assert_eq!(fb["filters"]["attr.tag:User:sub5"], "fb", "{fb}");
    for (query, parameter) in [
        ("group_by=attr.a%20b", "group_by"),
        ("group_by=attr.a,attr.b", "group_by"),
        ("group_by=attrs", "group_by"),
        ("attr=publisherSubId", "attr"),
    ] {
        let (status, problem) = aggregates(query.into()).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert!(
            problem.to_string().contains(parameter),
            "{query}: {problem}"
        );
    }

    // The CSV export: every attribute in one column, and the ones asked for in their own.
    let csv = http
        .get(api.url(
            "/api/calls/export.csv?client_id=ringba-attrs&attribute_columns=publisherSubId,recordingUrl",
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"))
    };
    let (external, all, sub, recording) = (
        column("external_id"),
        column("attributes"),
        column("attr.publisherSubId"),
        column("attr.recordingUrl"),
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let row = |id: &str| rows.iter().find(|r| &r[external] == id).unwrap().clone();
    assert_eq!(&row("RGB-3")[sub], "pub-9");
    assert_eq!(&row("RGB-3")[recording], "https://media.example/RGB-3.mp3");
    assert_eq!(&row("RGB-2")[recording], "");
    let rgb1: Value = serde_json::from_str(&row("RGB-1")[all]).unwrap();
    assert_eq!(rgb1["share"], "12.5");
    assert_eq!(&row("RGB-4")[all], "");

    // Analysts: the view has the arrays, and an attribute filters like a column.
    let analyst: Vec<String> = client
        .query(
            "SELECT external_id FROM calls_current WHERE client_id = 'ringba-attrs' \
             AND attr_values[indexOf(attr_keys, 'tag:User:sub5')] = 'fb' ORDER BY external_id",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(analyst, ["RGB-1", "RGB-3"]);
}

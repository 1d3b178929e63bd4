//! Calls search and CSV export against the real stack: every filter narrows the
//! rows, bad values are named, and the export streams exactly what the filters select;
//! over 2,500 calls, some stored in two versions, pages and the export hold each call
//! once, in its newest version.

use std::time::Duration;

use integration_tests::{eventually, final_count, fixture, TestEnv};

async fn ids(url: &str) -> (u16, Vec<String>) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    let ids = body["calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| c["external_id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_and_the_export_streams_the_same_rows() {
    let env = TestEnv::new("search").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202);
    let client = env.client();
    eventually("the 3 sample calls", Duration::from_secs(60), || async {
        (final_count(&client, "arroyo").await == 3).then_some(())
    })
    .await;
    let calls = |query: &str| api.url(&format!("/api/calls?client_id=arroyo&{query}"));

    // The sample's third call is the first caller again, 17 hours later: a repeat.
    let repeats = eventually("the repeat in the api", Duration::from_secs(30), || async {
        let (status, found) = ids(&calls("status=repeat")).await;
        (status == 200 && !found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(repeats, ["ar_5e6f7a8b"]);
    let (_, same_caller) = ids(&calls("caller=(415)%20555-2671")).await;
    assert_eq!(
        same_caller,
        ["ar_5e6f7a8b", "ar_9f8e7d6c"],
        "newest first; the caller in any format"
    );
    assert_eq!(
        ids(&calls("from=2026-11-21T00:00:00Z")).await.1,
        ["ar_5e6f7a8b"]
    );
    assert_eq!(
        ids(&calls("to=2026-11-20T22:05:00Z")).await.1,
        ["ar_9f8e7d6c"]
    );
    assert_eq!(
        ids(&calls("campaign=Medicare%20IL")).await.1,
        ["ar_1a2b3c4d"]
    );
    assert!(ids(&calls("source=csv")).await.1.is_empty());
    assert_eq!(ids(&calls("duplicate=false")).await.1.len(), 3);
    let response = reqwest::get(calls("status=great")).await.unwrap();
    assert_eq!(response.status(), 400);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["error"]["parameter"], "status");

    let export = reqwest::get(api.url("/api/calls/export.csv?client_id=arroyo"))
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert!(export.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = export.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{text}");
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(
        &rows[0][column("external_id")],
        "ar_9f8e7d6c",
        "oldest first"
    );
    assert_eq!(&rows[0][column("payout")], "45.00");
    assert_eq!(&rows[2][column("status")], "repeat");
    assert_eq!(&rows[2][column("repeat_of")], &rows[0][column("id")]);
    let repeats = reqwest::get(api.url("/api/calls/export.csv?client_id=arroyo&status=repeat"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        repeats.lines().count(),
        2,
        "header and the one repeat: {repeats}"
    );

    // Many calls, some stored twice (a correction not merged yet): 2,500 calls of a
    // bulk integration written straight into ClickHouse, one a minute from October
    // 1st, 10 callers, every 7th a duplicate, every 100th with a second version.
    let bulk = |version: u32, every: u32, campaign: &str| {
        format!(
            "INSERT INTO calls (id, version, account, client_id, external_id, caller, started_at, campaign, \
             status, is_duplicate, received_at) \
             SELECT toUUID(concat('00000000-0000-0000-0000-', substring(toString(1000000000000 + number), 2, 12))), \
             {version}, 'acme-leads', 'bulk', toString(number), concat('+1415555', toString(1000 + number % 10)), \
             toDateTime('2026-10-01 00:00:00') + number * 60, '{campaign}', \
             if(number % 7 = 0, 'duplicate', 'unqualified'), number % 7 = 0, now() \
             FROM numbers(2500) WHERE number % {every} = 0"
        )
    };
    client
        .query(&bulk(1, 1, "original"))
        .execute()
        .await
        .unwrap();
    client
        .query(&bulk(2, 100, "corrected"))
        .execute()
        .await
        .unwrap();
    let pages = |query: String| {
        let api = &api;
        async move {
            let mut all: Vec<serde_json::Value> = vec![];
            let mut cursor: Option<String> = None;
            let mut sizes = vec![];
            loop {
                let url = match &cursor {
                    Some(c) => api.url(&format!("/api/calls?client_id=bulk&{query}&cursor={c}")),
                    None => api.url(&format!("/api/calls?client_id=bulk&{query}")),
                };
                let page: serde_json::Value =
                    reqwest::get(url).await.unwrap().json().await.unwrap();
                let calls = page["calls"].as_array().unwrap().clone();
                sizes.push(calls.len());
                all.extend(calls);
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => return (all, sizes),
                }
            }
        }
    };
    let (all, sizes) = pages("limit=1000".to_owned()).await;
    assert_eq!(sizes, [1000, 1000, 500]);
    let starts: Vec<&str> = all
        .iter()
        .map(|c| c["started_at"].as_str().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] > w[1]),
        "newest first, each call once"
    );
    let corrected = all.iter().filter(|c| c["campaign"] == "corrected").count();
    assert_eq!(corrected, 25, "the newest version of each call");
    assert!(all
        .iter()
        .filter(|c| c["campaign"] == "corrected")
        .all(|c| c["version"] == 2));
    // One caller's 250 calls, 100 a page.
    let (calls_of_one, sizes) = pages("caller=%2B14155551003&limit=100".to_owned()).await;
    assert_eq!(sizes, [100, 100, 50]);
    assert!(calls_of_one.iter().all(|c| c["caller"] == "+14155551003"));
    let mut distinct: Vec<&str> = calls_of_one
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 250);
    let (duplicates, _) = pages("duplicate=true&limit=1000".to_owned()).await;
    assert_eq!(duplicates.len(), 358, "every 7th of 2,500");
    // The export pages through all of them, oldest first, each once.
    let text = reqwest::get(api.url("/api/calls/export.csv?client_id=bulk"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2500);
    assert!(rows
        .windows(2)
        .all(|w| w[0][column("started_at")] < w[1][column("started_at")]));
    assert_eq!(
        rows.iter()
            .filter(|r| &r[column("campaign")] == "corrected")
            .count(),
        25
    );
}

//! CSV imports against the real stack: the legacy spreadsheet sample uploaded, its
//! bad row reported by row number; a Google Sheets link fetched from a local server
//! that serves what the Sheets export URL serves; a re-run doubles nothing.

use std::time::Duration;

use integration_tests::fake_http::{Canned, FakeHttp};
use integration_tests::{
    eventually, final_count, fixture, latest_receipt, wait_for_newer_receipt, TestEnv,
};

async fn upload(url: &str, csv: String) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spreadsheet_imports_report_bad_rows_and_never_double() {
    let env = TestEnv::new("imports").await;
    let sheet = fixture("legacy-sheet.csv").replace('\n', "\r\n");
    let served = sheet.clone();
    // The export URL is refused (as for a sheet whose owner disabled downloads); the
    // gviz form serves the CSV.
    let sheets = FakeHttp::start(move |target| {
        if target.starts_with("/spreadsheets/d/SHEET1/gviz/tq?tqx=out:csv&gid=7") {
            Canned::ok("text/csv", served.clone())
        } else {
            Canned::status(403)
        }
    })
    .await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "50")])
        .await;
    let ingest = env
        .start(
            "ingest",
            &[("INGEST_IMPORTS__SHEETS_BASE_URL", sheets.base_url.as_str())],
        )
        .await;
    let client = env.client();
    let imports = ingest.url("/api/integrations/legacy-sheet/imports");

    let (status, report) = upload(&imports, sheet.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["state"].as_str(),
            report["rows_read"].as_u64(),
            report["accepted"].as_u64(),
            report["rejected"].as_u64()
        ),
        (Some("done"), Some(5), Some(4), Some(1)),
        "{report}"
    );
    let bad = &report["rejected_rows"][0];
    assert_eq!(bad["row"], 6, "the header is row 1: {report}");
    let errors = bad["errors"].to_string();
    assert!(
        errors.contains("caller") && errors.contains("not provided"),
        "{errors}"
    );
    eventually(
        "the 4 good rows stored",
        Duration::from_secs(60),
        || async { (final_count(&client, "legacy-sheet").await == 4).then_some(()) },
    )
    .await;

    // The same sheet again, by its Sheets link: nothing doubles.
    let first_import = latest_receipt(&client, "legacy-sheet").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = reqwest::Client::new()
        .post(&imports)
        .json(
            &serde_json::json!({"url": "https://docs.google.com/spreadsheets/d/SHEET1/edit#gid=7"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let started: serde_json::Value = response.json().await.unwrap();
    let status_url = ingest.url(started["status_url"].as_str().unwrap());
    let finished = eventually(
        "the URL import to finish",
        Duration::from_secs(60),
        || async {
            let status: serde_json::Value =
                reqwest::get(&status_url).await.ok()?.json().await.ok()?;
            (status["state"] != "running").then_some(status)
        },
    )
    .await;
    assert_eq!(
        (
            finished["state"].as_str(),
            finished["accepted"].as_u64(),
            finished["rejected"].as_u64()
        ),
        (Some("done"), Some(4), Some(1)),
        "{finished}"
    );
    let asked: Vec<String> = sheets
        .requests()
        .iter()
        .map(|r| r.lines().next().unwrap_or("").to_owned())
        .collect();
    assert!(
        asked[0].contains("/export?format=csv&gid=7")
            && asked[1].contains("/gviz/tq?tqx=out:csv&gid=7"),
        "{asked:?}"
    );
    wait_for_newer_receipt(&client, "legacy-sheet", first_import).await;
    assert_eq!(
        final_count(&client, "legacy-sheet").await,
        4,
        "a re-run stores no second row"
    );
    let dead: u64 = client
        .query("SELECT count() FROM dead_letters FINAL WHERE client_id = 'legacy-sheet' AND reason LIKE 'row 6:%'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        dead, 1,
        "the bad row is dead-lettered once, with its row number"
    );

    // The same call sent by webhook (no partner id: the natural key decides) is the
    // same row, whichever way it came.
    let row2 = serde_json::json!({"Date": "11/02/2026", "Time": "9:14 AM", "Caller Phone": "(415) 555-2671",
        "Number Dialed": "+1 888 555 0100", "Call Length": "252", "Payout": "45.00", "ZIP": "94103", "Campaign": "Auto CA"});
    let second_import = latest_receipt(&client, "legacy-sheet").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = ingest
        .post_webhook("legacy-sheet", "application/json", row2.to_string())
        .await;
    assert_eq!(status, 202);
    wait_for_newer_receipt(&client, "legacy-sheet", second_import).await;
    assert_eq!(
        final_count(&client, "legacy-sheet").await,
        4,
        "webhook + CSV: one row"
    );

    // A link that serves nothing: the job fails and says why.
    let response = reqwest::Client::new()
        .post(&imports)
        .json(&serde_json::json!({"url": "https://docs.google.com/spreadsheets/d/NOPE/edit"}))
        .send()
        .await
        .unwrap();
    let started: serde_json::Value = response.json().await.unwrap();
    let status_url = ingest.url(started["status_url"].as_str().unwrap());
    let failed = eventually("the failed import", Duration::from_secs(30), || async {
        let status: serde_json::Value = reqwest::get(&status_url).await.ok()?.json().await.ok()?;
        (status["state"] == "failed").then_some(status)
    })
    .await;
    assert!(
        failed["error"].as_str().unwrap().contains("403"),
        "{failed}"
    );
}

/// A German Excel export as Excel writes it (Windows-1252, `;`, decimal commas,
/// day-first dates, a title row above the header), uploaded gzip-compressed: every
/// row stored with the right payout and start, the umlauts intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_excel_export_in_windows_1252_is_imported_as_written() {
    use std::io::Write;
    let env = TestEnv::new("imports-de").await;
    let german = integration_tests::sample_integration("legacy-sheet", |value| {
        value["client_id"] = serde_json::json!("de-sheet");
        value["timezone"] = serde_json::json!("Europe/Berlin");
        value["default_region"] = serde_json::json!("DE");
        value["currency"] = serde_json::json!("EUR");
        value["decimal_separator"] = serde_json::json!(",");
        value["csv"] = serde_json::json!({"encoding": "windows-1252", "header_row": 2});
        value["mapping"] = serde_json::json!({"fields": {
            "external_id": {"path": "Anruf-ID"},
            "caller": {"path": "Anrufer"},
            "started_at": {"path": "Beginn", "format": "%d.%m.%Y %H:%M"},
            "payout": {"path": "Auszahlung"},
            "campaign": {"path": "Kampagne"}
        }});
    });
    cmctl::publish_integrations(&env.kafka, &[german])
        .await
        .unwrap();
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "50")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    ingest.wait_for_integration("de-sheet", 1).await;
    let text = "Anrufe 01.12.2026 bis 06.12.2026;;;;\r\n\
                Anruf-ID;Anrufer;Beginn;Auszahlung;Kampagne\r\n\
                de_1;030 1234567;06.12.2026 10:00;12,50;Grüße aus München\r\n\
                de_2;+49 89 7654321;07.12.2026 23:30;1.234,00;Straße\r\n";
    let (cp1252, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&cp1252).unwrap();
    let response = reqwest::Client::new()
        .post(ingest.url("/api/integrations/de-sheet/imports"))
        .header("content-type", "text/csv")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (report["accepted"].as_u64(), report["rejected"].as_u64()),
        (Some(2), Some(0)),
        "{report}"
    );
    let client = env.client();
    eventually("both rows stored", Duration::from_secs(60), || async {
        (final_count(&client, "de-sheet").await == 2).then_some(())
    })
    .await;
    let rows: Vec<(String, String, String, String)> = client
        .query(
            "SELECT assumeNotNull(external_id), toString(assumeNotNull(payout)), \
             toString(started_at), campaign FROM calls FINAL WHERE client_id = 'de-sheet' ORDER BY external_id",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                "de_1".to_owned(),
                "12.5000".to_owned(),
                "2026-12-06 09:00:00".to_owned(),
                "Grüße aus München".to_owned()
            ),
            (
                "de_2".to_owned(),
                "1234.0000".to_owned(),
                "2026-12-07 22:30:00".to_owned(),
                "Straße".to_owned()
            ),
        ],
        "payouts with decimal commas, Berlin times in UTC, text decoded from Windows-1252"
    );
}

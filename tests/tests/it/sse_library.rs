//! The event stream with a standard SSE client library (the `eventsource` npm package,
//! `tests/browser/sse_client.mjs`), not our own reader: it gets the calls as they are
//! stored; when the api goes away and comes back on the same address, the library
//! reconnects by itself, sending `Last-Event-ID`, and gets the call stored meanwhile:
//! nothing missed, nothing twice. `deploy/test.sh` installs the package.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::{fixture, repo_root, TestEnv};
use tokio::sync::mpsc::UnboundedReceiver;

/// The next event line the client printed, counting connection notices on the way.
async fn next_event(lines: &mut UnboundedReceiver<String>, opens: &mut u32) -> serde_json::Value {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.recv())
            .await
            .expect("an event within 60 s")
            .expect("the client is running");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        if value.get("open").is_some() {
            *opens += 1;
        } else if value.get("event").is_some() {
            return value;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_client_library_resumes_by_itself_without_gaps_or_repeats() {
    let browser_dir = repo_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/eventsource").exists(),
        "the eventsource package is missing: deploy/test.sh installs it (npm ci --prefix tests/browser)"
    );
    let env = TestEnv::new("sse-library").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let mut api = env.start("api", &[]).await;
    let port = api.port;
    let mut client = KillOnDrop(
        Command::new("node")
            .arg(browser_dir.join("sse_client.mjs"))
            .arg(api.url("/api/events?client_id=arroyo"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs"),
    );
    // The client's lines, read by a thread of their own.
    let stdout = client.0.stdout.take().unwrap();
    let (sender, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let mut opens = 0;

    // Wait for the connection, then three calls.
    while opens == 0 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.recv())
            .await
            .expect("the client connects within 30 s")
            .expect("the client runs");
        opens += u32::from(line.contains("\"open\""));
    }
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202);
    let mut calls = BTreeSet::new();
    let mut ids = vec![];
    while calls.len() < 3 {
        let event = next_event(&mut lines, &mut opens).await;
        if event["event"] == "call.created" {
            assert!(
                calls.insert(event["data"]["external_id"].as_str().unwrap().to_owned()),
                "no call twice: {event}"
            );
        }
        ids.push(event["id"].as_str().unwrap().to_owned());
    }

    // The api goes away; a call is stored meanwhile; the api comes back where it was.
    api.kill();
    let late = r#"{"call": {"id": "ar_while_away", "caller": {"number": "3125550142"},
        "started_at": "2026-11-22T10:00:00Z", "duration": "1:00", "payout": "$5.00"}}"#;
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", late.to_owned())
        .await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _api = env.start_on("api", port, &[]).await;

    // The library reconnects with Last-Event-ID: the missed call, and only it.
    let event = loop {
        let event = next_event(&mut lines, &mut opens).await;
        if event["event"] == "call.created" {
            break event;
        }
        assert_ne!(event["event"], "reset", "the resume point is kept: {event}");
    };
    assert_eq!(event["data"]["external_id"], "ar_while_away", "{event}");
    assert!(
        opens >= 2,
        "the library reconnected by itself ({opens} opens)"
    );
    assert!(
        !ids.contains(&event["id"].as_str().unwrap().to_owned()),
        "a new event id"
    );
    // Nothing else follows: the first three are not sent again.
    let more =
        tokio::time::timeout(Duration::from_secs(3), next_event(&mut lines, &mut opens)).await;
    assert!(more.is_err(), "nothing repeated: {more:?}");
}

/// The client process, ended with the test however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

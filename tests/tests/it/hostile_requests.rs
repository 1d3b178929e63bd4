//! A corpus of hostile requests replayed against the running edge (ingest) and
//! api, over raw TCP where an HTTP client would refuse to send them: huge and
//! numerous headers, a trickled body (slowloris), deep nesting, 10k-element arrays,
//! invalid UTF-8, wrong content types, garbage request lines and query strings.
//! Every answer is a 4xx that names the problem (a JSON `error.code`, or for what
//! the HTTP layer refuses before any handler runs, the status itself), and both
//! processes are still serving afterwards, with their memory bounded: the corpus
//! is replayed three times and resident memory must not keep growing.

use std::time::Duration;

use integration_tests::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What came back: the status and the body (empty when the connection closed
/// without an answer, status 0).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn code(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        json["error"]["code"].as_str().map(str::to_owned)
    }
}

/// Sends `head` (request line and headers, without the blank line), then `body`
/// in `pieces` with `pause` between them, and reads the answer.
async fn raw(port: u16, head: &str, body: &[u8], pieces: usize, pause: Duration) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    // A write may fail once the server has answered and closed (a refused head).
    let _ = stream.write_all(&request).await;
    let size = body.len().div_ceil(pieces.max(1)).max(1);
    for chunk in body.chunks(size) {
        if stream.write_all(chunk).await.is_err() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut bytes)).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Answer { status, body }
}

fn post(path: &str, content_type: &str, body: &[u8]) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}",
        body.len()
    )
}

const WEBHOOK: &str = "/api/integrations/webhook/arroyo";

/// Replays the corpus once; each case asserts its own answer.
async fn replay(ingest: u16, api: u16) {
    let none = Duration::ZERO;
    let one_record = br#"{"call":{"id":"h1","caller":{"number":"4155552671"},"started_at":"2026-11-20T10:00:00Z"}}"#;

    // A megabyte of header: refused by the HTTP layer before any handler runs.
    let head = format!(
        "{}\r\nX-Junk: {}",
        post(WEBHOOK, "application/json", one_record),
        "a".repeat(1 << 20)
    );
    let answer = raw(ingest, &head, one_record, 1, none).await;
    assert_eq!(answer.status, 431, "a huge header: {answer:?}");

    // Five hundred headers.
    let many: String = (0..500).map(|i| format!("\r\nX-H{i}: v")).collect();
    let head = format!("{}{many}", post(WEBHOOK, "application/json", one_record));
    let answer = raw(ingest, &head, one_record, 1, none).await;
    assert_eq!(answer.status, 431, "too many headers: {answer:?}");

    // A request line that is not HTTP.
    let answer = raw(ingest, "GARBAGE \u{1}\u{2}", b"", 1, none).await;
    assert_eq!(answer.status, 400, "a garbage request line: {answer:?}");

    // Slowloris: the body trickles in slower than the body timeout allows.
    let answer = raw(
        ingest,
        &post(WEBHOOK, "application/json", one_record),
        one_record,
        4,
        Duration::from_millis(600),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code().as_deref()),
        (408, Some("body_timeout")),
        "a trickled body: {answer:?}"
    );

    // Deep nesting: an answer naming where (the record, its line), not a stack
    // overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let answer = raw(
        ingest,
        &post(WEBHOOK, "application/json", deep.as_bytes()),
        deep.as_bytes(),
        1,
        none,
    )
    .await;
    assert_eq!(answer.status, 400, "deep nesting: {answer:?}");
    assert!(answer.body.contains("\"line\""), "{answer:?}");

    // Ten thousand records where a thousand are accepted.
    let many_records = format!("[{}]", vec!["{}"; 10_000].join(","));
    let answer = raw(
        ingest,
        &post(WEBHOOK, "application/json", many_records.as_bytes()),
        many_records.as_bytes(),
        1,
        none,
    )
    .await;
    assert_eq!(answer.status, 413, "10k records: {answer:?}");
    assert!(answer.body.contains("1000"), "names the limit: {answer:?}");

    // Invalid UTF-8, with the position of the first bad byte.
    let bad = b"{\"call\": \"\xff\xfe\"}";
    let answer = raw(
        ingest,
        &post(WEBHOOK, "application/json", bad),
        bad,
        1,
        none,
    )
    .await;
    assert_eq!(answer.status, 400, "invalid UTF-8: {answer:?}");
    assert!(answer.body.contains("position 10"), "{answer:?}");

    // Content types we do not take.
    for content_type in [
        "application/xml",
        "multipart/form-data; boundary=x",
        "\u{7f}",
    ] {
        let answer = raw(
            ingest,
            &post(WEBHOOK, content_type, one_record),
            one_record,
            1,
            none,
        )
        .await;
        assert!(
            answer.status == 415 || (answer.status == 400 && content_type == "\u{7f}"),
            "{content_type:?}: {answer:?}"
        );
    }

    // A chunked body whose chunk sizes are not hex.
    let head = format!(
        "POST {WEBHOOK} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
    );
    let answer = raw(ingest, &head, b"zz\r\n{}\r\n0\r\n\r\n", 1, none).await;
    assert!(
        (400..500).contains(&answer.status),
        "bad chunk sizes: {answer:?}"
    );

    // The api: query strings and resume ids it cannot use, each named.
    let get = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: t");
    let long_filter = format!("/api/aggregates?campaign={}", "x".repeat(201));
    for (target, parameter) in [
        ("/api/calls?from=yesterday", "from"),
        ("/api/calls?limit=99999999999999999999", ""),
        ("/api/calls?%ff%fe=1", ""),
        ("/api/calls?caller=not-a-number", "caller"),
        ("/api/aggregates?tz=Mars/Olympus", "tz"),
        ("/api/aggregates?to=0001-01-01T00:00:00Z", ""),
        (
            "/api/aggregates?group_by=state,state,state,state",
            "group_by",
        ),
        ("/api/aggregates?source=fax", "source"),
        ("/api/aggregates?status=maybe", "status"),
        (long_filter.as_str(), "campaign"),
        ("/api/dead-letters/groups?from=soon", "from"),
        (
            "/api/dead-letters/groups?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
            "from",
        ),
    ] {
        let answer = raw(api, &get(target), b"", 1, none).await;
        assert_eq!(answer.status, 400, "{target}: {answer:?}");
        assert!(answer.code().is_some(), "{target}: {answer:?}");
        assert!(
            answer.body.contains(parameter),
            "{target} names {parameter}: {answer:?}"
        );
    }
    let long_query = format!("/api/calls?campaign={}", "x".repeat(100_000));
    let answer = raw(api, &get(&long_query), b"", 1, none).await;
    assert!(
        (200..500).contains(&answer.status) && answer.status != 0,
        "a 100 kB query: {}",
        answer.status
    );
    let head = format!(
        "{}\r\nLast-Event-ID: {}",
        get("/api/events"),
        "9:".repeat(5_000)
    );
    let answer = raw(api, &head, b"", 1, none).await;
    assert_eq!(answer.status, 400, "a garbage Last-Event-ID: {answer:?}");
    let deep = "{\"a\":".repeat(50_000);
    let answer = raw(
        api,
        &post("/api/mappings/preview", "application/json", deep.as_bytes()),
        deep.as_bytes(),
        1,
        none,
    )
    .await;
    assert_eq!(answer.status, 400, "deep preview body: {answer:?}");

    // A replay asked for badly: an unknown source, a body past its 4 KiB, an
    // integration that does not exist, a job id that is no id. Nothing starts.
    for (target, body, expected) in [
        (
            "/api/integrations/arroyo/replay",
            br#"{"source": "everything"}"#.to_vec(),
            400,
        ),
        (
            "/api/integrations/arroyo/replay",
            format!(r#"{{"source": "raw", "pad": "{}"}}"#, "x".repeat(10_000)).into_bytes(),
            413,
        ),
        ("/api/integrations/no-such/replay", b"{}".to_vec(), 404),
    ] {
        let answer = raw(
            api,
            &post(target, "application/json", &body),
            &body,
            1,
            none,
        )
        .await;
        assert_eq!(answer.status, expected, "{target}: {answer:?}");
        assert!(answer.code().is_some(), "{target}: {answer:?}");
    }
    let answer = raw(api, &get("/api/replays/1%27%20OR%201"), b"", 1, none).await;
    assert_eq!(answer.status, 404, "a job id that is no id: {answer:?}");

    // 1.5 MB to an integration that does not exist, sent slowly: refused from the
    // head, and the rest read and dropped, so the sender's writes all go through
    // and it reads its answer. Before, the connection was reset under it: an HTTP
    // client (reqwest, curl) then reports the failed write ("Broken pipe"), not the
    // answer; `raw` above reads on regardless, so this case writes for itself.
    let big = vec![b' '; 1_500_000];
    let answer = integration_tests::slow_sender::post_slowly(
        ingest,
        "/api/integrations/webhook/nobody-here",
        &big,
    )
    .await
    .expect("a refused body still arriving goes through");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("not_accepted"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_named_4xx_and_bounded_memory() {
    let env = TestEnv::new("hostile-requests").await;
    let ingest = env
        .start(
            "ingest",
            &[
                ("INGEST_HTTP__BODY_TIMEOUT_MS", "1000"),
                ("INGEST_HTTP__MAX_RECORDS", "1000"),
            ],
        )
        .await;
    let api = env.start("api", &[]).await;

    replay(ingest.port, api.port).await;
    let warm = (ingest.rss_kib().unwrap(), api.rss_kib().unwrap());
    replay(ingest.port, api.port).await;
    replay(ingest.port, api.port).await;
    let after = (ingest.rss_kib().unwrap(), api.rss_kib().unwrap());
    eprintln!("resident memory after one replay {warm:?} KiB, after three {after:?} KiB");
    // Each replay sends several megabytes; memory that kept them would show here.
    assert!(
        after.0 < warm.0 + 64 * 1024,
        "ingest grew from {} to {} KiB",
        warm.0,
        after.0
    );
    assert!(
        after.1 < warm.1 + 64 * 1024,
        "api grew from {} to {} KiB",
        warm.1,
        after.1
    );

    for service in [&ingest, &api] {
        let health = reqwest::get(service.url("/healthz")).await.unwrap();
        assert_eq!(health.status(), 200, "{} still serving", service.name);
    }
}

//! The ways partners send, against the real stack: a Twilio status callback (a
//! form, signed as Twilio signs), a GET pixel with its key in the query, gzip and
//! zstd bodies, a compression bomb, and a record that names a key twice. Counted by
//! the partner's own ids in ClickHouse.

use std::io::Write;
use std::time::Duration;

use integration_tests::{eventually, sample_integration, TestEnv};
use schemas::{ClientId, Source};
use serde_json::json;

/// What Twilio's console holds as the webhook URL: the signature covers it, not
/// the address this ingest listens on (as behind a load balancer).
const TWILIO_URL: &str = "https://calls.example.com/api/integrations/webhook/twilio-status";
/// The callback's form, and its `X-Twilio-Signature` for auth token 12345, computed
/// by Twilio's Python library (twilio 9, `RequestValidator.compute_signature`).
const TWILIO_FORM: &str = "CallSid=CA42&From=%2B14155552671&To=%2B18005550199&CallStatus=completed&CallDuration=42&Timestamp=Sun%2C+06+Dec+2026+10%3A00%3A00+%2B0000&FromZip=94103&FromState=CA";
const TWILIO_SIGNATURE: &str = "miCnOqroVs9X+c1LwdAczl8bhxo=";
const PIXEL_KEY: &str = "pix_0123456789abcdefghijklmn";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn arroyo_call(id: &str, n: u32) -> String {
    format!(
        r#"{{"call": {{"id": "{id}", "caller": {{"number": "415555{:04}"}}, "tracking_number": "8885550199", "started_at": "2026-11-20T10:{:02}:00Z", "duration": "2:00", "payout": "$1.00"}}}}"#,
        n % 10_000,
        n % 60
    )
}

async fn stored(env: &TestEnv, client_id: &str, want: u64) -> u64 {
    let client = env.client();
    eventually(
        &format!("{want} calls of {client_id} stored"),
        Duration::from_secs(90),
        || {
            let client = client.clone();
            async move {
                let n = client
                    .query("SELECT count() FROM calls FINAL WHERE client_id = ?")
                    .bind(client_id)
                    .fetch_one::<u64>()
                    .await
                    .ok()?;
                (n >= want).then_some(n)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_pixels_compressed_bodies_and_ambiguous_records() {
    let env = TestEnv::new("forms").await;
    let mut twilio = schemas::presets::integration(
        "twilio",
        ClientId::parse("twilio-status").unwrap(),
        "acme-leads",
        "Twilio status callbacks",
        Source::Webhook,
    )
    .unwrap();
    twilio.auth = Some(
        serde_json::from_value(json!({
            "scheme": "twilio", "auth_tokens": ["12345"], "public_url": TWILIO_URL
        }))
        .unwrap(),
    );
    let mut pixel = schemas::presets::integration(
        "ringba",
        ClientId::parse("ringba-pixel").unwrap(),
        "acme-leads",
        "Ringba pixel",
        Source::Webhook,
    )
    .unwrap();
    pixel.auth = Some(
        serde_json::from_value(json!({
            "scheme": "api_key", "keys": [PIXEL_KEY], "query": "key"
        }))
        .unwrap(),
    );
    let arroyo = sample_integration("arroyo", |_| {});
    cmctl::publish_integrations(&env.kafka, &[twilio, pixel, arroyo])
        .await
        .unwrap();
    let _processor = env.start("processor", &[]).await;
    let ingest = env
        .start("ingest", &[("INGEST_HTTP__BODY_LIMIT_BYTES", "1048576")])
        .await;
    for client in ["twilio-status", "ringba-pixel", "arroyo"] {
        ingest.wait_for_integration(client, 1).await;
    }
    let http = reqwest::Client::new();
    let url = |client: &str| ingest.url(&format!("/api/integrations/webhook/{client}"));

    // Twilio: a form, signed over the configured URL and the sorted parameters.
    let post_form = |signature: &'static str| {
        http.post(url("twilio-status"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(TWILIO_FORM)
            .send()
    };
    let refused = post_form("AAAAAAAAAAAAAAAAAAAAAAAAAAA=").await.unwrap();
    assert_eq!(refused.status(), 401);
    let answer = post_form(TWILIO_SIGNATURE).await.unwrap();
    assert_eq!(answer.status(), 202, "{:?}", answer.text().await);
    stored(&env, "twilio-status", 1).await;
    let (external_id, duration, caller): (String, u32, String) = env
        .client()
        .query("SELECT assumeNotNull(external_id), assumeNotNull(duration_s), assumeNotNull(caller) FROM calls FINAL WHERE client_id = 'twilio-status'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        (external_id.as_str(), duration, caller.as_str()),
        ("CA42", 42, "+14155552671")
    );

    // A GET pixel: the record in the query, the key checked and never stored.
    let pixel_query = format!(
        "inboundCallId=RGB_PIXEL_1&inboundPhoneNumber=%2B14155550111&number=%2B18885550100&callDt=1795917600000&callLengthInSeconds=95&payoutAmount=12.50&key={PIXEL_KEY}"
    );
    let without_key = http
        .get(format!("{}?inboundCallId=RGB_PIXEL_2", url("ringba-pixel")))
        .send()
        .await
        .unwrap();
    assert_eq!(without_key.status(), 401);
    let answer = http
        .get(format!("{}?{pixel_query}", url("ringba-pixel")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202, "{:?}", answer.text().await);
    stored(&env, "ringba-pixel", 1).await;
    // One with a start that is no time becomes a dead letter, its payload as the
    // edge made it: without the key.
    let answer = http
        .get(format!(
            "{}?inboundCallId=RGB_PIXEL_3&inboundPhoneNumber=%2B14155550112&callDt=yesterday&key={PIXEL_KEY}",
            url("ringba-pixel")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let client = env.client();
    let payload: String = eventually("the pixel's dead letter", Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            client
                .query("SELECT payload FROM dead_letters WHERE client_id = 'ringba-pixel' LIMIT 1")
                .fetch_one::<String>()
                .await
                .ok()
        }
    })
    .await;
    assert!(payload.contains("RGB_PIXEL_3"), "{payload}");
    assert!(
        !payload.contains(PIXEL_KEY),
        "the key was stored: {payload}"
    );

    // gzip NDJSON: 500 records, line 250 broken: 499 taken, the line named.
    let mut lines: Vec<String> = (0..500)
        .map(|n| arroyo_call(&format!("gz_{n}"), n))
        .collect();
    lines[249] = r#"{"call": {"id": "gz_broken", "#.to_owned();
    let answer = http
        .post(url("arroyo"))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(gzip(lines.join("\n").as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["accepted"], 499, "{answer}");
    assert_eq!(answer["rejected"][0]["line"], 250, "{answer}");

    // zstd JSON, and a record naming a key twice beside a good one.
    let body = format!(
        r#"[{}, {{"call": {{"id": "dup_1", "payout": "$1.00", "payout": "$900.00"}}}}]"#,
        arroyo_call("zs_1", 7)
    );
    let answer = http
        .post(url("arroyo"))
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body(zstd::stream::encode_all(body.as_bytes(), 3).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    let error = answer["rejected"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains(r#"duplicate key "payout""#), "{answer}");
    stored(&env, "arroyo", 500).await;

    // A compression bomb: 64 MiB of zeros in about 64 KiB, refused at the 1 MiB
    // limit (decoded bytes), without the process growing by the inflated size.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    let before = ingest.rss_kib().unwrap_or(0);
    for _ in 0..4 {
        let answer = http
            .post(url("arroyo"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 413);
        let problem: serde_json::Value = answer.json().await.unwrap();
        assert!(
            problem["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("1048576"),
            "{problem}"
        );
    }
    let after = ingest.rss_kib().unwrap_or(0);
    assert!(
        after < before + 32 * 1024,
        "ingest grew from {before} KiB to {after} KiB over four bombs"
    );
    let healthy = http.get(ingest.url("/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);

    // The owner sees what the senders were not told: the refused Twilio delivery
    // with its real reason and its signature masked, the pixel without its key.
    let api = env.start("api", &[]).await;
    let refusals = |client: &'static str| {
        let (http, url) = (
            http.clone(),
            api.url(&format!("/api/integrations/{client}/refusals")),
        );
        async move {
            let answer: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
            let list = answer["refusals"].as_array()?.clone();
            (!list.is_empty()).then_some(list)
        }
    };
    let twilio_refused = eventually(
        "the refused Twilio delivery listed",
        Duration::from_secs(30),
        || refusals("twilio-status"),
    )
    .await;
    let shown = serde_json::to_string(&twilio_refused).unwrap();
    assert!(shown.contains("the signature does not match"), "{shown}");
    assert!(shown.contains(r#"["x-twilio-signature","***"]"#), "{shown}");
    assert!(shown.contains("CallSid=CA42"), "the body's start: {shown}");
    let pixel_refused = eventually("the keyless pixel listed", Duration::from_secs(30), || {
        refusals("ringba-pixel")
    })
    .await;
    assert_eq!(pixel_refused[0]["code"], "not_accepted");
    assert!(pixel_refused[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("key query parameter"));
    let bombs = eventually("the bombs listed", Duration::from_secs(30), || async {
        let list = refusals("arroyo").await?;
        (list.len() >= 4).then_some(list)
    })
    .await;
    assert!(bombs.iter().all(|r| r["status"] == 413), "{bombs:?}");
    let health: serde_json::Value = http
        .get(api.url("/api/integrations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let arroyo_health = health["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["integration"]["client_id"] == "arroyo")
        .unwrap()["health"]
        .clone();
    assert_eq!(
        arroyo_health["refused_last_hour"]["count"], 4,
        "{arroyo_health}"
    );
    assert_eq!(
        arroyo_health["refused_last_hour"]["last_code"],
        "body_too_large"
    );
}

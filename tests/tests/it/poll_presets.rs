//! The four call platforms' presets polled end to end on the real stack: each
//! integration is "preset + settings", each partner is a local fake built from its
//! public API documentation (Ringba's POST body with offset and totalCount,
//! Invoca's start_after_transaction_id, CallRail's page/total_pages, Retreaver's
//! Link header), with a 429 (Retry-After), a 5xx in the middle and a revoked key on
//! the way. Every record the partners hold is stored once, by the partners' own
//! ids, and after an ingest restart the next run resumes where the last stopped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use integration_tests::fake_http::{query, Canned, FakeHttp, FakeRequest};
use integration_tests::{eventually, TestEnv};
use schemas::{ClientId, Integration, Source};
use serde_json::{json, Value};

/// What a fake holds and what it was asked.
#[derive(Clone, Default)]
struct Partner {
    records: Arc<Mutex<Vec<Value>>>,
    /// (target, body) of each data request, in arrival order.
    asked: Arc<Mutex<Vec<(String, Value)>>>,
    calls: Arc<AtomicU32>,
}

impl Partner {
    fn log(&self, request: &FakeRequest) -> u32 {
        self.asked
            .lock()
            .unwrap()
            .push((request.target.clone(), request.json()));
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn asked(&self) -> Vec<(String, Value)> {
        self.asked.lock().unwrap().clone()
    }

    /// The records `keep` accepts, in the partner's order.
    fn held(&self, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }
}

/// A time query parameter (RFC 3339, percent-encoded colons); the epoch if absent.
fn since_param(q: &std::collections::HashMap<String, String>, name: &str) -> DateTime<Utc> {
    q.get(name)
        .map(|s| s.replace("%3A", ":"))
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// When a record's RFC 3339 field says.
fn time_of(record: &Value, field: &str) -> DateTime<Utc> {
    let text = schemas::path::FieldPath::parse(field)
        .unwrap()
        .lookup(record)
        .unwrap()
        .into_owned();
    DateTime::parse_from_rfc3339(text.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn at(n: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap() + chrono::Duration::minutes(i64::from(n))
}

fn ringba_record(n: u32) -> Value {
    json!({"inboundCallId": format!("RGB{n:03}"), "callDt": at(n).timestamp_millis(),
           "inboundPhoneNumber": format!("+1415555{n:04}"), "number": "+18005550100",
           "callLengthInSeconds": 60 + n, "payoutAmount": 10.5, "conversionAmount": 20,
           "campaignName": "Auto", "publisherName": "P1", "targetName": "B1", "hasConnected": true,
           "recordingUrl": format!("https://media.ringba.example/{n}.mp3"), "publisherSubId": format!("sub-{}", n % 2)})
}

fn invoca_record(n: u32) -> Value {
    json!({"transaction_id": format!("T{n:04}"), "complete_call_id": format!("CC{n:03}"),
           "calling_phone_number": format!("415-555-{n:04}"), "destination_phone_number": "800-555-0101",
           "start_time_utc": at(n).timestamp_millis(), "duration": 61,
           "affiliate_payout_localized": "10.50", "advertiser_payin_localized": "20.00"})
}

fn callrail_record(n: u32) -> Value {
    let local = at(n).with_timezone(&chrono::FixedOffset::west_opt(5 * 3600).unwrap());
    json!({"id": format!("CAL{n:03}"), "customer_phone_number": format!("+1415555{n:04}"),
           "tracking_phone_number": "+18005550111",
           "start_time": local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
           "duration": 62, "answered": true, "value": "$12.00", "tags": ["poll"]})
}

fn retreaver_record(n: u32) -> Value {
    json!({"call": {"uuid": format!("uuid-{n:03}"), "caller": format!("+1415555{n:04}"),
                    "dialed_number": "+18005550122", "start_time": at(n).to_rfc3339(),
                    "created_at": at(n).to_rfc3339(), "total_duration": 63,
                    "dialed_call_duration": 50, "connected": true, "payout": "5.00", "revenue": "9.00"}})
}

/// Ringba: `POST /v2/{accountId}/calllogs`, `Authorization: Token …`, records in the
/// body's window, `offset`/`size`, `report.totalCount`. The key `rb-old` is revoked.
async fn ringba() -> (FakeHttp, Partner) {
    let partner = Partner::default();
    let p = partner.clone();
    let fake = FakeHttp::start_with(move |request: &FakeRequest| {
        if request.method != "POST" || request.target != "/v2/RA1/calllogs" {
            return Canned::status(404);
        }
        if request.header("authorization") != Some("Token rb-key") {
            return Canned::status(401);
        }
        p.log(request);
        let body = request.json();
        let time = |k: &str| {
            DateTime::parse_from_rfc3339(body[k].as_str().unwrap_or_default())
                .map(|t| t.timestamp_millis())
                .unwrap_or(0)
        };
        let (start, end) = (time("reportStart"), time("reportEnd"));
        let (offset, size) = (body["offset"].as_u64().unwrap_or(0) as usize, body["size"].as_u64().unwrap_or(1000) as usize);
        let all = p.held(|r| (start..end).contains(&r["callDt"].as_i64().unwrap()));
        let page: Vec<Value> = all.iter().skip(offset).take(size).cloned().collect();
        Canned::ok(
            "application/json",
            json!({"isSuccessful": true, "report": {"records": page, "totalCount": all.len(), "partialResult": false}}).to_string(),
        )
    })
    .await;
    (fake, partner)
}

/// Invoca: `GET /api/{version}/{network}/transactions.json?oauth_token=…&limit=…
/// &start_after_transaction_id=…`, rows after that id in id order.
async fn invoca() -> (FakeHttp, Partner) {
    let partner = Partner::default();
    let p = partner.clone();
    let fake = FakeHttp::start_with(move |request: &FakeRequest| {
        if !request
            .target
            .starts_with("/api/2020-10-01/N1/transactions.json?")
        {
            return Canned::status(404);
        }
        let q = query(&request.target);
        if q.get("oauth_token").map(String::as_str) != Some("inv-key") {
            return Canned::status(401);
        }
        p.log(request);
        let after = q
            .get("start_after_transaction_id")
            .cloned()
            .unwrap_or_default();
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
        let mut rows = p.held(|r| r["transaction_id"].as_str().unwrap() > after.as_str());
        rows.truncate(limit);
        Canned::ok("application/json", Value::from(rows).to_string())
    })
    .await;
    (fake, partner)
}

/// CallRail: `GET /v3/a/{account}/calls.json?page=…&per_page=…`, `Authorization:
/// Token token="…"`, `total_pages`; the second request is answered 429 with
/// `Retry-After: 1`.
async fn callrail() -> (FakeHttp, Partner) {
    let partner = Partner::default();
    let p = partner.clone();
    let fake = FakeHttp::start_with(move |request: &FakeRequest| {
        if !request.target.starts_with("/v3/a/ACC1/calls.json?") {
            return Canned::status(404);
        }
        if request.header("authorization") != Some(r#"Token token="cr-key""#) {
            return Canned::status(401);
        }
        if p.log(request) == 2 {
            let mut limited = Canned::status(429);
            limited.headers.push(("retry-after".into(), "1".into()));
            return limited;
        }
        let q = query(&request.target);
        let since = since_param(&q, "start_date");
        let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
        let per_page: usize = q
            .get("per_page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let all = p.held(|r| time_of(r, "start_time") >= since);
        let total_pages = all.len().div_ceil(per_page).max(1);
        let calls: Vec<Value> = all
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .cloned()
            .collect();
        Canned::ok(
            "application/json",
            json!({"page": page, "per_page": per_page, "total_pages": total_pages,
                   "total_records": all.len(), "calls": calls})
            .to_string(),
        )
    })
    .await;
    (fake, partner)
}

/// Retreaver: `GET /api/v2/calls.json?api_key=…&company_id=…&created_at_start=…`,
/// `[{"call": {…}}]`, two a page, the next page in a `Link` header; the first ask
/// for page 2 is answered 503.
async fn retreaver() -> (FakeHttp, Partner) {
    let partner = Partner::default();
    let p = partner.clone();
    let base: Arc<Mutex<String>> = Arc::default();
    let link_base = base.clone();
    let failed = Arc::new(AtomicU32::new(0));
    let fake = FakeHttp::start_with(move |request: &FakeRequest| {
        if !request.target.starts_with("/api/v2/calls.json?") {
            return Canned::status(404);
        }
        let q = query(&request.target);
        // The key once: a request that names it twice is refused, as strict APIs do
        // (the Link header's URL carries it already).
        if request.target.matches("api_key=").count() != 1 {
            return Canned::status(400);
        }
        if q.get("api_key").map(String::as_str) != Some("rt-key")
            || q.get("company_id").map(String::as_str) != Some("7")
        {
            return Canned::status(401);
        }
        let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
        if page == 2 && failed.fetch_add(1, Ordering::SeqCst) == 0 {
            return Canned::status(503);
        }
        p.log(request);
        let since = since_param(&q, "created_at_start");
        let all = p.held(|r| time_of(r, "call.created_at") >= since);
        let rows: Vec<Value> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
        let mut answer = Canned::ok("application/json", Value::from(rows).to_string());
        if page * 2 < all.len() {
            let next = request.target.replace(&format!("&page={page}"), "")
                + &format!("&page={}", page + 1);
            let base = link_base.lock().unwrap().clone();
            answer
                .headers
                .push(("link".into(), format!(r#"<{base}{next}>; rel="next""#)));
        }
        answer
    })
    .await;
    *base.lock().unwrap() = fake.base_url.clone();
    (fake, partner)
}

fn from_preset(
    preset: &str,
    client: &str,
    settings: &[(&str, &str)],
    edit: impl FnOnce(&mut Value),
) -> Integration {
    let settings: BTreeMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([(
            "initial_since".to_string(),
            "2026-11-20T00:00:00Z".to_string(),
        )])
        .collect();
    let integration = schemas::presets::integration_with(
        preset,
        ClientId::parse(client).unwrap(),
        "acme",
        client,
        Source::Poll,
        &settings,
    )
    .unwrap_or_else(|e| panic!("{preset}: {e}"));
    // Small pages, so paging is exercised; every other field as the preset has it.
    let mut value = serde_json::to_value(&integration).unwrap();
    edit(&mut value["poll"]);
    // Publishing asks every integration how its webhook proves itself, polled too.
    value["auth"] = json!({"scheme": "bearer", "tokens": ["tok_poll_presets_0123456789abcdef"]});
    let integration: Integration = serde_json::from_value(value).unwrap();
    integration.validate().unwrap();
    integration
}

async fn stored_ids(client: &clickhouse::Client, client_id: &str) -> Vec<String> {
    client
        .query("SELECT external_id FROM calls FINAL WHERE client_id = ? ORDER BY external_id")
        .bind(client_id)
        .fetch_all::<String>()
        .await
        .unwrap_or_default()
}

fn partner_ids(records: &[Value], field: &str) -> Vec<String> {
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| {
            schemas::path::FieldPath::parse(field)
                .unwrap()
                .lookup(r)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

async fn poll_status(ingest: &integration_tests::Service, client_id: &str) -> Option<Value> {
    let polls: Value = reqwest::get(ingest.url("/api/polls"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    polls["polls"]
        .as_array()?
        .iter()
        .find(|p| p["client_id"] == client_id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_platform_presets_poll_their_fakes_once_each_and_resume_after_a_restart() {
    let env = TestEnv::new("poll_presets").await;
    let (rb_fake, rb) = ringba().await;
    let (inv_fake, inv) = invoca().await;
    let (cr_fake, cr) = callrail().await;
    let (rt_fake, rt) = retreaver().await;
    rb.records
        .lock()
        .unwrap()
        .extend((1..=5).map(ringba_record));
    inv.records
        .lock()
        .unwrap()
        .extend((1..=5).map(invoca_record));
    cr.records
        .lock()
        .unwrap()
        .extend((1..=5).map(callrail_record));
    rt.records
        .lock()
        .unwrap()
        .extend((1..=5).map(retreaver_record));

    let ringba_with = |token: &str| {
        from_preset(
            "ringba",
            "ringba-poll",
            &[
                ("account_id", "RA1"),
                ("api_token", token),
                ("base_url", &rb_fake.base_url),
            ],
            |poll| poll["paging"]["limit"] = json!(2),
        )
    };
    let mut revoked = ringba_with("rb-old");
    revoked.version = 1;
    let integrations = vec![
        revoked,
        from_preset(
            "invoca",
            "invoca-poll",
            &[
                ("base_url", &inv_fake.base_url),
                ("network_id", "N1"),
                ("oauth_token", "inv-key"),
            ],
            |poll| {
                poll["query"]["limit"] = json!("2");
                poll["stop"]["page_size"] = json!(2);
            },
        ),
        from_preset(
            "callrail",
            "callrail-poll",
            &[
                ("account_id", "ACC1"),
                ("api_key", "cr-key"),
                ("base_url", &cr_fake.base_url),
            ],
            |poll| poll["query"]["per_page"] = json!("2"),
        ),
        from_preset(
            "retreaver",
            "retreaver-poll",
            &[
                ("company_id", "7"),
                ("api_key", "rt-key"),
                ("base_url", &rt_fake.base_url),
            ],
            |_| {},
        ),
    ];
    cmctl::publish_integrations(&env.kafka, &integrations)
        .await
        .unwrap();
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "50")])
        .await;
    // Static membership (tansu never evicts a killed member); "poll now" and poll
    // tests allowed every second, as the test asks for several.
    let same_instance = [
        ("INGEST_KAFKA__INSTANCE_ID", "ingest-0"),
        ("INGEST_LIMITS__POLL_NOW_INTERVAL_S", "1"),
    ];
    let mut ingest = env.start("ingest", &same_instance).await;
    let client = env.client();

    let expected =
        |partner: &Partner, field: &str| partner_ids(&partner.records.lock().unwrap(), field);
    for (id, partner, field) in [
        ("invoca-poll", &inv, "complete_call_id"),
        ("callrail-poll", &cr, "id"),
        ("retreaver-poll", &rt, "call.uuid"),
    ] {
        let want = expected(partner, field);
        eventually(
            &format!("{id}'s 5 calls"),
            Duration::from_secs(120),
            || async { (stored_ids(&client, id).await == want).then_some(()) },
        )
        .await;
    }
    // The revoked key: the run failed, saying so without the key.
    let status = eventually("ringba's failed run", Duration::from_secs(60), || async {
        poll_status(&ingest, "ringba-poll")
            .await
            .filter(|s| s["last_ok"] == false)
    })
    .await;
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("401") && !error.contains("rb-old"),
        "{status}"
    );

    // The operator replaces the key: the next run reads everything.
    let mut fixed = ringba_with("rb-key");
    fixed.version = 2;
    cmctl::publish_integrations(&env.kafka, &[fixed])
        .await
        .unwrap();
    eventually(
        "ringba v2 served and polled",
        Duration::from_secs(90),
        || async {
            let answer = reqwest::Client::new()
                .post(ingest.url("/api/integrations/ringba-poll/poll"))
                .send()
                .await
                .ok()?;
            let _ = answer;
            tokio::time::sleep(Duration::from_secs(2)).await;
            (stored_ids(&client, "ringba-poll").await == expected(&rb, "inboundCallId"))
                .then_some(())
        },
    )
    .await;

    // The preset keeps Ringba's recording and sub-id as attributes.
    let attributes: Vec<(String, String, String)> = client
        .query(
            "SELECT external_id, attr_values[indexOf(attr_keys, 'publisherSubId')], \
             attr_values[indexOf(attr_keys, 'recordingUrl')] FROM calls FINAL \
             WHERE client_id = 'ringba-poll' AND external_id = 'RGB003'",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        attributes,
        [(
            "RGB003".to_owned(),
            "sub-1".to_owned(),
            "https://media.ringba.example/3.mp3".to_owned()
        )]
    );

    // In order, page by page, as each API says to page.
    let ringba_offsets: Vec<u64> = rb
        .asked()
        .iter()
        .filter(|(_, body)| body["reportStart"] == "2026-11-19T23:00:00Z")
        .map(|(_, body)| body["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(&ringba_offsets[..3], [0, 2, 4], "{ringba_offsets:?}");
    let cr_pages: Vec<String> = cr
        .asked()
        .iter()
        .map(|(t, _)| query(t)["page"].clone())
        .collect();
    assert_eq!(
        cr_pages[..4],
        ["1", "2", "2", "3"],
        "page 2 again after the 429"
    );

    // A dry run reads one page, shows the request without the key, stores nothing.
    let dry: Value = reqwest::Client::new()
        .post(ingest.url("/api/integrations/callrail-poll/poll/test"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dry["records"], 2, "{dry}");
    assert!(dry["mapped"][0]["call"]["external_id"] == "CAL001", "{dry}");
    assert!(!dry.to_string().contains("cr-key"), "{dry}");
    assert_eq!(dry["requests"][0]["method"], "GET");
    // The dashboard's button asks the api, which forwards to ingest.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let api = env
        .start("api", &[("API_INGEST__URL", ingest.url("").as_str())])
        .await;
    let via_api: Value = reqwest::Client::new()
        .post(api.url("/api/integrations/callrail-poll/poll/test"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(via_api["records"], 2, "{via_api}");
    assert!(!via_api.to_string().contains("cr-key"), "{via_api}");
    let unknown = reqwest::Client::new()
        .post(api.url("/api/integrations/no-such-poll/poll/test"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Restart ingest; the partners get new calls; the next runs resume.
    let invoca_before = inv.asked().len();
    let retreaver_before = rt.asked().len();
    ingest.kill();
    rb.records
        .lock()
        .unwrap()
        .extend((6..=7).map(ringba_record));
    inv.records
        .lock()
        .unwrap()
        .extend((6..=7).map(invoca_record));
    cr.records
        .lock()
        .unwrap()
        .extend((6..=7).map(callrail_record));
    rt.records
        .lock()
        .unwrap()
        .extend((6..=7).map(retreaver_record));
    ingest = env.start("ingest", &same_instance).await;
    for (id, partner, field) in [
        ("ringba-poll", &rb, "inboundCallId"),
        ("invoca-poll", &inv, "complete_call_id"),
        ("callrail-poll", &cr, "id"),
        ("retreaver-poll", &rt, "call.uuid"),
    ] {
        let want = expected(partner, field);
        assert_eq!(want.len(), 7);
        eventually(
            &format!("{id}'s 7 calls after the restart"),
            Duration::from_secs(120),
            || async { (stored_ids(&client, id).await == want).then_some(()) },
        )
        .await;
    }
    // Invoca continued after the last transaction id it had read (kept with the
    // cursor), not from the start.
    let resumed = &inv.asked()[invoca_before];
    assert_eq!(
        query(&resumed.0)
            .get("start_after_transaction_id")
            .map(String::as_str),
        Some("T0005"),
        "{resumed:?}"
    );
    // Retreaver asked from the cursor (the newest created_at, 10:05) minus the
    // preset's overlap (300 s), not from initial_since.
    let resumed = &rt.asked()[retreaver_before];
    assert!(
        resumed
            .0
            .contains("created_at_start=2026-11-20T10%3A00%3A00Z"),
        "{resumed:?}"
    );
    drop(ingest);
}

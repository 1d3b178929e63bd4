//! `POST /api/mappings/preview` against a running api: saved and draft mappings,
//! per-field errors, and the refusals an operator would hit.

use std::time::Instant;

use integration_tests::{fixture, TestEnv};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_maps_samples_with_saved_and_draft_mappings() {
    let env = TestEnv::new("preview").await;
    let api = env.start("api", &[]).await;
    let http = reqwest::Client::new();
    let url = api.url("/api/mappings/preview");
    let post = |body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };

    // The saved Arroyo mapping over its sample.
    let records: Value = serde_json::from_str(&fixture("arroyo-webhook.json")).unwrap();
    let started = Instant::now();
    let (status, body) = post(json!({"client_id": "arroyo", "records": records})).await;
    println!(
        "preview of 3 records answered in {:?} (debug build)",
        started.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["call"]["caller"], "+14155552671");
    assert_eq!(results[0]["call"]["payout"], "45.00");
    assert_eq!(results[1]["call"]["status"], "unqualified");

    // A draft with a value map and a fallback, over a good and a broken record.
    let draft = json!({
        "client_id": "newpartner", "account": "acme", "name": "New partner", "source": "webhook", "version": 1,
        "timezone": "America/Chicago",
        "mapping": {"fields": {
            "caller": {"first_of": ["from", "ani"]},
            "started_at": {"path": "when", "format": "%m/%d/%Y %I:%M:%S %p"},
            "status": {"path": "result", "map": {"Converted": "qualified"}},
            "payout": {"path": "pay"}
        }}
    });
    let records = json!([
        {"ani": "(646) 555-0110", "when": "11/20/2026 05:45:00 PM", "result": "CONVERTED", "pay": "oops"},
        {"from": "not provided", "when": "11/20/2026", "result": "x"}
    ]);
    let (status, body) = post(json!({"integration": draft, "records": records})).await;
    assert_eq!(status, 200, "{body}");
    let good = &body["results"][0];
    assert_eq!(good["call"]["caller"], "+16465550110");
    assert_eq!(good["call"]["started_at"], "2026-11-20T23:45:00Z");
    assert_eq!(good["call"]["status"], "qualified");
    assert!(
        good["warnings"][0]
            .as_str()
            .unwrap()
            .contains("payout (path pay)"),
        "{good}"
    );
    let bad = &body["results"][1];
    assert!(bad["call"].is_null());
    let errors: Vec<&str> = bad["rejected"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors[0].starts_with("caller (first_of [from, ani])")
            && errors[0].contains("not provided"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("started_at (path when)"),
        "{errors:?}"
    );

    // Refusals that name the problem.
    let mut invalid = draft.clone();
    invalid["timezone"] = json!("Mars/Olympus");
    let (status, body) = post(json!({"integration": invalid, "record": {}})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_integration"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("timezone"));
    let (status, _) = post(json!({"client_id": "nobody", "record": {}})).await;
    assert_eq!(status, 404);
    let (status, body) =
        post(json!({"client_id": "arroyo", "integration": draft, "record": {}})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let response = http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"client_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// A draft for a live integration, tried on the payloads it really received, shows
/// field by field what would change before it is switched on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_of_a_draft_on_recent_traffic_shows_differences() {
    let env = TestEnv::new("dryrun").await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let http = reqwest::Client::new();
    let (status, _) = ingest
        .post_webhook("arroyo", "application/json", fixture("arroyo-webhook.json"))
        .await;
    assert_eq!(status, 202);

    // The draft takes the campaign from the publisher instead.
    let mut draft = serde_json::to_value(
        cmctl::read_integrations(
            &integration_tests::repo_root().join("deploy/integrations/samples.json"),
        )
        .unwrap()
        .into_iter()
        .find(|i| i.client_id.as_str() == "arroyo")
        .unwrap(),
    )
    .unwrap();
    draft["version"] = json!(2);
    draft["mapping"]["fields"]["campaign"] = json!({"path": "call.publisher.name"});
    let body = integration_tests::eventually(
        "the 3 payloads in the recent buffer",
        std::time::Duration::from_secs(30),
        || {
            let (http, url, draft) = (
                http.clone(),
                api.url("/api/mappings/preview"),
                draft.clone(),
            );
            async move {
                let body: Value = http
                    .post(url)
                    .json(&json!({"integration": draft, "recent": true}))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (body["results"].as_array()?.len() == 3).then_some(body)
            }
        },
    )
    .await;
    // Payloads from different partitions arrive in no fixed order.
    let first = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["call"]["external_id"] == "ar_9f8e7d6c")
        .expect("the first Arroyo call");
    assert_eq!(
        first["differences"],
        json!([{"field": "campaign", "active": "Auto Insurance CA", "draft": "BlueMedia"}])
    );
    // A saved integration previewed on its own traffic has nothing to compare with.
    let saved: Value = http
        .post(api.url("/api/mappings/preview"))
        .json(&json!({"client_id": "arroyo", "recent": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(saved["results"].as_array().unwrap().len(), 3);
    assert!(saved["results"][0].get("differences").is_none());
}

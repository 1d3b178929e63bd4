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

/// Issue 38: the preview decides like the pipeline against the stored data, read
/// only, and the pipeline then stores what the preview said. The arroyo sample's
/// first call previews as CallMatrix's cm_0001 (by time); stored, a late payout for
/// it (no caller: alone it would be refused) previews as a merge naming the call
/// and the one field it changes, and writes nothing; a later call of the same
/// caller previews as a repeat of it. Another account's draft naming the same
/// partner id sees no stored call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_decides_like_the_pipeline_against_stored_calls() {
    use integration_tests::{
        callmatrix_call_stored, eventually, final_count, load_callmatrix_samples,
        sample_integration,
    };
    let env = TestEnv::new("preview-decides").await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let client = env.client();
    load_callmatrix_samples(&env).await;
    callmatrix_call_stored(&client, "cm_0001").await;
    let hook = sample_integration("arroyo", |v| v["client_id"] = json!("merge-hook"));
    cmctl::publish_integrations(&env.kafka, &[hook])
        .await
        .unwrap();
    ingest.wait_for_integration("merge-hook", 1).await;
    let http = reqwest::Client::new();
    eventually(
        "the api to know merge-hook",
        std::time::Duration::from_secs(30),
        || async {
            let body: Value = http
                .get(api.url("/api/integrations"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            body["integrations"]
                .as_array()?
                .iter()
                .any(|i| i["integration"]["client_id"] == "merge-hook")
                .then_some(())
        },
    )
    .await;
    let preview = |body: Value| {
        let (http, url) = (http.clone(), api.url("/api/mappings/preview"));
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    // What the pipeline stored for a partner id: status, duplicate, CmCall,
    // repeat_of, as the preview says them.
    let stored_decision = |external: &'static str| {
        let client = client.clone();
        async move {
            let (status, duplicate, cm, repeat): (String, u8, String, String) = client
                .query(
                    "SELECT status, is_duplicate, cm_call_id, repeat_of FROM calls FINAL \
                     WHERE client_id = 'merge-hook' AND external_id = ?",
                )
                .bind(external)
                .fetch_one()
                .await
                .unwrap();
            json!({"status": status, "is_duplicate": duplicate == 1,
                   "cm_call_id": if cm.is_empty() { Value::Null } else { json!(cm) },
                   "repeat_of": if repeat.is_empty() { Value::Null } else { json!(repeat) }})
        }
    };
    let said = |decided: &Value| {
        json!({"status": decided["status"], "is_duplicate": decided["is_duplicate"],
               "cm_call_id": decided["cm_call_id"], "repeat_of": decided["repeat_of"]})
    };

    // 1. Nothing of the hook stored yet: a CallMatrix duplicate by time.
    let records: Value = serde_json::from_str(&fixture("arroyo-webhook.json")).unwrap();
    let first = records[0].clone();
    let body = preview(json!({"client_id": "merge-hook", "record": first})).await;
    let decided = body["results"][0]["decided"].clone();
    assert!(body["results"][0]["stored"].is_null(), "{body}");
    assert_eq!(decided["cm_call_id"], "cm_0001", "{body}");
    assert_eq!(decided["match_method"], "time_window", "{body}");
    assert_eq!(decided["is_duplicate"], true, "{body}");
    let (status, _) = ingest
        .post_webhook("merge-hook", "application/json", first.to_string())
        .await;
    assert_eq!(status, 202);
    eventually(
        "the call stored",
        std::time::Duration::from_secs(60),
        || async { (final_count(&client, "merge-hook").await == 1).then_some(()) },
    )
    .await;
    assert_eq!(
        stored_decision("ar_9f8e7d6c").await,
        said(&decided),
        "the pipeline decided what the preview said"
    );

    // 2. A late payout: the merge, the field it changes, nothing written.
    let late = json!({"call": {"id": "ar_9f8e7d6c", "payout": "$50.00"}});
    let body = preview(json!({"client_id": "merge-hook", "record": late})).await;
    let result = &body["results"][0];
    assert!(result["call"].is_null(), "alone it is refused: {body}");
    let stored = &result["stored"];
    assert_eq!(stored["outcome"], "merge", "{body}");
    let id: String = client
        .query("SELECT toString(id) FROM calls FINAL WHERE client_id = 'merge-hook' AND external_id = 'ar_9f8e7d6c'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stored["call_id"], id.as_str(), "{body}");
    let changes = stored["changes"].as_array().unwrap();
    assert_eq!(
        changes
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["payout"],
        "only the payout changes: {body}"
    );
    assert_eq!(changes[0]["stored"], "45.00", "{body}");
    assert_eq!(changes[0]["after"], "50.00", "{body}");
    assert_eq!(
        result["decided"]["cm_call_id"], "cm_0001",
        "the merged call stays linked: {body}"
    );
    let payout: String = client
        .query("SELECT toString(assumeNotNull(payout)) FROM calls FINAL WHERE toString(id) = ?")
        .bind(id.as_str())
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(payout, "45.0000", "a preview writes nothing");

    // 3. The same caller a day later, on a number CallMatrix does not manage.
    let later = json!({"call": {"id": "ar_next", "caller": {"number": "(415) 555-2671"},
        "tracking_number": "+1 (888) 555-0199", "started_at": "2026-11-21T14:03:22-08:00",
        "duration": "00:02:00", "payout": "$10.00"}});
    let body = preview(json!({"client_id": "merge-hook", "record": later})).await;
    let decided = body["results"][0]["decided"].clone();
    assert_eq!(
        decided["repeat_of"],
        id.as_str(),
        "a repeat of the stored call: {body}"
    );
    assert_eq!(decided["read"]["caller_calls"], 1, "{body}");
    assert!(decided["cm_call_id"].is_null(), "{body}");
    let (status, _) = ingest
        .post_webhook("merge-hook", "application/json", later.to_string())
        .await;
    assert_eq!(status, 202);
    eventually(
        "the later call stored",
        std::time::Duration::from_secs(60),
        || async { (final_count(&client, "merge-hook").await == 2).then_some(()) },
    )
    .await;
    assert_eq!(
        stored_decision("ar_next").await,
        said(&decided),
        "the pipeline decided what the preview said"
    );

    // Another account's draft naming the same partner id: nothing of acme-leads.
    let other = sample_integration("arroyo", |v| {
        v["client_id"] = json!("merge-other");
        v["account"] = json!("mallory");
    });
    let body = preview(json!({"integration": other, "record": late})).await;
    assert!(body["results"][0]["stored"].is_null(), "{body}");
    let body = preview(json!({"integration": other, "record": later})).await;
    let decided = &body["results"][0]["decided"];
    assert!(decided["repeat_of"].is_null(), "{body}");
    assert_eq!(decided["read"]["caller_calls"], 0, "{body}");
}

//! The dashboard in a real browser (Debian's chromium, headless, driven by
//! playwright-core from `tests/browser/dashboard.mjs`): it opens the page served by
//! the api, a webhook is delivered, and the call must appear in the live feed and the
//! total must change; a repeat of it is delivered and its story opened, which must
//! name the first call; a call CallMatrix also has is delivered and its story must
//! name the CmCall (cm_0001) and how far apart they started. The screenshots are kept as test artifacts in
//! `.data/test/artifacts/` (`dashboard.png`, `dashboard-story.png`, and
//! `dashboard-story-phone.png` at a phone's width); then a range and a zone are chosen
//! and checked against the aggregates API and across a reload (`dashboard-range.png`).
//! Between those, a correction moves a call from qualified to unqualified in the live
//! totals, the side-by-side table by source must equal the aggregates API
//! (`dashboard-side.png`), and a campaign and a status filter must change the URL,
//! the numbers (as the API's) and the feed, and survive a reload
//! (`dashboard-filtered.png`, `dashboard-filtered-phone.png`). Last, two records the
//! mapping refuses show as a dead-letter group with their payloads and errors
//! (`dashboard-dead.png`); after the mapping is fixed, the page's preview maps them
//! and its replay button stores them, each once by partner id
//! (`dashboard-replayed.png`, `dashboard-replayed-phone.png`). Then a Ringba-shaped
//! integration's custom attributes: the side-by-side table by `publisherSubId` must
//! equal the aggregates API, narrowing to `pub-7` must count the two calls posted
//! with it (by partner id), and a call's story must list its four attributes
//! (`dashboard-attributes.png`, `-attributes-story.png`, `-attributes-phone.png`);
//! the integration's history must show its creation, with who and what
//! (`dashboard-history.png`). `deploy/test.sh` installs chromium and
//! playwright-core.

use std::time::Duration;

use integration_tests::{
    browser_check, callmatrix_call_stored, load_callmatrix_samples, repo_root, TestEnv,
};

/// What the browser test writes to `.data/test/artifacts/`.
const SCREENSHOTS: &[&str] = &[
    "dashboard.png",
    "dashboard-phone.png",
    "dashboard-story.png",
    "dashboard-story-phone.png",
    "dashboard-range.png",
    "dashboard-range-phone.png",
    "dashboard-side.png",
    "dashboard-side-phone.png",
    "dashboard-filtered.png",
    "dashboard-filtered-phone.png",
    "dashboard-dead.png",
    "dashboard-dead-phone.png",
    "dashboard-story-duplicate.png",
    "dashboard-replayed.png",
    "dashboard-replayed-phone.png",
    "dashboard-attributes.png",
    "dashboard-attributes-story.png",
    "dashboard-attributes-phone.png",
    "dashboard-history.png",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_new_call_live_in_a_real_browser() {
    let env = TestEnv::new("browser").await;
    // CallMatrix's own calls, so a partner call can be a duplicate of one (cm_0001).
    load_callmatrix_samples(&env).await;
    let _processor = env
        .start("processor", &[("PROCESSOR_BATCH__MAX_WAIT_MS", "20")])
        .await;
    let ingest = env.start("ingest", &[]).await;
    let api = env.start("api", &[]).await;
    let artifacts = repo_root().join(".data/test/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    for name in SCREENSHOTS {
        let _ = std::fs::remove_file(artifacts.join(name));
    }

    let client = env.client();
    callmatrix_call_stored(&client, "cm_0001").await;
    let stdout = browser_check(
        "dashboard.mjs",
        &[api.url("").as_str(), ingest.url("").as_str()],
        "dashboard.png",
        Duration::from_secs(180),
    )
    .await;
    assert!(stdout.contains("appeared in the live feed"), "{stdout}");
    for name in SCREENSHOTS {
        let size = std::fs::metadata(artifacts.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "screenshot {name} was saved ({size} bytes)");
    }
}

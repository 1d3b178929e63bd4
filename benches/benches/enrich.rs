//! The whole per-record path of the processor, map + normalise + enrich with warm
//! caches, beside its parts and the serde_json parse baseline, in one run:
//!
//! - `parse`: `serde_json::from_str::<Value>` of the record (baseline);
//! - `map_record`: mapping, coercion, ZIP/zone lookup and base qualification;
//! - `repeat`: the repeat decision for one call against the caller's kept state
//!   (5 earlier calls), taken out of a `CallerState` as the processor does;
//! - `duplicate`: linking one call on a managed number among 10 CmCalls;
//! - `whole`: all of the above plus the status, per record.
//!
//! ClickHouse, Kafka and the state store are not in the loop: this is the CPU cost
//! per record on one core once the caller's state and managed numbers are in memory.

// A benchmark that cannot set up should stop loudly.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::enrich::duplicates::Candidate;
use engine::enrich::repeat::Visit;
use engine::enrich::{self, Enricher, HeldHistories};
use engine::mapping::{map_record, CompiledMapping};
use engine::state::CallerState;
use pipeline_benches::{typical_envelope, typical_integration, typical_record};
use schemas::callmatrix::ManagedNumber;
use schemas::enrichment::EnrichmentRules;
use schemas::{CallId, ClientId};

// The processor's and ingest's allocator (their main.rs), so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn enrichment(c: &mut Criterion) {
    let integration = typical_integration();
    let compiled = CompiledMapping::compile(&integration).unwrap();
    let record = typical_record(1);
    let (envelope, position) = typical_envelope(&integration, &record);
    let now = Utc::now();
    let mut mapped = map_record(&compiled, &envelope, position.clone(), now).unwrap();
    // Match by number and time, not by the echoed id the record carries.
    mapped.cm_call_id = None;
    mapped.match_method = None;
    let called = mapped.called.clone().unwrap();

    let enricher = Enricher {
        managed: std::sync::Arc::new(HashMap::from([(
            called.to_string(),
            ManagedNumber {
                number: called.clone(),
                account: "acme-leads".into(),
                campaign: String::new(),
                active: true,
            },
        )])),
    };
    // A warm history: the caller's five earlier calls over the last 60 days.
    let history: HashMap<CallId, Visit> = (1..=5)
        .map(|n| {
            let mut earlier = mapped.clone();
            earlier.id = CallId::from_external(&integration.client_id, &format!("old_{n}"));
            earlier.started_at = mapped.started_at - Duration::days(12 * n);
            (earlier.id, Visit::of(&earlier))
        })
        .collect();
    let state = CallerState::default().with_history(&history);
    let key = enrich::key_of(&mapped);
    let held = || HeldHistories::from([(key.clone(), state.history())]);
    let candidates: Vec<Candidate> = (0..10)
        .map(|n| Candidate {
            cm_call_id: format!("cm_{n}"),
            account: mapped.account.clone(),
            caller: mapped
                .caller
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            called: called.to_string(),
            started_at: mapped.started_at + Duration::seconds(40 * n - 200),
            duration_s: 250,
        })
        .collect();
    let rules = |_: &ClientId| EnrichmentRules::default();

    let mut group = c.benchmark_group("enrich_record");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("baseline", "parse"), |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(std::hint::black_box(&record)).unwrap())
    });
    group.bench_function(BenchmarkId::new("part", "map_record"), |b| {
        b.iter(|| {
            map_record(
                &compiled,
                std::hint::black_box(&envelope),
                position.clone(),
                now,
            )
            .unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("part", "repeat"), |b| {
        b.iter(|| {
            let mut calls = [mapped.clone()];
            enricher.decide_repeats(&mut calls, &mut held(), &rules);
            calls
        })
    });
    group.bench_function(BenchmarkId::new("part", "duplicate"), |b| {
        b.iter(|| {
            let mut calls = [mapped.clone()];
            enricher.link_duplicates(&mut calls, std::hint::black_box(&candidates), &rules);
            calls
        })
    });
    group.bench_function(BenchmarkId::new("figure", "whole"), |b| {
        b.iter(|| {
            let mut call = map_record(
                &compiled,
                std::hint::black_box(&envelope),
                position.clone(),
                now,
            )
            .unwrap();
            call.cm_call_id = None;
            call.match_method = None;
            let mut calls = [call];
            enricher.decide_repeats(&mut calls, &mut held(), &rules);
            enricher.link_duplicates(&mut calls, &candidates, &rules);
            enrich::settle_status(&mut calls[0]);
            calls
        })
    });
    group.finish();
}

criterion_group!(benches, enrichment);
criterion_main!(benches);

//! Map + coerce one typical record (parse, 17 rules over 20 source fields, E.164,
//! timestamp, money, duration) against the baseline of only parsing the same JSON
//! with serde_json, in the same run. Throughput is records/s on one core.

// A benchmark that cannot set up should stop loudly.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::mapping::{map_record, CompiledMapping};
use pipeline_benches::{
    typical_envelope, typical_integration, typical_record, typical_record_new_caller,
};

// The processor's and ingest's allocator (their main.rs), so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn mapping(c: &mut Criterion) {
    let integration = typical_integration();
    let compiled = CompiledMapping::compile(&integration).unwrap();
    let record = typical_record(1);
    let (envelope, position) = typical_envelope(&integration, &record);
    let now = Utc::now();
    assert!(map_record(&compiled, &envelope, position.clone(), now)
        .unwrap()
        .warnings
        .is_empty());

    let mut group = c.benchmark_group("map_record");
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("baseline", "serde_json::from_str::<Value>"),
        |b| {
            b.iter(|| {
                serde_json::from_str::<serde_json::Value>(std::hint::black_box(&record)).unwrap()
            })
        },
    );
    group.bench_function(BenchmarkId::new("figure", "map_record 17 rules"), |b| {
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
    // Every record from a caller not seen before (more callers than the phone
    // memory holds), the tracking number the same: what a busy network sends. The
    // figure above maps one record over and over, so both its numbers come from
    // the memory after the first time.
    let fresh: Vec<_> = (0..20_000)
        .map(|n| typical_envelope(&integration, &typical_record_new_caller(n)))
        .collect();
    let mut next = 0;
    group.bench_function(
        BenchmarkId::new("figure", "map_record 17 rules, a new caller each time"),
        |b| {
            b.iter(|| {
                let (envelope, position) = &fresh[next % fresh.len()];
                next += 1;
                map_record(&compiled, envelope, position.clone(), now).unwrap()
            })
        },
    );
    // What bounds mapping: the two phone numbers of the record alone (validated
    // against the numbering plan by the phonenumber crate).
    let region = schemas::phone::region("US").unwrap();
    group.bench_function(
        BenchmarkId::new("component", "E164::parse_uncached x2"),
        |b| {
            b.iter(|| {
                (
                    schemas::E164::parse_uncached(std::hint::black_box("(415) 555-2671"), region)
                        .unwrap(),
                    schemas::E164::parse_uncached(
                        std::hint::black_box("+1 (888) 555-0100"),
                        region,
                    )
                    .unwrap(),
                )
            })
        },
    );
    group.finish();
}

criterion_group!(benches, mapping);
criterion_main!(benches);

//! Splitting a 100-record webhook body into records with their exact bytes, against
//! the baseline of parsing the same body into `Vec<serde_json::Value>`, in one run.

// A benchmark that cannot set up should stop loudly.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ingest::webhook::{forms, parse_body};
use pipeline_benches::typical_record;

// The processor's and ingest's allocator (their main.rs), so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn webhook_body(c: &mut Criterion) {
    let records: Vec<String> = (0..100).map(typical_record).collect();
    let array = format!("[{}]", records.join(","));
    let ndjson = records.join("\n");

    let mut group = c.benchmark_group("webhook_body_100_records");
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("baseline", "serde_json Vec<Value>"), |b| {
        b.iter(|| {
            serde_json::from_str::<Vec<serde_json::Value>>(std::hint::black_box(&array)).unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("figure", "json array"), |b| {
        b.iter(|| parse_body(std::hint::black_box(array.as_bytes()), forms::JSON, 10_000).unwrap())
    });
    group.bench_function(BenchmarkId::new("figure", "ndjson"), |b| {
        b.iter(|| {
            parse_body(
                std::hint::black_box(ndjson.as_bytes()),
                forms::NDJSON,
                10_000,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, webhook_body);
criterion_main!(benches);

//! Map + coerce one typical record (parse, 17 rules over 20 source fields, E.164,
//! timestamp, money, duration) against the baseline of only parsing the same JSON
//! with serde_json, in the same run. Throughput is records/s on one core.

// A benchmark that cannot set up should stop loudly.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::mapping::{map_record, CompiledMapping};
use pipeline_benches::{typical_envelope, typical_integration, typical_record};

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
    group.finish();
}

criterion_group!(benches, mapping);
criterion_main!(benches);

//! Map + coerce one typical record (parse, 17 rules over 20 source fields, E.164,
//! timestamp, money, duration) against the baseline of only parsing the same JSON
//! with serde_json, in the same run. Throughput is records/s on one core. Two more
//! figures price issue 38's features on the same record: four custom attributes
//! (text, number, boolean, time), and declarative rules (a filter that does not
//! hold, a `when`, `cases`, a template, a computation, an extraction).

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
    // The same mapping with custom attributes, then with declarative rules.
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut definition = serde_json::to_value(&integration).unwrap();
        edit(&mut definition);
        let integration: schemas::Integration = serde_json::from_value(definition).unwrap();
        CompiledMapping::compile(&integration).unwrap()
    };
    let attributes = with(&|d| {
        d["mapping"]["attributes"] = serde_json::json!({
            "campaign_id": {"path": "call.campaign.id"},
            "notes": {"path": "call.extra.notes"},
            "payout_share": {"path": "call.campaign.id", "type": "number"},
            "called_back": {"path": "call.extra.notes", "type": "boolean", "map": {"called back": true}},
            "answered_at": {"path": "call.started_at", "type": "time"}
        });
    });
    let mapped = map_record(&attributes, &envelope, position.clone(), now).unwrap();
    assert_eq!(mapped.attributes.len(), 5, "{:?}", mapped.warnings);
    group.bench_function(
        BenchmarkId::new("figure", "map_record 17 rules + 5 attributes"),
        |b| {
            b.iter(|| {
                map_record(
                    &attributes,
                    std::hint::black_box(&envelope),
                    position.clone(),
                    now,
                )
                .unwrap()
            })
        },
    );
    let declarative = with(&|d| {
        let fields = &mut d["mapping"]["fields"];
        fields["payout"]["when"] =
            serde_json::json!({"path": "call.status", "in": ["Converted", "Sale"]});
        fields["campaign"] =
            serde_json::json!({"template": "{call.campaign.name} #{call.campaign.id}"});
        fields["revenue"] = serde_json::json!({"compute": {"op": "mul", "args": [{"path": "call.campaign.id"}, {"static": "1.5"}]}});
        fields["zip"] = serde_json::json!({"path": "call.caller.zip", "extract": "^(\\d{5})"});
        fields["buyer"] = serde_json::json!({"cases": [
            {"when": {"path": "call.publisher.name", "equals": "BlueMedia"}, "path": "call.buyer.name"}
        ], "static": "unknown"});
        d["mapping"]["filters"] = serde_json::json!([
            {"reason": "test call", "when": {"path": "call.campaign.name", "in": ["Test", "QA"]}}
        ]);
    });
    let mapped = map_record(&declarative, &envelope, position.clone(), now).unwrap();
    assert_eq!(mapped.campaign.as_deref(), Some("Auto Insurance CA #771"));
    group.bench_function(
        BenchmarkId::new("figure", "map_record 17 rules, 5 declarative + a filter"),
        |b| {
            b.iter(|| {
                map_record(
                    &declarative,
                    std::hint::black_box(&envelope),
                    position.clone(),
                    now,
                )
                .unwrap()
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
    // What drift detection adds to each record the processor decides: the
    // fingerprint of its keys and types (processor/src/source_keys.rs; a record of
    // a shape not seen this hour also has its keys read, rarely).
    group.bench_function(BenchmarkId::new("figure", "source keys fingerprint"), |b| {
        b.iter(|| schemas::source_keys::fingerprint(std::hint::black_box(&record)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, mapping);
criterion_main!(benches);

//! Start-up: the registry, the producer, the store, the ops port, the managed
//! numbers, and the workers (pipeline, dead-letter recorder, audit recorder,
//! rollup, CallMatrix linker, parking, each a batch consumer that commits only
//! after its writes; and retention, which applies the accounts' policies; the erasure worker, which
//! carries out the erasures asked for through the api).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::enrich::{Enricher, ManagedNumbers};
use runtime::kafka::AckedProducer;
use runtime::registry::IntegrationRegistry;
use runtime::shutdown::Shutdown;
use runtime::table::CompactedTable;
use schemas::callmatrix::ManagedNumber;

use crate::config::ProcessorConfig;
use crate::error::ProcessorError;
use crate::mutations::Mutations;
use crate::ops::{self, OpsState};
use crate::pipeline::Pipeline;
use crate::sink::BatchSink;
use crate::store::ClickHouseStore;
use crate::{audit, dead_letters, erasure_orders, linker, parking, retention, rollup};

/// The compacted managed-numbers topic, as the engine asks for it.
struct ManagedTable(CompactedTable<ManagedNumber>);

impl ManagedNumbers for ManagedTable {
    fn managed(&self, number: &str) -> Option<Arc<ManagedNumber>> {
        self.0.get(number)
    }
}

/// Runs until `shutdown`. Offsets of a batch whose writes did not finish are not
/// committed; the next owner of those partitions processes them again.
pub async fn run(
    config: ProcessorConfig,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: Shutdown,
) -> Result<(), ProcessorError> {
    let topics = config.kafka.topics();
    let initial_load = Duration::from_millis(config.registry.initial_load_ms);
    let registry =
        IntegrationRegistry::start(&config.kafka, shutdown.clone(), initial_load).await?;
    let producer = AckedProducer::new(&config.kafka)?;
    let clickhouse = config.clickhouse.client();
    tokio::spawn({
        let (client, config) = (clickhouse.clone(), config.clickhouse.clone());
        async move { crate::mutations::check_cluster_setting(&client, &config).await }
    });

    let listener = runtime::http::bind(config.http.listen).await?;
    let workers = runtime::workers::Workers::default();
    let ops_state = OpsState {
        clickhouse: clickhouse.clone(),
        producer: producer.clone(),
        metrics,
        workers: workers.clone(),
    };
    tokio::spawn(runtime::http::serve(
        listener,
        move |request| ops::handle(ops_state.clone(), request),
        shutdown.clone(),
        Duration::from_secs(1),
    ));

    let managed: Arc<dyn ManagedNumbers> = Arc::new(ManagedTable(
        CompactedTable::start(
            &config.kafka,
            &topics.cm_numbers,
            "managed-numbers",
            initial_load,
            shutdown.clone(),
            decode_managed_number,
        )
        .await?,
    ));
    let suppressions = crate::suppressions::Suppressions::new(
        CompactedTable::start(
            &config.kafka,
            &topics.suppressions,
            "suppressions",
            initial_load,
            shutdown.clone(),
            runtime::table::json,
        )
        .await?,
        config.retention.hash_key.clone(),
    );
    if config.retention.hash_key.is_empty() {
        tracing::warn!("retention.hash_key is not set: the suppression list and the keyed state name callers by an unkeyed hash, which a search over every number can reverse");
    }
    // Built now so the first batch does not pay for it.
    engine::enrich::geo::geo();
    let store = Arc::new(ClickHouseStore {
        client: clickhouse.clone(),
    });
    let sink = Arc::new(BatchSink {
        clickhouse,
        producer,
        topics: topics.clone(),
        max_backoff: Duration::from_millis(config.batch.max_backoff_ms),
    });
    let (max_records, max_wait) = (config.batch.max_records, config.batch.max_wait());
    let rollup_wait = config.batch.rollup_wait();
    // Every worker is supervised: one that stops before shutdown is logged at error,
    // fails `/healthz` and starts again from its last commit (`runtime::workers`).
    let mut handles = Vec::new();
    {
        let (kafka, sink, retention) =
            (config.kafka.clone(), sink.clone(), config.retention.clone());
        let target = Mutations::new(sink.clickhouse.clone(), &config.clickhouse);
        handles.push(workers.supervise("retention", shutdown.clone(), {
            let shutdown = shutdown.clone();
            move || {
                let (kafka, sink, retention, target, shutdown) = (
                    kafka.clone(),
                    sink.clone(),
                    retention.clone(),
                    target.clone(),
                    shutdown.clone(),
                );
                async move { retention::run(&kafka, &sink, &retention, &target, shutdown).await }
            }
        }));
    }
    {
        let (kafka, sink) = (config.kafka.clone(), sink.clone());
        let mutation_wait = Duration::from_secs(config.retention.mutation_wait_s);
        let target = Mutations::new(sink.clickhouse.clone(), &config.clickhouse);
        handles.push(
            workers.supervise("erasure-worker", shutdown.clone(), {
                let shutdown = shutdown.clone();
                move || {
                    let (kafka, sink, target, shutdown) = (
                        kafka.clone(),
                        sink.clone(),
                        target.clone(),
                        shutdown.clone(),
                    );
                    async move {
                        erasure_orders::run(&kafka, &sink, mutation_wait, &target, shutdown).await
                    }
                }
            }),
        );
    }
    {
        let (kafka, sink) = (config.kafka.clone(), sink.clone());
        handles.push(workers.supervise("audit-recorder", shutdown.clone(), {
            let shutdown = shutdown.clone();
            move || {
                let (kafka, sink, shutdown) = (kafka.clone(), sink.clone(), shutdown.clone());
                async move { audit::record(&kafka, &sink, max_records, max_wait, shutdown).await }
            }
        }));
    }
    {
        let (kafka, sink, registry) = (config.kafka.clone(), sink.clone(), registry.clone());
        handles.push(workers.supervise("deadletter-recorder", shutdown.clone(), {
            let shutdown = shutdown.clone();
            move || {
                let (kafka, sink, registry, shutdown) = (
                    kafka.clone(),
                    sink.clone(),
                    registry.clone(),
                    shutdown.clone(),
                );
                async move {
                    dead_letters::record(&kafka, &sink, &registry, max_records, max_wait, shutdown)
                        .await
                }
            }
        }));
    }
    {
        let (kafka, sink) = (config.kafka.clone(), sink.clone());
        handles.push(workers.supervise("rollup", shutdown.clone(), {
            let shutdown = shutdown.clone();
            move || {
                let (kafka, sink, shutdown) = (kafka.clone(), sink.clone(), shutdown.clone());
                async move { rollup::run(&kafka, &sink, max_records, rollup_wait, shutdown).await }
            }
        }));
    }
    {
        let linker = Arc::new(linker::Linker {
            sink: sink.clone(),
            managed: managed.clone(),
            max_records,
            max_wait,
        });
        let kafka = config.kafka.clone();
        handles.push(workers.supervise("callmatrix-linker", shutdown.clone(), {
            let shutdown = shutdown.clone();
            move || {
                let (linker, kafka, shutdown) = (linker.clone(), kafka.clone(), shutdown.clone());
                async move { linker.run(&kafka, shutdown).await }
            }
        }));
    }
    {
        let (kafka, sink) = (config.kafka.clone(), sink.clone());
        handles.push(workers.supervise("parking", shutdown.clone(), {
            let shutdown = shutdown.clone();
            move || {
                let (kafka, sink, shutdown) = (kafka.clone(), sink.clone(), shutdown.clone());
                async move { parking::run(&kafka, &sink, shutdown).await }
            }
        }));
    }
    // The keyed state outlives a restart of the pipeline (its local copy stays
    // valid); which partitions are caught up does not (the group is joined again),
    // nor do batches not yet logged (they are decided again from the last commit).
    let state = Arc::new(
        crate::state::KeyedState::open(
            &config.state.dir,
            crate::state::Changelog::new(sink.producer.clone(), &config.kafka),
            crate::state::CallerNames::new(&config.retention.hash_key),
            config.state.retention_days,
            config.state.sweep_per_batch,
        )
        .map_err(|e| ProcessorError::Stopped(e.to_string()))?,
    );
    {
        let config = config.clone();
        handles.push(workers.supervise("pipeline", shutdown.clone(), {
            let shutdown = shutdown.clone();
            move || {
                state.forget();
                let pipeline = Pipeline {
                    registry: registry.clone(),
                    registry_wait: Duration::from_millis(config.registry.wait_ms),
                    store: store.clone(),
                    state: state.clone(),
                    standby: (config.state.standby_interval_ms > 0)
                        .then(|| Duration::from_millis(config.state.standby_interval_ms)),
                    max_backoff: sink.max_backoff,
                    mappings: HashMap::new(),
                    enricher: Enricher {
                        managed: managed.clone(),
                    },
                    parking: config.parking.clone(),
                    max_message_bytes: config.kafka.max_message_bytes(),
                    source_keys: Default::default(),
                    erasing: Vec::new(),
                    suppressions: suppressions.clone(),
                    suppressing: Vec::new(),
                };
                let (sink, kafka, shutdown) =
                    (sink.clone(), config.kafka.clone(), shutdown.clone());
                let wait = config.batch.wait();
                async move {
                    pipeline
                        .run(&sink, &kafka, max_records, wait, shutdown)
                        .await
                }
            }
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    tracing::info!("processor stopped");
    Ok(())
}

fn decode_managed_number(key: &str, bytes: &[u8]) -> Result<ManagedNumber, String> {
    let number: ManagedNumber = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if number.number.as_str() != key {
        return Err(format!("key {key} and number {} disagree", number.number));
    }
    Ok(number)
}

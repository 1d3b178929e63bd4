//! Start-up: the registry, the producer, the store, the ops port, the managed
//! numbers, and the five workers (pipeline, dead-letter recorder, rollup, CallMatrix
//! linker, parking), each a batch consumer that commits only after its writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::enrich::history::Histories;
use engine::enrich::{Enricher, ManagedNumbers};
use runtime::kafka::AckedProducer;
use runtime::registry::IntegrationRegistry;
use runtime::shutdown::Shutdown;
use runtime::table::CompactedTable;
use schemas::callmatrix::ManagedNumber;

use crate::config::ProcessorConfig;
use crate::error::ProcessorError;
use crate::ops::{self, OpsState};
use crate::pipeline::Pipeline;
use crate::sink::BatchSink;
use crate::store::ClickHouseStore;
use crate::{dead_letters, linker, parking, rollup};

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

    let listener = runtime::http::bind(config.http.listen).await?;
    let ops_state = OpsState {
        clickhouse: clickhouse.clone(),
        producer: producer.clone(),
        metrics,
    };
    tokio::spawn(runtime::http::serve(
        listener,
        move |request| ops::handle(ops_state.clone(), request),
        shutdown.clone(),
        Duration::from_secs(1),
    ));

    let managed = CompactedTable::start(
        &config.kafka,
        &topics.cm_numbers,
        "managed-numbers",
        initial_load,
        shutdown.clone(),
        decode_managed_number,
    )
    .await?;
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
    let recorder = {
        let (kafka, sink, shutdown) = (config.kafka.clone(), sink.clone(), shutdown.clone());
        let registry = registry.clone();
        tokio::spawn(async move {
            if let Err(error) =
                dead_letters::record(&kafka, &sink, &registry, max_records, max_wait, shutdown)
                    .await
            {
                tracing::error!(%error, "dead-letter recorder stopped");
            }
        })
    };
    let rollup = {
        let (kafka, sink, shutdown) = (config.kafka.clone(), sink.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = rollup::run(&kafka, &sink, max_records, rollup_wait, shutdown).await
            {
                tracing::error!(%error, "rollup worker stopped");
            }
        })
    };
    let linker = {
        let linker = linker::Linker {
            sink: sink.clone(),
            store: store.clone(),
            registry: registry.clone(),
            max_records,
            max_wait,
            sweep_every: Duration::from_millis(config.enrichment.link_sweep_ms),
        };
        let (kafka, shutdown) = (config.kafka.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = linker.run(&kafka, shutdown).await {
                tracing::error!(%error, "CallMatrix linker stopped");
            }
        })
    };
    let parking = {
        let (kafka, sink, shutdown) = (config.kafka.clone(), sink.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = parking::run(&kafka, &sink, shutdown).await {
                tracing::error!(%error, "parking worker stopped");
            }
        })
    };
    let pipeline = Pipeline {
        registry,
        registry_wait: Duration::from_millis(config.registry.wait_ms),
        store,
        max_backoff: sink.max_backoff,
        mappings: HashMap::new(),
        enricher: Enricher {
            histories: Histories::new(
                config.enrichment.max_cached_callers,
                config.enrichment.max_cached_history_bytes,
            ),
            managed: Arc::new(ManagedTable(managed)),
        },
        parking: config.parking.clone(),
    };
    let consumed = pipeline
        .run(
            &sink,
            &config.kafka,
            max_records,
            config.batch.wait(),
            shutdown,
        )
        .await;
    let _ = recorder.await;
    let _ = linker.await;
    let _ = rollup.await;
    let _ = parking.await;
    tracing::info!("processor stopped");
    consumed
}

fn decode_managed_number(key: &str, bytes: &[u8]) -> Result<ManagedNumber, String> {
    let number: ManagedNumber = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if number.number.as_str() != key {
        return Err(format!("key {key} and number {} disagree", number.number));
    }
    Ok(number)
}

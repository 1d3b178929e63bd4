//! `cmctl replay`: the integration's current version from the registry, then the
//! replay itself (`runtime::replay`, shared with the api's replay endpoint).

use std::time::Duration;

use runtime::kafka::KafkaConfig;
use runtime::registry::IntegrationRegistry;
use runtime::replay::{ReplayReport, ReplaySource};
use runtime::shutdown::Shutdown;
use schemas::ClientId;

use crate::CtlError;

pub async fn replay(
    kafka: &KafkaConfig,
    client: &ClientId,
    source: ReplaySource,
    progress: impl FnMut(&ReplayReport),
) -> Result<ReplayReport, CtlError> {
    let (stop, shutdown) = Shutdown::new();
    let registry = IntegrationRegistry::start(kafka, shutdown, Duration::from_secs(30)).await?;
    let integration = registry.get(client);
    stop.trigger();
    let integration = integration
        .ok_or_else(|| CtlError::Replay(format!("no integration with client id {client}")))?;
    runtime::replay::replay(kafka, &integration, source, progress)
        .await
        .map_err(|e| CtlError::Replay(e.to_string()))
}

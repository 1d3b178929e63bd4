//! Topic creation through the Kafka admin API, so the same command sets up tansu
//! locally and Apache Kafka in production. Idempotent: existing topics are left alone.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaConfig;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("creating the Kafka admin client: {0}")]
    Create(KafkaError),
    #[error("creating topics: {0}")]
    Request(KafkaError),
    #[error("creating topic {topic}: {code:?}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// `cleanup.policy` and friends.
    pub settings: Vec<(String, String)>,
}

/// Creates the topics that do not exist yet; returns the names it created.
pub async fn ensure_topics(
    config: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<Vec<String>, AdminError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client_config()
        .create()
        .map_err(AdminError::Create)?;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            let mut topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(spec.replication),
            );
            for (key, value) in &spec.settings {
                topic = topic.set(key, value);
            }
            topic
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .map_err(AdminError::Request)?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    Ok(created)
}

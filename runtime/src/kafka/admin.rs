//! Topic creation through the Kafka admin API, so the same command sets up tansu
//! locally and Apache Kafka in production. Idempotent: existing topics keep their
//! partitions, and get the settings their spec names (`align_topic_settings`).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
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
    #[error("reading the settings of topic {topic}: {message}")]
    Describe { topic: String, message: String },
    #[error(transparent)]
    Alter(#[from] super::alter_configs::AlterError),
    #[error("changing topic settings: {0}")]
    Join(String),
}

/// One setting of an existing topic changed to what its spec says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    pub topic: String,
    pub key: String,
    /// `None`: the topic did not have it (the broker's default applied).
    pub before: Option<String>,
    pub after: String,
}

impl std::fmt::Display for SettingChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} -> {}",
            self.topic,
            self.key,
            self.before.as_deref().unwrap_or("(unset)"),
            self.after
        )
    }
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
    let admin = admin_client(config)?;
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

/// Gives each existing topic of `specs` the settings its spec names where they
/// differ (other settings are left alone); returns what changed. For a deployment
/// whose topics were created before a setting was part of their spec.
pub async fn align_topic_settings(
    config: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<Vec<SettingChange>, AdminError> {
    if specs.is_empty() {
        // librdkafka refuses a request about no resource (InvalidArgument).
        return Ok(Vec::new());
    }
    let admin = admin_client(config)?;
    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    let described = describe_topics(&admin, &names).await?;
    let mut changes = Vec::new();
    for (spec, resource) in specs.iter().zip(described) {
        for (key, value) in &spec.settings {
            let before = resource.get(key).and_then(|entry| entry.value.clone());
            if before.as_deref() != Some(value.as_str()) {
                changes.push(SettingChange {
                    topic: spec.name.clone(),
                    key: key.clone(),
                    before,
                    after: value.clone(),
                });
            }
        }
    }
    if changes.is_empty() {
        return Ok(changes);
    }
    let mut by_topic: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for change in &changes {
        let setting = (change.key.clone(), change.after.clone());
        match by_topic
            .iter_mut()
            .find(|(topic, _)| *topic == change.topic)
        {
            Some((_, settings)) => settings.push(setting),
            None => by_topic.push((change.topic.clone(), vec![setting])),
        }
    }
    tokio::task::spawn_blocking(move || {
        super::alter_configs::set_topic_settings(&admin, &by_topic, Duration::from_secs(10))
    })
    .await
    .map_err(|e| AdminError::Join(e.to_string()))??;
    Ok(changes)
}

fn admin_client(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, AdminError> {
    config.client_config().create().map_err(AdminError::Create)
}

/// The settings of each of `topics`, in order (every one, or the error naming the
/// topic that could not be described).
async fn describe_topics(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[&str],
) -> Result<Vec<rdkafka::admin::ConfigResource>, AdminError> {
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let resources: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let described = admin
        .describe_configs(resources.iter(), &options)
        .await
        .map_err(|e| AdminError::Describe {
            topic: topics.join(", "),
            message: e.to_string(),
        })?;
    topics
        .iter()
        .zip(described)
        .map(|(topic, result)| {
            result.map_err(|code| AdminError::Describe {
                topic: (*topic).to_owned(),
                message: format!("{code:?}"),
            })
        })
        .collect()
}

/// Apache Kafka's `log.retention.hours` default, which tansu applies too to a topic
/// that deletes and names no `retention.ms`.
const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest time any of `topics` keeps a record, from their settings: `None`
/// when one keeps records for ever (no `delete` in its `cleanup.policy`, which is
/// tansu's reading of a topic without one, or a `retention.ms` of -1).
pub async fn longest_retention(
    config: &KafkaConfig,
    topics: &[&str],
) -> Result<Option<Duration>, AdminError> {
    let described = describe_topics(&admin_client(config)?, topics).await?;
    let mut longest = Duration::ZERO;
    for resource in described {
        let setting = |key: &str| resource.get(key).and_then(|entry| entry.value.clone());
        let Some(retention) = retention_of(
            setting("cleanup.policy").as_deref(),
            setting("retention.ms").as_deref(),
        ) else {
            return Ok(None);
        };
        longest = longest.max(retention);
    }
    Ok(Some(longest))
}

/// How long a topic with these settings keeps a record; `None`: for ever.
fn retention_of(policy: Option<&str>, retention_ms: Option<&str>) -> Option<Duration> {
    if !policy.is_some_and(|p| p.split(',').any(|p| p.trim() == "delete")) {
        return None;
    }
    match retention_ms.map(|ms| ms.trim().parse::<i64>()) {
        None => Some(DEFAULT_RETENTION),
        Some(Ok(ms)) if ms >= 0 => Some(Duration::from_millis(ms.unsigned_abs())),
        // -1 (for ever), or a value the broker should not have taken.
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_keeps_records_for_its_retention_only_when_it_deletes() {
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(retention_of(Some("delete"), Some("86400000")), day);
        assert_eq!(retention_of(Some("compact,delete"), Some("86400000")), day);
        assert_eq!(retention_of(Some("delete"), None), Some(DEFAULT_RETENTION));
        // tansu ignores a retention without a delete policy.
        assert_eq!(retention_of(None, Some("86400000")), None);
        assert_eq!(retention_of(Some("compact"), Some("86400000")), None);
        assert_eq!(retention_of(Some("delete"), Some("-1")), None);
        assert_eq!(retention_of(Some("delete"), Some("soon")), None);
    }
}

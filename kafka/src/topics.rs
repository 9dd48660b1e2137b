//! The platform's topics, and their idempotent creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::{KafkaConfig, KafkaError};

/// `user-activity`: playback progress, bookmarks, erasure; keyed by user id.
pub const USER_ACTIVITY: &str = "user-activity";
/// `catalog`: contents upserted, unpublished, deleted; keyed by content id.
pub const CATALOG: &str = "catalog";
/// `orders`: orders placed, paid, shipped, delivered, cancelled; keyed by order id.
pub const ORDERS: &str = "orders";
/// `inventory`: stock adjusted, reserved, released; keyed by sku.
pub const INVENTORY: &str = "inventory";
/// The event topics, each keyed by its aggregate id (same list as `fleuve_schemas::topics()`).
pub const EVENT_TOPICS: [&str; 4] = [USER_ACTIVITY, CATALOG, ORDERS, INVENTORY];
/// `_schemas`: the schema registry's compacted, single-partition log.
pub const SCHEMAS: &str = "_schemas";

/// A topic the platform needs, with how it must be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Topic-level configuration (`cleanup.policy`, `retention.ms`, …).
    pub config: Vec<(String, String)>,
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication: 1,
            config: Vec::new(),
        }
    }

    /// Marks the topic as compacted (`cleanup.policy=compact`).
    pub fn compacted(mut self) -> Self {
        self.config
            .push(("cleanup.policy".to_owned(), "compact".to_owned()));
        self
    }
}

/// The registry's `_schemas` topic: one partition (its offsets are the schema ids), compacted.
pub fn schemas_topic() -> TopicSpec {
    TopicSpec::new(SCHEMAS, 1).compacted()
}

/// Every topic the platform needs, event topics with `partitions` partitions.
pub fn platform_topics(partitions: i32) -> Vec<TopicSpec> {
    std::iter::once(schemas_topic())
        .chain(EVENT_TOPICS.map(|t| TopicSpec::new(t, partitions)))
        .collect()
}

/// Creates the topics that do not exist yet; existing ones are left as they are (so a
/// deployment whose topics are managed elsewhere, by Strimzi `KafkaTopic` resources for
/// example, needs no create permission).
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config().create().map_err(KafkaError::Config)?;
    let existing = existing_topics(kafka).await?;
    let missing: Vec<&TopicSpec> = topics
        .iter()
        .filter(|t| !existing.iter().any(|e| e == &t.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            t.config.iter().fold(
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication),
                ),
                |nt, (k, v)| nt.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(|source| KafkaError::Admin {
            operation: "create_topics",
            source,
        })?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Names of the topics the cluster has.
pub async fn existing_topics(kafka: &KafkaConfig) -> Result<Vec<String>, KafkaError> {
    let config = kafka.client_config();
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = config.create()?;
        client
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|m| m.topics().iter().map(|t| t.name().to_owned()).collect())
    })
    .await
    .map_err(|e| KafkaError::CreateTopic {
        topic: "(metadata)".into(),
        reason: e.to_string(),
    })?
    .map_err(|source| KafkaError::Admin {
        operation: "fetch_metadata",
        source,
    })
}

/// End offset (high watermark: the offset the next record will get) of every partition of
/// `topic`, by partition. Blocking: call it from a blocking thread.
///
/// A topic the cluster does not have is an error naming it.
pub fn end_offsets(
    client: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<std::collections::BTreeMap<i32, i64>, KafkaError> {
    let admin = |operation, source| KafkaError::Admin { operation, source };
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| admin("fetch_metadata", e))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(KafkaError::UnknownTopic {
            topic: topic.to_owned(),
        });
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(KafkaError::UnknownTopic {
            topic: topic.to_owned(),
        });
    }
    let mut out = std::collections::BTreeMap::new();
    for p in t.partitions() {
        let (_, high) = client
            .fetch_watermarks(topic, p.id(), timeout)
            .map_err(|e| admin("fetch_watermarks", e))?;
        out.insert(p.id(), high);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rdkafka::mocking::MockCluster;

    use super::*;

    #[test]
    fn platform_topics_has_every_event_topic_with_the_same_partitions() {
        let topics = platform_topics(6);
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, [SCHEMAS, USER_ACTIVITY, CATALOG, ORDERS, INVENTORY]);
        assert_eq!(topics[0], schemas_topic());
        for t in &topics[1..] {
            assert_eq!(t.partitions, 6, "{}", t.name);
            assert!(t.config.is_empty(), "{} is not compacted", t.name);
        }
    }

    #[tokio::test]
    async fn existing_topics_are_left_alone() {
        // The mock cluster does not answer CreateTopics; topics that exist must not be
        // created again, so this completes without ever asking.
        let cluster = MockCluster::new(1).unwrap();
        for t in platform_topics(3) {
            cluster.create_topic(&t.name, t.partitions, 1).unwrap();
        }
        let kafka = KafkaConfig::new(cluster.bootstrap_servers());
        ensure_topics(&kafka, &platform_topics(3)).await.unwrap();
    }
}

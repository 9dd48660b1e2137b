//! Kafka plumbing shared by every Fleuve service.
//!
//! * [`KafkaConfig`]: typed client settings (bootstrap servers, client id, timeouts) with a
//!   raw passthrough for any other librdkafka property (TLS, SASL, tuning), so that no
//!   stringly-typed librdkafka setting leaks into service code.
//! * [`topics`]: the catalogue of the platform's topics and [`topics::ensure_topics`],
//!   which creates the missing ones idempotently at start-up.
//! * [`Position`]: where a produced event landed (`topic`, `partition`, `offset`) and the
//!   opaque token form a front hands back to the query API for read-your-writes.
//! * [`time`]: [`time::offsets_at`], the one time → offsets look-up of the platform (replay
//!   ranges, snapshots as of an instant): the broker's offsets-for-times answer checked
//!   against the records' timestamps, and found by a binary search over them when it is
//!   wrong or missing (Tansu 0.6.0 answers `0` past a partition's last record; the
//!   MockCluster answers no look-up by timestamp).
//!
//! ```no_run
//! # async fn demo() -> Result<(), fleuve_kafka::KafkaError> {
//! use fleuve_kafka::{topics, KafkaConfig};
//! let kafka = KafkaConfig::new("127.0.0.1:9092").with_client_id("my-service");
//! topics::ensure_topics(&kafka, &topics::platform_topics(3)).await?;
//! # Ok(()) }
//! ```

mod config;
mod position;
pub mod time;
pub mod topics;

pub use config::{KafkaConfig, QuietContext};
pub use position::{Position, PositionError};

/// An error talking to Kafka, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client could not be created from the configuration.
    #[error("invalid Kafka client configuration")]
    Config(#[source] rdkafka::error::KafkaError),
    /// An admin operation (topic creation, metadata) failed.
    #[error("Kafka admin operation `{operation}` failed")]
    Admin {
        operation: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A topic could not be created.
    #[error("could not create topic `{topic}`: {reason}")]
    CreateTopic { topic: String, reason: String },
    /// A topic the cluster does not have.
    #[error("topic `{topic}` does not exist on the cluster; create it (`fleuve topics create`, or the platform creates its topics at start)")]
    UnknownTopic { topic: String },
    /// A time → offsets look-up could not read the records it needed within its timeout.
    #[error(
        "looking up the offsets of `{topic}` at {at_ms} ms since the epoch took more than \
         {} s (reading partition {partition} at offset {offset}): is the broker at {brokers} \
         reachable? Try again, or give it a longer timeout",
        timeout.as_secs_f64()
    )]
    TimeLookupTimedOut {
        topic: String,
        partition: i32,
        offset: i64,
        at_ms: i64,
        brokers: String,
        timeout: std::time::Duration,
    },
}

/// Whether a Kafka client error may go away if the same operation is retried later (broker
/// down, timeout, queue full, leader election) as opposed to one that will fail again
/// (record too large, authorization, unknown topic).
pub fn is_retriable(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    !matches!(
        e.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessage
                | Code::InvalidMessageSize
                | Code::TopicAuthorizationFailed
                | Code::ClusterAuthorizationFailed
                | Code::UnknownTopicOrPartition
                | Code::UnknownTopic
                | Code::InvalidConfig
        )
    )
}

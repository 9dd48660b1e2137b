//! Publishing events to Fleuve.
//!
//! * [`Publisher`]: the Rust library. Idempotent producer with `acks=all`, keyed by the
//!   aggregate id, Avro in the Confluent wire format with the schema registered in the
//!   registry (subject `<topic>-<record full name>`), headers `event_type`, `event_id` and
//!   `correlation_id`. Every publish returns the event's [`fleuve_kafka::Position`].
//! * [`Publisher::publish_batch`]: several events checked first (all or nothing), then
//!   produced in order and acknowledged one by one.
//! * [`ingest`]: the HTTP ingest service (`POST /v1/events/{EventType}`, JSON in, Avro on
//!   Kafka), for services in any language.
//!
//! A runnable example publishing to the local platform (`make run` first):
//! `cargo run -p fleuve-producers --example publish` (`producers/examples/publish.rs`).
//!
//! A client retrying with the same `event_id` never creates a second effect: processors
//! apply events idempotently (the projection keeps the write with the highest event time and
//! offset, so re-applying the same event changes nothing). A retry after a delivery timeout
//! may still leave two records in Kafka with the same `event_id`; they carry the same values,
//! so projections end the same.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fleuve_producers::PublishError> {
//! use fleuve_kafka::KafkaConfig;
//! use fleuve_producers::{Publisher, PublisherConfig};
//! use fleuve_schemas::PlaybackProgressed;
//!
//! let publisher = Publisher::new(PublisherConfig::new(
//!     KafkaConfig::new("127.0.0.1:9092"),
//!     "http://127.0.0.1:8081",
//!     "player-backend",
//! ))?;
//! let event = PlaybackProgressed {
//!     event_id: uuid::Uuid::new_v4().to_string(),
//!     occurred_at: 1_795_341_600_000,
//!     producer: "player-backend".into(),
//!     correlation_id: None,
//!     user_id: "u-42".into(),
//!     content_id: "c-7".into(),
//!     position_ms: 60_000,
//!     duration_ms: 1_800_000,
//!     device: "web".into(),
//! };
//! let published = publisher.publish(&event).await?;
//! println!("at {}:{}:{} token {}", published.position.topic,
//!     published.position.partition, published.position.offset, published.position.token());
//! publisher.flush(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

pub mod ingest;
mod publisher;

pub use publisher::{PublishError, Published, Publisher, PublisherConfig};

//! Stream processors: they fold events from Kafka into read projections.
//!
//! * [`runtime`]: the consumer runtime every processor shares. A consumer group per
//!   processor; batches bounded by count and time; events decoded through the schema
//!   registry; the projection write and the per-partition checkpoints applied atomically by
//!   the handler; Kafka offsets stored only after that write. The store's checkpoint is the
//!   truth: events at or below it are skipped, and the consumer seeks back to it when Kafka's
//!   committed offset is ahead. Events that cannot be decoded or that the handler rejects go
//!   to `dlq.<processor>` with the reason in headers; transient store or registry errors are
//!   retried with backoff, never skipped.
//! * [`handlers`]: one folder per processor (`user_progress`, `bookmarks`, `catalog`,
//!   `orders`, `inventory`), each folding its events into its read model of
//!   `fleuve_projections`; a handler reads the rows it needs once per batch and returns the
//!   writes, or the reason it rejects an event. The catalogue's also has a timer, which opens
//!   and closes availability windows with no event.
//! * [`rebuild`]: builds a new version of a projection from the start of the log beside the
//!   live one (a bounded processor: no group, every partition up to end offsets), then
//!   switches the live processor and the query API to it; or a snapshot as of a past
//!   instant. `fleuve rebuild` drives it through the processors' admin endpoints.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use fleuve_kafka::KafkaConfig;
//! use fleuve_processors::handlers;
//! use fleuve_processors::runtime::{Processor, ProcessorConfig};
//!
//! let store = fleuve_projections::open("embedded://var/projections").await?;
//! let config = ProcessorConfig::new(KafkaConfig::new("127.0.0.1:9092"), "http://127.0.0.1:8081");
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let handler = handlers::by_name("user_progress").expect("a known processor");
//! Processor::new(config, handler, store)?.run(shutdown).await?;
//! # Ok(()) }
//! ```

pub mod handlers;
pub mod rebuild;
pub mod runtime;

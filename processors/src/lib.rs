//! Stream processors: they fold events from Kafka into read projections.
//!
//! * [`runtime`]: the consumer runtime every processor shares. Partitions owned by the
//!   process (embedded store) or shared in a consumer group per processor (ScyllaDB), and a
//!   watchdog that fails readiness on a stalled projection and rejoins a stuck group; batches bounded by count and time; events decoded through the schema
//!   registry; the handler's writes and the batch's checkpoints (per partition, the next
//!   offset to apply) handed to the store in one `Store::apply`; Kafka offsets stored only
//!   after it returns. The store's checkpoint is the truth: records below it are skipped,
//!   and the consumer seeks back to it when Kafka's committed offset is ahead. Events that
//!   cannot be decoded or that the handler rejects go to `dlq.<processor>` with the reason
//!   in headers; transient store or registry errors are retried with backoff, never skipped.
//! * [`handlers`]: one folder per processor (`user_progress`, `bookmarks`, `catalog`,
//!   `orders`, `inventory`), each folding its events into its read model of
//!   `fleuve_projections`; a handler reads the rows it needs once per batch and returns the
//!   writes, or the reason it rejects an event. The catalogue's also has a timer, which opens
//!   and closes availability windows with no event.
//! * [`rebuild`]: builds a new version of a projection from the start of the log beside the
//!   live one (a bounded processor: no group, every partition up to end offsets), then
//!   switches the live processor and the query API to it; or a snapshot as of a past
//!   instant. `fleuve rebuild` drives it through the processors' admin endpoints ([`admin`]).
//! * [`start`] ([`serve`]): the processors of one process, their builds and their ops
//!   server, as `fleuve process` runs them.
//!
//! # Exactly once in effect
//!
//! Kafka delivers at least once: after a crash or a rebalance the batch in flight comes
//! again. What one `apply` guarantees depends on the store, and on both the projection ends
//! as one clean pass over the log leaves it:
//!
//! * **Embedded store**: the batch's writes and its checkpoints are committed in one fjall
//!   write batch, atomically. After a crash both are there or neither is: the records of
//!   a committed batch come back below their checkpoint and are skipped, those of a batch
//!   that was not committed are applied as the first time.
//! * **ScyllaDB**: nothing larger than one row mutation is atomic. `apply` writes the
//!   batch's derived rows, then its state rows (`fleuve_projections::Writes`), then the
//!   checkpoints; every row mutation is written `USING TIMESTAMP` derived from its event's
//!   offset, every checkpoint `USING TIMESTAMP` its offset. A crash in between leaves rows
//!   ahead of their checkpoint, and the processor folds the same records again. The read
//!   models make that replay converge on a single apply: ScyllaDB keeps the write with the
//!   highest timestamp, so a replayed write of an earlier event never undoes a later one;
//!   rows that accumulate (stock, order timelines, catalogue state) carry the offset of the
//!   last event they applied, so a replayed event is recognised and skipped, neither
//!   applied twice nor rejected; and because derived rows are written first, a state row
//!   that does not show an event yet means the replay derives the same rows again, with the
//!   same timestamps. Checkpoints never move back: a lower offset has a lower timestamp.
//!
//! A dead letter may be written twice (it is sent before the `apply`). The golden tests
//! (`tests/golden.rs`) run every case on each backend they can reach, also with every batch
//! applied twice and with every batch cut short after its derived rows.
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

pub mod admin;
pub mod handlers;
pub mod rebuild;
pub mod runtime;
pub mod serve;

pub use serve::{start, ServiceConfig, StartError};

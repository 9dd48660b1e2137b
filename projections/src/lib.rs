//! Read projections: the models fronts read, the [`Store`] trait that holds them, and its
//! backends.
//!
//! Every projection is derived from Kafka and can be rebuilt from the log. A processor
//! applies a [`ProgressBatch`] — the rows and the per-partition checkpoints that go with them —
//! atomically, so a crash never leaves data ahead of or behind its checkpoint. Applies are
//! idempotent: a row only replaces one with an older [`EventVersion`] (last write wins on
//! event time, then log offset), so redelivered events change nothing.
//!
//! Backends are chosen by URL with [`open`]:
//!
//! | URL | backend | feature |
//! | --- | --- | --- |
//! | `embedded:///abs/path` or `embedded://rel/path` | [`embedded::EmbeddedStore`] (fjall) | `embedded` (default) |
//! | `scylla://host:9042/keyspace` | ScyllaDB | not available yet: [`StoreError::FeatureNotEnabled`] |
//!
//! ```no_run
//! # async fn demo() -> Result<(), fleuve_projections::StoreError> {
//! use fleuve_projections::{open, PageRequest};
//! let store = open("embedded://var/projections").await?;
//! let page = store.list_progress("u-1", PageRequest::first(20)).await?;
//! for p in page.items { println!("{} at {} ms", p.content_id, p.position_ms); }
//! # Ok(()) }
//! ```

#[cfg(feature = "embedded")]
pub mod embedded;
mod model;
mod store;

pub use model::{Checkpoint, EventVersion, Page, PageRequest, Progress, ProgressBatch};
pub use store::{open, Store, StoreError};

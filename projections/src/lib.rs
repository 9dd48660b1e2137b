//! Read projections: the models fronts read, the [`Store`] trait that holds them, and its
//! backends.
//!
//! Every projection is derived from Kafka and can be rebuilt from the log. A store holds
//! tables of partitioned, ordered rows ([`Write`], [`Row`]) and the checkpoints of the
//! processors that write them; a processor applies a [`WriteBatch`] — its writes and the
//! per-partition checkpoints that go with them — in one call. The read models, one module
//! each, name their tables, define their rows and offer typed reads:
//!
//! | module | processor | what fronts read |
//! | --- | --- | --- |
//! | [`progress`] | `user_progress` | progress per (user, content); the continue-watching list |
//! | [`bookmarks`] | `bookmarks` | bookmarks per user |
//! | [`catalog`] | `catalog` | publishable contents by id; a programme's seasons and episodes |
//! | [`orders`] | `orders` | orders by id with their status timeline; by buyer; by seller |
//! | [`inventory`] | `inventory` | stock per sku |
//!
//! [`Staging`] is the read-before-write helper processors fold batches with; [`paging`]
//! turns partitions into pages with opaque cursors. [`versions`] keeps several builds of a
//! projection in one store (a rebuild beside the live one, snapshots as of a past instant)
//! and routes reads and writes to the right one. [`testing`] opens a fresh store of each
//! backend for test suites, and [`backend_tests!`] runs a suite's cases against every one.
//!
//! Backends are chosen by URL with [`open`] (module `open.rs`, the only one that knows
//! every backend; the backends import `store` only, so no module imports one that imports
//! it back):
//!
//! | URL | backend | feature |
//! | --- | --- | --- |
//! | `embedded:///abs/path` or `embedded://rel/path` | [`embedded::EmbeddedStore`] (fjall) | `embedded` (default) |
//! | `scylla://host:9042,host2/keyspace?replication_factor=3&local_dc=dc1` | [`scylla::ScyllaStore`] (ScyllaDB) | `scylla` (default) |
//!
//! ```no_run
//! # async fn demo() -> Result<(), fleuve_projections::StoreError> {
//! use fleuve_projections::{open, progress, PageRequest};
//! let store = open("embedded://var/projections").await?;
//! let page = progress::continue_watching(&*store, "u-1", &PageRequest::first(20)).await?;
//! for item in page.items { println!("{} at {} ms", item.content_id, item.position_ms); }
//! # Ok(()) }
//! ```

pub mod bookmarks;
pub mod catalog;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod inventory;
pub mod json;
mod model;
mod models;
mod open;
pub mod orders;
pub mod paging;
pub mod progress;
mod read_model;
#[cfg(feature = "scylla")]
pub mod scylla;
mod staging;
mod store;
pub mod testing;
pub mod versions;

pub use model::{stamp, Checkpoint, Page, PageRequest};
pub use models::{model, tables, MODELS};
pub use open::open;
pub use read_model::ReadModel;
pub use staging::Staging;
pub use store::{Row, Store, StoreError, TableRow, Write, WriteBatch, Writes};

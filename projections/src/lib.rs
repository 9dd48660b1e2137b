//! Read projections: the models fronts read, the [`Store`] trait that holds them, and its
//! backends.
//!
//! Every projection is derived from Kafka and can be rebuilt from the log. A store holds
//! tables of partitioned, ordered rows ([`Write`], [`Row`]) and the checkpoints of the
//! processors that write them; a processor applies a [`WriteBatch`] — its writes and the
//! per-partition checkpoints that go with them — in one call.
//!
//! Each read model is declared once, in its module: a [`ReadModel`] (`MODEL`: its name, the
//! topics its processor folds, its tables), registered in [`MODELS`]; one typed [`Table`]
//! per table (name, what its partition and clustering keys are, its row type, stored as
//! JSON) with the read and write helpers its processor and its queries use; the functions
//! that build its clustering keys; and the queries fronts make:
//!
//! | module | processor | tables (`Table<row>`) | what fronts read |
//! | --- | --- | --- | --- |
//! | [`progress`] | `user_progress` | `PROGRESS` (`Progress`), `CONTINUE_WATCHING` (`ContinueWatching`) | progress per (user, content); the continue-watching list |
//! | [`bookmarks`] | `bookmarks` | `BOOKMARKS`, `BOOKMARK_KEYS` (`Bookmark`) | bookmarks per user |
//! | [`catalog`] | `catalog` | `CONTENT` (`ContentState`), `LIVE` (`LiveEntry`), `EPISODES` (`EpisodeEntry`), `SCHEDULE` (`ScheduledEdge`) | publishable contents by id; a programme's seasons and episodes |
//! | [`orders`] | `orders` | `ORDERS` (`Order`), `ORDERS_BY_BUYER`, `ORDERS_BY_SELLER` (`OrderSummary`) | orders by id with their status timeline; by buyer; by seller |
//! | [`inventory`] | `inventory` | `STOCK` (`Stock`), `STOCK_RESERVATIONS` (`Reservation`) | stock per sku |
//!
//! A read model's `TABLES` (the names its `MODEL` lists, which versions and tools walk) is
//! built from its typed tables' names, so the two cannot disagree. A processor writes only
//! through the typed helpers ([`Table::put`], [`Table::delete`],
//! [`Table::delete_partition`], …), and keeps only the logic from events to rows.
//!
//! [`Staging`] is the read-before-write helper processors fold batches with (the typed
//! [`Table`] helpers write through it); [`paging`] turns partitions into pages with opaque
//! cursors; [`json`] decodes rows, naming the one that does not. [`versions`] keeps several
//! builds of a projection in one store (a rebuild beside the live one, snapshots as of a
//! past instant) and routes reads and writes to the right one. [`testing`] opens a fresh store of each
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

#[cfg(feature = "embedded")]
pub mod embedded;
pub mod json;
mod model;
mod models;
mod open;
pub mod paging;
mod read_model;
#[cfg(feature = "scylla")]
pub mod scylla;
mod staging;
mod store;
mod table;
pub mod testing;
pub mod versions;

pub use model::{stamp, Checkpoint, Page, PageRequest};
pub use models::{model, tables};
pub use open::open;
pub use read_model::ReadModel;
pub use staging::Staging;
pub use store::{Row, Store, StoreError, TableRow, Write, WriteBatch, Writes};
pub use table::{Encoded, RowOf, Table};

/// The one registration list of read models: calls `$declare!` with the module name of
/// each, in the order tools list them. This crate declares with it each read model's module
/// (its declaration: `MODEL`, typed tables and helpers) and [`MODELS`]; `fleuve-processors`
/// a handler module of the same name, `fleuve-query-api` a routes module of the same name.
/// Adding a read model is adding its name here and writing those three modules.
#[macro_export]
macro_rules! read_models {
    ($declare:ident) => {
        $declare!(progress, bookmarks, catalog, orders, inventory);
    };
}

macro_rules! declare_models {
    ($($model:ident),*) => {
        $(pub mod $model;)*

        /// Every read model, in the order tools list them (see [`read_models!`]).
        pub const MODELS: &[&ReadModel] = &[$(&$model::MODEL),*];
    };
}

read_models!(declare_models);

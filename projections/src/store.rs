//! The [`Store`] trait every backend implements, what it reads and writes ([`Write`],
//! [`Row`], [`WriteBatch`]) and its errors. Backends (`embedded/`, `scylla/`) import this
//! module only; [`crate::open`] (in `open.rs`) chooses one by URL.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::model::Checkpoint;

/// Errors of a projection store. [`StoreError::is_transient`] tells a processor whether to
/// retry with backoff (never skip) or to stop.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names a backend this build does not include.
    #[error("store backend `{scheme}` is not compiled in: rebuild with the `{feature}` feature")]
    FeatureNotEnabled {
        scheme: String,
        feature: &'static str,
    },
    /// The URL could not be understood.
    #[error("invalid store URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A pagination cursor that this store did not issue.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// The store is temporarily unavailable (I/O hiccup, timeout, node down): retry.
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// Data in the store could not be read back: a bug or corruption; stop.
    #[error("corrupt data in the store at `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
    /// The store holds data in a layout this release does not read.
    #[error("{0}")]
    Incompatible(String),
    /// Any other backend failure; stop.
    #[error("store failure: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// A [`StoreError::Corrupt`] for a value that does not decode.
    pub fn corrupt(table: &str, pk: &str, ck: &str, reason: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            key: format!("{table}/{pk}/{ck}"),
            reason: reason.to_string(),
        }
    }
}

/// One change to one projection table. A table is a set of partitions (`pk`), each an
/// ordered set of rows (`ck`, compared as bytes); a row holds an opaque value (the read
/// models in this crate write JSON).
///
/// `ts` orders writes to the same row: each row is written by exactly one Kafka partition
/// (its key is derived from the event key), in log order, so a processor derives `ts` from
/// the offset and it only grows. The embedded store applies writes in the order given;
/// ScyllaDB writes them `USING TIMESTAMP ts`, so that a stale write (a consumer that lost its
/// partition and does not know it yet) can never overwrite a newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Creates or replaces a row.
    Put {
        table: &'static str,
        pk: String,
        ck: String,
        value: Vec<u8>,
        ts: i64,
    },
    /// Removes a row (absent rows are fine).
    Delete {
        table: &'static str,
        pk: String,
        ck: String,
        ts: i64,
    },
    /// Removes every row of a partition.
    DeletePartition {
        table: &'static str,
        pk: String,
        ts: i64,
    },
}

impl Write {
    /// The table written.
    pub fn table(&self) -> &'static str {
        match self {
            Write::Put { table, .. }
            | Write::Delete { table, .. }
            | Write::DeletePartition { table, .. } => table,
        }
    }
}

/// A batch's writes, in two groups. A processor decides what to write by reading some rows
/// (its *state*: an order's status, a stock count, a progress row) and writes others that
/// derive from them (list entries, indexes, views). Backends that cannot apply a batch
/// atomically (ScyllaDB) write every derived row before any state row: if they stop
/// half-way, the state rows still say the events are to be applied, so the replayed batch
/// folds the same way and writes the same derived rows again. [`crate::Staging`] sorts writes
/// into the two groups by the tables it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writes {
    /// Rows derived from the state; applied in order, before `state`.
    pub derived: Vec<Write>,
    /// Rows the processor reads back to decide; applied in order, after `derived`.
    pub state: Vec<Write>,
}

impl Writes {
    /// Number of writes.
    pub fn len(&self) -> usize {
        self.derived.len() + self.state.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.derived.is_empty() && self.state.is_empty()
    }

    /// Every write, derived ones first.
    pub fn into_iter_all(self) -> impl Iterator<Item = Write> {
        self.derived.into_iter().chain(self.state)
    }
}

/// Writes that are all derived (no state row): tools and tests that write rows directly.
impl From<Vec<Write>> for Writes {
    fn from(derived: Vec<Write>) -> Self {
        Self {
            derived,
            state: Vec::new(),
        }
    }
}

/// Writes and checkpoints applied together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// Name of the projection whose checkpoints these are (its processor's name).
    pub projection: String,
    /// Applied derived first, then state; within each group in order (a later write to the
    /// same row wins).
    pub writes: Writes,
    /// Next offsets to read; a checkpoint never moves backwards.
    pub checkpoints: Vec<Checkpoint>,
}

/// A row read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub ck: String,
    pub value: Vec<u8>,
}

/// A row read by a full-table scan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRow {
    pub pk: String,
    pub ck: String,
    pub value: Vec<u8>,
}

/// A projection store: tables of partitioned, ordered rows, and the checkpoints of the
/// processors that write them.
///
/// Contract, checked by the conformance suite on every backend:
/// * [`Store::apply`] applies the writes in order and raises the checkpoints (never lowers
///   them). The embedded store applies a batch atomically. ScyllaDB applies the derived
///   writes, then the state writes, then the checkpoints ([`Writes`]), so a crash in between
///   leaves rows ahead of their checkpoint; the processor then replays the batch, which the
///   read models make idempotent (state rows carry the offset they have applied, so a
///   replayed event is recognised; derived rows are rewritten identically).
/// * Reads see every batch whose `apply` has returned.
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// Applies writes and checkpoints (see the trait docs).
    async fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// One row's value.
    async fn get(&self, table: &str, pk: &str, ck: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Several rows' values, in the order of `keys` (`None` where absent).
    async fn get_many(
        &self,
        table: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Up to `limit` rows of one partition in `ck` order, starting after `after` (from the
    /// first row when `None`).
    async fn scan(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError>;

    /// Up to `limit` rows of a whole table in (`pk`, `ck`) order, after the given row. Meant
    /// for tools and tests (comparing two builds of a projection), not for serving.
    async fn scan_table(
        &self,
        table: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<TableRow>, StoreError>;

    /// The next offset `projection` has to apply in one partition, if it has applied
    /// anything there.
    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError>;

    /// Every checkpoint of `projection`.
    async fn checkpoints(&self, projection: &str) -> Result<Vec<Checkpoint>, StoreError>;

    /// Checks that the store answers (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;
}

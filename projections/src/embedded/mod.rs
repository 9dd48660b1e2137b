//! The embedded backend: a [fjall](https://docs.rs/fjall) 3 database in a local directory.
//!
//! Three keyspaces (fjall's column families) hold the data; their key layout is described
//! in `keys.rs`, the value encodings in `codec.rs`:
//!
//! * `rows`: every row of every projection table, keyed by table, partition and
//!   clustering key;
//! * `checkpoints`: one `next_offset` per (projection, topic, partition);
//! * `meta`: the layout version.
//!
//! [`Store::apply`] resolves the batch's writes in order (a partition delete removes the
//! rows stored before it and the ones written earlier in the batch), raises the checkpoints
//! and commits everything in **one** fjall write batch, which fjall applies atomically
//! across keyspaces. Applies are serialized by a mutex so that the read-compare-write of
//! checkpoints and partition deletes cannot race with another apply in the same process
//! (fjall itself locks the directory against other processes). Write timestamps (`ts`) are
//! not stored: a row's writes arrive in timestamp order (see [`crate::Write`]).
//!
//! Durability ([`Durability`]): by default each batch is committed with fjall's
//! `PersistMode::Buffer`: when `apply` returns,
//! the journal entry has been written to the OS (not just to fjall's user-space buffer),
//! so it survives a crash or `kill -9` of the process. It does not `fsync`, so an OS crash
//! or power loss may lose the last batches — but rows and checkpoints are lost *together*
//! (one journal entry), so the store stays consistent and a processor that resumes from the
//! store's checkpoints replays what was lost from Kafka. [`Durability::PowerLoss`] adds an
//! `fdatasync` per batch. See `docs/storage-engine.md`.
//!
//! fjall calls block. Point reads ([`Store::get`], [`Store::checkpoint`], and
//! [`Store::get_many`] of at most [`INLINE_KEYS`] keys) run inline on the calling task: a
//! lookup is about a microsecond from fjall's block cache or the OS page cache, while a hop
//! through Tokio's blocking pool costs ten times that (half of a query API read's CPU,
//! `make bench` §5). Everything else (applies, scans, large `get_many`s) runs on the
//! blocking pool.

mod codec;
mod keys;

use std::collections::HashMap;
use std::hash::Hasher as _;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable as _, Slice};
use rustc_hash::{FxBuildHasher, FxHasher};

use crate::model::Checkpoint;
use crate::store::{Row, Store, StoreError, TableRow, Write, WriteBatch};

const KS_ROWS: &str = "rows";
const KS_CHECKPOINTS: &str = "checkpoints";
const KS_META: &str = "meta";
/// A keyspace of the first layout (before `rows`), which this release does not read.
const KS_LEGACY: &str = "progress";

/// What a returned [`Store::apply`] survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// The batch is written to the OS (fjall `PersistMode::Buffer`): it survives a crash or
    /// `kill -9` of the process, not an OS crash or power loss. The default.
    #[default]
    ProcessCrash,
    /// The journal is `fdatasync`ed at each commit (fjall `PersistMode::SyncData`): it also
    /// survives power loss, at the cost of one sync per batch.
    PowerLoss,
}

impl Durability {
    fn persist_mode(self) -> PersistMode {
        match self {
            Durability::ProcessCrash => PersistMode::Buffer,
            Durability::PowerLoss => PersistMode::SyncData,
        }
    }
}

/// Projection store in a local fjall database. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: Database,
    rows: Keyspace,
    checkpoints: Keyspace,
    /// Serializes applies (partition deletes and checkpoints read before they write).
    write_lock: Mutex<()>,
    persist_mode: PersistMode,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Maps a fjall error to a store error, telling apart what a retry may fix.
fn map_err(context: &str, e: fjall::Error) -> StoreError {
    use std::io::ErrorKind;
    let transient_io = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::Interrupted
                | ErrorKind::WouldBlock
                | ErrorKind::TimedOut
                | ErrorKind::ResourceBusy
        )
    };
    match &e {
        fjall::Error::Io(io) if transient_io(io) => {
            StoreError::Unavailable(format!("{context}: {io}"))
        }
        fjall::Error::Storage(fjall::LsmError::Io(io)) if transient_io(io) => {
            StoreError::Unavailable(format!("{context}: {io}"))
        }
        // Another process holds the database: it may go away.
        fjall::Error::Locked => StoreError::Unavailable(format!(
            "{context}: the database directory is locked by another process"
        )),
        fjall::Error::Storage(
            fjall::LsmError::ChecksumMismatch { .. }
            | fjall::LsmError::Decompress(_)
            | fjall::LsmError::InvalidTrailer
            | fjall::LsmError::InvalidHeader(_)
            | fjall::LsmError::InvalidTag(_),
        )
        | fjall::Error::Decompress(_)
        | fjall::Error::InvalidTrailer
        | fjall::Error::InvalidTag(_)
        | fjall::Error::JournalRecovery(_) => StoreError::Corrupt {
            key: "<fjall data files>".into(),
            reason: format!("{context}: {e}"),
        },
        // Poisoned (a failed journal write), unrecoverable, plain I/O errors such as a
        // full disk or a permission problem: retrying the same call will not help.
        _ => StoreError::Backend(format!("{context}: {e}")),
    }
}

/// Runs blocking fjall work on the blocking pool.
/// Most keys a [`Store::get_many`] reads inline rather than on the blocking pool.
pub const INLINE_KEYS: usize = 8;

async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("embedded store task failed: {e}")))?
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the database in directory `path`, relative to the
    /// current directory unless absolute.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        Self::open_with_durability(path, Durability::default()).await
    }

    /// [`EmbeddedStore::open`] with another durability than the default
    /// ([`Durability::ProcessCrash`]).
    pub async fn open_with_durability(
        path: &str,
        durability: Durability,
    ) -> Result<Self, StoreError> {
        let path = PathBuf::from(path);
        blocking(move || Self::open_blocking(&path, durability)).await
    }

    fn open_blocking(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| {
            StoreError::Backend(format!("cannot create directory {}: {e}", path.display()))
        })?;
        let ctx = || format!("opening the embedded store at {}", path.display());
        let db = Database::builder(path)
            .open()
            .map_err(|e| map_err(&ctx(), e))?;
        let ks = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| map_err(&ctx(), e))
        };
        if db.keyspace_exists(KS_LEGACY) {
            return Err(StoreError::Incompatible(format!(
                "the embedded store at {} was written by an older release in a layout this one \
                 does not read; projections are derived from Kafka: stop the processors, delete \
                 the directory and start them again to rebuild it",
                path.display()
            )));
        }
        let rows = ks(KS_ROWS)?;
        let checkpoints = ks(KS_CHECKPOINTS)?;
        let meta = ks(KS_META)?;
        match meta.get(b"format").map_err(|e| map_err(&ctx(), e))? {
            Some(v) if &*v == codec::LAYOUT_VERSION => {}
            Some(v) => {
                return Err(StoreError::Incompatible(format!(
                    "the embedded store at {} has layout version {:?}, this release reads {:?}; \
                     delete the directory to rebuild the projections from Kafka",
                    path.display(),
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(codec::LAYOUT_VERSION)
                )))
            }
            None => meta
                .insert(b"format", codec::LAYOUT_VERSION)
                .map_err(|e| map_err(&ctx(), e))?,
        }
        tracing::info!(path = %path.display(), ?durability, "embedded projection store open");
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                db,
                rows,
                checkpoints,
                write_lock: Mutex::new(()),
                persist_mode: durability.persist_mode(),
            }),
        })
    }

    /// Directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes the database takes on disk (tables and journals).
    pub async fn disk_space(&self) -> Result<u64, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .db
                .disk_space()
                .map_err(|e| map_err("measuring disk space", e))
        })
        .await
    }
}

/// A batch's net effect per row key, in order of first write: a later write to the same key
/// replaces the earlier one in place (`None` removes the row). fjall gives every item of a
/// batch the same sequence number, so a key must appear once.
struct NetWrites {
    entries: Vec<(Slice, Option<Vec<u8>>)>,
    /// Hash of a key → index of the first entry with that hash (a collision falls back to
    /// a scan of the entries).
    index: HashMap<u64, usize, FxBuildHasher>,
}

impl NetWrites {
    fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
            index: HashMap::with_capacity_and_hasher(n, FxBuildHasher),
        }
    }

    fn set(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        let hash = {
            let mut h = FxHasher::default();
            h.write(key);
            h.finish()
        };
        match self.index.get(&hash) {
            None => {
                self.index.insert(hash, self.entries.len());
                self.entries.push((Slice::new(key), value));
            }
            Some(&i) if &*self.entries[i].0 == key => self.entries[i].1 = value,
            Some(_) => match self.entries.iter_mut().find(|(k, _)| &**k == key) {
                Some(entry) => entry.1 = value,
                None => self.entries.push((Slice::new(key), value)),
            },
        }
    }
}

impl Inner {
    fn apply_blocking(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut checkpoints: HashMap<(&str, i32), i64> = HashMap::new();
        for c in &batch.checkpoints {
            checkpoints
                .entry((c.topic.as_str(), c.partition))
                .and_modify(|cur| *cur = (*cur).max(c.next_offset))
                .or_insert(c.next_offset);
        }

        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);

        let mut net = NetWrites::with_capacity(batch.writes.len());
        let mut key = Vec::with_capacity(128);
        for write in batch.writes.derived.into_iter().chain(batch.writes.state) {
            match write {
                Write::Put {
                    table,
                    pk,
                    ck,
                    value,
                    ..
                } => {
                    keys::row_key_into(&mut key, table, &pk, &ck);
                    net.set(&key, Some(value));
                }
                Write::Delete { table, pk, ck, .. } => {
                    keys::row_key_into(&mut key, table, &pk, &ck);
                    net.set(&key, None);
                }
                Write::DeletePartition { table, pk, .. } => {
                    // Rows written earlier in the batch, then those stored.
                    let prefix = keys::partition_prefix(table, &pk);
                    for (k, v) in &mut net.entries {
                        if k.starts_with(&prefix) {
                            *v = None;
                        }
                    }
                    for guard in self.rows.prefix(&prefix) {
                        let stored = guard
                            .key()
                            .map_err(|e| map_err("scanning a partition to delete it", e))?;
                        net.set(&stored, None);
                    }
                }
            }
        }

        // In key order, as fjall's memtable (a skip list) takes them fastest.
        net.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut wb = fjall::OwnedWriteBatch::with_capacity(
            self.db.clone(),
            net.entries.len() + checkpoints.len(),
        )
        .durability(Some(self.persist_mode));
        for (key, value) in net.entries {
            match value {
                Some(v) => wb.insert(&self.rows, key, v),
                None => wb.remove(&self.rows, key),
            }
        }
        for ((topic, partition), next_offset) in checkpoints {
            let key = keys::checkpoint_key(&batch.projection, topic, partition);
            let old = self
                .checkpoints
                .get(&key)
                .map_err(|e| map_err("reading a checkpoint", e))?;
            if let Some(old) = old {
                if codec::decode_checkpoint(&key, &old)? >= next_offset {
                    continue;
                }
            }
            wb.insert(
                &self.checkpoints,
                key,
                codec::encode_checkpoint(next_offset),
            );
        }

        if wb.is_empty() {
            return Ok(());
        }
        let items = wb.len();
        wb.commit()
            .map_err(|e| map_err("committing a projection batch", e))?;
        tracing::trace!(items, projection = %batch.projection, "batch committed");
        Ok(())
    }
}

impl Inner {
    fn get_blocking(&self, table: &str, pk: &str, ck: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.rows
            .get(keys::row_key(table, pk, ck))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| map_err("reading a row", e))
    }

    /// Reads the rows whose keys are `keys[ends[i-1]..ends[i]]`.
    fn get_many_blocking(
        &self,
        keys_: &[u8],
        ends: &[usize],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let snap = self.db.snapshot();
        let mut start = 0;
        ends.iter()
            .map(|&end| {
                let key = &keys_[start..end];
                start = end;
                snap.get(&self.rows, key)
                    .map(|v| v.map(|v| v.to_vec()))
                    .map_err(|e| map_err("reading a row", e))
            })
            .collect()
    }

    fn scan_blocking(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let prefix = keys::partition_prefix(table, pk);
        let lower = match after {
            Some(ck) => Bound::Excluded(keys::row_key(table, pk, ck)),
            None => Bound::Included(prefix.clone()),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        for guard in self.rows.range((lower, Bound::<Vec<u8>>::Unbounded)) {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| map_err("scanning a partition", e))?;
            if !key.starts_with(&prefix) {
                break;
            }
            let ck =
                std::str::from_utf8(&key[prefix.len()..]).map_err(|_| StoreError::Corrupt {
                    key: keys::display_key(&key),
                    reason: "clustering key is not UTF-8".into(),
                })?;
            out.push(Row {
                ck: ck.to_owned(),
                value: value.to_vec(),
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn scan_table_blocking(
        &self,
        table: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<TableRow>, StoreError> {
        let prefix = keys::table_prefix(table);
        let lower = match after {
            Some((pk, ck)) => Bound::Excluded(keys::row_key(table, pk, ck)),
            None => Bound::Included(prefix.clone()),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        for guard in self.rows.range((lower, Bound::<Vec<u8>>::Unbounded)) {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| map_err("scanning a table", e))?;
            if !key.starts_with(&prefix) {
                break;
            }
            let parsed = keys::parse_row_key(&key).ok_or_else(|| StoreError::Corrupt {
                key: keys::display_key(&key),
                reason: "malformed row key".into(),
            })?;
            out.push(TableRow {
                pk: parsed.pk.to_owned(),
                ck: parsed.ck.to_owned(),
                value: value.to_vec(),
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn checkpoint_blocking(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError> {
        let key = keys::checkpoint_key(projection, topic, partition);
        match self
            .checkpoints
            .get(&key)
            .map_err(|e| map_err("reading a checkpoint", e))?
        {
            Some(v) => codec::decode_checkpoint(&key, &v).map(Some),
            None => Ok(None),
        }
    }

    fn checkpoints_blocking(&self, projection: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let mut out = Vec::new();
        for guard in self.checkpoints.prefix(keys::projection_prefix(projection)) {
            let (key, value) = guard
                .into_inner()
                .map_err(|e| map_err("reading checkpoints", e))?;
            let Some((p, topic, partition)) = keys::parse_checkpoint_key(&key) else {
                return Err(StoreError::Corrupt {
                    key: keys::display_key(&key),
                    reason: "malformed checkpoint key".into(),
                });
            };
            if p != projection {
                continue;
            }
            out.push(Checkpoint {
                topic: topic.to_owned(),
                partition,
                next_offset: codec::decode_checkpoint(&key, &value)?,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.writes.is_empty() && batch.checkpoints.is_empty() {
            return Ok(());
        }
        let inner = self.inner.clone();
        blocking(move || inner.apply_blocking(batch)).await
    }

    async fn get(&self, table: &str, pk: &str, ck: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // A point lookup: inline (see the module docs).
        self.inner.get_blocking(table, pk, ck)
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // The row keys, built here in one buffer, move to the blocking task whole.
        let mut buf = Vec::with_capacity(
            keys.iter()
                .map(|(pk, ck)| 8 + table.len() + pk.len() + ck.len())
                .sum(),
        );
        let mut ends = Vec::with_capacity(keys.len());
        for (pk, ck) in keys {
            keys::push_row_key(&mut buf, table, pk, ck);
            ends.push(buf.len());
        }
        if keys.len() <= INLINE_KEYS {
            return self.inner.get_many_blocking(&buf, &ends);
        }
        let inner = self.inner.clone();
        blocking(move || inner.get_many_blocking(&buf, &ends)).await
    }

    async fn scan(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let inner = self.inner.clone();
        let (table, pk, after) = (table.to_owned(), pk.to_owned(), after.map(str::to_owned));
        blocking(move || inner.scan_blocking(&table, &pk, after.as_deref(), limit)).await
    }

    async fn scan_table(
        &self,
        table: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<TableRow>, StoreError> {
        let inner = self.inner.clone();
        let table = table.to_owned();
        let after = after.map(|(p, c)| (p.to_owned(), c.to_owned()));
        blocking(move || {
            inner.scan_table_blocking(
                &table,
                after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())),
                limit,
            )
        })
        .await
    }

    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError> {
        // A point lookup: inline (see the module docs).
        self.inner.checkpoint_blocking(projection, topic, partition)
    }

    async fn checkpoints(&self, projection: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let inner = self.inner.clone();
        let projection = projection.to_owned();
        blocking(move || inner.checkpoints_blocking(&projection)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .checkpoints
                .first_key_value()
                .map(|g| g.key())
                .transpose()
                .map(|_| ())
                .map_err(|e| map_err("pinging the embedded store", e))
        })
        .await
    }
}

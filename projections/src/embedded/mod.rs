//! The embedded backend: a [fjall](https://docs.rs/fjall) 3 database in a local directory.
//!
//! Three keyspaces (fjall's column families) hold the data; their key layout is described
//! in `keys.rs`, the value encodings in `codec.rs`:
//!
//! * `progress`: one row per (user, content);
//! * `progress_recent`: a secondary index, per user, newest `occurred_at` first, for
//!   [`Store::list_progress`];
//! * `checkpoints`: one `next_offset` per (projection, topic, partition).
//!
//! [`Store::apply`] reads the current rows, keeps only the upserts whose [`EventVersion`]
//! is greater (last write wins), and commits the new rows, the index moves and the
//! checkpoints in **one** fjall write batch, which fjall applies atomically across
//! keyspaces. Applies are serialized by a mutex so that the read-compare-write cannot
//! race with another apply in the same process (fjall itself locks the directory against
//! other processes).
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
//! All fjall calls block, so they run on Tokio's blocking pool.
//!
//! [`EventVersion`]: crate::EventVersion

mod codec;
mod keys;

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable as _};

use crate::{Checkpoint, Page, PageRequest, Progress, ProgressBatch, Store, StoreError};

const KS_PROGRESS: &str = "progress";
const KS_RECENT: &str = "progress_recent";
const KS_CHECKPOINTS: &str = "checkpoints";

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
    progress: Keyspace,
    recent: Keyspace,
    checkpoints: Keyspace,
    /// Serializes applies (read current rows, compare versions, commit).
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
        let progress = ks(KS_PROGRESS)?;
        let recent = ks(KS_RECENT)?;
        let checkpoints = ks(KS_CHECKPOINTS)?;
        tracing::info!(path = %path.display(), ?durability, "embedded projection store open");
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                db,
                progress,
                recent,
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

impl Inner {
    fn apply_blocking(&self, batch: ProgressBatch) -> Result<(), StoreError> {
        // Resolve the batch in memory first: per key, the upsert with the greatest version
        // (on a tie, the first one, so re-applying is a no-op).
        let mut latest: HashMap<(&str, &str), &Progress> = HashMap::new();
        for p in &batch.upserts {
            latest
                .entry((p.user_id.as_str(), p.content_id.as_str()))
                .and_modify(|cur| {
                    if p.version > cur.version {
                        *cur = p;
                    }
                })
                .or_insert(p);
        }
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
        let mut wb = self.db.batch().durability(Some(self.persist_mode));

        for p in latest.into_values() {
            let key = keys::row_key(&p.user_id, &p.content_id);
            let old = self
                .progress
                .get(&key)
                .map_err(|e| map_err("reading a progress row", e))?;
            if let Some(old) = old {
                let old = codec::decode_row(&key, &p.user_id, &p.content_id, &old)?;
                if old.version >= p.version {
                    continue;
                }
                if old.version.occurred_at_ms != p.version.occurred_at_ms {
                    wb.remove(
                        &self.recent,
                        keys::recent_key(&p.user_id, old.version.occurred_at_ms, &p.content_id),
                    );
                }
            }
            wb.insert(&self.progress, key, codec::encode_row(p)?);
            wb.insert(
                &self.recent,
                keys::recent_key(&p.user_id, p.version.occurred_at_ms, &p.content_id),
                Vec::new(),
            );
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

    fn checkpoint_blocking(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let key = keys::checkpoint_key(projection, topic, partition);
        let Some(v) = self
            .checkpoints
            .get(&key)
            .map_err(|e| map_err("reading a checkpoint", e))?
        else {
            return Ok(None);
        };
        Ok(Some(Checkpoint {
            topic: topic.to_owned(),
            partition,
            next_offset: codec::decode_checkpoint(&key, &v)?,
        }))
    }

    fn get_blocking(
        &self,
        user_id: &str,
        content_id: &str,
    ) -> Result<Option<Progress>, StoreError> {
        let key = keys::row_key(user_id, content_id);
        match self
            .progress
            .get(&key)
            .map_err(|e| map_err("reading a progress row", e))?
        {
            Some(v) => codec::decode_row(&key, user_id, content_id, &v).map(Some),
            None => Ok(None),
        }
    }

    fn list_blocking(
        &self,
        user_id: &str,
        page: PageRequest,
    ) -> Result<Page<Progress>, StoreError> {
        let prefix = keys::user_prefix(user_id);
        let lower = match page.cursor.as_deref() {
            Some(c) => Bound::Excluded(codec::decode_cursor(c, user_id)?),
            None => Bound::Included(prefix.clone()),
        };
        if page.limit == 0 {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        // Index and rows read from one snapshot, so a concurrent apply cannot show a row
        // at an index position it no longer has.
        let snap = self.db.snapshot();
        let mut items = Vec::with_capacity(page.limit.min(1024));
        let mut last_key: Option<Vec<u8>> = None;
        let mut has_more = false;
        for guard in snap.range(&self.recent, (lower, Bound::<Vec<u8>>::Unbounded)) {
            let (key, _) = guard
                .into_inner()
                .map_err(|e| map_err("scanning the recent-progress index", e))?;
            if !key.starts_with(&prefix) {
                break;
            }
            if items.len() == page.limit {
                has_more = true;
                break;
            }
            let entry = keys::parse_recent_key(&key).ok_or_else(|| StoreError::Corrupt {
                key: keys::display_key(&key),
                reason: "malformed recent-progress index key".into(),
            })?;
            let row_key = keys::row_key(entry.user_id, entry.content_id);
            let value = snap
                .get(&self.progress, &row_key)
                .map_err(|e| map_err("reading a progress row", e))?
                .ok_or_else(|| StoreError::Corrupt {
                    key: keys::display_key(&key),
                    reason: "index entry without a progress row".into(),
                })?;
            let row = codec::decode_row(&row_key, entry.user_id, entry.content_id, &value)?;
            if row.version.occurred_at_ms != entry.occurred_at_ms {
                return Err(StoreError::Corrupt {
                    key: keys::display_key(&key),
                    reason: "stale index entry (row has another occurred_at)".into(),
                });
            }
            items.push(row);
            last_key = Some(key.to_vec());
        }
        let next_cursor = match (has_more, last_key) {
            (true, Some(k)) => Some(codec::encode_cursor(&k)),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn apply(&self, batch: ProgressBatch) -> Result<(), StoreError> {
        if batch.upserts.is_empty() && batch.checkpoints.is_empty() {
            return Ok(());
        }
        let inner = self.inner.clone();
        blocking(move || inner.apply_blocking(batch)).await
    }

    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let inner = self.inner.clone();
        let (projection, topic) = (projection.to_owned(), topic.to_owned());
        blocking(move || inner.checkpoint_blocking(&projection, &topic, partition)).await
    }

    async fn get_progress(
        &self,
        user_id: &str,
        content_id: &str,
    ) -> Result<Option<Progress>, StoreError> {
        let inner = self.inner.clone();
        let (user_id, content_id) = (user_id.to_owned(), content_id.to_owned());
        blocking(move || inner.get_blocking(&user_id, &content_id)).await
    }

    async fn list_progress(
        &self,
        user_id: &str,
        page: PageRequest,
    ) -> Result<Page<Progress>, StoreError> {
        let inner = self.inner.clone();
        let user_id = user_id.to_owned();
        blocking(move || inner.list_blocking(&user_id, page)).await
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

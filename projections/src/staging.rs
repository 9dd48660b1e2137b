//! Read-before-write for processors: a batch's reads and writes, folded in memory.
//!
//! A processor folds a batch of events into writes. Many events need the current row (the
//! order's status, the stock counts, the previous progress to move its index entry), and
//! several events of one batch may touch the same row. [`Staging`] reads each row once
//! ([`Staging::prefetch`] reads many in one call), then serves later reads from what the
//! batch has written so far, and collects the writes in order for one
//! [`Store::apply`](crate::Store::apply).
//!
//! Reading before writing is safe because each row has a single writer: the processor that
//! owns the Kafka partition its key comes from.
//!
//! [`Staging::into_writes`] sorts the writes into [`Writes`]: writes to a table the batch
//! read (through this staging, or declared with [`Staging::note_read`]) are *state*, the
//! others *derived*, which a non-atomic backend writes first (see [`Writes`]).

use std::collections::{HashMap, HashSet};

use rustc_hash::FxBuildHasher;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::{Store, StoreError, Write, Writes};

/// What the batch knows of a row.
enum Slot {
    /// Read from the store (`None`: absent).
    Read(Option<Vec<u8>>),
    /// Last written by the batch's write at this index (a put or a delete).
    Written(usize),
}

/// Appends the map key of a row to `out`: the table, the partition key's length, the
/// partition key and the clustering key, so that no two rows share one (a partition key
/// may hold any character, the length tells where it ends).
fn row_key_into(out: &mut String, table: &str, pk: &str, ck: &str) {
    use std::fmt::Write as _;
    out.clear();
    out.reserve(table.len() + pk.len() + ck.len() + 8);
    out.push_str(table);
    out.push('\0');
    let _ = write!(out, "{}", pk.len());
    out.push('\0');
    out.push_str(pk);
    out.push_str(ck);
}

/// The rows a batch has read and written (see the module docs).
pub struct Staging<'s> {
    store: &'s dyn Store,
    /// Keyed by [`row_key_into`], hashed with `rustc-hash`'s Fx hash: the keys are built
    /// by the processor itself from its events' keys, and SipHash was a visible share of a
    /// batch's fold.
    rows: HashMap<String, Slot, FxBuildHasher>,
    cleared: HashSet<(&'static str, String)>,
    /// Tables read (a handful per batch).
    read: Vec<&'static str>,
    writes: Vec<Write>,
    /// Reused to build map keys for look-ups.
    key_buf: String,
    /// Reused to encode JSON rows (the row gets an exact-size copy).
    json_buf: Vec<u8>,
}

impl std::fmt::Debug for Staging<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("rows", &self.rows.len())
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

impl<'s> Staging<'s> {
    pub fn new(store: &'s dyn Store) -> Self {
        Self::with_capacity(store, 0)
    }

    /// A staging sized for about `writes` writes (and as many rows).
    pub fn with_capacity(store: &'s dyn Store, writes: usize) -> Self {
        Self {
            store,
            rows: HashMap::with_capacity_and_hasher(writes, FxBuildHasher),
            cleared: HashSet::new(),
            read: Vec::new(),
            writes: Vec::with_capacity(writes),
            key_buf: String::new(),
            json_buf: Vec::new(),
        }
    }

    /// Records that the batch reads `table`. Writes are only indexed by row for the tables
    /// read (the others are never looked up): the writes made to `table` before it was
    /// first read are indexed now, in order.
    fn note(&mut self, table: &'static str) {
        if self.read.contains(&table) {
            return;
        }
        self.read.push(table);
        let mut key = std::mem::take(&mut self.key_buf);
        for (i, w) in self.writes.iter().enumerate() {
            match w {
                Write::Put {
                    table: t, pk, ck, ..
                }
                | Write::Delete {
                    table: t, pk, ck, ..
                } if *t == table => {
                    row_key_into(&mut key, table, pk, ck);
                    self.rows.insert(key.clone(), Slot::Written(i));
                }
                Write::DeletePartition { table: t, pk, .. } if *t == table => {
                    row_key_into(&mut key, table, pk, "");
                    self.rows.retain(|k, _| !k.starts_with(key.as_str()));
                }
                _ => {}
            }
        }
        self.key_buf = key;
    }

    fn is_cleared(&self, table: &'static str, pk: &str) -> bool {
        !self.cleared.is_empty() && self.cleared.contains(&(table, pk.to_owned()))
    }

    /// Reads the rows not known yet among `keys` (`(pk, ck)` pairs) in one store call.
    pub async fn prefetch(
        &mut self,
        table: &'static str,
        keys: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), StoreError> {
        self.note(table);
        let mut key = std::mem::take(&mut self.key_buf);
        let mut missing: Vec<(String, String)> = keys
            .into_iter()
            .filter(|(pk, ck)| {
                row_key_into(&mut key, table, pk, ck);
                !self.is_cleared(table, pk) && !self.rows.contains_key(key.as_str())
            })
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            self.key_buf = key;
            return Ok(());
        }
        let values = self.store.get_many(table, &missing).await?;
        self.rows.reserve(missing.len());
        for ((pk, ck), value) in missing.iter().zip(values) {
            row_key_into(&mut key, table, pk, ck);
            self.rows.insert(key.clone(), Slot::Read(value));
        }
        self.key_buf = key;
        Ok(())
    }

    /// The row as the batch sees it: its last write in the batch, else the store's.
    pub async fn get(
        &mut self,
        table: &'static str,
        pk: &str,
        ck: &str,
    ) -> Result<Option<&[u8]>, StoreError> {
        self.note(table);
        row_key_into(&mut self.key_buf, table, pk, ck);
        if !self.rows.contains_key(self.key_buf.as_str()) {
            let value = if self.is_cleared(table, pk) {
                None
            } else {
                self.store.get(table, pk, ck).await?
            };
            // `key_buf` is not touched across the await: it still holds this row's key.
            self.rows.insert(self.key_buf.clone(), Slot::Read(value));
        }
        Ok(match self.rows.get(self.key_buf.as_str()) {
            Some(Slot::Read(value)) => value.as_deref(),
            Some(Slot::Written(i)) => match self.writes.get(*i) {
                Some(Write::Put { value, .. }) => Some(value.as_slice()),
                _ => None,
            },
            None => None,
        })
    }

    /// [`Staging::get`], decoded from JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &mut self,
        table: &'static str,
        pk: &str,
        ck: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get(table, pk, ck).await? {
            Some(bytes) => crate::json::decode(table, pk, ck, bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Records that the write about to be pushed is the row's last (if the batch reads the
    /// table; see [`Staging::note`]).
    fn written(&mut self, table: &'static str, pk: &str, ck: &str) {
        if !self.read.contains(&table) {
            return;
        }
        row_key_into(&mut self.key_buf, table, pk, ck);
        let at = self.writes.len();
        match self.rows.get_mut(self.key_buf.as_str()) {
            Some(slot) => *slot = Slot::Written(at),
            None => {
                self.rows.insert(self.key_buf.clone(), Slot::Written(at));
            }
        }
    }

    /// Creates or replaces a row.
    pub fn put(&mut self, table: &'static str, pk: &str, ck: &str, value: Vec<u8>, ts: i64) {
        self.written(table, pk, ck);
        self.writes.push(Write::Put {
            table,
            pk: pk.to_owned(),
            ck: ck.to_owned(),
            value,
            ts,
        });
    }

    /// A value encoded as JSON, as [`Staging::put_json`] writes it (to write the same value
    /// to several rows with [`Staging::put`], encoding it once).
    pub fn encode_json<T: Serialize + ?Sized>(
        &mut self,
        table: &'static str,
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        self.json_buf.clear();
        serde_json::to_writer(&mut self.json_buf, value).map_err(|e| {
            StoreError::Backend(format!("could not encode a row of `{table}`: {e}"))
        })?;
        Ok(self.json_buf.as_slice().to_vec())
    }

    /// [`Staging::put`] of a value encoded as JSON.
    pub fn put_json<T: Serialize + ?Sized>(
        &mut self,
        table: &'static str,
        pk: &str,
        ck: &str,
        value: &T,
        ts: i64,
    ) -> Result<(), StoreError> {
        let bytes = self.encode_json(table, value)?;
        self.put(table, pk, ck, bytes, ts);
        Ok(())
    }

    /// Removes a row.
    pub fn delete(&mut self, table: &'static str, pk: &str, ck: &str, ts: i64) {
        self.written(table, pk, ck);
        self.writes.push(Write::Delete {
            table,
            pk: pk.to_owned(),
            ck: ck.to_owned(),
            ts,
        });
    }

    /// Removes every row of a partition.
    pub fn delete_partition(&mut self, table: &'static str, pk: &str, ts: i64) {
        let mut prefix = String::new();
        row_key_into(&mut prefix, table, pk, "");
        self.rows.retain(|k, _| !k.starts_with(prefix.as_str()));
        self.cleared.insert((table, pk.to_owned()));
        self.writes.push(Write::DeletePartition {
            table,
            pk: pk.to_owned(),
            ts,
        });
    }

    /// Number of writes so far.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Declares that the batch decided on rows of `table` read outside this staging (a
    /// scan): its writes are state writes.
    pub fn note_read(&mut self, table: &'static str) {
        self.note(table);
    }

    /// The writes, in order within each group: to tables the batch read (state), and to the
    /// others (derived).
    pub fn into_writes(self) -> Writes {
        let read = self.read;
        let state_count = self
            .writes
            .iter()
            .filter(|w| read.contains(&w.table()))
            .count();
        if state_count == 0 {
            return Writes {
                derived: self.writes,
                state: Vec::new(),
            };
        }
        if state_count == self.writes.len() {
            return Writes {
                derived: Vec::new(),
                state: self.writes,
            };
        }
        let mut derived = Vec::with_capacity(self.writes.len() - state_count);
        let mut state = Vec::with_capacity(state_count);
        for w in self.writes {
            if read.contains(&w.table()) {
                state.push(w);
            } else {
                derived.push(w);
            }
        }
        Writes { derived, state }
    }
}

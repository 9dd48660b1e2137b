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

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Store, StoreError, Write, Writes};

type Key = (&'static str, String, String);

/// What the batch knows of a row.
enum Slot {
    /// Read from the store (`None`: absent).
    Read(Option<Vec<u8>>),
    /// Last written by the batch's write at this index (a put or a delete).
    Written(usize),
}

/// The rows a batch has read and written (see the module docs).
pub struct Staging<'s> {
    store: &'s dyn Store,
    rows: HashMap<Key, Slot>,
    cleared: HashSet<(&'static str, String)>,
    read: HashSet<&'static str>,
    writes: Vec<Write>,
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
        Self {
            store,
            rows: HashMap::new(),
            cleared: HashSet::new(),
            read: HashSet::new(),
            writes: Vec::new(),
        }
    }

    /// Reads the rows not known yet among `keys` (`(pk, ck)` pairs) in one store call.
    pub async fn prefetch(
        &mut self,
        table: &'static str,
        keys: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), StoreError> {
        self.read.insert(table);
        let mut missing: Vec<(String, String)> = keys
            .into_iter()
            .filter(|(pk, ck)| {
                !self.cleared.contains(&(table, pk.clone()))
                    && !self.rows.contains_key(&(table, pk.clone(), ck.clone()))
            })
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let values = self.store.get_many(table, &missing).await?;
        for ((pk, ck), value) in missing.into_iter().zip(values) {
            self.rows.insert((table, pk, ck), Slot::Read(value));
        }
        Ok(())
    }

    /// The row as the batch sees it: its last write in the batch, else the store's.
    pub async fn get(
        &mut self,
        table: &'static str,
        pk: &str,
        ck: &str,
    ) -> Result<Option<&[u8]>, StoreError> {
        self.read.insert(table);
        let key = (table, pk.to_owned(), ck.to_owned());
        if !self.rows.contains_key(&key) {
            let value = if self.cleared.contains(&(table, pk.to_owned())) {
                None
            } else {
                self.store.get(table, pk, ck).await?
            };
            self.rows.insert(key.clone(), Slot::Read(value));
        }
        Ok(match self.rows.get(&key) {
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

    /// Creates or replaces a row.
    pub fn put(&mut self, table: &'static str, pk: &str, ck: &str, value: Vec<u8>, ts: i64) {
        self.rows.insert(
            (table, pk.to_owned(), ck.to_owned()),
            Slot::Written(self.writes.len()),
        );
        self.writes.push(Write::Put {
            table,
            pk: pk.to_owned(),
            ck: ck.to_owned(),
            value,
            ts,
        });
    }

    /// [`Staging::put`] of a value encoded as JSON.
    pub fn put_json<T: Serialize>(
        &mut self,
        table: &'static str,
        pk: &str,
        ck: &str,
        value: &T,
        ts: i64,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            StoreError::Backend(format!("could not encode a row of `{table}`: {e}"))
        })?;
        self.put(table, pk, ck, bytes, ts);
        Ok(())
    }

    /// Removes a row.
    pub fn delete(&mut self, table: &'static str, pk: &str, ck: &str, ts: i64) {
        self.rows.insert(
            (table, pk.to_owned(), ck.to_owned()),
            Slot::Written(self.writes.len()),
        );
        self.writes.push(Write::Delete {
            table,
            pk: pk.to_owned(),
            ck: ck.to_owned(),
            ts,
        });
    }

    /// Removes every row of a partition.
    pub fn delete_partition(&mut self, table: &'static str, pk: &str, ts: i64) {
        self.rows.retain(|(t, p, _), _| !(*t == table && p == pk));
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
        self.read.insert(table);
    }

    /// The writes, in order within each group: to tables the batch read (state), and to the
    /// others (derived).
    pub fn into_writes(self) -> Writes {
        let (state, derived) = self
            .writes
            .into_iter()
            .partition(|w| self.read.contains(w.table()));
        Writes { derived, state }
    }
}

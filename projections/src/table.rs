//! Typed tables: what a read model declares of each of its tables, and the only way its
//! processor and its queries reach the rows.
//!
//! A [`Table<R>`] names a table of the store, says what its partition key and its rows
//! (clustering keys, in their order) are, and fixes the type `R` of its rows, stored as
//! JSON through serde (see [`crate::json`]). Its helpers read and write rows of that type:
//!
//! | side | helpers |
//! | --- | --- |
//! | queries, on a [`Store`] | [`Table::get`], [`Table::get_many`], [`Table::page`], [`Table::scan`]; [`Table::scan_table`] for tools |
//! | processors, on a [`Staging`] | reads: [`Table::prefetch`], [`Table::fetch`] (and [`Table::fetch_bytes`] to decode a borrowing view); writes: [`Table::put`], [`Table::delete`], [`Table::delete_partition`]; [`Table::encode`] then [`Table::put_encoded`] to write one encoding to several rows |
//!
//! Keys stay strings built by the read model's own functions (`bookmark_ck`, `list_ck`, …),
//! so the stored rows are the same bytes as before tables were typed.
//!
//! A type that encodes as the same JSON as `R` — a view borrowing its text instead of
//! owning it — is declared so with [`RowOf`], and can then be written to (or decoded from)
//! a `Table<R>`.
//!
//! ```
//! use fleuve_projections::progress::{Progress, PROGRESS};
//! use fleuve_projections::Table;
//!
//! fn declared(t: &Table<Progress>) -> (&str, &str) {
//!     (t.name(), t.partition())
//! }
//! assert_eq!(declared(&PROGRESS), ("progress", "user id"));
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::{Page, PageRequest};
use crate::staging::Staging;
use crate::store::{Store, StoreError};

/// A type whose JSON is a row of `R`: `R` itself, or a view of an `R` with the same fields
/// in the same order (`OrderRow` for `Order`). Implement it only for such types: the table
/// takes the encoding as an `R`'s.
pub trait RowOf<R> {}

impl<R> RowOf<R> for R {}

/// A table of a read model, holding rows of type `R` (see the module docs).
pub struct Table<R> {
    name: &'static str,
    partition: &'static str,
    rows: &'static str,
    row: PhantomData<fn() -> R>,
}

impl<R> Clone for Table<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Table<R> {}

impl<R> fmt::Debug for Table<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.name)
            .field("partition", &self.partition)
            .field("rows", &self.rows)
            .field("row", &std::any::type_name::<R>())
            .finish()
    }
}

/// A row encoded for a [`Table<R>`] by [`Table::encode`], to write it to several rows (of
/// tables of the same row type) with [`Table::put_encoded`] without encoding it again.
pub struct Encoded<R> {
    bytes: Vec<u8>,
    row: PhantomData<fn() -> R>,
}

impl<R> Clone for Encoded<R> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            row: PhantomData,
        }
    }
}

impl<R> fmt::Debug for Encoded<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoded")
            .field("row", &std::any::type_name::<R>())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl<R> Table<R> {
    /// Declares table `name`: `partition` says what a partition key is (`"user id"`),
    /// `rows` what its rows are and in which order they sort.
    pub const fn new(name: &'static str, partition: &'static str, rows: &'static str) -> Self {
        Self {
            name,
            partition,
            rows,
            row: PhantomData,
        }
    }

    /// The table's name in the store.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// What a partition key of this table is.
    pub const fn partition(&self) -> &'static str {
        self.partition
    }

    /// What the rows of a partition are, and their clustering order.
    pub const fn rows(&self) -> &'static str {
        self.rows
    }

    /// Decodes a row of this table; [`StoreError::Corrupt`] naming the row when it does not.
    pub fn decode(&self, pk: &str, ck: &str, bytes: &[u8]) -> Result<R, StoreError>
    where
        R: DeserializeOwned,
    {
        crate::json::decode(self.name, pk, ck, bytes)
    }

    /// Decodes a row of this table as a view `V` that may borrow from `bytes`.
    pub fn decode_as<'a, V>(&self, pk: &str, ck: &str, bytes: &'a [u8]) -> Result<V, StoreError>
    where
        V: RowOf<R> + Deserialize<'a>,
    {
        crate::json::decode_borrowed(self.name, pk, ck, bytes)
    }

    /// One row.
    pub async fn get(&self, store: &dyn Store, pk: &str, ck: &str) -> Result<Option<R>, StoreError>
    where
        R: DeserializeOwned,
    {
        crate::json::get(store, self.name, pk, ck).await
    }

    /// Several rows in one store call, in the order of `keys` (`(pk, ck)` pairs; `None`
    /// where absent).
    pub async fn get_many(
        &self,
        store: &dyn Store,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<R>>, StoreError>
    where
        R: DeserializeOwned,
    {
        let values = store.get_many(self.name, keys).await?;
        keys.iter()
            .zip(values)
            .map(|((pk, ck), value)| match value {
                Some(v) => self.decode(pk, ck, &v).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// One page of a partition, in clustering order (see [`crate::paging::page`]).
    pub async fn page(
        &self,
        store: &dyn Store,
        pk: &str,
        request: &PageRequest,
    ) -> Result<Page<R>, StoreError>
    where
        R: DeserializeOwned,
    {
        crate::json::page(store, self.name, pk, request).await
    }

    /// Up to `limit` rows of a partition in clustering order, after `after` (from the first
    /// when `None`), each with its clustering key.
    pub async fn scan(
        &self,
        store: &dyn Store,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, R)>, StoreError>
    where
        R: DeserializeOwned,
    {
        store
            .scan(self.name, pk, after, limit)
            .await?
            .into_iter()
            .map(|row| {
                let value = self.decode(pk, &row.ck, &row.value)?;
                Ok((row.ck, value))
            })
            .collect()
    }

    /// Up to `limit` rows of the whole table in (partition, clustering) order, after the given
    /// row, each with its keys: for tools and seeding, not for serving (see
    /// [`Store::scan_table`]).
    pub async fn scan_table(
        &self,
        store: &dyn Store,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, R)>, StoreError>
    where
        R: DeserializeOwned,
    {
        store
            .scan_table(self.name, after, limit)
            .await?
            .into_iter()
            .map(|row| {
                let value = self.decode(&row.pk, &row.ck, &row.value)?;
                Ok((row.pk, row.ck, value))
            })
            .collect()
    }

    /// Reads the rows among `keys` (`(pk, ck)` pairs) the batch does not know yet, in one
    /// store call (see [`Staging::prefetch`]).
    pub async fn prefetch(
        &self,
        st: &mut Staging<'_>,
        keys: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), StoreError> {
        st.prefetch(self.name, keys).await
    }

    /// The row as the batch sees it (see [`Staging::get`]).
    pub async fn fetch(
        &self,
        st: &mut Staging<'_>,
        pk: &str,
        ck: &str,
    ) -> Result<Option<R>, StoreError>
    where
        R: DeserializeOwned,
    {
        st.get_json(self.name, pk, ck).await
    }

    /// The row's bytes as the batch sees them, to decode a borrowing view with
    /// [`Table::decode_as`].
    pub async fn fetch_bytes<'a>(
        &self,
        st: &'a mut Staging<'_>,
        pk: &str,
        ck: &str,
    ) -> Result<Option<&'a [u8]>, StoreError> {
        st.get(self.name, pk, ck).await
    }

    /// Declares that the batch decided on rows of this table read outside the staging (a
    /// scan), so that its writes to the table are state writes (see
    /// [`Staging::note_read`]).
    pub fn note_read(&self, st: &mut Staging<'_>) {
        st.note_read(self.name);
    }

    /// Creates or replaces a row.
    pub fn put<V>(
        &self,
        st: &mut Staging<'_>,
        pk: &str,
        ck: &str,
        row: &V,
        ts: i64,
    ) -> Result<(), StoreError>
    where
        V: RowOf<R> + Serialize + ?Sized,
    {
        st.put_json(self.name, pk, ck, row, ts)
    }

    /// A row encoded once, for [`Table::put_encoded`].
    pub fn encode<V>(&self, st: &mut Staging<'_>, row: &V) -> Result<Encoded<R>, StoreError>
    where
        V: RowOf<R> + Serialize + ?Sized,
    {
        Ok(Encoded {
            bytes: st.encode_json(self.name, row)?,
            row: PhantomData,
        })
    }

    /// Creates or replaces a row with a row encoded by [`Table::encode`] (for this table or
    /// another of the same row type).
    pub fn put_encoded(&self, st: &mut Staging<'_>, pk: &str, ck: &str, row: Encoded<R>, ts: i64) {
        st.put(self.name, pk, ck, row.bytes, ts);
    }

    /// Removes a row (an absent row is fine).
    pub fn delete(&self, st: &mut Staging<'_>, pk: &str, ck: &str, ts: i64) {
        st.delete(self.name, pk, ck, ts);
    }

    /// Removes every row of a partition.
    pub fn delete_partition(&self, st: &mut Staging<'_>, pk: &str, ts: i64) {
        st.delete_partition(self.name, pk, ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Thing {
        id: String,
        n: i64,
    }

    #[derive(Serialize, Deserialize)]
    struct ThingRef<'a> {
        id: &'a str,
        n: i64,
    }

    impl RowOf<Thing> for ThingRef<'_> {}

    const THINGS: Table<Thing> = Table::new("things", "owner id", "one per thing id");
    const OTHER_THINGS: Table<Thing> = Table::new("other_things", "owner id", "by thing id");
    const NAMES: &[&str] = &[THINGS.name(), OTHER_THINGS.name()];

    #[test]
    fn declarations_are_const_and_name_their_keys() {
        assert_eq!(NAMES, ["things", "other_things"]);
        assert_eq!(THINGS.partition(), "owner id");
        assert_eq!(THINGS.rows(), "one per thing id");
        assert!(format!("{THINGS:?}").contains("Thing"));
    }

    #[test]
    fn undecodable_rows_name_table_and_keys() {
        let err = THINGS.decode("o", "t", b"{\"id\":1}").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { key, .. } if key == "things/o/t"),
            "{err:?}"
        );
        let view: ThingRef<'_> = THINGS
            .decode_as("o", "t", b"{\"id\":\"t\",\"n\":2}")
            .unwrap();
        assert_eq!((view.id, view.n), ("t", 2));
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn typed_writes_and_reads_round_trip() {
        use crate::store::WriteBatch;

        let dir = tempfile::tempdir().unwrap();
        let store = crate::embedded::EmbeddedStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        let thing = |id: &str, n| Thing {
            id: id.to_owned(),
            n,
        };
        let mut st = Staging::new(&store);
        THINGS.put(&mut st, "o", "a", &thing("a", 1), 1).unwrap();
        THINGS
            .put(&mut st, "o", "b", &ThingRef { id: "b", n: 2 }, 1)
            .unwrap();
        THINGS.put(&mut st, "o", "c", &thing("c", 3), 1).unwrap();
        THINGS.put(&mut st, "p", "a", &thing("a", 4), 1).unwrap();
        let shared = THINGS.encode(&mut st, &thing("s", 5)).unwrap();
        THINGS.put_encoded(&mut st, "o", "s", shared.clone(), 1);
        OTHER_THINGS.put_encoded(&mut st, "o", "s", shared, 1);
        THINGS.delete(&mut st, "o", "c", 2);
        OTHER_THINGS
            .put(&mut st, "q", "x", &thing("x", 6), 1)
            .unwrap();
        OTHER_THINGS.delete_partition(&mut st, "q", 2);
        assert_eq!(
            THINGS.fetch(&mut st, "o", "b").await.unwrap(),
            Some(thing("b", 2))
        );
        assert_eq!(THINGS.fetch(&mut st, "o", "c").await.unwrap(), None);
        store
            .apply(WriteBatch {
                projection: "things".to_owned(),
                writes: st.into_writes(),
                checkpoints: Vec::new(),
            })
            .await
            .unwrap();

        assert_eq!(
            THINGS.get(&store, "o", "a").await.unwrap(),
            Some(thing("a", 1))
        );
        assert_eq!(
            store.get("things", "o", "a").await.unwrap().unwrap(),
            br#"{"id":"a","n":1}"#,
            "rows are the JSON of their type"
        );
        assert_eq!(
            THINGS
                .get_many(
                    &store,
                    &[("p".into(), "a".into()), ("o".into(), "c".into())]
                )
                .await
                .unwrap(),
            vec![Some(thing("a", 4)), None]
        );
        let page = THINGS
            .page(&store, "o", &PageRequest::first(2))
            .await
            .unwrap();
        assert_eq!(page.items, vec![thing("a", 1), thing("b", 2)]);
        assert!(page.next_cursor.is_some());
        assert_eq!(
            THINGS.scan(&store, "o", Some("a"), 10).await.unwrap(),
            vec![
                ("b".to_owned(), thing("b", 2)),
                ("s".to_owned(), thing("s", 5))
            ]
        );
        assert_eq!(
            OTHER_THINGS.get(&store, "o", "s").await.unwrap(),
            Some(thing("s", 5))
        );
        assert_eq!(
            OTHER_THINGS.scan(&store, "q", None, 10).await.unwrap(),
            vec![]
        );
        assert_eq!(
            THINGS
                .scan_table(&store, Some(("o", "s")), 10)
                .await
                .unwrap(),
            vec![("p".to_owned(), "a".to_owned(), thing("a", 4))]
        );

        let mut st = Staging::new(&store);
        THINGS
            .prefetch(&mut st, [("o".to_owned(), "a".to_owned())])
            .await
            .unwrap();
        let bytes = THINGS
            .fetch_bytes(&mut st, "o", "a")
            .await
            .unwrap()
            .unwrap()
            .to_vec();
        let view: ThingRef<'_> = THINGS.decode_as("o", "a", &bytes).unwrap();
        assert_eq!((view.id, view.n), ("a", 1));
    }
}

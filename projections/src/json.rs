//! JSON rows: every read model stores its rows as JSON (readable with any tool, and a later
//! release can add fields). These helpers decode them, naming the row when one does not.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::model::{Page, PageRequest};
use crate::paging;
use crate::store::{Store, StoreError};

/// Decodes a row's value; [`StoreError::Corrupt`] naming the row when it does not decode.
pub fn decode<T: DeserializeOwned>(
    table: &str,
    pk: &str,
    ck: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::corrupt(table, pk, ck, format!("undecodable row: {e}")))
}

/// [`decode`] into a type that may borrow from `bytes`.
pub fn decode_borrowed<'a, T: Deserialize<'a>>(
    table: &str,
    pk: &str,
    ck: &str,
    bytes: &'a [u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::corrupt(table, pk, ck, format!("undecodable row: {e}")))
}

/// One row, decoded.
pub async fn get<T: DeserializeOwned>(
    store: &dyn Store,
    table: &str,
    pk: &str,
    ck: &str,
) -> Result<Option<T>, StoreError> {
    match store.get(table, pk, ck).await? {
        Some(v) => decode(table, pk, ck, &v).map(Some),
        None => Ok(None),
    }
}

/// One page of a partition, decoded (see [`paging::page`]).
pub async fn page<T: DeserializeOwned>(
    store: &dyn Store,
    table: &str,
    pk: &str,
    request: &PageRequest,
) -> Result<Page<T>, StoreError> {
    paging::page(store, table, pk, request, |row| {
        decode(table, pk, &row.ck, &row.value)
    })
    .await
}

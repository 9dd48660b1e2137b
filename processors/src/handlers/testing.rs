//! Helpers shared by the handlers' unit tests.

use std::collections::BTreeMap;

use fleuve_projections::{Store, TableRow, Write};
use fleuve_schemas::Event;

use crate::runtime::Incoming;

/// `e` as the runtime hands it to a handler: on `topic`, partition 0, at `offset`.
pub(crate) fn incoming<E: Event>(topic: &str, offset: i64, e: &E) -> Incoming {
    Incoming {
        topic: topic.to_owned(),
        partition: 0,
        offset,
        event_type: E::TYPE,
        value: e.to_avro().unwrap(),
    }
}

/// A UUID derived from an offset, so each test event has its own `event_id`.
pub(crate) fn uuid(offset: i64) -> String {
    format!("00000000-0000-4000-8000-{offset:012}")
}

/// The last write of each row, as ScyllaDB keeps it; a crash can store any subset of them.
pub(crate) fn last_write_per_row(writes: impl IntoIterator<Item = Write>) -> Vec<Write> {
    let mut last = BTreeMap::new();
    for w in writes {
        let key = match &w {
            Write::Put { table, pk, ck, .. } | Write::Delete { table, pk, ck, .. } => {
                (*table, pk.clone(), ck.clone())
            }
            Write::DeletePartition { .. } => panic!("not written by this processor"),
        };
        last.insert(key, w);
    }
    last.into_values().collect()
}

/// The rows whose bit is set in `mask`.
pub(crate) fn subset(rows: &[Write], mask: u64) -> Vec<Write> {
    rows.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, w)| w.clone())
        .collect()
}

/// Every row of `tables`.
pub(crate) async fn dump(store: &dyn Store, tables: &[&str]) -> Vec<TableRow> {
    let mut all = Vec::new();
    for table in tables {
        all.extend(store.scan_table(table, None, 10_000).await.unwrap());
    }
    all
}

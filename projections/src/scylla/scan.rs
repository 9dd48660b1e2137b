//! Ordering a full-table scan.
//!
//! ScyllaDB returns a table scan in token order (a hash of the partition key), not in
//! (`pk`, `ck`) order. [`Store::scan_table`](crate::Store::scan_table) promises the latter,
//! so the store reads every row of the projection table and keeps the `limit` smallest
//! keys after the cursor: memory stays bounded by one page, time grows with the table.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::store::TableRow;

/// A row ordered by (`pk`, `ck`) only.
struct ByKey(TableRow);

impl ByKey {
    fn key(&self) -> (&str, &str) {
        (&self.0.pk, &self.0.ck)
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The `limit` rows with the smallest (`pk`, `ck`) greater than `after`, among the rows
/// offered in any order.
pub struct SmallestAfter<'a> {
    after: Option<(&'a str, &'a str)>,
    limit: usize,
    /// Max-heap: the largest kept key is on top, evicted first.
    kept: BinaryHeap<ByKey>,
}

impl<'a> SmallestAfter<'a> {
    pub fn new(after: Option<(&'a str, &'a str)>, limit: usize) -> Self {
        Self {
            after,
            limit,
            kept: BinaryHeap::new(),
        }
    }

    /// Whether a row with this key would be kept now (lets the caller skip decoding rows
    /// that would not be).
    pub fn wants(&self, pk: &str, ck: &str) -> bool {
        if self.limit == 0 {
            return false;
        }
        if let Some(after) = self.after {
            if (pk, ck) <= after {
                return false;
            }
        }
        self.kept.len() < self.limit || self.kept.peek().is_some_and(|top| (pk, ck) < top.key())
    }

    pub fn offer(&mut self, row: TableRow) {
        if !self.wants(&row.pk, &row.ck) {
            return;
        }
        if self.kept.len() == self.limit {
            self.kept.pop();
        }
        self.kept.push(ByKey(row));
    }

    /// The kept rows in (`pk`, `ck`) order.
    pub fn finish(self) -> Vec<TableRow> {
        self.kept
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pk: &str, ck: &str) -> TableRow {
        TableRow {
            pk: pk.into(),
            ck: ck.into(),
            value: format!("{pk}/{ck}").into_bytes(),
        }
    }

    fn keys(rows: &[TableRow]) -> Vec<(String, String)> {
        rows.iter().map(|r| (r.pk.clone(), r.ck.clone())).collect()
    }

    /// Rows in a scrambled, token-like order.
    fn scrambled() -> Vec<TableRow> {
        let mut rows = Vec::new();
        for pk in ["u3", "u1", "u10", "u2", ""] {
            for ck in ["b", "", "a", "é", "B"] {
                rows.push(row(pk, ck));
            }
        }
        rows
    }

    fn sorted() -> Vec<(String, String)> {
        let mut all = keys(&scrambled());
        all.sort();
        all
    }

    #[test]
    fn pages_walk_the_whole_table_in_key_order() {
        let expected = sorted();
        for limit in 1..=7 {
            let mut seen = Vec::new();
            let mut cursor: Option<(String, String)> = None;
            loop {
                let mut top = SmallestAfter::new(
                    cursor.as_ref().map(|(p, c)| (p.as_str(), c.as_str())),
                    limit,
                );
                for r in scrambled() {
                    top.offer(r);
                }
                let page = top.finish();
                assert!(page.len() <= limit);
                for r in &page {
                    assert_eq!(r.value, format!("{}/{}", r.pk, r.ck).into_bytes());
                }
                let Some(last) = page.last() else { break };
                cursor = Some((last.pk.clone(), last.ck.clone()));
                seen.extend(keys(&page));
            }
            assert_eq!(seen, expected, "limit {limit}");
        }
    }

    #[test]
    fn cursor_is_exclusive_and_may_name_a_missing_row() {
        let mut top = SmallestAfter::new(Some(("u1", "a")), 2);
        for r in scrambled() {
            top.offer(r);
        }
        assert_eq!(
            keys(&top.finish()),
            vec![("u1".into(), "b".into()), ("u1".into(), "é".into())]
        );
        let mut top = SmallestAfter::new(Some(("u15", "zzz")), 1);
        for r in scrambled() {
            top.offer(r);
        }
        assert_eq!(keys(&top.finish()), vec![("u2".into(), "".into())]);
    }

    #[test]
    fn zero_limit_keeps_nothing() {
        let mut top = SmallestAfter::new(None, 0);
        assert!(!top.wants("a", "b"));
        top.offer(row("a", "b"));
        assert!(top.finish().is_empty());
    }
}

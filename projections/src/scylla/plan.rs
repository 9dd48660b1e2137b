//! Turning a [`WriteBatch`](crate::store::WriteBatch)'s writes into the CQL mutations to run,
//! and their write timestamps.
//!
//! # Why a plan
//!
//! ScyllaDB resolves concurrent versions of a cell by write timestamp alone: the highest
//! timestamp wins; on a tie a tombstone beats a value, and of two values the greater one
//! (byte-wise) wins. The order in which statements reach the replicas plays no part. The
//! store contract, though, says that within a batch a later write to the same row wins,
//! and two writes of one event carry the same `ts`. So before anything is sent:
//!
//! 1. Writes are folded in batch order, per partition (`table`, `pk`): a row write (put
//!    or delete) replaces any earlier write of the same row; a partition delete drops
//!    every earlier row write of that partition and keeps the highest partition-delete
//!    `ts`. What remains per partition is at most one partition delete and one write per
//!    row, each the last of its kind in the batch.
//! 2. Write timestamps keep the order of `ts` and break its ties in favour of rows:
//!    `2·ts` for a partition delete, `2·ts + 1` for a row put or delete. A row write that
//!    follows a partition delete of the same `ts` in the batch (delete a user's list, then
//!    write its new first item) therefore survives it, while a partition delete with a
//!    greater `ts` still removes every row written before it. A row write that *preceded*
//!    the partition delete in the batch was dropped at step 1, so it cannot come back.
//!
//! The result does not depend on how the statements are scheduled, so they run
//! concurrently.
//!
//! This relies on the store contract: `ts` never decreases along the writes of a row, and
//! all writes of one event (one `ts`) are in the same batch. `|ts|` must stay below 2^62
//! (offsets times four, as [`crate::model::stamp`] makes them, are far below).

use std::collections::{BTreeMap, HashMap};

use crate::model::Checkpoint;
use crate::store::Write;

/// One CQL mutation, with its ScyllaDB write timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    PutRow {
        table: &'static str,
        pk: String,
        ck: String,
        value: Vec<u8>,
        timestamp: i64,
    },
    DeleteRow {
        table: &'static str,
        pk: String,
        ck: String,
        timestamp: i64,
    },
    DeletePartition {
        table: &'static str,
        pk: String,
        timestamp: i64,
    },
}

/// A `ts` too large (or too small) to be doubled into a write timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampOutOfRange {
    pub ts: i64,
}

impl std::fmt::Display for TimestampOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "write ts {} is out of range: the ScyllaDB store needs |ts| < 2^62",
            self.ts
        )
    }
}

/// Write timestamp of a row put or delete written with `ts`.
pub fn row_timestamp(ts: i64) -> Result<i64, TimestampOutOfRange> {
    ts.checked_mul(2)
        .and_then(|t| t.checked_add(1))
        .filter(|_| ts.unsigned_abs() < 1 << 62)
        .ok_or(TimestampOutOfRange { ts })
}

/// Write timestamp of a partition delete written with `ts`.
pub fn partition_timestamp(ts: i64) -> Result<i64, TimestampOutOfRange> {
    ts.checked_mul(2)
        .filter(|_| ts.unsigned_abs() < 1 << 62)
        .ok_or(TimestampOutOfRange { ts })
}

/// The plan of partition (`table`, `pk`), created (and its key appended to `order`) on
/// first use.
fn partition<'a>(
    order: &mut Vec<(&'static str, String)>,
    partitions: &'a mut HashMap<(&'static str, String), PartitionPlan>,
    table: &'static str,
    pk: String,
) -> &'a mut PartitionPlan {
    let key = (table, pk);
    if !partitions.contains_key(&key) {
        order.push(key.clone());
    }
    partitions.entry(key).or_default()
}

/// What a batch leaves of one row.
enum RowWrite {
    Put { value: Vec<u8>, ts: i64 },
    Delete { ts: i64 },
}

#[derive(Default)]
struct PartitionPlan {
    delete_ts: Option<i64>,
    rows: BTreeMap<String, RowWrite>,
}

/// The mutations that give the same result as applying `writes` in order (see the module
/// docs): partitions in order of first appearance, each with its partition delete first,
/// then its rows in `ck` order.
pub fn plan(writes: Vec<Write>) -> Result<Vec<Mutation>, TimestampOutOfRange> {
    let mut order: Vec<(&'static str, String)> = Vec::new();
    let mut partitions: HashMap<(&'static str, String), PartitionPlan> = HashMap::new();
    for write in writes {
        match write {
            Write::Put {
                table,
                pk,
                ck,
                value,
                ts,
            } => {
                partition(&mut order, &mut partitions, table, pk)
                    .rows
                    .insert(ck, RowWrite::Put { value, ts });
            }
            Write::Delete { table, pk, ck, ts } => {
                partition(&mut order, &mut partitions, table, pk)
                    .rows
                    .insert(ck, RowWrite::Delete { ts });
            }
            Write::DeletePartition { table, pk, ts } => {
                let p = partition(&mut order, &mut partitions, table, pk);
                p.rows.clear();
                p.delete_ts = Some(p.delete_ts.map_or(ts, |old| old.max(ts)));
            }
        }
    }

    let mut mutations = Vec::new();
    for key in order {
        let Some(p) = partitions.remove(&key) else {
            continue;
        };
        let (table, pk) = key;
        if let Some(ts) = p.delete_ts {
            mutations.push(Mutation::DeletePartition {
                table,
                pk: pk.clone(),
                timestamp: partition_timestamp(ts)?,
            });
        }
        for (ck, row) in p.rows {
            mutations.push(match row {
                RowWrite::Put { value, ts } => Mutation::PutRow {
                    table,
                    pk: pk.clone(),
                    ck,
                    value,
                    timestamp: row_timestamp(ts)?,
                },
                RowWrite::Delete { ts } => Mutation::DeleteRow {
                    table,
                    pk: pk.clone(),
                    ck,
                    timestamp: row_timestamp(ts)?,
                },
            });
        }
    }
    Ok(mutations)
}

/// One checkpoint per (topic, partition), the highest of the batch, in (topic, partition)
/// order. Checkpoints are written `USING TIMESTAMP next_offset`, so the highest offset
/// wins in the store too, whatever the order of writes.
pub fn plan_checkpoints(checkpoints: Vec<Checkpoint>) -> Vec<Checkpoint> {
    let mut best: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for c in checkpoints {
        let offset = best.entry((c.topic, c.partition)).or_insert(c.next_offset);
        *offset = (*offset).max(c.next_offset);
    }
    best.into_iter()
        .map(|((topic, partition), next_offset)| Checkpoint {
            topic,
            partition,
            next_offset,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(pk: &str, ck: &str, value: &str, ts: i64) -> Write {
        Write::Put {
            table: "t",
            pk: pk.into(),
            ck: ck.into(),
            value: value.as_bytes().to_vec(),
            ts,
        }
    }

    fn del(pk: &str, ck: &str, ts: i64) -> Write {
        Write::Delete {
            table: "t",
            pk: pk.into(),
            ck: ck.into(),
            ts,
        }
    }

    fn del_partition(pk: &str, ts: i64) -> Write {
        Write::DeletePartition {
            table: "t",
            pk: pk.into(),
            ts,
        }
    }

    fn m_put(pk: &str, ck: &str, value: &str, timestamp: i64) -> Mutation {
        Mutation::PutRow {
            table: "t",
            pk: pk.into(),
            ck: ck.into(),
            value: value.as_bytes().to_vec(),
            timestamp,
        }
    }

    fn m_del(pk: &str, ck: &str, timestamp: i64) -> Mutation {
        Mutation::DeleteRow {
            table: "t",
            pk: pk.into(),
            ck: ck.into(),
            timestamp,
        }
    }

    fn m_del_partition(pk: &str, timestamp: i64) -> Mutation {
        Mutation::DeletePartition {
            table: "t",
            pk: pk.into(),
            timestamp,
        }
    }

    /// What ScyllaDB ends up with for one partition, given the mutations and what the
    /// partition held before (row -> (value, write timestamp)): highest timestamp wins,
    /// tombstones win ties, of two values at one timestamp the greater wins.
    fn resolve(before: &[(&str, &str, i64)], mutations: &[Mutation]) -> BTreeMap<String, String> {
        #[derive(Clone)]
        enum Cell {
            Live(String, i64),
            Dead(i64),
        }
        fn beats(new: &Cell, old: &Cell) -> bool {
            match (new, old) {
                (Cell::Live(v, t), Cell::Live(ov, ot)) => t > ot || (t == ot && v > ov),
                (Cell::Live(_, t), Cell::Dead(ot)) => t > ot,
                (Cell::Dead(t), Cell::Live(_, ot)) => t >= ot,
                (Cell::Dead(t), Cell::Dead(ot)) => t > ot,
            }
        }
        let mut cells: BTreeMap<String, Cell> = before
            .iter()
            .map(|(ck, v, t)| ((*ck).to_owned(), Cell::Live((*v).to_owned(), *t)))
            .collect();
        let mut partition_tombstone = i64::MIN;
        for m in mutations {
            match m {
                Mutation::PutRow {
                    ck,
                    value,
                    timestamp,
                    ..
                } => {
                    let new = Cell::Live(String::from_utf8(value.clone()).unwrap(), *timestamp);
                    let keep_old = cells.get(ck).is_some_and(|old| !beats(&new, old));
                    if !keep_old {
                        cells.insert(ck.clone(), new);
                    }
                }
                Mutation::DeleteRow { ck, timestamp, .. } => {
                    let new = Cell::Dead(*timestamp);
                    let keep_old = cells.get(ck).is_some_and(|old| !beats(&new, old));
                    if !keep_old {
                        cells.insert(ck.clone(), new);
                    }
                }
                Mutation::DeletePartition { timestamp, .. } => {
                    partition_tombstone = partition_tombstone.max(*timestamp);
                }
            }
        }
        cells
            .into_iter()
            .filter_map(|(ck, cell)| match cell {
                Cell::Live(v, t) if t > partition_tombstone => Some((ck, v)),
                _ => None,
            })
            .collect()
    }

    /// What applying `writes` one after the other gives (the contract).
    fn sequential(before: &[(&str, &str)], writes: &[Write]) -> BTreeMap<String, String> {
        let mut rows: BTreeMap<String, String> = before
            .iter()
            .map(|(ck, v)| ((*ck).to_owned(), (*v).to_owned()))
            .collect();
        for w in writes {
            match w {
                Write::Put { ck, value, .. } => {
                    rows.insert(ck.clone(), String::from_utf8(value.clone()).unwrap());
                }
                Write::Delete { ck, .. } => {
                    rows.remove(ck);
                }
                Write::DeletePartition { .. } => rows.clear(),
            }
        }
        rows
    }

    #[test]
    fn timestamps_keep_order_and_favour_rows_on_ties() {
        assert_eq!(row_timestamp(5), Ok(11));
        assert_eq!(partition_timestamp(5), Ok(10));
        assert!(partition_timestamp(5).unwrap() < row_timestamp(5).unwrap());
        assert!(row_timestamp(5).unwrap() < partition_timestamp(6).unwrap());
        assert_eq!(row_timestamp(0), Ok(1));
        assert_eq!(row_timestamp(-3), Ok(-5));
        let max = (1i64 << 62) - 1;
        assert!(row_timestamp(max).is_ok());
        assert!(row_timestamp(1 << 62).is_err());
        assert!(partition_timestamp(1 << 62).is_err());
        assert!(row_timestamp(i64::MAX).is_err());
        assert!(partition_timestamp(i64::MIN).is_err());
    }

    #[test]
    fn last_write_of_a_row_wins_even_with_the_same_ts() {
        let writes = vec![
            put("u", "a", "1", 4),
            put("u", "a", "0", 4),
            put("u", "b", "x", 4),
        ];
        let plan = plan(writes).unwrap();
        assert_eq!(plan, vec![m_put("u", "a", "0", 9), m_put("u", "b", "x", 9)]);
    }

    #[test]
    fn put_after_delete_and_delete_after_put() {
        let plan1 = plan(vec![del("u", "a", 4), put("u", "a", "v", 4)]).unwrap();
        assert_eq!(plan1, vec![m_put("u", "a", "v", 9)]);
        let plan2 = plan(vec![put("u", "a", "v", 4), del("u", "a", 4)]).unwrap();
        assert_eq!(plan2, vec![m_del("u", "a", 9)]);
    }

    #[test]
    fn put_after_partition_delete_survives_it() {
        let writes = vec![
            put("u", "old", "o", 8),
            del_partition("u", 8),
            put("u", "new", "n", 8),
        ];
        let plan = plan(writes.clone()).unwrap();
        assert_eq!(
            plan,
            vec![m_del_partition("u", 16), m_put("u", "new", "n", 17)]
        );
        // Stored rows from earlier events (lower ts) are deleted, the new row stays.
        let before = [
            ("old", "o0", row_timestamp(4).unwrap()),
            ("x", "x0", row_timestamp(6).unwrap()),
        ];
        assert_eq!(
            resolve(&before, &plan),
            sequential(&[("old", "o0"), ("x", "x0")], &writes)
        );
    }

    #[test]
    fn partition_delete_after_puts_removes_them() {
        let writes = vec![
            put("u", "a", "1", 8),
            put("u", "b", "2", 8),
            del_partition("u", 8),
        ];
        let plan = plan(writes.clone()).unwrap();
        assert_eq!(plan, vec![m_del_partition("u", 16)]);
        assert!(resolve(&[("c", "3", 5)], &plan).is_empty());
    }

    #[test]
    fn highest_partition_delete_is_kept() {
        let writes = vec![
            del_partition("u", 8),
            put("u", "a", "1", 12),
            del_partition("u", 12),
            del("u", "b", 16),
        ];
        assert_eq!(
            plan(writes).unwrap(),
            vec![m_del_partition("u", 24), m_del("u", "b", 33)]
        );
    }

    #[test]
    fn partitions_and_tables_are_kept_apart_in_first_seen_order() {
        let writes = vec![
            put("u2", "a", "1", 4),
            Write::Put {
                table: "other",
                pk: "u1".into(),
                ck: "a".into(),
                value: b"o".to_vec(),
                ts: 4,
            },
            del_partition("u1", 4),
            put("u1", "z", "2", 4),
            put("u2", "0", "3", 4),
        ];
        let plan = plan(writes).unwrap();
        assert_eq!(
            plan,
            vec![
                m_put("u2", "0", "3", 9),
                m_put("u2", "a", "1", 9),
                Mutation::PutRow {
                    table: "other",
                    pk: "u1".into(),
                    ck: "a".into(),
                    value: b"o".to_vec(),
                    timestamp: 9,
                },
                m_del_partition("u1", 8),
                m_put("u1", "z", "2", 9),
            ]
        );
    }

    /// Every sequence of writes of one event (one ts) on a partition with older rows ends
    /// like sequential application, once resolved by ScyllaDB's rules.
    #[test]
    fn plans_match_sequential_application() {
        let ops = |i: u32| -> Write {
            match i % 6 {
                0 => put("p", "a", "A", 10),
                1 => put("p", "b", "B", 10),
                2 => del("p", "a", 10),
                3 => del_partition("p", 10),
                4 => put("p", "a", "Z", 10),
                _ => del("p", "c", 10),
            }
        };
        let before = [
            ("a", "old-a", row_timestamp(7).unwrap()),
            ("c", "old-c", row_timestamp(9).unwrap()),
        ];
        let before_plain = [("a", "old-a"), ("c", "old-c")];
        // All sequences of up to 4 operations.
        for len in 0..=4u32 {
            for code in 0..6u32.pow(len) {
                let writes: Vec<Write> = (0..len).map(|i| ops(code / 6u32.pow(i))).collect();
                let mutations = plan(writes.clone()).unwrap();
                assert_eq!(
                    resolve(&before, &mutations),
                    sequential(&before_plain, &writes),
                    "{writes:?} planned as {mutations:?}"
                );
            }
        }
    }

    #[test]
    fn out_of_range_ts_is_an_error() {
        assert_eq!(
            plan(vec![put("u", "a", "1", i64::MAX)]),
            Err(TimestampOutOfRange { ts: i64::MAX })
        );
        assert!(plan(vec![del_partition("u", i64::MIN)]).is_err());
    }

    #[test]
    fn checkpoints_keep_the_highest_per_partition() {
        let c = |topic: &str, partition: i32, next_offset: i64| Checkpoint {
            topic: topic.into(),
            partition,
            next_offset,
        };
        let planned = plan_checkpoints(vec![
            c("b", 0, 5),
            c("a", 1, 9),
            c("a", 1, 7),
            c("a", 0, 3),
            c("b", 0, 6),
        ]);
        assert_eq!(planned, vec![c("a", 0, 3), c("a", 1, 9), c("b", 0, 6)]);
        assert!(plan_checkpoints(Vec::new()).is_empty());
    }
}

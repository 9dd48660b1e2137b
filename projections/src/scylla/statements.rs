//! The CQL statements of the store, prepared once when it opens.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::error::{map_prepare, Ctx};
use crate::store::StoreError;

/// Rows fetched per page by paged reads (partition scans, table scans, checkpoint lists).
pub const PAGE_SIZE: i32 = 1000;

/// Statement texts for keyspace `ks` (a validated name, quoted so that a leading `_`
/// parses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    pub put_row: String,
    pub delete_row: String,
    pub delete_partition: String,
    pub get_row: String,
    pub scan_first: String,
    pub scan_after: String,
    pub scan_table: String,
    pub put_checkpoint: String,
    pub get_checkpoint: String,
    pub list_checkpoints: String,
}

impl Texts {
    pub fn new(ks: &str) -> Self {
        let rows = format!("\"{ks}\".rows");
        let checkpoints = format!("\"{ks}\".checkpoints");
        Self {
            put_row: format!(
                "INSERT INTO {rows} (tbl, pk, ck, value) VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            delete_row: format!(
                "DELETE FROM {rows} USING TIMESTAMP ? WHERE tbl = ? AND pk = ? AND ck = ?"
            ),
            delete_partition: format!(
                "DELETE FROM {rows} USING TIMESTAMP ? WHERE tbl = ? AND pk = ?"
            ),
            get_row: format!("SELECT value FROM {rows} WHERE tbl = ? AND pk = ? AND ck = ?"),
            scan_first: format!("SELECT ck, value FROM {rows} WHERE tbl = ? AND pk = ? LIMIT ?"),
            scan_after: format!(
                "SELECT ck, value FROM {rows} WHERE tbl = ? AND pk = ? AND ck > ? LIMIT ?"
            ),
            // Restricting part of the partition key needs ALLOW FILTERING: the replicas
            // read the whole table and return only this projection table's rows.
            scan_table: format!("SELECT pk, ck, value FROM {rows} WHERE tbl = ? ALLOW FILTERING"),
            put_checkpoint: format!(
                "INSERT INTO {checkpoints} (projection, topic, partition, next_offset) \
                 VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            get_checkpoint: format!(
                "SELECT next_offset FROM {checkpoints} \
                 WHERE projection = ? AND topic = ? AND partition = ?"
            ),
            list_checkpoints: format!(
                "SELECT topic, partition, next_offset FROM {checkpoints} WHERE projection = ?"
            ),
        }
    }
}

/// The prepared statements. All are idempotent (writes carry their own timestamps), so
/// the driver may retry them after a timeout.
#[derive(Debug)]
pub struct Statements {
    pub put_row: PreparedStatement,
    pub delete_row: PreparedStatement,
    pub delete_partition: PreparedStatement,
    pub get_row: PreparedStatement,
    pub scan_first: PreparedStatement,
    pub scan_after: PreparedStatement,
    pub scan_table: PreparedStatement,
    pub put_checkpoint: PreparedStatement,
    pub get_checkpoint: PreparedStatement,
    pub list_checkpoints: PreparedStatement,
}

impl Statements {
    pub async fn prepare(session: &Session, ks: &str, ctx: &Ctx) -> Result<Self, StoreError> {
        let t = Texts::new(ks);
        Ok(Self {
            put_row: prepare(session, ctx, t.put_row).await?,
            delete_row: prepare(session, ctx, t.delete_row).await?,
            delete_partition: prepare(session, ctx, t.delete_partition).await?,
            get_row: prepare(session, ctx, t.get_row).await?,
            scan_first: prepare(session, ctx, t.scan_first).await?,
            scan_after: prepare(session, ctx, t.scan_after).await?,
            scan_table: prepare(session, ctx, t.scan_table).await?,
            put_checkpoint: prepare(session, ctx, t.put_checkpoint).await?,
            get_checkpoint: prepare(session, ctx, t.get_checkpoint).await?,
            list_checkpoints: prepare(session, ctx, t.list_checkpoints).await?,
        })
    }
}

async fn prepare(
    session: &Session,
    ctx: &Ctx,
    cql: String,
) -> Result<PreparedStatement, StoreError> {
    let mut prepared = session
        .prepare(cql.as_str())
        .await
        .map_err(|e| map_prepare(ctx, &format!("preparing `{cql}`"), e))?;
    prepared.set_is_idempotent(true);
    prepared.set_page_size(PAGE_SIZE);
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_quoted_keyspace_and_bind_in_order() {
        let t = Texts::new("_ks");
        let all = [
            (&t.put_row, 5),
            (&t.delete_row, 4),
            (&t.delete_partition, 3),
            (&t.get_row, 3),
            (&t.scan_first, 3),
            (&t.scan_after, 4),
            (&t.scan_table, 1),
            (&t.put_checkpoint, 5),
            (&t.get_checkpoint, 3),
            (&t.list_checkpoints, 1),
        ];
        for (text, markers) in all {
            assert_eq!(text.matches('?').count(), markers, "{text}");
            assert!(text.contains("\"_ks\"."), "{text}");
        }
        // Bound values are passed in this order by the store.
        assert!(t.put_row.ends_with("VALUES (?, ?, ?, ?) USING TIMESTAMP ?"));
        assert!(t
            .delete_row
            .contains("USING TIMESTAMP ? WHERE tbl = ? AND pk = ? AND ck = ?"));
        assert!(t
            .delete_partition
            .ends_with("USING TIMESTAMP ? WHERE tbl = ? AND pk = ?"));
        assert!(t
            .put_checkpoint
            .ends_with("VALUES (?, ?, ?, ?) USING TIMESTAMP ?"));
    }
}

//! The ScyllaDB backend, with the [`scylla`](https://docs.rs/scylla) driver.
//!
//! ```text
//! scylla://[user:password@]host[:port][,host[:port]...]/keyspace[?replication_factor=N&local_dc=NAME]
//! ```
//!
//! for example `scylla://scylla-client.scylla.svc:9042/fleuve?replication_factor=3&local_dc=dc1`.
//! Hosts are contact points (port 9042 unless given); the keyspace is required
//! (`[a-z_][a-z0-9_]{0,47}`); `user:password` (percent-encoded) is for clusters with
//! password authentication. TLS is not supported yet.
//!
//! # Opening
//!
//! [`ScyllaStore::open`] connects, creates the keyspace if it does not exist
//! (`NetworkTopologyStrategy`, `replication_factor` — 1 unless the URL says otherwise — in
//! every datacenter; an existing keyspace is left as it is, so operators may create it
//! beforehand with per-datacenter factors), applies the CQL migrations of
//! `migrations/scylla/` not applied yet (recorded in table `schema_migrations`), and
//! prepares every statement once.
//!
//! # Schema
//!
//! One generic table holds the rows of every projection table, mirroring the [`Store`]
//! trait, and one the checkpoints:
//!
//! ```text
//! rows        (tbl text, pk text, ck text, value blob, PRIMARY KEY ((tbl, pk), ck))   ck ascending
//! checkpoints (projection text, topic text, partition int, next_offset bigint,
//!              PRIMARY KEY ((projection), topic, partition))
//! ```
//!
//! A (`tbl`, `pk`) pair is a ScyllaDB partition, so [`Store::scan`] is a single-partition
//! slice. `ck` is `text`, which ScyllaDB orders by its UTF-8 bytes, the order the trait
//! promises.
//!
//! # Timestamps: last write wins
//!
//! Every row mutation is written `USING TIMESTAMP` derived from the write's `ts` (which
//! grows with the Kafka offset, see `Write`): `2·ts + 1` for a row put or delete, `2·ts`
//! for a partition delete. ScyllaDB keeps the version with the highest timestamp, whatever
//! order the mutations arrive in, so a redelivered event changes nothing and a stale
//! processor (one that lost its partition and does not know it yet) cannot overwrite newer
//! rows. Within a batch, writes are first folded in memory so that the last write of each
//! row wins and a row written after a partition delete of the same `ts` survives it; the
//! `plan` module explains why this needs both steps.
//!
//! Checkpoints are written `USING TIMESTAMP next_offset`, so a lower offset never replaces
//! a higher one: a checkpoint never moves backwards, without a read.
//!
//! These timestamps are small next to the clock's microseconds, so ScyllaDB's check against
//! timestamps in the future (`restrict_future_timestamp`) never rejects them. Because they
//! are on this scale rather than the clock's, every write to these tables must go through
//! the store. To clean up by hand, `TRUNCATE` (or drop the keyspace); a CQL `DELETE`
//! without `USING TIMESTAMP` takes the current time in microseconds and would hide every
//! later write of those rows. The planning also assumes that all writes of one event (one
//! `ts`) are in the same batch.
//!
//! # Consistency
//!
//! Reads and writes use `LOCAL_QUORUM`: a read overlaps every acknowledged write in the
//! local datacenter, which gives the trait's "reads see every batch whose `apply` has
//! returned" there. Set `local_dc` on a multi-datacenter cluster: requests then go to that
//! datacenter's nodes only (without it, the coordinator's datacenter is the local one, and
//! reads after writes could be served by another datacenter). Statements are idempotent, so
//! the driver may retry them after a timeout; requests time out after 10 s on the client.
//!
//! # What is atomic
//!
//! Each row mutation is atomic and isolated on its own, nothing larger is. [`Store::apply`]
//! runs the batch's derived row mutations concurrently (at most 64 in flight), then, once
//! every one of them succeeded, its state row mutations ([`crate::Writes`]), then the
//! checkpoints. A failure or a crash in between leaves some rows ahead of their checkpoint;
//! the processor then folds the batch again from the checkpoint. The state rows it reads
//! either still say an event is to apply (then it writes the same derived rows again, with
//! the same timestamps) or carry the event's offset (then its derived rows were all written
//! before), so the replay converges on what one clean apply writes. Failures that a retry
//! may fix are [`StoreError::Unavailable`]; see `error.rs` for the mapping.
//!
//! # Full-table scans
//!
//! [`Store::scan_table`] is an admin operation (tools, comparing two builds of a
//! projection): each call reads the whole projection table (`ALLOW FILTERING` on `tbl`) and
//! keeps the `limit` smallest (`pk`, `ck`) after the cursor, because ScyllaDB returns rows in
//! token order. Correct, with memory bounded by a page, but each page costs a full scan:
//! never use it to serve requests.
//!
//! # Testing
//!
//! The conformance suite runs against a ScyllaDB node when `SCYLLA_URI` is set (for example
//! `SCYLLA_URI=scylla://127.0.0.1:9042 cargo test -p fleuve-projections --test conformance --
//! --include-ignored`), each test in a fresh keyspace. Without it its ScyllaDB cases are
//! reported as ignored and only the unit tests of this module run (URL parsing, migrations,
//! batch planning, scan ordering).

mod error;
mod migrations;
mod plan;
mod scan;
mod statements;
mod url;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::unprepared::Statement;
use scylla::statement::Consistency;

use self::error::{map_execution, map_new_session, map_pager, map_rows, Ctx};
use self::plan::Mutation;
use self::scan::SmallestAfter;
use self::statements::Statements;
use self::url::ScyllaConfig;
pub use self::url::{DEFAULT_PORT, DEFAULT_REPLICATION_FACTOR};
use crate::model::Checkpoint;
use crate::store::{Row, TableRow, WriteBatch};
use crate::store::{Store, StoreError};

/// Row mutations (or checkpoint writes) of one batch in flight at once.
const WRITE_CONCURRENCY: usize = 64;
/// Reads of one [`Store::get_many`] in flight at once.
const READ_CONCURRENCY: usize = 32;
/// Client-side timeout of one request (the driver's default is 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Projection store in a ScyllaDB keyspace. Cheap to clone (shares one session).
#[derive(Clone)]
pub struct ScyllaStore {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    config: ScyllaConfig,
    ctx: Ctx,
    statements: Statements,
}

impl fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("ScyllaStore")
            .field("hosts", &config.hosts)
            .field("keyspace", &config.keyspace)
            .field("local_dc", &config.local_dc)
            .field(
                "user",
                &config.credentials.as_ref().map(|c| c.user.as_str()),
            )
            .finish_non_exhaustive()
    }
}

impl ScyllaStore {
    /// Connects to the cluster a `scylla://` URL names, creates the keyspace and the tables
    /// if needed, and prepares the statements (see the module docs).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let config = ScyllaConfig::parse(url)?;
        let ctx = Ctx {
            keyspace: config.keyspace.clone(),
            hosts: config.hosts_display(),
            local_dc: config.local_dc.clone(),
        };

        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &config.local_dc {
            policy = policy
                .prefer_datacenter(dc.clone())
                .permit_dc_failover(false);
        }
        let profile = ExecutionProfile::builder()
            .consistency(Consistency::LocalQuorum)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .load_balancing_policy(policy.build())
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.hosts)
            .default_execution_profile_handle(profile.into_handle());
        if let Some(dc) = &config.local_dc {
            builder = builder.prefer_datacenter(dc.clone());
        }
        if let Some(credentials) = &config.credentials {
            builder = builder.user(credentials.user.clone(), credentials.password.clone());
        }
        let session = builder
            .build()
            .await
            .map_err(|e| map_new_session(&ctx, e))?;

        let applied = migrations::run(&session, &config, &ctx).await?;
        let statements = Statements::prepare(&session, &config.keyspace, &ctx).await?;
        tracing::info!(
            hosts = %ctx.hosts,
            keyspace = %config.keyspace,
            replication_factor = config.replication_factor,
            local_dc = config.local_dc.as_deref().unwrap_or(""),
            migrations_applied = applied.len(),
            "scylla projection store open"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                session,
                config,
                ctx,
                statements,
            }),
        })
    }

    /// The keyspace holding the projections.
    pub fn keyspace(&self) -> &str {
        &self.inner.config.keyspace
    }

    fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    async fn mutate(&self, m: &Mutation) -> Result<(), StoreError> {
        let session = &self.inner.session;
        let st = &self.inner.statements;
        let (result, action) = match m {
            Mutation::PutRow {
                table,
                pk,
                ck,
                value,
                timestamp,
            } => (
                session
                    .execute_unpaged(
                        &st.put_row,
                        (
                            *table,
                            pk.as_str(),
                            ck.as_str(),
                            value.as_slice(),
                            *timestamp,
                        ),
                    )
                    .await,
                "writing row",
            ),
            Mutation::DeleteRow {
                table,
                pk,
                ck,
                timestamp,
            } => (
                session
                    .execute_unpaged(
                        &st.delete_row,
                        (*timestamp, *table, pk.as_str(), ck.as_str()),
                    )
                    .await,
                "deleting row",
            ),
            Mutation::DeletePartition {
                table,
                pk,
                timestamp,
            } => (
                session
                    .execute_unpaged(&st.delete_partition, (*timestamp, *table, pk.as_str()))
                    .await,
                "deleting partition",
            ),
        };
        result.map(|_| ()).map_err(|e| {
            let (table, pk) = match m {
                Mutation::PutRow { table, pk, .. }
                | Mutation::DeleteRow { table, pk, .. }
                | Mutation::DeletePartition { table, pk, .. } => (table, pk),
            };
            map_execution(self.ctx(), &format!("{action} of {table}/{pk}"), e)
        })
    }

    async fn put_checkpoint(&self, projection: &str, c: &Checkpoint) -> Result<(), StoreError> {
        self.inner
            .session
            .execute_unpaged(
                &self.inner.statements.put_checkpoint,
                (
                    projection,
                    c.topic.as_str(),
                    c.partition,
                    c.next_offset,
                    c.next_offset,
                ),
            )
            .await
            .map(|_| ())
            .map_err(|e| {
                map_execution(
                    self.ctx(),
                    &format!(
                        "writing checkpoint of `{projection}` for {}/{}",
                        c.topic, c.partition
                    ),
                    e,
                )
            })
    }
}

/// `limit` as a CQL `LIMIT` (at least 1; callers handle 0).
fn cql_limit(limit: usize) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX).max(1)
}

#[async_trait]
impl Store for ScyllaStore {
    async fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let WriteBatch {
            projection,
            writes,
            checkpoints,
        } = batch;
        let write_count = writes.len();
        let mut mutation_count = 0;
        // Derived rows first, then state rows (see `Writes`): a crash in between leaves the
        // state saying the batch is still to apply, and its replay writes the same rows.
        for group in [writes.derived, writes.state] {
            let mutations = plan::plan(group).map_err(|e| {
                StoreError::Backend(format!(
                    "applying a batch of projection `{projection}`: {e}"
                ))
            })?;
            mutation_count += mutations.len();
            // Futures are collected first: a lazy `map` closure held across the await trips
            // the `Send` check of the trait's boxed future. They do nothing until polled.
            let pending: Vec<BoxFuture<'_, Result<(), StoreError>>> =
                mutations.iter().map(|m| self.mutate(m).boxed()).collect();
            futures::stream::iter(pending)
                .buffer_unordered(WRITE_CONCURRENCY)
                .try_collect::<()>()
                .await?;
        }

        let checkpoints = plan::plan_checkpoints(checkpoints);
        let pending: Vec<BoxFuture<'_, Result<(), StoreError>>> = checkpoints
            .iter()
            .map(|c| self.put_checkpoint(&projection, c).boxed())
            .collect();
        futures::stream::iter(pending)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        tracing::debug!(
            projection = %projection,
            writes = write_count,
            mutations = mutation_count,
            checkpoints = checkpoints.len(),
            keyspace = %self.inner.config.keyspace,
            "batch applied"
        );
        Ok(())
    }

    async fn get(&self, table: &str, pk: &str, ck: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = || format!("{table}/{pk}/{ck}");
        let result = self
            .inner
            .session
            .execute_unpaged(&self.inner.statements.get_row, (table, pk, ck))
            .await
            .map_err(|e| map_execution(self.ctx(), &format!("reading row {}", key()), e))?
            .into_rows_result()
            .map_err(|e| map_rows(self.ctx(), &key(), e))?;
        match result
            .maybe_first_row::<(Option<Vec<u8>>,)>()
            .map_err(|e| map_rows(self.ctx(), &key(), e))?
        {
            None => Ok(None),
            Some((Some(value),)) => Ok(Some(value)),
            Some((None,)) => Err(StoreError::corrupt(table, pk, ck, "the row has no value")),
        }
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let pending: Vec<_> = keys
            .iter()
            .map(|(pk, ck)| self.get(table, pk, ck))
            .collect();
        futures::stream::iter(pending)
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn scan(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = format!("partition {table}/{pk}");
        let session = &self.inner.session;
        let st = &self.inner.statements;
        let pager = match after {
            None => {
                session
                    .execute_iter(st.scan_first.clone(), (table, pk, cql_limit(limit)))
                    .await
            }
            Some(after) => {
                session
                    .execute_iter(st.scan_after.clone(), (table, pk, after, cql_limit(limit)))
                    .await
            }
        }
        .map_err(|e| map_pager(self.ctx(), &format!("reading {key}"), e))?;
        let mut rows = pager
            .rows_stream::<(String, Option<Vec<u8>>)>()
            .map_err(|e| map_rows(self.ctx(), &key, e))?;
        let mut out = Vec::with_capacity(limit.min(statements::PAGE_SIZE as usize));
        while out.len() < limit {
            let Some((ck, value)) = rows
                .try_next()
                .await
                .map_err(|e| map_rows(self.ctx(), &key, e))?
            else {
                break;
            };
            let value =
                value.ok_or_else(|| StoreError::corrupt(table, pk, &ck, "the row has no value"))?;
            out.push(Row { ck, value });
        }
        Ok(out)
    }

    async fn scan_table(
        &self,
        table: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<TableRow>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = format!("table {table}");
        let pager = self
            .inner
            .session
            .execute_iter(self.inner.statements.scan_table.clone(), (table,))
            .await
            .map_err(|e| map_pager(self.ctx(), &format!("scanning {key}"), e))?;
        let mut rows = pager
            .rows_stream::<(String, String, Option<Vec<u8>>)>()
            .map_err(|e| map_rows(self.ctx(), &key, e))?;
        let mut smallest = SmallestAfter::new(after, limit);
        let mut scanned: u64 = 0;
        while let Some((pk, ck, value)) = rows
            .try_next()
            .await
            .map_err(|e| map_rows(self.ctx(), &key, e))?
        {
            scanned += 1;
            if !smallest.wants(&pk, &ck) {
                continue;
            }
            let value = value
                .ok_or_else(|| StoreError::corrupt(table, &pk, &ck, "the row has no value"))?;
            smallest.offer(TableRow { pk, ck, value });
        }
        let page = smallest.finish();
        tracing::debug!(
            table,
            scanned,
            returned = page.len(),
            keyspace = %self.inner.config.keyspace,
            "full table scan"
        );
        Ok(page)
    }

    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError> {
        let key = format!("checkpoint of `{projection}` for {topic}/{partition}");
        let result = self
            .inner
            .session
            .execute_unpaged(
                &self.inner.statements.get_checkpoint,
                (projection, topic, partition),
            )
            .await
            .map_err(|e| map_execution(self.ctx(), &format!("reading {key}"), e))?
            .into_rows_result()
            .map_err(|e| map_rows(self.ctx(), &key, e))?;
        Ok(result
            .maybe_first_row::<(Option<i64>,)>()
            .map_err(|e| map_rows(self.ctx(), &key, e))?
            .and_then(|(offset,)| offset))
    }

    async fn checkpoints(&self, projection: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let key = format!("checkpoints of `{projection}`");
        let pager = self
            .inner
            .session
            .execute_iter(
                self.inner.statements.list_checkpoints.clone(),
                (projection,),
            )
            .await
            .map_err(|e| map_pager(self.ctx(), &format!("reading {key}"), e))?;
        let mut rows = pager
            .rows_stream::<(String, i32, Option<i64>)>()
            .map_err(|e| map_rows(self.ctx(), &key, e))?;
        let mut out = Vec::new();
        while let Some((topic, partition, next_offset)) = rows
            .try_next()
            .await
            .map_err(|e| map_rows(self.ctx(), &key, e))?
        {
            if let Some(next_offset) = next_offset {
                out.push(Checkpoint {
                    topic,
                    partition,
                    next_offset,
                });
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A node-local table: any live node answers, whatever the keyspace's replicas do.
        let mut statement = Statement::new("SELECT now() FROM system.local");
        statement.set_consistency(Consistency::One);
        statement.set_is_idempotent(true);
        self.inner
            .session
            .query_unpaged(statement, ())
            .await
            .map_err(|e| map_execution(self.ctx(), "pinging", e))?
            .into_rows_result()
            .map_err(|e| map_rows(self.ctx(), "system.local", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_cluster_is_unavailable_and_named() {
        // A port nobody listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("scylla://app:hunter2@127.0.0.1:{port}/fleuve_unreachable");
        let err = ScyllaStore::open(&url).await.unwrap_err();
        let text = err.to_string();
        assert!(err.is_transient(), "{err:?}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("fleuve_unreachable"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn a_bad_url_fails_before_connecting() {
        match ScyllaStore::open("scylla://127.0.0.1:9042/Bad-Name").await {
            Err(StoreError::InvalidUrl { reason, .. }) => {
                assert!(reason.contains("`B`"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

//! Versions of a projection: rebuilds and snapshots, side by side with the live build.
//!
//! A projection (one processor's read model, such as `catalog`) can exist in several
//! *versions* in one store, each a complete build of its tables with its own checkpoints:
//!
//! * **version 1** is the first build, under the plain table names (`catalog_content`) and
//!   the checkpoints of `catalog`;
//! * **version N ≥ 2** lives under prefixed names (`catalog.v2/catalog_content`) with the
//!   checkpoints of `catalog.v2`. [`Namespaced`] is the [`Store`] view a processor writes
//!   and reads a version through: it renames tables and checkpoints, nothing else.
//!
//! A version is a *rebuild* (built from the start of the log, then switched to) or a
//! *snapshot* (built from the start of the log up to a past instant, then frozen, readable
//! under its name). Version numbers are never reused, so a dropped version's rows can never
//! shadow or be shadowed by a later one (ScyllaDB tombstones outlive the delete).
//!
//! Two rows per projection say which version is used, in table [`ROUTING_TABLE`]:
//! the *writer* (the version the live processor applies new events to) and the *reader*
//! (the version the query API serves). A rebuild first moves the writer, waits until the
//! new version has applied everything the old one had, then moves the reader: a read never
//! sees the projection go backwards. [`Versions`] holds the routing in memory, refreshed
//! from the store by [`Versions::follow`] (every process that reads or writes projections
//! runs it, so replicas on other machines switch too), and [`Versions::readers`] is the
//! store view that sends every read to the reader version of its table's projection; a
//! snapshot is read through its own view ([`Versions::snapshot`]).
//!
//! Every version is described in [`VERSIONS_TABLE`] ([`VersionInfo`]); dropping a version
//! ([`Versions::drop_version`]) deletes its rows and keeps its description, marked
//! `dropped`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::Checkpoint;
use crate::store::{Row, Store, StoreError, TableRow, Write, WriteBatch};

/// Descriptions of the versions: partition = projection, row = version number (zero-padded,
/// so rows sort by number).
pub const VERSIONS_TABLE: &str = "fleuve_versions";
/// Reader and writer versions: one partition ([`ROUTING_PARTITION`]), one row per projection.
pub const ROUTING_TABLE: &str = "fleuve_routing";
/// The one partition of [`ROUTING_TABLE`].
pub const ROUTING_PARTITION: &str = "routing";

/// The tables of a versioned projection. Every read model of [`crate::MODELS`] has versions;
/// `exports` is not one of them: its state is what partners have been sent, which a rebuild
/// cannot know.
pub fn tables_of(projection: &str) -> Option<&'static [&'static str]> {
    crate::models::model(projection).map(|m| m.tables)
}

/// The versioned projection a table belongs to.
pub fn projection_of_table(table: &str) -> Option<&'static str> {
    crate::MODELS
        .iter()
        .find(|m| m.tables.contains(&table))
        .map(|m| m.name)
}

/// The projection name as known to this crate (`'static`), or an error naming the known ones.
pub fn known_projection(projection: &str) -> Result<&'static str, VersionError> {
    crate::models::model(projection)
        .map(|m| m.name)
        .ok_or_else(|| VersionError::UnknownProjection {
            projection: projection.to_owned(),
            known: crate::MODELS
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The name a version's checkpoints and table prefix use: `None` for version 1 (plain
/// names), `catalog.v2` otherwise.
pub fn namespace(projection: &str, version: u32) -> Option<String> {
    (version > 1).then(|| format!("{projection}.v{version}"))
}

/// Longest snapshot name.
pub const MAX_SNAPSHOT_NAME: usize = 40;

/// Checks a snapshot name: 1 to [`MAX_SNAPSHOT_NAME`] characters among `a-z`, `0-9`, `-`,
/// `_`, `.`, starting with a letter or digit.
pub fn check_snapshot_name(name: &str) -> Result<(), VersionError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SNAPSHOT_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(VersionError::InvalidName(format!(
            "snapshot name `{}` must be 1 to {MAX_SNAPSHOT_NAME} characters among a-z, 0-9, \
             `-`, `_` and `.`, starting with a letter or a digit",
            name.escape_debug()
        )))
    }
}

/// Errors of version management.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("unknown projection `{projection}`; projections with versions: {known}")]
    UnknownProjection { projection: String, known: String },
    #[error("{0}")]
    InvalidName(String),
    #[error("projection `{projection}` has no version {version}")]
    UnknownVersion { projection: String, version: u32 },
    #[error("projection `{projection}` has no snapshot named `{name}`{available}")]
    UnknownSnapshot {
        projection: String,
        name: String,
        /// ` (snapshots: a, b)` or empty.
        available: String,
    },
    /// The version is in use or being built.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a version is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// The first build of the projection (version 1).
    Initial,
    /// Built from the start of the log, then made the live version.
    Rebuild,
    /// Built up to a past instant, then frozen; read by name.
    Snapshot,
}

/// Where a version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Being built from the log.
    Building,
    /// Built; the live processor now writes it and the query API switches to it once it has
    /// caught up with the previous version.
    Switching,
    /// The version the query API serves.
    Live,
    /// A snapshot, built and frozen.
    Ready,
    /// Replaced by a newer version; kept until dropped.
    Retired,
    /// The build stopped on an error (see `error`); drop it and start again.
    Failed,
    /// Its rows were deleted.
    Dropped,
}

/// The description of one version, as stored in [`VERSIONS_TABLE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub projection: String,
    pub version: u32,
    pub kind: VersionKind,
    pub state: VersionState,
    /// A snapshot's name (`?snapshot=<name>` on the query API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A snapshot's instant, in ms since the Unix epoch: it holds the events written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of_ms: Option<i64>,
    /// When the build started (ms since the epoch; 0 for the initial version).
    pub created_at_ms: i64,
    /// When the build reached the end of its range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_at_ms: Option<i64>,
    /// When the query API started serving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_at_ms: Option<i64>,
    /// Records the build read from the log.
    #[serde(default)]
    pub records: u64,
    /// Why the build failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VersionInfo {
    /// The description of version 1 when nothing was recorded about it.
    pub fn initial(projection: &str, live: bool) -> Self {
        Self {
            projection: projection.to_owned(),
            version: 1,
            kind: VersionKind::Initial,
            state: if live {
                VersionState::Live
            } else {
                VersionState::Retired
            },
            name: None,
            as_of_ms: None,
            created_at_ms: 0,
            built_at_ms: None,
            live_at_ms: None,
            records: 0,
            error: None,
        }
    }
}

/// Which version the live processor writes and which one the query API reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    pub reader: u32,
    pub writer: u32,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            reader: 1,
            writer: 1,
        }
    }
}

/// Interns `s`: table names of a [`Write`] are `'static`. Each version adds its tables once
/// per process.
fn intern(s: String) -> &'static str {
    static INTERNED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = INTERNED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(existing) = set.get(s.as_str()) {
        return existing;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    set.insert(leaked);
    leaked
}

/// One version of one projection, seen as a [`Store`]: the projection's tables and
/// checkpoints are renamed into the version's namespace; any other table is passed through.
pub struct Namespaced {
    inner: Arc<dyn Store>,
    projection: &'static str,
    namespace: &'static str,
    /// (plain name, name in the namespace).
    tables: Vec<(&'static str, &'static str)>,
}

impl std::fmt::Debug for Namespaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespaced")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Namespaced {
    /// The store view of `version` of `projection`: `inner` itself for version 1.
    pub fn view(inner: Arc<dyn Store>, projection: &'static str, version: u32) -> Arc<dyn Store> {
        let Some(ns) = namespace(projection, version) else {
            return inner;
        };
        let tables = tables_of(projection)
            .unwrap_or(&[])
            .iter()
            .map(|t| (*t, intern(format!("{ns}/{t}"))))
            .collect();
        Arc::new(Self {
            inner,
            projection,
            namespace: intern(ns),
            tables,
        })
    }

    fn table(&self, table: &str) -> Option<&'static str> {
        self.tables
            .iter()
            .find(|(plain, _)| *plain == table)
            .map(|(_, renamed)| *renamed)
    }

    fn table_or<'a>(&self, table: &'a str) -> &'a str {
        self.table(table).unwrap_or(table)
    }

    fn projection_or<'a>(&self, projection: &'a str) -> &'a str {
        if projection == self.projection {
            self.namespace
        } else {
            projection
        }
    }

    fn rename(&self, write: Write) -> Write {
        match write {
            Write::Put {
                table,
                pk,
                ck,
                value,
                ts,
            } => Write::Put {
                table: self.table(table).unwrap_or(table),
                pk,
                ck,
                value,
                ts,
            },
            Write::Delete { table, pk, ck, ts } => Write::Delete {
                table: self.table(table).unwrap_or(table),
                pk,
                ck,
                ts,
            },
            Write::DeletePartition { table, pk, ts } => Write::DeletePartition {
                table: self.table(table).unwrap_or(table),
                pk,
                ts,
            },
        }
    }
}

#[async_trait]
impl Store for Namespaced {
    async fn apply(&self, mut batch: WriteBatch) -> Result<(), StoreError> {
        if batch.projection == self.projection {
            self.namespace.clone_into(&mut batch.projection);
        }
        let rename = |writes: Vec<Write>| writes.into_iter().map(|w| self.rename(w)).collect();
        batch.writes.derived = rename(std::mem::take(&mut batch.writes.derived));
        batch.writes.state = rename(std::mem::take(&mut batch.writes.state));
        self.inner.apply(batch).await
    }

    async fn get(&self, table: &str, pk: &str, ck: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(self.table_or(table), pk, ck).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.get_many(self.table_or(table), keys).await
    }

    async fn scan(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        self.inner
            .scan(self.table_or(table), pk, after, limit)
            .await
    }

    async fn scan_table(
        &self,
        table: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<TableRow>, StoreError> {
        self.inner
            .scan_table(self.table_or(table), after, limit)
            .await
    }

    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError> {
        self.inner
            .checkpoint(self.projection_or(projection), topic, partition)
            .await
    }

    async fn checkpoints(&self, projection: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.checkpoints(self.projection_or(projection)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

/// The stores of one projection's reader and writer versions.
#[derive(Clone)]
struct Route {
    routing: Routing,
    reader: Arc<dyn Store>,
    writer: Arc<dyn Store>,
}

/// The routing of every versioned projection, kept in memory and refreshed from the store.
/// Share it behind an `Arc`.
pub struct Versions {
    base: Arc<dyn Store>,
    routes: RwLock<HashMap<&'static str, Route>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.routing();
        f.debug_struct("Versions")
            .field("routing", &routes)
            .finish_non_exhaustive()
    }
}

/// A write timestamp for registry rows, growing with time (microseconds since the epoch), so
/// that ScyllaDB keeps the latest description.
fn registry_ts() -> i64 {
    fleuve_schemas::clock::now_ms().saturating_mul(1000)
}

fn version_ck(version: u32) -> String {
    format!("{version:010}")
}

impl Versions {
    /// Reads the routing from `base` (every projection on version 1 when nothing is
    /// recorded).
    pub async fn open(base: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let versions = Arc::new(Self {
            base,
            routes: RwLock::new(HashMap::new()),
            changes: tokio::sync::watch::Sender::new(0),
        });
        versions.refresh().await?;
        Ok(versions)
    }

    /// The store every version lives in.
    pub fn base(&self) -> &Arc<dyn Store> {
        &self.base
    }

    /// Re-reads the routing from the store; returns whether it changed.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let rows = self
            .base
            .scan(
                ROUTING_TABLE,
                ROUTING_PARTITION,
                None,
                crate::MODELS.len() + 1,
            )
            .await?;
        let mut stored: HashMap<&str, Routing> = HashMap::new();
        for row in &rows {
            let routing: Routing = serde_json::from_slice(&row.value)
                .map_err(|e| StoreError::corrupt(ROUTING_TABLE, ROUTING_PARTITION, &row.ck, e))?;
            stored.insert(row.ck.as_str(), routing);
        }
        let mut changed = false;
        {
            let mut routes = self
                .routes
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for projection in crate::MODELS.iter().map(|m| m.name) {
                let routing = stored.get(projection).copied().unwrap_or_default();
                if routes.get(projection).map(|r| r.routing) != Some(routing) {
                    routes.insert(projection, self.route(projection, routing));
                    changed = true;
                }
            }
        }
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(changed)
    }

    fn route(&self, projection: &'static str, routing: Routing) -> Route {
        Route {
            routing,
            reader: Namespaced::view(Arc::clone(&self.base), projection, routing.reader),
            writer: Namespaced::view(Arc::clone(&self.base), projection, routing.writer),
        }
    }

    /// Refreshes the routing every `every`, forever (spawn it; a failed refresh is logged and
    /// tried again at the next tick).
    pub async fn follow(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.refresh().await {
                Ok(true) => {
                    tracing::info!(routing = ?self.routing(), "projection versions changed")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not refresh the projection versions")
                }
            }
        }
    }

    /// A receiver that sees a new value each time the routing changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The routing of every versioned projection.
    pub fn routing(&self) -> BTreeMap<&'static str, Routing> {
        self.routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(p, r)| (*p, r.routing))
            .collect()
    }

    /// One side of the route of `projection` (version 1 in the base store for a projection
    /// without versions, such as `exports`). Clones one `Arc`: every query-API read comes here.
    fn side(
        &self,
        projection: &str,
        pick: fn(&Route) -> (u32, &Arc<dyn Store>),
    ) -> (u32, Arc<dyn Store>) {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match routes.get(projection).map(pick) {
            Some((version, store)) => (version, Arc::clone(store)),
            None => (1, Arc::clone(&self.base)),
        }
    }

    /// The version the live processor of `projection` writes, and its store view. A
    /// projection without versions (`exports`) is written in the base store.
    pub fn writer(&self, projection: &str) -> (u32, Arc<dyn Store>) {
        self.side(projection, |r| (r.routing.writer, &r.writer))
    }

    /// The version the query API reads for `projection`, and its store view.
    pub fn reader(&self, projection: &str) -> (u32, Arc<dyn Store>) {
        self.side(projection, |r| (r.routing.reader, &r.reader))
    }

    /// The store view every read goes through: each table is read in the reader version of
    /// its projection; tables of no versioned
    /// projection, in the base store. Read-only.
    pub fn readers(self: &Arc<Self>) -> Arc<dyn Store> {
        Arc::new(Readers {
            versions: Arc::clone(self),
        })
    }

    /// Records the routing of `projection` and applies it in this process at once (other
    /// processes see it at their next refresh).
    pub async fn set_routing(
        &self,
        projection: &'static str,
        routing: Routing,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_vec(&routing).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.base
            .apply(WriteBatch {
                projection: ROUTING_TABLE.to_owned(),
                writes: vec![Write::Put {
                    table: ROUTING_TABLE,
                    pk: ROUTING_PARTITION.to_owned(),
                    ck: projection.to_owned(),
                    value,
                    ts: registry_ts(),
                }]
                .into(),
                checkpoints: Vec::new(),
            })
            .await?;
        let route = self.route(projection, routing);
        self.routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(projection, route);
        self.changes.send_modify(|n| *n += 1);
        tracing::info!(
            projection,
            reader = routing.reader,
            writer = routing.writer,
            "projection routing set"
        );
        Ok(())
    }

    /// Records a version's description.
    pub async fn put(&self, info: &VersionInfo) -> Result<(), StoreError> {
        let value = serde_json::to_vec(info).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.base
            .apply(WriteBatch {
                projection: VERSIONS_TABLE.to_owned(),
                writes: vec![Write::Put {
                    table: VERSIONS_TABLE,
                    pk: info.projection.clone(),
                    ck: version_ck(info.version),
                    value,
                    ts: registry_ts(),
                }]
                .into(),
                checkpoints: Vec::new(),
            })
            .await
    }

    /// Every version of `projection`, oldest first (version 1 included even when nothing
    /// was recorded about it).
    pub async fn list(&self, projection: &str) -> Result<Vec<VersionInfo>, VersionError> {
        let projection = known_projection(projection)?;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .base
                .scan(VERSIONS_TABLE, projection, after.as_deref(), 500)
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.ck.clone());
            for row in &rows {
                out.push(
                    serde_json::from_slice::<VersionInfo>(&row.value)
                        .map_err(|e| StoreError::corrupt(VERSIONS_TABLE, projection, &row.ck, e))?,
                );
            }
        }
        if out.first().is_none_or(|v| v.version != 1) {
            let live = self.reader(projection).0 == 1;
            out.insert(0, VersionInfo::initial(projection, live));
        }
        Ok(out)
    }

    /// One version's description.
    pub async fn get(&self, projection: &str, version: u32) -> Result<VersionInfo, VersionError> {
        self.list(projection)
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| VersionError::UnknownVersion {
                projection: projection.to_owned(),
                version,
            })
    }

    /// The next version number of `projection` (numbers are never reused).
    pub async fn next_version(&self, projection: &str) -> Result<u32, VersionError> {
        let versions = self.list(projection).await?;
        Ok(versions.iter().map(|v| v.version).max().unwrap_or(1) + 1)
    }

    /// The store of the snapshot `name` of `projection`, if it is built.
    pub async fn snapshot(
        &self,
        projection: &'static str,
        name: &str,
    ) -> Result<(VersionInfo, Arc<dyn Store>), VersionError> {
        let versions = self.list(projection).await?;
        let usable =
            |v: &&VersionInfo| v.kind == VersionKind::Snapshot && v.state == VersionState::Ready;
        match versions
            .iter()
            .filter(usable)
            .find(|v| v.name.as_deref() == Some(name))
        {
            Some(v) => Ok((
                v.clone(),
                Namespaced::view(Arc::clone(&self.base), projection, v.version),
            )),
            None => {
                let names: Vec<&str> = versions
                    .iter()
                    .filter(usable)
                    .filter_map(|v| v.name.as_deref())
                    .collect();
                Err(VersionError::UnknownSnapshot {
                    projection: projection.to_owned(),
                    name: name.to_owned(),
                    available: if names.is_empty() {
                        String::new()
                    } else {
                        format!(" (snapshots: {})", names.join(", "))
                    },
                })
            }
        }
    }

    /// Deletes every row of a version and marks it dropped. Refused for the versions the
    /// query API reads or the processor writes, and for a version being built.
    pub async fn drop_version(
        &self,
        projection: &str,
        version: u32,
    ) -> Result<VersionInfo, VersionError> {
        let projection = known_projection(projection)?;
        let mut info = self.get(projection, version).await?;
        let routing = self.routing().get(projection).copied().unwrap_or_default();
        if routing.reader == version || routing.writer == version {
            return Err(VersionError::Conflict(format!(
                "version {version} of `{projection}` is in use (read: v{}, written: v{}); \
                 only retired versions and snapshots can be dropped",
                routing.reader, routing.writer
            )));
        }
        match info.state {
            VersionState::Building | VersionState::Switching => {
                return Err(VersionError::Conflict(format!(
                    "version {version} of `{projection}` is being built; wait for it to finish"
                )))
            }
            VersionState::Dropped => return Ok(info),
            _ => {}
        }
        let view = Namespaced::view(Arc::clone(&self.base), projection, version);
        for table in tables_of(projection).unwrap_or(&[]) {
            delete_table(&*view, projection, table).await?;
        }
        info.state = VersionState::Dropped;
        self.put(&info).await?;
        tracing::info!(projection, version, "projection version dropped");
        Ok(info)
    }
}

/// Deletes every partition of `table` (through `view`), a page at a time.
async fn delete_table(
    view: &dyn Store,
    projection: &str,
    table: &'static str,
) -> Result<(), StoreError> {
    const PAGE: usize = 2_000;
    let ts = registry_ts();
    loop {
        // Deleted partitions are gone from the next scan: always read from the start.
        let rows = view.scan_table(table, None, PAGE).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut pks: Vec<String> = rows.into_iter().map(|r| r.pk).collect();
        pks.dedup();
        let writes: Vec<Write> = pks
            .into_iter()
            .map(|pk| Write::DeletePartition { table, pk, ts })
            .collect();
        view.apply(WriteBatch {
            projection: format!("{projection}/drop"),
            writes: writes.into(),
            checkpoints: Vec::new(),
        })
        .await?;
    }
}

/// See [`Versions::readers`].
struct Readers {
    versions: Arc<Versions>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").finish_non_exhaustive()
    }
}

impl Readers {
    fn for_projection(&self, projection: Option<&str>) -> Arc<dyn Store> {
        let Some(projection) = projection else {
            return Arc::clone(&self.versions.base);
        };
        self.versions.reader(projection).1
    }

    fn for_table(&self, table: &str) -> Arc<dyn Store> {
        self.for_projection(projection_of_table(table))
    }
}

#[async_trait]
impl Store for Readers {
    async fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        Err(StoreError::Backend(format!(
            "the readers' view of the projections is read-only (a write for `{}` was refused)",
            batch.projection
        )))
    }

    async fn get(&self, table: &str, pk: &str, ck: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.for_table(table).get(table, pk, ck).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.for_table(table).get_many(table, keys).await
    }

    async fn scan(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        self.for_table(table).scan(table, pk, after, limit).await
    }

    async fn scan_table(
        &self,
        table: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<TableRow>, StoreError> {
        self.for_table(table).scan_table(table, after, limit).await
    }

    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError> {
        self.for_projection(Some(projection))
            .checkpoint(projection, topic, partition)
            .await
    }

    async fn checkpoints(&self, projection: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.for_projection(Some(projection))
            .checkpoints(projection)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.versions.base.ping().await
    }
}

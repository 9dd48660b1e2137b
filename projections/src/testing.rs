//! Stores for tests: every backend, each store opened empty and apart from the others.
//!
//! The store conformance suite (`projections/tests/conformance.rs`) and the processors'
//! golden tests (`processors/tests/golden.rs`) run each of their cases once per [`Backend`],
//! with [`backend_tests!`](crate::backend_tests):
//!
//! | backend | runs | each fresh store |
//! | --- | --- | --- |
//! | [`Backend::Embedded`] | always (feature `embedded`) | a new directory under the system's temporary directory, removed when the [`FreshStore`] is dropped |
//! | [`Backend::Scylla`] | when `SCYLLA_URI` names a cluster (feature `scylla`) | a new keyspace `fleuve_test_<pid>_<n>_<nanos>`, left on the cluster |
//!
//! `SCYLLA_URI` is a `scylla://` URL without a keyspace, for example
//! `SCYLLA_URI=scylla://127.0.0.1:9042` (a query such as `?local_dc=dc1` is kept; a path is
//! replaced by the test's keyspace). The keyspaces stay on the cluster after the tests, so
//! that a failure can be looked at: drop them with `DROP KEYSPACE` when done.
//!
//! The ScyllaDB cases are `#[ignore = "needs SCYLLA_URI"]`: no ScyllaDB server runs in this
//! repository's CI, so a plain `cargo test` lists them as ignored (not run) rather than as
//! passed. Run them against a cluster with `--include-ignored`:
//!
//! ```text
//! SCYLLA_URI=scylla://127.0.0.1:9042 cargo test -p fleuve-projections --test conformance -- --include-ignored
//! SCYLLA_URI=scylla://127.0.0.1:9042 cargo test -p fleuve-processors --test golden -- --include-ignored
//! ```
//!
//! A backend that cannot run here all the same (`--include-ignored` without `SCYLLA_URI`, or
//! its feature not compiled in) says why on stderr and its cases return without running.
//!
//! ```no_run
//! use std::sync::Arc;
//! use fleuve_projections::Store;
//!
//! async fn empty_at_first(store: Arc<dyn Store>) {
//!     assert_eq!(store.get("t", "pk", "ck").await.unwrap(), None);
//! }
//!
//! // Tests `embedded::empty_at_first` and `scylla::empty_at_first`.
//! fleuve_projections::backend_tests!(empty_at_first);
//!
//! // Or, in another module, a runner that opens its stores itself: tests
//! // `by_runner::embedded::case_a`, `by_runner::scylla::case_a`, …
//! mod by_runner {
//!     use fleuve_projections::testing::Backend;
//!
//!     async fn runner(backend: Backend, case: &str) {
//!         if let Some(why) = backend.skip_reason() {
//!             eprintln!("{why}: {case} skipped on {backend}");
//!             return;
//!         }
//!         let fresh = backend.fresh().await.unwrap();
//!         assert_eq!(fresh.store().get("t", case, "ck").await.unwrap(), None);
//!     }
//!
//!     fleuve_projections::backend_tests!(runner => case_a, case_b);
//! }
//! # fn main() {}
//! ```
//!
//! [`FaultyStore`] wraps any store to make it fail, hold its writes or slow its reads on
//! demand ([`Faults`]), for the tests of what runs on top of a store (processors, the query
//! API).

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::model::Checkpoint;
use crate::store::{Row, Store, StoreError, TableRow, WriteBatch};

/// The environment variable naming the ScyllaDB cluster tests may use.
pub const SCYLLA_URI: &str = "SCYLLA_URI";

/// Numbers the fresh stores of this process, so that two never share a place.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A store backend tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The embedded store (`embedded::EmbeddedStore`, feature `embedded`), in a temporary
    /// directory.
    Embedded,
    /// ScyllaDB (`scylla::ScyllaStore`, feature `scylla`), in a new keyspace of the cluster
    /// `SCYLLA_URI` names.
    Scylla,
}

impl Backend {
    /// Every backend, in the order tests list them.
    pub const ALL: [Backend; 2] = [Backend::Embedded, Backend::Scylla];

    /// The backend's name, as in test names (`embedded`, `scylla`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Scylla => "scylla",
        }
    }

    /// Why this backend cannot run here (its feature is not compiled in; for ScyllaDB,
    /// `SCYLLA_URI` is not set), or `None` when it can.
    pub fn skip_reason(self) -> Option<String> {
        match self {
            Backend::Embedded => (!cfg!(feature = "embedded"))
                .then(|| "the `embedded` feature is not compiled in".to_owned()),
            Backend::Scylla => {
                if !cfg!(feature = "scylla") {
                    return Some("the `scylla` feature is not compiled in".to_owned());
                }
                match std::env::var(SCYLLA_URI) {
                    Ok(uri) if !uri.trim().is_empty() => None,
                    _ => Some(format!("{SCYLLA_URI} is not set")),
                }
            }
        }
    }

    /// Opens an empty store of this backend that no other [`FreshStore`] shares: a new
    /// directory, or a new keyspace. Fails when [`Backend::skip_reason`] says the backend
    /// cannot run here, or when the store does not open.
    pub async fn fresh(self) -> Result<FreshStore, StoreError> {
        if let Some(why) = self.skip_reason() {
            return Err(StoreError::Backend(format!(
                "the {self} store cannot be used here: {why}"
            )));
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let unique = format!(
            "{}_{n}_{}",
            std::process::id(),
            clock_nanos() % 1_000_000_000
        );
        match self {
            Backend::Embedded => {
                let dir = ScratchDir::create(&format!("fleuve-test-{unique}"))?;
                let store =
                    crate::open::open(&format!("embedded://{}", dir.path().display())).await?;
                Ok(FreshStore {
                    store,
                    backend: self,
                    location: format!("directory {}", dir.path().display()),
                    _dir: Some(dir),
                })
            }
            Backend::Scylla => {
                let uri = std::env::var(SCYLLA_URI)
                    .map_err(|e| StoreError::Backend(format!("{SCYLLA_URI}: {e}")))?;
                let keyspace = format!("fleuve_test_{unique}");
                let store = crate::open::open(&with_keyspace(&uri, &keyspace)).await?;
                tracing::debug!(keyspace = %keyspace, "fresh scylla test store open");
                Ok(FreshStore {
                    store,
                    backend: self,
                    location: format!("keyspace {keyspace}"),
                    _dir: None,
                })
            }
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An empty store opened for one test by [`Backend::fresh`].
#[derive(Debug)]
pub struct FreshStore {
    // Declared before `_dir`: the store closes before its directory is removed.
    store: Arc<dyn Store>,
    backend: Backend,
    location: String,
    _dir: Option<ScratchDir>,
}

impl FreshStore {
    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Its backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where it lives, for failure messages: `directory /tmp/…` (removed when this is
    /// dropped) or `keyspace fleuve_test_…` (left on the cluster).
    pub fn location(&self) -> &str {
        &self.location
    }
}

/// Runs `case` against a fresh store of `backend`, or says on stderr why it is skipped.
/// What the case writes is its own: each call gets a store of its own.
///
/// # Panics
///
/// When the store does not open, and whenever `case` panics (a failed assertion); the
/// backend and the store's location are printed on stderr first, so that the failure
/// output of a test names them.
pub async fn run<F, Fut>(backend: Backend, name: &str, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(why) = backend.skip_reason() {
        eprintln!("{why}: {backend} case `{name}` skipped");
        return;
    }
    let fresh = match backend.fresh().await {
        Ok(fresh) => fresh,
        Err(e) => panic!("{backend} case `{name}`: cannot open a fresh store: {e}"),
    };
    eprintln!("{backend} case `{name}` runs in {}", fresh.location());
    case(Arc::clone(fresh.store())).await;
}

/// `uri` (a `scylla://` URL naming a cluster) with `keyspace` as its keyspace, its query
/// kept.
fn with_keyspace(uri: &str, keyspace: &str) -> String {
    let uri = uri.trim();
    let (base, query) = match uri.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (uri, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => base.trim_end_matches('/').to_owned(),
    };
    match query {
        Some(query) => format!("{base}/{keyspace}?{query}"),
        None => format!("{base}/{keyspace}"),
    }
}

fn clock_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A directory made for one store, removed on drop.
#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create(name: &str) -> Result<Self, StoreError> {
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create the test store directory {}: {e}",
                path.display()
            ))
        })?;
        Ok(Self { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a test store directory");
        }
    }
}

/// Failures and delays a [`FaultyStore`] injects, switched on and off while it runs. Every
/// injected failure is counted ([`Faults::injected`]); a store with no fault switched on
/// behaves as the store it wraps.
#[derive(Debug, Default)]
pub struct Faults {
    /// While set, every call fails at once with the error this returns.
    every_call: Mutex<Option<fn() -> StoreError>>,
    /// Fails `apply` with the permanent [`StoreError::Backend`].
    apply_fatal: AtomicBool,
    /// Fails `apply` with the transient [`StoreError::Unavailable`].
    apply_unavailable: AtomicBool,
    /// Fails `checkpoint` with the transient [`StoreError::Unavailable`].
    checkpoint_unavailable: AtomicBool,
    /// While non-zero, the longest an `apply` waits (in ms) before it goes on.
    hold_apply_ms: AtomicU64,
    /// Added to every row read (`get`, `get_many`, `scan`, `scan_table`), in ms.
    read_delay_ms: AtomicU64,
    /// Batches applied by the wrapped store.
    applies: AtomicU64,
    /// Failures injected so far.
    injected: AtomicU64,
}

impl Faults {
    /// Makes every call (pings, reads, writes) fail at once with the error `error` returns,
    /// as an unreachable store does, or stops it (`None`). Checked before any other fault.
    pub fn fail_every_call(&self, error: Option<fn() -> StoreError>) {
        *self
            .every_call
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }

    /// Makes `apply` fail with the permanent `StoreError::Backend("disk full")`, or stops it.
    pub fn apply_fatal(&self, on: bool) {
        self.apply_fatal.store(on, Ordering::SeqCst);
    }

    /// Makes `apply` fail with the transient `StoreError::Unavailable("node restarting")`,
    /// or stops it.
    pub fn apply_unavailable(&self, on: bool) {
        self.apply_unavailable.store(on, Ordering::SeqCst);
    }

    /// Makes `checkpoint` (not `checkpoints`) fail with the transient
    /// `StoreError::Unavailable("checkpoint read timed out")`, or stops it.
    pub fn checkpoint_unavailable(&self, on: bool) {
        self.checkpoint_unavailable.store(on, Ordering::SeqCst);
    }

    /// Holds every `apply` (a slow store): each waits, before it reaches the wrapped store,
    /// until [`Faults::release_apply`] or for `max` at most, counted from its own start.
    pub fn hold_apply(&self, max: Duration) {
        self.hold_apply_ms
            .store(millis(max).max(1), Ordering::SeqCst);
    }

    /// Lets held and later `apply` calls go on.
    pub fn release_apply(&self) {
        self.hold_apply_ms.store(0, Ordering::SeqCst);
    }

    /// Delays every row read (`get`, `get_many`, `scan`, `scan_table`; not checkpoint reads
    /// nor pings) by `delay`, or stops it (`Duration::ZERO`).
    pub fn read_delay(&self, delay: Duration) {
        self.read_delay_ms.store(millis(delay), Ordering::SeqCst);
    }

    /// Batches the wrapped store has applied (failed and injected ones left out).
    pub fn applies(&self) -> u64 {
        self.applies.load(Ordering::SeqCst)
    }

    /// Failures injected so far, of every kind.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn inject<T>(&self, error: StoreError) -> Result<T, StoreError> {
        self.injected.fetch_add(1, Ordering::SeqCst);
        Err(error)
    }

    fn check_every_call(&self) -> Result<(), StoreError> {
        let every_call = *self
            .every_call
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match every_call {
            Some(error) => self.inject(error()),
            None => Ok(()),
        }
    }

    /// The checks of a row read: failing every call, then the read delay.
    async fn before_read(&self) -> Result<(), StoreError> {
        self.check_every_call()?;
        let delay = self.read_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A store that delegates every call to another and injects the [`Faults`] switched on:
/// failures (transient or permanent), held writes and slow reads. It also keeps a copy of
/// every batch the wrapped store applied ([`FaultyStore::applied`]), so that a test can
/// see what a processor wrote and in which batches.
///
/// `apply` checks, in order: failing every call, the fatal failure, the transient failure,
/// the hold; then it applies and records the batch.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Faults,
    applied: Mutex<Vec<WriteBatch>>,
}

impl FaultyStore {
    /// Wraps `inner`, no fault switched on.
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            faults: Faults::default(),
            applied: Mutex::default(),
        })
    }

    /// The switches and counters of this store.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Every batch the wrapped store applied through this one, in the order `apply`
    /// returned.
    pub fn applied(&self) -> Vec<WriteBatch> {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let faults = &self.faults;
        faults.check_every_call()?;
        if faults.apply_fatal.load(Ordering::SeqCst) {
            return faults.inject(StoreError::Backend("disk full".into()));
        }
        if faults.apply_unavailable.load(Ordering::SeqCst) {
            return faults.inject(StoreError::Unavailable("node restarting".into()));
        }
        let started = Instant::now();
        loop {
            let hold = faults.hold_apply_ms.load(Ordering::SeqCst);
            if hold == 0 || started.elapsed() >= Duration::from_millis(hold) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.apply(batch.clone()).await?;
        faults.applies.fetch_add(1, Ordering::SeqCst);
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(batch);
        Ok(())
    }

    async fn get(&self, table: &str, pk: &str, ck: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.faults.before_read().await?;
        self.inner.get(table, pk, ck).await
    }

    async fn get_many(
        &self,
        table: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.faults.before_read().await?;
        self.inner.get_many(table, keys).await
    }

    async fn scan(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        self.faults.before_read().await?;
        self.inner.scan(table, pk, after, limit).await
    }

    async fn scan_table(
        &self,
        table: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<TableRow>, StoreError> {
        self.faults.before_read().await?;
        self.inner.scan_table(table, after, limit).await
    }

    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError> {
        self.faults.check_every_call()?;
        if self.faults.checkpoint_unavailable.load(Ordering::SeqCst) {
            return self
                .faults
                .inject(StoreError::Unavailable("checkpoint read timed out".into()));
        }
        self.inner.checkpoint(projection, topic, partition).await
    }

    async fn checkpoints(&self, projection: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.faults.check_every_call()?;
        self.inner.checkpoints(projection).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.faults.check_every_call()?;
        self.inner.ping().await
    }
}

/// Generates one `#[tokio::test]` per case and backend, in modules `embedded` and
/// `scylla`, so that the name of a test says which backend it ran on
/// (`scylla::scenario_ping`). The `scylla` ones are `#[ignore = "needs SCYLLA_URI"]` (run
/// them with `SCYLLA_URI` set and `-- --include-ignored`). See [`testing`](crate::testing).
///
/// * `backend_tests!(a, b)`: `a` and `b` are `async fn(Arc<dyn Store>)` of the calling
///   module, each run in a fresh store of every backend ([`testing::run`](crate::testing::run)).
/// * `backend_tests!(runner => a, b)`: calls `runner(backend, "a")` (an
///   `async fn(Backend, &str)` of the calling module) for every backend; the runner
///   checks [`Backend::skip_reason`] and opens the stores it needs with [`Backend::fresh`].
///
/// It defines modules `embedded` and `scylla`, so it can be used once per module. The
/// calling crate needs `tokio` with its `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! backend_tests {
    (@module $module:ident $backend:ident #[$attr:meta] $runner:ident => $($name:ident),+) => {
        mod $module {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[$attr]
                async fn $name() {
                    super::$runner($crate::testing::Backend::$backend, stringify!($name)).await;
                }
            )+
        }
    };
    (@module $module:ident $backend:ident #[$attr:meta] => $($name:ident),+) => {
        mod $module {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[$attr]
                async fn $name() {
                    $crate::testing::run(
                        $crate::testing::Backend::$backend,
                        stringify!($name),
                        super::$name,
                    )
                    .await;
                }
            )+
        }
    };
    ($runner:ident => $($name:ident),+ $(,)?) => {
        $crate::backend_tests!(@module embedded Embedded #[doc = "Runs on every `cargo test`."] $runner => $($name),+);
        $crate::backend_tests!(
            @module scylla Scylla #[ignore = "needs SCYLLA_URI"] $runner => $($name),+
        );
    };
    ($($name:ident),+ $(,)?) => {
        $crate::backend_tests!(@module embedded Embedded #[doc = "Runs on every `cargo test`."] => $($name),+);
        $crate::backend_tests!(@module scylla Scylla #[ignore = "needs SCYLLA_URI"] => $($name),+);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_keyspace_replaces_any_path_and_keeps_the_query() {
        let ks = "fleuve_test_1_2_3";
        for (uri, expected) in [
            (
                "scylla://127.0.0.1:9042",
                "scylla://127.0.0.1:9042/fleuve_test_1_2_3",
            ),
            (
                "scylla://127.0.0.1:9042/",
                "scylla://127.0.0.1:9042/fleuve_test_1_2_3",
            ),
            (
                " scylla://a:9042,b/fleuve?local_dc=dc1&replication_factor=3 ",
                "scylla://a:9042,b/fleuve_test_1_2_3?local_dc=dc1&replication_factor=3",
            ),
            (
                "scylla://u:p%2Fw@[::1]:9042?local_dc=dc1",
                "scylla://u:p%2Fw@[::1]:9042/fleuve_test_1_2_3?local_dc=dc1",
            ),
        ] {
            assert_eq!(with_keyspace(uri, ks), expected, "{uri}");
        }
    }

    #[test]
    fn names_and_availability() {
        assert_eq!(
            Backend::ALL.map(Backend::name),
            ["embedded", "scylla"],
            "test module names"
        );
        assert_eq!(Backend::Scylla.to_string(), "scylla");
        assert_eq!(
            Backend::Embedded.skip_reason().is_none(),
            cfg!(feature = "embedded")
        );
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn a_faulty_store_injects_its_faults_and_records_what_it_applied() {
        use crate::model::Checkpoint;
        use crate::store::{Write, WriteBatch};
        let fresh = Backend::Embedded.fresh().await.unwrap();
        let store = FaultyStore::new(Arc::clone(fresh.store()));
        let faults = store.faults();
        let batch = |n: i64| WriteBatch {
            projection: "p".into(),
            writes: vec![Write::Put {
                table: "t",
                pk: "k".into(),
                ck: "c".into(),
                value: n.to_string().into_bytes(),
                ts: n,
            }]
            .into(),
            checkpoints: vec![Checkpoint {
                topic: "t".into(),
                partition: 0,
                next_offset: n,
            }],
        };

        // Nothing switched on: the wrapped store's answers.
        store.apply(batch(1)).await.unwrap();
        assert_eq!(store.get("t", "k", "c").await.unwrap(), Some(b"1".to_vec()));
        store.ping().await.unwrap();
        assert_eq!((faults.applies(), faults.injected()), (1, 0));

        faults.apply_unavailable(true);
        let err = store.apply(batch(2)).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        faults.apply_fatal(true);
        let err = store.apply(batch(2)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Backend(ref m) if m == "disk full"),
            "{err}"
        );
        faults.apply_fatal(false);
        faults.apply_unavailable(false);
        assert_eq!((faults.applies(), faults.injected()), (1, 2));

        faults.checkpoint_unavailable(true);
        assert!(store
            .checkpoint("p", "t", 0)
            .await
            .unwrap_err()
            .is_transient());
        assert_eq!(store.checkpoints("p").await.unwrap().len(), 1);
        faults.checkpoint_unavailable(false);
        assert_eq!(store.checkpoint("p", "t", 0).await.unwrap(), Some(1));

        faults.fail_every_call(Some(|| StoreError::Unavailable("node down".into())));
        assert!(store.ping().await.unwrap_err().is_transient());
        assert!(store.get("t", "k", "c").await.unwrap_err().is_transient());
        assert!(store.checkpoints("p").await.unwrap_err().is_transient());
        assert!(store.apply(batch(3)).await.unwrap_err().is_transient());
        faults.fail_every_call(None);
        assert_eq!(faults.injected(), 7);

        faults.read_delay(Duration::from_millis(150));
        let started = Instant::now();
        store.get("t", "k", "c").await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
        faults.read_delay(Duration::ZERO);

        // A held apply waits for its bound, then goes on.
        faults.hold_apply(Duration::from_millis(150));
        let started = Instant::now();
        store.apply(batch(4)).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
        faults.release_apply();

        assert_eq!(store.applied(), vec![batch(1), batch(4)]);
        assert_eq!(faults.applies(), 2);
        assert_eq!(store.get("t", "k", "c").await.unwrap(), Some(b"4".to_vec()));
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn fresh_embedded_stores_are_empty_apart_and_removed() {
        use crate::model::Checkpoint;
        use crate::store::{Write, WriteBatch};
        let a = Backend::Embedded.fresh().await.unwrap();
        let b = Backend::Embedded.fresh().await.unwrap();
        assert_ne!(a.location(), b.location());
        assert_eq!(a.backend(), Backend::Embedded);
        a.store()
            .apply(WriteBatch {
                projection: "p".into(),
                writes: vec![Write::Put {
                    table: "t",
                    pk: "k".into(),
                    ck: "c".into(),
                    value: b"v".to_vec(),
                    ts: 1,
                }]
                .into(),
                checkpoints: vec![Checkpoint {
                    topic: "t".into(),
                    partition: 0,
                    next_offset: 1,
                }],
            })
            .await
            .unwrap();
        assert_eq!(
            a.store().get("t", "k", "c").await.unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(b.store().get("t", "k", "c").await.unwrap(), None);
        assert_eq!(b.store().checkpoint("p", "t", 0).await.unwrap(), None);
        let dir = a
            .location()
            .strip_prefix("directory ")
            .map(PathBuf::from)
            .unwrap();
        assert!(dir.is_dir());
        drop(a);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

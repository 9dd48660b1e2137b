//! Where the routes read: the [`Source`] the router is built over, the state every handler
//! shares, and [`Reading`], the store one request reads (the live projections, or the
//! snapshot it names).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use fleuve_projections::versions::Versions;
use fleuve_projections::Store;

use crate::config::QueryConfig;

/// The projections the query API serves.
#[derive(Debug, Clone)]
pub enum Source {
    /// One store, read as it is; every `snapshot` is `404 unknown_snapshot`.
    Store(Arc<dyn Store>),
    /// The projections' versions: each projection is read in its reader version
    /// ([`Versions::readers`]), and `?snapshot=<name>` in that snapshot
    /// ([`crate::snapshot`]). The `fleuve` binary serves this.
    Versions(Arc<Versions>),
}

impl From<Arc<dyn Store>> for Source {
    fn from(store: Arc<dyn Store>) -> Self {
        Source::Store(store)
    }
}

impl<S: Store + 'static> From<Arc<S>> for Source {
    fn from(store: Arc<S>) -> Self {
        Source::Store(store)
    }
}

/// What every handler and middleware of the `/v1` routes shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// The live projections (through the reader versions when there are versions).
    pub live: Arc<dyn Store>,
    /// Where snapshots are looked up; `None`: this API serves no snapshots.
    pub versions: Option<Arc<Versions>>,
    pub config: Arc<QueryConfig>,
}

impl AppState {
    pub(crate) fn new(source: Source, config: QueryConfig) -> Self {
        let (live, versions) = match source {
            Source::Store(store) => (store, None),
            Source::Versions(versions) => (versions.readers(), Some(versions)),
        };
        Self {
            live,
            versions,
            config: Arc::new(config),
        }
    }
}

/// What a request reads: the store its handler reads, and the instant it reads at.
///
/// The live projections at the request's instant, unless [`crate::snapshot`] put the
/// snapshot the request names (and its instant) in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// The store to read.
    pub store: Arc<dyn Store>,
    /// The snapshot's instant, in ms since the Unix epoch; `None`: now.
    pub as_of_ms: Option<i64>,
}

impl Reading {
    /// The instant availability is evaluated at, in milliseconds since the Unix epoch: the
    /// snapshot's instant, or now.
    pub(crate) fn now_ms(&self) -> i64 {
        if let Some(as_of) = self.as_of_ms {
            return as_of;
        }
        fleuve_schemas::clock::now_ms()
    }

    /// The reading of a request: the snapshot of its extensions, or the live projections.
    pub(crate) fn of(parts: &Parts, state: &AppState) -> Self {
        parts
            .extensions
            .get::<Reading>()
            .cloned()
            .unwrap_or_else(|| Reading {
                store: Arc::clone(&state.live),
                as_of_ms: None,
            })
    }
}

impl FromRequestParts<AppState> for Reading {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self::of(parts, state))
    }
}

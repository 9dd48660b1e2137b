//! [`start`]: the query API running, as `fleuve query` and `fleuve run` start it.

use std::net::SocketAddr;
use std::sync::Arc;

use fleuve_projections::versions::Versions;
use fleuve_service::serve::{CancellationToken, ServeError, Server};

use crate::{router, QueryConfig, Source};

/// Where the query API listens and what it reads.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Address of the HTTP API (`fleuve` default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// The projections' versions, read and followed by the caller (the processors of
    /// `fleuve run` share them); the API reads their store.
    pub versions: Arc<Versions>,
    /// Limits, authentication, read-your-writes and readiness settings.
    pub query: QueryConfig,
}

/// Serves the query API on `config.addr` until `shutdown`, reading through
/// `config.versions` (reader versions and snapshots).
pub async fn start(
    config: ServiceConfig,
    shutdown: &CancellationToken,
) -> Result<Server, ServeError> {
    let source = Source::Versions(config.versions);
    Server::bind("query", config.addr, router(source, config.query), shutdown).await
}

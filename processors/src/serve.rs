//! [`start`]: the processors of one process running, as `fleuve process` and `fleuve run`
//! start them: each named processor, the exports relay when `exports` is one of them, the
//! builds of their projections (unfinished ones resumed), and the ops server
//! (`/metrics`, `/healthz`, `/readyz` ready when every processor is, and the
//! [`admin`](crate::admin) routes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use fleuve_projections::versions::Versions;
use fleuve_projections::Store;
use fleuve_service::serve::{ServeError, Server};
use fleuve_service::{ops_routes, Readiness, ReadyFlag};
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin};
use crate::handlers::{self, exports};
use crate::rebuild::{RebuildError, Rebuilds};
use crate::runtime::{Handler, Processor, ProcessorConfig, ProcessorError};

/// What [`start`] runs, and where.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Address of the ops server (`fleuve` default `127.0.0.1:8083`).
    pub addr: SocketAddr,
    /// The processors to run ([`handlers::NAMES`]), each once.
    pub names: Vec<&'static str>,
    /// Settings every processor shares (brokers, registry, batches, membership, stall
    /// bound); each gets the client id `fleuve-<name>`, builds `fleuve-rebuild`.
    pub runtime: ProcessorConfig,
    /// Partners file of the `exports` processor (`docs/exports.md`); without it, `exports`
    /// keeps its state but exports to no one.
    pub exports_partners: Option<PathBuf>,
    /// Partitions of the partners' export topics when the relay creates them.
    pub export_partitions: i32,
    /// The projections' versions in the store the processors write (read and followed by
    /// the caller: the query API of `fleuve run` shares them).
    pub versions: Arc<Versions>,
}

/// Why the processors could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("unknown processor `{name}`; known processors: {}", handlers::NAMES.join(", "))]
    UnknownProcessor { name: String },
    #[error(transparent)]
    Processor(#[from] ProcessorError),
    #[error(transparent)]
    Partners(#[from] exports::PartnersError),
    #[error(transparent)]
    Relay(#[from] exports::RelayError),
    #[error("resuming unfinished projection builds")]
    Rebuilds(#[source] RebuildError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Starts the processors named in `config`, their builds and the ops server, until
/// `shutdown`.
pub async fn start(
    config: ServiceConfig,
    shutdown: &CancellationToken,
) -> Result<Server, StartError> {
    let store = Arc::clone(config.versions.base());
    let stop = shutdown.child_token();
    let mut processors = Vec::with_capacity(config.names.len());
    let mut relay = None;
    for name in &config.names {
        let Some(mut handler) = handlers::by_name(name) else {
            return Err(StartError::UnknownProcessor {
                name: (*name).to_owned(),
            });
        };
        if *name == exports::NAME {
            let (exports, r) = exports_with_relay(&config, Arc::clone(&store))?;
            handler = exports;
            relay = Some(r);
        }
        let mut runtime = config.runtime.clone();
        runtime.kafka = runtime.kafka.with_client_id(format!("fleuve-{name}"));
        let processor = Processor::new(runtime, handler, Arc::clone(&store))?
            .follow_versions(Arc::clone(&config.versions));
        processors.push((*name, processor));
    }

    let mut build = config.runtime.clone();
    build.kafka = build.kafka.with_client_id("fleuve-rebuild");
    let local: Vec<&'static str> = config
        .names
        .iter()
        .copied()
        .filter(|n| fleuve_projections::versions::tables_of(n).is_some())
        .collect();
    let rebuilds = Rebuilds::new(build, Arc::clone(&config.versions), stop.clone());
    rebuilds
        .resume(&local)
        .await
        .map_err(StartError::Rebuilds)?;

    let flags: Vec<Arc<ReadyFlag>> = processors.iter().map(|(_, p)| p.readiness()).collect();
    let router =
        ops_routes(Arc::new(AllReady(flags))).merge(admin::routes(Admin { rebuilds, local }));
    let mut server = match Server::bind("processor", config.addr, router, &stop).await {
        Ok(server) => server,
        Err(e) => {
            stop.cancel(); // the resumed builds
            return Err(e.into());
        }
    };
    let builds = stop;
    let stop = server.stop_token();
    // The builds stop with the service (a failed processor stops it), not only at shutdown.
    let service_stop = stop.clone();
    server.spawn("builds", async move {
        service_stop.cancelled().await;
        builds.cancel();
        Ok::<(), std::convert::Infallible>(())
    });
    if let Some(relay) = relay {
        let token = stop.clone();
        server.spawn("exports relay", async move {
            relay.ensure_topics().await?;
            relay.run(token).await
        });
    }
    for (name, processor) in processors {
        let token = stop.clone();
        server.spawn(name, processor.run(token));
    }
    Ok(server)
}

/// The `exports` processor with the configured partners, and its outbox relay.
fn exports_with_relay(
    config: &ServiceConfig,
    store: Arc<dyn Store>,
) -> Result<(Arc<dyn Handler>, exports::Relay), StartError> {
    let partners = match &config.exports_partners {
        Some(path) => exports::Partners::load(path)?,
        None => exports::Partners::default(),
    };
    if partners.is_empty() {
        tracing::warn!("exports: no partner configured (--exports-partners): nothing is exported");
    }
    let partners = Arc::new(partners);
    let mut relay = exports::RelayConfig::new(
        config
            .runtime
            .kafka
            .clone()
            .with_client_id("fleuve-exports-relay"),
        &config.runtime.registry_url,
    );
    relay.partitions = config.export_partitions;
    let relay = exports::Relay::new(relay, Arc::clone(&partners), store)?;
    Ok((Arc::new(exports::Exports::new(partners)), relay))
}

/// Ready when every processor is; otherwise the first reason.
struct AllReady(Vec<Arc<ReadyFlag>>);

impl Readiness for AllReady {
    fn ready(&self) -> Result<(), String> {
        self.0.iter().try_for_each(|f| f.ready())
    }
}

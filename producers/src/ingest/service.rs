//! [`start`]: the ingest service running, as `fleuve ingest` and `fleuve run` start it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fleuve_kafka::{topics, KafkaConfig};
use fleuve_service::serve::{ServeError, Server};
use fleuve_service::ReadyFlag;
use tokio_util::sync::CancellationToken;

use super::{router, IngestConfig};
use crate::{PublishError, Publisher, PublisherConfig};

/// Where the ingest service listens and what it publishes to.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Address of the HTTP API (`fleuve` default `127.0.0.1:8082`).
    pub addr: SocketAddr,
    /// The brokers events are published to.
    pub kafka: KafkaConfig,
    /// The schema registry the events' schemas are registered in.
    pub registry_url: String,
    /// Limits and authentication of the API.
    pub ingest: IngestConfig,
}

/// Why the ingest service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("ingest: could not create the Kafka producer")]
    Producer(#[source] PublishError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// How often `/readyz` checks that the brokers answer.
const BROKER_CHECK: Duration = Duration::from_secs(5);

/// Longest wait, at shutdown, for the events in flight to reach the brokers.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the ingest service: the producer, the HTTP API on `config.addr` (ready once the
/// brokers answer), until `shutdown`; then the events in flight are flushed.
pub async fn start(
    config: ServiceConfig,
    shutdown: &CancellationToken,
) -> Result<Server, StartError> {
    let publisher = Publisher::new(PublisherConfig::new(
        config.kafka.clone(),
        &config.registry_url,
        "http-ingest",
    ))
    .map_err(StartError::Producer)?;
    let readiness = Arc::new(ReadyFlag::not_ready("broker not checked yet"));
    let app = router(publisher.clone(), config.ingest, readiness.clone());
    let mut server = Server::bind("ingest", config.addr, app, shutdown).await?;
    let stop = server.stop_token();
    server.spawn(
        "broker check",
        check_broker(config.kafka, readiness, stop.clone()),
    );
    server.spawn("producer flush", async move {
        stop.cancelled().await;
        publisher.flush(FLUSH_TIMEOUT).await;
        Ok::<(), Infallible>(())
    });
    Ok(server)
}

/// Keeps `flag` ready while the brokers answer a metadata request.
async fn check_broker(
    kafka: KafkaConfig,
    flag: Arc<ReadyFlag>,
    stop: CancellationToken,
) -> Result<(), Infallible> {
    loop {
        let result = topics::existing_topics(&kafka)
            .await
            .map(|_| ())
            .map_err(|e| format!("broker at {} unreachable: {e}", kafka.bootstrap_servers));
        flag.set(result);
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(BROKER_CHECK) => {}
        }
    }
}

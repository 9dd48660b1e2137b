//! Helpers shared by the ingest tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use fleuve_producers::ingest::{self, IngestConfig};
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_service::AlwaysReady;
use fleuve_testkit::Kafka;

/// The ingest service on the test cluster, with this configuration and delivery timeout.
pub fn app_with(kafka: &Kafka, config: IngestConfig, delivery_timeout: Duration) -> Router {
    let publisher = PublisherConfig::new(
        kafka.config().with_delivery_timeout(delivery_timeout),
        &kafka.registry_url,
        "test",
    );
    ingest::router(
        Publisher::new(publisher).unwrap(),
        config,
        Arc::new(AlwaysReady),
    )
}

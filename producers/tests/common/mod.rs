//! Helpers shared by the ingest tests.
#![expect(
    clippy::unwrap_used,
    reason = "test support shared by several test binaries, each using a part; a test stops at the first unexpected error"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use fleuve_producers::ingest::{self, IngestConfig};
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_service::AlwaysReady;
use fleuve_testkit::Kafka;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

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

/// What the service answered: status, JSON body (`Null` when not JSON), `Retry-After`.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<String>,
}

/// Sends one request to the service.
pub async fn call(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        retry_after,
    }
}

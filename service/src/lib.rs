//! What every Fleuve HTTP service shares.
//!
//! * [`init_tracing`]: `tracing` subscriber, filtered by `RUST_LOG` (default `info`, storage-engine internals at `warn`), in
//!   human form on a terminal or JSON lines with `FLEUVE_LOG_FORMAT=json`.
//! * [`ops_routes`]: `GET /metrics` (Prometheus text format, from the default registry),
//!   `GET /healthz` (the process is alive) and `GET /readyz` (the service can do its work,
//!   as told by a [`Readiness`] probe). Merge it into each service's router.
//!
//! * [`ApiError`]: the one JSON error body, `{"error":{"code","message","field"?}}`.
//! * [`auth`]: bearer JWT authentication and scopes (`FLEUVE_JWT_*`), as a layer for the API routes.
//!
//! Metric names follow `fleuve_<component>_<name>_<unit>[_total]`; label values come from
//! small fixed sets (route templates, status classes), never from user input.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, TextEncoder};

pub mod auth;
mod error;
pub use error::ApiError;

/// Installs the global `tracing` subscriber. Safe to call more than once (later calls are
/// no-ops), so tests and the all-in-one runner can share it.
pub fn init_tracing() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let json = std::env::var("FLEUVE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _already_set = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Tells whether a service is ready to serve; `Err` carries the reason shown by `/readyz`.
pub trait Readiness: Send + Sync + 'static {
    fn ready(&self) -> Result<(), String>;
}

/// A service that is ready as soon as it listens.
#[derive(Debug, Clone, Copy)]
pub struct AlwaysReady;

impl Readiness for AlwaysReady {
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Readiness set from the outside (by a background check), with the reason when not ready.
#[derive(Debug, Default)]
pub struct ReadyFlag {
    state: std::sync::RwLock<Option<String>>,
}

impl ReadyFlag {
    /// A flag that starts not ready, with this reason.
    pub fn not_ready(reason: impl Into<String>) -> Self {
        Self {
            state: std::sync::RwLock::new(Some(reason.into())),
        }
    }

    /// Records the latest check: `Ok` for ready, `Err(reason)` otherwise.
    pub fn set(&self, result: Result<(), String>) {
        if let Ok(mut state) = self.state.write() {
            *state = result.err();
        }
    }
}

impl Readiness for ReadyFlag {
    fn ready(&self) -> Result<(), String> {
        match self.state.read() {
            Ok(state) => state.clone().map_or(Ok(()), Err),
            Err(_) => Err("readiness state poisoned".into()),
        }
    }
}

/// `/metrics`, `/healthz` and `/readyz`, to merge into a service's router.
pub fn ops_routes<S>(readiness: Arc<dyn Readiness>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz).with_state(readiness))
}

async fn metrics() -> Response {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&prometheus::gather(), &mut buf) {
        Ok(()) => (
            [(header::CONTENT_TYPE, TextEncoder::new().format_type())],
            buf,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(readiness): State<Arc<dyn Readiness>>) -> Response {
    match readiness.ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    struct NotYet;
    impl Readiness for NotYet {
        fn ready(&self) -> Result<(), String> {
            Err("store not open".into())
        }
    }

    async fn status(router: Router, path: &str) -> StatusCode {
        let req = Request::get(path).body(Body::empty()).unwrap();
        router.oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn ops_routes_answer() {
        let ready: Router = ops_routes(Arc::new(AlwaysReady));
        assert_eq!(status(ready.clone(), "/healthz").await, StatusCode::OK);
        assert_eq!(status(ready.clone(), "/readyz").await, StatusCode::OK);
        assert_eq!(status(ready, "/metrics").await, StatusCode::OK);
        let not_ready: Router = ops_routes(Arc::new(NotYet));
        assert_eq!(
            status(not_ready, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

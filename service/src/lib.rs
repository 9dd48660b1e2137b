//! What every Fleuve HTTP service shares.
//!
//! * [`init_tracing`]: `tracing` subscriber, filtered by `RUST_LOG` (default `info`, storage-engine internals at `warn`), in
//!   human form on a terminal or JSON lines with `FLEUVE_LOG_FORMAT=json`.
//! * [`ops_routes`]: `GET /metrics` (Prometheus text format, from the default registry),
//!   `GET /healthz` (the process is alive: `200`, `ok`) and `GET /readyz` (the service can
//!   do its work, as told by a [`Readiness`] probe: `200`, `ready`; else `503` with the
//!   [`ApiError`] body, code `not_ready` and the reason as message). Merge it into each
//!   service's router.
//!
//! * [`ApiError`]: the one JSON error body, `{"error":{"code","message","field"?}}`.
//! * [`auth`]: bearer JWT authentication and scopes (`FLEUVE_JWT_*`), as a layer for the API routes.
//! * [`http`]: [`http::RequestMetrics`] and the [`http::track_requests`] middleware (requests,
//!   latency, in flight, by route template), and [`http::check_content_type`].
//! * [`retry`]: [`retry::retry`] with [`retry::Backoff`], for transient failures.
//! * [`serve`]: [`serve::Server`], a service's HTTP server and tasks, stopped together.
//! * [`stall`]: [`stall::StallWatch`], which tells a stalled projection (lagging, applying
//!   nothing) from one catching up; processors and the query API fail `/readyz` on it.
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
pub mod http;
pub mod retry;
pub mod serve;
pub mod stall;
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
///
/// `/healthz` answers `200` with the text `ok` while the process runs. `/readyz` answers
/// `200` with the text `ready` when the probe says so, else `503` with the JSON error of
/// every Fleuve API: `{"error":{"code":"not_ready","message":"<the probe's reason>"}}`.
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

/// The `code` of a `/readyz` refusal.
pub const NOT_READY: &str = "not_ready";

async fn readyz(State(readiness): State<Arc<dyn Readiness>>) -> Response {
    match readiness.ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_READY, reason).into_response()
        }
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

    async fn answer(router: Router, path: &str) -> (StatusCode, Option<String>, String) {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let resp = router.oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn ops_routes_answer() {
        let ready: Router = ops_routes(Arc::new(AlwaysReady));
        let (status, _, body) = answer(ready.clone(), "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
        let (status, _, body) = answer(ready.clone(), "/readyz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
        assert_eq!(answer(ready, "/metrics").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn not_ready_is_the_json_error_with_the_reason() {
        let not_ready: Router = ops_routes(Arc::new(NotYet));
        let (status, content_type, body) = answer(not_ready, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "not_ready", "message": "store not open"}})
        );

        // A flag follows the latest check.
        let flag = Arc::new(ReadyFlag::not_ready("starting"));
        let router: Router = ops_routes(flag.clone());
        let (status, _, body) = answer(router.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains(r#""message":"starting""#), "{body}");
        flag.set(Ok(()));
        assert_eq!(answer(router.clone(), "/readyz").await.0, StatusCode::OK);
        flag.set(Err("broker down".into()));
        let (status, _, body) = answer(router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains(r#""message":"broker down""#), "{body}");
    }
}

//! HTTP query API serving read projections to fronts.
//!
//! Build the service with [`router`] over any [`fleuve_projections::Store`] and serve it
//! with axum. All responses are JSON; every error has the one Fleuve error body
//! `{"error":{"code":"…","message":"…","field":"…"}}` ([`fleuve_service::ApiError`]).
//!
//! # Routes
//!
//! | method and path | answer |
//! | --- | --- |
//! | `GET /v1/users/{user_id}/progress/{content_id}` | one progress row |
//! | `GET /v1/users/{user_id}/progress?limit=&cursor=` | a user's rows, by content id, one page |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /healthz` | `200` while the process runs |
//! | `GET /readyz` | `200` when the store answered its last ping (every second), else `503` |
//!
//! A progress row:
//!
//! ```json
//! {"user_id":"u-1","content_id":"film-42","position_ms":61000,"duration_ms":5400000,
//!  "device":"tv","updated_at":"2024-05-01T20:15:03.120Z","event_id":"0190…"}
//! ```
//!
//! `updated_at` is the event time of the write that produced the row, RFC 3339 in UTC with
//! milliseconds. A list is `{"items":[row…],"next_cursor":"…"}`; `next_cursor` is `null` on
//! the last page, otherwise pass it unchanged as `cursor` to get the next page.
//!
//! # Parameters
//!
//! * `user_id`, `content_id` (path, percent-decoded): 1 to 128 bytes of UTF-8, no control
//!   characters.
//! * `limit`: an integer from 1 to [`QueryConfig::max_limit`] (100 by default); absent:
//!   [`QueryConfig::default_limit`] (20).
//! * `cursor`: the `next_cursor` of the previous page; absent or empty: the first page.
//!
//! # Errors
//!
//! | status | `code` | when |
//! | --- | --- | --- |
//! | 400 | `invalid_parameter` | an id or `limit` out of bounds (`field` names it) |
//! | 400 | `invalid_cursor` | a cursor this API did not issue for this list (`field`: `cursor`) |
//! | 400 | `invalid_query` | an unparsable query string |
//! | 404 | `not_found` | no progress for this user and content, or no such route |
//! | 405 | `method_not_allowed` | a route exists but not for this method |
//! | 500 | `internal` | the store failed in a way a retry will not fix (also logged) |
//! | 503 | `unavailable` | the store is temporarily unavailable; retry after `Retry-After` (1 s) |
//!
//! # Metrics
//!
//! * `fleuve_query_requests_total{route,status}`: requests by route template (for example
//!   `/v1/users/{user_id}/progress`, or `unmatched`) and HTTP status code;
//! * `fleuve_query_request_duration_seconds{route}`: latency histogram.

mod handlers;
mod metrics;
mod readiness;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use fleuve_projections::Store;

/// Limits of the list routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConfig {
    /// Page size when the request has no `limit`.
    pub default_limit: usize,
    /// Largest `limit` accepted.
    pub max_limit: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            default_limit: 20,
            max_limit: 100,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<QueryConfig>,
}

/// The query API's routes, ops routes included (`/metrics`, `/healthz`, `/readyz`).
///
/// Call it inside a Tokio runtime: it starts a task that pings the store every second for
/// `/readyz` (the task ends when the router is dropped). Outside a runtime `/readyz` stays
/// `503`.
pub fn router(store: Arc<dyn Store>, config: QueryConfig) -> Router {
    let readiness = readiness::start(store.clone());
    let state = AppState {
        store,
        config: Arc::new(config),
    };
    Router::new()
        .route(
            "/v1/users/{user_id}/progress/{content_id}",
            get(handlers::get_progress),
        )
        .route("/v1/users/{user_id}/progress", get(handlers::list_progress))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
        .merge(fleuve_service::ops_routes(readiness))
}

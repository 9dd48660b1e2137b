//! Load shedding: at most `max_in_flight` `/v1` requests are handled at once; one more is
//! answered at once with 429 `overloaded` and `Retry-After: 1` instead of queueing behind
//! the others (a client retrying later beats a request timing out in our queue).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fleuve_service::ApiError;
use tokio::sync::Semaphore;

/// The in-flight budget shared by the `/v1` routes.
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlight {
    /// A budget of `max` requests (at least one).
    pub(super) fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

/// Middleware: runs the request while holding a permit, or answers 429 when none is left.
pub(super) async fn enforce(
    State(limit): State<InFlight>,
    request: Request,
    next: Next,
) -> Response {
    match limit.permits.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!(
                "the service is already handling {} requests; retry in a second",
                limit.max
            ),
        )
        .with_retry_after(1)
        .into_response(),
    }
}

//! Why a handler answers no data: [`Failure`], the refusals it carries ([`Denied`] from
//! [`crate::access`], [`Behind`] from [`crate::consistency`]) and the mapping of store
//! errors ([`store_error`]).

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fleuve_projections::StoreError;
use fleuve_service::auth::challenge;
use fleuve_service::ApiError;

/// The response header saying a read did not reach its positions in time (`behind`).
pub const CONSISTENCY_HEADER: &str = "x-fleuve-consistency";

/// Why a handler answers no data: an input or store error, or a refusal to the caller.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad input, nothing found, or a store failure.
    Api(ApiError),
    /// Not authenticated or not allowed (answered with its `WWW-Authenticate` challenge).
    Denied(Denied),
    /// The projection did not pass the request's positions in time (answered with
    /// `X-Fleuve-Consistency: behind`).
    Behind(Behind),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<Denied> for Failure {
    fn from(d: Denied) -> Self {
        Failure::Denied(d)
    }
}

impl From<Behind> for Failure {
    fn from(b: Behind) -> Self {
        Failure::Behind(b)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Denied(d) => d.into_response(),
            Failure::Behind(b) => b.into_response(),
        }
    }
}

/// A refusal: 401 (`unauthorized`) or 403 (`forbidden`), answered with the
/// `WWW-Authenticate` challenge naming the scopes that would be accepted.
#[derive(Debug)]
pub(crate) struct Denied {
    pub(crate) error: ApiError,
    /// The scopes that can read the resource, space-separated.
    pub(crate) scopes: &'static str,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        challenge(self.error, self.scopes)
    }
}

/// The refusal of a read whose projection did not pass its positions in time: the error,
/// answered with `X-Fleuve-Consistency: behind`.
#[derive(Debug)]
pub(crate) struct Behind(pub(crate) ApiError);

impl IntoResponse for Behind {
    fn into_response(self) -> Response {
        let mut resp = self.0.into_response();
        resp.headers_mut().insert(
            HeaderName::from_static(CONSISTENCY_HEADER),
            HeaderValue::from_static("behind"),
        );
        resp
    }
}

/// Maps a store error to the API's error, logging the ones that are our fault.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::InvalidCursor(reason) => {
            ApiError::bad_request("invalid_cursor", reason).with_field("cursor")
        }
        StoreError::Unavailable(reason) => {
            tracing::warn!(%reason, "projection store unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the projection store is temporarily unavailable; retry shortly",
            )
            .with_retry_after(1)
        }
        other => {
            tracing::error!(error = %other, "projection store failure");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the projection store failed: {other}"),
            )
        }
    }
}

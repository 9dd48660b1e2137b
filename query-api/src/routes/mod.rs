//! Route handlers, input validation and the JSON shapes.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::Json;
use fleuve_projections::progress::{self, Progress};
use fleuve_projections::{Page, PageRequest, StoreError};
use fleuve_service::ApiError;
use serde::{Deserialize, Serialize};

use crate::AppState;

/// Longest accepted id, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 128;

/// A progress row as fronts see it.
#[derive(Debug, Serialize)]
pub(crate) struct ProgressView {
    user_id: String,
    content_id: String,
    position_ms: i64,
    duration_ms: i64,
    device: String,
    updated_at: String,
    event_id: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ProgressList {
    items: Vec<ProgressView>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds.
fn rfc3339_millis(ms: i64) -> Result<String, ApiError> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| {
            tracing::error!(
                occurred_at_ms = ms,
                "stored row has an unrepresentable time"
            );
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("stored row has an out-of-range event time ({ms} ms)"),
            )
        })?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

impl TryFrom<Progress> for ProgressView {
    type Error = ApiError;
    fn try_from(p: Progress) -> Result<Self, ApiError> {
        Ok(Self {
            updated_at: rfc3339_millis(p.version.occurred_at_ms)?,
            user_id: p.user_id,
            content_id: p.content_id,
            position_ms: p.position_ms,
            duration_ms: p.duration_ms,
            device: p.device,
            event_id: p.event_id,
        })
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_field(field)
}

fn validate_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_ID_BYTES {
        return Err(invalid(
            field,
            format!(
                "{field} must be 1 to {MAX_ID_BYTES} bytes long, got {} bytes",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let range = format!("an integer from 1 to {max}");
    match raw.parse::<usize>() {
        Ok(0) => Err(invalid(
            "limit",
            format!("limit must be at least 1 ({range}), got 0"),
        )),
        Ok(n) if n > max => Err(invalid(
            "limit",
            format!("limit must be at most {max} ({range}), got {n}; page with `cursor` for more"),
        )),
        Ok(n) => Ok(n),
        Err(_) if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) => Err(invalid(
            "limit",
            format!("limit must be at most {max} ({range}), got {raw}"),
        )),
        Err(_) => Err(invalid(
            "limit",
            format!("limit must be {range}, got `{}`", raw.escape_debug()),
        )),
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_parameter",
        format!("invalid path parameter: {}", rejection.body_text()),
    )
}

/// Maps a store error to the API's error, logging the ones that are our fault.
fn store_error(e: StoreError) -> ApiError {
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

pub(crate) async fn get_progress(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ProgressView>, ApiError> {
    let Path((user_id, content_id)) = path.map_err(path_error)?;
    validate_id("user_id", &user_id)?;
    validate_id("content_id", &content_id)?;
    match progress::get(&*state.store, &user_id, &content_id)
        .await
        .map_err(store_error)?
    {
        Some(p) => Ok(Json(p.try_into()?)),
        None => Err(ApiError::not_found(
            "not_found",
            format!(
                "no progress for user `{}` on content `{}`",
                user_id.escape_debug(),
                content_id.escape_debug()
            ),
        )),
    }
}

pub(crate) async fn list_progress(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ProgressList>, ApiError> {
    let Path(user_id) = path.map_err(path_error)?;
    validate_id("user_id", &user_id)?;
    let Query(params) = query.map_err(|r| {
        ApiError::bad_request(
            "invalid_query",
            format!("invalid query string: {}", r.body_text()),
        )
    })?;
    let limit = parse_limit(
        params.limit.as_deref(),
        state.config.default_limit,
        state.config.max_limit,
    )?;
    let cursor = params.cursor.filter(|c| !c.is_empty());
    let Page { items, next_cursor } =
        progress::list(&*state.store, &user_id, &PageRequest { limit, cursor })
            .await
            .map_err(store_error)?;
    Ok(Json(ProgressList {
        items: items
            .into_iter()
            .map(ProgressView::try_from)
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!(
            "no route for {method} {}; see the query API docs for the routes",
            uri.path()
        ),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}; use GET", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_with_millis() {
        assert_eq!(rfc3339_millis(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_714_594_503_120).unwrap(),
            "2024-05-01T20:15:03.120Z"
        );
        assert!(rfc3339_millis(i64::MAX).is_err());
        assert!(rfc3339_millis(-1)
            .unwrap()
            .starts_with("1969-12-31T23:59:59.999Z"));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None, 20, 100).unwrap(), 20);
        assert_eq!(parse_limit(Some("100"), 20, 100).unwrap(), 100);
        for bad in [
            "0",
            "101",
            "abc",
            "",
            "-1",
            "1.5",
            "99999999999999999999999",
        ] {
            let e = parse_limit(Some(bad), 20, 100).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("limit"), "{bad}");
        }
    }
}

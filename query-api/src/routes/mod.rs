//! The `/v1` read routes, one module per read model, and what they share: id validation,
//! query parameters and `limit`, store-error mapping, time and money formatting.
//!
//! Every handler checks, in this order: the bearer token when one is sent (401
//! `invalid_token`), the path parameters (400), who may read what ([`crate::access`]: 401
//! `unauthorized`, 403 `forbidden`), the query parameters (400), the `X-Fleuve-Position`
//! tokens (400 `invalid_position`; then the read-your-writes wait, 503
//! `position_not_reached`, [`crate::consistency`]), then reads the store. A caller that may
//! not read a route is thus refused before any wait.

mod bookmarks;
mod catalog;
mod inventory;
mod orders;
mod progress;

use std::collections::BTreeMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::Query;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use fleuve_projections::{Page, PageRequest, StoreError};
use fleuve_service::ApiError;
use schemars::JsonSchema;
use serde::Serialize;

use crate::access::Denied;
use crate::consistency::Behind;
use crate::{AppState, QueryConfig};

/// The answers of the `/v1` routes, for the OpenAPI document ([`crate::openapi`]).
pub(crate) mod views {
    pub(crate) use super::bookmarks::BookmarkView;
    pub(crate) use super::catalog::{BatchView, ContentView, EpisodeView};
    pub(crate) use super::inventory::StockView;
    pub(crate) use super::orders::{OrderSummaryView, OrderView};
    pub(crate) use super::progress::ProgressView;
    pub(crate) use super::ListView;
}

/// The `/v1` routes.
pub(crate) fn api() -> Router<AppState> {
    Router::new()
        .merge(progress::routes())
        .merge(bookmarks::routes())
        .merge(catalog::routes())
        .merge(orders::routes())
        .merge(inventory::routes())
}

/// Longest accepted id, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 128;

/// Longest piece of user input quoted back in an error message, in characters.
const MAX_QUOTED_CHARS: usize = 64;

/// Query parameters of the list routes.
pub(crate) const LIST_PARAMS: &[&str] = &["limit", "cursor"];

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

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Denied(d) => d.into_response(),
            Failure::Behind(b) => b.into_response(),
        }
    }
}

/// A page of a list as fronts see it: `{"items":[…],"next_cursor":…}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub(crate) struct ListView<T> {
    /// At most `limit` items (a programme's listing may hold fewer, even none, before its
    /// end: follow `next_cursor` until it is `null`).
    pub items: Vec<T>,
    /// Pass it unchanged as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListView<T> {
    /// Converts each item of a store page.
    pub fn try_from_page<R>(
        page: Page<R>,
        convert: impl FnMut(R) -> Result<T, ApiError>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            items: page
                .items
                .into_iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }
}

/// An amount of money: integer minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Money {
    /// The amount in minor units of the currency (cents of EUR: 4749 is 47.49 EUR).
    pub amount_minor: i64,
    /// ISO 4217 code, such as `EUR`.
    pub currency: String,
}

/// `s` as it may be quoted in an error message: control characters escaped, at most
/// [`MAX_QUOTED_CHARS`] characters.
pub(crate) fn quoted(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_QUOTED_CHARS).collect();
    if s.chars().nth(MAX_QUOTED_CHARS).is_some() {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// The instant catalog availability is evaluated at, in milliseconds since the Unix epoch:
/// now, or the instant of the snapshot the request reads ([`crate::snapshot`]).
pub(crate) fn now_ms() -> i64 {
    if let Some(as_of) = crate::snapshot::as_of_ms() {
        return as_of;
    }
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// First instant RFC 3339 can write: 0000-01-01T00:00:00.000Z.
const RFC3339_MIN_MS: i64 = -62_167_219_200_000;
/// Last instant RFC 3339 can write: 9999-12-31T23:59:59.999Z.
const RFC3339_MAX_MS: i64 = 253_402_300_799_999;

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds. An instant outside years
/// 0000 to 9999 is a stored row we cannot show: a 500, logged.
pub(crate) fn rfc3339_millis(ms: i64) -> Result<String, ApiError> {
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

/// [`rfc3339_millis`] for an availability-window edge, which a producer may set anywhere
/// (such as `i64::MAX` for "forever"): an instant outside years 0000 to 9999 is shown as
/// the nearest one RFC 3339 can write.
pub(crate) fn rfc3339_millis_clamped(ms: i64) -> Result<String, ApiError> {
    rfc3339_millis(ms.clamp(RFC3339_MIN_MS, RFC3339_MAX_MS))
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_field(field)
}

/// Checks an id (path parameter or batch item) and names `field` when it is refused:
/// 1 to [`MAX_ID_BYTES`] bytes, no control characters, not `.` or `..` (which proxies and
/// clients may resolve as path steps).
pub(crate) fn check_id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_ID_BYTES {
        return Err(format!(
            "{field} must be 1 to {MAX_ID_BYTES} bytes long, got {} bytes",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    if value == "." || value == ".." {
        return Err(format!(
            "{field} must not be `{value}`: a path step, which proxies may resolve"
        ));
    }
    Ok(())
}

/// [`check_id`] for a path parameter: 400 `invalid_parameter` naming it.
pub(crate) fn validate_id(field: &str, value: &str) -> Result<(), ApiError> {
    check_id(field, value).map_err(|message| invalid(field, message))
}

pub(crate) fn parse_limit(
    raw: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
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
            format!("limit must be at most {max} ({range}), got {}", quoted(raw)),
        )),
        Err(_) => Err(invalid(
            "limit",
            format!("limit must be {range}, got `{}`", quoted(raw)),
        )),
    }
}

/// A path that does not decode (invalid UTF-8 after percent-decoding): 400, naming the
/// parameter in the message.
pub(crate) fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_parameter",
        format!(
            "invalid path parameter: {}; ids are percent-encoded UTF-8",
            rejection.body_text()
        ),
    )
}

/// The query parameters of a request, checked against those the route `accepts`: an
/// unknown parameter or one given twice is a 400 naming it (a misspelt `limt` is refused
/// rather than silently ignored).
pub(crate) fn query_params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    accepts: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let Query(pairs) = query.map_err(|r| {
        ApiError::bad_request(
            "invalid_query",
            format!("invalid query string: {}", r.body_text()),
        )
    })?;
    let mut params = BTreeMap::new();
    for (name, value) in pairs {
        if !accepts.contains(&name.as_str()) {
            // `snapshot` is taken out of the query string before the route sees it.
            let accepted = if accepts.is_empty() {
                "this route takes no query parameters (besides `snapshot`)".to_owned()
            } else {
                format!(
                    "this route accepts {} (and `snapshot`)",
                    accepts
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(invalid(
                &quoted(&name),
                format!("unknown query parameter `{}`; {accepted}", quoted(&name)),
            ));
        }
        if params.contains_key(&name) {
            return Err(invalid(
                &name,
                format!("query parameter `{name}` is given more than once; give it once"),
            ));
        }
        params.insert(name, value);
    }
    Ok(params)
}

/// The page a list request asks for: its `limit` and `cursor` (an empty cursor is the
/// first page), after [`query_params`] with [`LIST_PARAMS`].
pub(crate) fn page_request(
    mut params: BTreeMap<String, String>,
    config: &QueryConfig,
) -> Result<PageRequest, ApiError> {
    let limit = parse_limit(
        params.get("limit").map(String::as_str),
        config.default_limit,
        config.max_limit,
    )?;
    let cursor = params.remove("cursor").filter(|c| !c.is_empty());
    Ok(PageRequest { limit, cursor })
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

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!(
            "no route for {method} {}; see the query API docs for the routes",
            quoted(uri.path())
        ),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let allowed = if uri.path() == catalog::BATCH_GET_PATH {
        "POST"
    } else {
        "GET"
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; use {allowed}",
            quoted(uri.path())
        ),
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
        assert_eq!(
            rfc3339_millis(RFC3339_MAX_MS).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339_millis(RFC3339_MIN_MS).unwrap(),
            "0000-01-01T00:00:00.000Z"
        );
        assert!(rfc3339_millis(RFC3339_MAX_MS + 1).is_err());
        assert!(rfc3339_millis(RFC3339_MIN_MS - 1).is_err());
    }

    #[test]
    fn window_edges_are_clamped_to_what_rfc3339_writes() {
        assert_eq!(
            rfc3339_millis_clamped(i64::MAX).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339_millis_clamped(i64::MIN).unwrap(),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis_clamped(1_714_594_503_120).unwrap(),
            "2024-05-01T20:15:03.120Z"
        );
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

    #[test]
    fn ids() {
        for ok in ["a", "ü/1", "a b", "...", &"x".repeat(MAX_ID_BYTES)] {
            check_id("id", ok).unwrap();
        }
        for (bad, needle) in [
            ("", "1 to 128 bytes"),
            (&*"x".repeat(MAX_ID_BYTES + 1), "got 129 bytes"),
            ("a\u{0}b", "control"),
            ("a\nb", "control"),
            (".", "path step"),
            ("..", "path step"),
        ] {
            let e = check_id("id", bad).unwrap_err();
            assert!(e.starts_with("id ") && e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn quoting_bounds_and_escapes_user_input() {
        assert_eq!(quoted("a\nb"), "a\\nb");
        let long = quoted(&"y".repeat(1000));
        assert!(long.chars().count() == MAX_QUOTED_CHARS + 1 && long.ends_with('…'));
    }

    #[test]
    fn query_parameters_are_checked_against_the_route() {
        let q = |pairs: &[(&str, &str)]| {
            Ok(Query(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ))
        };
        let params = query_params(q(&[("limit", "5"), ("cursor", "c")]), LIST_PARAMS).unwrap();
        assert_eq!(params["limit"], "5");
        let e = query_params(q(&[("limt", "5")]), LIST_PARAMS).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limt"));
        assert!(e.message.contains("`limit`, `cursor`"), "{}", e.message);
        let e = query_params(q(&[("limit", "5"), ("limit", "6")]), LIST_PARAMS).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = query_params(q(&[("x", "")]), &[]).unwrap_err();
        assert!(e.message.contains("no query parameters"), "{}", e.message);
    }
}

//! HTTP manners of every `/v1` answer: request timeout, one error shape, `Cache-Control`,
//! `Vary`, `ETag` and `If-None-Match` → `304`.
//!
//! The middleware is also where a request learns its route: it looks the matched path up in
//! the route table and puts the route's declaration in the request's extensions, for the
//! layers and handlers inside (snapshots, read-your-writes, access rules).
//!
//! * **Timeout**: a request that takes longer than [`crate::QueryConfig::request_timeout`]
//!   (the read-your-writes wait included) is answered `503` with code `timeout` and
//!   `Retry-After: 1`.
//! * **One error shape**: an error answer that is not already the Fleuve JSON error (an
//!   extractor's plain-text rejection, a body over the limit) is rewritten into
//!   `{"error":{"code","message"}}` with the same status, the text as message. The code
//!   follows the status: `not_found` (404), `method_not_allowed` (405),
//!   `payload_too_large` (413), `unsupported_media_type` (415), `invalid_body` (422),
//!   `internal` (5xx), and `bad_request` for 400 and any other 4xx (documented with the
//!   other codes in the crate docs, "Errors").
//! * **`Cache-Control`** (unless the route or [`crate::snapshot`] set one): a `200` gets
//!   its route's declared policy: `public, max-age=N` when the request has no
//!   `Authorization` header and `private, max-age=N` when it has one (for routes whose
//!   answers differ per token); `private, no-cache` (a client keeps it but revalidates
//!   each time, cheap with the `ETag`); or `no-store` (`POST`). Errors, and `POST` answers
//!   of routes outside the table, are `no-store`; other routes outside the table `private,
//!   no-cache`. A `200` read from a snapshot is `private, max-age=3600`.
//! * **`Vary: Authorization`** (`vary_authorization`, which the router layers on each
//!   route whose access rule makes answers depend on the token): caches must key on it.
//! * **`ETag`**: a weak validator (`W/"<32 hex digits>"`, the XXH3-128 of the JSON body
//!   before compression), on every `200` answer to a `GET` or `HEAD`. A request whose
//!   `If-None-Match` lists it (or `*`) gets `304 Not Modified` with no body (keeping the
//!   answer's `Cache-Control`, `Vary`, `X-Fleuve-Snapshot` and `X-Fleuve-As-Of`). The tag
//!   depends only on the body, so every replica gives the same tag for the same data.
//!
//! Compression (`gzip`, when the client accepts it) is `tower-http`'s layer, outside this
//! one, so the tag is the same for compressed and plain answers (hence weak).

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fleuve_service::ApiError;

use crate::snapshot::{AS_OF_HEADER, SNAPSHOT_HEADER};
use crate::table::{Cache, Declared, Table};

/// Largest answer body buffered to compute its tag; larger ones go out without `ETag`.
const MAX_TAGGED_BODY: usize = 8 << 20;

/// What [`manners`] needs: the request timeout and the route table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Manners {
    pub timeout: Duration,
    pub table: Table,
}

/// Middleware: the request's route, timeout, error shape, `Cache-Control`,
/// `ETag`/`If-None-Match`.
pub(crate) async fn manners(
    State(manners): State<Manners>,
    mut req: Request,
    next: Next,
) -> Response {
    manners.table.declare(&mut req);
    let method = req.method().clone();
    let policy = req.extensions().get::<Declared>().map(|d| d.route.cache);
    let authorized = req.headers().contains_key(header::AUTHORIZATION);
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let timeout = manners.timeout;
    let resp = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis(), "query request timed out");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than {} ms; retry shortly",
                    timeout.as_millis()
                ),
            )
            .with_retry_after(1)
            .into_response();
        }
    };
    let mut resp = if resp.status().is_client_error() || resp.status().is_server_error() {
        json_error(resp).await
    } else {
        resp
    };
    let status = resp.status();
    if !resp.headers().contains_key(header::CACHE_CONTROL) {
        let policy = match policy {
            _ if status != StatusCode::OK => Cache::NoStore,
            Some(policy) => policy,
            None if method == Method::POST => Cache::NoStore,
            None => Cache::Revalidate,
        };
        if let Some(v) = cache_control(policy, authorized) {
            resp.headers_mut().insert(header::CACHE_CONTROL, v);
        }
    }
    if status == StatusCode::OK && (method == Method::GET || method == Method::HEAD) {
        resp = tag(resp, if_none_match.as_ref()).await;
    }
    resp
}

/// The `Cache-Control` of a policy, for a request with or without `Authorization`.
fn cache_control(policy: Cache, authorized: bool) -> Option<HeaderValue> {
    match policy {
        Cache::NoStore => Some(HeaderValue::from_static("no-store")),
        Cache::Revalidate => Some(HeaderValue::from_static("private, no-cache")),
        Cache::PerCaller { max_age_secs } => {
            let scope = if authorized { "private" } else { "public" };
            HeaderValue::from_str(&format!("{scope}, max-age={max_age_secs}")).ok()
        }
    }
}

/// Adds `Vary: Authorization`: the answer differs per token, caches must key on it.
pub(crate) async fn vary_authorization(mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Authorization"));
    response
}

/// Adds the `ETag`; answers `304` when `If-None-Match` already has it.
async fn tag(resp: Response, if_none_match: Option<&HeaderValue>) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = match to_bytes(body, MAX_TAGGED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "could not buffer an answer to tag it");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the answer could not be produced; retry",
            )
            .into_response();
        }
    };
    let etag = format!("W/\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(bytes.as_ref()));
    let Ok(value) = HeaderValue::from_str(&etag) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if if_none_match.is_some_and(|inm| matches(inm, &etag)) {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        let headers = not_modified.headers_mut();
        headers.insert(header::ETAG, value);
        copy(
            &parts.headers,
            headers,
            &[
                header::CACHE_CONTROL,
                header::VARY,
                header::HeaderName::from_static(SNAPSHOT_HEADER),
                header::HeaderName::from_static(AS_OF_HEADER),
            ],
        );
        return not_modified;
    }
    parts.headers.insert(header::ETAG, value);
    Response::from_parts(parts, Body::from(bytes))
}

fn copy(from: &HeaderMap, to: &mut HeaderMap, names: &[header::HeaderName]) {
    for name in names {
        for v in from.get_all(name) {
            to.append(name.clone(), v.clone());
        }
    }
}

/// Whether an `If-None-Match` value lists `etag` (weak comparison, RFC 9110 §13.1.2).
fn matches(if_none_match: &HeaderValue, etag: &str) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    let opaque = |t: &str| -> String { t.trim().trim_start_matches("W/").to_owned() };
    let ours = opaque(etag);
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || opaque(t) == ours)
}

/// Rewrites an error answer that is not the Fleuve JSON error into it.
async fn json_error(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let text = to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text
    };
    let mut fixed = ApiError::new(status, code, message).into_response();
    copy(
        &parts.headers,
        fixed.headers_mut(),
        &[
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            header::ALLOW,
            header::VARY,
        ],
    );
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_is_a_weak_comparison_over_a_list() {
        let etag = "W/\"00ff\"";
        for (inm, hit) in [
            ("W/\"00ff\"", true),
            ("\"00ff\"", true),
            ("\"aa\", W/\"00ff\"", true),
            ("*", true),
            ("\"aa\"", false),
            ("", false),
        ] {
            assert_eq!(
                matches(&HeaderValue::from_str(inm).unwrap(), etag),
                hit,
                "{inm}"
            );
        }
    }

    #[tokio::test]
    async fn plain_text_errors_become_the_json_error_shape() {
        let resp = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let fixed = json_error(resp).await;
        assert_eq!(fixed.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = to_bytes(fixed.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "payload_too_large");
        assert_eq!(v["error"]["message"], "length limit exceeded");
    }

    #[tokio::test]
    async fn statuses_without_a_code_of_their_own_are_bad_request_or_internal() {
        for (status, text, code, message) in [
            (
                StatusCode::BAD_REQUEST,
                "bad header",
                "bad_request",
                "bad header",
            ),
            (
                StatusCode::REQUEST_TIMEOUT,
                "",
                "bad_request",
                "Request Timeout",
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, "no", "invalid_body", "no"),
            (StatusCode::BAD_GATEWAY, "upstream", "internal", "upstream"),
        ] {
            let fixed = json_error((status, text).into_response()).await;
            assert_eq!(fixed.status(), status);
            assert_eq!(
                fixed.headers().get(header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
            let body = to_bytes(fixed.into_body(), 1 << 16).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"error": {"code": code, "message": message}}),
                "{status}"
            );
        }
        // An answer already in the JSON shape is kept as it is.
        let own = ApiError::bad_request("invalid_query", "x").into_response();
        let kept = json_error(own).await;
        let body = to_bytes(kept.into_body(), 1 << 16).await.unwrap();
        assert!(body.starts_with(br#"{"error":{"code":"invalid_query""#));
    }
}

//! Snapshots: `?snapshot=<name>` reads a projection as it was at a past instant.
//!
//! A snapshot is a build of one projection from the start of the log up to an instant, then
//! frozen and kept under a name (`fleuve rebuild <projection> --as-of TIME [--name NAME]`
//! makes one, `fleuve rebuild list <projection>` lists them; see
//! [`fleuve_projections::versions`]). Any `/v1` read takes `snapshot=<name>` among its query
//! parameters and is then answered from the snapshot of the read model its route reads (as
//! the route table declares it, the same as for [`crate::consistency`]), with the same
//! shapes, pages and cursors as a live read. The answer carries `X-Fleuve-Snapshot: <name>`
//! and, when the snapshot has one, `X-Fleuve-As-Of: <instant>` (RFC 3339 UTC with
//! milliseconds); a `200` to a `GET` is `Cache-Control: private, max-age=3600`, since a
//! snapshot never changes. Catalog availability is evaluated at the snapshot's instant
//! rather than the request's.
//!
//! The middleware runs before the routes (and so before their read-your-writes wait): it
//! takes the `snapshot` pair out of the query string (the other pairs are kept as sent, in
//! order), so the routes' strict parameter check never sees it, looks the snapshot up and
//! puts its store and instant in the request's extensions, where the handlers read them
//! instead of the live projections. That store is the snapshot's version of the route's
//! one read model (a table of any other model would be read in the base store, not in its
//! reader version: a route reads only the tables of the models it declares). Snapshots
//! exist only when the router is built over [`Source::Versions`](crate::Source::Versions);
//! the `fleuve` binary builds it so.
//!
//! Refusals, in this order (a token, when sent, is verified first: 401 `invalid_token`):
//!
//! | status | `code` | when |
//! | --- | --- | --- |
//! | 400 | `invalid_parameter` (`field`: `snapshot`) | `snapshot` given twice; a route that reads no projection; a name that is not 1 to 40 characters among `a-z`, `0-9`, `-`, `_`, `.` |
//! | 400 | `snapshot_with_position` | an `X-Fleuve-Position` token too: a snapshot never moves, there is nothing to wait for |
//! | 404 | `unknown_snapshot` | the route's projection has no built snapshot of that name (the message lists those it has), or this API serves no snapshots |

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fleuve_projections::versions::{self, VersionError};
use fleuve_service::ApiError;

use crate::access::Caller;
use crate::consistency::POSITION_HEADER;
use crate::failure::store_error;
use crate::input::quoted;
use crate::state::{AppState, Reading};
use crate::table::Declared;
use crate::views::rfc3339_millis_clamped;

/// The query parameter naming the snapshot to read.
pub const SNAPSHOT_PARAM: &str = "snapshot";
/// The response header naming the snapshot an answer was read from.
pub const SNAPSHOT_HEADER: &str = "x-fleuve-snapshot";
/// The response header giving the snapshot's instant (RFC 3339 UTC with milliseconds).
pub const AS_OF_HEADER: &str = "x-fleuve-as-of";
/// `max-age` of a `200` read from a snapshot, in seconds: a snapshot never changes.
pub const SNAPSHOT_MAX_AGE_SECS: u32 = 3600;

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_field(SNAPSHOT_PARAM)
}

fn unknown(message: String) -> ApiError {
    ApiError::not_found("unknown_snapshot", message)
}

/// The refusal of `snapshot` on a route whose data has no versions.
fn no_snapshots(route: &str) -> Response {
    invalid(format!(
        "{} reads no projection with versions, so it has no snapshots; remove \
         `{SNAPSHOT_PARAM}`",
        quoted(route)
    ))
    .into_response()
}

/// The `snapshot` values of a query string (decoded as the routes' query extractor decodes
/// `application/x-www-form-urlencoded`) and the query string without them (`None` when
/// nothing is left); `None` when it names no snapshot.
fn split_query(query: &str) -> Option<(Vec<String>, Option<String>)> {
    let mut names = Vec::new();
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match form_urlencoded::parse(pair.as_bytes()).next() {
            Some((name, value)) if name == SNAPSHOT_PARAM => names.push(value.into_owned()),
            _ => kept.push(pair),
        }
    }
    if names.is_empty() {
        return None;
    }
    let rest = kept.join("&");
    Some((names, (!rest.is_empty()).then_some(rest)))
}

/// `uri` with `query` as its query string.
fn with_query(uri: &Uri, query: Option<&str>) -> Result<Uri, ApiError> {
    let path_and_query = match query {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).map_err(|e| {
        ApiError::bad_request("invalid_query", format!("invalid query string: {e}"))
    })?);
    Uri::from_parts(parts)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query string: {e}")))
}

/// Whether the request carries at least one `X-Fleuve-Position` token (an empty header
/// holds none).
fn has_position(headers: &HeaderMap) -> bool {
    headers
        .get_all(HeaderName::from_static(POSITION_HEADER))
        .iter()
        .any(|v| {
            v.as_bytes()
                .iter()
                .any(|b| !b.is_ascii_whitespace() && *b != b',')
        })
}

/// Middleware: serves a request naming a `snapshot` from that snapshot (see the module
/// docs); any other request goes through untouched.
pub(crate) async fn read_snapshot(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some((names, rest)) = req.uri().query().and_then(split_query) else {
        return next.run(req).await;
    };
    // A token, when sent, is verified first, as on every route.
    let (mut parts, body) = req.into_parts();
    if let Err(refused) = Caller::from_request_parts(&mut parts, &state).await {
        return refused;
    }
    let mut req = Request::from_parts(parts, body);
    let name = match names.as_slice() {
        [name] => name.clone(),
        _ => {
            return invalid(format!(
                "query parameter `{SNAPSHOT_PARAM}` is given more than once; give it once"
            ))
            .into_response()
        }
    };
    let Some(model) = req
        .extensions()
        .get::<Declared>()
        .and_then(|d| d.route.snapshot_model())
    else {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| req.uri().path(), MatchedPath::as_str);
        return no_snapshots(route);
    };
    let projection = model.name;
    if let Err(e) = versions::check_snapshot_name(&name) {
        return invalid(e.to_string()).into_response();
    }
    if has_position(req.headers()) {
        return ApiError::bad_request(
            "snapshot_with_position",
            "a snapshot never moves: X-Fleuve-Position cannot be combined with snapshot",
        )
        .into_response();
    }
    let Some(versions) = state.versions.as_ref() else {
        return unknown(format!(
            "this query API has no snapshots: `{name}` cannot be read (it serves the live \
             projections only)"
        ))
        .into_response();
    };
    let (info, store) = match versions.snapshot(projection, &name).await {
        Ok(found) => found,
        Err(e @ VersionError::UnknownSnapshot { .. }) => {
            return unknown(e.to_string()).into_response()
        }
        Err(VersionError::UnknownProjection { .. }) => {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| req.uri().path(), MatchedPath::as_str);
            return no_snapshots(route);
        }
        Err(VersionError::Store(e)) => return store_error(e).into_response(),
        Err(e) => {
            tracing::error!(error = %e, projection, snapshot = %name, "snapshot lookup failed");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the snapshot `{name}` could not be looked up: {e}"),
            )
            .into_response();
        }
    };
    match with_query(req.uri(), rest.as_deref()) {
        Ok(uri) => *req.uri_mut() = uri,
        Err(e) => return e.into_response(),
    }
    let cacheable = matches!(*req.method(), Method::GET | Method::HEAD);
    req.extensions_mut().insert(Reading {
        store,
        as_of_ms: info.as_of_ms,
    });
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&name) {
        headers.insert(HeaderName::from_static(SNAPSHOT_HEADER), v);
    }
    if let Some(v) = info
        .as_of_ms
        .and_then(|t| rfc3339_millis_clamped(t).ok())
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        headers.insert(HeaderName::from_static(AS_OF_HEADER), v);
    }
    if cacheable && resp.status() == StatusCode::OK {
        if let Ok(v) = HeaderValue::from_str(&format!("private, max-age={SNAPSHOT_MAX_AGE_SECS}")) {
            resp.headers_mut().insert(header::CACHE_CONTROL, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_pair_is_taken_out_and_the_others_kept_as_sent() {
        assert_eq!(split_query("limit=1&cursor=a%2Bb"), None);
        assert_eq!(split_query(""), None);
        assert_eq!(
            split_query("limit=1&snapshot=nov1&cursor=a%2Bb+c"),
            Some((vec!["nov1".into()], Some("limit=1&cursor=a%2Bb+c".into())))
        );
        assert_eq!(
            split_query("snapshot=nov1"),
            Some((vec!["nov1".into()], None))
        );
        // The name is decoded as the routes decode theirs.
        assert_eq!(
            split_query("snap%73hot=n%6Fv1&&x"),
            Some((vec!["nov1".into()], Some("&x".into())))
        );
        assert_eq!(
            split_query("snapshot&snapshot=a+b"),
            Some((vec![String::new(), "a b".into()], None))
        );
        assert_eq!(split_query("snapshots=1&xsnapshot=2"), None);
    }

    #[test]
    fn form_decoding() {
        let decoded = |value: &str| {
            let (names, _) = split_query(&format!("snapshot={value}")).unwrap();
            names.into_iter().next().unwrap()
        };
        assert_eq!(decoded("a+b%20c"), "a b c");
        assert_eq!(decoded("%"), "%");
        assert_eq!(decoded("%4"), "%4");
        assert_eq!(decoded("%zz1"), "%zz1");
        assert_eq!(decoded("%C3%A9t%C3%A9"), "été");
        assert_eq!(decoded("%FF"), "\u{fffd}");
    }

    #[test]
    fn empty_position_headers_hold_no_token() {
        let mut headers = HeaderMap::new();
        assert!(!has_position(&headers));
        headers.append(POSITION_HEADER, HeaderValue::from_static(" , "));
        assert!(!has_position(&headers));
        headers.append(POSITION_HEADER, HeaderValue::from_static("abc"));
        assert!(has_position(&headers));
    }

    #[test]
    fn queries_are_replaced_keeping_the_path() {
        let uri: Uri = "/v1/users/a%2Fb/progress?snapshot=x&limit=1"
            .parse()
            .unwrap();
        assert_eq!(
            with_query(&uri, Some("limit=1")).unwrap().to_string(),
            "/v1/users/a%2Fb/progress?limit=1"
        );
        assert_eq!(
            with_query(&uri, None).unwrap().to_string(),
            "/v1/users/a%2Fb/progress"
        );
    }
}

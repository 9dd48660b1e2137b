//! What the `/v1` routes take from a request: ids, query parameters and `limit`, checked
//! with messages that name the input; and [`quoted`], how any user input is quoted back.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use fleuve_projections::PageRequest;
use fleuve_service::ApiError;

use crate::config::QueryConfig;
use crate::table::Declared;

/// Longest accepted id, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 128;

pub(crate) use fleuve_schemas::text::quoted;

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

/// The query parameters of a request, checked against those its route takes
/// ([`Shape::query`](crate::table::Shape::query)). Extracting it never fails: a handler
/// calls [`Params::check`] once the caller may read the route, so that a caller learns
/// first whether it may.
#[derive(Debug)]
pub(crate) struct Params(Result<BTreeMap<String, String>, ApiError>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let accepts = Declared::of(parts).map_or(&[][..], |d| d.route.shape.query());
        let query = Query::from_request_parts(parts, state).await;
        Ok(Self(query_params(query, accepts)))
    }
}

impl Params {
    /// The parameters, or the 400 of the first one refused.
    pub(crate) fn check(self) -> Result<BTreeMap<String, String>, ApiError> {
        self.0
    }
}

/// The page a list request asks for: its `limit` and `cursor` (an empty cursor is the
/// first page), from its checked [`Params`].
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Shape;

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
        assert!(
            long.chars().count() == fleuve_schemas::text::MAX_QUOTED_CHARS + 1
                && long.ends_with('…')
        );
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
        let params =
            query_params(q(&[("limit", "5"), ("cursor", "c")]), Shape::List.query()).unwrap();
        assert_eq!(params["limit"], "5");
        let e = query_params(q(&[("limt", "5")]), Shape::List.query()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limt"));
        assert!(e.message.contains("`limit`, `cursor`"), "{}", e.message);
        let e =
            query_params(q(&[("limit", "5"), ("limit", "6")]), Shape::List.query()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = query_params(q(&[("x", "")]), &[]).unwrap_err();
        assert!(e.message.contains("no query parameters"), "{}", e.message);
    }
}

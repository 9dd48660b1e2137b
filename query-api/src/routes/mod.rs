//! The `/v1` read routes, one module per read model: each declares its routes
//! (`ROUTES`, entries of the route table, [`crate::table`]) next to its handlers and answer
//! views. [`TABLE`] lists them all; [`api`] serves them.
//!
//! Every handler checks, in this order: the bearer token when one is sent (401
//! `invalid_token`), the path parameters (400), who may read what (its route's
//! [`Access`](crate::table::Access) rule, [`crate::access`]: 401 `unauthorized`, 403
//! `forbidden`), the query parameters (400), the `X-Fleuve-Position` tokens (400
//! `invalid_position`; then the read-your-writes wait, 503 `position_not_reached`,
//! [`crate::consistency`]), then reads the store ([`Reading`](crate::state::Reading): the
//! live projections or a snapshot). A caller that may not read a route is thus refused
//! before any wait.

mod ids;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode, Uri};
use axum::{middleware, Router};
use fleuve_service::ApiError;

use crate::http::vary_authorization;
use crate::input::quoted;
use crate::state::AppState;
use crate::table::Table;

/// A routes module per read model of [`fleuve_projections::read_models!`], named as the
/// model's module; each declares its `ROUTES`.
macro_rules! declare_routes {
    ($($model:ident),*) => {
        $(mod $model;)*

        /// Every `/v1` route, in the order of the document.
        pub(crate) const TABLE: Table = Table(&[$($model::ROUTES),*]);
    };
}

fleuve_projections::read_models!(declare_routes);

/// The `/v1` routes of [`TABLE`], each under its method and path, with `Vary:
/// Authorization` when its answers depend on the token.
pub(crate) fn api() -> Router<AppState> {
    TABLE.iter().fold(Router::new(), |router, route| {
        let mut handler = (route.handler)(route.method.filter());
        if route.access.varies_by_token() {
            handler = handler.route_layer(middleware::map_response(vary_authorization));
        }
        router.route(route.path, handler)
    })
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

/// A path of the table called with a method none of its routes serves: names the ones
/// that do.
pub(crate) async fn method_not_allowed(
    method: Method,
    uri: Uri,
    matched: Option<MatchedPath>,
) -> ApiError {
    let mut allowed: Vec<&str> = matched
        .iter()
        .flat_map(|m| TABLE.iter().filter(move |r| r.path == m.as_str()))
        .map(|r| r.method.as_str())
        .collect();
    if allowed.is_empty() {
        allowed.push("GET");
    }
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; use {}",
            quoted(uri.path()),
            allowed.join(" or ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::access::token;
    use crate::access::{Caller, ADMIN, PARTNER, SELLER, USER};
    use crate::table::{Access, Cache, Declared, Shape, Verb};

    fn declared(path: &str) -> Declared {
        let route = TABLE.iter().find(|r| r.path == path).unwrap();
        Declared {
            route,
            table: TABLE,
        }
    }

    #[test]
    fn the_table_is_consistent() {
        let mut ids = BTreeSet::new();
        for route in TABLE.iter() {
            assert!(ids.insert(route.docs.operation_id), "{}", route.path);
            let params: Vec<&str> = route.params.iter().map(|p| p.name).collect();
            let template: Vec<&str> = route
                .path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(params, template, "{}", route.path);
            assert!(!route.reads.is_empty(), "{}", route.path);
            assert!(
                route
                    .reads
                    .iter()
                    .all(|m| fleuve_projections::MODELS.contains(m)),
                "{}",
                route.path
            );
            // A `POST` is never stored; a batch is a `POST`.
            assert_eq!(
                route.method == Verb::Post,
                route.cache == Cache::NoStore,
                "{}",
                route.path
            );
            assert_eq!(route.method == Verb::Post, route.shape == Shape::Batch);
            // Answers that differ per token are cached per caller (or not at all).
            if matches!(route.cache, Cache::PerCaller { .. }) {
                assert!(route.access.varies_by_token(), "{}", route.path);
            }
        }
    }

    #[test]
    fn the_crate_docs_list_every_route_of_the_table() {
        let docs = include_str!("../lib.rs");
        let listed = |route: &str| {
            docs.lines()
                .filter(|l| l.starts_with("//! | `"))
                .any(|l| l.contains(&format!("{route}`")) || l.contains(&format!("{route}?")))
        };
        let mut documented = 0;
        for route in TABLE.iter() {
            let route = format!("`{} {}", route.method.as_str(), route.path);
            assert!(
                listed(&route),
                "{route} is not in the crate docs' route table"
            );
            documented += 1;
        }
        let v1_rows = docs
            .lines()
            .filter(|l| l.starts_with("//! | `") && l.contains(" /v1/"));
        assert_eq!(
            v1_rows.count(),
            documented,
            "the crate docs list a route the table has not"
        );
    }

    #[test]
    fn user_data_is_for_its_user_or_admin() {
        let progress = declared("/v1/users/{user_id}/progress");
        assert_eq!(progress.route.access, Access::User);
        assert!(progress.allow(&Caller::Open, "u", "x").is_ok());
        assert!(progress.allow(&token("u", &[USER]), "u", "x").is_ok());
        assert!(progress.allow(&token("root", &[ADMIN]), "u", "x").is_ok());
        let anon = progress.allow(&Caller::Anonymous, "u", "x").unwrap_err();
        assert_eq!(anon.error.status, StatusCode::UNAUTHORIZED);
        assert_eq!(anon.error.code, "unauthorized");
        for caller in [
            token("v", &[USER]),
            token("u", &[SELLER]),
            token("u", &[PARTNER]),
            token("u", &[]),
        ] {
            let e = progress
                .allow(&caller, "u", "the progress of user `u`")
                .unwrap_err();
            assert_eq!(e.error.status, StatusCode::FORBIDDEN, "{caller:?}");
            assert_eq!(e.error.code, "forbidden");
            assert!(
                e.error.message.contains("the progress of user `u`"),
                "{}",
                e.error.message
            );
        }
    }

    #[test]
    fn forbidden_messages_say_what_the_token_may_read() {
        let bookmarks = declared("/v1/users/{user_id}/bookmarks");
        let e = bookmarks
            .allow(
                &token("v", &[USER, SELLER]),
                "u",
                "the bookmarks of user `u`",
            )
            .unwrap_err();
        let m = &e.error.message;
        assert!(m.contains("a `user` token whose `sub` is `u`"), "{m}");
        assert!(m.contains("the token of `v` (scopes: seller user)"), "{m}");
        assert!(
            m.contains("the progress, bookmarks and orders of user `v`, the orders of seller `v`, stock levels and the catalog"),
            "{m}"
        );
        let stock = declared("/v1/inventory/{sku}");
        let e = stock
            .allow(&token("p", &[PARTNER]), "s", "the stock of sku `s`")
            .unwrap_err();
        let m = &e.error.message;
        assert!(
            m.contains("may read the catalog contents with a distribution right for partner `p`"),
            "{m}"
        );
        let e = stock
            .allow(&token("nobody", &["events:write"]), "s", "x")
            .unwrap_err();
        assert!(
            e.error.message.contains("the catalog only (it has none"),
            "{}",
            e.error.message
        );
    }
}

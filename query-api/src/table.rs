//! The route table: every `/v1` route is declared once, as a [`Route`], next to its handler
//! (each module of `routes/` exports its `ROUTES`; `routes::TABLE` lists them all). The rest
//! derives from it:
//!
//! * the router: each route's handler under its method and path (`routes::api`), with
//!   `Vary: Authorization` when its [`Access`] makes answers depend on the token;
//! * the OpenAPI document ([`crate::openapi`]): operation, parameters, answer schema,
//!   access rule, caching, statuses;
//! * read-your-writes ([`crate::consistency`]): the read models a route waits on;
//! * snapshots ([`crate::snapshot`]): the read model whose snapshot a request reads;
//! * `Cache-Control` ([`crate::http`]): the route's [`Cache`] policy;
//! * access ([`crate::access`]): the route's rule, and what a refused token may read.
//!
//! A request learns its route from [`Declared`], which [`crate::http`]'s middleware puts in
//! its extensions (a look-up of the matched path in the table) for the layers and handlers
//! inside.

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodFilter, MethodRouter};
use fleuve_projections::ReadModel;
use fleuve_service::ApiError;
use schemars::{Schema, SchemaGenerator};

use crate::state::AppState;

/// One operation of the API, declared once.
#[derive(Debug)]
pub(crate) struct Route {
    pub method: Verb,
    /// The route template (axum 0.8 syntax: captures are `{…}`).
    pub path: &'static str,
    /// The read models the route reads: read-your-writes waits on them, a `snapshot` is one
    /// of them (a route reading exactly one has snapshots).
    pub reads: &'static [&'static ReadModel],
    pub access: Access,
    pub cache: Cache,
    pub shape: Shape,
    /// The path parameters, in the order of the template.
    pub params: &'static [Param],
    /// The `$ref` of the `200` body, adding its schema to the generator.
    pub answer: fn(&mut SchemaGenerator) -> Schema,
    pub docs: Docs,
    /// The handler under a method filter: `|m| on(m, handler)`.
    pub handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

impl Route {
    /// The read model whose snapshots the route serves: the one it reads, if it reads one.
    pub(crate) fn snapshot_model(&self) -> Option<&'static ReadModel> {
        match self.reads {
            [model] => Some(model),
            _ => None,
        }
    }
}

/// The method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// `GET`, also answering `HEAD`.
    Get,
    Post,
}

impl Verb {
    pub(crate) fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        }
    }

    /// As HTTP spells it (`GET`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }

    /// As OpenAPI spells it (`get`).
    pub(crate) fn openapi(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
        }
    }

    /// Whether a request of `method` is served by this verb.
    pub(crate) fn serves(self, method: &Method) -> bool {
        match self {
            Verb::Get => method == Method::GET || method == Method::HEAD,
            Verb::Post => method == Method::POST,
        }
    }
}

/// Who may call a route (the rules of [`crate::access`], the scopes of
/// [`crate::access::USER`] and the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, no token needed. A `partner` token without `admin` sees only the rows with a
    /// distribution right for its `sub`: the answer depends on the token (`Vary:
    /// Authorization`).
    Open,
    /// A `user` token whose `sub` is the route's id, or `admin`.
    User,
    /// A `seller` token whose `sub` is the route's id, or `admin`.
    Seller,
    /// `admin`, a `user` token of the row's buyer or a `seller` token of its seller: a token
    /// with none of `user`, `seller`, `admin` is refused before the row is read. `row` names
    /// it in messages (`order`).
    Parties { row: &'static str },
    /// Any token with `user`, `seller` or `admin`.
    Accounts,
}

impl Access {
    /// Whether answers depend on the token (`Vary: Authorization`).
    pub(crate) fn varies_by_token(self) -> bool {
        self == Access::Open
    }
}

/// The `Cache-Control` of a route's `200` answers ([`crate::http`]; errors are `no-store`,
/// snapshot reads `private, max-age=3600`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cache {
    /// `public, max-age=N` for a request without `Authorization`, `private, max-age=N` for
    /// one with it (answers differ per token).
    PerCaller { max_age_secs: u32 },
    /// `private, no-cache`: kept, but revalidated each time (cheap with the `ETag`).
    Revalidate,
    /// `no-store`.
    NoStore,
}

/// What a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One row: a 404 when there is none.
    One,
    /// A page of a list (`limit`, `cursor`); an empty list rather than a 404.
    List,
    /// `POST` of `{"ids":[…]}`.
    Batch,
}

impl Shape {
    /// The query parameters the route takes (`snapshot` aside).
    pub(crate) fn query(self) -> &'static [&'static str] {
        match self {
            Shape::List => &["limit", "cursor"],
            Shape::One | Shape::Batch => &[],
        }
    }
}

/// A path parameter: an id.
#[derive(Debug)]
pub(crate) struct Param {
    pub name: &'static str,
    /// What the id is, a sentence (the id rules are added to it).
    pub description: &'static str,
}

/// A group of operations in the document.
#[derive(Debug)]
pub(crate) struct Tag {
    pub name: &'static str,
    pub description: &'static str,
}

/// How a route is documented, and named in messages.
#[derive(Debug)]
pub(crate) struct Docs {
    pub operation_id: &'static str,
    pub tag: &'static Tag,
    pub summary: &'static str,
    pub description: &'static str,
    /// Its data, as a refusal lists what a token may read: the nouns of the `User` and
    /// `Seller` routes are joined after "the", of a user or seller (`the progress and
    /// bookmarks of user …`); the others are said as they are (`stock levels`).
    pub data: &'static str,
    /// Added to the description of its `snapshot` parameter, after "Pages and cursors work
    /// as on the live projection" (empty for nothing).
    pub snapshot: &'static str,
}

/// Every route, as the modules of `routes/` declare them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table(pub &'static [&'static [Route]]);

impl Table {
    pub(crate) fn iter(self) -> impl Iterator<Item = &'static Route> {
        self.0.iter().flat_map(|routes| routes.iter())
    }

    /// The route of a matched path template: the one serving `method`, else the first one
    /// with that template (a method it does not serve is answered 405).
    pub(crate) fn find(self, path: &str, method: &Method) -> Option<&'static Route> {
        let mut same_path = None;
        for route in self.iter() {
            if route.path == path {
                if route.method.serves(method) {
                    return Some(route);
                }
                same_path.get_or_insert(route);
            }
        }
        same_path
    }

    /// Puts the request's route ([`Declared`]) in its extensions, when it has one.
    pub(crate) fn declare(self, req: &mut Request) {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .and_then(|m| self.find(m.as_str(), req.method()));
        if let Some(route) = route {
            req.extensions_mut().insert(Declared { route, table: self });
        }
    }
}

/// The route a request was matched to, in its table. An extractor: a handler of the table
/// always has one (a 500 otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Declared {
    pub route: &'static Route,
    pub table: Table,
}

impl Declared {
    /// The route of a request, if it has one.
    pub(crate) fn of(parts: &Parts) -> Option<Self> {
        parts.extensions.get::<Declared>().copied()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Declared {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Self::of(parts).ok_or_else(|| {
            tracing::error!(
                path = parts.uri.path(),
                "a handler has no route declaration"
            );
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the route has no declaration; this is a bug of the query API",
            )
        })
    }
}

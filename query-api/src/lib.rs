//! HTTP query API serving read projections to fronts.
//!
//! Build the service with [`router`] over a [`Source`] (any [`fleuve_projections::Store`],
//! or the projections' versions) and serve it with axum. All responses are JSON; every
//! error has the one Fleuve error body `{"error":{"code":"…","message":"…","field":"…"}}`
//! ([`fleuve_service::ApiError`]).
//!
//! # Routes
//!
//! Each `/v1` route is declared once, next to its handler, in the route table (method,
//! path, the read models it reads, access rule, caching, parameters, answer schema, docs);
//! the router, the OpenAPI document, the read-your-writes wait, snapshots, `Cache-Control`
//! and the access refusals derive from it. The routes:
//!
//! | method and path | answer | who may read it (authentication on) |
//! | --- | --- | --- |
//! | `GET /v1/users/{user_id}/progress/{content_id}` | one progress row | the user, `admin` |
//! | `GET /v1/users/{user_id}/progress?limit=&cursor=` | the user's progress rows, by content id | the user, `admin` |
//! | `GET /v1/users/{user_id}/bookmarks?limit=&cursor=` | the user's bookmarks, newest first | the user, `admin` |
//! | `GET /v1/catalog/contents/{content_id}` | one content publishable now | anyone; a partner: its contents |
//! | `POST /v1/catalog/contents:batchGet` | `{"ids":[…]}` → `{"items":[content…],"missing":[id…]}` | anyone; a partner: its contents |
//! | `GET /v1/catalog/programs/{program_id}/episodes?limit=&cursor=` | a programme's seasons, episodes and clips publishable now, in listing order | anyone; a partner: its contents |
//! | `GET /v1/orders/{order_id}` | one order, with its timeline | its buyer, its seller, `admin` |
//! | `GET /v1/buyers/{buyer_id}/orders?limit=&cursor=` | a buyer's orders, newest first | the buyer (a `user` token), `admin` |
//! | `GET /v1/sellers/{seller_id}/orders?limit=&cursor=` | a seller's orders, newest first | the seller, `admin` |
//! | `GET /v1/inventory/{sku}` | a product's stock | any `user`, `seller` or `admin` token |
//! | `GET /metrics` | Prometheus metrics | anyone |
//! | `GET /healthz` | `200` while the process runs | anyone |
//! | `GET /readyz` | `200` when the store answered its last ping (every second) and, with [`QueryConfig::lag`], every projection is within the lag bound; else `503 not_ready`, the error body with the reason as message | anyone |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of these routes ([`openapi`]) | anyone |
//!
//! # Answers
//!
//! Times are RFC 3339 in UTC with milliseconds (`2024-05-01T20:15:03.120Z`); money is
//! `{"amount_minor":4749,"currency":"EUR"}`, integer minor units of an ISO 4217 currency.
//! An optional value is `null`, never absent (`rights` excepted, see below).
//!
//! ```json
//! {"user_id":"u-1","content_id":"film-42","position_ms":61000,"duration_ms":5400000,
//!  "device":"tv","updated_at":"2024-05-01T20:15:03.120Z","event_id":"0190…"}
//! ```
//!
//! * **Progress row** (above): `updated_at` is the event time of the write that produced it.
//! * **Bookmark**: `{"content_id","added_at","event_id"}`.
//! * **Content**: `{"content_id","kind","program_id","season_number","episode_number",
//!   "title","description","tags","duration_ms","available_from","available_until",
//!   "rights","updated_at"}`. `kind` is `PROGRAMME`, `SEASON`, `EPISODE` or `CLIP`;
//!   `available_until` is `null` when open-ended, and a window edge outside years 0000 to
//!   9999 is shown as the nearest instant RFC 3339 can write. `rights`
//!   (`[{"partner","territories"}]`) is there only for callers that may see rights: every
//!   right for `admin` (and with authentication off), its own for a partner; it is absent
//!   for everyone else. `updated_at` is the event time of the upsert.
//! * **Episode entry**: `{"content_id","kind","season_number","episode_number","title",
//!   "description","duration_ms","available_from","available_until"}`.
//! * **Order**: `{"order_id","buyer_id","seller_id","status","total","lines":[{"sku",
//!   "quantity","unit_price"}],"shipping_address":{"name","line1","line2","postal_code",
//!   "city","country"},"payment_ref","shipment":{"carrier","tracking_number"},"placed_at",
//!   "updated_at","timeline":[{"status","at","event_id","detail"}]}`. `status` is `PLACED`,
//!   `PAYMENT_AUTHORIZED`, `PAYMENT_FAILED`, `SHIPPED`, `DELIVERED` or `CANCELLED`; the
//!   timeline is oldest first; `shipment` is `null` until shipped.
//! * **Order summary** (the lists): `{"order_id","buyer_id","seller_id","status","total",
//!   "item_count","placed_at","updated_at"}`; `item_count` is the units over every line.
//! * **Stock**: `{"sku","available","reserved","updated_at"}`. A sku no stock event has
//!   named is a 404.
//!
//! A list is `{"items":[…],"next_cursor":"…"}`; `next_cursor` is `null` on the last page,
//! otherwise pass it unchanged as `cursor` to get the next page. A page holds at most
//! `limit` items. A programme's listing may hold fewer, even none with a `next_cursor`:
//! entries whose window closed since the catalog timer's last run and, for a partner,
//! entries without its right are left out of their page. Follow `next_cursor` until it is
//! `null`. A user, buyer, seller or programme without rows has an empty list, not a 404.
//!
//! **Catalog time.** Catalog reads evaluate availability at the instant of the request: a
//! content that is unknown, unpublished, deleted or outside its window is a 404, listed in
//! `missing`, or left out of a listing, all alike.
//!
//! **Batch read.** `POST /v1/catalog/contents:batchGet` (the `:` is literal) takes
//! `Content-Type: application/json` and `{"ids":["…",…]}`: 1 to
//! [`QueryConfig::max_batch_ids`] (100) ids, each a valid id (below); no other field. An id
//! asked twice is answered once; `items` and `missing` follow the order asked. The body is
//! at most [`QueryConfig::max_body_bytes`].
//!
//! # Parameters
//!
//! * Ids: the path parameters `user_id`, `content_id`, `program_id`, `order_id`,
//!   `buyer_id`, `seller_id`, `sku` (percent-decoded once) and the items of `ids`: 1 to 128
//!   bytes of UTF-8, no control characters, not `.` or `..`. A `/` in an id is sent as
//!   `%2F` and stays part of the id. Paths are not normalized: a `..` segment, a trailing
//!   or doubled slash is no route (404).
//! * `limit`: an integer from 1 to [`QueryConfig::max_limit`] (100 by default); absent:
//!   [`QueryConfig::default_limit`] (20).
//! * `cursor`: the `next_cursor` of the previous page; absent or empty: the first page. A
//!   cursor belongs to one list (route and id): another list refuses it.
//! * `snapshot`: on every route, the name of a snapshot to read instead of the live
//!   projection (see [Snapshots](#snapshots)).
//! * Any other query parameter is refused, and so is one given twice (400
//!   `invalid_parameter`, `field` names it): a misspelt `limt` would otherwise silently
//!   answer the default page. The lists take `limit` and `cursor`, the other routes none
//!   (`snapshot` aside).
//!
//! # Authorization
//!
//! With [`QueryConfig::auth`] set, a caller sends `Authorization: Bearer <JWT>` (see
//! [`fleuve_service::auth`]). The token's scopes say what its `sub` is
//! ([`access::USER`], [`access::SELLER`], [`access::PARTNER`], [`access::ADMIN`]):
//!
//! | scope | `sub` is | the token reads |
//! | --- | --- | --- |
//! | `user` | a user id | `/v1/users/{sub}/…`, `/v1/buyers/{sub}/orders`, the orders whose buyer is `sub`, stock, the catalog |
//! | `seller` | a seller id | `/v1/sellers/{sub}/orders`, the orders whose seller is `sub`, stock, the catalog |
//! | `partner` | a partner id (catalog `rights[].partner`) | the catalog contents with a distribution right for `sub`, with that right |
//! | `admin` | an operator | everything; the catalog with every right |
//!
//! A token may carry several scopes and reads what each grants, except that `partner`
//! without `admin` narrows the catalog to the partner's contents. `sub` must equal the id
//! in the path exactly. Per route:
//!
//! * **Catalog**: open, no token needed. Anonymous callers and tokens with neither
//!   `partner` nor `admin` see every content publishable now, without `rights`. A
//!   `partner` token without `admin` sees only the contents with a right for its `sub`:
//!   the others are a 404 (with the message of an unknown id, so that it learns nothing of
//!   them), listed in `missing`, and left out of listings. Every catalog answer carries
//!   `Vary: Authorization`.
//! * **`/v1/users/{user_id}/…`, `/v1/buyers/{buyer_id}/orders`**: a `user` token whose
//!   `sub` is the id, or `admin`.
//! * **`/v1/sellers/{seller_id}/orders`**: a `seller` token whose `sub` is the id, or
//!   `admin`.
//! * **`/v1/orders/{order_id}`**: `admin`, a `user` token whose `sub` is the order's buyer,
//!   or a `seller` token whose `sub` is its seller. A token with none of `user`, `seller`,
//!   `admin` is refused (403) before the order is read; for the others an absent order is a
//!   404 and someone else's a 403. (A user can thus tell an existing order id from an
//!   absent one: order ids are meant to be unguessable, such as UUIDs.)
//! * **`/v1/inventory/{sku}`**: any token with `user`, `seller` or `admin`; a `partner`
//!   token without them is a 403.
//!
//! A token, when sent, is verified first, on every route, the open catalog included: a bad
//! token is a 401 rather than silently anonymous. Then come the path parameters (400), the
//! access rule (401 without a token, 403), the query parameters (400), the
//! `X-Fleuve-Position` tokens (400, then the read-your-writes wait: 503), the store, and for
//! an order its buyer and seller (403). A caller that may not read a route is thus refused
//! at once, never held by the wait nor told how far the projection has got; an order that
//! already exists is checked against its buyer and seller before the wait too (they never
//! change). A request naming a `snapshot` has it checked and looked up right after the
//! token, before the rest. A 401 carries `WWW-Authenticate: Bearer realm="fleuve"` (no
//! token) or `Bearer realm="fleuve", error="invalid_token"`; a 403 carries `Bearer
//! error="insufficient_scope", scope="…"` (the scopes that could read the route) and a
//! message saying what the route needs and what the token may read.
//!
//! **Without an authenticator** (`auth: None`, the single-machine development set-up; the
//! binary logs a warning) every route is open to every caller, the `Authorization` header
//! is not read, and the catalog shows every right, as to an admin.
//!
//! # Errors
//!
//! | status | `code` | when |
//! | --- | --- | --- |
//! | 400 | `invalid_parameter` | an id, `limit` or query parameter refused (`field` names it; for a path parameter that is not UTF-8 once decoded, the message names it) |
//! | 400 | `invalid_cursor` | a cursor this API did not issue for this list (`field`: `cursor`) |
//! | 400 | `invalid_query` | an unparsable query string |
//! | 400 | `bad_request` | a request refused before a route could read it, with no code of its own (the HTTP layer's plain refusal, its text as the message); any other 4xx status without a code below uses it too |
//! | 400 | `invalid_json` | a batch body that is not JSON (with line and column) |
//! | 400 | `invalid_body` | a batch body that is not `{"ids":[…]}`, an empty `ids`, or a bad id (`field`: `ids`, `ids[3]`, or the unknown field) |
//! | 400 | `batch_too_large` | more than [`QueryConfig::max_batch_ids`] ids (`field`: `ids`; the message names the maximum) |
//! | 401 | `unauthorized` | no token on a route that needs one |
//! | 401 | `invalid_token` | a token that does not verify, on any route |
//! | 403 | `forbidden` | a valid token that may not read this |
//! | 404 | `not_found` | no such progress, content (publishable now, for this caller), order or stock; or no such route |
//! | 405 | `method_not_allowed` | a route exists but not for this method (`Allow` names the one) |
//! | 413 | `payload_too_large` | a batch body over [`QueryConfig::max_body_bytes`] |
//! | 415 | `unsupported_media_type` | a batch body without `Content-Type: application/json` |
//! | 500 | `internal` | the store failed in a way a retry will not fix, or holds a row this API cannot show (also logged) |
//! | 400 | `invalid_position` | an `X-Fleuve-Position` token ingest did not issue, or more than [`consistency::MAX_POSITIONS`] (`field`: `X-Fleuve-Position`) |
//! | 400 | `snapshot_with_position` | `snapshot` and an `X-Fleuve-Position` token in one request |
//! | 404 | `unknown_snapshot` | no built snapshot of that name for the route's projection (the message lists those it has), or this API serves no snapshots |
//! | 503 | `unavailable` | the store is temporarily unavailable; retry after `Retry-After` (1 s) |
//! | 503 | `position_not_reached` | the projection did not pass the request's positions within [`QueryConfig::position_wait`]; `X-Fleuve-Consistency: behind`, `Retry-After: 1` |
//! | 503 | `timeout` | the request took longer than [`QueryConfig::request_timeout`]; `Retry-After: 1` |
//! | 503 | `not_ready` | `GET /readyz` only: the replica is not ready; the message says why (the store's last ping failed, or a projection lags past the bound) |
//!
//! # Read-your-writes
//!
//! Ingest answers every accepted event with a `position` token. A read that sends it back in
//! `X-Fleuve-Position` (several tokens: repeat the header or separate them with commas) is
//! held until the projection behind the route has applied every event up to that position
//! on its partition, then answered: the answer includes the write. A token on a topic the
//! route's projection does not read (an order's position on a progress read) does not hold
//! the read. The wait comes after the token and the access rule (see
//! [Authorization](#authorization)): only a caller that may read the route waits. If the
//! projection has not got there within [`QueryConfig::position_wait`] (2 s by default), the
//! answer is `503 position_not_reached` with `X-Fleuve-Consistency: behind`: the client
//! retries or shows that the data is on its way, never stale data in silence. See
//! [`consistency`].
//!
//! # Snapshots
//!
//! A snapshot is a build of one projection as of a past instant, frozen under a name
//! (`fleuve rebuild <projection> --as-of TIME [--name NAME]` makes one, `fleuve rebuild
//! list <projection>` lists them). Any `/v1` read with `?snapshot=<name>` (next to its own
//! parameters) is answered from the snapshot of the projection its route reads, in the same
//! shapes, pages and cursors; catalog availability is evaluated at the snapshot's instant.
//! The answer carries `X-Fleuve-Snapshot: <name>` and `X-Fleuve-As-Of: <instant>`; a `200`
//! to a `GET` is `Cache-Control: private, max-age=3600`. A bad name is `400
//! invalid_parameter` (`field`: `snapshot`), a name the projection has no built snapshot of
//! is `404 unknown_snapshot` (listing the ones it has), and a snapshot never moves, so
//! `X-Fleuve-Position` with it is `400 snapshot_with_position`. This needs the router built
//! over [`Source::Versions`]. See [`snapshot`].
//!
//! # Caching and compression
//!
//! Every `200` to a `GET` carries a weak `ETag`; `If-None-Match` with it answers `304` with
//! no body. `Cache-Control` is `public, max-age=10` for anonymous catalog reads,
//! `private, max-age=10` for authenticated ones (they differ per partner), `private,
//! no-cache` for the other reads (revalidate with the `ETag`), `private, max-age=3600` for
//! snapshot reads, `no-store` for `POST` and errors. Answers are gzipped for clients sending `Accept-Encoding: gzip`. Requests over
//! [`QueryConfig::request_timeout`] (10 s) are cut with `503 timeout`; bodies over
//! [`QueryConfig::max_body_bytes`] (64 KiB) are refused with `413`. See [`http`].
//!
//! # Metrics
//!
//! * `fleuve_query_requests_total{route,status}`: requests by route template (for example
//!   `/v1/users/{user_id}/progress`, or `unmatched`) and HTTP status code;
//! * `fleuve_query_request_duration_seconds{route}`: latency histogram;
//! * `fleuve_query_projection_lag_events{projection}`: records each projection is behind the
//!   end of its topics (with [`QueryConfig::lag`], measured every 5 s).

pub mod access;
mod config;
pub mod consistency;
mod failure;
pub mod http;
mod input;
pub mod openapi;
mod readiness;
mod routes;
mod server;
pub mod snapshot;
mod state;
mod table;
mod views;
pub use server::{start, ServiceConfig};

/// `fleuve_query_requests_total`, `fleuve_query_request_duration_seconds` and
/// `fleuve_query_in_flight_requests`, by route template.
static REQUESTS: std::sync::LazyLock<fleuve_service::http::RequestMetrics> =
    std::sync::LazyLock::new(|| {
        fleuve_service::http::RequestMetrics::register("query", "the query API")
    });

use axum::extract::DefaultBodyLimit;
use axum::Router;

pub use crate::config::{LagConfig, QueryConfig};
pub use crate::state::Source;

/// The query API's routes, ops routes included (`/metrics`, `/healthz`, `/readyz`,
/// `/openapi.json`), reading `source`: a store (any `Arc` of a
/// [`Store`](fleuve_projections::Store)), or [`Source::Versions`] (reader versions and
/// snapshots).
///
/// Call it inside a Tokio runtime: it starts a task that pings the store every second for
/// `/readyz` (the task ends when the router is dropped). Outside a runtime `/readyz` stays
/// `503`.
pub fn router(source: impl Into<Source>, config: QueryConfig) -> Router {
    router_with(source, config, Router::new())
}

/// [`router`] with `extra` routes served behind the same middleware as the API's own
/// (metrics, snapshots, caching headers, compression, timeouts). The benchmarks use it to
/// serve a static handler next to the real ones. (The read-your-writes wait is the API
/// handlers' own, after their access check: see [`consistency`].)
pub fn router_with(source: impl Into<Source>, config: QueryConfig, extra: Router) -> Router {
    let state = state::AppState::new(source.into(), config);
    let readiness = readiness::start(state.live.clone(), state.config.lag.clone());
    let body_limit = state.config.max_body_bytes;
    let openapi = openapi::routes(&state.config);
    let manners = http::Manners {
        timeout: state.config.request_timeout,
        table: routes::TABLE,
    };
    // Outermost last: metrics see every answer, compressed or not; the timeout covers the
    // handlers, their read-your-writes wait included; the manners declare each request's
    // route for everything inside; a snapshot is chosen (and its parameter taken out of the
    // query string) before the routes.
    routes::api()
        .with_state(state.clone())
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            state,
            snapshot::read_snapshot,
        ))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(manners, http::manners))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .layer(axum::middleware::from_fn_with_state(
            REQUESTS.clone(),
            fleuve_service::http::track_requests,
        ))
        .merge(fleuve_service::ops_routes(readiness))
        .merge(openapi)
}

//! The OpenAPI 3.1 document of the query API, served at `GET /openapi.json`.
//!
//! The answers' schemas are not written here: they are derived with `schemars` from the
//! view structs the handlers serialize (in the serialize contract: a field is required
//! unless it is skipped when empty, an `Option` is nullable, a doc comment is a
//! description), and every object is closed (`additionalProperties: false`): what the API
//! sends is all documented. The routes, their parameters, headers, error statuses, caching
//! and who may call them come from the route table (each route's declaration, next to its
//! handler); the limits come from the [`QueryConfig`]. Tests check the document against the
//! router (every `/v1` route is documented and every documented one is served, under the
//! same template) and real answers against the schemas (`tests/openapi.rs`).

use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use axum::Router;
use fleuve_projections::ReadModel;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value as Json};

use crate::access::{ADMIN, PARTNER, SELLER, USER};
use crate::config::QueryConfig;
use crate::consistency::MAX_POSITIONS;
use crate::input::MAX_ID_BYTES;
use crate::routes::TABLE;
use crate::snapshot::{SNAPSHOT_MAX_AGE_SECS, SNAPSHOT_PARAM};
use crate::table::{Access, Cache, Param, Route, Shape, Verb};

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

/// `Cache-Control` of the served document: it changes only with a new release.
const CACHE_CONTROL: &str = "public, max-age=300";

/// Name of the bearer security scheme.
const BEARER: &str = "bearerAuth";

// The JSON of `fleuve_service::ApiError`, which has no schema of its own: the tests check
// real error answers against it.
/// The error body of every Fleuve API.
#[derive(JsonSchema)]
#[schemars(rename = "Error")]
#[expect(dead_code, reason = "only its schema is used")]
struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(JsonSchema)]
#[expect(dead_code, reason = "only its schema is used")]
struct ErrorDetail {
    /// Stable machine-readable code (`invalid_parameter`, `not_found`, …).
    code: String,
    /// What went wrong and what to do.
    message: String,
    /// The input the error is about, when it is about one: a parameter (`limit`), a body
    /// field (`ids[3]`) or a header (`X-Fleuve-Position`).
    #[schemars(skip_serializing_if = "Option::is_none", with = "String")]
    field: Option<String>,
}

/// `GET /openapi.json`: the document of `config`, rendered once.
pub(crate) fn routes(config: &QueryConfig) -> Router {
    let body = Bytes::from(serde_json::to_vec(&document(config)).unwrap_or_default());
    Router::new().route(
        PATH,
        get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, CACHE_CONTROL),
                    ],
                    body,
                )
            }
        }),
    )
}

/// The whole document, with the limits of `config`.
pub fn document(config: &QueryConfig) -> Json {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .for_serialize()
        .into_generator();
    let mut paths = Map::new();
    let mut tags: Vec<Json> = Vec::new();
    for route in TABLE.iter() {
        let answer = (route.answer)(&mut generator).to_value();
        let operation = operation(route, answer, config);
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[route.method.openapi()] = operation;
        let tag = route.docs.tag;
        if !tags.iter().any(|t| t["name"] == tag.name) {
            tags.push(json!({"name": tag.name, "description": tag.description}));
        }
    }
    tags.push(
        json!({"name": "ops", "description": "Operations: metrics, health, readiness, \
                                                    this document. Open, outside the API's \
                                                    middleware."}),
    );
    for (path, item) in ops_paths(config) {
        paths.insert(path.to_owned(), item);
    }
    generator.subschema_for::<ErrorBody>();
    let mut schemas = generator.take_definitions(true);
    schemas.insert("BatchGetRequest".to_owned(), batch_request(config));
    for schema in schemas.values_mut() {
        close_objects(schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Fleuve query API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": info(config),
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "headers": headers(),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": format!(
                        "A JWT sent as `Authorization: Bearer <token>`. Its scopes say what its \
                         `sub` is: `{USER}` (a user id, also the buyer id of orders), `{SELLER}` \
                         (a seller id), `{PARTNER}` (a partner id of catalog distribution \
                         rights); `{ADMIN}` reads everything. A token may carry several scopes \
                         and reads what each grants, except that `{PARTNER}` without `{ADMIN}` \
                         narrows the catalog to the partner's contents. A token, when sent, is \
                         verified on every route, the open catalog included: a bad token is a \
                         401 `invalid_token`. The scopes listed on an operation are those that \
                         can read it, given the `sub` rules of its description. Without an \
                         authenticator (a development set-up) every route is open and the \
                         header is not read."
                    ),
                },
            },
        },
    })
}

/// The `info.description`: the conventions every route shares.
fn info(config: &QueryConfig) -> String {
    let auth = if config.auth.is_some() {
        "The `/v1` routes other than the catalog need a bearer token (see each operation)."
    } else {
        "**This instance runs without authentication**: every route is open to every caller \
         and the catalog shows every distribution right."
    };
    format!(
        "Read projections for fronts. All answers are JSON. Times are RFC 3339 in UTC with \
         milliseconds (`2024-05-01T20:15:03.120Z`); money is `{{\"amount_minor\":4749,\
         \"currency\":\"EUR\"}}`, integer minor units of an ISO 4217 currency; an optional value \
         is `null`, never absent (a content's `rights` excepted).\n\n\
         **Lists** are `{{\"items\":[…],\"next_cursor\":…}}`: at most `limit` items ({} by \
         default, at most {}); pass `next_cursor` unchanged as `cursor` for the next page, until \
         it is `null`. Any query parameter a route does not take, or one given twice, is a 400 \
         `invalid_parameter`.\n\n\
         **Ids** in paths are 1 to {MAX_ID_BYTES} bytes of UTF-8, percent-encoded (a `/` is sent \
         as `%2F` and stays part of the id), without control characters, not `.` or `..`. Paths \
         are not normalized: a `..` segment, a trailing or doubled slash is no route (404). A \
         route called with another method is a 405 `method_not_allowed`. Every `GET` also \
         answers `HEAD`.\n\n\
         **Read-your-writes**: send the position tokens ingest returned in `X-Fleuve-Position`; \
         the read waits until its projection has applied them, at most {} ms, else answers 503 \
         `position_not_reached`. Only a caller that may read the route waits: a missing, bad \
         or insufficient token is refused (401, 403) at once.\n\n\
         **Snapshots**: every route also takes `snapshot=<name>`, the name of a snapshot of its \
         projection (a build as of a past instant, made with `fleuve rebuild <projection> \
         --as-of TIME --name NAME`): the answer is read from it, with `X-Fleuve-Snapshot` and \
         `X-Fleuve-As-Of`. An unknown name is a 404 `unknown_snapshot` listing the projection's \
         snapshots; with `X-Fleuve-Position` it is a 400 `snapshot_with_position`.\n\n\
         **Caching**: every 200 answer to a `GET` has a weak `ETag`; send it in `If-None-Match` \
         to get a 304 without body when nothing changed. `Cache-Control` is given per operation; \
         error answers are `no-store`. Answers are gzipped for clients that accept it. A request \
         taking longer than {} ms is a 503 `timeout`.\n\n\
         **Errors** all have the body `{{\"error\":{{\"code\",\"message\",\"field\"}}}}` \
         (`field` only when the error is about one input).\n\n{auth}",
        config.default_limit,
        config.max_limit,
        config.position_wait.as_millis(),
        config.request_timeout.as_millis(),
    )
}

/// The headers the operations' answers carry.
fn headers() -> Json {
    json!({
        "ETag": {
            "description": "A weak validator of the body (`W/\"<32 hex digits>\"`), the same on \
                            every replica for the same data, compressed or not. Send it in \
                            `If-None-Match`.",
            "schema": {"type": "string"},
        },
        "Vary": {
            "description": "`Authorization`: the answer depends on the token (a partner sees \
                            only its contents).",
            "schema": {"type": "string"},
        },
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 0},
        },
        "X-Fleuve-Snapshot": {
            "description": "Only when the request names a `snapshot`: its name, which the \
                            answer was read from.",
            "schema": {"type": "string"},
        },
        "X-Fleuve-As-Of": {
            "description": "Only when the request names a `snapshot`: the snapshot's instant \
                            (RFC 3339 UTC with milliseconds); it holds the events written \
                            before it.",
            "schema": {"type": "string", "format": "date-time"},
        },
        "X-Fleuve-Consistency": {
            "description": "`behind`: the projection had not applied the request's \
                            `X-Fleuve-Position` tokens in time (only with \
                            `position_not_reached`).",
            "schema": {"type": "string", "enum": ["behind"]},
        },
        "WWW-Authenticate": {
            "description": "The bearer challenge: `Bearer realm=\"fleuve\"` without a token, \
                            `Bearer realm=\"fleuve\", error=\"invalid_token\"` for a bad one, \
                            `Bearer error=\"insufficient_scope\", scope=\"…\"` (the scopes that \
                            could read the route) for a token that may not.",
            "schema": {"type": "string"},
        },
    })
}

/// Closes every object schema that lists its properties: the answers hold nothing else.
fn close_objects(schema: &mut Json) {
    match schema {
        Json::Object(o) => {
            if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                o.insert("additionalProperties".to_owned(), Json::Bool(false));
            }
            for (key, value) in o.iter_mut() {
                // `properties` maps names to schemas: recurse into each schema, not the map.
                if key == "properties" {
                    if let Json::Object(props) = value {
                        props.values_mut().for_each(close_objects);
                    }
                } else {
                    close_objects(value);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// The schema of an id: what [`crate::routes::check_id`] accepts (the length is in bytes of
/// UTF-8; JSON Schema counts characters, so `maxLength` is a looser bound).
fn id_schema() -> Json {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_BYTES,
        "not": {"enum": [".", ".."]},
    })
}

fn batch_request(config: &QueryConfig) -> Json {
    json!({
        "description": format!(
            "The ids of the contents to read: 1 to {} valid ids, no other field. The body is at \
             most {} bytes.",
            config.max_batch_ids, config.max_body_bytes
        ),
        "type": "object",
        "required": ["ids"],
        "properties": {
            "ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": config.max_batch_ids,
                "items": id_schema(),
            },
        },
    })
}

fn path_param(param: &Param) -> Json {
    json!({
        "name": param.name,
        "in": "path",
        "required": true,
        "description": format!(
            "{} 1 to {MAX_ID_BYTES} bytes of UTF-8, percent-encoded once (a `/` is sent as \
             `%2F`), no control characters, not `.` or `..`; else 400 `invalid_parameter` naming \
             it.",
            param.description
        ),
        "schema": id_schema(),
    })
}

/// `a`, `a, b`: each name in backquotes.
fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn position_param(route: &Route, config: &QueryConfig) -> Json {
    let reads = if route.reads.is_empty() {
        String::new()
    } else {
        let topics: Vec<&str> = route
            .reads
            .iter()
            .flat_map(|m| m.topics.iter().copied())
            .fold(Vec::new(), |mut all, t| {
                if !all.contains(&t) {
                    all.push(t);
                }
                all
            });
        let plural = if topics.len() == 1 { "topic" } else { "topics" };
        let projections = if route.reads.len() == 1 {
            "projection"
        } else {
            "projections"
        };
        format!(
            " This route reads the {} {projections} (from {plural} {}): a token of another topic \
             is satisfied at once.",
            quoted_list(route.reads.iter().map(|m| m.name)),
            quoted_list(topics.into_iter())
        )
    };
    json!({
        "name": "X-Fleuve-Position",
        "in": "header",
        "required": false,
        "description": format!(
            "Read-your-writes: the position tokens ingest returned for the caller's writes. The \
             read waits until the route's projection has applied each token's event (and \
             everything before it on its partition), at most {} ms; past that the answer is 503 \
             `position_not_reached` with `X-Fleuve-Consistency: behind`: never stale data in \
             silence.{reads} Several tokens are comma-separated, or the header is repeated; at \
             most {MAX_POSITIONS} in all. A token ingest did not issue is a 400 \
             `invalid_position`. A snapshot never moves: with `snapshot`, a token is a 400 \
             `snapshot_with_position`.",
            config.position_wait.as_millis()
        ),
        "style": "simple",
        "explode": false,
        "schema": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_POSITIONS},
    })
}

/// The `snapshot` query parameter of a route whose snapshots are those of `model`.
fn snapshot_param(route: &Route, model: &ReadModel) -> Json {
    let projection = model.name;
    json!({
        "name": SNAPSHOT_PARAM,
        "in": "query",
        "required": false,
        "description": format!(
            "Read the snapshot of that name of the `{projection}` projection (a build as of a \
             past instant, frozen; made with `fleuve rebuild {projection} --as-of TIME --name \
             NAME`, listed with `fleuve rebuild list {projection}`) instead of the live one. \
             Pages and cursors work as on the live projection{note}. The answer carries \
             `X-Fleuve-Snapshot` and `X-Fleuve-As-Of`; a 200 to a `GET` is `Cache-Control: \
             private, max-age={SNAPSHOT_MAX_AGE_SECS}`. A name that is not 1 to {} characters \
             among `a-z`, `0-9`, `-`, `_`, `.` (starting with a letter or digit), or given twice, \
             is a 400 `invalid_parameter` (`field`: `snapshot`); a name the projection has no \
             built snapshot of is a 404 `unknown_snapshot` (the message lists those it has); \
             with `X-Fleuve-Position` it is a 400 `snapshot_with_position`.",
            fleuve_projections::versions::MAX_SNAPSHOT_NAME,
            note = route.docs.snapshot,
        ),
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": fleuve_projections::versions::MAX_SNAPSHOT_NAME,
            "pattern": "^[a-z0-9][a-z0-9._-]*$",
        },
    })
}

fn if_none_match_param() -> Json {
    json!({
        "name": "If-None-Match",
        "in": "header",
        "required": false,
        "description": "`ETag`s of answers the caller holds (comma-separated, weak comparison) \
                        or `*`: when one is the current answer's, the answer is a 304 without \
                        body.",
        "schema": {"type": "string"},
    })
}

fn list_params(config: &QueryConfig) -> [Json; 2] {
    [
        json!({
            "name": "limit",
            "in": "query",
            "required": false,
            "description": format!(
                "Most items of the page: an integer from 1 to {}; absent: {}. Else 400 \
                 `invalid_parameter` (`field`: `limit`).",
                config.max_limit, config.default_limit
            ),
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": config.max_limit,
                "default": config.default_limit,
            },
        }),
        json!({
            "name": "cursor",
            "in": "query",
            "required": false,
            "description": "The `next_cursor` of the previous page; absent or empty: the first \
                            page. A cursor belongs to one list (route and id): another list \
                            refuses it (400 `invalid_cursor`).",
            "schema": {"type": "string"},
        }),
    ]
}

/// The scopes that can read a route (those of the 403 challenge), for `security`.
fn security(access: Access) -> Json {
    match access {
        // Open: no token, or any valid one.
        Access::Open => json!([{}, {BEARER: []}]),
        Access::User => json!([{BEARER: [USER, ADMIN]}]),
        Access::Seller => json!([{BEARER: [SELLER, ADMIN]}]),
        Access::Parties { .. } | Access::Accounts => json!([{BEARER: [USER, SELLER, ADMIN]}]),
    }
}

/// Who may call a route, in words (the rules of the crate docs, "Authorization").
fn who(route: &Route) -> String {
    let id = route.params.first().map_or("id", |p| p.name);
    let rule = match route.access {
        Access::Open => {
            let hidden = match route.shape {
                Shape::One => "a 404, with the message of an unknown id",
                Shape::List => "left out of the listing",
                Shape::Batch => "listed in `missing`",
            };
            format!(
                "anyone: no token is needed. Anonymous callers and tokens with neither \
                 `{PARTNER}` nor `{ADMIN}` see every content publishable now, without `rights`. A \
                 `{PARTNER}` token without `{ADMIN}` sees only the contents with a distribution \
                 right for its `sub`, with that right only: the others are {hidden}. `{ADMIN}` \
                 sees every right. The answer depends on the token, hence `Vary: Authorization`."
            )
        }
        Access::User => format!(
            "a token with the `{USER}` scope whose `sub` is the path's `{id}`, or a token with the \
             `{ADMIN}` scope. No token: 401 `unauthorized`; any other token: 403 `forbidden`."
        ),
        Access::Seller => format!(
            "a token with the `{SELLER}` scope whose `sub` is the path's `{id}`, or a token with the \
             `{ADMIN}` scope. No token: 401 `unauthorized`; any other token: 403 `forbidden`."
        ),
        Access::Parties { row } => format!(
            "a token with the `{ADMIN}` scope, a `{USER}` token whose `sub` is the {row}'s \
             buyer, or a `{SELLER}` token whose `sub` is its seller. No token: 401 \
             `unauthorized`. A token with none of `{USER}`, `{SELLER}`, `{ADMIN}` is refused \
             (403) before the {row} is read; for the others an absent {row} is a 404 and someone \
             else's a 403 ({row} ids are meant to be unguessable)."
        ),
        Access::Accounts => format!(
            "any token with the `{USER}`, `{SELLER}` or `{ADMIN}` scope. No token: 401 \
             `unauthorized`; a token with none of them (a `{PARTNER}` token, say): 403 \
             `forbidden`."
        ),
    };
    format!(
        "**Who may call it**: {rule} A token that does not verify is a 401 `invalid_token`. \
         Without an authenticator every route is open."
    )
}

fn operation(route: &Route, answer: Json, config: &QueryConfig) -> Json {
    let mut parameters: Vec<Json> = route.params.iter().map(path_param).collect();
    if route.shape == Shape::List {
        parameters.extend(list_params(config));
    }
    if let Some(model) = route.snapshot_model() {
        parameters.push(snapshot_param(route, model));
    }
    parameters.push(position_param(route, config));
    if route.method == Verb::Get {
        parameters.push(if_none_match_param());
    }
    let mut op = json!({
        "operationId": route.docs.operation_id,
        "summary": route.docs.summary,
        "description": format!("{}\n\n{}", route.docs.description, who(route)),
        "tags": [route.docs.tag.name],
        "security": security(route.access),
        "parameters": parameters,
        "responses": responses(route, answer, config),
    });
    if route.shape == Shape::Batch {
        op["requestBody"] = json!({
            "required": true,
            "description": format!(
                "`Content-Type: application/json` (else 415), at most {} bytes (else 413).",
                config.max_body_bytes
            ),
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchGetRequest"}},
            },
        });
    }
    op
}

fn header_ref(name: &str) -> Json {
    json!({"$ref": format!("#/components/headers/{name}")})
}

/// An error answer: the error body, `description` listing its codes, with `headers`.
fn error(description: String, headers: &[&str]) -> Json {
    let mut r = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    });
    if !headers.is_empty() {
        r["headers"] = Json::Object(
            headers
                .iter()
                .map(|h| ((*h).to_owned(), header_ref(h)))
                .collect(),
        );
    }
    r
}

fn bullets(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("- {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn responses(route: &Route, answer: Json, config: &QueryConfig) -> Json {
    let get = route.method == Verb::Get;
    let open = route.access == Access::Open;
    let cache_control = match route.cache {
        Cache::NoStore => "`no-store`.".to_owned(),
        Cache::PerCaller { max_age_secs } => format!(
            "`public, max-age={max_age_secs}` for a request without `Authorization`, \
             `private, max-age={max_age_secs}` for one with it (answers differ per partner)."
        ),
        Cache::Revalidate => {
            "`private, no-cache`: keep it, but revalidate each time (cheap with `If-None-Match`)."
                .to_owned()
        }
    };
    let snapshots = route.snapshot_model().is_some();
    let cache_control = if snapshots && get {
        format!(
            "{cache_control} Read from a `snapshot`: `private, max-age={SNAPSHOT_MAX_AGE_SECS}` \
             (a snapshot never changes)."
        )
    } else {
        cache_control
    };
    let mut ok_headers = Map::new();
    ok_headers.insert(
        "Cache-Control".to_owned(),
        json!({"description": cache_control, "schema": {"type": "string"}}),
    );
    if snapshots {
        for name in ["X-Fleuve-Snapshot", "X-Fleuve-As-Of"] {
            ok_headers.insert(name.to_owned(), header_ref(name));
        }
    }
    if get {
        ok_headers.insert("ETag".to_owned(), header_ref("ETag"));
    }
    if route.access.varies_by_token() {
        ok_headers.insert("Vary".to_owned(), header_ref("Vary"));
    }
    let mut out = Map::new();
    out.insert(
        "200".to_owned(),
        json!({
            "description": "The answer.",
            "headers": ok_headers,
            "content": {"application/json": {"schema": answer}},
        }),
    );
    if get {
        out.insert(
            "304".to_owned(),
            json!({
                "description": "Not Modified: `If-None-Match` lists the current `ETag` (or is \
                                `*`). No body.",
                "headers": ok_headers,
            }),
        );
    }

    let mut refused = Vec::new();
    if !route.params.is_empty() {
        refused.push(
            "a path id (`field` names it; for an id that is not UTF-8 once decoded, the message \
             does)"
                .to_owned(),
        );
    }
    if route.shape == Shape::List {
        refused.push(format!(
            "a `limit` that is not an integer from 1 to {}",
            config.max_limit
        ));
    }
    refused.push(
        "a query parameter this route does not take, or one given twice (`field` names it)"
            .to_owned(),
    );
    if snapshots {
        refused.push("a `snapshot` name that is not valid (`field`: `snapshot`)".to_owned());
    }
    let mut bad = vec![
        format!("`invalid_parameter`: {}.", refused.join("; ")),
        "`invalid_query`: an unparsable query string.".to_owned(),
        "`bad_request`: a request refused before the route could read it, with no code of its \
         own (the message says why)."
            .to_owned(),
        "`invalid_position`: an `X-Fleuve-Position` token ingest did not issue, or more than \
         the maximum (`field`: `X-Fleuve-Position`)."
            .to_owned(),
    ];
    if snapshots {
        bad.push(
            "`snapshot_with_position`: `snapshot` with an `X-Fleuve-Position` token (a snapshot \
             never moves)."
                .to_owned(),
        );
    }
    match route.shape {
        Shape::List => {
            bad.push(
                "`invalid_cursor`: a cursor this API did not issue for this list (`field`: \
                 `cursor`)."
                    .to_owned(),
            );
        }
        Shape::Batch => {
            bad.push("`invalid_json`: the body is not JSON (with line and column).".to_owned());
            bad.push(
                "`invalid_body`: the body is not `{\"ids\":[…]}`, `ids` is empty, or an id is \
                 refused (`field`: `ids`, `ids[3]`, or the unknown field)."
                    .to_owned(),
            );
            bad.push(format!(
                "`batch_too_large`: more than {} ids (`field`: `ids`).",
                config.max_batch_ids
            ));
        }
        Shape::One => {}
    }
    out.insert(
        "400".to_owned(),
        error(format!("Bad request.\n\n{}", bullets(&bad)), &[]),
    );
    let unauthorized = if open {
        "`invalid_token`: the token sent does not verify (no token is needed here).".to_owned()
    } else {
        "`unauthorized`: no token. `invalid_token`: the token does not verify.".to_owned()
    };
    out.insert("401".to_owned(), error(unauthorized, &["WWW-Authenticate"]));
    if !open {
        out.insert(
            "403".to_owned(),
            error(
                "`forbidden`: a valid token that may not read this; the message says what the \
                 route needs and what the token may read."
                    .to_owned(),
                &["WWW-Authenticate"],
            ),
        );
    }
    let mut missing = Vec::new();
    if route.shape == Shape::One {
        missing.push(
            "`not_found`: no such row (for the catalog: none publishable now for this caller)."
                .to_owned(),
        );
    }
    if snapshots {
        missing.push(
            "`unknown_snapshot`: the projection has no built snapshot named `snapshot` (the \
             message lists those it has), or this API serves no snapshots."
                .to_owned(),
        );
    }
    if !missing.is_empty() {
        out.insert(
            "404".to_owned(),
            error(format!("Not found.\n\n{}", bullets(&missing)), &[]),
        );
    }
    if route.shape == Shape::Batch {
        out.insert(
            "413".to_owned(),
            error(
                format!(
                    "`payload_too_large`: the body is over {} bytes.",
                    config.max_body_bytes
                ),
                &[],
            ),
        );
        out.insert(
            "415".to_owned(),
            error(
                "`unsupported_media_type`: the body is not sent as `Content-Type: \
                 application/json`."
                    .to_owned(),
                &[],
            ),
        );
    }
    out.insert(
        "500".to_owned(),
        error(
            "`internal`: the store failed in a way a retry will not fix, or holds a row this \
             API cannot show."
                .to_owned(),
            &[],
        ),
    );
    out.insert(
        "503".to_owned(),
        error(
            format!(
                "Retry after `Retry-After` seconds.\n\n{}",
                bullets(&[
                    "`unavailable`: the store is temporarily unavailable.".to_owned(),
                    format!(
                        "`timeout`: the request took longer than {} ms, the read-your-writes \
                         wait included.",
                        config.request_timeout.as_millis()
                    ),
                    format!(
                        "`position_not_reached`: the projection had not applied the \
                         `X-Fleuve-Position` tokens within {} ms (with `X-Fleuve-Consistency: \
                         behind`); retry with the same header.",
                        config.position_wait.as_millis()
                    ),
                ])
            ),
            &["Retry-After", "X-Fleuve-Consistency"],
        ),
    );
    Json::Object(out)
}

/// `/metrics`, `/healthz`, `/readyz` and this document.
fn ops_paths(config: &QueryConfig) -> Vec<(&'static str, Json)> {
    let text = |description: &str| {
        json!({
            "description": description,
            "content": {"text/plain": {"schema": {"type": "string"}}},
        })
    };
    let lag = config.lag.as_ref().map_or(String::new(), |lag| {
        format!(
            ", and every projection the API reads is at most {} records behind the end of its \
             topics (measured every {} s)",
            lag.max_events,
            lag.every.as_secs()
        )
    });
    let op = |id: &str, summary: &str, description: String, responses: Json| {
        json!({
            "get": {
                "operationId": id,
                "summary": summary,
                "description": description,
                "tags": ["ops"],
                "security": [],
                "responses": responses,
            },
        })
    };
    vec![
        (
            "/metrics",
            op(
                "metrics",
                "Prometheus metrics",
                "The process's metrics in the Prometheus text format: \
                 `fleuve_query_requests_total{route,status}` and \
                 `fleuve_query_request_duration_seconds{route}` by route template, among others."
                    .to_owned(),
                json!({
                    "200": text("The metrics."),
                    "500": text("The metrics could not be encoded."),
                }),
            ),
        ),
        (
            "/healthz",
            op(
                "healthz",
                "Liveness",
                "`200` while the process runs.".to_owned(),
                json!({"200": text("`ok`.")}),
            ),
        ),
        (
            "/readyz",
            op(
                "readyz",
                "Readiness",
                format!("`200` when the store answered its last ping (every second){lag}."),
                json!({
                    "200": text("`ready`."),
                    "503": error(
                        "`not_ready`: not ready; the message says why (the store's last ping \
                         failed, or which projection lags by how much)."
                            .to_owned(),
                        &[],
                    ),
                }),
            ),
        ),
        (
            PATH,
            op(
                "openapi",
                "This document",
                format!("The OpenAPI 3.1 document of this API (`Cache-Control: {CACHE_CONTROL}`)."),
                json!({
                    "200": {
                        "description": "The document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                }),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;

    /// The route templates of [`crate::routes::api`], read from the router's `Debug` output
    /// (axum has no other way to list them; should its format change, this finds none and
    /// fails).
    fn router_paths() -> BTreeSet<String> {
        let debug = format!("{:?}", crate::routes::api());
        debug
            .split('"')
            .filter(|s| s.starts_with("/v1/"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_route_of_the_router_is_documented_and_no_other() {
        let router = router_paths();
        assert!(router.len() >= 10, "found only {router:?}");
        let listed: BTreeSet<String> = TABLE.iter().map(|r| r.path.to_owned()).collect();
        assert_eq!(listed, router);
        let doc = document(&QueryConfig::default());
        let documented: BTreeSet<String> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|p| p.starts_with("/v1/"))
            .cloned()
            .collect();
        assert_eq!(documented, router);
        let ids: BTreeSet<&str> = TABLE.iter().map(|r| r.docs.operation_id).collect();
        assert_eq!(ids.len(), TABLE.iter().count(), "operation ids are unique");
    }

    #[test]
    fn answers_are_derived_from_the_view_structs() {
        let doc = document(&QueryConfig::default());
        let schemas = &doc["components"]["schemas"];
        let content = &schemas["Content"];
        assert_eq!(content["additionalProperties"], false);
        let required: BTreeSet<&str> = content["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let properties: BTreeSet<&str> = content["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // `rights` alone may be absent; every other field is always sent.
        assert_eq!(
            properties.difference(&required).collect::<Vec<_>>(),
            [&"rights"]
        );
        assert_eq!(content["properties"]["rights"]["type"], "array");
        assert_eq!(
            content["properties"]["kind"]["enum"],
            json!(["PROGRAMME", "SEASON", "EPISODE", "CLIP"])
        );
        assert_eq!(
            content["properties"]["available_until"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(
            content["properties"]["available_until"]["format"],
            "date-time"
        );
        assert_eq!(
            schemas["Order"]["properties"]["status"]["enum"],
            json!([
                "PLACED",
                "PAYMENT_FAILED",
                "PAYMENT_AUTHORIZED",
                "SHIPPED",
                "DELIVERED",
                "CANCELLED"
            ])
        );
        assert_eq!(
            schemas["Stock"]["properties"]["available"]["description"],
            "Units that can be sold now."
        );
        assert_eq!(
            schemas["ProgressPage"]["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/Progress"
        );
        let error = &schemas["ErrorDetail"];
        assert_eq!(error["required"], json!(["code", "message"]));
        assert_eq!(error["properties"]["field"]["type"], "string");
        // Every reference resolves.
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"").skip(1) {
            let target = &r[..r.find('"').unwrap()];
            let pointer = target.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "dangling {target}");
        }
    }

    #[test]
    fn limits_come_from_the_config() {
        let config = QueryConfig {
            default_limit: 7,
            max_limit: 33,
            max_batch_ids: 44,
            max_body_bytes: 5555,
            position_wait: Duration::from_millis(1234),
            ..QueryConfig::default()
        };
        let doc = document(&config);
        let list = &doc["paths"]["/v1/users/{user_id}/bookmarks"]["get"];
        let limit = &list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()["schema"];
        assert_eq!(
            (&limit["maximum"], &limit["default"]),
            (&json!(33), &json!(7))
        );
        let ids = &doc["components"]["schemas"]["BatchGetRequest"]["properties"]["ids"];
        assert_eq!(ids["maxItems"], 44);
        let batch = &doc["paths"]["/v1/catalog/contents:batchGet"]["post"];
        assert!(batch["responses"]["413"]["description"]
            .as_str()
            .unwrap()
            .contains("5555 bytes"));
        let position = batch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "X-Fleuve-Position")
            .unwrap();
        let text = position["description"].as_str().unwrap();
        assert!(text.contains("1234 ms"), "{text}");
        assert!(text.contains("`catalog` projection"), "{text}");
    }

    #[test]
    fn every_operation_says_who_may_call_it_and_documents_its_answers() {
        let doc = document(&QueryConfig::default());
        for route in TABLE.iter() {
            let op = &doc["paths"][route.path][route.method.openapi()];
            let description = op["description"].as_str().unwrap();
            assert!(
                description.contains("**Who may call it**"),
                "{}",
                route.path
            );
            let responses = op["responses"].as_object().unwrap();
            let statuses: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
            for status in ["200", "400", "401", "500", "503"] {
                assert!(statuses.contains(status), "{} {status}", route.path);
            }
            assert_eq!(
                statuses.contains("304"),
                route.method == Verb::Get,
                "{}",
                route.path
            );
            assert_eq!(
                statuses.contains("403"),
                route.access != Access::Open,
                "{}",
                route.path
            );
            // Every `/v1` route reads a projection, hence `unknown_snapshot`.
            assert!(route.snapshot_model().is_some(), "{}", route.path);
            assert!(statuses.contains("404"), "{}", route.path);
            for status in ["413", "415"] {
                assert_eq!(
                    statuses.contains(status),
                    route.shape == Shape::Batch,
                    "{} {status}",
                    route.path
                );
            }
            let unavailable = &responses["503"];
            for header in ["Retry-After", "X-Fleuve-Consistency"] {
                assert!(unavailable["headers"][header].is_object(), "{}", route.path);
            }
            let ok = &responses["200"]["headers"];
            assert!(ok["Cache-Control"].is_object());
            assert_eq!(ok["ETag"].is_object(), route.method == Verb::Get);
            assert_eq!(ok["Vary"].is_object(), route.access == Access::Open);
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert!(names.contains(&"X-Fleuve-Position"), "{}", route.path);
            assert!(names.contains(&"snapshot"), "{}", route.path);
            assert!(ok["X-Fleuve-Snapshot"].is_object(), "{}", route.path);
            for param in route.params {
                assert!(names.contains(&param.name), "{} {}", route.path, param.name);
            }
        }
        assert_eq!(
            doc["paths"]["/v1/orders/{order_id}"]["get"]["security"],
            json!([{"bearerAuth": ["user", "seller", "admin"]}])
        );
        assert_eq!(
            doc["paths"]["/v1/catalog/contents/{content_id}"]["get"]["security"],
            json!([{}, {"bearerAuth": []}])
        );
        for ops in ["/metrics", "/healthz", "/readyz", PATH] {
            assert_eq!(doc["paths"][ops]["get"]["security"], json!([]), "{ops}");
        }
        // `/readyz` refuses with the one error body, as every Fleuve service does.
        assert_eq!(
            doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]
                ["schema"],
            json!({"$ref": "#/components/schemas/Error"})
        );
    }
}

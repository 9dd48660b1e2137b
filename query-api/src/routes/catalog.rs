//! The catalog: `GET /v1/catalog/contents/{content_id}`,
//! `POST /v1/catalog/contents:batchGet`, `GET /v1/catalog/programs/{program_id}/episodes`.
//!
//! Every read evaluates availability at the request's instant, and shows what the caller's
//! [`CatalogView`] lets it see; every answer carries `Vary: Authorization`, since it depends
//! on the token.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::on;
use axum::Json;
use fleuve_projections::catalog::{
    self, ContentKind, DistributionRight, EpisodeEntry, PublishedContent,
};
use fleuve_service::ApiError;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::Value;

use super::ids::CONTENT_ID;
use crate::access::{Caller, ADMIN, PARTNER};
use crate::config::QueryConfig;
use crate::consistency::Positions;
use crate::failure::{store_error, Failure};
use crate::input::{check_id, page_request, path_error, quoted, validate_id, Params, MAX_ID_BYTES};
use crate::state::{AppState, Reading};
use crate::table::{Access, Cache, Declared, Docs, Param, Route, Shape, Tag, Verb};
use crate::views::{rfc3339_millis, rfc3339_millis_clamped, string_enum, ListView};

const TAG: Tag = Tag {
    name: "catalog",
    description: "Contents publishable now (open to anyone).",
};

/// `max-age` of catalog answers, in seconds.
const MAX_AGE_SECS: u32 = 10;

/// Added to the `snapshot` parameter of every catalog route.
const AS_OF: &str = "; availability is evaluated at the snapshot's instant";

pub(super) const ROUTES: &[Route] = &[
    Route {
        method: Verb::Get,
        path: "/v1/catalog/contents/{content_id}",
        reads: &[&catalog::MODEL],
        access: Access::Open,
        cache: Cache::PerCaller {
            max_age_secs: MAX_AGE_SECS,
        },
        shape: Shape::One,
        params: &[CONTENT_ID],
        answer: SchemaGenerator::subschema_for::<ContentView>,
        docs: Docs {
            operation_id: "getContent",
            tag: &TAG,
            summary: "One content publishable now",
            description: "Availability is evaluated at the instant of the request: a content \
                          that is unknown, unpublished, deleted or outside its availability \
                          window is a 404.",
            data: "the catalog",
            snapshot: AS_OF,
        },
        handler: |m| on(m, get_content),
    },
    Route {
        method: Verb::Post,
        // A literal `:` in the segment; axum 0.8 captures are `{…}`.
        path: "/v1/catalog/contents:batchGet",
        reads: &[&catalog::MODEL],
        access: Access::Open,
        cache: Cache::NoStore,
        shape: Shape::Batch,
        params: &[],
        answer: SchemaGenerator::subschema_for::<BatchView>,
        docs: Docs {
            operation_id: "batchGetContents",
            tag: &TAG,
            summary: "Several contents publishable now",
            description: "The `:` of the path is literal. The contents found are in `items`, \
                          the ids the caller cannot read now (unknown, unpublished, deleted, \
                          outside their window) in `missing`; both follow the order asked, and \
                          an id asked twice is answered once. Availability is evaluated at the \
                          instant of the request.",
            data: "the catalog",
            snapshot: AS_OF,
        },
        handler: |m| on(m, batch_get),
    },
    Route {
        method: Verb::Get,
        path: "/v1/catalog/programs/{program_id}/episodes",
        reads: &[&catalog::MODEL],
        access: Access::Open,
        cache: Cache::PerCaller {
            max_age_secs: MAX_AGE_SECS,
        },
        shape: Shape::List,
        params: &[Param {
            name: "program_id",
            description: "The programme's content id.",
        }],
        answer: SchemaGenerator::subschema_for::<ListView<EpisodeView>>,
        docs: Docs {
            operation_id: "listEpisodes",
            tag: &TAG,
            summary: "A programme's seasons, episodes and clips",
            description: "The programme's seasons, episodes and clips publishable now, in \
                          listing order. A page may hold fewer than `limit` entries, even none \
                          with a `next_cursor`: entries whose window closed since the catalog \
                          timer's last run and, for a partner, entries without its right are \
                          left out of their page. Follow `next_cursor` until it is `null`. A \
                          programme without entries has an empty list.",
            data: "the catalog",
            snapshot: AS_OF,
        },
        handler: |m| on(m, list_episodes),
    },
];

/// What part of the catalog a caller sees. The catalog is open: anonymous callers read it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CatalogView {
    /// Every publishable content, with every distribution right: [`ADMIN`], or
    /// authentication off.
    All,
    /// The publishable contents with a distribution right for this partner, with that
    /// right only: a [`PARTNER`] token without [`ADMIN`].
    Partner(String),
    /// Every publishable content, without distribution rights: anonymous callers and other
    /// tokens.
    Public,
}

impl CatalogView {
    fn of(caller: &Caller) -> Self {
        match caller {
            Caller::Open => CatalogView::All,
            Caller::Anonymous => CatalogView::Public,
            Caller::Token(c) if c.has_scope(ADMIN) => CatalogView::All,
            Caller::Token(c) if c.has_scope(PARTNER) => CatalogView::Partner(c.sub.clone()),
            Caller::Token(_) => CatalogView::Public,
        }
    }

    /// Whether the caller sees this (publishable) content.
    fn shows(&self, content: &PublishedContent) -> bool {
        match self {
            CatalogView::All | CatalogView::Public => true,
            CatalogView::Partner(p) => content.rights.iter().any(|r| &r.partner == p),
        }
    }

    /// The distribution rights of a content the caller sees; `None` when it sees none.
    fn rights<'c>(&self, content: &'c PublishedContent) -> Option<Vec<&'c DistributionRight>> {
        match self {
            CatalogView::All => Some(content.rights.iter().collect()),
            CatalogView::Partner(p) => {
                Some(content.rights.iter().filter(|r| &r.partner == p).collect())
            }
            CatalogView::Public => None,
        }
    }
}

/// The name fronts see for a kind (`EPISODE`).
fn kind_name(kind: ContentKind) -> &'static str {
    match kind {
        ContentKind::Programme => "PROGRAMME",
        ContentKind::Season => "SEASON",
        ContentKind::Episode => "EPISODE",
        ContentKind::Clip => "CLIP",
    }
}

/// Every kind, for the schema of `kind` (the names of [`kind_name`]).
const KINDS: [ContentKind; 4] = [
    ContentKind::Programme,
    ContentKind::Season,
    ContentKind::Episode,
    ContentKind::Clip,
];

/// The schema of a content kind.
fn kind_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(KINDS.map(kind_name))
}

/// A distribution right as its partner (or an admin) sees it.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "DistributionRight")]
struct RightView {
    /// The partner's id (the `sub` of its `partner` token).
    partner: String,
    /// ISO 3166-1 alpha-2 codes.
    territories: Vec<String>,
}

/// A content publishable now.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Content")]
pub(crate) struct ContentView {
    content_id: String,
    #[schemars(schema_with = "kind_schema")]
    kind: &'static str,
    /// The programme of a season, an episode or a clip.
    program_id: Option<String>,
    season_number: Option<i32>,
    episode_number: Option<i32>,
    title: String,
    description: Option<String>,
    tags: Vec<String>,
    /// Length, in milliseconds.
    duration_ms: Option<i64>,
    /// Start of the availability window (an instant before year 0000 is shown as
    /// 0000-01-01T00:00:00.000Z).
    #[schemars(extend("format" = "date-time"))]
    available_from: String,
    /// End of the availability window; `null` when open-ended (an instant after year 9999
    /// is shown as 9999-12-31T23:59:59.999Z).
    #[schemars(extend("format" = "date-time"))]
    available_until: Option<String>,
    /// Only for callers that may see rights: all of them for `admin` (and with
    /// authentication off), its own for a partner; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<RightView>")]
    rights: Option<Vec<RightView>>,
    /// Event time of the upsert that wrote this version.
    #[schemars(extend("format" = "date-time"))]
    updated_at: String,
}

impl ContentView {
    fn new(c: PublishedContent, view: &CatalogView) -> Result<Self, ApiError> {
        let rights = view.rights(&c).map(|rights| {
            rights
                .into_iter()
                .map(|r| RightView {
                    partner: r.partner.clone(),
                    territories: r.territories.clone(),
                })
                .collect()
        });
        Ok(Self {
            available_from: rfc3339_millis_clamped(c.available_from_ms)?,
            available_until: c
                .available_until_ms
                .map(rfc3339_millis_clamped)
                .transpose()?,
            updated_at: rfc3339_millis(c.updated_at_ms)?,
            rights,
            content_id: c.content_id,
            kind: kind_name(c.kind),
            program_id: c.program_id,
            season_number: c.season_number,
            episode_number: c.episode_number,
            title: c.title,
            description: c.description,
            tags: c.tags,
            duration_ms: c.duration_ms,
        })
    }
}

/// A season, an episode or a clip in a programme's listing.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "EpisodeEntry")]
pub(crate) struct EpisodeView {
    content_id: String,
    #[schemars(schema_with = "kind_schema")]
    kind: &'static str,
    season_number: Option<i32>,
    episode_number: Option<i32>,
    title: String,
    description: Option<String>,
    /// Length, in milliseconds.
    duration_ms: Option<i64>,
    /// Start of the availability window.
    #[schemars(extend("format" = "date-time"))]
    available_from: String,
    /// End of the availability window; `null` when open-ended.
    #[schemars(extend("format" = "date-time"))]
    available_until: Option<String>,
}

impl TryFrom<EpisodeEntry> for EpisodeView {
    type Error = ApiError;
    fn try_from(e: EpisodeEntry) -> Result<Self, ApiError> {
        Ok(Self {
            available_from: rfc3339_millis_clamped(e.available_from_ms)?,
            available_until: e
                .available_until_ms
                .map(rfc3339_millis_clamped)
                .transpose()?,
            content_id: e.content_id,
            kind: kind_name(e.kind),
            season_number: e.season_number,
            episode_number: e.episode_number,
            title: e.title,
            description: e.description,
            duration_ms: e.duration_ms,
        })
    }
}

/// The answer of a batch read.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "BatchGetResponse")]
pub(crate) struct BatchView {
    /// The contents found, in the order asked, each once.
    items: Vec<ContentView>,
    /// The ids asked for that the caller cannot read now, in the order asked, each once.
    missing: Vec<String>,
}

fn not_publishable(content_id: &str, view: &CatalogView) -> ApiError {
    let message = match view {
        CatalogView::Partner(p) => format!(
            "no content `{}` is available to partner `{}` now (unknown, not publishable now, or without a distribution right for this partner)",
            quoted(content_id),
            quoted(p)
        ),
        CatalogView::All | CatalogView::Public => format!(
            "no content `{}` is publishable now (unknown, unpublished, deleted, or outside its availability window)",
            quoted(content_id)
        ),
    };
    ApiError::not_found("not_found", message)
}

async fn get_content(
    caller: Caller,
    declared: Declared,
    reading: Reading,
    path: Result<Path<String>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<ContentView>, Failure> {
    let Path(content_id) = path.map_err(path_error)?;
    validate_id("content_id", &content_id)?;
    declared.allow(&caller, &content_id, "the catalog")?;
    params.check()?;
    positions.wait().await?;
    let view = CatalogView::of(&caller);
    let content = catalog::get(&*reading.store, &content_id, reading.now_ms())
        .await
        .map_err(store_error)?
        .filter(|c| view.shows(c));
    match content {
        Some(c) => Ok(Json(ContentView::new(c, &view)?)),
        None => Err(not_publishable(&content_id, &view).into()),
    }
}

fn invalid_body(message: String) -> ApiError {
    ApiError::bad_request("invalid_body", message)
}

/// A body that could not be read; over [`crate::QueryConfig::max_body_bytes`] it is a 413.
fn body_error(rejection: BytesRejection, config: &QueryConfig) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "request body is larger than {} bytes; send at most {} ids of at most {} bytes each",
                config.max_body_bytes,
                config.max_batch_ids,
                MAX_ID_BYTES
            ),
        )
    } else {
        invalid_body(format!(
            "could not read the request body: {}",
            rejection.body_text()
        ))
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The ids of a batch-read body, `{"ids":[…]}`: 1 to `max` valid ids.
fn parse_ids(body: &[u8], max: usize) -> Result<Vec<String>, ApiError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {e}; send {{\"ids\":[\"…\"]}}"),
        )
    })?;
    let Value::Object(fields) = doc else {
        return Err(invalid_body(format!(
            "the body must be a JSON object {{\"ids\":[\"…\"]}}, got {}",
            json_type(&doc)
        )));
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "ids") {
        return Err(invalid_body(format!(
            "unknown field `{}`; the body is {{\"ids\":[\"…\"]}}",
            quoted(unknown)
        ))
        .with_field(quoted(unknown)));
    }
    let ids = match fields.get("ids") {
        Some(Value::Array(ids)) => ids,
        Some(other) => {
            return Err(invalid_body(format!(
                "ids must be an array of content ids (strings), got {}",
                json_type(other)
            ))
            .with_field("ids"))
        }
        None => {
            return Err(invalid_body(format!(
                "ids is required: an array of 1 to {max} content ids"
            ))
            .with_field("ids"))
        }
    };
    if ids.is_empty() {
        return Err(invalid_body(format!(
            "ids must hold 1 to {max} content ids, got an empty array"
        ))
        .with_field("ids"));
    }
    if ids.len() > max {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "ids holds {} ids; at most {max} are accepted per request: split the batch",
                ids.len()
            ),
        )
        .with_field("ids"));
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let field = format!("ids[{i}]");
            match id {
                Value::String(id) => match check_id(&field, id) {
                    Ok(()) => Ok(id.clone()),
                    Err(message) => Err(invalid_body(message).with_field(field)),
                },
                other => Err(invalid_body(format!(
                    "{field} must be a content id (a string), got {}",
                    json_type(other)
                ))
                .with_field(field)),
            }
        })
        .collect()
}

#[expect(
    clippy::too_many_arguments,
    reason = "an axum handler takes one argument per extractor"
)]
async fn batch_get(
    caller: Caller,
    declared: Declared,
    State(state): State<AppState>,
    reading: Reading,
    params: Params,
    positions: Positions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchView>, Failure> {
    let max = state.config.max_batch_ids;
    declared.allow(&caller, "", "the catalog")?;
    params.check()?;
    fleuve_service::http::require_json(&headers).map_err(ApiError::from)?;
    let body = body.map_err(|r| body_error(r, &state.config))?;
    let ids = parse_ids(&body, max)?;
    positions.wait().await?;
    let view = CatalogView::of(&caller);
    let batch = catalog::get_many(&*reading.store, &ids, reading.now_ms())
        .await
        .map_err(store_error)?;
    let items: Vec<PublishedContent> = batch.items.into_iter().filter(|c| view.shows(c)).collect();
    let found: HashSet<&str> = items.iter().map(|c| c.content_id.as_str()).collect();
    let mut seen = HashSet::with_capacity(ids.len());
    let missing = ids
        .iter()
        .filter(|id| seen.insert(id.as_str()) && !found.contains(id.as_str()))
        .cloned()
        .collect();
    Ok(Json(BatchView {
        items: items
            .into_iter()
            .map(|c| ContentView::new(c, &view))
            .collect::<Result<_, _>>()?,
        missing,
    }))
}

async fn list_episodes(
    caller: Caller,
    declared: Declared,
    State(state): State<AppState>,
    reading: Reading,
    path: Result<Path<String>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<ListView<EpisodeView>>, Failure> {
    let Path(program_id) = path.map_err(path_error)?;
    validate_id("program_id", &program_id)?;
    declared.allow(&caller, &program_id, "the catalog")?;
    let page = page_request(params.check()?, &state.config)?;
    positions.wait().await?;
    let view = CatalogView::of(&caller);
    let now = reading.now_ms();
    let mut rows = catalog::list_episodes(&*reading.store, &program_id, &page, now)
        .await
        .map_err(store_error)?;
    if let CatalogView::Partner(_) = view {
        // The listing has no rights: read the page's contents (one store call) and keep
        // those with a right for the partner. The page may then hold fewer than `limit`.
        if !rows.items.is_empty() {
            let ids: Vec<String> = rows.items.iter().map(|e| e.content_id.clone()).collect();
            let batch = catalog::get_many(&*reading.store, &ids, now)
                .await
                .map_err(store_error)?;
            let allowed: HashSet<String> = batch
                .items
                .into_iter()
                .filter(|c| view.shows(c))
                .map(|c| c.content_id)
                .collect();
            rows.items.retain(|e| allowed.contains(&e.content_id));
        }
    }
    Ok(Json(ListView::try_from_page(rows, EpisodeView::try_from)?))
}

#[cfg(test)]
mod tests {

    use axum::http::HeaderValue;

    use super::*;
    use crate::access::token;
    use crate::access::USER;

    #[test]
    fn catalog_views() {
        assert_eq!(CatalogView::of(&Caller::Open), CatalogView::All);
        assert_eq!(CatalogView::of(&Caller::Anonymous), CatalogView::Public);
        assert_eq!(
            CatalogView::of(&token("p", &[PARTNER, ADMIN])),
            CatalogView::All
        );
        assert_eq!(
            CatalogView::of(&token("p", &[PARTNER, USER])),
            CatalogView::Partner("p".into())
        );
        assert_eq!(CatalogView::of(&token("u", &[USER])), CatalogView::Public);
    }

    #[test]
    fn batch_bodies() {
        assert_eq!(
            parse_ids(br#"{"ids":["a","b","a"]}"#, 3).unwrap(),
            ["a", "b", "a"]
        );
        let cases: [(&[u8], &str, Option<&str>, &str); 10] = [
            (b"not json", "invalid_json", None, "line 1"),
            (b"[]", "invalid_body", None, "got an array"),
            (br#"{}"#, "invalid_body", Some("ids"), "required"),
            (
                br#"{"ids":"a"}"#,
                "invalid_body",
                Some("ids"),
                "got a string",
            ),
            (br#"{"ids":[]}"#, "invalid_body", Some("ids"), "empty"),
            (
                br#"{"ids":["a","b","c","d"]}"#,
                "batch_too_large",
                Some("ids"),
                "at most 3",
            ),
            (
                br#"{"ids":["a",1]}"#,
                "invalid_body",
                Some("ids[1]"),
                "got a number",
            ),
            (
                br#"{"ids":["a",""]}"#,
                "invalid_body",
                Some("ids[1]"),
                "1 to 128 bytes",
            ),
            (
                br#"{"ids":["\u0000"]}"#,
                "invalid_body",
                Some("ids[0]"),
                "control",
            ),
            (
                br#"{"ids":["a"],"idz":[]}"#,
                "invalid_body",
                Some("idz"),
                "unknown field",
            ),
        ];
        for (body, code, field, needle) in cases {
            let e = parse_ids(body, 3).unwrap_err();
            let shown = String::from_utf8_lossy(body);
            assert_eq!(e.code, code, "{shown}: {e}");
            assert_eq!(e.field.as_deref(), field, "{shown}: {e}");
            assert!(e.message.contains(needle), "{shown}: {e}");
        }
    }

    #[test]
    fn content_types() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_str(ct).unwrap(),
            );
            fleuve_service::http::require_json(&h).map_err(ApiError::from)
        };
        with("application/json").unwrap();
        with("Application/JSON; charset=utf-8").unwrap();
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
            assert!(e.message.contains(bad), "{}", e.message);
        }
        let e = ApiError::from(fleuve_service::http::require_json(&HeaderMap::new()).unwrap_err());
        assert!(e.message.contains("(none)"), "{}", e.message);
    }
}

//! The Confluent-compatible REST API.

use std::sync::{Arc, PoisonError, RwLockReadGuard};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fleuve_schemas::text::quoted;
use fleuve_service::http::{self, track_requests, Missing};
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};

use crate::compatibility::CompatibilityLevel;
use crate::metrics::metrics;
use crate::record::{self, ParsedSchema, SchemaType};
use crate::state::{self, Applied, Refusal};
use crate::Inner;

/// Content type of every response, as Confluent's.
pub(crate) const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types accepted (besides none at all).
const ACCEPTED_CONTENT_TYPES: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

pub(crate) fn routes(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(get_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(get_schema_usages))
        .route("/schemas/types", get(schema_types))
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .fallback(not_found)
        .with_state(inner)
        .layer(middleware::from_fn_with_state(
            metrics().requests.clone(),
            track_requests,
        ))
}

/// An error in Confluent's shape: `{"error_code": 40401, "message": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrError {
    status: StatusCode,
    error_code: u32,
    message: String,
}

impl SrError {
    fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }

    fn subject_not_found(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    fn version_not_found(version: u32) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        )
    }

    fn schema_not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, 40403, message)
    }

    fn invalid_schema(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {reason}"),
        )
    }

    fn invalid_version(version: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    fn invalid_level(raw: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!(
                "Invalid compatibility level '{raw}'. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
            ),
        )
    }

    fn no_subject_level(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }

    fn incompatible(subject: &str, reasons: &[String]) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                reasons.join(", ")
            ),
        )
    }

    fn refused(subject: &str, refusal: &Refusal) -> Self {
        let not_found = StatusCode::NOT_FOUND;
        match refusal {
            Refusal::SubjectNotFound => Self::subject_not_found(subject),
            Refusal::VersionNotFound(v) => Self::version_not_found(*v),
            Refusal::SubjectSoftDeleted => Self::new(
                not_found,
                40404,
                format!("Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"),
            ),
            Refusal::SubjectNotSoftDeleted => Self::new(
                not_found,
                40405,
                format!("Subject '{subject}' was not deleted first before being permanently deleted"),
            ),
            Refusal::VersionSoftDeleted(v) => Self::new(
                not_found,
                40406,
                format!("Subject '{subject}' Version {v} was soft deleted.Set permanent=true to delete permanently"),
            ),
            Refusal::VersionNotSoftDeleted(v) => Self::new(
                not_found,
                40407,
                format!("Subject '{subject}' Version {v} was not deleted first before being permanently deleted"),
            ),
        }
    }

    fn malformed(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            422,
            format!("Unprocessable entity: {reason}"),
        )
    }

    fn store(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            format!("Error in the backend data store: {reason}"),
        )
    }

    fn timeout(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50002,
            format!("Operation timed out: {reason}"),
        )
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error_code: u32,
    message: &'a str,
}

impl IntoResponse for SrError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            &ErrorBody {
                error_code: self.error_code,
                message: &self.message,
            },
        )
    }
}

type ApiResult = Result<Response, SrError>;

fn reply<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => raw_reply(status, bytes),
        Err(e) => raw_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(r#"{{"error_code":50001,"message":"could not encode the response: {e}"}}"#)
                .into_bytes(),
        ),
    }
}

fn raw_reply(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

fn ok<T: Serialize + ?Sized>(body: &T) -> ApiResult {
    Ok(reply(StatusCode::OK, body))
}

fn read(inner: &Inner) -> RwLockReadGuard<'_, state::State> {
    inner.state.read().unwrap_or_else(PoisonError::into_inner)
}

async fn not_found() -> SrError {
    SrError::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
}

async fn root() -> ApiResult {
    ok(&serde_json::json!({}))
}

async fn schema_types() -> ApiResult {
    ok(&["AVRO"])
}

/// Is the boolean query parameter `name` set to `true` (`?deleted=true`)?
fn flag(query: Option<&str>, name: &str) -> bool {
    query.unwrap_or_default().split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == name && value.eq_ignore_ascii_case("true")
    })
}

async fn list_subjects(State(inner): State<Arc<Inner>>, RawQuery(query): RawQuery) -> ApiResult {
    ok(&read(&inner).subject_names(flag(query.as_deref(), "deleted")))
}

async fn list_versions(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let deleted = flag(query.as_deref(), "deleted");
    let state = read(&inner);
    let s = state
        .visible_subject(&subject, deleted)
        .ok_or_else(|| SrError::subject_not_found(&subject))?;
    ok(&s.versions(deleted).collect::<Vec<_>>())
}

/// `{version}` of a URL: a number in `[1, 2^31-1]`, `latest` or `-1`.
#[derive(Debug, Clone, Copy)]
enum VersionRef {
    Latest,
    Number(u32),
}

impl VersionRef {
    fn parse(raw: &str) -> Result<Self, SrError> {
        if raw == "latest" || raw == "-1" {
            return Ok(VersionRef::Latest);
        }
        match raw.parse::<i32>() {
            Ok(v) if v >= 1 => Ok(VersionRef::Number(v.unsigned_abs())),
            _ => Err(SrError::invalid_version(raw)),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionBody<'a> {
    subject: &'a str,
    version: u32,
    id: u32,
    /// Omitted for Avro, like Confluent.
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_type: Option<&'static str>,
    schema: &'a str,
}

fn schema_type_field(t: SchemaType) -> Option<&'static str> {
    match t {
        SchemaType::Avro => None,
    }
}

/// Resolves `(subject, version)` to `(version, schema)`; soft-deleted versions only with
/// `deleted`.
fn resolve<'s>(
    state: &'s state::State,
    subject: &str,
    version: VersionRef,
    deleted: bool,
) -> Result<(u32, &'s state::StoredSchema), SrError> {
    let s = state
        .visible_subject(subject, deleted)
        .ok_or_else(|| SrError::subject_not_found(subject))?;
    let (version, id) = match version {
        VersionRef::Latest => s.latest(deleted),
        VersionRef::Number(v) => s.id_of(v, deleted).map(|id| (v, id)),
    }
    .ok_or_else(|| match version {
        VersionRef::Number(v) => SrError::version_not_found(v),
        VersionRef::Latest => SrError::subject_not_found(subject),
    })?;
    let schema = state
        .schema(id)
        .ok_or_else(|| SrError::store(format!("schema {id} of a version is missing")))?;
    Ok((version, schema))
}

async fn get_version(
    State(inner): State<Arc<Inner>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let version = VersionRef::parse(&version)?;
    let state = read(&inner);
    let (version, schema) = resolve(&state, &subject, version, flag(query.as_deref(), "deleted"))?;
    ok(&VersionBody {
        subject: &subject,
        version,
        id: schema.id,
        schema_type: schema_type_field(schema.schema_type),
        schema: &schema.text,
    })
}

async fn get_version_schema(
    State(inner): State<Arc<Inner>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let version = VersionRef::parse(&version)?;
    let state = read(&inner);
    let (_, schema) = resolve(&state, &subject, version, flag(query.as_deref(), "deleted"))?;
    Ok(raw_reply(StatusCode::OK, schema.text.as_bytes().to_vec()))
}

fn parse_id(raw: &str) -> Result<u32, SrError> {
    raw.parse::<u32>()
        .map_err(|_| SrError::schema_not_found(format!("Schema {raw} not found")))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_type: Option<&'static str>,
    schema: &'a str,
}

/// A schema by id: answered while some version (even soft-deleted) of some subject uses it.
async fn get_schema_by_id(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let state = read(&inner);
    let schema = state
        .schema(id)
        .ok_or_else(|| SrError::schema_not_found(format!("Schema {id} not found")))?;
    ok(&SchemaBody {
        schema_type: schema_type_field(schema.schema_type),
        schema: &schema.text,
    })
}

#[derive(Serialize)]
struct SubjectVersion {
    subject: String,
    version: u32,
}

async fn get_schema_usages(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let id = parse_id(&id)?;
    let state = read(&inner);
    if state.schema(id).is_none() {
        return Err(SrError::schema_not_found(format!("Schema {id} not found")));
    }
    let usages: Vec<SubjectVersion> = state
        .usages(id, flag(query.as_deref(), "deleted"))
        .into_iter()
        .map(|(subject, version)| SubjectVersion { subject, version })
        .collect();
    ok(&usages)
}

/// Body of a registration or lookup. Unknown fields (`metadata`, `ruleSet`, …) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<serde_json::Value>>,
}

/// Refuses a request body sent with a content type the registry does not accept.
fn check_content_type(headers: &HeaderMap) -> Result<(), SrError> {
    http::check_content_type(headers, &ACCEPTED_CONTENT_TYPES, Missing::Accepted).map_err(|e| {
        SrError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            format!(
                "Unsupported content type '{}'; send {}",
                quoted(&e.essence),
                ACCEPTED_CONTENT_TYPES.join(", ")
            ),
        )
    })
}

/// Reads and validates a registration/lookup body into a parsed schema.
fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<ParsedSchema, SrError> {
    check_content_type(headers)?;
    let request: SchemaRequest = serde_json::from_slice(body).map_err(SrError::malformed)?;
    let schema_type = SchemaType::from_request(request.schema_type.as_deref())
        .map_err(SrError::invalid_schema)?;
    if request.references.is_some_and(|r| !r.is_empty()) {
        return Err(SrError::invalid_schema(
            "references are not supported by this registry; inline the referenced types",
        ));
    }
    match schema_type {
        SchemaType::Avro => ParsedSchema::avro(&request.schema).map_err(SrError::invalid_schema),
    }
}

/// Writes a record to the log and waits until the local reader has folded it; returns what
/// the fold did with it.
async fn write_and_fold(
    inner: &Inner,
    subject: Option<&str>,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<Applied, SrError> {
    let subject = subject.unwrap_or("(global)");
    let mut record = FutureRecord::to(&inner.topic).partition(0).key(key);
    if let Some(value) = value {
        record = record.payload(value);
    }
    let delivery = inner
        .producer
        .send(record, inner.delivery_timeout)
        .await
        .map_err(|(error, _)| {
            tracing::warn!(topic = %inner.topic, subject, %error, "could not write to the schemas topic");
            SrError::store(format!(
                "could not write to topic '{}': {error}; retry later",
                inner.topic
            ))
        })?;
    let offset = delivery.offset;
    tracing::info!(topic = %inner.topic, partition = delivery.partition, offset, subject, "record written");
    let mut folded = inner.folded.clone();
    match tokio::time::timeout(inner.register_timeout, folded.wait_for(|f| *f >= offset)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => {
            return Err(SrError::store(
                "the reader of the schemas topic has stopped; restart the registry",
            ))
        }
        Err(_) => {
            return Err(SrError::timeout(format!(
                "the record was written at offset {offset} of '{}' but not read back within {:.1}s; retry the request",
                inner.topic,
                inner.register_timeout.as_secs_f32()
            )))
        }
    }
    read(inner).outcome(offset).cloned().ok_or_else(|| {
        SrError::store(format!(
            "the record at offset {offset} was read back but not applied; see the registry logs"
        ))
    })
}

/// The answer for a fold outcome the handler did not expect.
fn unexpected(applied: &Applied) -> SrError {
    tracing::error!(
        ?applied,
        "a record written by this handler was folded unexpectedly"
    );
    SrError::store("the record was folded with an unexpected outcome; see the registry logs")
}

#[derive(Serialize)]
struct IdBody {
    id: u32,
}

/// Registers a schema: answers at once if the subject has it, refuses it (409) if it is
/// incompatible with the subject's live versions under the subject's level, else writes it
/// with that level and answers what the fold made of it (which may be a 409 too, when a
/// racing registration got in first).
async fn register(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let schema = parse_request(&headers, &body)?;
    let level = {
        let state = read(&inner);
        if let Some((_, id)) = state.lookup(&subject, &schema.canonical, false) {
            return ok(&IdBody { id });
        }
        let level = state.effective_level(&subject);
        state
            .check_registration(&subject, &schema.schema, level)
            .map_err(|reasons| SrError::incompatible(&subject, &reasons))?;
        level
    };
    let (key, value) = record::encode_registration(&subject, &schema, level);
    match write_and_fold(&inner, Some(&subject), &key, Some(&value)).await? {
        Applied::Registered { id, .. } | Applied::AlreadyRegistered { id, .. } => {
            ok(&IdBody { id })
        }
        Applied::Incompatible { reasons, .. } => Err(SrError::incompatible(&subject, &reasons)),
        Applied::IdOutOfRange => Err(SrError::store(format!(
            "topic '{}' is past offset 2^31-1: no schema id is left",
            inner.topic
        ))),
        other => Err(unexpected(&other)),
    }
}

async fn lookup(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let deleted = flag(query.as_deref(), "deleted");
    let schema = parse_request(&headers, &body)?;
    let state = read(&inner);
    if state.visible_subject(&subject, deleted).is_none() {
        return Err(SrError::subject_not_found(&subject));
    }
    let (version, id) = state
        .lookup(&subject, &schema.canonical, deleted)
        .ok_or_else(|| SrError::schema_not_found("Schema not found"))?;
    let stored = state
        .schema(id)
        .ok_or_else(|| SrError::store(format!("schema {id} of a version is missing")))?;
    ok(&VersionBody {
        subject: &subject,
        version,
        id,
        schema_type: schema_type_field(stored.schema_type),
        schema: &stored.text,
    })
}

/// Writes a delete (after checking the state allows it) and answers the versions deleted.
async fn delete(
    inner: &Inner,
    subject: &str,
    version: Option<u32>,
    permanent: bool,
) -> Result<Vec<u32>, SrError> {
    if let Some(refusal) = read(inner).delete_refusal(subject, version, permanent) {
        return Err(SrError::refused(subject, &refusal));
    }
    let (key, value) = match version {
        None => record::encode_delete_subject(subject, permanent),
        Some(version) => record::encode_delete_version(subject, version, permanent),
    };
    match write_and_fold(inner, Some(subject), &key, Some(&value)).await? {
        Applied::Deleted { versions, .. } => Ok(versions),
        Applied::Refused { refusal, .. } => Err(SrError::refused(subject, &refusal)),
        other => Err(unexpected(&other)),
    }
}

/// `DELETE /subjects/{subject}[?permanent=true]` → the versions deleted.
async fn delete_subject(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let permanent = flag(query.as_deref(), "permanent");
    ok(&delete(&inner, &subject, None, permanent).await?)
}

/// `DELETE /subjects/{subject}/versions/{version}[?permanent=true]` → the version deleted.
/// `latest` is the latest live version for a soft delete, the latest of all for a permanent
/// one.
async fn delete_version(
    State(inner): State<Arc<Inner>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let permanent = flag(query.as_deref(), "permanent");
    let version = match VersionRef::parse(&version)? {
        VersionRef::Number(v) => v,
        VersionRef::Latest => read(&inner)
            .visible_subject(&subject, permanent)
            .and_then(|s| s.latest(permanent))
            .map(|(v, _)| v)
            .ok_or_else(|| SrError::subject_not_found(&subject))?,
    };
    let deleted = delete(&inner, &subject, Some(version), permanent).await?;
    ok(&deleted.first().copied().unwrap_or(version))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LevelBody {
    compatibility_level: CompatibilityLevel,
}

#[derive(Serialize)]
struct UpdatedLevelBody {
    compatibility: CompatibilityLevel,
}

/// Body of `PUT /config[/{subject}]`. Other fields (`normalize`, …) are ignored.
#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
}

async fn get_global_config(State(inner): State<Arc<Inner>>) -> ApiResult {
    ok(&LevelBody {
        compatibility_level: read(&inner).global_level(),
    })
}

async fn get_subject_config(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let state = read(&inner);
    let level = match state.subject_level(&subject) {
        Some(level) => level,
        None if flag(query.as_deref(), "defaultToGlobal") => state.global_level(),
        None => return Err(SrError::no_subject_level(&subject)),
    };
    ok(&LevelBody {
        compatibility_level: level,
    })
}

/// Writes a level (`None`: removes the subject's) and waits until it is folded.
async fn write_level(
    inner: &Inner,
    subject: Option<&str>,
    level: Option<CompatibilityLevel>,
) -> Result<(), SrError> {
    let (key, value) = record::encode_config(subject, level);
    match write_and_fold(inner, subject, &key, value.as_deref()).await? {
        Applied::Config { .. } => Ok(()),
        other => Err(unexpected(&other)),
    }
}

fn parse_level(headers: &HeaderMap, body: &[u8]) -> Result<CompatibilityLevel, SrError> {
    check_content_type(headers)?;
    let request: ConfigRequest = serde_json::from_slice(body).map_err(SrError::malformed)?;
    let raw = request.compatibility.unwrap_or_default();
    raw.parse().map_err(|_| SrError::invalid_level(&raw))
}

async fn put_global_config(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let level = parse_level(&headers, &body)?;
    write_level(&inner, None, Some(level)).await?;
    ok(&UpdatedLevelBody {
        compatibility: level,
    })
}

async fn put_subject_config(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let level = parse_level(&headers, &body)?;
    write_level(&inner, Some(&subject), Some(level)).await?;
    ok(&UpdatedLevelBody {
        compatibility: level,
    })
}

/// Removes a subject's level (it then follows the global one); answers the removed level.
async fn delete_subject_config(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
) -> ApiResult {
    let previous = read(&inner)
        .subject_level(&subject)
        .ok_or_else(|| SrError::no_subject_level(&subject))?;
    write_level(&inner, Some(&subject), None).await?;
    ok(&LevelBody {
        compatibility_level: previous,
    })
}

#[derive(Serialize)]
struct CompatibilityBody {
    is_compatible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<String>>,
}

fn compatibility_answer(outcome: Result<(), Vec<String>>, verbose: bool) -> ApiResult {
    let (is_compatible, messages) = match outcome {
        Ok(()) => (true, Vec::new()),
        Err(reasons) => (false, reasons),
    };
    ok(&CompatibilityBody {
        is_compatible,
        messages: verbose.then_some(messages),
    })
}

/// `POST /compatibility/subjects/{subject}/versions/{version}`: is the schema compatible
/// with that version, under the directions of the subject's level?
async fn check_against_version(
    State(inner): State<Arc<Inner>>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let version = VersionRef::parse(&version)?;
    let schema = parse_request(&headers, &body)?;
    let state = read(&inner);
    let (version, stored) = resolve(&state, &subject, version, false)?;
    let level = state.effective_level(&subject).non_transitive();
    let outcome = crate::compatibility::check_versions(
        level,
        &schema.schema,
        &[(version, stored.parsed.schema.as_ref())],
    );
    compatibility_answer(outcome, flag(query.as_deref(), "verbose"))
}

/// `POST /compatibility/subjects/{subject}/versions`: would the registration pass (every
/// live version the subject's level asks for; a subject without versions accepts anything)?
async fn check_against_all(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let schema = parse_request(&headers, &body)?;
    let state = read(&inner);
    let level = state.effective_level(&subject);
    let outcome = state.check_registration(&subject, &schema.schema, level);
    compatibility_answer(outcome, flag(query.as_deref(), "verbose"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::RwLock;
    use std::time::Duration;

    use fleuve_kafka::topics::{ensure_topics, schemas_topic, SCHEMAS};
    use fleuve_kafka::KafkaConfig;
    use rdkafka::mocking::MockCluster;
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// A registration whose record is written but never read back answers 50002.
    /// (A replica whose reader stalls; built by hand because a real reader cannot be
    /// stalled deterministically.)
    #[tokio::test]
    async fn a_write_not_read_back_in_time_is_a_50002() {
        let cluster = MockCluster::new(1).unwrap();
        let kafka = KafkaConfig::new(cluster.bootstrap_servers());
        // The mock broker does not answer CreateTopics: create the topic on the mock itself.
        cluster.create_topic(SCHEMAS, 1, 1).unwrap();
        ensure_topics(&kafka, &[schemas_topic()]).await.unwrap();
        let (_folded_tx, folded) = watch::channel(crate::reader::NOTHING_FOLDED);
        let (_caught_up_tx, caught_up) = watch::channel(true);
        let inner = Arc::new(Inner {
            topic: schemas_topic().name,
            producer: kafka.producer_config().create().unwrap(),
            delivery_timeout: Duration::from_secs(10),
            register_timeout: Duration::from_millis(300),
            state: Arc::new(RwLock::new(state::State::default())),
            folded,
            caught_up,
            alive: Arc::new(AtomicBool::new(true)),
            cancel: CancellationToken::new(),
            reader: tokio::sync::Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes(inner)).await });
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/subjects/s/versions"))
            .json(&serde_json::json!({"schema": "\"string\""}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error_code"], 50002, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("offset 0"),
            "{body}"
        );
    }
}

//! The Confluent-compatible REST API.

use std::sync::{Arc, PoisonError, RwLockReadGuard};

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};

use crate::metrics::metrics;
use crate::record::{self, ParsedSchema, SchemaType};
use crate::state;
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
        .route("/subjects/{subject}", post(lookup))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(get_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(get_schema_usages))
        .route("/schemas/types", get(schema_types))
        .fallback(not_found)
        .with_state(inner)
        .layer(middleware::from_fn(count_requests))
}

/// Counts requests by route template (never the raw path) and status code.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics()
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
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

async fn list_subjects(State(inner): State<Arc<Inner>>) -> ApiResult {
    ok(&read(&inner).subject_names())
}

async fn list_versions(State(inner): State<Arc<Inner>>, Path(subject): Path<String>) -> ApiResult {
    let state = read(&inner);
    let s = state
        .subject(&subject)
        .ok_or_else(|| SrError::subject_not_found(&subject))?;
    ok(&s.versions().collect::<Vec<_>>())
}

/// `{version}` of a URL: a number in `[1, 2^31-1]`, `latest` or `-1`.
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

/// Resolves `(subject, version)` to `(version, schema)`.
fn resolve<'s>(
    state: &'s state::State,
    subject: &str,
    version: &str,
) -> Result<(u32, &'s state::StoredSchema), SrError> {
    let version = VersionRef::parse(version)?;
    let s = state
        .subject(subject)
        .ok_or_else(|| SrError::subject_not_found(subject))?;
    let (version, id) = match version {
        VersionRef::Latest => s.latest(),
        VersionRef::Number(v) => s.id_of(v).map(|id| (v, id)),
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
) -> ApiResult {
    let state = read(&inner);
    let (version, schema) = resolve(&state, &subject, &version)?;
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
) -> ApiResult {
    let state = read(&inner);
    let (_, schema) = resolve(&state, &subject, &version)?;
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

async fn get_schema_usages(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let state = read(&inner);
    if state.schema(id).is_none() {
        return Err(SrError::schema_not_found(format!("Schema {id} not found")));
    }
    let usages: Vec<SubjectVersion> = state
        .usages(id)
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

/// Reads and validates a registration/lookup body into a parsed schema.
fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<ParsedSchema, SrError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let essence = ct
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !ACCEPTED_CONTENT_TYPES.contains(&essence.as_str()) {
            return Err(SrError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                415,
                format!(
                    "Unsupported content type '{essence}'; send {}",
                    ACCEPTED_CONTENT_TYPES.join(", ")
                ),
            ));
        }
    }
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

#[derive(Serialize)]
struct IdBody {
    id: u32,
}

async fn register(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let schema = parse_request(&headers, &body)?;
    if let Some((_, id)) = read(&inner).lookup(&subject, &schema.canonical) {
        return ok(&IdBody { id });
    }
    let (key, value) = record::encode_registration(&subject, &schema);
    let delivery = inner
        .producer
        .send(
            FutureRecord::to(&inner.topic)
                .partition(0)
                .key(&key)
                .payload(&value),
            inner.delivery_timeout,
        )
        .await
        .map_err(|(error, _)| {
            tracing::warn!(topic = %inner.topic, %subject, %error, "could not write a registration");
            SrError::store(format!(
                "could not write to topic '{}': {error}; retry later",
                inner.topic
            ))
        })?;
    let offset = delivery.offset;
    tracing::info!(topic = %inner.topic, partition = delivery.partition, offset, %subject, "registration written");
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
                "the registration was written at offset {offset} of '{}' but not read back within {:.1}s; retry the request",
                inner.topic,
                inner.register_timeout.as_secs_f32()
            )))
        }
    }
    let state = read(&inner);
    let (_, id) = state.lookup(&subject, &schema.canonical).ok_or_else(|| {
        SrError::store(format!(
            "the registration at offset {offset} was read back but not applied; see the registry logs"
        ))
    })?;
    ok(&IdBody { id })
}

async fn lookup(
    State(inner): State<Arc<Inner>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let schema = parse_request(&headers, &body)?;
    let state = read(&inner);
    if state.subject(&subject).is_none() {
        return Err(SrError::subject_not_found(&subject));
    }
    let (version, id) = state
        .lookup(&subject, &schema.canonical)
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

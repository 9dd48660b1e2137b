//! The HTTP ingest service: JSON in, Avro on Kafka.
//!
//! # Routes
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/events/{EventType}` | publish one event |
//! | `POST /v1/events:batch` | publish several events of any types, all validated first |
//! | `GET /openapi.json` | the OpenAPI 3.1 document, generated from the event catalogue |
//! | `GET /metrics`, `/healthz`, `/readyz` | operations |
//!
//! ## One event
//!
//! `POST /v1/events/{EventType}` with a JSON object of the event's fields
//! (`Content-Type: application/json`). `event_id`, `occurred_at` (integer milliseconds or an
//! RFC 3339 string) and `producer` may be left out: the service assigns a UUID, the current
//! time and `http-ingest`. The answer is `202 Accepted` once the event is durably in Kafka
//! (`acks=all`):
//!
//! ```json
//! {"event_id":"…","topic":"user-activity","partition":0,"offset":41,"position":"<token>"}
//! ```
//!
//! `position` is the token a front hands to the query API for read-your-writes.
//!
//! ## A batch
//!
//! `POST /v1/events:batch` with `{"events":[{"type":"PlaybackProgressed","data":{…}}, …]}`,
//! `data` being what the single route takes. Every event is prepared exactly as by the single
//! route (same function) before anything is published. If any is invalid the answer is 400
//! and nothing is produced:
//!
//! ```json
//! {"error":{"code":"invalid_batch","message":"2 of 5 events are invalid; nothing was published"},
//!  "items":[{"index":1,"error":{"code":"invalid_event","message":"…","field":"position_ms"}},
//!           {"index":3,"error":{"code":"unknown_event_type","message":"…"}}]}
//! ```
//!
//! (an item's error is the one the single route would give for that event; `field` is
//! relative to its `data`). Otherwise the events are published concurrently, except that
//! events with the same topic and key are produced one after the other in batch order; once
//! one of them fails the later ones are not attempted. The answer lists every event in input
//! order — `{"index","status":202,"event_id","topic","partition","offset","position"}` or
//! `{"index","status":503,"event_id","error":{…}}` — with HTTP 202 when all were accepted,
//! 207 when some failed, and the failures' status (503 with `Retry-After`) when all failed.
//! Retry failed events in order with the same `event_id`.
//!
//! [`start`] runs it (producer, API, broker readiness check, flush at shutdown) as
//! `fleuve ingest` does; [`router`] is the API alone.
//!
//! # Limits ([`IngestConfig`])
//!
//! | setting | default | beyond it |
//! | --- | --- | --- |
//! | `max_body_bytes` | 64 KiB | 413 `payload_too_large` (single route) |
//! | `max_batch_bytes` | 1 MiB | 413 `payload_too_large` (batch route) |
//! | `max_batch_events` | 500 | 400 `batch_too_large` |
//! | `max_in_flight` | 1024 `/v1` requests at once | 429 `overloaded`, `Retry-After: 1`, at once |
//!
//! # Errors
//!
//! Errors use the body `{"error":{"code","message","field"?}}`:
//!
//! | status | code | when |
//! | --- | --- | --- |
//! | 400 | `invalid_json` | the body is not JSON (or not UTF-8), with line and column |
//! | 400 | `invalid_event` | a field breaks the schema or a rule; `field` names it |
//! | 400 | `invalid_batch` | not `{"events":[…]}` (`field` names the spot, like `events[3].type`), an empty list, or invalid events (listed in `items`) |
//! | 400 | `batch_too_large` | more events than `max_batch_events` |
//! | 401 | `unauthorized`, `invalid_token` | no bearer token, or not a valid one (when `auth` is set; see [`fleuve_service::auth`]) |
//! | 403 | `forbidden` | the token lacks the `events:write` scope |
//! | 404 | `unknown_event_type` | no such event type (the message lists the known ones) |
//! | 413 | `payload_too_large` | the body is over the limit |
//! | 415 | `unsupported_media_type` | the content type is not `application/json` |
//! | 429 | `overloaded` | `max_in_flight` requests are being handled; retry after `Retry-After` |
//! | 500 | `publish_failed` | Kafka refused the event for a reason a retry will not fix |
//! | 503 | `broker_unavailable`, `registry_unavailable` | retry after `Retry-After` seconds |
//!
//! An error means nothing was produced for the request.

mod batch;
mod limit;
mod metrics;
mod openapi;
mod service;

pub use openapi::document as openapi_document;
pub use service::{start, ServiceConfig, StartError};

use std::sync::Arc;
use std::time::Instant;

use apache_avro::types::Value;
use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleuve_schemas::text::quoted;
use fleuve_schemas::{json, Envelope, EventError, EventSpec};
use fleuve_service::{ops_routes, ApiError, Readiness};
use serde::Serialize;
use serde_json::{Map, Value as JsonValue};

use crate::{PublishError, Published, Publisher};

/// Settings of the ingest service.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// `producer` written in events that do not name one.
    pub default_producer: String,
    /// Most events in one `POST /v1/events:batch` (400 `batch_too_large` beyond).
    pub max_batch_events: usize,
    /// Largest accepted batch body, in bytes (413 `payload_too_large` beyond).
    pub max_batch_bytes: usize,
    /// Most `/v1` requests handled at once (429 `overloaded` beyond).
    pub max_in_flight: usize,
    /// Bearer-token check of the `/v1` routes (scope `events:write`); see
    /// [`fleuve_service::auth`]. `None` = no authentication: only for tests and an explicit
    /// development opt-out.
    pub auth: Option<fleuve_service::auth::Authenticator>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            default_producer: "http-ingest".to_owned(),
            max_batch_events: 500,
            max_batch_bytes: 1024 * 1024,
            max_in_flight: 1024,
            auth: None,
        }
    }
}

#[derive(Debug)]
struct AppState {
    publisher: Publisher,
    config: IngestConfig,
}

/// The 202 body.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub event_id: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub position: String,
}

/// The ingest service's routes, with `/metrics`, `/healthz` and `/readyz`.
pub fn router(publisher: Publisher, config: IngestConfig, readiness: Arc<dyn Readiness>) -> Router {
    let in_flight = limit::InFlight::new(config.max_in_flight);
    let openapi = openapi_body(&config);
    let auth = config.auth.clone();
    let state = Arc::new(AppState { publisher, config });
    Router::new()
        .route("/v1/events/{event_type}", post(publish))
        .route("/v1/events:batch", post(batch::publish_batch))
        .route_layer(axum::middleware::from_fn_with_state(
            in_flight,
            limit::enforce,
        ))
        // Routes declared above need a token with `events:write` (when `auth` is set), checked
        // before the in-flight limit. Declare new /v1 routes above this line; routes below are open.
        .route_layer(fleuve_service::auth::optional_layer(auth, "events:write"))
        .route(
            "/openapi.json",
            get(move || {
                let body = openapi.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .with_state(state)
        .fallback(|| async {
            ApiError::not_found(
                "not_found",
                "no such route; events are posted to /v1/events/{EventType}",
            )
        })
        .merge(ops_routes(readiness))
        .layer(axum::middleware::from_fn_with_state(
            metrics::REQUESTS.clone(),
            fleuve_service::http::track_requests,
        ))
}

async fn publish(
    State(state): State<Arc<AppState>>,
    Path(event_type): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let spec = find_spec(&event_type)?;
    fleuve_service::http::require_json(request.headers())?;
    let body = read_body(request.into_body(), state.config.max_body_bytes).await?;
    let doc: JsonValue = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let JsonValue::Object(fields) = doc else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body must be a JSON object of the event's fields",
        ));
    };
    let event = prepare(spec, fields, &state.config.default_producer)?;
    let published = publish_prepared(&state.publisher, event).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted::from(published))))
}

impl From<Published> for Accepted {
    fn from(published: Published) -> Self {
        Self {
            event_id: published.event_id,
            position: published.position.token(),
            topic: published.position.topic,
            partition: published.position.partition,
            offset: published.position.offset,
        }
    }
}

/// Envelope fields the service fills when a request leaves them out.
const ENVELOPE_DEFAULTS: [&str; 3] = ["event_id", "occurred_at", "producer"];

/// An event checked against its schema and its type's rules, envelope filled: ready to go.
#[derive(Debug)]
struct Prepared {
    spec: &'static EventSpec,
    key: String,
    envelope: Envelope,
    value: Value,
}

/// The event type named `event_type`, or 404 `unknown_event_type`.
fn find_spec(event_type: &str) -> Result<&'static EventSpec, ApiError> {
    fleuve_schemas::find(event_type).ok_or_else(|| {
        let known: Vec<&str> = fleuve_schemas::catalog().iter().map(|s| s.name).collect();
        ApiError::not_found(
            "unknown_event_type",
            format!(
                "unknown event type `{}`; known types: {}",
                quoted(event_type),
                known.join(", ")
            ),
        )
    })
}

/// The per-event steps of both routes: fills the envelope defaults ([`ENVELOPE_DEFAULTS`]),
/// converts the fields to Avro against the schema and applies the type's rules.
fn prepare(
    spec: &'static EventSpec,
    mut fields: Map<String, JsonValue>,
    default_producer: &str,
) -> Result<Prepared, ApiError> {
    fields
        .entry("event_id")
        .or_insert_with(|| JsonValue::String(uuid::Uuid::new_v4().to_string()));
    fields
        .entry("occurred_at")
        .or_insert_with(|| JsonValue::from(fleuve_schemas::clock::now_ms()));
    fields
        .entry("producer")
        .or_insert_with(|| JsonValue::String(default_producer.to_owned()));
    let doc = JsonValue::Object(fields);

    let value = json::to_avro(&spec.schema, &doc).map_err(invalid)?;
    spec.check(&value).map_err(|e| match e {
        EventError::Invalid(f) => invalid(f),
        other => ApiError::bad_request("invalid_event", other.to_string()),
    })?;
    let envelope = envelope_of(&value).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "event has no envelope",
        )
    })?;
    let key = spec.key_of(&value).unwrap_or_default().to_owned();
    Ok(Prepared {
        spec,
        key,
        envelope,
        value,
    })
}

/// Publishes a prepared event, recording the produce latency.
async fn publish_prepared(publisher: &Publisher, event: Prepared) -> Result<Published, ApiError> {
    let started = Instant::now();
    let result = publisher
        .publish_value(event.spec, &event.key, &event.envelope, event.value)
        .await;
    metrics::observe_produce(started.elapsed(), result.is_ok());
    result.map_err(publish_error)
}

fn openapi_body(config: &IngestConfig) -> axum::body::Bytes {
    serde_json::to_vec(&openapi::document(config))
        .map(Into::into)
        .unwrap_or_default()
}

async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    to_bytes(body, limit).await.map_err(|e| {
        let message = e.to_string();
        if e.into_inner().is::<http_body_util::LengthLimitError>() {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::bad_request(
                "invalid_body",
                format!("could not read the request body: {message}"),
            )
        }
    })
}

fn invalid(e: json::FieldError) -> ApiError {
    ApiError::bad_request("invalid_event", e.reason).with_field(e.field)
}

fn publish_error(e: PublishError) -> ApiError {
    match &e {
        PublishError::Invalid(_) | PublishError::InvalidItem { .. } => {
            ApiError::bad_request("invalid_event", e.to_string())
        }
        PublishError::Registry { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "registry_unavailable",
            format!("the event was not published: {e}"),
        )
        .with_retry_after(1),
        PublishError::Broker {
            retriable: true, ..
        } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            format!("the event was not published: {e}; retry with the same event_id"),
        )
        .with_retry_after(1),
        PublishError::Broker { .. } | PublishError::Encode(_) | PublishError::Config(_) => {
            tracing::error!(error = %e, "publish failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "publish_failed",
                format!("the event was not published: {e}"),
            )
        }
    }
}

fn envelope_of(value: &Value) -> Option<Envelope> {
    let Value::Record(fields) = value else {
        return None;
    };
    let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let event_id = match get("event_id")? {
        Value::Uuid(u) => u.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let occurred_at = match get("occurred_at")? {
        Value::TimestampMillis(ms) | Value::Long(ms) => *ms,
        _ => return None,
    };
    let producer = match get("producer")? {
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let correlation_id = match get("correlation_id") {
        Some(Value::Union(_, inner)) => match inner.as_ref() {
            Value::String(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    Some(Envelope {
        event_id,
        occurred_at,
        producer,
        correlation_id,
    })
}

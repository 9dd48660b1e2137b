//! The HTTP ingest service: JSON in, Avro on Kafka.
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
//! `position` is the token a front hands to the query API for read-your-writes. Errors use
//! the body `{"error":{"code","message","field"?}}`:
//!
//! | status | code | when |
//! | --- | --- | --- |
//! | 400 | `invalid_json` | the body is not JSON (or not UTF-8), with line and column |
//! | 400 | `invalid_event` | a field breaks the schema or a rule; `field` names it |
//! | 404 | `unknown_event_type` | no such event type (the message lists the known ones) |
//! | 413 | `payload_too_large` | the body is over the limit (64 KiB by default) |
//! | 415 | `unsupported_media_type` | the content type is not `application/json` |
//! | 503 | `broker_unavailable`, `registry_unavailable` | retry after `Retry-After` seconds |
//!
//! An error means nothing was produced for the request.

mod metrics;

use std::sync::Arc;
use std::time::Instant;

use apache_avro::types::Value;
use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use fleuve_schemas::{json, Envelope, EventError};
use fleuve_service::{ops_routes, ApiError, Readiness};
use serde::Serialize;
use serde_json::Value as JsonValue;

use crate::{PublishError, Publisher};

/// Settings of the ingest service.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// `producer` written in events that do not name one.
    pub default_producer: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            default_producer: "http-ingest".to_owned(),
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
    let state = Arc::new(AppState { publisher, config });
    Router::new()
        .route("/v1/events/{event_type}", post(publish))
        .with_state(state)
        .fallback(|| async {
            ApiError::not_found(
                "not_found",
                "no such route; events are posted to /v1/events/{EventType}",
            )
        })
        .merge(ops_routes(readiness))
        .layer(axum::middleware::from_fn(metrics::track))
}

async fn publish(
    State(state): State<Arc<AppState>>,
    Path(event_type): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let spec = fleuve_schemas::find(&event_type).ok_or_else(|| {
        let known: Vec<&str> = fleuve_schemas::catalog().iter().map(|s| s.name).collect();
        ApiError::not_found(
            "unknown_event_type",
            format!(
                "unknown event type `{}`; known types: {}",
                truncate(&event_type),
                known.join(", ")
            ),
        )
    })?;
    check_content_type(&request)?;
    let body = read_body(request.into_body(), state.config.max_body_bytes).await?;
    let mut doc: JsonValue = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let JsonValue::Object(fields) = &mut doc else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body must be a JSON object of the event's fields",
        ));
    };
    fields
        .entry("event_id")
        .or_insert_with(|| JsonValue::String(uuid::Uuid::new_v4().to_string()));
    fields
        .entry("occurred_at")
        .or_insert_with(|| JsonValue::from(now_ms()));
    fields
        .entry("producer")
        .or_insert_with(|| JsonValue::String(state.config.default_producer.clone()));

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

    let started = Instant::now();
    let result = state
        .publisher
        .publish_value(spec, &key, &envelope, value)
        .await;
    metrics::observe_produce(started.elapsed(), result.is_ok());
    let published = result.map_err(publish_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            event_id: published.event_id,
            position: published.position.token(),
            topic: published.position.topic,
            partition: published.position.partition,
            offset: published.position.offset,
        }),
    ))
}

fn check_content_type(request: &Request) -> Result<(), ApiError> {
    let ct = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "expected Content-Type: application/json, got `{}`",
                truncate(if ct.is_empty() { "(none)" } else { ct })
            ),
        ))
    }
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
        PublishError::Invalid(inner) => ApiError::bad_request("invalid_event", inner.to_string()),
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

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

//! `POST /v1/events:batch`: several events in one request, all validated before any is
//! published.
//!
//! Each event goes through the same preparation as the single-event route
//! ([`super::prepare`]); if one is invalid the batch is refused whole (400 `invalid_batch`,
//! the invalid events listed by index) and nothing is produced. Otherwise events are grouped
//! by topic and key: groups are published concurrently, each group's events one after the
//! other in batch order, so events with the same key land in the order they were sent. Once
//! an event of a group fails, the later events of that group are not attempted (they fail
//! with the same status), so a client retrying the failures in order keeps per-key order.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fleuve_schemas::text::quoted;
use fleuve_service::ApiError;
use serde::Serialize;
use serde_json::{Map, Value as JsonValue};

use super::{find_spec, prepare, publish_prepared, read_body};
use super::{Accepted, AppState, Prepared};

/// One event of a well-formed batch: its type name and its fields.
struct Item {
    event_type: String,
    data: Map<String, JsonValue>,
}

/// One invalid event of a refused batch.
#[derive(Debug, Serialize)]
struct InvalidItem {
    index: usize,
    error: ApiError,
}

/// The 400 body of a batch refused for its events.
#[derive(Debug, Serialize)]
struct Refused {
    error: ApiError,
    items: Vec<InvalidItem>,
}

/// One event's outcome, in the 202/207/503 body.
#[derive(Debug, Serialize)]
struct ItemResult {
    index: usize,
    status: u16,
    #[serde(flatten)]
    outcome: Outcome,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Outcome {
    Accepted(Accepted),
    Failed { event_id: String, error: ApiError },
}

#[derive(Debug, Serialize)]
struct Results {
    results: Vec<ItemResult>,
}

pub(super) async fn publish_batch(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    fleuve_service::http::require_json(request.headers())?;
    let body = read_body(request.into_body(), state.config.max_batch_bytes).await?;
    let doc: JsonValue = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let items = parse(doc, state.config.max_batch_events)?;
    let total = items.len();

    let mut prepared = Vec::with_capacity(total);
    let mut invalid = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let event = find_spec(&item.event_type)
            .and_then(|spec| prepare(spec, item.data, &state.config.default_producer));
        match event {
            Ok(event) => prepared.push(event),
            Err(error) => invalid.push(InvalidItem { index, error }),
        }
    }
    if !invalid.is_empty() {
        let error = ApiError::bad_request(
            "invalid_batch",
            format!(
                "{} of {total} events are invalid; nothing was published",
                invalid.len()
            ),
        );
        let body = Refused {
            error,
            items: invalid,
        };
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }

    let results = publish_all(&state, prepared).await;
    let failed: Vec<&ApiError> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed { error, .. } => Some(error),
            Outcome::Accepted(_) => None,
        })
        .collect();
    let status = match failed.first() {
        None => StatusCode::ACCEPTED,
        Some(first) if failed.len() == total => first.status,
        Some(_) => StatusCode::MULTI_STATUS,
    };
    let retry_after = failed.iter().filter_map(|e| e.retry_after_secs).max();
    tracing::info!(
        events = total,
        failed = failed.len(),
        status = status.as_u16(),
        "batch published"
    );
    let mut response = (status, Json(Results { results })).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(response)
}

/// Checks the shape `{"events":[{"type":"…","data":{…}}, …]}` and the count limit.
fn parse(doc: JsonValue, max_events: usize) -> Result<Vec<Item>, ApiError> {
    let shape = |field: String, message: String| {
        ApiError::bad_request("invalid_batch", message).with_field(field)
    };
    let JsonValue::Object(mut top) = doc else {
        return Err(ApiError::bad_request(
            "invalid_batch",
            r#"request body must be a JSON object {"events":[{"type":"…","data":{…}}, …]}"#,
        ));
    };
    if let Some(unknown) = top.keys().find(|k| *k != "events") {
        return Err(shape(
            quoted(unknown),
            "unknown field; a batch has only `events`".to_owned(),
        ));
    }
    let events = match top.remove("events") {
        Some(JsonValue::Array(events)) => events,
        Some(_) => {
            return Err(shape(
                "events".into(),
                "must be an array of {\"type\",\"data\"} objects".into(),
            ))
        }
        None => return Err(shape("events".into(), "required field is missing".into())),
    };
    if events.is_empty() {
        return Err(shape(
            "events".into(),
            "the batch is empty; send at least one event".into(),
        ));
    }
    if events.len() > max_events {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "the batch holds {} events, more than the limit of {max_events}; split it",
                events.len()
            ),
        )
        .with_field("events"));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let JsonValue::Object(mut event) = event else {
                return Err(shape(
                    format!("events[{i}]"),
                    "must be an object {\"type\",\"data\"}".into(),
                ));
            };
            if let Some(unknown) = event.keys().find(|k| *k != "type" && *k != "data") {
                return Err(shape(
                    format!("events[{i}].{}", quoted(unknown)),
                    "unknown field; an event has only `type` and `data`".into(),
                ));
            }
            let event_type = match event.remove("type") {
                Some(JsonValue::String(t)) => t,
                Some(_) => {
                    return Err(shape(
                        format!("events[{i}].type"),
                        "must be a string naming the event type".into(),
                    ))
                }
                None => {
                    return Err(shape(
                        format!("events[{i}].type"),
                        "required field is missing".into(),
                    ))
                }
            };
            let data = match event.remove("data") {
                Some(JsonValue::Object(data)) => data,
                Some(_) => {
                    return Err(shape(
                        format!("events[{i}].data"),
                        "must be an object of the event's fields".into(),
                    ))
                }
                None => {
                    return Err(shape(
                        format!("events[{i}].data"),
                        "required field is missing".into(),
                    ))
                }
            };
            Ok(Item { event_type, data })
        })
        .collect()
}

/// Publishes every event: one sequential run per (topic, key), the runs concurrently.
/// Results are in input order.
async fn publish_all(state: &AppState, events: Vec<Prepared>) -> Vec<ItemResult> {
    let total = events.len();
    let mut groups: Vec<Vec<(usize, Prepared)>> = Vec::new();
    let mut group_of: HashMap<(&'static str, String), usize> = HashMap::new();
    for (index, event) in events.into_iter().enumerate() {
        let slot = *group_of
            .entry((event.spec.topic, event.key.clone()))
            .or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
        groups[slot].push((index, event));
    }
    let runs = groups.into_iter().map(|group| async move {
        let mut out = Vec::with_capacity(group.len());
        let mut failed: Option<(usize, ApiError)> = None;
        for (index, event) in group {
            let event_id = event.envelope.event_id.clone();
            let result = match &failed {
                Some((first, error)) => Err(not_attempted(*first, error)),
                None => publish_prepared(&state.publisher, event).await,
            };
            let result = match result {
                Ok(published) => ItemResult {
                    index,
                    status: StatusCode::ACCEPTED.as_u16(),
                    outcome: Outcome::Accepted(Accepted::from(published)),
                },
                Err(error) => {
                    if failed.is_none() {
                        failed = Some((index, error.clone()));
                    }
                    ItemResult {
                        index,
                        status: error.status.as_u16(),
                        outcome: Outcome::Failed { event_id, error },
                    }
                }
            };
            out.push(result);
        }
        out
    });
    let mut results: Vec<ItemResult> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    results.sort_by_key(|r| r.index);
    debug_assert_eq!(results.len(), total);
    results
}

/// The error of an event skipped because an earlier event with the same key failed.
fn not_attempted(first: usize, cause: &ApiError) -> ApiError {
    let mut error = ApiError::new(
        cause.status,
        cause.code,
        format!(
            "not attempted: event {first}, which has the same key, failed first ({}); retry \
             them in order with the same event_ids",
            cause.code
        ),
    );
    error.retry_after_secs = cause.retry_after_secs;
    error
}

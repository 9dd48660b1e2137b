//! The OpenAPI 3.1 document of the ingest service, generated from the event catalogue.
//!
//! Every event type of [`fleuve_schemas::catalog`] gets `POST /v1/events/{Type}` whose request
//! body is the JSON Schema derived from its Avro record (as [`fleuve_schemas::json`] accepts
//! it: records closed to unknown fields, `["null", T]` nullable, timestamps as integer
//! milliseconds or RFC 3339 strings, field `doc`s as descriptions); the batch
//! route's items are the union of those. Nothing here is written by hand per event type, so
//! a new `.avsc` appears in the document without touching this file.

use apache_avro::schema::{RecordSchema, UuidSchema};
use apache_avro::Schema;
use fleuve_schemas::EventSpec;
use serde_json::{json, Map, Value as Json};

use super::{IngestConfig, ENVELOPE_DEFAULTS};

/// Name of the security scheme applied to the `/v1` operations.
const BEARER: &str = "bearerAuth";
/// Scope a token needs to publish.
pub const WRITE_SCOPE: &str = "events:write";

/// The whole document, with the limits of `config`.
pub fn document(config: &IngestConfig) -> Json {
    let catalog = fleuve_schemas::catalog();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for spec in catalog {
        schemas.insert(spec.name.to_owned(), event_schema(spec));
        paths.insert(format!("/v1/events/{}", spec.name), event_path(spec));
    }
    paths.insert("/v1/events/{event_type}".to_owned(), any_event_path());
    paths.insert("/v1/events:batch".to_owned(), batch_path(config));
    for (name, schema) in common_schemas(config) {
        schemas.insert(name.to_owned(), schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Fleuve ingest",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Publishes events: JSON in, Avro on Kafka. Every event type of the catalogue has \
                 its own route and request schema, derived from its Avro schema. A 202 answer \
                 means the event is durably in Kafka (acks=all); its `position` is the token the \
                 query API accepts for read-your-writes. An error means nothing was produced. \
                 Limits: {} bytes per event body, {} events and {} bytes per batch, {} requests \
                 in flight (429 beyond).",
                config.max_body_bytes,
                config.max_batch_events,
                config.max_batch_bytes,
                config.max_in_flight,
            ),
        },
        "tags": fleuve_schemas::topics().into_iter().map(|t| json!({
            "name": t,
            "description": format!("Event types published to the `{t}` topic."),
        })).chain(std::iter::once(json!({
            "name": "batch",
            "description": "Several events of any types in one request.",
        }))).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": error_responses(),
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0},
                },
            },
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": format!(
                        "A JWT whose scopes include `{WRITE_SCOPE}`, sent as \
                         `Authorization: Bearer <token>`."
                    ),
                },
            },
        },
    })
}

fn event_schema(spec: &EventSpec) -> Json {
    let mut schema = convert(&spec.schema, true);
    if let Json::Object(o) = &mut schema {
        let doc = o
            .get("description")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        o.insert(
            "description".to_owned(),
            json!(format!(
                "{doc}\n\nPublished to topic `{}`, keyed by `{}`. `event_id`, `occurred_at` and \
                 `producer` may be left out: the service assigns a UUID, the current time and its \
                 default producer name.",
                spec.topic, spec.key_field
            )
            .trim_start()),
        );
    }
    schema
}

/// The JSON Schema of an Avro schema. `envelope` marks the top-level record of an event,
/// whose envelope fields the service fills when they are left out (so they are not required).
fn convert(schema: &Schema, envelope: bool) -> Json {
    match schema {
        Schema::Null => json!({"type": "null"}),
        Schema::Boolean => json!({"type": "boolean"}),
        Schema::Int => json!({
            "type": "integer", "format": "int32",
            "minimum": i32::MIN, "maximum": i32::MAX,
        }),
        Schema::Long => json!({"type": "integer", "format": "int64"}),
        Schema::Float => json!({"type": "number", "format": "float"}),
        Schema::Double => json!({"type": "number", "format": "double"}),
        Schema::String => json!({"type": "string"}),
        Schema::Uuid(UuidSchema::String) => json!({"type": "string", "format": "uuid"}),
        Schema::TimestampMillis => json!({
            "oneOf": [
                {"type": "integer", "format": "int64",
                 "description": "Milliseconds since the Unix epoch."},
                {"type": "string", "format": "date-time",
                 "description": "An RFC 3339 timestamp."},
            ],
        }),
        Schema::Enum(e) => with_doc(
            json!({"type": "string", "enum": e.symbols}),
            e.doc.as_deref(),
        ),
        Schema::Array(a) => json!({"type": "array", "items": convert(&a.items, false)}),
        Schema::Map(m) => json!({
            "type": "object",
            "additionalProperties": convert(&m.types, false),
        }),
        Schema::Union(u) => {
            let variants = u.variants();
            let nullable = variants.iter().any(|v| matches!(v, Schema::Null));
            let others: Vec<Json> = variants
                .iter()
                .filter(|v| !matches!(v, Schema::Null))
                .map(|v| convert(v, false))
                .collect();
            match (nullable, others.as_slice()) {
                (true, [only]) => nullable_of(only.clone()),
                (false, [only]) => only.clone(),
                (true, _) => {
                    let mut branches = others;
                    branches.push(json!({"type": "null"}));
                    json!({"anyOf": branches})
                }
                (false, _) => json!({"anyOf": others}),
            }
        }
        Schema::Record(r) => record(r, envelope),
        // Not accepted from JSON by the ingest (bytes, fixed, decimals, other logical types).
        _ => json!({"not": {}, "description": "This Avro type cannot be sent as JSON."}),
    }
}

fn record(r: &RecordSchema, envelope: bool) -> Json {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in &r.fields {
        let mut schema = with_doc(convert(&f.schema, false), f.doc.as_deref());
        if let (Some(default), Json::Object(o)) = (&f.default, &mut schema) {
            o.insert("default".to_owned(), default.clone());
        }
        let filled = envelope && ENVELOPE_DEFAULTS.contains(&f.name.as_str());
        if f.default.is_none() && !filled {
            required.push(f.name.clone());
        }
        properties.insert(f.name.clone(), schema);
    }
    with_doc(
        json!({
            "title": r.name.name(),
            "type": "object",
            "additionalProperties": false,
            "properties": properties,
            "required": required,
        }),
        r.doc.as_deref(),
    )
}

/// `T` or null: a `type` list when `T` is a plain typed schema, `anyOf` otherwise.
fn nullable_of(schema: Json) -> Json {
    let simple = schema.get("type").is_some_and(Json::is_string)
        && schema.get("enum").is_none()
        && schema.get("oneOf").is_none();
    match schema {
        Json::Object(mut o) if simple => {
            let t = o.remove("type").unwrap_or(Json::Null);
            o.insert("type".to_owned(), json!([t, "null"]));
            Json::Object(o)
        }
        other => json!({"anyOf": [other, {"type": "null"}]}),
    }
}

fn with_doc(mut schema: Json, doc: Option<&str>) -> Json {
    if let (Some(doc), Json::Object(o)) = (doc, &mut schema) {
        // A union or timestamp keeps its own branch descriptions; the field's doc goes on top.
        o.insert("description".to_owned(), json!(doc));
    }
    schema
}

fn reference(schema: &str) -> Json {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

fn response_ref(status: &str) -> Json {
    json!({"$ref": format!("#/components/responses/{status}")})
}

fn security() -> Json {
    json!([{BEARER: [WRITE_SCOPE]}])
}

/// The error responses every `/v1` operation may give, by status.
const ERROR_STATUSES: [&str; 8] = ["400", "401", "403", "404", "413", "415", "429", "503"];

/// A JSON response whose body is the component schema `schema`, with a `Retry-After` header
/// when `retry`.
fn response(description: &str, schema: &str, retry: bool) -> Json {
    let mut r = json!({
        "description": description,
        "content": {"application/json": {"schema": reference(schema)}},
    });
    if retry {
        r["headers"] = json!({"Retry-After": {"$ref": "#/components/headers/Retry-After"}});
    }
    r
}

fn error_responses() -> Json {
    let error = |description: &str, retry: bool| response(description, "Error", retry);
    json!({
        "400": error("`invalid_json`: the body is not JSON. `invalid_event`: a field breaks the \
                      schema or a rule; `field` names it.", false),
        "401": error("`unauthorized`: no `Authorization` header. `invalid_token`: the token is \
                      malformed, expired, not yet valid, badly signed or from another issuer or \
                      audience. Sent when the service runs with authentication.", false),
        "403": error(&format!("`forbidden`: the token does not grant the `{WRITE_SCOPE}` \
                               scope."), false),
        "404": error("`unknown_event_type`: no such event type; the message lists the known \
                      ones.", false),
        "413": error("`payload_too_large`: the body is over the limit.", false),
        "415": error("`unsupported_media_type`: the content type is not application/json.",
                     false),
        "429": error("`overloaded`: too many requests in flight; retry after `Retry-After` \
                      seconds.", true),
        "500": error("`publish_failed`: Kafka refused the event for a reason a retry will not \
                      fix.", false),
        "503": error("`broker_unavailable` or `registry_unavailable`: nothing was published; \
                      retry with the same `event_id` after `Retry-After` seconds.", true),
    })
}

/// The answers of a single-event publish: 202 and every error status.
fn single_event_responses() -> Map<String, Json> {
    let mut responses = Map::new();
    responses.insert(
        "202".to_owned(),
        json!({
            "description": "The event is durably in Kafka.",
            "content": {"application/json": {"schema": reference("Accepted")}},
        }),
    );
    for status in ERROR_STATUSES.iter().chain(&["500"]) {
        responses.insert((*status).to_owned(), response_ref(status));
    }
    responses
}

fn event_path(spec: &EventSpec) -> Json {
    let responses = single_event_responses();
    json!({
        "post": {
            "operationId": format!("publish{}", spec.name),
            "summary": format!("Publish a {} event", spec.name),
            "tags": [spec.topic],
            "security": security(),
            "requestBody": {
                "required": true,
                "content": {"application/json": {"schema": reference(spec.name)}},
            },
            "responses": responses,
        },
    })
}

fn any_event_path() -> Json {
    let responses = single_event_responses();
    let known: Vec<&str> = fleuve_schemas::catalog().iter().map(|s| s.name).collect();
    json!({
        "post": {
            "operationId": "publishEvent",
            "summary": "Publish an event of the type named in the path",
            "description": "The typed paths give each event type's request schema; a type not in \
                            the catalogue is answered 404 `unknown_event_type`.",
            "security": security(),
            "parameters": [{
                "name": "event_type",
                "in": "path",
                "required": true,
                "description": "An event type of the catalogue.",
                "schema": {"type": "string", "examples": known},
            }],
            "requestBody": {
                "required": true,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": responses,
        },
    })
}

fn batch_path(config: &IngestConfig) -> Json {
    let results = |description: &str, retry: bool| response(description, "BatchResults", retry);
    json!({
        "post": {
            "operationId": "publishBatch",
            "summary": "Publish several events in one request",
            "description": format!(
                "The whole batch is validated first: if any event is invalid, nothing is \
                 published and the 400 answer lists each invalid event by index. Then every \
                 event is published; events with the same key are produced in batch order. \
                 Results come in input order. At most {} events and {} bytes.",
                config.max_batch_events, config.max_batch_bytes
            ),
            "tags": ["batch"],
            "security": security(),
            "requestBody": {
                "required": true,
                "content": {"application/json": {"schema": reference("BatchRequest")}},
            },
            "responses": {
                "202": results("Every event is durably in Kafka.", false),
                "207": results("Some events were published, others failed: see each result's \
                                `status`. Retry the failed ones, in order, with the same \
                                `event_id`.", true),
                "400": {
                    "description": "`invalid_json`: the body is not JSON. `invalid_batch`: the \
                                    body is not `{\"events\":[…]}`, the list is empty, or some \
                                    events are invalid (listed in `items`; nothing was \
                                    published). `batch_too_large`: more events than the limit.",
                    "content": {"application/json": {"schema": reference("BatchError")}},
                },
                "401": response_ref("401"),
                "403": response_ref("403"),
                "404": response_ref("404"),
                "413": response_ref("413"),
                "415": response_ref("415"),
                "429": response_ref("429"),
                "500": results("Every event failed for a reason a retry will not fix.", false),
                "503": results("Every event failed (broker or registry unavailable): nothing was \
                                published; retry after `Retry-After` seconds with the same \
                                `event_id`s.", true),
            },
        },
    })
}

fn common_schemas(config: &IngestConfig) -> Vec<(&'static str, Json)> {
    let position = json!({
        "event_id": {"type": "string", "format": "uuid",
                     "description": "The event's id (assigned by the service if not sent)."},
        "topic": {"type": "string", "description": "Topic the event was written to."},
        "partition": {"type": "integer", "format": "int32", "minimum": 0},
        "offset": {"type": "integer", "format": "int64", "minimum": 0},
        "position": {"type": "string",
                     "description": "Opaque token for read-your-writes in the query API."},
    });
    let items: Vec<Json> = fleuve_schemas::catalog()
        .iter()
        .map(|spec| {
            json!({
                "title": format!("{} item", spec.name),
                "type": "object",
                "additionalProperties": false,
                "required": ["type", "data"],
                "properties": {
                    "type": {"const": spec.name},
                    "data": reference(spec.name),
                },
            })
        })
        .collect();
    vec![
        (
            "ErrorDetail",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string",
                             "description": "Stable machine-readable code (`invalid_event`, …)."},
                    "message": {"type": "string",
                                "description": "What went wrong and what to do."},
                    "field": {"type": "string",
                              "description": "Path of the offending field (`lines[2].sku`)."},
                },
            }),
        ),
        (
            "Error",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["error"],
                "properties": {"error": reference("ErrorDetail")},
            }),
        ),
        (
            "Accepted",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["event_id", "topic", "partition", "offset", "position"],
                "properties": position,
            }),
        ),
        (
            "BatchRequest",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["events"],
                "properties": {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": config.max_batch_events,
                        "items": {"oneOf": items},
                    },
                },
            }),
        ),
        (
            "BatchResult",
            json!({
                "oneOf": [
                    {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["index", "status", "event_id", "topic", "partition",
                                     "offset", "position"],
                        "properties": merge(json!({
                            "index": {"type": "integer", "minimum": 0},
                            "status": {"const": 202},
                        }), &position),
                    },
                    {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["index", "status", "event_id", "error"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "status": {"type": "integer", "minimum": 400, "maximum": 599},
                            "event_id": {"type": "string", "format": "uuid",
                                         "description": "Retry with this id."},
                            "error": reference("ErrorDetail"),
                        },
                    },
                ],
            }),
        ),
        (
            "BatchResults",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["results"],
                "properties": {
                    "results": {
                        "type": "array",
                        "description": "One result per event, in input order.",
                        "items": reference("BatchResult"),
                    },
                },
            }),
        ),
        (
            "BatchError",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["error"],
                "properties": {
                    "error": reference("ErrorDetail"),
                    "items": {
                        "type": "array",
                        "description": "The invalid events (only those), when the batch was \
                                        refused because of them.",
                        "items": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["index", "error"],
                            "properties": {
                                "index": {"type": "integer", "minimum": 0},
                                "error": reference("ErrorDetail"),
                            },
                        },
                    },
                },
            }),
        ),
    ]
}

fn merge(mut a: Json, b: &Json) -> Json {
    if let (Json::Object(a), Json::Object(b)) = (&mut a, b) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
    a
}

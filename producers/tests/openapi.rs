//! The OpenAPI document of the ingest: generated from the catalogue, it covers every event
//! type and every documented status, is a valid OpenAPI 3.1 document (checked by Python's
//! `openapi-spec-validator`), and accepts exactly what the service accepts for a sample of
//! each event type (the samples are built from the Rust event types).
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleuve_kafka::KafkaConfig;
use fleuve_producers::ingest::{self, IngestConfig};
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_schemas::*;
use fleuve_service::AlwaysReady;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ERROR_STATUSES: [&str; 8] = ["400", "401", "403", "404", "413", "415", "429", "503"];
const ENVELOPE_FILLED: [&str; 3] = ["event_id", "occurred_at", "producer"];

fn document() -> Value {
    ingest::openapi_document(&IngestConfig::default())
}

/// Follows a local `$ref` (`#/components/…`) if `v` is one.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    // No broker is contacted: the publisher connects on first publish only.
    let publisher = Publisher::new(PublisherConfig::new(
        KafkaConfig::new("127.0.0.1:1"),
        "http://127.0.0.1:1",
        "test",
    ))
    .unwrap();
    let app = ingest::router(publisher, IngestConfig::default(), Arc::new(AlwaysReady));
    let resp = app
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(served, document());
}

#[test]
fn every_event_type_and_every_status_is_documented() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"], &scheme["bearerFormat"]),
        (&json!("http"), &json!("bearer"), &json!("JWT"))
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for spec in catalog() {
        let path = format!("/v1/events/{}", spec.name);
        let op = &paths.get(&path).unwrap_or_else(|| panic!("{path} missing"))["post"];
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        let schema = resolve(&doc, body);
        assert_eq!(schema["type"], "object", "{path}");
        assert_eq!(schema["additionalProperties"], false, "{path}");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(required.contains(&spec.key_field), "{path}: key required");
        for filled in ENVELOPE_FILLED.iter().chain(&["correlation_id"]) {
            assert!(!required.contains(filled), "{path}: {filled} is optional");
            assert!(schema["properties"][filled].is_object(), "{path}: {filled}");
        }
        assert!(
            schema["description"].as_str().unwrap().contains(spec.topic),
            "{path}: description names the topic"
        );
        for (name, prop) in schema["properties"].as_object().unwrap() {
            assert!(
                prop["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{path}: {name} has no description"
            );
        }
        operations.push((path, op.clone()));
    }
    let batch = paths["/v1/events:batch"]["post"].clone();
    for status in ["202", "207"] {
        let r = resolve(&doc, &batch["responses"][status]);
        let schema = resolve(&doc, &r["content"]["application/json"]["schema"]);
        assert!(
            schema["properties"]["results"].is_object(),
            "batch {status}"
        );
    }
    operations.push(("/v1/events:batch".into(), batch));
    operations.push((
        "/v1/events/{event_type}".into(),
        paths["/v1/events/{event_type}"]["post"].clone(),
    ));
    for (path, op) in &operations {
        assert_eq!(
            op["security"],
            json!([{"bearerAuth": ["events:write"]}]),
            "{path}"
        );
        assert!(resolve(&doc, &op["responses"]["202"]).is_object(), "{path}");
        for status in ERROR_STATUSES {
            let response = resolve(&doc, &op["responses"][status]);
            assert!(
                response["description"].as_str().is_some(),
                "{path} lacks {status}"
            );
            let schema = resolve(&doc, &response["content"]["application/json"]["schema"]);
            assert!(schema.is_object(), "{path} {status} has no body schema");
            if status == "429" || status == "503" {
                assert!(
                    response["headers"]["Retry-After"].is_object(),
                    "{path} {status} Retry-After"
                );
            }
        }
    }

    // A few mappings, on real schemas.
    let pp = &doc["components"]["schemas"]["PlaybackProgressed"]["properties"];
    assert_eq!(pp["event_id"]["format"], "uuid");
    assert_eq!(pp["position_ms"]["format"], "int64");
    assert_eq!(pp["occurred_at"]["oneOf"][1]["format"], "date-time");
    assert_eq!(pp["correlation_id"]["type"], json!(["string", "null"]));
    let cu = &doc["components"]["schemas"]["ContentUpserted"]["properties"];
    assert_eq!(
        cu["kind"]["enum"],
        json!(["PROGRAMME", "SEASON", "EPISODE", "CLIP"])
    );
    assert_eq!(cu["season_number"]["type"], json!(["integer", "null"]));
    assert_eq!(cu["season_number"]["format"], "int32");
    assert_eq!(cu["rights"]["items"]["additionalProperties"], false);
    let batch_items = &doc["components"]["schemas"]["BatchRequest"]["properties"]["events"];
    assert_eq!(batch_items["maxItems"], 500);
    assert_eq!(
        batch_items["items"]["oneOf"].as_array().unwrap().len(),
        catalog().len()
    );
}

const EVENT_ID: &str = "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11";
const AT: i64 = 1_795_341_600_000;

/// A valid event of `E` as the JSON a service would post, checked against the Rust rules.
fn sample<E: Event>(event: E) -> (&'static str, Value) {
    event
        .to_avro()
        .unwrap_or_else(|e| panic!("{} sample is invalid: {e}", E::TYPE));
    (E::TYPE, serde_json::to_value(&event).unwrap())
}

fn samples() -> Vec<(&'static str, Value)> {
    let id = || EVENT_ID.to_owned();
    let producer = || "player-backend".to_owned();
    vec![
        sample(PlaybackProgressed {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: Some("req-1".into()),
            user_id: "u-1".into(),
            content_id: "c-1".into(),
            position_ms: 60_000,
            duration_ms: 1_800_000,
            device: "web".into(),
        }),
        sample(BookmarkAdded {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            user_id: "u-1".into(),
            content_id: "c-1".into(),
        }),
        sample(BookmarkRemoved {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            user_id: "u-1".into(),
            content_id: "c-1".into(),
        }),
        sample(UserDataErased {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            user_id: "u-1".into(),
            reason: ErasureReason::UserRequest,
        }),
        sample(ContentUpserted {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            content_id: "c-ep-1".into(),
            kind: ContentKind::Episode,
            program_id: Some("c-show".into()),
            season_number: None,
            episode_number: Some(3),
            title: "Le Bureau, épisode 3".into(),
            description: Some("Une histoire.".into()),
            tags: vec!["drama".into(), "fr".into()],
            duration_ms: Some(3_000_000),
            available_from: AT,
            available_until: Some(AT + 86_400_000),
            rights: vec![DistributionRight {
                partner: "salto".into(),
                territories: vec!["FR".into(), "BE".into()],
            }],
        }),
        sample(ContentUnpublished {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            content_id: "c-1".into(),
            reason: Some("rights expired".into()),
        }),
        sample(ContentDeleted {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            content_id: "c-1".into(),
        }),
        sample(OrderPlaced {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            order_id: "o-1".into(),
            buyer_id: "b-1".into(),
            seller_id: "s-1".into(),
            lines: vec![
                OrderLine {
                    sku: "sku-1".into(),
                    quantity: 2,
                    unit_price_minor: 1999,
                },
                OrderLine {
                    sku: "sku-2".into(),
                    quantity: 1,
                    unit_price_minor: 0,
                },
            ],
            currency: "EUR".into(),
            shipping_address: ShippingAddress {
                name: "Camille Martin".into(),
                line1: "1 rue de la Paix".into(),
                line2: None,
                postal_code: "75002".into(),
                city: "Paris".into(),
                country: "FR".into(),
            },
        }),
        sample(PaymentAuthorized {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            order_id: "o-1".into(),
            amount_minor: 3998,
            currency: "EUR".into(),
            payment_ref: "pay-1".into(),
        }),
        sample(PaymentFailed {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            order_id: "o-1".into(),
            reason: "card declined".into(),
        }),
        sample(OrderShipped {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            order_id: "o-1".into(),
            carrier: "colissimo".into(),
            tracking_number: Some("6A123".into()),
        }),
        sample(OrderDelivered {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            order_id: "o-1".into(),
        }),
        sample(OrderCancelled {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            order_id: "o-1".into(),
            reason: "buyer request".into(),
        }),
        sample(StockAdjusted {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            sku: "sku-1".into(),
            delta: -3,
            reason: StockAdjustmentReason::Damaged,
        }),
        sample(StockReserved {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            sku: "sku-1".into(),
            order_id: "o-1".into(),
            quantity: 2,
        }),
        sample(StockReleased {
            event_id: id(),
            occurred_at: AT,
            producer: producer(),
            correlation_id: None,
            sku: "sku-1".into(),
            order_id: "o-1".into(),
            quantity: 2,
        }),
    ]
}

/// Whether the ingest's own conversion accepts `data` for `event_type` (envelope defaults
/// filled as the service does).
fn service_accepts(event_type: &str, data: &Value) -> bool {
    let spec = find(event_type).unwrap();
    let mut data = data.clone();
    let fields = data.as_object_mut().unwrap();
    fields.entry("event_id").or_insert(json!(EVENT_ID));
    fields.entry("occurred_at").or_insert(json!(AT));
    fields.entry("producer").or_insert(json!("http-ingest"));
    json::to_avro(&spec.schema, &data).is_ok()
}

#[test]
fn document_is_valid_openapi_and_accepts_what_the_service_accepts() {
    let samples = samples();
    let names: Vec<&str> = samples.iter().map(|(n, _)| *n).collect();
    for spec in catalog() {
        assert!(names.contains(&spec.name), "no sample of {}", spec.name);
    }
    let mut cases = Vec::new();
    for (name, data) in &samples {
        cases.push(
            json!({"schema": name, "label": format!("{name} sample"), "data": data, "valid": true}),
        );
        // The envelope left to the service, and a timestamp as RFC 3339.
        let mut minimal = data.clone();
        for field in ENVELOPE_FILLED.iter().chain(&["correlation_id"]) {
            minimal.as_object_mut().unwrap().remove(*field);
        }
        cases.push(json!({"schema": name, "label": format!("{name} without envelope"), "data": minimal, "valid": true}));
        let mut rfc3339 = data.clone();
        rfc3339["occurred_at"] = json!("2026-11-22T10:00:00.5+01:00");
        cases.push(json!({"schema": name, "label": format!("{name} RFC 3339"), "data": rfc3339, "valid": true}));
        // Refused by both the service and the schema.
        let spec = find(name).unwrap();
        let mut missing_key = data.clone();
        missing_key.as_object_mut().unwrap().remove(spec.key_field);
        let mut unknown = data.clone();
        unknown["surprise"] = json!(1);
        let mut wrong_type = data.clone();
        wrong_type[spec.key_field] = json!(42);
        let mut bad_uuid = data.clone();
        bad_uuid["event_id"] = json!("123");
        for (what, bad) in [
            ("without its key", missing_key),
            ("with an unknown field", unknown),
            ("with a numeric key", wrong_type),
            ("with a bad event_id", bad_uuid),
        ] {
            assert!(!service_accepts(name, &bad), "{name} {what}");
            cases.push(json!({"schema": name, "label": format!("{name} {what}"), "data": bad, "valid": false}));
        }
    }
    for case in &cases {
        if case["valid"] == true {
            let name = case["schema"].as_str().unwrap();
            assert!(service_accepts(name, &case["data"]), "{}", case["label"]);
        }
    }
    let batch = json!({"events": samples.iter().map(|(n, d)| json!({"type": n, "data": d})).collect::<Vec<_>>()});
    cases.push(json!({"schema": "BatchRequest", "label": "batch of every type", "data": batch, "valid": true}));
    let mismatched = json!({"events": [{"type": "BookmarkAdded", "data": samples[0].1}]});
    cases.push(json!({"schema": "BatchRequest", "label": "batch item of the wrong type", "data": mismatched, "valid": false}));
    cases.push(json!({"schema": "BatchRequest", "label": "empty batch", "data": {"events": []}, "valid": false}));
    cases.push(json!({"schema": "BatchResults", "label": "batch results", "valid": true, "data": {"results": [
        {"index": 0, "status": 202, "event_id": EVENT_ID, "topic": "orders", "partition": 1,
         "offset": 7, "position": "b3JkZXJzOjE6Nw"},
        {"index": 1, "status": 503, "event_id": EVENT_ID,
         "error": {"code": "broker_unavailable", "message": "retry"}},
    ]}}));
    cases.push(json!({"schema": "BatchError", "label": "refused batch", "valid": true, "data": {
        "error": {"code": "invalid_batch", "message": "1 of 2 events are invalid; nothing was published"},
        "items": [{"index": 1, "error": {"code": "invalid_event", "message": "m", "field": "user_id"}}],
    }}));

    let input = json!({"document": document(), "cases": cases});
    fleuve_testkit::validate_openapi(&input);
}

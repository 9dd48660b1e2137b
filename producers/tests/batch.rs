//! `POST /v1/events:batch` against an in-process Kafka and our registry: a valid batch lands
//! in the right topics, keyed, in batch order per key; one invalid event refuses the whole
//! batch and produces nothing; limits and malformed shapes get their documented errors; a
//! broker outage fails every event with 503; a saturated service answers 429 at once.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::collections::HashMap;
use std::convert::Infallible;

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::Router;
use fleuve_kafka::Position;
use fleuve_producers::ingest::IngestConfig;
use fleuve_testkit::Kafka;
use serde_json::{json, Value};

mod common;
use common::{app_with, call, Reply};

const BATCH: &str = "/v1/events:batch";

fn app(kafka: &Kafka) -> Router {
    app_with(kafka, IngestConfig::default(), Duration::from_secs(5))
}

async fn post(app: &Router, path: &str, body: impl Into<Vec<u8>>) -> Reply {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.into()))
        .unwrap();
    call(app, req).await
}

async fn post_batch(app: &Router, events: Vec<Value>) -> Reply {
    post(app, BATCH, json!({ "events": events }).to_string()).await
}

fn progress(user: &str, position_ms: i64) -> Value {
    json!({"type": "PlaybackProgressed", "data": {
        "user_id": user, "content_id": "c-1", "position_ms": position_ms,
        "duration_ms": 1_800_000, "device": "web"}})
}

fn bookmark(user: &str, content: &str) -> Value {
    json!({"type": "BookmarkAdded", "data": {"user_id": user, "content_id": content}})
}

fn order_placed(order: &str) -> Value {
    json!({"type": "OrderPlaced", "data": {
        "order_id": order, "buyer_id": "b-1", "seller_id": "s-1",
        "lines": [{"sku": "sku-1", "quantity": 2, "unit_price_minor": 1999}],
        "currency": "EUR",
        "shipping_address": {"name": "Camille", "line1": "1 rue de la Paix", "line2": null,
                             "postal_code": "75002", "city": "Paris", "country": "FR"}}})
}

fn order_shipped(order: &str) -> Value {
    json!({"type": "OrderShipped", "data": {"order_id": order, "carrier": "colissimo",
                                            "tracking_number": null}})
}

fn stock(sku: &str, delta: i32) -> Value {
    json!({"type": "StockAdjusted", "data": {"sku": sku, "delta": delta, "reason": "RECEIVED"}})
}

const TOPICS: [&str; 4] = ["user-activity", "catalog", "orders", "inventory"];

fn nothing_produced(kafka: &Kafka) {
    for topic in TOPICS {
        assert!(
            kafka.read_all(topic).is_empty(),
            "a refused batch produced a record in {topic}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_batch_lands_keyed_and_in_order_per_key() {
    let kafka = Kafka::start().await;
    let app = app(&kafka);
    let chosen_id = "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11";
    let mut with_id = bookmark("u-2", "c-9");
    with_id["data"]["event_id"] = json!(chosen_id);
    let events = vec![
        progress("u-1", 1),
        order_placed("o-1"),
        progress("u-1", 2),
        stock("sku-1", 10),
        with_id,
        order_shipped("o-1"),
        progress("u-1", 3),
        stock("sku-1", -4),
        progress("u-3", 1),
        stock("sku-2", 1),
        progress("u-1", 4),
        json!({"type": "ContentDeleted", "data": {"content_id": "c-1"}}),
    ];
    let expected: Vec<(&str, String)> = events
        .iter()
        .map(|e| {
            let spec = fleuve_schemas::find(e["type"].as_str().unwrap()).unwrap();
            let key = e["data"][spec.key_field].as_str().unwrap().to_owned();
            (spec.topic, key)
        })
        .collect();
    let reply = post_batch(&app, events.clone()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(results.len(), events.len());

    let mut in_kafka = HashMap::new();
    for topic in TOPICS {
        for r in kafka.read_all(topic) {
            let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
            in_kafka.insert(
                r.headers["event_id"].clone(),
                (
                    topic,
                    key,
                    r.partition,
                    r.offset,
                    r.headers["event_type"].clone(),
                ),
            );
        }
    }
    assert_eq!(in_kafka.len(), events.len(), "one record per event");
    let mut last_offset: HashMap<(&str, String), (i32, i64)> = HashMap::new();
    for (i, (result, event)) in results.iter().zip(&events).enumerate() {
        assert_eq!(result["index"], i, "{result}");
        assert_eq!(result["status"], 202, "{result}");
        let (topic, key) = &expected[i];
        let position: Position = result["position"].as_str().unwrap().parse().unwrap();
        assert_eq!(position.topic, *topic);
        assert_eq!(result["topic"], *topic);
        assert_eq!(result["partition"], position.partition);
        assert_eq!(result["offset"], position.offset);
        let event_id = result["event_id"].as_str().unwrap();
        uuid::Uuid::parse_str(event_id).unwrap();
        let (t, k, partition, offset, event_type) = &in_kafka[event_id];
        assert_eq!((t, k), (topic, key), "event {i} in the wrong topic or key");
        assert_eq!((*partition, *offset), (position.partition, position.offset));
        assert_eq!(event_type, event["type"].as_str().unwrap());
        if let Some((p, before)) = last_offset.insert((topic, key.clone()), (*partition, *offset)) {
            assert_eq!(p, *partition, "same key, same partition");
            assert!(
                *offset > before,
                "event {i} ({key}) overtook an earlier one"
            );
        }
    }
    assert_eq!(results[4]["event_id"], chosen_id, "a sent event_id is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalid_event_refuses_the_whole_batch() {
    let kafka = Kafka::start().await;
    let app = app(&kafka);
    let mut wrong_type = progress("u-1", 2);
    wrong_type["data"]["position_ms"] = json!("2000");
    let mut missing = bookmark("u-1", "c-1");
    missing["data"]
        .as_object_mut()
        .unwrap()
        .remove("content_id");
    let events = vec![
        progress("u-1", 1),
        wrong_type,
        order_placed("o-1"),
        json!({"type": "NoSuchEvent", "data": {}}),
        missing,
        stock("sku-1", 1),
        progress(&"u".repeat(129), 1),
    ];
    let reply = post_batch(&app, events).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "invalid_batch");
    assert_eq!(
        reply.body["error"]["message"],
        "4 of 7 events are invalid; nothing was published"
    );
    let items: Vec<(u64, &str, Option<&str>)> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["index"].as_u64().unwrap(),
                i["error"]["code"].as_str().unwrap(),
                i["error"]["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            (1, "invalid_event", Some("position_ms")),
            (3, "unknown_event_type", None),
            (4, "invalid_event", Some("content_id")),
            (6, "invalid_event", Some("user_id")),
        ],
        "{}",
        reply.body
    );
    for item in reply.body["items"].as_array().unwrap() {
        assert!(
            item["error"]["message"].as_str().unwrap().len() > 10,
            "{item}"
        );
    }
    nothing_produced(&kafka);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_malformed_batches_get_their_errors() {
    let defaults = IngestConfig::default();
    assert_eq!(
        (
            defaults.max_batch_events,
            defaults.max_batch_bytes,
            defaults.max_in_flight
        ),
        (500, 1024 * 1024, 1024)
    );
    let kafka = Kafka::start().await;
    let config = IngestConfig {
        max_batch_events: 3,
        max_batch_bytes: 2048,
        ..IngestConfig::default()
    };
    let app = app_with(&kafka, config, Duration::from_secs(5));
    let four = json!({"events": [progress("u-1", 1), progress("u-1", 2), progress("u-1", 3),
                                 progress("u-1", 4)]});
    let big = json!({"events": [{"type": "PlaybackProgressed", "data": {
        "user_id": "u-1", "content_id": "c-1", "position_ms": 1, "duration_ms": 2,
        "device": "x".repeat(3000)}}]});
    // (body, status, code, field)
    let cases: Vec<(String, StatusCode, &str, Option<&str>)> = vec![
        (
            four.to_string(),
            StatusCode::BAD_REQUEST,
            "batch_too_large",
            Some("events"),
        ),
        (
            big.to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
        (
            r#"{"events":[]}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events"),
        ),
        (
            r#"{"events":{}}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events"),
        ),
        (
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events"),
        ),
        ("[]".into(), StatusCode::BAD_REQUEST, "invalid_batch", None),
        (
            json!({"events": [progress("u-1", 1)], "extra": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("extra"),
        ),
        (
            json!({"events": [{"data": {}}]}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events[0].type"),
        ),
        (
            json!({"events": [progress("u-1", 1), {"type": 7, "data": {}}]}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events[1].type"),
        ),
        (
            json!({"events": [progress("u-1", 1), {"type": "BookmarkAdded", "data": []}]})
                .to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events[1].data"),
        ),
        (
            json!({"events": [{"type": "BookmarkAdded"}]}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events[0].data"),
        ),
        (
            json!({"events": ["PlaybackProgressed"]}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events[0]"),
        ),
        (
            json!({"events": [{"type": "BookmarkAdded", "data": {}, "key": "u"}]}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            Some("events[0].key"),
        ),
        (
            r#"{"events":[{"type""#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let shown: String = body.chars().take(60).collect();
        let reply = post(&app, BATCH, body).await;
        assert_eq!(reply.status, status, "{shown} → {}", reply.body);
        assert_eq!(
            reply.body["error"]["code"], code,
            "{shown} → {}",
            reply.body
        );
        assert_eq!(
            reply.body["error"]["field"].as_str(),
            field,
            "{shown} → {}",
            reply.body
        );
        assert!(reply.body["error"]["message"].as_str().unwrap().len() > 10);
    }
    let req = Request::post(BATCH)
        .header("content-type", "text/plain")
        .body(Body::from(
            json!({"events": [progress("u-1", 1)]}).to_string(),
        ))
        .unwrap();
    let reply = call(&app, req).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.body["error"]["code"], "unsupported_media_type");

    // Exactly at the count limit is fine.
    let three = vec![progress("u-1", 1), progress("u-1", 2), progress("u-1", 3)];
    let reply = post_batch(&app, three).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(kafka.read_all("user-activity").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_fails_every_event_with_503() {
    let kafka = Kafka::start().await;
    let app = app_with(&kafka, IngestConfig::default(), Duration::from_millis(1500));
    // Registers the schemas while the broker is up.
    let reply = post_batch(&app, vec![progress("u-1", 1), stock("sku-1", 1)]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);

    kafka.cluster.broker_down(1).unwrap();
    let reply = post_batch(
        &app,
        vec![progress("u-1", 2), stock("sku-1", 2), progress("u-1", 3)],
    )
    .await;
    kafka.cluster.broker_up(1).unwrap();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["status"], 503, "{r}");
        assert_eq!(r["error"]["code"], "broker_unavailable", "{r}");
        uuid::Uuid::parse_str(r["event_id"].as_str().unwrap()).unwrap();
    }
    // The third event shares the first's key: it waits for it, and is not sent after it failed.
    assert!(
        results[2]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not attempted: event 0"),
        "{}",
        results[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_service_answers_429_at_once_then_recovers() {
    let kafka = Kafka::start().await;
    let config = IngestConfig {
        max_in_flight: 2,
        ..IngestConfig::default()
    };
    let app = app_with(&kafka, config, Duration::from_secs(5));
    let body = progress("u-1", 1)["data"].to_string().into_bytes();
    let (head, tail) = body.split_at(10);

    // Two requests whose bodies are still arriving hold the two slots.
    let hold = || {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, Infallible>>();
        tx.unbounded_send(Ok(Bytes::copy_from_slice(head))).unwrap();
        let req = Request::post("/v1/events/PlaybackProgressed")
            .header("content-type", "application/json")
            .body(Body::from_stream(rx))
            .unwrap();
        let app = app.clone();
        let task = tokio::spawn(async move { call(&app, req).await });
        (tx, task)
    };
    let mut held = vec![hold(), hold()];

    // Any /v1 request is now refused at once (a cheap one: 404 when the service has room).
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        // A probe may have held a slot while a held request arrived, which was then
        // (rightly) refused: send that one again.
        for slot in &mut held {
            if slot.1.is_finished() {
                let (_, task) = std::mem::replace(slot, hold());
                let refused = task.await.unwrap();
                assert_eq!(
                    refused.status,
                    StatusCode::TOO_MANY_REQUESTS,
                    "{}",
                    refused.body
                );
            }
        }
        let reply = post(&app, "/v1/events/NoSuchType", "{}").await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            break reply;
        }
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        assert!(
            Instant::now() < deadline,
            "the held requests never filled the slots"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(reply.body["error"]["code"], "overloaded", "{}", reply.body);
    assert!(reply.body["error"]["message"].as_str().unwrap().len() > 10);
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    let started = Instant::now();
    let reply = post_batch(&app, vec![progress("u-1", 9)]).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "429 must not wait"
    );
    // Operations routes and the OpenAPI document are not limited.
    for path in ["/healthz", "/openapi.json"] {
        let reply = call(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} while saturated");
    }

    // The held bodies complete: both are published, and the service has room again.
    for (tx, task) in held {
        tx.unbounded_send(Ok(Bytes::copy_from_slice(tail))).unwrap();
        drop(tx);
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    }
    let reply = post_batch(&app, vec![progress("u-1", 2)]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(kafka.read_all("user-activity").len(), 3);
}

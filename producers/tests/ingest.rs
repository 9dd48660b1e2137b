//! The ingest service against an in-process Kafka and our registry: hostile input gets its
//! documented status and produces nothing; valid events land framed, keyed and with
//! headers; a broker outage gives 503 and loses no accepted event.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use fleuve_producers::ingest::{self, IngestConfig};
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_service::AlwaysReady;
use fleuve_testkit::Kafka;
use http_body_util::BodyExt;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use serde_json::{json, Value};
use tower::ServiceExt;

mod common;

fn app(kafka: &Kafka, delivery_timeout: Duration) -> Router {
    common::app_with(kafka, IngestConfig::default(), delivery_timeout)
}

async fn send(
    app: &Router,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value, Option<String>) {
    let req = Request::post(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let reply = common::call(app, req).await;
    (reply.status, reply.body, reply.retry_after)
}

fn valid() -> Value {
    json!({"user_id":"u-1","content_id":"c-1","position_ms":1000,"duration_ms":60000,"device":"web"})
}

fn with(field: &str, value: Value) -> Vec<u8> {
    let mut v = valid();
    v[field] = value;
    v.to_string().into_bytes()
}

fn without(field: &str) -> Vec<u8> {
    let mut v = valid();
    v.as_object_mut().unwrap().remove(field);
    v.to_string().into_bytes()
}

fn nested(depth: usize) -> Vec<u8> {
    let mut s = String::new();
    for _ in 0..depth {
        s.push_str("{\"a\":");
    }
    s.push('1');
    for _ in 0..depth {
        s.push('}');
    }
    format!(r#"{{"user_id":"u","content_id":"c","position_ms":1,"duration_ms":2,"device":"web","x":{s}}}"#).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_its_status_and_produces_nothing() {
    let kafka = Kafka::start().await;
    let app = app(&kafka, Duration::from_secs(5));
    let pp = "/v1/events/PlaybackProgressed";
    let json = "application/json";
    let long_id = "u".repeat(129);
    // (path, content type, body, status, error code, field)
    type Case = (
        &'static str,
        &'static str,
        Vec<u8>,
        StatusCode,
        &'static str,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            pp,
            json,
            b"{\"user_id\": \"u-1\", \"content".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            pp,
            json,
            b"".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            pp,
            json,
            b"\"just a string\"".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            pp,
            json,
            b"{\"user_id\":\"\xff\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            pp,
            json,
            with("position_ms", json!("1000")),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("position_ms"),
        ),
        (
            pp,
            json,
            with("position_ms", json!(1.5)),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("position_ms"),
        ),
        (
            pp,
            json,
            with("position_ms", json!(-1)),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("position_ms"),
        ),
        (
            pp,
            json,
            with("duration_ms", json!(18_446_744_073_709_551_615u64)),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("duration_ms"),
        ),
        (
            pp,
            json,
            with("duration_ms", json!(1e300)),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("duration_ms"),
        ),
        (
            pp,
            json,
            with("user_id", json!(42)),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("user_id"),
        ),
        (
            pp,
            json,
            with("user_id", json!(long_id)),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("user_id"),
        ),
        (
            pp,
            json,
            with("user_id", json!("a\u{7}b")),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("user_id"),
        ),
        (
            pp,
            json,
            with("device", json!(null)),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("device"),
        ),
        (
            pp,
            json,
            with("occurred_at", json!("yesterday")),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("occurred_at"),
        ),
        (
            pp,
            json,
            with("event_id", json!("123")),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("event_id"),
        ),
        (
            pp,
            json,
            with("correlation_id", json!(["x"])),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("correlation_id"),
        ),
        (
            pp,
            json,
            with("extra", json!(1)),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("extra"),
        ),
        (
            pp,
            json,
            without("user_id"),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("user_id"),
        ),
        (
            pp,
            json,
            nested(200),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            pp,
            json,
            nested(20),
            StatusCode::BAD_REQUEST,
            "invalid_event",
            Some("x"),
        ),
        (
            pp,
            json,
            vec![b' '; 65 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
        (
            pp,
            "text/plain",
            valid().to_string().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            pp,
            "application/x-www-form-urlencoded",
            b"user_id=u".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "/v1/events/NoSuchType",
            json,
            valid().to_string().into_bytes(),
            StatusCode::NOT_FOUND,
            "unknown_event_type",
            None,
        ),
        (
            "/v1/events/..%2F..%2Fetc",
            json,
            valid().to_string().into_bytes(),
            StatusCode::NOT_FOUND,
            "unknown_event_type",
            None,
        ),
        (
            "/v2/whatever",
            json,
            b"{}".to_vec(),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
    ];
    for (path, content_type, body, status, code, field) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (got, reply, _) = send(&app, path, content_type, body).await;
        assert_eq!(got, status, "{path} {shown} → {reply}");
        assert_eq!(reply["error"]["code"], code, "{shown} → {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.len() > 10, "{shown}: message too vague: {message}");
        assert_eq!(reply["error"]["field"].as_str(), field, "{shown} → {reply}");
    }
    assert!(
        kafka.read_all("user-activity").is_empty(),
        "a refused request produced a record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_are_framed_keyed_and_carry_headers() {
    let kafka = Kafka::start().await;
    let app = app(&kafka, Duration::from_secs(5));
    let mut body = valid();
    body["correlation_id"] = json!("req-7");
    body["occurred_at"] = json!("2026-11-22T10:00:00Z");
    let (status, reply, _) = send(
        &app,
        "/v1/events/PlaybackProgressed",
        "application/json; charset=utf-8",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let event_id = reply["event_id"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&event_id).unwrap();
    let position: fleuve_kafka::Position = reply["position"].as_str().unwrap().parse().unwrap();
    assert_eq!(position.topic, "user-activity");
    assert_eq!(json!(position.partition), reply["partition"]);
    assert_eq!(json!(position.offset), reply["offset"]);

    let records = kafka.read_all("user-activity");
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.partition, r.offset),
        (position.partition, position.offset)
    );
    assert_eq!(r.key.as_deref(), Some(&b"u-1"[..]));
    assert_eq!(r.headers["event_type"], "PlaybackProgressed");
    assert_eq!(r.headers["event_id"], event_id);
    assert_eq!(r.headers["correlation_id"], "req-7");
    let payload = r.payload.as_ref().unwrap();
    assert_eq!(payload[0], 0, "Confluent magic byte");
    let decoder = AvroDecoder::new(SrSettings::new(kafka.registry_url.clone()));
    let decoded = decoder.decode(Some(payload)).await.unwrap();
    let event =
        <fleuve_schemas::PlaybackProgressed as fleuve_schemas::Event>::from_avro(&decoded.value)
            .unwrap();
    assert_eq!(event.event_id, event_id);
    assert_eq!(event.occurred_at, 1_795_341_600_000);
    assert_eq!(event.producer, "http-ingest");
    assert_eq!(event.correlation_id.as_deref(), Some("req-7"));
    assert_eq!((event.position_ms, event.duration_ms), (1000, 60000));

    // Its telemetry: request counts by route template, produce latency, in-flight gauge.
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for series in [
        r#"fleuve_ingest_requests_total{route="/v1/events/{event_type}",status="202"}"#,
        "fleuve_ingest_produce_duration_seconds_count",
        "fleuve_ingest_request_duration_seconds_bucket",
        "fleuve_ingest_in_flight_requests",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_gives_503_and_loses_no_accepted_event() {
    let kafka = Kafka::start().await;
    let app = app(&kafka, Duration::from_millis(1500));
    let path = "/v1/events/PlaybackProgressed";
    let mut accepted = Vec::new();
    let post = |i: usize| {
        let app = app.clone();
        async move {
            let mut body = valid();
            body["user_id"] = json!(format!("u-{i}"));
            send(
                &app,
                path,
                "application/json",
                body.to_string().into_bytes(),
            )
            .await
        }
    };
    for i in 0..5 {
        let (status, reply, _) = post(i).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
        accepted.push(reply["event_id"].as_str().unwrap().to_owned());
    }
    kafka.cluster.broker_down(1).unwrap();
    let mut refused = 0;
    for i in 5..8 {
        let (status, reply, retry_after) = post(i).await;
        if status == StatusCode::ACCEPTED {
            accepted.push(reply["event_id"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
            assert_eq!(reply["error"]["code"], "broker_unavailable");
            assert_eq!(retry_after.as_deref(), Some("1"));
            refused += 1;
        }
    }
    assert!(refused > 0, "no request noticed the outage");
    kafka.cluster.broker_up(1).unwrap();
    let mut recovered = false;
    for i in 8..40 {
        let (status, reply, _) = post(i).await;
        if status == StatusCode::ACCEPTED {
            accepted.push(reply["event_id"].as_str().unwrap().to_owned());
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        recovered,
        "ingest did not recover after the broker came back"
    );
    let in_topic: Vec<String> = kafka
        .read_all("user-activity")
        .into_iter()
        .map(|r| r.headers["event_id"].clone())
        .collect();
    for id in &accepted {
        assert!(
            in_topic.contains(id),
            "accepted event {id} is missing from the topic"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_only_a_token_with_events_write_publishes() {
    use fleuve_service::auth::{mint_hs256, AuthConfig, Authenticator};

    async fn post_with(
        app: &Router,
        path: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = Request::post(path).header("content-type", "application/json");
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            www,
        )
    }

    const SECRET: &str = "ingest-test-secret-0123456789abcdef";
    let kafka = Kafka::start().await;
    let auth = Authenticator::new(AuthConfig {
        leeway_secs: 0,
        ..AuthConfig::hs256(SECRET)
    })
    .unwrap();
    let publisher = Publisher::new(PublisherConfig::new(
        kafka.config().with_delivery_timeout(Duration::from_secs(5)),
        &kafka.registry_url,
        "test",
    ))
    .unwrap();
    let app = ingest::router(
        publisher,
        IngestConfig {
            auth: Some(auth),
            ..Default::default()
        },
        Arc::new(AlwaysReady),
    );
    let path = "/v1/events/PlaybackProgressed";
    let hour = Duration::from_secs(3600);
    let writer = mint_hs256(SECRET, "svc-player", &["events:write"], hour).unwrap();
    let reader = mint_hs256(SECRET, "svc-front", &["projections:read"], hour).unwrap();
    let forged = mint_hs256(
        "not-the-secret-not-the-secret-0123",
        "x",
        &["events:write"],
        hour,
    )
    .unwrap();
    let expired = mint_hs256(SECRET, "svc-player", &["events:write"], Duration::ZERO).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let challenge = r#"Bearer realm="fleuve", error="invalid_token""#;
    // (path, Authorization, status, code, WWW-Authenticate)
    let cases: Vec<(String, Option<String>, StatusCode, &str, String)> = vec![
        (
            path.into(),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            r#"Bearer realm="fleuve""#.into(),
        ),
        (
            path.into(),
            Some("Bearer garbage".into()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            challenge.into(),
        ),
        (
            path.into(),
            Some(format!("Bearer {expired}")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            challenge.into(),
        ),
        (
            path.into(),
            Some(format!("Bearer {forged}")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            challenge.into(),
        ),
        (
            path.into(),
            Some(format!("Bearer {reader}")),
            StatusCode::FORBIDDEN,
            "forbidden",
            r#"Bearer error="insufficient_scope", scope="events:write""#.into(),
        ),
        (
            path.into(),
            Some("Basic c3ZjOnB3ZA==".into()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            challenge.into(),
        ),
        // A token in the query string is not looked at.
        (
            format!("{path}?access_token={writer}"),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            r#"Bearer realm="fleuve""#.into(),
        ),
        // Every /v1 route is behind the check, the batch one too.
        (
            "/v1/events:batch".into(),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            r#"Bearer realm="fleuve""#.into(),
        ),
    ];
    for (path, authorization, status, code, www) in cases {
        let shown = authorization.as_deref().unwrap_or("(none)").to_owned();
        let (got, reply, got_www) = post_with(
            &app,
            &path,
            authorization.as_deref(),
            valid().to_string().into_bytes(),
        )
        .await;
        assert_eq!(got, status, "{path} {shown} → {reply}");
        assert_eq!(reply["error"]["code"], code, "{shown} → {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.len() > 10, "{shown}: message too vague: {message}");
        for token in [&writer, &reader, &forged, &expired] {
            assert!(!message.contains(token.as_str()), "the token was echoed");
        }
        assert_eq!(got_www.as_deref(), Some(www.as_str()), "{shown}");
    }
    let (_, reply, _) = post_with(
        &app,
        path,
        Some(&format!("Bearer {expired}")),
        valid().to_string().into_bytes(),
    )
    .await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired at"),
        "{reply}"
    );
    assert!(
        kafka.read_all("user-activity").is_empty(),
        "a refused request produced a record"
    );

    let (status, reply, _) = post_with(
        &app,
        path,
        Some(&format!("Bearer {writer}")),
        valid().to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(kafka.read_all("user-activity").len(), 1);

    for open in ["/healthz", "/readyz", "/metrics"] {
        let resp = app
            .clone()
            .oneshot(Request::get(open).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{open} needs no token");
    }
}

//! The query API over a real embedded store, through `tower::ServiceExt::oneshot`.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails at once on what it does not expect"
)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use common::apply_progress;
use fleuve_projections::embedded::EmbeddedStore;
use fleuve_projections::progress::{EventVersion, Progress};
use fleuve_projections::testing::FaultyStore;
use fleuve_projections::{Store, StoreError};
use fleuve_query_api::{router, QueryConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

struct App {
    router: Router,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap(),
    );
    App {
        router: router(store.clone(), QueryConfig::default()),
        store,
        _dir: dir,
    }
}

fn progress(user: &str, content: &str, at: i64, position_ms: i64) -> Progress {
    Progress {
        user_id: user.into(),
        content_id: content.into(),
        position_ms,
        duration_ms: 5_400_000,
        device: "tv".into(),
        event_id: format!("ev-{content}-{at}"),
        version: EventVersion {
            occurred_at_ms: at,
            offset: 1,
        },
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn send(router: &Router, method: &str, uri: &str) -> Resp {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(router: &Router, uri: &str) -> Resp {
    send(router, "GET", uri).await
}

/// Asserts an ApiError body and returns its message.
fn assert_error(resp: &Resp, status: StatusCode, code: &str, field: Option<&str>) -> String {
    assert_eq!(
        resp.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(
        resp.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let body = resp.json();
    let err = body["error"].as_object().expect("an `error` object");
    assert_eq!(err["code"], code, "{body}");
    assert_eq!(err.get("field").and_then(Value::as_str), field, "{body}");
    let message = err["message"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    message
}

#[tokio::test]
async fn get_progress_returns_the_row() {
    let app = app().await;
    apply_progress(
        &app.store,
        &[progress("u-1", "film-42", 1_714_594_503_120, 61_000)],
        &[],
    )
    .await;
    let resp = get(&app.router, "/v1/users/u-1/progress/film-42").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        resp.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    assert_eq!(
        resp.json(),
        json!({
            "user_id": "u-1",
            "content_id": "film-42",
            "position_ms": 61000,
            "duration_ms": 5400000,
            "device": "tv",
            "updated_at": "2024-05-01T20:15:03.120Z",
            "event_id": "ev-film-42-1714594503120"
        })
    );
    // Field order as documented.
    assert!(String::from_utf8_lossy(&resp.body)
        .starts_with(r#"{"user_id":"u-1","content_id":"film-42","position_ms""#));
}

#[tokio::test]
async fn percent_encoded_ids_are_decoded() {
    let app = app().await;
    apply_progress(&app.store, &[progress("ü/1", "a b", 0, 5)], &[]).await;
    let resp = get(&app.router, "/v1/users/%C3%BC%2F1/progress/a%20b").await;
    assert_eq!(
        resp.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(resp.json()["user_id"], "ü/1");
    assert_eq!(resp.json()["content_id"], "a b");
    assert_eq!(resp.json()["updated_at"], "1970-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn missing_progress_is_404_naming_user_and_content() {
    let app = app().await;
    let resp = get(&app.router, "/v1/users/u-9/progress/film-7").await;
    let msg = assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
    assert!(msg.contains("u-9") && msg.contains("film-7"), "{msg}");
}

#[tokio::test]
async fn list_progress_by_content_id() {
    let app = app().await;
    apply_progress(
        &app.store,
        &[
            progress("u-1", "old", 1_000, 1),
            progress("u-1", "new", 3_000, 3),
            progress("u-1", "mid", 2_000, 2),
            progress("u-2", "other", 9_000, 9),
        ],
        &[],
    )
    .await;
    let resp = get(&app.router, "/v1/users/u-1/progress").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        resp.json(),
        json!({
            "items": [
                {"user_id":"u-1","content_id":"mid","position_ms":2,"duration_ms":5400000,
                 "device":"tv","updated_at":"1970-01-01T00:00:02.000Z","event_id":"ev-mid-2000"},
                {"user_id":"u-1","content_id":"new","position_ms":3,"duration_ms":5400000,
                 "device":"tv","updated_at":"1970-01-01T00:00:03.000Z","event_id":"ev-new-3000"},
                {"user_id":"u-1","content_id":"old","position_ms":1,"duration_ms":5400000,
                 "device":"tv","updated_at":"1970-01-01T00:00:01.000Z","event_id":"ev-old-1000"}
            ],
            "next_cursor": null
        })
    );
    // A user without rows: an empty list, not a 404.
    let resp = get(&app.router, "/v1/users/nobody/progress").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json(), json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn pagination_through_http_cursors() {
    let app = app().await;
    let rows: Vec<Progress> = (0..45)
        .map(|i| progress("u-1", &format!("c{i:02}"), 10_000 + i, i))
        .collect();
    apply_progress(&app.store, &rows, &[]).await;
    let mut seen = Vec::new();
    let mut uri = "/v1/users/u-1/progress?limit=10".to_owned();
    let mut pages = 0;
    loop {
        let resp = get(&app.router, &uri).await;
        assert_eq!(resp.status, StatusCode::OK);
        let body = resp.json();
        let items = body["items"].as_array().unwrap();
        pages += 1;
        seen.extend(
            items
                .iter()
                .map(|i| i["content_id"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), 10);
                // Cursors are URL-safe as they are.
                assert!(c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                uri = format!("/v1/users/u-1/progress?limit=10&cursor={c}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let expected: Vec<String> = (0..45).map(|i| format!("c{i:02}")).collect();
    assert_eq!(seen, expected);

    // Default limit is 20.
    let resp = get(&app.router, "/v1/users/u-1/progress").await;
    assert_eq!(resp.json()["items"].as_array().unwrap().len(), 20);
    // An empty cursor means the first page.
    let resp = get(&app.router, "/v1/users/u-1/progress?limit=1&cursor=").await;
    assert_eq!(resp.json()["items"][0]["content_id"], "c00");
    // The maximum is accepted.
    let resp = get(&app.router, "/v1/users/u-1/progress?limit=100").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json()["items"].as_array().unwrap().len(), 45);
}

#[tokio::test]
async fn bad_limits_are_400_with_clear_messages() {
    let app = app().await;
    let cases = [
        ("0", "at least 1"),
        ("abc", "an integer from 1 to 100"),
        ("100000", "at most 100"),
        ("101", "at most 100"),
        ("-3", "an integer from 1 to 100"),
        ("", "an integer from 1 to 100"),
    ];
    for (limit, expected) in cases {
        let resp = get(
            &app.router,
            &format!("/v1/users/u-1/progress?limit={limit}"),
        )
        .await;
        let msg = assert_error(
            &resp,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("limit"),
        );
        assert!(msg.contains(expected), "limit={limit}: {msg}");
    }
}

#[tokio::test]
async fn bad_cursors_are_400_invalid_cursor() {
    let app = app().await;
    let rows: Vec<Progress> = (0..3)
        .map(|i| progress("u-1", &format!("c{i}"), i, i))
        .collect();
    apply_progress(&app.store, &rows, &[]).await;
    let first = get(&app.router, "/v1/users/u-1/progress?limit=1")
        .await
        .json();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    for uri in [
        "/v1/users/u-1/progress?cursor=garbage".to_owned(),
        "/v1/users/u-1/progress?cursor=%FF%FE".to_owned(),
        format!(
            "/v1/users/u-1/progress?cursor={}",
            &cursor[..cursor.len() - 3]
        ),
        // Another user's list.
        format!("/v1/users/u-2/progress?cursor={cursor}"),
    ] {
        let resp = get(&app.router, &uri).await;
        assert_error(
            &resp,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            Some("cursor"),
        );
    }
}

#[tokio::test]
async fn bad_ids_are_400_naming_the_field() {
    let app = app().await;
    let long = "x".repeat(129);
    let ok_128 = "x".repeat(128);
    let cases = [
        (format!("/v1/users/{long}/progress/c"), "user_id"),
        (format!("/v1/users/u/progress/{long}"), "content_id"),
        (format!("/v1/users/{long}/progress"), "user_id"),
        ("/v1/users/a%00b/progress/c".to_owned(), "user_id"),
        // Empty segments.
        ("/v1/users//progress".to_owned(), "user_id"),
        ("/v1/users//progress/c".to_owned(), "user_id"),
        ("/v1/users/u/progress/a%0Ab".to_owned(), "content_id"),
        ("/v1/users/a%1Fb/progress".to_owned(), "user_id"),
        // 65 two-byte characters: 130 bytes.
        (
            format!("/v1/users/{}/progress", "%C3%A9".repeat(65)),
            "user_id",
        ),
    ];
    for (uri, field) in cases {
        let resp = get(&app.router, &uri).await;
        assert_error(
            &resp,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some(field),
        );
    }
    // 128 bytes is fine (no such row: 404, not 400).
    let resp = get(&app.router, &format!("/v1/users/{ok_128}/progress/c")).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    // Invalid UTF-8 after percent-decoding.
    let resp = get(&app.router, "/v1/users/%FF/progress/c").await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_parameter", None);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let app = app().await;
    for uri in [
        "/",
        "/v1/users",
        "/v1/users/u-1",
        "/v2/users/u-1/progress",
        "/v1/users/u/progress/",
    ] {
        let resp = get(&app.router, uri).await;
        assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
    }
    let resp = send(&app.router, "POST", "/v1/users/u-1/progress").await;
    assert_error(
        &resp,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
}

#[tokio::test]
async fn ops_routes_and_readiness() {
    let app = app().await;
    assert_eq!(get(&app.router, "/healthz").await.status, StatusCode::OK);
    // The first ping runs right away; give it a moment.
    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        ready = get(&app.router, "/readyz").await.status;
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ready, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = app().await;
    apply_progress(&app.store, &[progress("m-1", "c", 1, 1)], &[]).await;
    get(&app.router, "/v1/users/m-1/progress/c").await;
    get(&app.router, "/v1/users/m-1/progress/missing").await;
    get(&app.router, "/v1/users/m-1/progress?limit=0").await;
    get(&app.router, "/nowhere").await;
    let resp = get(&app.router, "/metrics").await;
    assert_eq!(resp.status, StatusCode::OK);
    let text = String::from_utf8(resp.body).unwrap();
    for needle in [
        r#"fleuve_query_requests_total{route="/v1/users/{user_id}/progress/{content_id}",status="200"}"#,
        r#"fleuve_query_requests_total{route="/v1/users/{user_id}/progress/{content_id}",status="404"}"#,
        r#"fleuve_query_requests_total{route="/v1/users/{user_id}/progress",status="400"}"#,
        r#"fleuve_query_requests_total{route="unmatched",status="404"}"#,
        r#"fleuve_query_request_duration_seconds_bucket{route="/v1/users/{user_id}/progress/{content_id}""#,
        r#"fleuve_query_request_duration_seconds_count{route="/v1/users/{user_id}/progress"}"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    // User input never becomes a label value.
    assert!(!text.contains("m-1"));
}

#[tokio::test]
async fn store_errors_map_to_503_and_500() {
    // Stores that fail every call.
    let app = app().await;
    let failing = |error: fn() -> StoreError| {
        let store = FaultyStore::new(app.store.clone());
        store.faults().fail_every_call(Some(error));
        router(store, QueryConfig::default())
    };
    let unavailable = failing(|| StoreError::Unavailable("node down".into()));
    for uri in ["/v1/users/u/progress/c", "/v1/users/u/progress"] {
        let resp = get(&unavailable, uri).await;
        assert_error(&resp, StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
        assert_eq!(resp.headers.get(header::RETRY_AFTER).unwrap(), "1");
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        get(&unavailable, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let broken = failing(|| StoreError::Corrupt {
        key: "k".into(),
        reason: "bad bytes".into(),
    });
    let resp = get(&broken, "/v1/users/u/progress/c").await;
    let msg = assert_error(&resp, StatusCode::INTERNAL_SERVER_ERROR, "internal", None);
    assert!(msg.contains("bad bytes"), "{msg}");
    assert!(resp.headers.get(header::RETRY_AFTER).is_none());
}

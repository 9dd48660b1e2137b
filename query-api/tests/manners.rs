//! HTTP manners and read-your-writes of the query API, in process over a real embedded
//! store: `ETag`/`If-None-Match`, `Cache-Control`, gzip, request timeout, body limit, the one
//! error shape and `X-Fleuve-Position` waits (more in `read_your_writes.rs`; `/readyz` is
//! in `readiness.rs`).

#![expect(
    clippy::unwrap_used,
    reason = "a test fails at once on what it does not expect"
)]

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{apply_progress, assert_error, batch_get, get, get_with, App, Resp};
use fleuve_kafka::Position;
use fleuve_projections::progress::{EventVersion, Progress};
use fleuve_projections::testing::FaultyStore;
use fleuve_query_api::{router, QueryConfig};

fn h<'r>(resp: &'r Resp, name: &str) -> &'r str {
    resp.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", resp.headers))
        .to_str()
        .unwrap()
}

fn progress(user: &str, content: &str, position_ms: i64, offset: i64) -> Progress {
    Progress {
        user_id: user.into(),
        content_id: content.into(),
        position_ms,
        duration_ms: 5_400_000,
        device: "tv".into(),
        event_id: format!("ev-{content}-{offset}"),
        version: EventVersion {
            occurred_at_ms: 1_714_594_503_120,
            offset,
        },
    }
}

#[tokio::test]
async fn etag_and_if_none_match_give_304_and_change_with_the_data() {
    let a = App::open().await;
    let (app, store) = (&a.router, &a.store);
    apply_progress(store, &[progress("u-1", "c-1", 1_000, 1)], &[]).await;
    let uri = "/v1/users/u-1/progress/c-1";

    let first = get(app, uri, None).await;
    assert_eq!(first.status, StatusCode::OK);
    let etag = h(&first, "etag").to_owned();
    assert!(etag.starts_with("W/\"") && etag.len() == 36, "{etag}");
    assert_eq!(h(&first, "cache-control"), "private, no-cache");

    // Same data, same tag; If-None-Match with it → 304, no body, the validators kept.
    let again = get_with(app, uri, None, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(h(&again, "etag"), etag);
    assert_eq!(h(&again, "cache-control"), "private, no-cache");
    // A list of tags, one of them ours, and the strong form of ours, also match.
    for inm in [
        format!("\"nope\", {etag}"),
        etag.trim_start_matches("W/").to_owned(),
    ] {
        let r = get_with(app, uri, None, &[("if-none-match", &inm)]).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    }

    // New data, new tag: the old one no longer matches.
    apply_progress(store, &[progress("u-1", "c-1", 2_000, 2)], &[]).await;
    let changed = get_with(app, uri, None, &[("if-none-match", &etag)]).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.json()["position_ms"], 2_000);
    assert_ne!(h(&changed, "etag"), etag);

    // Errors are not tagged nor cached.
    let missing = get(app, "/v1/users/u-1/progress/none", None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", None);
    assert!(missing.headers.get("etag").is_none());
    assert_eq!(h(&missing, "cache-control"), "no-store");
}

/// The `Cache-Control` of every resource class, as docs/query-api.md ("Caching") lists it.
const CATALOG_ANONYMOUS: &str = "public, max-age=10";
const CATALOG_WITH_TOKEN: &str = "private, max-age=10";
const PER_CALLER: &str = "private, no-cache";
const NEVER_STORED: &str = "no-store";

#[test]
fn the_cache_controls_tested_are_the_documented_ones() {
    let docs = include_str!("../../docs/query-api.md");
    let caching = &docs[docs.find("## Caching").unwrap() + 3..];
    let caching = &caching[..caching.find("\n## ").unwrap_or(caching.len())];
    // Line breaks aside.
    let caching = caching.split_whitespace().collect::<Vec<_>>().join(" ");
    for documented in [
        format!(
            "catalog `{CATALOG_ANONYMOUS}` (anonymous) or `{CATALOG_WITH_TOKEN}` (with a token"
        ),
        format!("user, order and stock reads `{PER_CALLER}`"),
        format!("`POST` and errors `{NEVER_STORED}`"),
    ] {
        assert!(
            caching.contains(&documented),
            "{documented:?} is not in: {caching}"
        );
    }
}

#[tokio::test]
async fn cache_control_suits_each_resource() {
    use common::{bearer, bookmark, content, episode, order, progress, published, stock};

    let a = App::secured().await;
    a.progress(&[progress("alice", "film-1", 1_000, 5)]).await;
    a.bookmarks("alice", &[bookmark("film-1", 1_000)]).await;
    a.content(&published(content(
        "film-1",
        fleuve_projections::catalog::ContentKind::Programme,
        &["isp-a"],
    )))
    .await;
    a.content(&published(episode("ep-1", "show-1", 1, 1, &["isp-a"])))
        .await;
    a.order(&order("o-1", "alice", "shop-1", 1_000)).await;
    a.stock(&stock("sku-1", 5, 1)).await;
    let app = &a.router;
    let alice = bearer("alice", &["user"]);
    let shop = bearer("shop-1", &["seller"]);
    let partner = bearer("isp-a", &["partner"]);
    let admin = bearer("ops", &["admin"]);

    // (method, template, uri, caller, Cache-Control of its 200)
    let cases = [
        // Catalog reads: shared without a token; per caller with one (a partner sees its
        // own contents), whatever the token's scopes.
        (
            "GET",
            "/v1/catalog/contents/{content_id}",
            "/v1/catalog/contents/film-1",
            None,
            CATALOG_ANONYMOUS,
        ),
        (
            "GET",
            "/v1/catalog/contents/{content_id}",
            "/v1/catalog/contents/film-1",
            partner.clone(),
            CATALOG_WITH_TOKEN,
        ),
        (
            "GET",
            "/v1/catalog/contents/{content_id}",
            "/v1/catalog/contents/film-1",
            alice.clone(),
            CATALOG_WITH_TOKEN,
        ),
        (
            "GET",
            "/v1/catalog/contents/{content_id}",
            "/v1/catalog/contents/film-1",
            admin.clone(),
            CATALOG_WITH_TOKEN,
        ),
        (
            "GET",
            "/v1/catalog/programs/{program_id}/episodes",
            "/v1/catalog/programs/show-1/episodes",
            None,
            CATALOG_ANONYMOUS,
        ),
        (
            "GET",
            "/v1/catalog/programs/{program_id}/episodes",
            "/v1/catalog/programs/show-1/episodes",
            partner.clone(),
            CATALOG_WITH_TOKEN,
        ),
        // A POST answer is never stored, token or not.
        (
            "POST",
            "/v1/catalog/contents:batchGet",
            "/v1/catalog/contents:batchGet",
            None,
            NEVER_STORED,
        ),
        (
            "POST",
            "/v1/catalog/contents:batchGet",
            "/v1/catalog/contents:batchGet",
            partner.clone(),
            NEVER_STORED,
        ),
        // A user's, an order's and stock: kept by the caller, revalidated each time.
        (
            "GET",
            "/v1/users/{user_id}/progress/{content_id}",
            "/v1/users/alice/progress/film-1",
            alice.clone(),
            PER_CALLER,
        ),
        (
            "GET",
            "/v1/users/{user_id}/progress",
            "/v1/users/alice/progress",
            alice.clone(),
            PER_CALLER,
        ),
        (
            "GET",
            "/v1/users/{user_id}/bookmarks",
            "/v1/users/alice/bookmarks",
            alice.clone(),
            PER_CALLER,
        ),
        (
            "GET",
            "/v1/orders/{order_id}",
            "/v1/orders/o-1",
            alice.clone(),
            PER_CALLER,
        ),
        (
            "GET",
            "/v1/orders/{order_id}",
            "/v1/orders/o-1",
            shop.clone(),
            PER_CALLER,
        ),
        (
            "GET",
            "/v1/buyers/{buyer_id}/orders",
            "/v1/buyers/alice/orders",
            alice.clone(),
            PER_CALLER,
        ),
        (
            "GET",
            "/v1/sellers/{seller_id}/orders",
            "/v1/sellers/shop-1/orders",
            shop.clone(),
            PER_CALLER,
        ),
        (
            "GET",
            "/v1/inventory/{sku}",
            "/v1/inventory/sku-1",
            alice.clone(),
            PER_CALLER,
        ),
        (
            "GET",
            "/v1/inventory/{sku}",
            "/v1/inventory/sku-1",
            admin.clone(),
            PER_CALLER,
        ),
    ];
    let doc = fleuve_query_api::openapi::document(&QueryConfig::default());
    for (method, template, uri, caller, expected) in &cases {
        assert!(common::instance_of(template, uri), "{uri} is no {template}");
        let resp = if *method == "POST" {
            batch_get(app, r#"{"ids":["film-1","ep-1"]}"#, caller.as_deref()).await
        } else {
            get(app, uri, caller.as_deref()).await
        };
        let at = format!(
            "{method} {uri} with {}",
            if caller.is_some() {
                "a token"
            } else {
                "no token"
            }
        );
        assert_eq!(resp.status, StatusCode::OK, "{at}: {}", resp.text());
        assert_eq!(h(&resp, "cache-control"), *expected, "{at}");
        assert_eq!(resp.headers.contains_key("etag"), *method == "GET", "{at}");
        // The OpenAPI document gives the same policy for the operation.
        let documented = doc["paths"][template][method.to_lowercase()]["responses"]["200"]
            ["headers"]["Cache-Control"]["description"]
            .as_str()
            .unwrap();
        assert!(
            documented.contains(expected),
            "{at}: documented as {documented:?}"
        );
        // A 304 keeps the policy of the answer it stands for.
        if *method == "GET" {
            let etag = h(&resp, "etag").to_owned();
            let again = get_with(app, uri, caller.as_deref(), &[("if-none-match", &etag)]).await;
            assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{at}");
            assert_eq!(h(&again, "cache-control"), *expected, "{at}: 304");
        }
    }
    // Every operation is covered.
    for (method, template) in common::documented_operations() {
        assert!(
            cases
                .iter()
                .any(|(m, t, ..)| *m == method && *t == template),
            "no Cache-Control case for {method} {template}"
        );
    }
    // Errors are never stored, on every class of resource.
    for (uri, caller) in [
        ("/v1/catalog/contents/nope", None),
        (
            "/v1/catalog/contents/film-1",
            Some("Bearer garbage".to_owned()),
        ),
        ("/v1/users/alice/progress/nope", alice.clone()),
        ("/v1/users/alice/progress", None),
        ("/v1/users/alice/bookmarks", bearer("bob", &["user"])),
        ("/v1/orders/nope", alice.clone()),
        ("/v1/inventory/sku-1", partner.clone()),
    ] {
        let resp = get(app, uri, caller.as_deref()).await;
        assert!(resp.status.is_client_error(), "{uri}: {}", resp.status);
        assert_eq!(h(&resp, "cache-control"), NEVER_STORED, "{uri}");
        assert!(resp.headers.get("etag").is_none(), "{uri}");
    }
}

#[tokio::test]
async fn answers_are_gzipped_for_clients_that_accept_it() {
    let a = App::open().await;
    let app = &a.router;
    let rows: Vec<Progress> = (0..100)
        .map(|i| progress("u-z", &format!("content-{i:03}"), i * 1_000, 1))
        .collect();
    apply_progress(&a.store, &rows, &[]).await;
    let uri = "/v1/users/u-z/progress?limit=100";
    let plain = get(app, uri, None).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get("content-encoding").is_none());
    let zipped = get_with(app, uri, None, &[("accept-encoding", "gzip")]).await;
    assert_eq!(zipped.status, StatusCode::OK);
    assert_eq!(h(&zipped, "content-encoding"), "gzip");
    assert!(
        zipped.body.len() * 3 < plain.body.len(),
        "gzip should shrink a list"
    );
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain.body);
    // The tag is the same either way (weak: it describes the JSON, not the encoding).
    assert_eq!(h(&zipped, "etag"), h(&plain, "etag"));
}

#[tokio::test]
async fn oversized_bodies_and_plain_text_rejections_get_the_json_error() {
    let a = App::with(QueryConfig {
        max_body_bytes: 1_024,
        ..QueryConfig::default()
    })
    .await;
    let app = &a.router;
    let ids: Vec<String> = (0..200).map(|i| format!("content-{i}")).collect();
    let body = serde_json::json!({ "ids": ids }).to_string();
    assert!(body.len() > 1_024);
    let resp = batch_get(app, &body, None).await;
    let msg = assert_error(
        &resp,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
    assert!(msg.len() > 5, "{msg}");
}

#[tokio::test]
async fn a_slow_request_times_out_with_503_and_retry_after() {
    let a = App::open().await;
    // Reads take 5 s.
    let slow = FaultyStore::new(a.store.clone());
    slow.faults().read_delay(Duration::from_secs(5));
    let config = QueryConfig {
        request_timeout: Duration::from_millis(100),
        position_wait: Duration::from_millis(50),
        ..QueryConfig::default()
    };
    let app = &router(slow, config);
    let started = Instant::now();
    let resp = get(app, "/v1/users/u/progress/c", None).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let msg = assert_error(&resp, StatusCode::SERVICE_UNAVAILABLE, "timeout", None);
    assert!(msg.contains("100 ms"), "{msg}");
    assert_eq!(h(&resp, "retry-after"), "1");
}

#[tokio::test]
async fn a_read_waits_for_its_position_and_says_when_it_is_not_reached() {
    let a = App::with(QueryConfig {
        position_wait: Duration::from_millis(300),
        ..QueryConfig::default()
    })
    .await;
    let (app, store) = (&a.router, &a.store);
    apply_progress(store, &[progress("u-1", "c-1", 1_000, 10)], &[(2, 11)]).await;
    let uri = "/v1/users/u-1/progress/c-1";
    let read = |position: Position| async move {
        let token = position.token();
        get_with(app, uri, None, &[("x-fleuve-position", &token)]).await
    };

    // Already applied: answered at once.
    let resp = read(Position::new("user-activity", 2, 10)).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json()["position_ms"], 1_000);

    // Applied while the read waits: the read sees it.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            apply_progress(&store, &[progress("u-1", "c-1", 2_000, 11)], &[(2, 12)]).await;
        })
    };
    let resp = read(Position::new("user-activity", 2, 11)).await;
    writer.await.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json()["position_ms"], 2_000);

    // Never reached within the wait: 503, the header, and a message naming where.
    let started = Instant::now();
    let resp = read(Position::new("user-activity", 2, 500)).await;
    let waited = started.elapsed();
    let msg = assert_error(
        &resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "position_not_reached",
        None,
    );
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert_eq!(h(&resp, "x-fleuve-consistency"), "behind");
    assert_eq!(h(&resp, "retry-after"), "1");
    assert!(
        msg.contains("user_progress") && msg.contains("user-activity/2 offset 500"),
        "{msg}"
    );
    assert!(msg.contains("applied up to offset 11"), "{msg}");

    // A partition never applied says so.
    let resp = read(Position::new("user-activity", 0, 0)).await;
    let msg = assert_error(
        &resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "position_not_reached",
        None,
    );
    assert!(msg.contains("nothing from that partition"), "{msg}");

    // A position on a topic this projection does not read does not hold the read.
    let started = Instant::now();
    let resp = read(Position::new("orders", 0, 1_000_000)).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(250));

    // Garbage is a 400 naming the header.
    let resp = get_with(app, uri, None, &[("x-fleuve-position", "garbage")]).await;
    assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_position",
        Some("X-Fleuve-Position"),
    );
}

//! Every read route's answer, field by field, and every list walked to its end.

mod common;

use axum::http::{header, StatusCode};
use common::*;
use fleuve_projections::catalog::{ContentKind, ContentState, ContentStatus};
use fleuve_projections::orders::OrderStatus;
use fleuve_schemas::clock::now_ms;
use serde_json::{json, Value};

const T0: i64 = 1_714_594_503_120; // 2024-05-01T20:15:03.120Z

#[tokio::test]
async fn progress_one_row_and_the_whole_list() {
    let app = App::open().await;
    let rows: Vec<_> = (0..7)
        .map(|i| progress("u-1", &format!("c{i}"), T0 + i, i * 1_000))
        .collect();
    app.progress(&rows).await;
    app.progress(&[progress("u-2", "other", T0, 5)]).await;

    let resp = get(&app.router, "/v1/users/u-1/progress/c3", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({"user_id":"u-1","content_id":"c3","position_ms":3000,"duration_ms":5400000,
               "device":"tv","updated_at":"2024-05-01T20:15:03.123Z","event_id":"ev-c3-1714594503123"})
    );

    let (items, pages) = walk(&app.router, "/v1/users/u-1/progress", 3, None).await;
    assert_eq!(pages, 3);
    assert_eq!(
        ids(&items, "content_id"),
        ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]
    );
    assert_eq!(items[3], resp.json());
}

#[tokio::test]
async fn bookmarks_newest_first_walked_to_the_end() {
    let app = App::open().await;
    app.bookmarks(
        "u-1",
        &[
            bookmark("old", T0),
            bookmark("newest", T0 + 4_000),
            bookmark("mid", T0 + 2_000),
            bookmark("new", T0 + 3_000),
            bookmark("older", T0 - 1_000),
        ],
    )
    .await;
    app.bookmarks("u-2", &[bookmark("not-mine", T0)]).await;

    let resp = get(&app.router, "/v1/users/u-1/bookmarks?limit=2", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let body = resp.json();
    assert_eq!(
        body["items"],
        json!([
            {"content_id":"newest","added_at":"2024-05-01T20:15:07.120Z","event_id":"bm-newest"},
            {"content_id":"new","added_at":"2024-05-01T20:15:06.120Z","event_id":"bm-new"}
        ])
    );
    assert!(body["next_cursor"].is_string());
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["items", "next_cursor"]
    );

    let (items, pages) = walk(&app.router, "/v1/users/u-1/bookmarks", 2, None).await;
    assert_eq!(pages, 3);
    assert_eq!(
        ids(&items, "content_id"),
        ["newest", "new", "mid", "old", "older"]
    );

    // A user without bookmarks: an empty list.
    let resp = get(&app.router, "/v1/users/nobody/bookmarks", None).await;
    assert_eq!(resp.json(), json!({"items": [], "next_cursor": null}));
}

fn full_episode() -> ContentState {
    let mut c = episode("ep-1", "show-9", 1, 2, &["isp-a", "isp-b"]);
    c.description = Some("The second one".into());
    c.tags = vec!["drama".into(), "fr".into()];
    c.available_from_ms = T0 - 86_400_000;
    c.available_until_ms = Some(i64::MAX);
    c.rights[1].territories = vec!["BE".into(), "LU".into()];
    published(c)
}

#[tokio::test]
async fn a_content_field_by_field() {
    let app = App::open().await;
    app.content(&full_episode()).await;
    let resp = get(&app.router, "/v1/catalog/contents/ep-1", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert!(resp.varies_on_authorization());
    // Authentication off: the admin's view, every right.
    assert_eq!(
        resp.json(),
        json!({
            "content_id": "ep-1",
            "kind": "EPISODE",
            "program_id": "show-9",
            "season_number": 1,
            "episode_number": 2,
            "title": "Title of ep-1",
            "description": "The second one",
            "tags": ["drama", "fr"],
            "duration_ms": 1800000,
            "available_from": "2024-04-30T20:15:03.120Z",
            // i64::MAX ms is past year 9999: shown as the last instant RFC 3339 writes.
            "available_until": "9999-12-31T23:59:59.999Z",
            "rights": [
                {"partner": "isp-a", "territories": ["FR"]},
                {"partner": "isp-b", "territories": ["BE", "LU"]}
            ],
            "updated_at": "2024-05-01T20:15:03.120Z"
        })
    );

    // A programme with nothing optional.
    app.content(&published(content("film-1", ContentKind::Programme, &[])))
        .await;
    let resp = get(&app.router, "/v1/catalog/contents/film-1", None).await;
    assert_eq!(
        resp.json(),
        json!({
            "content_id": "film-1", "kind": "PROGRAMME", "program_id": null,
            "season_number": null, "episode_number": null, "title": "Title of film-1",
            "description": null, "tags": [], "duration_ms": null,
            "available_from": "1970-01-01T00:00:00.000Z", "available_until": null,
            "rights": [], "updated_at": "2024-05-01T20:15:03.120Z"
        })
    );
}

/// Contents that exist but are not publishable now, each a 404 like an unknown id.
async fn seed_unpublishable(app: &App) -> Vec<&'static str> {
    let mut closed = content("closed", ContentKind::Clip, &[]);
    closed.available_until_ms = Some(1_000);
    let mut future = content("future", ContentKind::Clip, &[]);
    future.available_from_ms = now_ms() + 10 * 86_400_000;
    let mut tombstone = state(
        content("deleted", ContentKind::Clip, &[]),
        ContentStatus::Deleted,
    );
    tombstone.content = None;
    for s in [
        published(closed),
        published(future),
        state(
            content("hidden", ContentKind::Clip, &[]),
            ContentStatus::Unpublished,
        ),
        tombstone,
    ] {
        app.content(&s).await;
    }
    vec!["closed", "future", "hidden", "deleted", "unknown"]
}

#[tokio::test]
async fn contents_not_publishable_now_are_404() {
    let app = App::open().await;
    for id in seed_unpublishable(&app).await {
        let resp = get(&app.router, &format!("/v1/catalog/contents/{id}"), None).await;
        let msg = assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
        assert!(
            msg.contains(&format!("`{id}`")) && msg.contains("publishable now"),
            "{msg}"
        );
        assert!(resp.varies_on_authorization(), "{id}");
    }
}

#[tokio::test]
async fn batch_get_in_the_order_asked_with_the_missing() {
    let app = App::open().await;
    app.content(&full_episode()).await;
    app.content(&published(content("film-1", ContentKind::Programme, &[])))
        .await;
    seed_unpublishable(&app).await;
    let resp = batch_get(
        &app.router,
        r#"{"ids":["film-1","unknown","ep-1","film-1","closed","hidden","unknown"]}"#,
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert!(resp.varies_on_authorization());
    let body = resp.json();
    assert_eq!(
        ids(body["items"].as_array().unwrap(), "content_id"),
        ["film-1", "ep-1"]
    );
    assert_eq!(body["missing"], json!(["unknown", "closed", "hidden"]));
    // Items are the same views as the single read.
    let single = get(&app.router, "/v1/catalog/contents/ep-1", None)
        .await
        .json();
    assert_eq!(body["items"][1], single);
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["items", "missing"]
    );

    // Nothing found: 200 with every id missing.
    let resp = batch_get(&app.router, r#"{"ids":["x","y"]}"#, None).await;
    assert_eq!(resp.json(), json!({"items": [], "missing": ["x", "y"]}));

    // Exactly the maximum (100) is accepted; `charset` is fine.
    let hundred: Vec<String> = (0..100).map(|i| format!("id-{i}")).collect();
    let resp = common::call(
        &app.router,
        "POST",
        "/v1/catalog/contents:batchGet",
        None,
        &[("content-type", "application/json; charset=utf-8")],
        serde_json::to_vec(&json!({ "ids": hundred })).unwrap(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["missing"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn the_batch_route_is_matched_literally_and_only_for_post() {
    let app = App::open().await;
    // The colon is literal: `contents:batchGet` is not a content id under `contents/`.
    let resp = get(&app.router, "/v1/catalog/contents:batchGet", None).await;
    let msg = assert_error(
        &resp,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    assert!(msg.contains("use POST"), "{msg}");
    assert_eq!(resp.header(header::ALLOW), Some("POST"));
    // A content whose id ends like the route is an ordinary content id.
    app.content(&published(content("x:batchGet", ContentKind::Clip, &[])))
        .await;
    let resp = get(&app.router, "/v1/catalog/contents/x:batchGet", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["content_id"], "x:batchGet");
    // Other spellings are no route.
    for uri in [
        "/v1/catalog/contents:batchget",
        "/v1/catalog/contents:batchGet/",
        "/v1/catalog/contents%3AbatchGet",
    ] {
        let resp = common::call(
            &app.router,
            "POST",
            uri,
            None,
            &[("content-type", "application/json")],
            br#"{"ids":["a"]}"#.to_vec(),
        )
        .await;
        let msg = assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
        assert!(msg.contains("no route for POST"), "{uri}: {msg}");
    }
    // The GET routes say GET.
    let resp = common::call(&app.router, "DELETE", "/v1/inventory/s", None, &[], vec![]).await;
    let msg = assert_error(
        &resp,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    assert!(msg.contains("use GET"), "{msg}");
}

/// A programme with two seasons: each season entry, its episodes, a clip; one episode
/// whose window closed; one in the future.
async fn seed_show(app: &App) {
    let mut season1 = content("s1", ContentKind::Season, &["isp-a"]);
    season1.program_id = Some("show-1".into());
    season1.season_number = Some(1);
    let mut season2 = season1.clone();
    season2.content_id = "s2".into();
    season2.season_number = Some(2);
    let mut clip = content("trailer", ContentKind::Clip, &[]);
    clip.program_id = Some("show-1".into());
    let mut closed = episode("e1-3", "show-1", 1, 3, &["isp-a"]);
    closed.available_until_ms = Some(1_000);
    let mut future = episode("e2-9", "show-1", 2, 9, &["isp-a"]);
    future.available_from_ms = now_ms() + 10 * 86_400_000;
    for c in [
        season1,
        episode("e1-1", "show-1", 1, 1, &["isp-a"]),
        episode("e1-2", "show-1", 1, 2, &[]),
        closed,
        episode("e1-10", "show-1", 1, 10, &["isp-b"]),
        season2,
        episode("e2-1", "show-1", 2, 1, &["isp-a", "isp-b"]),
        future,
        clip,
        episode("other", "show-2", 1, 1, &["isp-a"]),
    ] {
        app.content(&published(c)).await;
    }
}

#[tokio::test]
async fn episodes_in_listing_order_walked_to_the_end() {
    let app = App::open().await;
    seed_show(&app).await;
    let resp = get(
        &app.router,
        "/v1/catalog/programs/show-1/episodes?limit=2",
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert!(resp.varies_on_authorization());
    assert_eq!(
        resp.json()["items"],
        json!([
            {"content_id":"s1","kind":"SEASON","season_number":1,"episode_number":null,
             "title":"Title of s1","description":null,"duration_ms":null,
             "available_from":"1970-01-01T00:00:00.000Z","available_until":null},
            {"content_id":"e1-1","kind":"EPISODE","season_number":1,"episode_number":1,
             "title":"Title of e1-1","description":null,"duration_ms":1800000,
             "available_from":"1970-01-01T00:00:00.000Z","available_until":null}
        ])
    );
    let (items, pages) = walk(&app.router, "/v1/catalog/programs/show-1/episodes", 2, None).await;
    // The closed and future entries are dropped where they stood.
    assert_eq!(
        ids(&items, "content_id"),
        ["s1", "e1-1", "e1-2", "e1-10", "s2", "e2-1", "trailer"]
    );
    assert!(pages >= 4, "{pages}");
    // A programme without entries: an empty list.
    let resp = get(&app.router, "/v1/catalog/programs/none/episodes", None).await;
    assert_eq!(resp.json(), json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn partners_see_their_contents_and_rights_only() {
    let app = App::secured().await;
    app.content(&full_episode()).await;
    seed_show(&app).await;
    let isp_b = bearer("isp-b", &["partner"]);
    let resp = get(&app.router, "/v1/catalog/contents/ep-1", isp_b.as_deref()).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.json()["rights"],
        json!([{"partner": "isp-b", "territories": ["BE", "LU"]}])
    );
    let admin = bearer("ops", &["admin", "partner"]);
    let resp = get(&app.router, "/v1/catalog/contents/ep-1", admin.as_deref()).await;
    assert_eq!(resp.json()["rights"].as_array().unwrap().len(), 2);
    for public in [None, bearer("u-1", &["user"]), bearer("shop", &["seller"])] {
        let resp = get(&app.router, "/v1/catalog/contents/ep-1", public.as_deref()).await;
        assert_eq!(resp.status, StatusCode::OK);
        let body = resp.json();
        assert!(body.get("rights").is_none(), "{body}");
        assert_eq!(body["title"], "Title of ep-1");
    }

    // The partner's listing: its entries only; pages may be short, the walk is complete.
    let isp_a = bearer("isp-a", &["partner"]);
    let (items, _) = walk(
        &app.router,
        "/v1/catalog/programs/show-1/episodes",
        2,
        isp_a.as_deref(),
    )
    .await;
    assert_eq!(ids(&items, "content_id"), ["s1", "e1-1", "s2", "e2-1"]);
    let (items, _) = walk(
        &app.router,
        "/v1/catalog/programs/show-1/episodes",
        3,
        isp_b.as_deref(),
    )
    .await;
    assert_eq!(ids(&items, "content_id"), ["e1-10", "e2-1"]);

    let resp = batch_get(
        &app.router,
        r#"{"ids":["e1-2","e1-1","ep-1","e1-1"]}"#,
        isp_a.as_deref(),
    )
    .await;
    let body = resp.json();
    assert_eq!(
        ids(body["items"].as_array().unwrap(), "content_id"),
        ["e1-1", "ep-1"]
    );
    assert_eq!(body["missing"], json!(["e1-2"]));
    assert_eq!(
        body["items"][1]["rights"],
        json!([{"partner": "isp-a", "territories": ["FR"]}])
    );
}

fn order_json() -> Value {
    json!({
        "order_id": "o-1",
        "buyer_id": "alice",
        "seller_id": "shop-1",
        "status": "DELIVERED",
        "total": {"amount_minor": 4749, "currency": "EUR"},
        "lines": [
            {"sku": "sku-1", "quantity": 3, "unit_price": {"amount_minor": 1250, "currency": "EUR"}},
            {"sku": "sku-2", "quantity": 1, "unit_price": {"amount_minor": 999, "currency": "EUR"}}
        ],
        "shipping_address": {
            "name": "Alice Martin", "line1": "1 rue de la Paix", "line2": null,
            "postal_code": "75002", "city": "Paris", "country": "FR"
        },
        "payment_ref": "pay-77",
        "shipment": {"carrier": "La Poste", "tracking_number": "LP123"},
        "placed_at": "2024-05-01T20:15:03.120Z",
        "updated_at": "2024-05-01T20:15:06.120Z",
        "timeline": [
            {"status": "PLACED", "at": "2024-05-01T20:15:03.120Z", "event_id": "ev-o-1-1714594503120", "detail": null},
            {"status": "PAYMENT_AUTHORIZED", "at": "2024-05-01T20:15:04.120Z", "event_id": "ev-o-1-1714594504120", "detail": "pay-77"},
            {"status": "SHIPPED", "at": "2024-05-01T20:15:05.120Z", "event_id": "ev-o-1-1714594505120", "detail": "La Poste LP123"},
            {"status": "DELIVERED", "at": "2024-05-01T20:15:06.120Z", "event_id": "ev-o-1-1714594506120", "detail": null}
        ]
    })
}

#[tokio::test]
async fn an_order_field_by_field() {
    let app = App::open().await;
    app.order(&order("o-1", "alice", "shop-1", T0)).await;
    let resp = get(&app.router, "/v1/orders/o-1", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json(), order_json());
    assert!(!resp.varies_on_authorization());
    // No internal field leaks.
    assert!(!resp.text().contains("applied_offset") && !resp.text().contains("_ms\""));

    // A placed order: nothing paid or shipped yet.
    let mut placed = order("o-2", "alice", "shop-1", T0);
    placed.status = OrderStatus::Placed;
    placed.payment_ref = None;
    placed.shipment = None;
    placed.timeline.truncate(1);
    placed.updated_at_ms = T0;
    app.order(&placed).await;
    let body = get(&app.router, "/v1/orders/o-2", None).await.json();
    assert_eq!(
        (&body["status"], &body["payment_ref"], &body["shipment"]),
        (&json!("PLACED"), &Value::Null, &Value::Null)
    );
    assert_eq!(body["timeline"].as_array().unwrap().len(), 1);

    let resp = get(&app.router, "/v1/orders/nope", None).await;
    let msg = assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
    assert!(msg.contains("`nope`"), "{msg}");
}

#[tokio::test]
async fn buyer_and_seller_lists_newest_first_walked_to_the_end() {
    let app = App::open().await;
    for i in 0..5 {
        app.order(&order(
            &format!("a-{i}"),
            "alice",
            "shop-1",
            T0 + i * 60_000,
        ))
        .await;
    }
    for i in 0..3 {
        app.order(&order(
            &format!("b-{i}"),
            "bob",
            "shop-1",
            T0 + 30_000 + i * 60_000,
        ))
        .await;
    }
    app.order(&order("c-0", "alice", "shop-2", T0)).await;

    let resp = get(&app.router, "/v1/buyers/alice/orders?limit=1", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.json()["items"],
        json!([{
            "order_id": "a-4", "buyer_id": "alice", "seller_id": "shop-1",
            "status": "DELIVERED", "total": {"amount_minor": 4749, "currency": "EUR"},
            "item_count": 4, "placed_at": "2024-05-01T20:19:03.120Z",
            "updated_at": "2024-05-01T20:19:06.120Z"
        }])
    );

    let (items, pages) = walk(&app.router, "/v1/buyers/alice/orders", 2, None).await;
    assert_eq!(pages, 3);
    // Same millisecond (a-0 and c-0): by order id.
    assert_eq!(
        ids(&items, "order_id"),
        ["a-4", "a-3", "a-2", "a-1", "a-0", "c-0"]
    );

    let (items, pages) = walk(&app.router, "/v1/sellers/shop-1/orders", 3, None).await;
    assert_eq!(pages, 3);
    assert_eq!(
        ids(&items, "order_id"),
        ["a-4", "a-3", "b-2", "a-2", "b-1", "a-1", "b-0", "a-0"]
    );
    let (items, _) = walk(&app.router, "/v1/sellers/shop-2/orders", 100, None).await;
    assert_eq!(ids(&items, "order_id"), ["c-0"]);
    let resp = get(&app.router, "/v1/sellers/nobody/orders", None).await;
    assert_eq!(resp.json(), json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn stock_of_a_sku() {
    let app = App::open().await;
    app.stock(&stock("sku-1", 12, 3)).await;
    let resp = get(&app.router, "/v1/inventory/sku-1", None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({"sku":"sku-1","available":12,"reserved":3,"updated_at":"2024-05-01T20:15:03.120Z"})
    );
    let resp = get(&app.router, "/v1/inventory/sku-9", None).await;
    let msg = assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
    assert!(msg.contains("`sku-9`"), "{msg}");
}

//! Hostile input on every route: each is a 4xx with the one error shape, naming the field.
//! Requests carry an admin token, so that what is refused is the input, not the caller.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails at once on what it does not expect"
)]

mod common;

use axum::http::StatusCode;
use common::*;
use fleuve_projections::catalog::ContentKind;
use serde_json::json;

async fn world() -> (App, Option<String>) {
    let app = App::secured().await;
    app.progress(&[
        progress("alice", "c1", 1, 1),
        progress("alice", "c2", 2, 2),
        progress("bob", "c1", 1, 1),
        progress("bob", "c2", 2, 2),
    ])
    .await;
    for user in ["alice", "bob"] {
        app.bookmarks(user, &[bookmark("c1", 1), bookmark("c2", 2)])
            .await;
    }
    app.content(&published(content("film-1", ContentKind::Programme, &[])))
        .await;
    for (i, program) in [(1, "show-1"), (2, "show-1"), (3, "show-2"), (4, "show-2")] {
        app.content(&published(episode(&format!("ep-{i}"), program, 1, i, &[])))
            .await;
    }
    for (id, buyer, seller, at) in [
        ("o-1", "alice", "shop-1", 1_000),
        ("o-2", "alice", "shop-1", 2_000),
        ("o-3", "bob", "shop-2", 1_000),
        ("o-4", "bob", "shop-2", 2_000),
    ] {
        app.order(&order(id, buyer, seller, at)).await;
    }
    app.stock(&stock("sku-1", 1, 0)).await;
    (app, bearer("ops", &["admin"]))
}

/// Every list, and the same list of another partition.
const LISTS: [(&str, &str); 5] = [
    ("/v1/users/alice/progress", "/v1/users/bob/progress"),
    ("/v1/users/alice/bookmarks", "/v1/users/bob/bookmarks"),
    (
        "/v1/catalog/programs/show-1/episodes",
        "/v1/catalog/programs/show-2/episodes",
    ),
    ("/v1/buyers/alice/orders", "/v1/buyers/bob/orders"),
    ("/v1/sellers/shop-1/orders", "/v1/sellers/shop-2/orders"),
];

async fn first_cursor(app: &App, admin: Option<&str>, list: &str) -> String {
    let resp = get(&app.router, &format!("{list}?limit=1"), admin).await;
    assert_eq!(resp.status, StatusCode::OK, "{list}: {}", resp.text());
    resp.json()["next_cursor"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bad_cursors_on_every_list() {
    let (app, admin) = world().await;
    let admin = admin.as_deref();
    let mut cursors = Vec::new();
    for (list, _) in LISTS {
        cursors.push(first_cursor(&app, admin, list).await);
    }
    for (i, (list, sibling)) in LISTS.iter().enumerate() {
        let mine = &cursors[i];
        let of_another_route = &cursors[(i + 1) % cursors.len()];
        let mut flipped = mine.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let cases = [
            ("garbage".to_owned(), *list),
            ("%FF%FE".to_owned(), list),
            ("A".repeat(4_000), list),
            ("!!!!".to_owned(), list),
            (mine[..mine.len() - 3].to_owned(), list),
            (format!("{mine}AA"), list),
            (flipped, list),
            (of_another_route.clone(), list),
            // A cursor of this list, on the same route for another partition.
            (mine.clone(), sibling),
        ];
        for (cursor, uri) in cases {
            let resp = get(&app.router, &format!("{uri}?cursor={cursor}"), admin).await;
            let msg = assert_error(
                &resp,
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                Some("cursor"),
            );
            assert!(msg.contains("next_cursor"), "{uri} {cursor}: {msg}");
        }
        // The genuine cursor still works.
        let resp = get(&app.router, &format!("{list}?limit=1&cursor={mine}"), admin).await;
        assert_eq!(resp.status, StatusCode::OK, "{list}: {}", resp.text());
    }
}

#[tokio::test]
async fn bad_limits_on_every_list() {
    let (app, admin) = world().await;
    let cases = [
        ("0", "at least 1"),
        ("-1", "an integer from 1 to 100"),
        ("-99999999999999999999", "an integer from 1 to 100"),
        ("abc", "an integer from 1 to 100"),
        ("1.5", "an integer from 1 to 100"),
        ("1e3", "an integer from 1 to 100"),
        ("0x10", "an integer from 1 to 100"),
        ("%205", "an integer from 1 to 100"),
        ("", "an integer from 1 to 100"),
        ("101", "at most 100"),
        ("18446744073709551616", "at most 100"),
        ("99999999999999999999999999999999", "at most 100"),
    ];
    for (list, _) in LISTS {
        for (limit, needle) in cases {
            let resp = get(
                &app.router,
                &format!("{list}?limit={limit}"),
                admin.as_deref(),
            )
            .await;
            let msg = assert_error(
                &resp,
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                Some("limit"),
            );
            assert!(
                msg.starts_with("limit must") && msg.contains(needle),
                "{list}?limit={limit}: {msg}"
            );
        }
    }
}

/// Every path parameter, as `{}` in its route, and its field name.
const PARAMS: [(&str, &str); 10] = [
    ("/v1/users/{}/progress", "user_id"),
    ("/v1/users/{}/progress/c1", "user_id"),
    ("/v1/users/alice/progress/{}", "content_id"),
    ("/v1/users/{}/bookmarks", "user_id"),
    ("/v1/catalog/contents/{}", "content_id"),
    ("/v1/catalog/programs/{}/episodes", "program_id"),
    ("/v1/orders/{}", "order_id"),
    ("/v1/buyers/{}/orders", "buyer_id"),
    ("/v1/sellers/{}/orders", "seller_id"),
    ("/v1/inventory/{}", "sku"),
];

#[tokio::test]
async fn malformed_ids_name_their_field() {
    let (app, admin) = world().await;
    let admin = admin.as_deref();
    let long = "x".repeat(129);
    let long_utf8 = "%C3%A9".repeat(65); // 130 bytes
    let bad: [(&str, &str); 10] = [
        (&long, "1 to 128 bytes"),
        (&long_utf8, "got 130 bytes"),
        ("a%00b", "control characters"),
        ("a%0Ab", "control characters"),
        ("%1F", "control characters"),
        ("a%7Fb", "control characters"),
        ("..", "path step"),
        (".", "path step"),
        ("%2E%2E", "path step"),
        ("%2e", "path step"),
    ];
    for (template, field) in PARAMS {
        for (value, needle) in bad {
            let uri = template.replace("{}", value);
            let resp = get(&app.router, &uri, admin).await;
            let msg = assert_error(
                &resp,
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                Some(field),
            );
            assert!(
                msg.starts_with(field) && msg.contains(needle),
                "{uri}: {msg}"
            );
        }
        // Invalid UTF-8 once percent-decoded: the message names the parameter.
        let uri = template.replace("{}", "%FF");
        let resp = get(&app.router, &uri, admin).await;
        let msg = assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_parameter", None);
        assert!(msg.contains(field), "{uri}: {msg}");
        // Empty: a 400 in the middle of a path, no route (404) at its end.
        let uri = template.replace("{}", "");
        let resp = get(&app.router, &uri, admin).await;
        if template.ends_with("{}") {
            assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
        } else {
            let msg = assert_error(
                &resp,
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                Some(field),
            );
            assert!(msg.contains("got 0 bytes"), "{uri}: {msg}");
        }
        // 128 bytes is an ordinary id: read, not refused.
        let uri = template.replace("{}", &"x".repeat(128));
        let resp = get(&app.router, &uri, admin).await;
        assert!(
            resp.status == StatusCode::OK || resp.status == StatusCode::NOT_FOUND,
            "{uri}: {}",
            resp.text()
        );
    }
}

#[tokio::test]
async fn path_tricks_neither_resolve_nor_escape_access_checks() {
    let (app, admin) = world().await;
    let alice = bearer("alice", &["user"]);
    // Dot segments are not resolved: no route.
    for uri in [
        "/v1/users/bob/../alice/progress",
        "/v1/users/alice/./progress",
        "/v1/catalog/contents/x/../film-1",
    ] {
        let resp = get(&app.router, uri, alice.as_deref()).await;
        assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
    }
    // An encoded slash stays inside the id: it names another user, not alice.
    for uri in [
        "/v1/users/alice%2F..%2Fbob/progress",
        "/v1/users/bob%2F..%2Falice/progress",
        "/v1/users/alice%2Fx/bookmarks",
        "/v1/buyers/alice%2F/orders",
    ] {
        let resp = get(&app.router, uri, alice.as_deref()).await;
        assert_error(&resp, StatusCode::FORBIDDEN, "forbidden", None);
        // Read by an admin, it is just an id without rows.
        let resp = get(&app.router, uri, admin.as_deref()).await;
        assert_eq!(resp.json()["items"], json!([]), "{uri}");
    }
    // Double encoding is decoded once: `film%2D1` is not `film-1`.
    let resp = get(&app.router, "/v1/catalog/contents/film%252D1", None).await;
    let msg = assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
    assert!(msg.contains("`film%2D1`"), "{msg}");
    let resp = get(&app.router, "/v1/catalog/contents/film%2D1", None).await;
    assert_eq!(resp.json()["content_id"], "film-1");
    // Trailing slashes, doubled slashes, case: no route.
    for uri in [
        "/v1/users/alice/progress/",
        "/v1/users/alice/progress/c1/",
        "/v1/users/alice/bookmarks/",
        "/v1/catalog/contents/film-1/",
        "/v1/catalog/programs/show-1/episodes/",
        "/v1/orders/o-1/",
        "/v1/buyers/alice/orders/",
        "/v1/sellers/shop-1/orders/",
        "/v1/inventory/sku-1/",
        "//v1/inventory/sku-1",
        "/v1//inventory/sku-1",
        "/V1/inventory/sku-1",
        "/v1/Inventory/sku-1",
    ] {
        let resp = get(&app.router, uri, admin.as_deref()).await;
        let msg = assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
        assert!(msg.contains("no route"), "{uri}: {msg}");
    }
}

#[tokio::test]
async fn unknown_and_repeated_query_parameters_are_refused() {
    let (app, admin) = world().await;
    let admin = admin.as_deref();
    let singles = [
        "/v1/users/alice/progress/c1",
        "/v1/catalog/contents/film-1",
        "/v1/orders/o-1",
        "/v1/inventory/sku-1",
    ];
    for uri in singles {
        let resp = get(&app.router, &format!("{uri}?limit=5"), admin).await;
        let msg = assert_error(
            &resp,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("limit"),
        );
        assert!(msg.contains("takes no query parameters"), "{uri}: {msg}");
    }
    for (list, _) in LISTS {
        for (query, field) in [
            ("limt=5", "limt"),
            ("page=2", "page"),
            ("limit=5&limit=6", "limit"),
            ("cursor=&cursor=x", "cursor"),
            ("=x", ""),
        ] {
            let resp = get(&app.router, &format!("{list}?{query}"), admin).await;
            let msg = assert_error(
                &resp,
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                Some(field),
            );
            assert!(msg.contains(&format!("`{field}`")), "{list}?{query}: {msg}");
        }
        // Known parameters (an empty query too) are fine.
        for query in ["", "limit=1", "limit=1&cursor="] {
            let resp = get(&app.router, &format!("{list}?{query}"), admin).await;
            assert_eq!(
                resp.status,
                StatusCode::OK,
                "{list}?{query}: {}",
                resp.text()
            );
        }
    }
    let resp = common::call(
        &app.router,
        "POST",
        "/v1/catalog/contents:batchGet?ids=a",
        None,
        &[("content-type", "application/json")],
        br#"{"ids":["a"]}"#.to_vec(),
    )
    .await;
    assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        Some("ids"),
    );
}

async fn post_batch(app: &App, content_type: Option<&str>, body: Vec<u8>) -> Resp {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| vec![("content-type", ct)])
        .unwrap_or_default();
    common::call(
        &app.router,
        "POST",
        "/v1/catalog/contents:batchGet",
        None,
        &headers,
        body,
    )
    .await
}

#[tokio::test]
async fn hostile_batch_bodies() {
    let (app, _) = world().await;
    let json_ct = Some("application/json");

    // Over the maximum number of ids: a 400 naming the maximum.
    let ids: Vec<String> = (0..101).map(|i| format!("id-{i}")).collect();
    let resp = post_batch(&app, json_ct, common::json(&json!({ "ids": ids }))).await;
    let msg = assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "batch_too_large",
        Some("ids"),
    );
    assert!(msg.contains("at most 100") && msg.contains("101"), "{msg}");
    // Duplicates count: 101 copies of one id are over the maximum too.
    let resp = post_batch(
        &app,
        json_ct,
        common::json(&json!({ "ids": vec!["a"; 101] })),
    )
    .await;
    assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "batch_too_large",
        Some("ids"),
    );

    // Over the body limit (64 KiB by default).
    let huge = common::json(&json!({ "ids": ["x".repeat(70_000)] }));
    let resp = post_batch(&app, json_ct, huge).await;
    let msg = assert_error(
        &resp,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    );
    assert!(msg.contains("65536 bytes"), "{msg}");

    // Not JSON.
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    for body in [
        &b""[..],
        b"{",
        b"{\"ids\":[\"a\"]",
        b"nul",
        b"{\"ids\":[\"a\"]} trailing",
        b"{'ids':['a']}",
        b"\xff\xfe",
        deep.as_bytes(),
    ] {
        let resp = post_batch(&app, json_ct, body.to_vec()).await;
        let msg = assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_json", None);
        assert!(msg.contains("not valid JSON"), "{msg}");
    }

    // JSON of the wrong shape.
    for (body, field, needle) in [
        (r#"[]"#, None, "must be a JSON object"),
        (r#""ids""#, None, "got a string"),
        (r#"null"#, None, "got null"),
        (r#"{}"#, Some("ids"), "required"),
        (r#"{"IDS":["a"]}"#, Some("IDS"), "unknown field `IDS`"),
        (r#"{"ids":["a"],"extra":1}"#, Some("extra"), "unknown field"),
        (r#"{"ids":null}"#, Some("ids"), "got null"),
        (r#"{"ids":{"0":"a"}}"#, Some("ids"), "got an object"),
        (r#"{"ids":"a,b"}"#, Some("ids"), "got a string"),
        (r#"{"ids":[]}"#, Some("ids"), "empty array"),
        (r#"{"ids":["a",null]}"#, Some("ids[1]"), "got null"),
        (r#"{"ids":[["a"]]}"#, Some("ids[0]"), "got an array"),
        (r#"{"ids":[7]}"#, Some("ids[0]"), "got a number"),
        (r#"{"ids":["a",""]}"#, Some("ids[1]"), "got 0 bytes"),
        (
            r#"{"ids":["\u0007"]}"#,
            Some("ids[0]"),
            "control characters",
        ),
        (r#"{"ids":["ok",".."]}"#, Some("ids[1]"), "path step"),
    ] {
        let resp = post_batch(&app, json_ct, body.as_bytes().to_vec()).await;
        let msg = assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_body", field);
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let long = common::json(&json!({ "ids": ["ok", "x".repeat(129)] }));
    let resp = post_batch(&app, json_ct, long).await;
    let msg = assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        Some("ids[1]"),
    );
    assert!(msg.starts_with("ids[1] must be 1 to 128 bytes"), "{msg}");

    // Not declared as JSON.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        Some("json"),
    ] {
        let resp = post_batch(&app, ct, br#"{"ids":["film-1"]}"#.to_vec()).await;
        let msg = assert_error(
            &resp,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        );
        assert!(
            msg.contains("application/json") && msg.contains(ct.unwrap_or("(none)")),
            "{ct:?}: {msg}"
        );
    }
}

//! Read-your-writes against the access rules and across partitions, in process over a real
//! embedded store whose checkpoints the tests set directly: a caller that may not read a
//! route is refused at once whatever position it sends (never held for the wait, never told
//! where the projection stands), and a read with positions on several partitions waits for
//! every one of them, however the tokens are sent.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails at once on what it does not expect"
)]

mod common;

use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use common::*;
use fleuve_kafka::{topics, Position};
use fleuve_projections::progress::{EventVersion, Progress};
use fleuve_query_api::{router, QueryConfig};
use fleuve_service::auth::{mint_hs256, AuthConfig, Authenticator};

/// The read-your-writes wait of the router the refusals are sent to: far longer than a
/// refusal may take, so that a request held by the wait cannot pass for a refused one.
const LONG_WAIT: Duration = Duration::from_secs(30);

/// Longest a refusal may take (the wait is [`LONG_WAIT`]).
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

/// The wait of the router that answers `position_not_reached` in these tests.
const SHORT_WAIT: Duration = Duration::from_millis(300);

fn secured(position_wait: Duration) -> QueryConfig {
    QueryConfig {
        auth: Some(Authenticator::new(AuthConfig::hs256(SECRET)).unwrap()),
        position_wait,
        // Longer than the wait: a held request would end in `position_not_reached`.
        request_timeout: position_wait * 2,
        ..QueryConfig::default()
    }
}

/// A token on every event topic, far past anything applied: every route has one to wait for.
fn far_positions() -> String {
    topics::EVENT_TOPICS
        .iter()
        .map(|t| Position::new(*t, 0, 1_000_000).token())
        .collect::<Vec<_>>()
        .join(",")
}

/// A token signed with another secret.
fn bad_token() -> String {
    let token = mint_hs256(
        "another-secret-another-secret-another",
        "alice",
        &["user", "admin"],
        Duration::from_secs(60),
    )
    .unwrap();
    format!("Bearer {token}")
}

/// `GET uri` with `X-Fleuve-Position: positions`, failing the test if it is not answered
/// within [`REFUSED_WITHIN`], well before the wait would end.
async fn refused_in_time(
    router: &axum::Router,
    uri: &str,
    authorization: Option<&str>,
    positions: &str,
) -> Resp {
    tokio::time::timeout(
        REFUSED_WITHIN,
        get_with(
            router,
            uri,
            authorization,
            &[("x-fleuve-position", positions)],
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {uri} as {authorization:?} was held for the wait"))
}

/// The `X-Fleuve-Consistency` header of an answer.
fn consistency(resp: &Resp) -> Option<&str> {
    resp.header(header::HeaderName::from_static("x-fleuve-consistency"))
}

async fn seed(app: &App) {
    app.progress(&[progress("alice", "film-1", 1_000, 5)]).await;
    app.bookmarks("alice", &[bookmark("film-1", 1_000)]).await;
    app.order(&order("o-1", "alice", "shop-1", 1_000)).await;
    app.stock(&stock("sku-1", 5, 1)).await;
}

/// The routes that need a token, with a caller holding a valid token that may not read
/// each (what it lacks: the `sub`, or the scope).
fn protected() -> Vec<(&'static str, Option<String>)> {
    let bob = bearer("bob", &["user"]);
    vec![
        ("/v1/users/alice/progress/film-1", bob.clone()),
        ("/v1/users/alice/progress", bob.clone()),
        ("/v1/users/alice/bookmarks", bob.clone()),
        ("/v1/buyers/alice/orders", bob.clone()),
        ("/v1/sellers/shop-1/orders", bearer("shop-2", &["seller"])),
        // An order that exists is checked against its buyer and seller before the wait.
        ("/v1/orders/o-1", bob),
        ("/v1/orders/o-1", bearer("shop-2", &["seller"])),
        ("/v1/orders/o-1", bearer("isp-a", &["partner"])),
        ("/v1/inventory/sku-1", bearer("isp-a", &["partner"])),
    ]
}

#[tokio::test]
async fn callers_that_may_not_read_are_refused_before_any_wait() {
    let app = App::with(secured(SHORT_WAIT)).await;
    seed(&app).await;
    let held = router(app.store.clone(), secured(LONG_WAIT));
    let far = far_positions();
    let bad = bad_token();
    for (uri, other) in protected() {
        // No token: 401 `unauthorized`.
        let resp = refused_in_time(&held, uri, None, &far).await;
        let message = assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized", None);
        assert_eq!(
            resp.header(header::WWW_AUTHENTICATE),
            Some(r#"Bearer realm="fleuve""#),
            "{uri}"
        );
        assert!(!message.contains("offset"), "{uri}: {message}");
        assert!(consistency(&resp).is_none(), "{uri}");

        // A token that does not verify: 401 `invalid_token`.
        let resp = refused_in_time(&held, uri, Some(&bad), &far).await;
        assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_token", None);

        // A valid token that may not read this: 403.
        let resp = refused_in_time(&held, uri, other.as_deref(), &far).await;
        let message = assert_error(&resp, StatusCode::FORBIDDEN, "forbidden", None);
        assert!(!message.contains("offset"), "{uri}: {message}");
        assert!(consistency(&resp).is_none(), "{uri}");

        // Garbage positions do not come before the access rule either.
        let resp = refused_in_time(&held, uri, None, "garbage").await;
        assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    // The open catalog: a token, when sent, is verified before the wait.
    for uri in [
        "/v1/catalog/contents/film-1",
        "/v1/catalog/programs/show-1/episodes",
    ] {
        let resp = refused_in_time(&held, uri, Some(&bad), &far).await;
        assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_token", None);
    }
    // A caller allowed to read the route has its other inputs checked before the wait too.
    let alice = bearer("alice", &["user"]);
    let resp = refused_in_time(
        &held,
        "/v1/users/alice/progress?limt=5",
        alice.as_deref(),
        &far,
    )
    .await;
    assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        Some("limt"),
    );
    let resp = refused_in_time(
        &held,
        "/v1/users/alice/progress",
        alice.as_deref(),
        "garbage",
    )
    .await;
    assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_position",
        Some("X-Fleuve-Position"),
    );
}

#[tokio::test]
async fn callers_that_may_read_wait_and_are_told_the_projection_is_behind() {
    let app = App::with(secured(SHORT_WAIT)).await;
    seed(&app).await;
    let far = far_positions();
    let readers = [
        (
            "/v1/users/alice/progress/film-1",
            bearer("alice", &["user"]),
        ),
        ("/v1/users/alice/bookmarks", bearer("ops", &["admin"])),
        ("/v1/orders/o-1", bearer("alice", &["user"])),
        ("/v1/orders/o-1", bearer("shop-1", &["seller"])),
        ("/v1/sellers/shop-1/orders", bearer("shop-1", &["seller"])),
        ("/v1/inventory/sku-1", bearer("bob", &["user"])),
        ("/v1/catalog/contents/film-1", None),
    ];
    for (uri, authorization) in readers {
        let started = Instant::now();
        let resp = get_with(
            &app.router,
            uri,
            authorization.as_deref(),
            &[("x-fleuve-position", &far)],
        )
        .await;
        let waited = started.elapsed();
        let message = assert_error(
            &resp,
            StatusCode::SERVICE_UNAVAILABLE,
            "position_not_reached",
            None,
        );
        assert!(waited >= SHORT_WAIT, "{uri}: answered after {waited:?}");
        assert_eq!(consistency(&resp), Some("behind"), "{uri}");
        assert_eq!(resp.header(header::RETRY_AFTER), Some("1"), "{uri}");
        assert!(message.contains("offset 1000000"), "{uri}: {message}");
    }
}

fn progress_at(position_ms: i64, offset: i64) -> Progress {
    Progress {
        user_id: "u-1".into(),
        content_id: "c-1".into(),
        position_ms,
        duration_ms: 5_400_000,
        device: "tv".into(),
        event_id: format!("ev-{offset}"),
        version: EventVersion {
            occurred_at_ms: 1_714_594_503_120,
            offset,
        },
    }
}

#[tokio::test]
async fn positions_on_several_partitions_wait_for_every_one() {
    let wait = Duration::from_secs(1);
    let app = App::with(QueryConfig {
        position_wait: wait,
        ..QueryConfig::default()
    })
    .await;
    let uri = "/v1/users/u-1/progress/c-1";
    // Partition 0 is applied up to offset 5; partition 1 up to offset 2.
    apply_progress(&app.store, &[progress_at(1_000, 5)], &[(0, 6), (1, 3)]).await;
    let on_0 = Position::new(topics::USER_ACTIVITY, 0, 5).token();
    let on_1 = Position::new(topics::USER_ACTIVITY, 1, 7).token();
    let comma = format!("{on_0}, {on_1}");
    let forms: [(&str, Vec<(&str, &str)>); 2] = [
        (
            "two headers",
            vec![("x-fleuve-position", &on_0), ("x-fleuve-position", &on_1)],
        ),
        (
            "one comma-separated header",
            vec![("x-fleuve-position", &comma)],
        ),
    ];

    // Only partition 0 is passed: the read is behind, and says where.
    for (form, headers) in &forms {
        let started = Instant::now();
        let resp = get_with(&app.router, uri, None, headers).await;
        let message = assert_error(
            &resp,
            StatusCode::SERVICE_UNAVAILABLE,
            "position_not_reached",
            None,
        );
        assert!(started.elapsed() >= wait, "{form}");
        assert_eq!(consistency(&resp), Some("behind"), "{form}");
        assert!(
            message.contains("user-activity/1 offset 7")
                && message.contains("applied up to offset 2"),
            "{form}: {message}"
        );
    }

    // Partition 1 catches up while a read waits: the read answers with what it wrote.
    let writer = {
        let store = app.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            apply_progress(&store, &[progress_at(2_000, 7)], &[(1, 8)]).await;
        })
    };
    let resp = get_with(&app.router, uri, None, &forms[0].1).await;
    writer.await.unwrap();
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["position_ms"], 2_000);

    // Both passed: answered at once, in either form.
    for (form, headers) in &forms {
        let started = Instant::now();
        let resp = get_with(&app.router, uri, None, headers).await;
        assert_eq!(resp.status, StatusCode::OK, "{form}: {}", resp.text());
        assert_eq!(resp.json()["position_ms"], 2_000, "{form}");
        assert!(started.elapsed() < wait, "{form}");
        assert!(consistency(&resp).is_none(), "{form}");
    }
}

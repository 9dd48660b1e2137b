//! `?snapshot=<name>` over a real embedded store: the live projection is version 1 (plain
//! tables), a snapshot is version 2 written through its namespaced view and described in
//! the versions table, and the router reads the versions as the `fleuve` binary builds it.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails at once on what it does not expect"
)]

mod common;

use std::collections::BTreeSet;

use axum::http::{header, StatusCode};
use axum::routing::get as get_route;
use axum::Router;
use common::*;
use fleuve_kafka::{topics, Position};
use fleuve_projections::catalog::{self as catalog_model, ContentKind};
use fleuve_projections::progress as progress_model;
use fleuve_projections::versions::{Namespaced, VersionInfo, VersionKind, VersionState, Versions};
use fleuve_query_api::{openapi, router_with, QueryConfig, Source};
use fleuve_service::auth::{AuthConfig, Authenticator};
use serde_json::{json, Value};

/// 2024-11-01T00:00:00Z: the instant of the progress snapshot `nov1`.
const NOV1: i64 = 1_730_419_200_000;
/// 2023-11-24T00:00:00Z: the instant of the catalog snapshot `black-friday`.
const BLACK_FRIDAY: i64 = 1_700_784_000_000;
/// 2023-11-30T00:00:00Z.
const NOV30_2023: i64 = 1_701_302_400_000;
/// 2023-12-20T00:00:00Z.
const DEC20_2023: i64 = 1_703_030_400_000;

fn described(
    projection: &str,
    version: u32,
    state: VersionState,
    name: &str,
    as_of_ms: i64,
) -> VersionInfo {
    VersionInfo {
        projection: projection.to_owned(),
        version,
        kind: VersionKind::Snapshot,
        state,
        name: Some(name.to_owned()),
        as_of_ms: Some(as_of_ms),
        created_at_ms: as_of_ms + 1_000,
        built_at_ms: Some(as_of_ms + 2_000),
        live_at_ms: None,
        records: 3,
        error: None,
    }
}

/// Live rows in version 1; a progress snapshot `nov1` (v2) and a catalog snapshot
/// `black-friday` (v2), both ready; a progress snapshot `dec1` (v3) still building.
async fn world(config: QueryConfig) -> (App, std::sync::Arc<Versions>) {
    let (app, versions) = App::versioned(config).await;
    let base = app.store.clone();

    // Live.
    app.progress(&[
        progress("u-1", "film-1", NOV1 + 5_000, 61_000),
        progress("u-1", "film-2", NOV1 + 6_000, 5_000),
    ])
    .await;
    let mut live_film = content("film-1", ContentKind::Programme, &[]);
    live_film.title = "Live title".into();
    app.content(&published(live_film)).await;

    // The progress snapshot `nov1`.
    let nov1 = app.writing_to(Namespaced::view(
        base.clone(),
        progress_model::PROJECTION,
        2,
    ));
    nov1.progress(&[
        progress("u-1", "film-1", NOV1 - 9_000, 10_000),
        progress("u-1", "film-3", NOV1 - 8_000, 20_000),
    ])
    .await;
    versions
        .put(&described(
            progress_model::PROJECTION,
            2,
            VersionState::Ready,
            "nov1",
            NOV1,
        ))
        .await
        .unwrap();
    // A snapshot still being built is not readable.
    let dec1 = app.writing_to(Namespaced::view(
        base.clone(),
        progress_model::PROJECTION,
        3,
    ));
    dec1.progress(&[progress("u-1", "film-9", NOV1, 1)]).await;
    versions
        .put(&described(
            progress_model::PROJECTION,
            3,
            VersionState::Building,
            "dec1",
            NOV1 + 86_400_000 * 30,
        ))
        .await
        .unwrap();

    // The catalog snapshot `black-friday`: film-1 under its old title, a promotion whose
    // window closed since, a Christmas film not yet available then.
    let bf = app.writing_to(Namespaced::view(base, catalog_model::PROJECTION, 2));
    let mut old_film = content("film-1", ContentKind::Programme, &[]);
    old_film.title = "Old title".into();
    bf.content(&published(old_film)).await;
    let mut promo = content("promo", ContentKind::Clip, &[]);
    promo.available_until_ms = Some(NOV30_2023);
    bf.content(&published(promo)).await;
    let mut xmas = content("xmas", ContentKind::Programme, &[]);
    xmas.available_from_ms = DEC20_2023;
    bf.content(&published(xmas)).await;
    versions
        .put(&described(
            catalog_model::PROJECTION,
            2,
            VersionState::Ready,
            "black-friday",
            BLACK_FRIDAY,
        ))
        .await
        .unwrap();
    (app, versions)
}

fn secured() -> QueryConfig {
    QueryConfig {
        auth: Some(Authenticator::new(AuthConfig::hs256(SECRET)).unwrap()),
        ..QueryConfig::default()
    }
}

#[tokio::test]
async fn a_snapshot_is_read_by_name_and_says_so() {
    let (app, _) = world(QueryConfig::default()).await;

    let live = get(&app.router, "/v1/users/u-1/progress/film-1", None).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text());
    assert_eq!(live.json()["position_ms"], 61_000);
    assert_eq!(live.header("x-fleuve-snapshot".parse().unwrap()), None);
    assert_eq!(live.header("x-fleuve-as-of".parse().unwrap()), None);
    assert_eq!(
        live.header(header::CACHE_CONTROL),
        Some("private, no-cache")
    );

    let old = get(
        &app.router,
        "/v1/users/u-1/progress/film-1?snapshot=nov1",
        None,
    )
    .await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.text());
    let body = old.json();
    assert_eq!(body["position_ms"], 10_000);
    assert_eq!(body["updated_at"], "2024-10-31T23:59:51.000Z");
    assert_eq!(
        old.header("x-fleuve-snapshot".parse().unwrap()),
        Some("nov1")
    );
    assert_eq!(
        old.header("x-fleuve-as-of".parse().unwrap()),
        Some("2024-11-01T00:00:00.000Z")
    );
    assert_eq!(
        old.header(header::CACHE_CONTROL),
        Some("private, max-age=3600")
    );
    let etag = old.header(header::ETAG).unwrap().to_owned();
    assert_ne!(Some(etag.as_str()), live.header(header::ETAG));

    // Revalidation keeps the snapshot's headers.
    let again = call(
        &app.router,
        "GET",
        "/v1/users/u-1/progress/film-1?snapshot=nov1",
        None,
        &[("if-none-match", &etag)],
        Vec::new(),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{}", again.text());
    assert!(again.body.is_empty());
    assert_eq!(
        again.header("x-fleuve-snapshot".parse().unwrap()),
        Some("nov1")
    );
    assert_eq!(
        again.header(header::CACHE_CONTROL),
        Some("private, max-age=3600")
    );

    // A row that is live only is absent from the snapshot, and the reverse; the refusal
    // still says which snapshot it was read from, and is not cached.
    let absent = get(
        &app.router,
        "/v1/users/u-1/progress/film-2?snapshot=nov1",
        None,
    )
    .await;
    let message = assert_error(&absent, StatusCode::NOT_FOUND, "not_found", None);
    assert!(message.contains("film-2"), "{message}");
    assert_eq!(
        absent.header("x-fleuve-snapshot".parse().unwrap()),
        Some("nov1")
    );
    assert_eq!(absent.header(header::CACHE_CONTROL), Some("no-store"));
    let live_absent = get(&app.router, "/v1/users/u-1/progress/film-3", None).await;
    assert_error(&live_absent, StatusCode::NOT_FOUND, "not_found", None);

    // The live read is unchanged after a snapshot read.
    let live = get(&app.router, "/v1/users/u-1/progress", None).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text());
    assert_eq!(
        ids(live.json()["items"].as_array().unwrap(), "content_id"),
        ["film-1", "film-2"]
    );
}

#[tokio::test]
async fn a_snapshot_list_pages_with_its_cursor() {
    let (app, _) = world(QueryConfig::default()).await;

    let first = get(
        &app.router,
        "/v1/users/u-1/progress?snapshot=nov1&limit=1",
        None,
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(
        first.header("x-fleuve-snapshot".parse().unwrap()),
        Some("nov1")
    );
    let body = first.json();
    assert_eq!(
        ids(body["items"].as_array().unwrap(), "content_id"),
        ["film-1"]
    );
    assert_eq!(body["items"][0]["position_ms"], 10_000);
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();

    // `snapshot` anywhere among the parameters; the cursor of a snapshot page goes on in it.
    let second = get(
        &app.router,
        &format!("/v1/users/u-1/progress?limit=1&cursor={cursor}&snapshot=nov1"),
        None,
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let body = second.json();
    assert_eq!(
        ids(body["items"].as_array().unwrap(), "content_id"),
        ["film-3"]
    );

    // Walking the whole snapshot list a row at a time: its two rows, never the live ones.
    let (items, pages) = walk(&app.router, "/v1/users/u-1/progress?snapshot=nov1", 1, None).await;
    assert_eq!(ids(&items, "content_id"), ["film-1", "film-3"]);
    assert!(pages >= 2, "{pages}");
    let (items, _) = walk(&app.router, "/v1/users/u-1/progress", 1, None).await;
    assert_eq!(ids(&items, "content_id"), ["film-1", "film-2"]);
}

#[tokio::test]
async fn the_other_parameters_are_checked_as_without_a_snapshot() {
    let (app, _) = world(QueryConfig::default()).await;

    // An encoded name (`snap%73hot`) is the same parameter, and an encoded `limit` still is
    // `limit` once `snapshot` is taken out.
    let resp = get(
        &app.router,
        "/v1/users/u-1/progress?%6Cimit=1&snap%73hot=nov1",
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.header("x-fleuve-snapshot".parse().unwrap()),
        Some("nov1")
    );
    assert_eq!(resp.json()["items"].as_array().unwrap().len(), 1);

    // The other parameters of a snapshot read are checked as usual: (query, code, field,
    // what the message says).
    let refused = [
        (
            "/v1/users/u-1/progress?snapshot=nov1&limt=1",
            "invalid_parameter",
            "limt",
            "(and `snapshot`)",
        ),
        (
            "/v1/users/u-1/progress/film-1?snapshot=nov1&x=1",
            "invalid_parameter",
            "x",
            "besides `snapshot`",
        ),
        (
            "/v1/users/u-1/progress?limit=0&snapshot=nov1",
            "invalid_parameter",
            "limit",
            "",
        ),
        (
            "/v1/users/u-1/progress?snapshot=nov1&cursor=bogus",
            "invalid_cursor",
            "cursor",
            "",
        ),
    ];
    for (uri, code, field, says) in refused {
        let resp = get(&app.router, uri, None).await;
        let message = assert_error(&resp, StatusCode::BAD_REQUEST, code, Some(field));
        assert!(message.contains(says), "{uri}: {message}");
    }
}

#[tokio::test]
async fn a_catalog_snapshot_is_evaluated_at_its_instant() {
    let (app, _) = world(QueryConfig::default()).await;
    let bf = "?snapshot=black-friday";

    let live = get(&app.router, "/v1/catalog/contents/film-1", None).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text());
    assert_eq!(live.json()["title"], "Live title");
    assert_eq!(
        live.header(header::CACHE_CONTROL),
        Some("public, max-age=10")
    );

    let old = get(
        &app.router,
        &format!("/v1/catalog/contents/film-1{bf}"),
        None,
    )
    .await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.text());
    assert_eq!(old.json()["title"], "Old title");
    assert_eq!(
        old.header("x-fleuve-snapshot".parse().unwrap()),
        Some("black-friday")
    );
    assert_eq!(
        old.header("x-fleuve-as-of".parse().unwrap()),
        Some("2023-11-24T00:00:00.000Z")
    );
    assert_eq!(
        old.header(header::CACHE_CONTROL),
        Some("private, max-age=3600")
    );
    assert!(old.varies_on_authorization());

    // Its window closed since, but was open at the snapshot's instant.
    let promo = get(
        &app.router,
        &format!("/v1/catalog/contents/promo{bf}"),
        None,
    )
    .await;
    assert_eq!(promo.status, StatusCode::OK, "{}", promo.text());
    assert_eq!(promo.json()["available_until"], "2023-11-30T00:00:00.000Z");
    // Available now, not at the snapshot's instant.
    let xmas = get(&app.router, &format!("/v1/catalog/contents/xmas{bf}"), None).await;
    assert_error(&xmas, StatusCode::NOT_FOUND, "not_found", None);

    // The batch read, a POST: its query string names the snapshot too.
    let batch = call(
        &app.router,
        "POST",
        &format!("/v1/catalog/contents:batchGet{bf}"),
        None,
        &[("content-type", "application/json")],
        br#"{"ids":["film-1","promo","xmas"]}"#.to_vec(),
    )
    .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.text());
    let body = batch.json();
    assert_eq!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["title"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Old title", "Title of promo"]
    );
    assert_eq!(body["missing"], json!(["xmas"]));
    assert_eq!(
        batch.header("x-fleuve-snapshot".parse().unwrap()),
        Some("black-friday")
    );
    assert_eq!(batch.header(header::CACHE_CONTROL), Some("no-store"));
}

#[tokio::test]
async fn an_unknown_snapshot_is_a_404_listing_those_of_the_projection() {
    let (app, _) = world(QueryConfig::default()).await;

    let resp = get(
        &app.router,
        "/v1/users/u-1/progress/film-1?snapshot=oct1",
        None,
    )
    .await;
    let message = assert_error(&resp, StatusCode::NOT_FOUND, "unknown_snapshot", None);
    assert_eq!(
        message,
        "projection `user_progress` has no snapshot named `oct1` (snapshots: nov1)"
    );
    assert_eq!(resp.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(resp.header("x-fleuve-snapshot".parse().unwrap()), None);

    // A snapshot still being built is not one yet.
    let resp = get(&app.router, "/v1/users/u-1/progress?snapshot=dec1", None).await;
    let message = assert_error(&resp, StatusCode::NOT_FOUND, "unknown_snapshot", None);
    assert!(message.contains("`dec1`"), "{message}");
    assert!(message.ends_with("(snapshots: nov1)"), "{message}");

    // A snapshot of another projection does not apply.
    let resp = get(
        &app.router,
        "/v1/users/u-1/progress?snapshot=black-friday",
        None,
    )
    .await;
    let message = assert_error(&resp, StatusCode::NOT_FOUND, "unknown_snapshot", None);
    assert_eq!(
        message,
        "projection `user_progress` has no snapshot named `black-friday` (snapshots: nov1)"
    );
    let resp = get(
        &app.router,
        "/v1/catalog/contents/film-1?snapshot=nov1",
        None,
    )
    .await;
    let message = assert_error(&resp, StatusCode::NOT_FOUND, "unknown_snapshot", None);
    assert_eq!(
        message,
        "projection `catalog` has no snapshot named `nov1` (snapshots: black-friday)"
    );
    // Bookmarks share user ids and a topic with progress, not its snapshots.
    let resp = get(&app.router, "/v1/users/u-1/bookmarks?snapshot=nov1", None).await;
    let message = assert_error(&resp, StatusCode::NOT_FOUND, "unknown_snapshot", None);
    assert_eq!(
        message,
        "projection `bookmarks` has no snapshot named `nov1`"
    );
}

#[tokio::test]
async fn bad_names_and_repeated_snapshots_are_400s() {
    let (app, _) = world(QueryConfig::default()).await;
    for (query, needle) in [
        ("snapshot=Nov1", "`Nov1`"),
        ("snapshot=", "``"),
        ("snapshot", "``"),
        ("snapshot=-nov1", "starting with a letter or a digit"),
        ("snapshot=nov%201", "`nov 1`"),
        ("snapshot=nov/1", "`nov/1`"),
        (
            &format!("snapshot={}", "a".repeat(41)),
            "1 to 40 characters",
        ),
    ] {
        let resp = get(
            &app.router,
            &format!("/v1/users/u-1/progress?{query}"),
            None,
        )
        .await;
        let message = assert_error(
            &resp,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("snapshot"),
        );
        assert!(message.starts_with("snapshot name "), "{query}: {message}");
        assert!(message.contains(needle), "{query}: {message}");
    }

    for query in [
        "snapshot=nov1&snapshot=nov1",
        "snapshot=nov1&limit=1&snap%73hot=x",
    ] {
        let resp = get(
            &app.router,
            &format!("/v1/users/u-1/progress?{query}"),
            None,
        )
        .await;
        let message = assert_error(
            &resp,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("snapshot"),
        );
        assert_eq!(
            message, "query parameter `snapshot` is given more than once; give it once",
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_snapshot_with_a_position_is_refused() {
    let (app, _) = world(QueryConfig::default()).await;
    let token = Position::new(topics::USER_ACTIVITY, 0, 3).token();
    for uri in [
        "/v1/users/u-1/progress/film-1?snapshot=nov1",
        // Refused before the name is looked up.
        "/v1/users/u-1/progress/film-1?snapshot=nope",
    ] {
        let resp = call(
            &app.router,
            "GET",
            uri,
            None,
            &[("x-fleuve-position", &token)],
            Vec::new(),
        )
        .await;
        let message = assert_error(
            &resp,
            StatusCode::BAD_REQUEST,
            "snapshot_with_position",
            None,
        );
        assert_eq!(
            message,
            "a snapshot never moves: X-Fleuve-Position cannot be combined with snapshot"
        );
    }
    // An empty header carries no position.
    let resp = call(
        &app.router,
        "GET",
        "/v1/users/u-1/progress/film-1?snapshot=nov1",
        None,
        &[("x-fleuve-position", "")],
        Vec::new(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.json()["position_ms"], 10_000);
}

#[tokio::test]
async fn without_versions_every_snapshot_is_unknown() {
    let app = App::open().await;
    app.progress(&[progress("u-1", "film-1", NOV1, 61_000)])
        .await;
    let live = get(&app.router, "/v1/users/u-1/progress/film-1", None).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text());

    let resp = get(
        &app.router,
        "/v1/users/u-1/progress/film-1?snapshot=nov1",
        None,
    )
    .await;
    let message = assert_error(&resp, StatusCode::NOT_FOUND, "unknown_snapshot", None);
    assert!(
        message.starts_with("this query API has no snapshots"),
        "{message}"
    );
    assert!(message.contains("`nov1`"), "{message}");
    // The name is still checked first.
    let resp = get(&app.router, "/v1/users/u-1/progress?snapshot=NOV", None).await;
    assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        Some("snapshot"),
    );
}

#[tokio::test]
async fn a_route_without_a_projection_has_no_snapshots() {
    let (app, versions) = App::versioned(QueryConfig::default()).await;
    let extra = Router::new().route("/v1/hello", get_route(|| async { "hello" }));
    let router = router_with(
        Source::Versions(versions.clone()),
        QueryConfig::default(),
        extra,
    );
    let plain = get(&router, "/v1/hello", None).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.text(), "hello");
    let resp = get(&router, "/v1/hello?snapshot=nov1", None).await;
    let message = assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        Some("snapshot"),
    );
    assert_eq!(
        message,
        "/v1/hello reads no projection with versions, so it has no snapshots; remove `snapshot`"
    );
    // An unknown route stays a 404 `not_found`, snapshot or not.
    let resp = get(&app.router, "/v1/nothing?snapshot=nov1", None).await;
    assert_error(&resp, StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn tokens_and_access_rules_apply_to_snapshots() {
    let (app, _) = world(secured()).await;
    let uri = "/v1/users/u-1/progress/film-1?snapshot=nov1";

    let own = get(&app.router, uri, bearer("u-1", &["user"]).as_deref()).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text());
    assert_eq!(own.json()["position_ms"], 10_000);

    let other = get(&app.router, uri, bearer("u-2", &["user"]).as_deref()).await;
    assert_error(&other, StatusCode::FORBIDDEN, "forbidden", None);
    let anonymous = get(&app.router, uri, None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized", None);

    // A bad token is refused before the snapshot is looked at.
    let bad = get(
        &app.router,
        "/v1/users/u-1/progress/film-1?snapshot=oct1&snapshot=x",
        Some("Bearer not-a-token"),
    )
    .await;
    assert_error(&bad, StatusCode::UNAUTHORIZED, "invalid_token", None);
    assert!(bad.header(header::WWW_AUTHENTICATE).is_some());
}

/// `template` with every `{param}` replaced by `x`.
fn fill(template: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn snapshot_answers_are_documented_for_every_operation() {
    let (app, _) = world(QueryConfig::default()).await;
    let doc = openapi::document(&QueryConfig::default());
    let headers = &doc["components"]["headers"];
    for name in ["X-Fleuve-Snapshot", "X-Fleuve-As-Of"] {
        assert!(headers[name]["description"].is_string(), "{name}");
    }
    let token = Position::new(topics::ORDERS, 0, 3).token();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let param = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "snapshot")
                .unwrap_or_else(|| panic!("{method} {path}: no `snapshot` parameter"));
            assert_eq!(param["in"], "query");
            assert_eq!(param["required"], false);
            let ok_headers = &op["responses"]["200"]["headers"];
            for name in ["X-Fleuve-Snapshot", "X-Fleuve-As-Of"] {
                assert_eq!(
                    ok_headers[name]["$ref"],
                    format!("#/components/headers/{name}"),
                    "{method} {path}"
                );
            }
            let uri = fill(path);
            let method = method.to_uppercase();
            let unknown = call(
                &app.router,
                &method,
                &format!("{uri}?snapshot=nope"),
                None,
                &[],
                Vec::new(),
            )
            .await;
            let bad = call(
                &app.router,
                &method,
                &format!("{uri}?snapshot=NOPE"),
                None,
                &[],
                Vec::new(),
            )
            .await;
            let position = call(
                &app.router,
                &method,
                &format!("{uri}?snapshot=nope"),
                None,
                &[("x-fleuve-position", &token)],
                Vec::new(),
            )
            .await;
            for (resp, status, code) in [
                (&unknown, "404", "unknown_snapshot"),
                (&bad, "400", "invalid_parameter"),
                (&position, "400", "snapshot_with_position"),
            ] {
                assert_eq!(
                    resp.status.as_str(),
                    status,
                    "{method} {uri}: {}",
                    resp.text()
                );
                assert_eq!(resp.json()["error"]["code"], code, "{method} {uri}");
                let documented = op["responses"][status]["description"].as_str().unwrap();
                assert!(
                    documented.contains(&format!("`{code}`")),
                    "{method} {path} {status}: {documented}"
                );
            }
        }
    }
    assert!(operations >= 10, "{operations}");

    // A real snapshot answer carries every header its operation documents for a 200.
    let op = &doc["paths"]["/v1/catalog/contents/{content_id}"]["get"];
    let resp = get(
        &app.router,
        "/v1/catalog/contents/film-1?snapshot=black-friday",
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let documented: BTreeSet<&String> = op["responses"]["200"]["headers"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    for name in documented {
        assert!(resp.headers.contains_key(name.as_str()), "no {name}");
    }
    let cache = op["responses"]["200"]["headers"]["Cache-Control"]["description"]
        .as_str()
        .unwrap();
    assert!(cache.contains("private, max-age=3600"), "{cache}");
    let _: Value = resp.json();
}

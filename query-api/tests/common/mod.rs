//! What the route tests share: an app over a real embedded store, rows written with the
//! read models' own types and tables, tokens, requests and error assertions.

#![expect(dead_code, reason = "each test binary uses a part of these helpers")]
#![expect(
    clippy::unwrap_used,
    reason = "a test fails at once on what it does not expect"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use fleuve_kafka::topics;
use fleuve_projections::catalog::{
    self, ContentKind, ContentState, ContentStatus, DistributionRight, EpisodeEntry,
    PublishedContent,
};
use fleuve_projections::embedded::EmbeddedStore;
use fleuve_projections::inventory::{self, Stock};
use fleuve_projections::orders::{
    self, Order, OrderLine, OrderStatus, Shipment, ShippingAddress, TimelineEntry,
};
use fleuve_projections::progress::{EventVersion, Progress, PROGRESS};
use fleuve_projections::versions::Versions;
use fleuve_projections::{bookmarks, stamp, Checkpoint, Store, Write, WriteBatch};
use fleuve_query_api::{router, QueryConfig, Source};
use fleuve_service::auth::{mint_hs256, AuthConfig, Authenticator};
use serde::Serialize;
use serde_json::Value;
use tower::ServiceExt;

/// The HS256 secret of the test authenticator.
pub const SECRET: &str = "query-api-test-secret-0123456789abcdef";

pub struct App {
    pub router: Router,
    /// Where the write helpers write.
    pub store: Arc<dyn Store>,
    _dir: Arc<tempfile::TempDir>,
}

impl App {
    /// Authentication on (HS256 with [`SECRET`]).
    pub async fn secured() -> App {
        Self::with(QueryConfig {
            auth: Some(Authenticator::new(AuthConfig::hs256(SECRET)).unwrap()),
            ..QueryConfig::default()
        })
        .await
    }

    /// Authentication off: every route open.
    pub async fn open() -> App {
        Self::with(QueryConfig::default()).await
    }

    pub async fn with(config: QueryConfig) -> App {
        let (store, dir) = embedded().await;
        App {
            router: router(store.clone(), config),
            store,
            _dir: Arc::new(dir),
        }
    }

    /// An app serving snapshots as the `fleuve` binary does: the router reads the
    /// projections' versions. The write helpers write the plain tables (version 1).
    pub async fn versioned(config: QueryConfig) -> (App, Arc<Versions>) {
        let (store, dir) = embedded().await;
        let versions = Versions::open(store.clone()).await.unwrap();
        let app = App {
            router: router(Source::Versions(versions.clone()), config),
            store,
            _dir: Arc::new(dir),
        };
        (app, versions)
    }

    /// The same app, its write helpers writing through `store` (a version's view, say).
    pub fn writing_to(&self, store: Arc<dyn Store>) -> App {
        App {
            router: self.router.clone(),
            store,
            _dir: self._dir.clone(),
        }
    }

    /// Writes rows as the read models store them: `(table, pk, ck, value)`.
    pub async fn put(&self, rows: Vec<(&'static str, String, String, Vec<u8>)>) {
        let writes: Vec<Write> = rows
            .into_iter()
            .map(|(table, pk, ck, value)| Write::Put {
                table,
                pk,
                ck,
                value,
                ts: stamp(1, 0),
            })
            .collect();
        self.store
            .apply(WriteBatch {
                projection: "test".into(),
                writes: writes.into(),
                checkpoints: vec![],
            })
            .await
            .unwrap();
    }

    pub async fn progress(&self, rows: &[Progress]) {
        self.put(
            rows.iter()
                .map(|p| {
                    (
                        PROGRESS.name(),
                        p.user_id.clone(),
                        p.content_id.clone(),
                        json(p),
                    )
                })
                .collect(),
        )
        .await;
    }

    pub async fn bookmarks(&self, user_id: &str, rows: &[bookmarks::Bookmark]) {
        self.put(
            rows.iter()
                .map(|b| {
                    (
                        bookmarks::BOOKMARKS.name(),
                        user_id.to_owned(),
                        bookmarks::bookmark_ck(b.added_at_ms, &b.content_id),
                        json(b),
                    )
                })
                .collect(),
        )
        .await;
    }

    /// A content's state row, and its listing entry when it is published and listed.
    pub async fn content(&self, state: &ContentState) {
        let mut rows = vec![(
            catalog::CONTENT.name(),
            state.content_id.clone(),
            catalog::ROW.to_owned(),
            json(state),
        )];
        if let Some(c) = state.published() {
            if let Some((pk, ck)) = c.listing_key() {
                rows.push((
                    catalog::EPISODES.name(),
                    pk.to_owned(),
                    ck,
                    json(&EpisodeEntry::from(c)),
                ));
            }
        }
        self.put(rows).await;
    }

    /// The order row and its entries in the buyer's and seller's lists.
    pub async fn order(&self, order: &Order) {
        let ck = orders::list_ck(order.placed_at_ms, &order.order_id);
        let summary = json(&order.summary());
        self.put(vec![
            (
                orders::ORDERS.name(),
                order.order_id.clone(),
                orders::ORDER_CK.to_owned(),
                json(order),
            ),
            (
                orders::ORDERS_BY_BUYER.name(),
                order.buyer_id.clone(),
                ck.clone(),
                summary.clone(),
            ),
            (
                orders::ORDERS_BY_SELLER.name(),
                order.seller_id.clone(),
                ck,
                summary,
            ),
        ])
        .await;
    }

    pub async fn stock(&self, stock: &Stock) {
        self.put(vec![(
            inventory::STOCK.name(),
            stock.sku.clone(),
            inventory::STOCK_CK.to_owned(),
            json(stock),
        )])
        .await;
    }
}

/// An embedded store in a new temporary directory.
async fn embedded() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap(),
    );
    (store, dir)
}

/// Writes progress rows and checkpoints of the `user_progress` projection in one batch, as
/// its processor does: each row stamped with its version's offset, each checkpoint a
/// `(partition, next_offset)` on `user-activity`.
pub async fn apply_progress(store: &Arc<dyn Store>, rows: &[Progress], checkpoints: &[(i32, i64)]) {
    let writes: Vec<Write> = rows
        .iter()
        .map(|p| Write::Put {
            table: PROGRESS.name(),
            pk: p.user_id.clone(),
            ck: p.content_id.clone(),
            value: json(p),
            ts: p.version.offset,
        })
        .collect();
    store
        .apply(WriteBatch {
            projection: "user_progress".into(),
            writes: writes.into(),
            checkpoints: checkpoints
                .iter()
                .map(|&(partition, next_offset)| Checkpoint {
                    topic: topics::USER_ACTIVITY.into(),
                    partition,
                    next_offset,
                })
                .collect(),
        })
        .await
        .unwrap();
}

pub fn json(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

pub fn progress(user: &str, content: &str, at: i64, position_ms: i64) -> Progress {
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

pub fn bookmark(content: &str, at: i64) -> bookmarks::Bookmark {
    bookmarks::Bookmark {
        content_id: content.into(),
        added_at_ms: at,
        event_id: format!("bm-{content}"),
    }
}

/// A content available from 1970 on, open-ended, with rights for `partners` (territory FR).
pub fn content(id: &str, kind: ContentKind, partners: &[&str]) -> PublishedContent {
    PublishedContent {
        content_id: id.into(),
        kind,
        program_id: None,
        season_number: None,
        episode_number: None,
        title: format!("Title of {id}"),
        description: None,
        tags: Vec::new(),
        duration_ms: None,
        available_from_ms: 0,
        available_until_ms: None,
        rights: partners
            .iter()
            .map(|p| DistributionRight {
                partner: (*p).into(),
                territories: vec!["FR".into()],
            })
            .collect(),
        updated_at_ms: 1_714_594_503_120,
    }
}

/// An episode of `program` (season, number), available from 1970 on.
pub fn episode(
    id: &str,
    program: &str,
    season: i32,
    number: i32,
    partners: &[&str],
) -> PublishedContent {
    PublishedContent {
        program_id: Some(program.into()),
        season_number: Some(season),
        episode_number: Some(number),
        duration_ms: Some(1_800_000),
        ..content(id, ContentKind::Episode, partners)
    }
}

pub fn state(c: PublishedContent, status: ContentStatus) -> ContentState {
    ContentState {
        content_id: c.content_id.clone(),
        status,
        content: Some(c),
        unpublished_reason: None,
        last_offset: 7,
        last_event_id: "ev-last".into(),
        changed_at_ms: 1_714_594_503_120,
    }
}

pub fn published(c: PublishedContent) -> ContentState {
    state(c, ContentStatus::Published)
}

/// A delivered order of two lines (3 × 1250 + 1 × 999 EUR cents).
pub fn order(id: &str, buyer: &str, seller: &str, placed_at_ms: i64) -> Order {
    let step = |status, at_ms: i64, detail: Option<&str>| TimelineEntry {
        status,
        at_ms,
        event_id: format!("ev-{id}-{at_ms}"),
        detail: detail.map(str::to_owned),
    };
    Order {
        order_id: id.into(),
        buyer_id: buyer.into(),
        seller_id: seller.into(),
        lines: vec![
            OrderLine {
                sku: "sku-1".into(),
                quantity: 3,
                unit_price_minor: 1_250,
            },
            OrderLine {
                sku: "sku-2".into(),
                quantity: 1,
                unit_price_minor: 999,
            },
        ],
        currency: "EUR".into(),
        total_minor: 4_749,
        shipping_address: ShippingAddress {
            name: "Alice Martin".into(),
            line1: "1 rue de la Paix".into(),
            line2: None,
            postal_code: "75002".into(),
            city: "Paris".into(),
            country: "FR".into(),
        },
        status: OrderStatus::Delivered,
        placed_at_ms,
        updated_at_ms: placed_at_ms + 3_000,
        payment_ref: Some("pay-77".into()),
        shipment: Some(Shipment {
            carrier: "La Poste".into(),
            tracking_number: Some("LP123".into()),
        }),
        timeline: vec![
            step(OrderStatus::Placed, placed_at_ms, None),
            step(
                OrderStatus::PaymentAuthorized,
                placed_at_ms + 1_000,
                Some("pay-77"),
            ),
            step(
                OrderStatus::Shipped,
                placed_at_ms + 2_000,
                Some("La Poste LP123"),
            ),
            step(OrderStatus::Delivered, placed_at_ms + 3_000, None),
        ],
        applied_offset: 42,
    }
}

pub fn stock(sku: &str, available: i64, reserved: i64) -> Stock {
    Stock {
        available,
        reserved,
        updated_at_ms: 1_714_594_503_120,
        applied_offset: 9,
        recent_reserved_offsets: vec![7, 8],
        recent_adjustment_ids: vec!["adj-1".into()],
        ..Stock::empty(sku)
    }
}

/// A valid HS256 token.
pub fn token(sub: &str, scopes: &[&str]) -> String {
    mint_hs256(SECRET, sub, scopes, Duration::from_secs(600)).unwrap()
}

pub fn bearer(sub: &str, scopes: &[&str]) -> Option<String> {
    Some(format!("Bearer {}", token(sub, scopes)))
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether a `Vary` header of the answer lists `Authorization`.
    pub fn varies_on_authorization(&self) -> bool {
        self.headers
            .get_all(header::VARY)
            .iter()
            .flat_map(|v| v.to_str().unwrap().split(','))
            .any(|v| v.trim().eq_ignore_ascii_case("authorization"))
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A request with an optional `Authorization` value, extra headers and a body.
pub async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = authorization {
        req = req.header(header::AUTHORIZATION, a);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn get(router: &Router, uri: &str, authorization: Option<&str>) -> Resp {
    get_with(router, uri, authorization, &[]).await
}

/// A `GET` with an optional `Authorization` value and extra headers.
pub async fn get_with(
    router: &Router,
    uri: &str,
    authorization: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    call(router, "GET", uri, authorization, headers, Vec::new()).await
}

/// `POST /v1/catalog/contents:batchGet` with a JSON body.
pub async fn batch_get(router: &Router, body: &str, authorization: Option<&str>) -> Resp {
    call(
        router,
        "POST",
        "/v1/catalog/contents:batchGet",
        authorization,
        &[("content-type", "application/json")],
        body.as_bytes().to_vec(),
    )
    .await
}

/// Asserts the one error shape and returns the message.
pub fn assert_error(resp: &Resp, status: StatusCode, code: &str, field: Option<&str>) -> String {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    assert_eq!(
        resp.header(header::CONTENT_TYPE),
        Some("application/json"),
        "{}",
        resp.text()
    );
    let body = resp.json();
    let err = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no `error` object: {body}"));
    assert_eq!(err["code"], code, "{body}");
    assert_eq!(err.get("field").and_then(Value::as_str), field, "{body}");
    let keys: Vec<&String> = err.keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["code", "message", "field"].contains(&k.as_str())),
        "{body}"
    );
    let message = err["message"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    message
}

/// Follows `next_cursor` from `uri` (which has a `limit`), checking that no page is over
/// `limit`; returns the items of every page and the number of pages.
pub async fn walk(
    router: &Router,
    uri: &str,
    limit: usize,
    authorization: Option<&str>,
) -> (Vec<Value>, usize) {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let mut next = format!("{uri}{sep}limit={limit}");
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let resp = get(router, &next, authorization).await;
        assert_eq!(resp.status, StatusCode::OK, "{next}: {}", resp.text());
        let body = resp.json();
        let page = body["items"].as_array().unwrap();
        assert!(page.len() <= limit, "{next}: {} items", page.len());
        items.extend(page.iter().cloned());
        pages += 1;
        assert!(pages < 1_000, "no end to the list");
        match body["next_cursor"].as_str() {
            Some(cursor) => next = format!("{uri}{sep}limit={limit}&cursor={cursor}"),
            None => {
                assert_eq!(body["next_cursor"], Value::Null);
                break;
            }
        }
    }
    (items, pages)
}

/// The values of `key` of each item.
pub fn ids(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| i[key].as_str().unwrap().to_owned())
        .collect()
}

/// Whether the path of `uri` (its query string aside) is an instance of the route
/// `template`: the same segments, each `{param}` standing for one non-empty segment.
pub fn instance_of(template: &str, uri: &str) -> bool {
    let path = uri.split('?').next().unwrap_or(uri);
    let template: Vec<&str> = template.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    template.len() == path.len()
        && template.iter().zip(&path).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// Every `/v1` operation of the OpenAPI document: `(METHOD, template)`.
pub fn documented_operations() -> Vec<(String, String)> {
    let doc = fleuve_query_api::openapi::document(&QueryConfig::default());
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/v1/") {
            for method in item.as_object().unwrap().keys() {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(out.len() >= 10, "{out:?}");
    out
}

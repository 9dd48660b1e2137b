//! `/readyz` of the query API: ready while the store answers its pings and, with a lag
//! bound, while every projection is within it; otherwise `503` with the one error body
//! (`not_ready`, the reason as message). The store is a real embedded store behind a
//! `FaultyStore` that makes it fail; the lag is measured against a `MockCluster`.

mod common;

use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::Router;
use common::{assert_error, get, App, Resp};
use fleuve_kafka::{topics, KafkaConfig};
use fleuve_projections::testing::FaultyStore;
use fleuve_projections::{Checkpoint, StoreError, Write, WriteBatch};
use fleuve_query_api::{router, LagConfig, QueryConfig};

/// Longest `/readyz` may take to follow the store (pinged every second, a ping timing out
/// after 2 s) or the lag (measured every 100 ms here).
const FOLLOWS_WITHIN: Duration = Duration::from_secs(20);

/// What the store fails every call with while it is down.
fn refused() -> StoreError {
    StoreError::Unavailable("connection refused by node-1".into())
}

/// Polls `/readyz` until `done` holds for its answer; fails after [`FOLLOWS_WITHIN`].
async fn readyz_until(router: &Router, what: &str, done: impl Fn(&Resp) -> bool) -> Resp {
    let deadline = Instant::now() + FOLLOWS_WITHIN;
    loop {
        let resp = get(router, "/readyz", None).await;
        if done(&resp) {
            return resp;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never {what}: {} {}",
            resp.status,
            resp.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readyz_follows_the_store() {
    let app = App::open().await;
    let store = FaultyStore::new(app.store.clone());
    let api = router(store.clone(), QueryConfig::default());

    // The store answers: ready, the plain `ready`.
    let ready = readyz_until(&api, "became ready", |r| r.status == StatusCode::OK).await;
    assert_eq!(ready.text(), "ready\n");

    // The store fails: not ready, in the one error shape, saying why.
    store.faults().fail_every_call(Some(refused));
    let down = readyz_until(&api, "noticed the store failing", |r| {
        r.status != StatusCode::OK
    })
    .await;
    let message = assert_error(&down, StatusCode::SERVICE_UNAVAILABLE, "not_ready", None);
    assert!(
        message.contains("store ping failed") && message.contains("connection refused by node-1"),
        "{message}"
    );
    // Reads fail alike meanwhile, and `/healthz` stays a plain 200: the process runs.
    let read = get(&api, "/v1/users/u-1/progress", None).await;
    assert_error(&read, StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    let health = get(&api, "/healthz", None).await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "ok\n")
    );

    // The store is back: ready again.
    store.faults().fail_every_call(None);
    readyz_until(&api, "became ready again", |r| r.status == StatusCode::OK).await;
}

/// The lag and stall gauges are process-wide: the tests that read them run one at a time.
static GAUGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn readyz_fails_while_a_projection_lags_past_the_bound() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let _gauges = GAUGES.lock().await;

    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for t in topics::platform_topics(3) {
        cluster.create_topic(&t.name, t.partitions, 1).unwrap();
    }
    let kafka = KafkaConfig::new(cluster.bootstrap_servers());
    let producer: BaseProducer = kafka.client_config().create().unwrap();
    for i in 0..5 {
        producer
            .send(
                BaseRecord::to(topics::USER_ACTIVITY)
                    .partition(0)
                    .key("k")
                    .payload(&format!("r{i}")),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let mut lag = LagConfig::new(kafka, 2);
    lag.every = Duration::from_millis(100);
    let a = App::with(QueryConfig {
        lag: Some(lag),
        ..QueryConfig::default()
    })
    .await;
    let (app, store) = (&a.router, &a.store);

    // Five records on user-activity, nothing applied: over the bound of 2.
    let behind = readyz_until(app, "reported the lag", |r| {
        r.text().contains("records behind")
    })
    .await;
    let message = assert_error(&behind, StatusCode::SERVICE_UNAVAILABLE, "not_ready", None);
    assert!(
        message.contains("user_progress is 5 records behind")
            && message.contains("bookmarks is 5 records behind")
            && message.contains("(bound: 2 records)"),
        "{message}"
    );
    assert_eq!(
        behind.header(header::CONTENT_TYPE),
        Some("application/json")
    );

    // Both projections of user-activity catch up to within the bound: ready.
    for projection in ["user_progress", "bookmarks"] {
        store
            .apply(WriteBatch {
                projection: projection.into(),
                writes: Vec::<Write>::new().into(),
                checkpoints: vec![Checkpoint {
                    topic: topics::USER_ACTIVITY.into(),
                    partition: 0,
                    next_offset: 4,
                }],
            })
            .await
            .unwrap();
    }
    readyz_until(app, "became ready", |r| r.status == StatusCode::OK).await;
    let metrics = get(app, "/metrics", None).await.text();
    assert!(
        metrics.contains("fleuve_query_projection_lag_events{projection=\"user_progress\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn readyz_fails_while_a_projection_is_stalled_whatever_its_lag() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let _gauges = GAUGES.lock().await;

    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for t in topics::platform_topics(3) {
        cluster.create_topic(&t.name, t.partitions, 1).unwrap();
    }
    let kafka = KafkaConfig::new(cluster.bootstrap_servers());
    let producer: BaseProducer = kafka.client_config().create().unwrap();
    for i in 0..3 {
        producer
            .send(
                BaseRecord::to(topics::USER_ACTIVITY)
                    .partition(0)
                    .key("k")
                    .payload(&format!("r{i}")),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    // No lag bound: three records behind is fine, as long as the projection applies.
    let lag = LagConfig::new(kafka, 0).with_stall_after(Some(Duration::from_secs(1)));
    assert_eq!(lag.every, Duration::from_millis(250));
    let a = App::with(QueryConfig {
        lag: Some(lag),
        ..QueryConfig::default()
    })
    .await;
    let (app, store) = (&a.router, &a.store);
    let checkpoint = |next_offset: i64| async move {
        for projection in ["user_progress", "bookmarks"] {
            store
                .apply(WriteBatch {
                    projection: projection.into(),
                    writes: Vec::<Write>::new().into(),
                    checkpoints: vec![Checkpoint {
                        topic: topics::USER_ACTIVITY.into(),
                        partition: 0,
                        next_offset,
                    }],
                })
                .await
                .unwrap();
        }
    };

    let stalled = readyz_until(app, "reported the stall", |r| r.text().contains("stalled")).await;
    let message = assert_error(&stalled, StatusCode::SERVICE_UNAVAILABLE, "not_ready", None);
    assert!(
        message.contains("user_progress is stalled: 3 records behind and nothing applied for")
            && message.contains("bookmarks is stalled")
            && message.contains("(bound: 1 s)"),
        "{message}"
    );
    let metrics = get(app, "/metrics", None).await.text();
    assert!(
        metrics.contains("fleuve_query_projection_stalled_seconds{projection=\"user_progress\"} 1"),
        "{metrics}"
    );

    // It applies something: ready again, though still behind.
    checkpoint(1).await;
    readyz_until(app, "became ready on progress", |r| {
        r.status == StatusCode::OK
    })
    .await;
    // And nothing more for the bound: stalled again.
    let again = readyz_until(app, "reported the stall again", |r| {
        r.text().contains("stalled")
    })
    .await;
    assert!(
        again.text().contains("2 records behind"),
        "{}",
        again.text()
    );
    // Caught up: ready, and it stays so with nothing to apply.
    checkpoint(3).await;
    readyz_until(app, "became ready once caught up", |r| {
        r.status == StatusCode::OK
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = get(app, "/readyz", None).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.text());
}

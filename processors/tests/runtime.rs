//! The processor runtime on an in-process Kafka with our registry: poison records go to the
//! dead-letter topic with their reason while the rest is applied; the store's checkpoint,
//! not Kafka's committed offset, decides what is applied.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

mod runtime_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use fleuve_processors::handlers::progress::UserProgress;
use fleuve_processors::runtime::{Processor, ProcessorConfig};
use fleuve_producers::Publisher;
use fleuve_projections::testing::FaultyStore;
use fleuve_projections::{progress, PageRequest, Store};
use fleuve_schemas::{Event, PlaybackProgressed};
use fleuve_service::Readiness;
use fleuve_testkit::Kafka;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
use tokio_util::sync::CancellationToken;

fn event(user: usize, content: usize, position_ms: i64, occurred_at: i64) -> PlaybackProgressed {
    PlaybackProgressed {
        event_id: uuid_like(user, content, position_ms),
        occurred_at,
        producer: "test".into(),
        correlation_id: None,
        user_id: format!("u-{user}"),
        content_id: format!("c-{content}"),
        position_ms,
        duration_ms: 100_000,
        device: "web".into(),
    }
}

fn uuid_like(a: usize, b: usize, c: i64) -> String {
    format!(
        "00000000-0000-4000-8000-{:04x}{:04x}{:04x}",
        a,
        b,
        c % 0xffff
    )
}

async fn raw(kafka: &Kafka, key: &str, payload: &[u8]) {
    let producer: FutureProducer = kafka.config().producer_config().create().unwrap();
    producer
        .send(
            FutureRecord::to("user-activity").key(key).payload(payload),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
}

/// Publishes `e` and records the position it must leave in the projection.
async fn publish(
    publisher: &Publisher,
    expected: &mut BTreeMap<(String, String), i64>,
    e: PlaybackProgressed,
) {
    expected.insert((e.user_id.clone(), e.content_id.clone()), e.position_ms);
    publisher.publish(&e).await.unwrap();
}

/// Runs a processor on `store` until every expected row is there; returns its shutdown token
/// and task.
async fn run_until(
    kafka: &Kafka,
    store: Arc<dyn Store>,
    expected: &BTreeMap<(String, String), i64>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let kafka_config = kafka.config().set("session.timeout.ms", "6000");
    let mut config = ProcessorConfig::new(kafka_config, &kafka.registry_url);
    config.batch_max_wait = Duration::from_millis(10);
    let processor = Processor::new(config, Arc::new(UserProgress), Arc::clone(&store)).unwrap();
    let readiness = processor.readiness();
    assert!(readiness.ready().is_err(), "ready before it runs");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { processor.run(token).await.unwrap() });
    let deadline = Instant::now() + Duration::from_secs(60);
    for ((user, content), position) in expected {
        loop {
            let row = progress::get(&*store, user, content).await.unwrap();
            if row.as_ref().map(|r| r.position_ms) == Some(*position) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{user}/{content} never reached {position}: {row:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(readiness.ready(), Ok(()), "not ready while consuming");
    (shutdown, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dlq_and_the_store_checkpoint_is_the_truth() {
    let (kafka, publisher) = runtime_support::kafka_for("user_progress").await;

    let mut expected = BTreeMap::new();
    for i in 0..20 {
        publish(
            &publisher,
            &mut expected,
            event(
                i % 3,
                i % 4,
                1000 + i64::try_from(i).unwrap(),
                1_000 + i64::try_from(i).unwrap(),
            ),
        )
        .await;
    }
    // Poison in the middle of u-1's stream: not Avro, an unknown schema id, and an event
    // valid for its schema but breaking its type's rules (position beyond duration).
    raw(&kafka, "u-1", b"definitely not avro").await;
    raw(&kafka, "u-1", &[0, 0, 0, 0x27, 0x0f, 2, 4, 6]).await;
    let mut bad = event(1, 9, 5, 3_000);
    bad.position_ms = bad.duration_ms + 1;
    let json = serde_json::to_value(&bad).unwrap();
    let value: Value =
        fleuve_schemas::json::to_avro(&PlaybackProgressed::spec().schema, &json).unwrap();
    let encoder = AvroEncoder::new(SrSettings::new(kafka.registry_url.clone()));
    let strategy = SubjectNameStrategy::TopicRecordNameStrategy(
        "user-activity".into(),
        PlaybackProgressed::spec().full_name.clone(),
    );
    raw(
        &kafka,
        "u-1",
        &encoder.encode_value(value, &strategy).await.unwrap(),
    )
    .await;
    // Events after the poison, on the same partition, are applied.
    for i in 0..6 {
        publish(
            &publisher,
            &mut expected,
            event(1, i, 50_000 + i64::try_from(i).unwrap(), 10_000),
        )
        .await;
    }

    let dir = tempfile::tempdir().unwrap();
    let store = fleuve_projections::open(&format!("embedded://{}", dir.path().join("a").display()))
        .await
        .unwrap();
    let (shutdown, task) = run_until(&kafka, Arc::clone(&store), &expected).await;
    shutdown.cancel();
    task.await.unwrap();

    let dlq = kafka.read_all("dlq.user_progress");
    let mut reasons: Vec<&str> = dlq
        .iter()
        .map(|r| r.headers["dlq.reason"].as_str())
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["rejected", "undecodable", "unknown_schema"]);
    for r in &dlq {
        assert_eq!(r.headers["dlq.source.topic"], "user-activity");
        assert_eq!(r.headers["dlq.processor"], "user_progress");
        assert!(r.headers["dlq.source.offset"].parse::<i64>().is_ok());
        assert!(!r.headers["dlq.error"].is_empty());
        assert_eq!(r.key.as_deref(), Some(&b"u-1"[..]));
    }
    assert_eq!(
        dlq.iter()
            .find(|r| r.headers["dlq.reason"] == "undecodable")
            .unwrap()
            .payload
            .as_deref(),
        Some(&b"definitely not avro"[..]),
        "the dead letter keeps the original bytes"
    );
    assert!(progress::get(&*store, "u-1", "c-9")
        .await
        .unwrap()
        .is_none());
    let listed = progress::list(&*store, "u-1", &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(
        listed.items.len(),
        expected.keys().filter(|(u, _)| u == "u-1").count()
    );

    // Same group, same store: everything was committed, nothing is applied or dead-lettered
    // again. A new event proves the restarted processor does consume.
    publish(&publisher, &mut expected, event(1, 0, 77_777, 20_000)).await;
    let (shutdown, task) = run_until(&kafka, Arc::clone(&store), &expected).await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        kafka.read_all("dlq.user_progress").len(),
        3,
        "poison dead-lettered twice"
    );

    // Same group, EMPTY store: Kafka's committed offsets are past everything, but the store
    // has no checkpoint, so the processor seeks back and rebuilds the whole projection.
    let fresh = fleuve_projections::open(&format!("embedded://{}", dir.path().join("b").display()))
        .await
        .unwrap();
    let (shutdown, task) = run_until(&kafka, Arc::clone(&fresh), &expected).await;
    shutdown.cancel();
    task.await.unwrap();
    for user in ["u-0", "u-1", "u-2"] {
        let a = progress::list(&*store, user, &PageRequest::first(100))
            .await
            .unwrap();
        let b = progress::list(&*fresh, user, &PageRequest::first(100))
            .await
            .unwrap();
        assert_eq!(a.items, b.items, "rebuilt projection differs for {user}");
    }
}

/// A handler with a timer: every tick writes the tick's time, with no event at all.
#[derive(Debug)]
struct Ticker;

#[async_trait::async_trait]
impl fleuve_processors::runtime::Handler for Ticker {
    fn name(&self) -> &'static str {
        "ticker"
    }
    fn topics(&self) -> &'static [&'static str] {
        &["user-activity"]
    }
    fn wants(&self, _: &str) -> bool {
        false
    }
    async fn fold(
        &self,
        _: &dyn Store,
        _: &[fleuve_processors::runtime::Incoming],
    ) -> Result<fleuve_processors::runtime::Fold, fleuve_projections::StoreError> {
        Ok(fleuve_processors::runtime::Fold::default())
    }
    fn timer(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
    async fn on_timer(
        &self,
        _: &dyn Store,
        now_ms: i64,
    ) -> Result<fleuve_projections::Writes, fleuve_projections::StoreError> {
        Ok(vec![fleuve_projections::Write::Put {
            table: "ticks",
            pk: "ticker".into(),
            ck: fleuve_projections::paging::asc_i64(now_ms),
            value: now_ms.to_string().into_bytes(),
            ts: now_ms,
        }]
        .into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_run_without_events_and_lag_is_reported() {
    let kafka = Kafka::start().await;
    kafka.create_topic("dlq.ticker", 1);
    let dir = tempfile::tempdir().unwrap();
    let store = fleuve_projections::open(&format!("embedded://{}", dir.path().display()))
        .await
        .unwrap();
    let mut config = ProcessorConfig::new(
        kafka.config().set("session.timeout.ms", "6000"),
        &kafka.registry_url,
    );
    config.statistics_interval = Duration::from_millis(100);
    let processor = Processor::new(config, Arc::new(Ticker), Arc::clone(&store)).unwrap();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { processor.run(token).await.unwrap() });

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ticks = store.scan("ticks", "ticker", None, 100).await.unwrap();
        let lag_reported = prometheus::gather().iter().any(|family| {
            family.name() == "fleuve_processor_lag_events"
                && family.get_metric().iter().any(|m| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == "processor" && l.value() == "ticker")
                })
        });
        if ticks.len() >= 3 && lag_reported {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 30 s: {} timer writes, lag reported: {lag_reported}",
            ticks.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn batch_sizes_out_of_bounds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = fleuve_projections::open(&format!("embedded://{}", dir.path().display()))
        .await
        .unwrap();
    for size in [0, fleuve_processors::runtime::MAX_BATCH_EVENTS + 1] {
        let mut config = ProcessorConfig::new(
            fleuve_kafka::KafkaConfig::new("127.0.0.1:1"),
            "http://127.0.0.1:1",
        );
        config.batch_max_events = size;
        let err = Processor::new(config, Arc::new(UserProgress), Arc::clone(&store))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("batch_max_events must be from 1 to 5000"),
            "{err}"
        );
        assert!(err.contains(&format!("got {size}")), "{err}");
    }
    let mut config = ProcessorConfig::new(
        fleuve_kafka::KafkaConfig::new("127.0.0.1:1"),
        "http://127.0.0.1:1",
    );
    config.batch_max_wait = fleuve_processors::runtime::MAX_BATCH_WAIT + Duration::from_millis(1);
    let err = Processor::new(config, Arc::new(UserProgress), Arc::clone(&store))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "processor `user_progress`: invalid settings: batch_max_wait must be from 0 to 10000 ms, \
         got 10001 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_bounded_by_size() {
    use runtime_support::{applied_per_event, batch_sizes, wait_for, Tally};
    const NAME: &str = "tally_batch_size";
    let (kafka, publisher) = runtime_support::kafka_for(NAME).await;
    // All queued before the processor starts: batches are as large as allowed.
    runtime_support::publish(&publisher, 0..40, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::new(runtime_support::embedded(dir.path()).await);
    let running = runtime_support::start_with(&kafka, Tally::new(NAME), store.clone(), |c| {
        c.batch_max_events = 3;
    });
    wait_for("40 events applied", Duration::from_secs(60), async || {
        (applied_per_event(&[&store]).len() == 40).then_some(())
    })
    .await;
    running.stop().await.unwrap();
    let sizes = batch_sizes(&store);
    assert_eq!(sizes.iter().sum::<usize>(), 40);
    assert!(sizes.iter().all(|n| *n <= 3), "{sizes:?}");
    assert!(
        sizes.iter().filter(|n| **n == 3).count() >= 10,
        "batches not filled: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_wait_from_their_first_record_and_end_on_shutdown() {
    use runtime_support::{applied_per_event, batch_sizes, wait_for, Tally};
    const NAME: &str = "tally_batch_wait";
    const WAIT: Duration = Duration::from_millis(1500);
    let (kafka, publisher) = runtime_support::kafka_for(NAME).await;
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::new(runtime_support::embedded(dir.path()).await);
    let running = runtime_support::start_with(&kafka, Tally::new(NAME), store.clone(), |c| {
        c.batch_max_wait = WAIT;
    });
    runtime_support::publish(&publisher, 0..1, 1).await;
    wait_for(
        "the first event applied",
        Duration::from_secs(60),
        async || (applied_per_event(&[&store]).len() == 1).then_some(()),
    )
    .await;

    // A second event opens a batch that waits for more: a third one joins it.
    let opened = Instant::now();
    runtime_support::publish(&publisher, 1..2, 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        applied_per_event(&[&store]).len(),
        1,
        "applied before the wait was over"
    );
    runtime_support::publish(&publisher, 2..3, 1).await;
    wait_for("the batch applied", Duration::from_secs(30), async || {
        (applied_per_event(&[&store]).len() == 3).then_some(())
    })
    .await;
    let took = opened.elapsed();
    assert!(took >= WAIT, "the batch ended after {took:?}");
    assert_eq!(batch_sizes(&store), [1, 2], "one batch for the two events");

    // Shutdown ends a waiting batch at once, and what it holds is applied.
    runtime_support::publish(&publisher, 3..4, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    running.stop().await.unwrap();
    assert!(
        stopping.elapsed() < WAIT,
        "shutdown waited for the batch: {:?}",
        stopping.elapsed()
    );
    assert_eq!(batch_sizes(&store), [1, 2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_consumed_applied_and_dead_lettered() {
    use runtime_support::{checkpoints, end_offsets, tally_rows, wait_for, Tally};
    const NAME: &str = "tally_metrics";
    const USERS: u64 = 5;
    let metric = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("processor", NAME)];
        labels.extend_from_slice(extra);
        runtime_support::metric(name, &labels)
    };
    let snapshot = || {
        [
            metric("fleuve_processor_events_consumed_total", &[]),
            metric("fleuve_processor_events_applied_total", &[]),
            metric(
                "fleuve_processor_events_dead_lettered_total",
                &[("reason", "undecodable")],
            ),
            metric(
                "fleuve_processor_events_dead_lettered_total",
                &[("reason", "rejected")],
            ),
            metric("fleuve_processor_freshness_seconds", &[]),
            metric("fleuve_processor_batch_duration_seconds", &[]),
        ]
    };
    let (kafka, publisher) = runtime_support::kafka_for(NAME).await;
    // 40 events, one of them rejected by the handler, and one record that is not Avro.
    runtime_support::publish(&publisher, 0..20, USERS).await;
    raw(&kafka, "u-1", b"not avro at all").await;
    let mut refused = runtime_support::event(20, USERS);
    refused.device = "reject".into();
    publisher.publish(&refused).await.unwrap();
    runtime_support::publish(&publisher, 21..40, USERS).await;

    let before = snapshot();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime_support::embedded(dir.path()).await;
    let running = runtime_support::start(&kafka, Tally::new(NAME), Arc::clone(&store));
    let ends = end_offsets(&kafka);
    wait_for(
        "every record handled",
        Duration::from_secs(60),
        async || {
            (tally_rows(&*store).await.len() == 39 && checkpoints(&*store, NAME).await == ends)
                .then_some(())
        },
    )
    .await;
    running.stop().await.unwrap();
    let after = snapshot();
    let delta: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();

    let [consumed, applied, undecodable, rejected, freshness, batches] = delta[..] else {
        unreachable!()
    };
    assert_eq!(consumed, 41.0, "records consumed");
    assert_eq!(applied, 39.0, "events applied");
    assert_eq!(undecodable, 1.0, "dead letters: undecodable");
    assert_eq!(rejected, 1.0, "dead letters: rejected");
    assert_eq!(freshness, 39.0, "one freshness sample per applied event");
    assert!(
        (1.0..=41.0).contains(&batches),
        "batch durations observed: {batches}"
    );
    assert_eq!(kafka.read_all(&format!("dlq.{NAME}")).len(), 2);
}

//! Exactly-once in effect: whatever the store or the consumer group does, every event is
//! applied once. Transient store errors are retried with backoff and never skipped, a
//! permanent one stops the processor where it was, and a rebalance with work in flight
//! neither loses nor repeats an event. Each test checks the projection against a clean run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod runtime_support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_projections::Store;
use fleuve_service::Readiness;
use fleuve_testkit::Kafka;
use runtime_support::{
    checkpoints, committed, embedded, end_offsets, event_id, is_ready, metric, publish, start,
    start_with, tally_counts, tally_rows, wait_for, Tally, TestStore,
};
use tokio_util::sync::CancellationToken;

const USERS: u64 = 12;
const WAIT: Duration = Duration::from_secs(60);

fn publisher(kafka: &Kafka) -> Publisher {
    Publisher::new(PublisherConfig::new(
        kafka.config(),
        &kafka.registry_url,
        "test",
    ))
    .unwrap()
}

/// Waits until `store` holds a tally row for each of events `0..events` and the checkpoints
/// of `name` have reached the end of every partition.
async fn wait_applied(kafka: &Kafka, store: &dyn Store, name: &str, events: u64) {
    let ends = end_offsets(kafka);
    wait_for(
        &format!("{name}: {events} events applied up to {ends:?}"),
        WAIT,
        async || {
            let rows = tally_rows(store).await.len();
            let at = checkpoints(store, name).await;
            (rows == usize::try_from(events).unwrap() && at == ends).then_some(())
        },
    )
    .await;
}

/// Every event of `0..events` applied exactly once: by the handler's own count, and by what
/// the store saw applied.
async fn assert_applied_once(store: &dyn Store, seen: &TestStore, events: u64) {
    let expected: BTreeMap<String, u64> = (0..events).map(|s| (event_id(s), 1)).collect();
    assert_eq!(tally_counts(store).await, expected, "tally counts");
    let applied: BTreeMap<String, u64> = seen.applied().into_iter().collect();
    assert_eq!(applied, expected, "writes applied per event");
}

/// A processor of the same name on an empty store, run to the end of the log: the
/// projection and checkpoints a run without failure leaves.
async fn clean_run(
    kafka: &Kafka,
    name: &'static str,
    dir: &std::path::Path,
    events: u64,
) -> Arc<dyn Store> {
    let store = embedded(dir).await;
    let running = start(kafka, Tally::new(name), Arc::clone(&store));
    wait_applied(kafka, &*store, name, events).await;
    running.stop().await.unwrap();
    store
}

async fn assert_same_as(store: &dyn Store, clean: &dyn Store, name: &str) {
    assert_eq!(
        tally_rows(store).await,
        tally_rows(clean).await,
        "projection differs from a clean run"
    );
    assert_eq!(
        checkpoints(store, name).await,
        checkpoints(clean, name).await,
        "checkpoints differ from a clean run"
    );
}

/// Watches, for `period`, that neither the store checkpoints nor the group's committed
/// offsets move past `applied` (what the store held when the failures began).
async fn assert_nothing_advances(
    kafka: &Kafka,
    store: &dyn Store,
    name: &str,
    applied: &BTreeMap<i32, i64>,
    period: Duration,
) {
    let group = format!("fleuve-{name}");
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert_eq!(
            &checkpoints(store, name).await,
            applied,
            "a checkpoint moved while the store was failing"
        );
        for (partition, offset) in committed(kafka, &group) {
            let done = applied.get(&partition).copied().unwrap_or(0);
            assert!(
                offset <= done,
                "partition {partition}: offset {offset} committed while the store only applied up to {done}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_apply_errors_are_retried_never_skipped() {
    const NAME: &str = "tally_apply";
    let kafka = Kafka::start().await;
    kafka.create_topic(&format!("dlq.{NAME}"), 1);
    let publisher = publisher(&kafka);
    let dir = tempfile::tempdir().unwrap();
    let inner = embedded(&dir.path().join("flaky")).await;
    let store = TestStore::new(Arc::clone(&inner));
    let retries = || {
        metric(
            "fleuve_processor_retries_total",
            &[("processor", NAME), ("operation", "apply batch")],
        )
    };

    publish(&publisher, 0..30, USERS).await;
    let running = start(&kafka, Tally::new(NAME), store.clone());
    wait_applied(&kafka, &*inner, NAME, 30).await;
    let applied = checkpoints(&*inner, NAME).await;
    // Offsets are committed once applied: the checks below would see them move.
    wait_for(
        "offsets committed up to the checkpoints",
        WAIT,
        async || (committed(&kafka, &format!("fleuve-{NAME}")) == applied).then_some(()),
    )
    .await;

    let retries_before = retries();
    store.faults.apply_unavailable.store(true, Ordering::SeqCst);
    publish(&publisher, 30..60, USERS).await;
    wait_for("apply failed 5 times", WAIT, async || {
        (store.faults.injected.load(Ordering::SeqCst) >= 5).then_some(())
    })
    .await;
    // Longer than two auto-commit intervals (1 s).
    assert_nothing_advances(&kafka, &*inner, NAME, &applied, Duration::from_millis(2500)).await;
    assert_eq!(
        tally_rows(&*inner).await.len(),
        30,
        "rows written by failed batches"
    );
    assert!(
        is_ready(&running.readiness),
        "a processor retrying is still running"
    );
    let failed = store.faults.injected.load(Ordering::SeqCst);
    store
        .faults
        .apply_unavailable
        .store(false, Ordering::SeqCst);
    #[allow(clippy::cast_precision_loss)]
    let failed = failed as f64;
    assert!(
        retries() - retries_before >= failed,
        "{failed} failures, {} retries counted",
        retries() - retries_before
    );

    wait_applied(&kafka, &*inner, NAME, 60).await;
    running.stop().await.unwrap();
    assert_applied_once(&*inner, &store, 60).await;
    let clean = clean_run(&kafka, NAME, &dir.path().join("clean"), 60).await;
    assert_same_as(&*inner, &*clean, NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_checkpoint_read_errors_are_retried_never_skipped() {
    const NAME: &str = "tally_checkpoint";
    let kafka = Kafka::start().await;
    kafka.create_topic(&format!("dlq.{NAME}"), 1);
    let publisher = publisher(&kafka);
    let dir = tempfile::tempdir().unwrap();
    let inner = embedded(&dir.path().join("flaky")).await;
    let store = TestStore::new(Arc::clone(&inner));
    let retries = || {
        metric(
            "fleuve_processor_retries_total",
            &[("processor", NAME), ("operation", "read checkpoint")],
        )
    };

    publish(&publisher, 0..40, USERS).await;
    // The processor cannot learn where its partitions stand: it must not apply anything.
    store
        .faults
        .checkpoint_unavailable
        .store(true, Ordering::SeqCst);
    let running = start(&kafka, Tally::new(NAME), store.clone());
    wait_for("checkpoint reads failed 5 times", WAIT, async || {
        (store.faults.injected.load(Ordering::SeqCst) >= 5).then_some(())
    })
    .await;
    assert_nothing_advances(
        &kafka,
        &*inner,
        NAME,
        &BTreeMap::new(),
        Duration::from_millis(2500),
    )
    .await;
    assert!(
        tally_rows(&*inner).await.is_empty(),
        "applied without a checkpoint"
    );
    let failed = store.faults.injected.load(Ordering::SeqCst);
    store
        .faults
        .checkpoint_unavailable
        .store(false, Ordering::SeqCst);
    #[allow(clippy::cast_precision_loss)]
    let failed = failed as f64;
    assert!(
        retries() >= failed,
        "{failed} failures, {} retries counted",
        retries()
    );

    wait_applied(&kafka, &*inner, NAME, 40).await;
    running.stop().await.unwrap();
    assert_applied_once(&*inner, &store, 40).await;
    let clean = clean_run(&kafka, NAME, &dir.path().join("clean"), 40).await;
    assert_same_as(&*inner, &*clean, NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_store_error_stops_the_processor_where_it_was() {
    const NAME: &str = "tally_backend";
    let kafka = Kafka::start().await;
    kafka.create_topic(&format!("dlq.{NAME}"), 1);
    let publisher = publisher(&kafka);
    let dir = tempfile::tempdir().unwrap();
    let inner = embedded(&dir.path().join("store")).await;
    let store = TestStore::new(Arc::clone(&inner));
    let group = format!("fleuve-{NAME}");

    publish(&publisher, 0..20, USERS).await;
    let running = start(&kafka, Tally::new(NAME), store.clone());
    wait_applied(&kafka, &*inner, NAME, 20).await;
    let applied = checkpoints(&*inner, NAME).await;

    store.faults.apply_backend.store(true, Ordering::SeqCst);
    publish(&publisher, 20..45, USERS).await;
    let result = tokio::time::timeout(WAIT, running.task)
        .await
        .expect("the processor stops on a permanent error")
        .unwrap();
    let err = result.expect_err("stopped without an error").to_string();
    assert_eq!(
        err,
        "processor `tally_backend` stopped on a store error: store failure: disk full"
    );
    assert_eq!(
        store.faults.injected.load(Ordering::SeqCst),
        1,
        "a permanent error is not retried"
    );
    let reason = running.readiness.ready().unwrap_err();
    assert!(reason.contains("disk full"), "{reason}");
    assert_eq!(checkpoints(&*inner, NAME).await, applied);
    assert_eq!(tally_rows(&*inner).await.len(), 20);
    for (partition, offset) in committed(&kafka, &group) {
        assert!(
            offset <= applied.get(&partition).copied().unwrap_or(0),
            "partition {partition}: offset {offset} committed past the checkpoint"
        );
    }

    // Once the store is repaired, a restart applies what failed: nothing was skipped.
    store.faults.apply_backend.store(false, Ordering::SeqCst);
    let running = start(&kafka, Tally::new(NAME), store.clone());
    wait_applied(&kafka, &*inner, NAME, 45).await;
    running.stop().await.unwrap();
    assert_applied_once(&*inner, &store, 45).await;
    let clean = clean_run(&kafka, NAME, &dir.path().join("clean"), 45).await;
    assert_same_as(&*inner, &*clean, NAME).await;
}

/// Publishes events from `first` on, `per_round` at a time every `pause`, until `stop`;
/// returns how many events there are in all.
async fn publish_until(
    publisher: Publisher,
    first: u64,
    per_round: u64,
    pause: Duration,
    stop: CancellationToken,
) -> u64 {
    let mut next = first;
    while !stop.is_cancelled() {
        publish(&publisher, next..next + per_round, USERS).await;
        next += per_round;
        tokio::time::sleep(pause).await;
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_with_work_in_flight_loses_and_repeats_nothing() {
    const NAME: &str = "tally_rebalance";
    let kafka = Kafka::start().await;
    kafka.create_topic(&format!("dlq.{NAME}"), 1);
    let dir = tempfile::tempdir().unwrap();
    let shared = embedded(&dir.path().join("shared")).await;
    // One store, seen through a wrapper per processor to know who applied what.
    let seen_a = TestStore::new(Arc::clone(&shared));
    let seen_b = TestStore::new(Arc::clone(&shared));

    publish(&publisher(&kafka), 0..200, USERS).await;
    let a = start(&kafka, Tally::new(NAME), seen_a.clone());
    wait_for("the first processor applies events", WAIT, async || {
        (seen_a.applied().len() >= 50).then_some(())
    })
    .await;

    // A stream keeps coming while the group changes twice.
    let stop_publishing = CancellationToken::new();
    let publishing = tokio::spawn(publish_until(
        publisher(&kafka),
        200,
        5,
        Duration::from_millis(10),
        stop_publishing.clone(),
    ));
    let b = start(&kafka, Tally::new(NAME), seen_b.clone());
    wait_for(
        "the second processor is given partitions",
        WAIT,
        async || (!seen_b.applied().is_empty()).then_some(()),
    )
    .await;
    let a_applied = seen_a.applied().len();
    wait_for("the first processor keeps partitions", WAIT, async || {
        (seen_a.applied().len() > a_applied + 20).then_some(())
    })
    .await;
    a.stop().await.unwrap();
    let b_applied = seen_b.applied().len();
    wait_for("the second processor takes over", WAIT, async || {
        (seen_b.applied().len() > b_applied + 50).then_some(())
    })
    .await;
    stop_publishing.cancel();
    let events = publishing.await.unwrap();

    wait_applied(&kafka, &*shared, NAME, events).await;
    assert!(is_ready(&b.readiness));
    b.stop().await.unwrap();
    assert_eq!(checkpoints(&*shared, NAME).await, end_offsets(&kafka));
    let expected: BTreeMap<String, u64> = (0..events).map(|s| (event_id(s), 1)).collect();
    assert_eq!(tally_counts(&*shared).await, expected, "tally counts");
    let mut applied: BTreeMap<String, u64> = seen_a.applied().into_iter().collect();
    for (id, n) in seen_b.applied() {
        *applied.entry(id).or_default() += n;
    }
    let twice: Vec<&String> = applied
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    assert_eq!(applied, expected, "writes applied per event");

    let clean = clean_run(&kafka, NAME, &dir.path().join("clean"), events).await;
    assert_same_as(&*shared, &*clean, NAME).await;
}

/// The first processor gathers batches for a second, so the rebalance the second one causes
/// lands in the middle of a batch: the records read before the revocation belong to a
/// partition that may now be another consumer's, which reads its checkpoint and applies
/// them while the first one's store is slow. They must not be applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_before_a_rebalance_are_not_applied_after_it() {
    const NAME: &str = "tally_stale_batch";
    let kafka = Kafka::start().await;
    kafka.create_topic(&format!("dlq.{NAME}"), 1);
    let dir = tempfile::tempdir().unwrap();
    let shared = embedded(&dir.path().join("shared")).await;
    let seen_a = TestStore::new(Arc::clone(&shared));
    let seen_b = TestStore::new(Arc::clone(&shared));
    // A quick rebalance (the mock group waits one second less than this for members).
    let quick = |c: &mut fleuve_processors::runtime::ProcessorConfig| {
        c.kafka = c.kafka.clone().set("session.timeout.ms", "3000");
    };

    publish(&publisher(&kafka), 0..30, USERS).await;
    let a = start_with(&kafka, Tally::new(NAME), seen_a.clone(), |c| {
        quick(c);
        c.batch_max_wait = Duration::from_secs(1);
    });
    wait_for("the first processor applies events", WAIT, async || {
        (seen_a.applied().len() == 30).then_some(())
    })
    .await;

    let stop_publishing = CancellationToken::new();
    let publishing = tokio::spawn(publish_until(
        publisher(&kafka),
        30,
        1,
        Duration::from_millis(50),
        stop_publishing.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen_a.faults.hold.store(true, Ordering::SeqCst);
    let b = start_with(&kafka, Tally::new(NAME), seen_b.clone(), quick);
    wait_for("the second processor applies events", WAIT, async || {
        (!seen_b.applied().is_empty()).then_some(())
    })
    .await;
    seen_a.faults.hold.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_publishing.cancel();
    let events = publishing.await.unwrap();

    wait_applied(&kafka, &*shared, NAME, events).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    let mut applied: BTreeMap<String, u64> = seen_a.applied().into_iter().collect();
    for (id, n) in seen_b.applied() {
        *applied.entry(id).or_default() += n;
    }
    let twice: Vec<&String> = applied
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    let expected: BTreeMap<String, u64> = (0..events).map(|s| (event_id(s), 1)).collect();
    assert_eq!(applied, expected, "writes applied per event");
    assert_eq!(tally_counts(&*shared).await, expected, "tally counts");
    assert_eq!(checkpoints(&*shared, NAME).await, end_offsets(&kafka));
}

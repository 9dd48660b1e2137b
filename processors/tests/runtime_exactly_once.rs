//! Exactly-once in effect: whatever the store or the consumer group does, every event is
//! applied once. Transient store errors are retried with backoff and never skipped, a
//! permanent one stops the processor where it was, and a rebalance with work in flight
//! neither loses nor repeats an event. Each test checks the projection against a clean run.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

mod runtime_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleuve_producers::Publisher;
use fleuve_projections::testing::FaultyStore;
use fleuve_projections::Store;
use fleuve_service::Readiness;
use fleuve_testkit::Kafka;
use runtime_support::{
    applied_per_event, checkpoints, committed, embedded, end_offsets, event_id, is_ready,
    kafka_for, metric, publish, publisher, start, start_with, tally_counts, tally_rows, wait_for,
    Running, Tally, HOLD_MAX,
};
use tokio_util::sync::CancellationToken;

const USERS: u64 = 12;
const WAIT: Duration = Duration::from_secs(60);

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

/// Every event of `0..events` applied exactly once: by the handler's own count in `store`,
/// and by what the wrappers `seen` (all the processors' together) saw applied.
async fn assert_applied_once(store: &dyn Store, seen: &[&FaultyStore], events: u64) {
    let expected: BTreeMap<String, u64> = (0..events).map(|s| (event_id(s), 1)).collect();
    assert_eq!(tally_counts(store).await, expected, "tally counts");
    let applied = applied_per_event(seen);
    let twice: Vec<&String> = applied
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
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

/// A processor's Kafka, and an embedded store (`inner`) behind a [`FaultyStore`] (`store`)
/// that the tests make fail.
struct Flaky {
    name: &'static str,
    kafka: Kafka,
    publisher: Publisher,
    dir: tempfile::TempDir,
    inner: Arc<dyn Store>,
    store: Arc<FaultyStore>,
}

impl Flaky {
    async fn new(name: &'static str) -> Flaky {
        let (kafka, publisher) = kafka_for(name).await;
        let dir = tempfile::tempdir().unwrap();
        let inner = embedded(&dir.path().join("flaky")).await;
        let store = FaultyStore::new(Arc::clone(&inner));
        Flaky {
            name,
            kafka,
            publisher,
            dir,
            inner,
            store,
        }
    }

    /// The processor over the faulty store.
    fn start(&self) -> Running {
        start(&self.kafka, Tally::new(self.name), self.store.clone())
    }

    /// Waits for `events` to be applied, stops `running`, and checks that each was applied
    /// once and that the projection and checkpoints are those of a clean run.
    async fn finish(&self, running: Running, events: u64) {
        let (kafka, inner, name) = (&self.kafka, &*self.inner, self.name);
        wait_applied(kafka, inner, name, events).await;
        running.stop().await.unwrap();
        assert_applied_once(inner, &[&self.store], events).await;
        let clean = clean_run(kafka, name, &self.dir.path().join("clean"), events).await;
        assert_same_as(inner, &*clean, name).await;
    }
}

/// The retries of `operation` counted for processor `name`, from when it was made.
struct Retries {
    name: &'static str,
    operation: &'static str,
    before: f64,
}

impl Retries {
    fn new(name: &'static str, operation: &'static str) -> Retries {
        let mut retries = Retries {
            name,
            operation,
            before: 0.0,
        };
        retries.before = retries.total();
        retries
    }

    fn total(&self) -> f64 {
        metric(
            "fleuve_processor_retries_total",
            &[("processor", self.name), ("operation", self.operation)],
        )
    }

    /// Asserts that each of `failed` failures was retried since.
    fn assert_cover(&self, failed: u64) {
        let counted = self.total() - self.before;
        #[expect(
            clippy::cast_precision_loss,
            reason = "counts far below 2^52 are exact in f64"
        )]
        let failed = failed as f64;
        assert!(
            counted >= failed,
            "{failed} failures, {counted} retries of {} counted",
            self.operation
        );
    }
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
    let flaky = Flaky::new("tally_apply").await;
    let (kafka, inner, name, faults) = (
        &flaky.kafka,
        &*flaky.inner,
        flaky.name,
        flaky.store.faults(),
    );

    publish(&flaky.publisher, 0..30, USERS).await;
    let running = flaky.start();
    wait_applied(kafka, inner, name, 30).await;
    let applied = checkpoints(inner, name).await;
    // Offsets are committed once applied: the checks below would see them move.
    wait_for(
        "offsets committed up to the checkpoints",
        WAIT,
        async || (committed(kafka, &format!("fleuve-{name}")) == applied).then_some(()),
    )
    .await;

    let retries = Retries::new(name, "apply batch");
    faults.apply_unavailable(true);
    publish(&flaky.publisher, 30..60, USERS).await;
    wait_for("apply failed 5 times", WAIT, async || {
        (faults.injected() >= 5).then_some(())
    })
    .await;
    // Longer than two auto-commit intervals (1 s).
    assert_nothing_advances(kafka, inner, name, &applied, Duration::from_millis(2500)).await;
    assert_eq!(
        tally_rows(inner).await.len(),
        30,
        "rows written by failed batches"
    );
    assert!(
        is_ready(&running.readiness),
        "a processor retrying is still running"
    );
    let failed = faults.injected();
    faults.apply_unavailable(false);
    retries.assert_cover(failed);

    flaky.finish(running, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_checkpoint_read_errors_are_retried_never_skipped() {
    let flaky = Flaky::new("tally_checkpoint").await;
    let (kafka, inner, name, faults) = (
        &flaky.kafka,
        &*flaky.inner,
        flaky.name,
        flaky.store.faults(),
    );
    let retries = Retries::new(name, "read checkpoint");

    publish(&flaky.publisher, 0..40, USERS).await;
    // The processor cannot learn where its partitions stand: it must not apply anything.
    faults.checkpoint_unavailable(true);
    let running = flaky.start();
    wait_for("checkpoint reads failed 5 times", WAIT, async || {
        (faults.injected() >= 5).then_some(())
    })
    .await;
    assert_nothing_advances(
        kafka,
        inner,
        name,
        &BTreeMap::new(),
        Duration::from_millis(2500),
    )
    .await;
    assert!(
        tally_rows(inner).await.is_empty(),
        "applied without a checkpoint"
    );
    let failed = faults.injected();
    faults.checkpoint_unavailable(false);
    retries.assert_cover(failed);

    flaky.finish(running, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_store_error_stops_the_processor_where_it_was() {
    let flaky = Flaky::new("tally_backend").await;
    let (kafka, inner, name, faults) = (
        &flaky.kafka,
        &*flaky.inner,
        flaky.name,
        flaky.store.faults(),
    );
    let group = format!("fleuve-{name}");

    publish(&flaky.publisher, 0..20, USERS).await;
    let running = flaky.start();
    wait_applied(kafka, inner, name, 20).await;
    let applied = checkpoints(inner, name).await;

    faults.apply_fatal(true);
    publish(&flaky.publisher, 20..45, USERS).await;
    let result = tokio::time::timeout(WAIT, running.task)
        .await
        .expect("the processor stops on a permanent error")
        .unwrap();
    let err = result.expect_err("stopped without an error").to_string();
    assert_eq!(
        err,
        "processor `tally_backend` stopped on a store error: store failure: disk full"
    );
    assert_eq!(faults.injected(), 1, "a permanent error is not retried");
    let reason = running.readiness.ready().unwrap_err();
    assert!(reason.contains("disk full"), "{reason}");
    assert_eq!(checkpoints(inner, name).await, applied);
    assert_eq!(tally_rows(inner).await.len(), 20);
    for (partition, offset) in committed(kafka, &group) {
        assert!(
            offset <= applied.get(&partition).copied().unwrap_or(0),
            "partition {partition}: offset {offset} committed past the checkpoint"
        );
    }

    // Once the store is repaired, a restart applies what failed: nothing was skipped.
    faults.apply_fatal(false);
    let running = flaky.start();
    flaky.finish(running, 45).await;
}

/// Two processors of one name on one embedded store (`shared`), each seeing it through a
/// [`FaultyStore`] of its own to know who applied what.
struct TwoProcessors {
    kafka: Kafka,
    publisher: Publisher,
    dir: tempfile::TempDir,
    shared: Arc<dyn Store>,
    seen_a: Arc<FaultyStore>,
    seen_b: Arc<FaultyStore>,
}

impl TwoProcessors {
    async fn new(name: &str) -> TwoProcessors {
        let (kafka, publisher) = kafka_for(name).await;
        let dir = tempfile::tempdir().unwrap();
        let shared = embedded(&dir.path().join("shared")).await;
        TwoProcessors {
            kafka,
            publisher,
            dir,
            seen_a: FaultyStore::new(Arc::clone(&shared)),
            seen_b: FaultyStore::new(Arc::clone(&shared)),
            shared,
        }
    }
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
    let two = TwoProcessors::new(NAME).await;
    let (kafka, shared, seen_a, seen_b) = (&two.kafka, &two.shared, &two.seen_a, &two.seen_b);

    publish(&two.publisher, 0..200, USERS).await;
    let a = start(kafka, Tally::new(NAME), seen_a.clone());
    wait_for("the first processor applies events", WAIT, async || {
        (applied_per_event(&[seen_a]).len() >= 50).then_some(())
    })
    .await;

    // A stream keeps coming while the group changes twice.
    let stop_publishing = CancellationToken::new();
    let publishing = tokio::spawn(publish_until(
        publisher(kafka),
        200,
        5,
        Duration::from_millis(10),
        stop_publishing.clone(),
    ));
    let b = start(kafka, Tally::new(NAME), seen_b.clone());
    wait_for(
        "the second processor is given partitions",
        WAIT,
        async || (!applied_per_event(&[seen_b]).is_empty()).then_some(()),
    )
    .await;
    let a_applied = applied_per_event(&[seen_a]).len();
    wait_for("the first processor keeps partitions", WAIT, async || {
        (applied_per_event(&[seen_a]).len() > a_applied + 20).then_some(())
    })
    .await;
    a.stop().await.unwrap();
    let b_applied = applied_per_event(&[seen_b]).len();
    wait_for("the second processor takes over", WAIT, async || {
        (applied_per_event(&[seen_b]).len() > b_applied + 50).then_some(())
    })
    .await;
    stop_publishing.cancel();
    let events = publishing.await.unwrap();

    wait_applied(kafka, &**shared, NAME, events).await;
    assert!(is_ready(&b.readiness));
    b.stop().await.unwrap();
    assert_eq!(checkpoints(&**shared, NAME).await, end_offsets(kafka));
    assert_applied_once(&**shared, &[seen_a, seen_b], events).await;

    let clean = clean_run(kafka, NAME, &two.dir.path().join("clean"), events).await;
    assert_same_as(&**shared, &*clean, NAME).await;
}

/// The first processor gathers batches for a second, so the rebalance the second one causes
/// lands in the middle of a batch: the records read before the revocation belong to a
/// partition that may now be another consumer's, which reads its checkpoint and applies
/// them while the first one's store is slow. They must not be applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_before_a_rebalance_are_not_applied_after_it() {
    const NAME: &str = "tally_stale_batch";
    let two = TwoProcessors::new(NAME).await;
    let (kafka, shared, seen_a, seen_b) = (&two.kafka, &two.shared, &two.seen_a, &two.seen_b);
    // A quick rebalance (the mock group waits one second less than this for members).
    let quick = |c: &mut fleuve_processors::runtime::ProcessorConfig| {
        c.kafka = c.kafka.clone().set("session.timeout.ms", "3000");
    };

    publish(&two.publisher, 0..30, USERS).await;
    let a = start_with(kafka, Tally::new(NAME), seen_a.clone(), |c| {
        quick(c);
        c.batch_max_wait = Duration::from_secs(1);
    });
    wait_for("the first processor applies events", WAIT, async || {
        (applied_per_event(&[seen_a]).len() == 30).then_some(())
    })
    .await;

    let stop_publishing = CancellationToken::new();
    let publishing = tokio::spawn(publish_until(
        publisher(kafka),
        30,
        1,
        Duration::from_millis(50),
        stop_publishing.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen_a.faults().hold_apply(HOLD_MAX);
    let b = start_with(kafka, Tally::new(NAME), seen_b.clone(), quick);
    wait_for("the second processor applies events", WAIT, async || {
        (!applied_per_event(&[seen_b]).is_empty()).then_some(())
    })
    .await;
    seen_a.faults().release_apply();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_publishing.cancel();
    let events = publishing.await.unwrap();

    wait_applied(kafka, &**shared, NAME, events).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    assert_applied_once(&**shared, &[seen_a, seen_b], events).await;
    assert_eq!(checkpoints(&**shared, NAME).await, end_offsets(kafka));
}

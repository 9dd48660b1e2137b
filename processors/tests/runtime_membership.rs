//! How a processor gets its partitions, and its stall watchdog, on the MockCluster:
//!
//! * with owned partitions it assigns itself every partition of its topics (no consumer
//!   group) and applies every event exactly once, also across a restart right after the
//!   last one stopped;
//! * a store that blocks makes the projection *stalled*: readiness turns 503 naming it
//!   within the stall bound, `fleuve_processor_stalled_seconds` counts the idle time, and
//!   both come back once the store answers again;
//! * a settings error names the setting and its range.
mod runtime_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleuve_processors::runtime::{Membership, Processor, ProcessorConfig};
use fleuve_projections::testing::FaultyStore;
use fleuve_projections::Store;
use fleuve_service::Readiness;
use runtime_support::{
    checkpoints, end_offsets, publish, start_with, tally_counts, wait_for, Tally,
};

/// Polls `readiness` until `done` holds for its answer; returns how long it took.
async fn readiness_until(
    readiness: &dyn Readiness,
    what: &str,
    limit: Duration,
    done: impl Fn(&Result<(), String>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let r = readiness.ready();
        if done(&r) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "readiness never {what} within {limit:?}; last answer {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gauge(name: &str, processor: &str) -> Option<f64> {
    prometheus::gather()
        .into_iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .find(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "processor" && l.value() == processor)
        })
        .map(|m| m.get_gauge().get_value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_partitions_apply_every_event_once_and_resume_at_once() {
    let name = "owned_tally";
    let (kafka, publisher) = runtime_support::kafka_for(name).await;
    let dir = tempfile::tempdir().unwrap();
    let store = runtime_support::embedded(dir.path()).await;
    publish(&publisher, 0..300, 40).await;

    let owned = |c: &mut ProcessorConfig| c.membership = Membership::Owned;
    let running = start_with(&kafka, Tally::new(name), Arc::clone(&store), owned);
    let ends = end_offsets(&kafka);
    assert!(
        ends.values().filter(|e| **e > 0).count() > 1,
        "the events must be spread over several partitions: {ends:?}"
    );
    wait_for(
        "every partition applied",
        Duration::from_secs(30),
        async || (checkpoints(&*store, name).await == ends).then_some(()),
    )
    .await;
    assert_eq!(running.readiness.ready(), Ok(()));
    running.stop().await.unwrap();

    // A restart right after the stop: no group to join, no session to wait for.
    publish(&publisher, 300..450, 40).await;
    let started = Instant::now();
    let running = start_with(&kafka, Tally::new(name), Arc::clone(&store), owned);
    let ends = end_offsets(&kafka);
    wait_for(
        "the restart applied the rest",
        Duration::from_secs(30),
        async || (checkpoints(&*store, name).await == ends).then_some(()),
    )
    .await;
    eprintln!(
        "owned partitions: the restart caught up {:?} after it started",
        started.elapsed()
    );
    running.stop().await.unwrap();

    let counts = tally_counts(&*store).await;
    assert_eq!(counts.len(), 450, "every event has its row");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_blocks_stalls_readiness_until_it_answers_again() {
    let name = "stalling_tally";
    let (kafka, publisher) = runtime_support::kafka_for(name).await;
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStore::new(runtime_support::embedded(dir.path()).await);
    let store: Arc<dyn Store> = faulty.clone();
    let bound = Duration::from_secs(1);
    let running = start_with(&kafka, Tally::new(name), Arc::clone(&store), |c| {
        c.membership = Membership::Owned;
        c.stall_after = bound;
    });
    publish(&publisher, 0..50, 10).await;
    wait_for(
        "the first events applied",
        Duration::from_secs(30),
        async || (tally_counts(&*store).await.len() == 50).then_some(()),
    )
    .await;
    readiness_until(
        &*running.readiness,
        "ready",
        Duration::from_secs(10),
        Result::is_ok,
    )
    .await;

    // The store stops answering writes: the next events cannot be applied.
    faulty.faults().hold_apply(Duration::from_secs(120));
    publish(&publisher, 50..80, 10).await;
    let took = readiness_until(
        &*running.readiness,
        "turned not ready on the stall",
        Duration::from_secs(15),
        Result::is_err,
    )
    .await;
    let reason = running.readiness.ready().unwrap_err();
    assert!(
        reason.contains(&format!("projection `{name}` is stalled"))
            && reason.contains("records behind"),
        "{reason}"
    );
    // Within the bound plus one look of the watchdog (a quarter of the bound) and the time
    // the events take to arrive.
    assert!(took < bound * 5, "stall noticed after {took:?}");
    let idle = gauge("fleuve_processor_stalled_seconds", name).unwrap();
    assert!(idle >= 1.0, "fleuve_processor_stalled_seconds = {idle}");

    faulty.faults().release_apply();
    readiness_until(
        &*running.readiness,
        "ready again after the store answered",
        Duration::from_secs(15),
        Result::is_ok,
    )
    .await;
    wait_for(
        "the held events applied",
        Duration::from_secs(30),
        async || (tally_counts(&*store).await.len() == 80).then_some(()),
    )
    .await;
    wait_for(
        "the stall gauge back to 0",
        Duration::from_secs(10),
        async || (gauge("fleuve_processor_stalled_seconds", name) == Some(0.0)).then_some(()),
    )
    .await;
    running.stop().await.unwrap();
    let counts = tally_counts(&*store).await;
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[tokio::test]
async fn stall_bounds_out_of_range_are_refused_with_the_range() {
    let (kafka, _publisher) = runtime_support::kafka_for("bounds_tally").await;
    let dir = tempfile::tempdir().unwrap();
    let store = runtime_support::embedded(dir.path()).await;
    for (bound, shown) in [
        (Duration::from_millis(999), "999 ms"),
        (Duration::from_secs(3601), "3601000 ms"),
    ] {
        let mut config =
            ProcessorConfig::new(runtime_support::kafka_config(&kafka), &kafka.registry_url);
        config.stall_after = bound;
        let err = Processor::new(config, Tally::new("bounds_tally"), Arc::clone(&store))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stall_after must be from 1000 to 3600000 ms") && err.contains(shown),
            "{err}"
        );
    }
    let mut config =
        ProcessorConfig::new(runtime_support::kafka_config(&kafka), &kafka.registry_url);
    config.membership = Membership::Group {
        instance_id: Some("  ".into()),
    };
    let err = Processor::new(config, Tally::new("bounds_tally"), store)
        .unwrap_err()
        .to_string();
    assert!(err.contains("group instance id"), "{err}");
}

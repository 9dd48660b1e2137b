//! Snapshots (`fleuve rebuild <projection> --as-of T`) through [`Rebuilds`] on librdkafka's
//! in-process MockCluster, beside a live `user_progress` processor.
//!
//! The MockCluster answers "none" (`-1`) to every offsets-for-times look-up: a build that
//! trusted it would read every partition to its end whatever the instant. The ends come
//! from [`fleuve_kafka::time::offsets_at`], which checks that answer against the records'
//! timestamps, so: a snapshot as of an instant between two waves of writes holds exactly
//! the first wave, and a snapshot as of now equals the live projection row by row.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too: a failure is a test failure"
)]

use fleuve_schemas::clock::now_ms;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleuve_processors::handlers::progress::UserProgress;
use fleuve_processors::rebuild::{BuildRequest, Rebuilds};
use fleuve_processors::runtime::{Processor, ProcessorConfig};
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_projections::versions::{VersionState, Versions};
use fleuve_projections::{progress, Store, TableRow};
use fleuve_schemas::PlaybackProgressed;
use fleuve_testkit::Kafka;
use tokio_util::sync::CancellationToken;

const USERS: usize = 6;
const CONTENTS: usize = 3;
const DEADLINE: Duration = Duration::from_secs(60);

/// Every (user, content) of the wave at `occurred_at + i`, position `base + i`; wave B also
/// writes content `c-new` for every user. Returns the position each key must have.
async fn wave(
    publisher: &Publisher,
    occurred_at: i64,
    base: i64,
    with_new: bool,
) -> BTreeMap<(String, String), i64> {
    let mut contents: Vec<String> = (0..CONTENTS).map(|c| format!("c-{c}")).collect();
    if with_new {
        contents.push("c-new".into());
    }
    let mut events = Vec::new();
    let mut expected = BTreeMap::new();
    for u in 0..USERS {
        for content in &contents {
            let i = i64::try_from(events.len()).unwrap();
            let user = format!("u-{u}");
            expected.insert((user.clone(), content.clone()), base + i);
            events.push(PlaybackProgressed {
                event_id: format!("00000000-0000-4000-8000-{:012}", base + i),
                occurred_at: occurred_at + i,
                producer: "snapshot-test".into(),
                correlation_id: None,
                user_id: user,
                content_id: content.clone(),
                position_ms: base + i,
                duration_ms: 10_000_000,
                device: "web".into(),
            });
        }
    }
    for r in publisher.publish_batch(&events).await.unwrap() {
        r.unwrap();
    }
    expected
}

/// Every row of `table` in `store`.
async fn rows(store: &dyn Store, table: &str) -> Vec<TableRow> {
    let mut out: Vec<TableRow> = Vec::new();
    loop {
        let after = out.last().map(|r| (r.pk.clone(), r.ck.clone()));
        let page = store
            .scan_table(
                table,
                after.as_ref().map(|(p, c)| (p.as_str(), c.as_str())),
                500,
            )
            .await
            .unwrap();
        let done = page.len() < 500;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// The positions of every progress row.
async fn positions(store: &dyn Store) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for row in rows(store, progress::PROGRESS.name()).await {
        let p: progress::Progress = serde_json::from_slice(&row.value).unwrap();
        out.insert((p.user_id, p.content_id), p.position_ms);
    }
    out
}

/// Builds the snapshot `name` as of `as_of_ms` and waits until it is ready; its store.
async fn snapshot(rebuilds: &Arc<Rebuilds>, as_of_ms: i64, name: &str) -> Arc<dyn Store> {
    let info = rebuilds
        .start(BuildRequest {
            projection: progress::PROJECTION.into(),
            as_of_ms: Some(as_of_ms),
            name: Some(name.into()),
        })
        .await
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = rebuilds
            .versions()
            .get(progress::PROJECTION, info.version)
            .await
            .unwrap();
        match now.state {
            VersionState::Ready => break,
            VersionState::Failed => panic!("snapshot {name} failed: {:?}", now.error),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "snapshot {name} not ready: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rebuilds
        .versions()
        .snapshot(progress::PROJECTION, name)
        .await
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_hold_what_was_written_before_their_instant() {
    let kafka = Kafka::start().await;
    kafka.create_topic("dlq.user_progress", 1);
    let dir = tempfile::tempdir().unwrap();
    let store = fleuve_projections::open(&format!("embedded://{}", dir.path().display()))
        .await
        .unwrap();
    let versions = Versions::open(store).await.unwrap();
    let publisher = Publisher::new(PublisherConfig::new(
        kafka.config(),
        &kafka.registry_url,
        "snapshot-test",
    ))
    .unwrap();

    // Wave A two hours ago, wave B one hour ago (event times are the records' timestamps).
    let now = now_ms();
    let wave_a = wave(&publisher, now - 7_200_000, 1_000, false).await;
    let between = now - 5_400_000;
    let mut all = wave_a.clone();
    all.extend(wave(&publisher, now - 3_600_000, 100_000, true).await);

    // The live processor, until it has applied both waves.
    let config = ProcessorConfig::new(kafka.config(), &kafka.registry_url);
    let live_store = versions.writer(progress::PROJECTION).1;
    let processor = Processor::new(
        config.clone(),
        Arc::new(UserProgress),
        Arc::clone(&live_store),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let live = tokio::spawn({
        let token = shutdown.clone();
        async move { processor.run(token).await.unwrap() }
    });
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = positions(&*versions.reader(progress::PROJECTION).1).await;
        if got == all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the live processor did not apply both waves: {} of {} rows right",
            got.iter().filter(|(k, v)| all.get(*k) == Some(*v)).count(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let rebuilds = Rebuilds::new(config, Arc::clone(&versions), shutdown.clone());

    // As of the instant between the waves: exactly wave A.
    let at_between = snapshot(&rebuilds, between, "between").await;
    assert_eq!(positions(&*at_between).await, wave_a);

    // As of now: the live projection, row by row, in both of its tables.
    let at_now = snapshot(&rebuilds, now_ms(), "now").await;
    let live_view = versions.reader(progress::PROJECTION).1;
    for table in progress::TABLES {
        let (snap, live) = (rows(&*at_now, table).await, rows(&*live_view, table).await);
        assert!(!live.is_empty(), "{table}: the live projection is empty");
        assert_eq!(snap.len(), live.len(), "{table}: row counts");
        for (s, l) in snap.iter().zip(&live) {
            assert_eq!(
                (&s.pk, &s.ck, &s.value),
                (&l.pk, &l.ck, &l.value),
                "{table}: the snapshot as of now differs from the live projection"
            );
        }
    }

    shutdown.cancel();
    live.await.unwrap();
}

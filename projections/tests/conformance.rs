//! Store conformance suite: every scenario is written once, against `Arc<dyn Store>`, and
//! run for each backend.
//!
//! * embedded (fjall): always, in a fresh temporary directory per scenario;
//! * ScyllaDB: joins this suite when its backend exists, run only when `SCYLLA_URI` is set
//!   (add a `scylla_backend!` block next to `embedded` below, opening `open(&uri)` on a
//!   fresh keyspace per scenario). No ScyllaDB server can be installed on our build
//!   machines, so today the suite runs against the embedded backend only.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use fleuve_projections::{
    open, Checkpoint, EventVersion, PageRequest, Progress, ProgressBatch, Store, StoreError,
};

const PROJ: &str = "user_progress";
const TOPIC: &str = "user-activity";

fn row(user: &str, content: &str, at: i64, offset: i64, position_ms: i64) -> Progress {
    Progress {
        user_id: user.into(),
        content_id: content.into(),
        position_ms,
        duration_ms: 3_600_000,
        device: "tv".into(),
        event_id: format!("ev-{user}-{content}-{at}-{offset}"),
        version: EventVersion {
            occurred_at_ms: at,
            offset,
        },
    }
}

fn cp(partition: i32, next_offset: i64) -> Checkpoint {
    Checkpoint {
        topic: TOPIC.into(),
        partition,
        next_offset,
    }
}

fn batch(upserts: Vec<Progress>, checkpoints: Vec<Checkpoint>) -> ProgressBatch {
    ProgressBatch {
        projection: PROJ.into(),
        upserts,
        checkpoints,
    }
}

async fn get(store: &Arc<dyn Store>, user: &str, content: &str) -> Option<Progress> {
    store.get_progress(user, content).await.unwrap()
}

async fn next_offset(store: &Arc<dyn Store>, partition: i32) -> Option<i64> {
    store
        .checkpoint(PROJ, TOPIC, partition)
        .await
        .unwrap()
        .map(|c| {
            assert_eq!((c.topic.as_str(), c.partition), (TOPIC, partition));
            c.next_offset
        })
}

/// Reads a user's whole list, `limit` items at a time.
async fn list_all(store: &Arc<dyn Store>, user: &str, limit: usize) -> (Vec<Progress>, usize) {
    let mut items = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_progress(user, PageRequest { limit, cursor })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= limit, "page larger than the limit");
        if page.next_cursor.is_some() {
            assert_eq!(page.items.len(), limit, "short page before the end");
        }
        items.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (items, pages),
        }
        assert!(pages < 10_000, "pagination does not end");
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

async fn scenario_last_write_wins_by_version(store: Arc<dyn Store>) {
    store
        .apply(batch(vec![row("u1", "c1", 2_000, 10, 500)], vec![]))
        .await
        .unwrap();
    // Older event time, higher offset: loses (event time first).
    store
        .apply(batch(vec![row("u1", "c1", 1_000, 99, 100)], vec![]))
        .await
        .unwrap();
    assert_eq!(get(&store, "u1", "c1").await.unwrap().position_ms, 500);
    // Same event time, lower offset: loses.
    store
        .apply(batch(vec![row("u1", "c1", 2_000, 9, 100)], vec![]))
        .await
        .unwrap();
    assert_eq!(get(&store, "u1", "c1").await.unwrap().position_ms, 500);
    // Same event time, higher offset: wins.
    store
        .apply(batch(vec![row("u1", "c1", 2_000, 11, 600)], vec![]))
        .await
        .unwrap();
    let got = get(&store, "u1", "c1").await.unwrap();
    assert_eq!(got, row("u1", "c1", 2_000, 11, 600));
    // Newer event time, even with a lower offset (out of order delivery): wins.
    store
        .apply(batch(vec![row("u1", "c1", 3_000, 1, 700)], vec![]))
        .await
        .unwrap();
    assert_eq!(get(&store, "u1", "c1").await.unwrap().position_ms, 700);
    // The list shows the row once, with the winning version.
    let (all, _) = list_all(&store, "u1", 10).await;
    assert_eq!(all, vec![row("u1", "c1", 3_000, 1, 700)]);
    assert_eq!(get(&store, "u1", "nope").await, None);
    assert_eq!(get(&store, "nobody", "c1").await, None);
}

async fn scenario_reapplying_a_batch_is_idempotent(store: Arc<dyn Store>) {
    let b = batch(
        vec![
            row("u1", "a", 1_000, 1, 10),
            row("u1", "b", 2_000, 2, 20),
            row("u2", "a", 3_000, 3, 30),
        ],
        vec![cp(0, 4)],
    );
    store.apply(b.clone()).await.unwrap();
    let first = (
        list_all(&store, "u1", 10).await.0,
        list_all(&store, "u2", 10).await.0,
    );
    store.apply(b.clone()).await.unwrap();
    store.apply(b).await.unwrap();
    let again = (
        list_all(&store, "u1", 10).await.0,
        list_all(&store, "u2", 10).await.0,
    );
    assert_eq!(first, again);
    assert_eq!(first.0.len(), 2);
    assert_eq!(first.1.len(), 1);
    assert_eq!(next_offset(&store, 0).await, Some(4));
    // An empty batch changes nothing.
    store.apply(batch(vec![], vec![])).await.unwrap();
    assert_eq!(next_offset(&store, 0).await, Some(4));
}

async fn scenario_duplicates_within_one_batch(store: Arc<dyn Store>) {
    store
        .apply(batch(
            vec![
                row("u1", "c1", 1_000, 1, 10),
                row("u1", "c1", 3_000, 3, 30), // the winner
                row("u1", "c1", 2_000, 2, 20),
                row("u1", "c1", 3_000, 3, 99), // same version as the winner: ignored
                row("u1", "c2", 500, 4, 5),
            ],
            vec![cp(0, 3), cp(0, 5), cp(0, 4)],
        ))
        .await
        .unwrap();
    assert_eq!(
        get(&store, "u1", "c1").await,
        Some(row("u1", "c1", 3_000, 3, 30))
    );
    let (all, _) = list_all(&store, "u1", 10).await;
    let ids: Vec<&str> = all.iter().map(|p| p.content_id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2"], "one index entry per row, newest first");
    assert_eq!(next_offset(&store, 0).await, Some(5));
}

async fn scenario_checkpoints_atomic_and_monotonic(store: Arc<dyn Store>) {
    assert_eq!(next_offset(&store, 0).await, None);
    store
        .apply(batch(vec![row("u1", "c1", 1_000, 0, 10)], vec![cp(0, 1)]))
        .await
        .unwrap();
    // Data and checkpoint visible together.
    assert_eq!(next_offset(&store, 0).await, Some(1));
    assert!(get(&store, "u1", "c1").await.is_some());
    store
        .apply(batch(vec![row("u1", "c2", 2_000, 9, 20)], vec![cp(0, 10)]))
        .await
        .unwrap();
    // A redelivered older batch: the checkpoint does not go back.
    store
        .apply(batch(vec![row("u1", "c1", 1_000, 0, 10)], vec![cp(0, 1)]))
        .await
        .unwrap();
    assert_eq!(next_offset(&store, 0).await, Some(10));
    // Checkpoint-only batches move it forward too.
    store.apply(batch(vec![], vec![cp(0, 12)])).await.unwrap();
    assert_eq!(next_offset(&store, 0).await, Some(12));
    // Another projection's checkpoints are separate.
    assert_eq!(
        store
            .checkpoint("other_projection", TOPIC, 0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.checkpoint(PROJ, "other-topic", 0).await.unwrap(),
        None
    );
}

async fn scenario_partition_checkpoints_independent(store: Arc<dyn Store>) {
    store
        .apply(batch(vec![], vec![cp(0, 100), cp(1, 5)]))
        .await
        .unwrap();
    store.apply(batch(vec![], vec![cp(1, 7)])).await.unwrap();
    store.apply(batch(vec![], vec![cp(2, 1)])).await.unwrap();
    assert_eq!(next_offset(&store, 0).await, Some(100));
    assert_eq!(next_offset(&store, 1).await, Some(7));
    assert_eq!(next_offset(&store, 2).await, Some(1));
    assert_eq!(next_offset(&store, 3).await, None);
    assert_eq!(next_offset(&store, -1).await, None);
}

async fn scenario_list_order_and_pagination(store: Arc<dyn Store>) {
    // 250 rows over several batches, event times not in content order, some ties.
    let mut rows = Vec::new();
    for i in 0..250i64 {
        // A permutation of the indexes, halved: pairs of rows share an event time.
        let at = 1_700_000_000_000 + (i * 7919) % 250 / 2 * 10;
        rows.push(row("u1", &format!("c{i:03}"), at, i, i));
    }
    // And three rows with the oldest event time.
    for i in [10usize, 11, 12] {
        rows[i].version.occurred_at_ms = 1_600_000_000_000;
    }
    for chunk in rows.chunks(60) {
        store.apply(batch(chunk.to_vec(), vec![])).await.unwrap();
    }
    // Another user's rows must not show up.
    store
        .apply(batch(
            vec![row("u10", "x", 9_999_999_999_999, 1, 1)],
            vec![],
        ))
        .await
        .unwrap();

    let (items, pages) = list_all(&store, "u1", 7).await;
    assert_eq!(items.len(), 250);
    assert_eq!(pages, 36); // 35 full pages of 7, then 5
    let unique: HashSet<&str> = items.iter().map(|p| p.content_id.as_str()).collect();
    assert_eq!(unique.len(), 250, "duplicates across pages");
    for w in items.windows(2) {
        assert!(
            w[0].version.occurred_at_ms >= w[1].version.occurred_at_ms,
            "not most recent first: {:?} then {:?}",
            w[0].content_id,
            w[1].content_id
        );
    }
    let mut expected = rows.clone();
    expected.sort_by(|a, b| {
        b.version
            .occurred_at_ms
            .cmp(&a.version.occurred_at_ms)
            .then(a.content_id.cmp(&b.content_id))
    });
    assert_eq!(items, expected);
    // The same list in one page, and the first page alone.
    let (one, pages) = list_all(&store, "u1", 1000).await;
    assert_eq!((one, pages), (expected.clone(), 1));
    let first = store
        .list_progress("u1", PageRequest::first(250))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 250);
    assert_eq!(first.next_cursor, None, "no cursor when nothing follows");
    // Unknown user: empty list.
    let empty = store
        .list_progress("nobody", PageRequest::first(7))
        .await
        .unwrap();
    assert!(empty.items.is_empty());
    assert_eq!(empty.next_cursor, None);
}

async fn scenario_updated_row_moves_to_front(store: Arc<dyn Store>) {
    let rows: Vec<Progress> = (0..5)
        .map(|i| row("u1", &format!("c{i}"), 1_000 + i, i, 0))
        .collect();
    store.apply(batch(rows, vec![])).await.unwrap();
    let order = |items: &[Progress]| -> Vec<String> {
        items.iter().map(|p| p.content_id.clone()).collect()
    };
    let (items, _) = list_all(&store, "u1", 2).await;
    assert_eq!(order(&items), ["c4", "c3", "c2", "c1", "c0"]);
    store
        .apply(batch(vec![row("u1", "c1", 5_000, 9, 42)], vec![]))
        .await
        .unwrap();
    let (items, _) = list_all(&store, "u1", 2).await;
    assert_eq!(order(&items), ["c1", "c4", "c3", "c2", "c0"]);
    assert_eq!(items[0].position_ms, 42);
    // A losing (older) write does not move it.
    store
        .apply(batch(vec![row("u1", "c0", 900, 1, 1)], vec![]))
        .await
        .unwrap();
    let (items, _) = list_all(&store, "u1", 2).await;
    assert_eq!(order(&items), ["c1", "c4", "c3", "c2", "c0"]);
}

async fn scenario_invalid_cursor(store: Arc<dyn Store>) {
    let rows: Vec<Progress> = (0..3)
        .map(|i| row("u1", &format!("c{i}"), 1_000 + i, i, 0))
        .collect();
    store.apply(batch(rows, vec![])).await.unwrap();
    let page = store
        .list_progress("u1", PageRequest::first(1))
        .await
        .unwrap();
    let good = page.next_cursor.unwrap();
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        "garbage".to_owned(),
        "%%%".to_owned(),
        String::new(),
        tampered,
        good[..good.len() / 2].to_owned(),
    ] {
        let err = store
            .list_progress(
                "u1",
                PageRequest {
                    limit: 5,
                    cursor: Some(bad.clone()),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidCursor(_)),
            "{bad:?}: {err:?}"
        );
        assert!(!err.is_transient());
    }
    // A cursor of u1's list is not valid for u2's.
    let err = store
        .list_progress(
            "u2",
            PageRequest {
                limit: 5,
                cursor: Some(good.clone()),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor(_)), "{err:?}");
    // The genuine one still works.
    let rest = store
        .list_progress(
            "u1",
            PageRequest {
                limit: 5,
                cursor: Some(good),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
}

async fn scenario_keys_with_separators_do_not_collide(store: Arc<dyn Store>) {
    let pairs = [
        ("a\0b", "c"),
        ("a", "b\0c"),
        ("a", "bc"),
        ("ab", "c"),
        ("a/b", "c"),
        ("a", "b/c"),
        ("日本", "é🎬"),
        ("\u{0}\u{0}\u{0}\u{1}", "x"),
        ("", "\u{0}\u{0}\u{0}\u{1}x"),
    ];
    let rows: Vec<Progress> = pairs
        .iter()
        .enumerate()
        .map(|(i, (u, c))| row(u, c, 1_000, i as i64, i as i64))
        .collect();
    store.apply(batch(rows, vec![])).await.unwrap();
    for (i, (u, c)) in pairs.iter().enumerate() {
        let got = get(&store, u, c).await.unwrap();
        assert_eq!(got.position_ms, i as i64, "{u:?}/{c:?}");
        assert_eq!((got.user_id.as_str(), got.content_id.as_str()), (*u, *c));
    }
    // Each user's list holds exactly its own rows.
    for u in ["a\0b", "a", "ab", "a/b", "日本"] {
        let (items, _) = list_all(&store, u, 3).await;
        let mut got: Vec<&str> = items.iter().map(|p| p.content_id.as_str()).collect();
        got.sort_unstable();
        let mut want: Vec<&str> = pairs
            .iter()
            .filter(|(pu, _)| pu == &u)
            .map(|(_, c)| *c)
            .collect();
        want.sort_unstable();
        assert_eq!(got, want, "list of {u:?}");
    }
    // Checkpoints too.
    store
        .apply(ProgressBatch {
            projection: "p\0".into(),
            upserts: vec![],
            checkpoints: vec![Checkpoint {
                topic: "t".into(),
                partition: 0,
                next_offset: 1,
            }],
        })
        .await
        .unwrap();
    assert!(store.checkpoint("p\0", "t", 0).await.unwrap().is_some());
    assert!(store.checkpoint("p", "\0t", 0).await.unwrap().is_none());
}

async fn scenario_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

/// Runs `scenario` against a fresh embedded store in a temporary directory.
async fn with_embedded<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", dir.path().display());
    let store = open(&url).await.unwrap();
    scenario(store).await;
}

macro_rules! embedded {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_embedded(super::$name).await;
                }
            )*
        }
    };
}

embedded!(
    scenario_last_write_wins_by_version,
    scenario_reapplying_a_batch_is_idempotent,
    scenario_duplicates_within_one_batch,
    scenario_checkpoints_atomic_and_monotonic,
    scenario_partition_checkpoints_independent,
    scenario_list_order_and_pagination,
    scenario_updated_row_moves_to_front,
    scenario_invalid_cursor,
    scenario_keys_with_separators_do_not_collide,
    scenario_ping,
);

/// The same scenarios hold when every batch is fsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_power_loss_durability_runs_the_same_scenarios() {
    use fleuve_projections::embedded::{Durability, EmbeddedStore};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open_with_durability(dir.path().to_str().unwrap(), Durability::PowerLoss)
            .await
            .unwrap(),
    );
    scenario_updated_row_moves_to_front(store.clone()).await;
    scenario_checkpoints_atomic_and_monotonic(store).await;
}

// Persistence needs to reopen the same location, so it takes a way to (re)open the store.
async fn scenario_survives_reopen<F, Fut>(reopen: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = reopen().await;
    let rows: Vec<Progress> = (0..20)
        .map(|i| row("u1", &format!("c{i:02}"), 1_000 + i, i, i * 10))
        .collect();
    store
        .apply(batch(rows.clone(), vec![cp(0, 20), cp(3, 7)]))
        .await
        .unwrap();
    store
        .apply(batch(
            vec![row("u1", "c00", 9_000, 21, 999)],
            vec![cp(0, 22)],
        ))
        .await
        .unwrap();
    let before = list_all(&store, "u1", 6).await.0;
    drop(store);

    let store = reopen().await;
    assert_eq!(list_all(&store, "u1", 6).await.0, before);
    assert_eq!(before.len(), 20);
    assert_eq!(before[0], row("u1", "c00", 9_000, 21, 999));
    assert_eq!(next_offset(&store, 0).await, Some(22));
    assert_eq!(next_offset(&store, 3).await, Some(7));
    // Still last-write-wins after reopening: an old redelivery loses.
    store
        .apply(batch(vec![row("u1", "c00", 1_000, 0, 0)], vec![cp(0, 1)]))
        .await
        .unwrap();
    assert_eq!(get(&store, "u1", "c00").await.unwrap().position_ms, 999);
    assert_eq!(next_offset(&store, 0).await, Some(22));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", dir.path().join("nested/db").display());
    scenario_survives_reopen(|| {
        let url = url.clone();
        async move { open(&url).await.unwrap() }
    })
    .await;
}

#[tokio::test]
async fn open_rejects_bad_urls() {
    for url in ["nope", "foo://x", "embedded://"] {
        match open(url).await {
            Err(StoreError::InvalidUrl { url: u, .. }) => assert_eq!(u, url),
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }
    match open("scylla://h").await {
        Err(StoreError::FeatureNotEnabled { scheme, feature }) => {
            assert_eq!((scheme.as_str(), feature), ("scylla", "scylla"));
        }
        other => panic!("expected FeatureNotEnabled, got {other:?}"),
    }
}

#[tokio::test]
async fn open_relative_path_is_relative_to_cwd() {
    // Tests run with the package directory as CWD; use a unique relative path under target.
    let rel = format!(
        "../target/conformance-rel-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let store = open(&format!("embedded://{rel}")).await.unwrap();
    store.apply(batch(vec![], vec![cp(0, 1)])).await.unwrap();
    drop(store);
    let abs = std::env::current_dir().unwrap().join(&rel);
    assert!(abs.is_dir(), "{} not created", abs.display());
    std::fs::remove_dir_all(abs).unwrap();
}

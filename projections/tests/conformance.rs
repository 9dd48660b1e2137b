//! The store contract, each scenario written once and run against every backend: the
//! embedded store always, ScyllaDB when `SCYLLA_URI` is set (for example
//! `SCYLLA_URI=scylla://127.0.0.1:9042`, run with `-- --include-ignored`; each scenario gets
//! a fresh keyspace). No ScyllaDB server runs in this repository's CI, so there the ScyllaDB
//! tests are reported as ignored (`needs SCYLLA_URI`). The backends and their fresh stores
//! come from `fleuve_projections::testing`, which the processors' golden tests use too.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too: a failure is a test failure"
)]

use std::sync::Arc;

use fleuve_projections::{
    open, paging, Checkpoint, PageRequest, Store, StoreError, TableRow, Write, WriteBatch, Writes,
};

const T: &str = "conformance_rows";
const OTHER: &str = "conformance_other";

fn put(table: &'static str, pk: &str, ck: &str, value: &str, ts: i64) -> Write {
    Write::Put {
        table,
        pk: pk.into(),
        ck: ck.into(),
        value: value.as_bytes().to_vec(),
        ts,
    }
}

fn del(table: &'static str, pk: &str, ck: &str, ts: i64) -> Write {
    Write::Delete {
        table,
        pk: pk.into(),
        ck: ck.into(),
        ts,
    }
}

fn del_partition(table: &'static str, pk: &str, ts: i64) -> Write {
    Write::DeletePartition {
        table,
        pk: pk.into(),
        ts,
    }
}

fn cp(partition: i32, next_offset: i64) -> Checkpoint {
    Checkpoint {
        topic: "user-activity".into(),
        partition,
        next_offset,
    }
}

fn batch(writes: Vec<Write>, checkpoints: Vec<Checkpoint>) -> WriteBatch {
    WriteBatch {
        projection: "conformance".into(),
        writes: writes.into(),
        checkpoints,
    }
}

/// Applies `writes` and `checkpoints` in one batch.
async fn apply(store: &Arc<dyn Store>, writes: Vec<Write>, checkpoints: Vec<Checkpoint>) {
    store.apply(batch(writes, checkpoints)).await.unwrap();
}

async fn value(store: &Arc<dyn Store>, table: &str, pk: &str, ck: &str) -> Option<String> {
    store
        .get(table, pk, ck)
        .await
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

async fn cks(store: &Arc<dyn Store>, table: &str, pk: &str) -> Vec<String> {
    store
        .scan(table, pk, None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.ck)
        .collect()
}

async fn next_offset(store: &Arc<dyn Store>, partition: i32) -> Option<i64> {
    store
        .checkpoint("conformance", "user-activity", partition)
        .await
        .unwrap()
}

async fn whole_table(store: &Arc<dyn Store>, table: &str, page: usize) -> Vec<TableRow> {
    let mut out: Vec<TableRow> = Vec::new();
    loop {
        let after = out.last().map(|r| (r.pk.as_str(), r.ck.as_str()));
        let rows = store.scan_table(table, after, page).await.unwrap();
        assert!(
            rows.len() <= page,
            "scan_table returned more than its limit"
        );
        if rows.is_empty() {
            break;
        }
        out.extend(rows);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

async fn scenario_put_get_delete(store: Arc<dyn Store>) {
    assert_eq!(value(&store, T, "u1", "c1").await, None);
    apply(
        &store,
        vec![put(T, "u1", "c1", "one", 1), put(T, "u1", "c2", "two", 2)],
        vec![],
    )
    .await;
    assert_eq!(value(&store, T, "u1", "c1").await.as_deref(), Some("one"));
    let many = store
        .get_many(
            T,
            &[
                ("u1".into(), "c2".into()),
                ("u9".into(), "c1".into()),
                ("u1".into(), "c1".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        many,
        vec![Some(b"two".to_vec()), None, Some(b"one".to_vec())],
        "get_many answers in the order of the keys"
    );
    assert!(store.get_many(T, &[]).await.unwrap().is_empty());
    apply(
        &store,
        vec![put(T, "u1", "c1", "uno", 3), del(T, "u1", "c2", 3)],
        vec![],
    )
    .await;
    assert_eq!(value(&store, T, "u1", "c1").await.as_deref(), Some("uno"));
    assert_eq!(value(&store, T, "u1", "c2").await, None);
    // Deleting an absent row is fine.
    apply(&store, vec![del(T, "u1", "nope", 4)], vec![]).await;
    // The same key in another table is another row.
    assert_eq!(value(&store, OTHER, "u1", "c1").await, None);
}

async fn scenario_later_writes_in_a_batch_win(store: Arc<dyn Store>) {
    apply(
        &store,
        vec![
            put(T, "u", "a", "1", 10),
            put(T, "u", "a", "2", 10),
            put(T, "u", "b", "1", 10),
            del(T, "u", "b", 10),
            del(T, "u", "c", 10),
            put(T, "u", "c", "back", 10),
        ],
        vec![],
    )
    .await;
    assert_eq!(value(&store, T, "u", "a").await.as_deref(), Some("2"));
    assert_eq!(value(&store, T, "u", "b").await, None);
    assert_eq!(value(&store, T, "u", "c").await.as_deref(), Some("back"));
}

async fn scenario_partition_delete(store: Arc<dyn Store>) {
    apply(
        &store,
        vec![
            put(T, "u1", "a", "x", 1),
            put(T, "u1", "b", "x", 1),
            put(T, "u10", "a", "keep", 1),
            put(T, "u", "a", "keep", 1),
            put(OTHER, "u1", "a", "keep", 1),
        ],
        vec![],
    )
    .await;
    apply(
        &store,
        vec![
            put(T, "u1", "c", "written before the delete", 5),
            del_partition(T, "u1", 5),
            put(T, "u1", "d", "written after the delete", 6),
        ],
        vec![],
    )
    .await;
    assert_eq!(cks(&store, T, "u1").await, ["d"]);
    assert_eq!(
        value(&store, T, "u10", "a").await.as_deref(),
        Some("keep"),
        "a partition whose key extends the deleted one is untouched"
    );
    assert_eq!(value(&store, T, "u", "a").await.as_deref(), Some("keep"));
    assert_eq!(
        value(&store, OTHER, "u1", "a").await.as_deref(),
        Some("keep")
    );
}

/// A write in a later batch, with a higher `ts`, shows after a delete of its row or of its
/// partition, also when it writes a row the delete removed. (On ScyllaDB the tombstones,
/// written at `2·ts` for a partition and `2·ts + 1` for a row, are older than the write.)
async fn scenario_writes_after_deletes_in_later_batches(store: Arc<dyn Store>) {
    apply(
        &store,
        vec![
            put(T, "u", "a", "1", 1),
            put(T, "u", "b", "1", 1),
            put(T, "v", "a", "keep", 1),
        ],
        vec![],
    )
    .await;
    apply(&store, vec![del_partition(T, "u", 5)], vec![]).await;
    assert!(cks(&store, T, "u").await.is_empty());
    // The next event writes a row the partition delete removed, and a new one.
    apply(
        &store,
        vec![put(T, "u", "a", "2", 6), put(T, "u", "c", "2", 6)],
        vec![],
    )
    .await;
    assert_eq!(cks(&store, T, "u").await, ["a", "c"]);
    assert_eq!(value(&store, T, "u", "a").await.as_deref(), Some("2"));
    // A row delete, then the row again.
    apply(&store, vec![del(T, "u", "a", 7)], vec![]).await;
    assert_eq!(value(&store, T, "u", "a").await, None);
    apply(&store, vec![put(T, "u", "a", "3", 8)], vec![]).await;
    assert_eq!(value(&store, T, "u", "a").await.as_deref(), Some("3"));
    // One event deletes the partition and writes a row it held back, over rows of earlier
    // batches; delivered twice.
    let erase_and_write = batch(
        vec![del_partition(T, "u", 9), put(T, "u", "c", "4", 9)],
        vec![],
    );
    store.apply(erase_and_write.clone()).await.unwrap();
    store.apply(erase_and_write).await.unwrap();
    assert_eq!(cks(&store, T, "u").await, ["c"]);
    assert_eq!(value(&store, T, "u", "c").await.as_deref(), Some("4"));
    apply(&store, vec![put(T, "u", "a", "5", 10)], vec![]).await;
    assert_eq!(cks(&store, T, "u").await, ["a", "c"]);
    assert_eq!(value(&store, T, "u", "a").await.as_deref(), Some("5"));
    assert_eq!(value(&store, T, "v", "a").await.as_deref(), Some("keep"));
}

/// A row deleted then written in one batch, or written then deleted, ends as its last write
/// says: whether the store held it before the batch or not, and whether both writes come
/// from one event (one `ts`) or from two. Delivering the batch again changes nothing.
async fn scenario_delete_and_put_of_one_row_in_one_batch(store: Arc<dyn Store>) {
    apply(
        &store,
        ["a", "b", "c", "d"]
            .iter()
            .map(|ck| put(T, "u", ck, "old", 1))
            .collect(),
        vec![],
    )
    .await;
    let b = batch(
        vec![
            // Rows the store holds; one event.
            del(T, "u", "a", 5),
            put(T, "u", "a", "new", 5),
            put(T, "u", "b", "new", 5),
            del(T, "u", "b", 5),
            // Rows the store holds; two events.
            del(T, "u", "c", 5),
            put(T, "u", "c", "new", 6),
            put(T, "u", "d", "new", 5),
            del(T, "u", "d", 6),
            // Rows the store never held; one event.
            del(T, "u", "e", 6),
            put(T, "u", "e", "new", 6),
            put(T, "u", "f", "new", 6),
            del(T, "u", "f", 6),
        ],
        vec![cp(0, 7)],
    );
    let expected = [
        ("a", Some("new")),
        ("b", None),
        ("c", Some("new")),
        ("d", None),
        ("e", Some("new")),
        ("f", None),
    ];
    for delivery in ["first delivery", "redelivery"] {
        store.apply(b.clone()).await.unwrap();
        for (ck, want) in expected {
            assert_eq!(
                value(&store, T, "u", ck).await.as_deref(),
                want,
                "row {ck} after the {delivery}"
            );
        }
        assert_eq!(cks(&store, T, "u").await, ["a", "c", "e"], "{delivery}");
        assert_eq!(next_offset(&store, 0).await, Some(7), "{delivery}");
    }
    // Rows deleted last come back with a later event.
    apply(
        &store,
        vec![put(T, "u", "b", "again", 7), put(T, "u", "d", "again", 7)],
        vec![cp(0, 8)],
    )
    .await;
    assert_eq!(cks(&store, T, "u").await, ["a", "b", "c", "d", "e"]);
    assert_eq!(value(&store, T, "u", "d").await.as_deref(), Some("again"));
}

async fn scenario_scan_orders_by_clustering_bytes(store: Arc<dyn Store>) {
    let keys = ["b", "a", "ab", "B", "é", "a\u{0}", "0", "z", "~"];
    apply(
        &store,
        keys.iter().map(|k| put(T, "p", k, k, 1)).collect(),
        vec![],
    )
    .await;
    let mut expected: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(cks(&store, T, "p").await, expected);
    let page = store.scan(T, "p", Some("a"), 3).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.ck.as_str()).collect::<Vec<_>>(),
        expected[expected.iter().position(|k| k == "a").unwrap() + 1..][..3]
    );
    assert_eq!(page[0].value, expected[3].as_bytes());
    assert!(store.scan(T, "p", None, 0).await.unwrap().is_empty());
    assert!(store
        .scan(T, "p", Some(expected.last().unwrap()), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.scan(T, "nobody", None, 10).await.unwrap().is_empty());
}

async fn scenario_paging_with_cursors(store: Arc<dyn Store>) {
    apply(
        &store,
        (0..45)
            .map(|i| put(T, "u1", &format!("c{i:02}"), &i.to_string(), 1))
            .chain([put(T, "u2", "c00", "other user", 1)])
            .collect(),
        vec![],
    )
    .await;
    let mut seen = Vec::new();
    let mut request = PageRequest::first(10);
    let mut pages = 0;
    loop {
        let page = paging::page(&*store, T, "u1", &request, |r| Ok(r.ck))
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items);
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(
        seen,
        (0..45).map(|i| format!("c{i:02}")).collect::<Vec<_>>()
    );
    // A page that ends exactly at the end has no next cursor.
    let all = paging::page(&*store, T, "u1", &PageRequest::first(45), |r| Ok(r.ck))
        .await
        .unwrap();
    assert_eq!((all.items.len(), all.next_cursor), (45, None));
    // A cursor of one list is refused by another.
    let first = paging::page(&*store, T, "u1", &PageRequest::first(1), |r| Ok(r.ck))
        .await
        .unwrap();
    let foreign = PageRequest {
        limit: 10,
        cursor: first.next_cursor,
    };
    assert!(matches!(
        paging::page(&*store, T, "u2", &foreign, |r| Ok(r.ck)).await,
        Err(StoreError::InvalidCursor(_))
    ));
    for bad in ["", "garbage", "AAAAAAAAAAAAAAAAAAAAAAAA"] {
        let request = PageRequest {
            limit: 10,
            cursor: Some(bad.into()),
        };
        assert!(
            matches!(
                paging::page(&*store, T, "u1", &request, |r| Ok(r.ck)).await,
                Err(StoreError::InvalidCursor(_))
            ),
            "{bad:?} accepted"
        );
    }
}

async fn scenario_scan_table(store: Arc<dyn Store>) {
    let mut expected = Vec::new();
    let mut writes = Vec::new();
    for p in 0..7 {
        for c in 0..5 {
            let (pk, ck) = (format!("p{p}"), format!("c{c}"));
            writes.push(put(T, &pk, &ck, "v", 1));
            expected.push((pk, ck));
        }
    }
    writes.push(put(OTHER, "p0", "c0", "not this table", 1));
    apply(&store, writes, vec![]).await;
    for page in [1, 4, 100] {
        let rows = whole_table(&store, T, page).await;
        let mut got: Vec<(String, String)> = rows.into_iter().map(|r| (r.pk, r.ck)).collect();
        let n = got.len();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), n, "a row came twice (page {page})");
        assert_eq!(got, expected, "page size {page}");
    }
    assert_eq!(whole_table(&store, "no_such_table", 10).await, vec![]);
}

async fn scenario_checkpoints_monotonic_and_separate(store: Arc<dyn Store>) {
    assert_eq!(next_offset(&store, 0).await, None);
    apply(&store, vec![], vec![cp(0, 10), cp(1, 3)]).await;
    apply(&store, vec![put(T, "u", "a", "x", 1)], vec![cp(0, 7)]).await;
    assert_eq!(
        next_offset(&store, 0).await,
        Some(10),
        "a checkpoint went back"
    );
    assert_eq!(
        value(&store, T, "u", "a").await.as_deref(),
        Some("x"),
        "the rows of a batch with an old checkpoint are still applied"
    );
    apply(&store, vec![], vec![cp(0, 12), cp(0, 11)]).await;
    assert_eq!(next_offset(&store, 0).await, Some(12));
    assert_eq!(next_offset(&store, 1).await, Some(3));
    assert_eq!(next_offset(&store, 2).await, None);
    // Another projection's checkpoints are its own.
    store
        .apply(WriteBatch {
            projection: "conformance_other".into(),
            writes: Writes::default(),
            checkpoints: vec![cp(0, 99)],
        })
        .await
        .unwrap();
    assert_eq!(next_offset(&store, 0).await, Some(12));
    let mut all = store.checkpoints("conformance").await.unwrap();
    all.sort_by_key(|c| c.partition);
    assert_eq!(all, vec![cp(0, 12), cp(1, 3)]);
    assert_eq!(
        store.checkpoints("conformance_other").await.unwrap(),
        vec![cp(0, 99)]
    );
    assert!(store.checkpoints("nobody").await.unwrap().is_empty());
}

/// Checkpoints are kept per (projection, topic, partition). A lower checkpoint than the
/// stored one, in a later batch or beside a higher one in the same batch, leaves the stored
/// one as it is, and so does an equal one.
async fn scenario_stale_checkpoints_per_topic(store: Arc<dyn Store>) {
    let orders = |partition: i32, next_offset: i64| Checkpoint {
        topic: "orders".into(),
        partition,
        next_offset,
    };
    apply(&store, vec![], vec![cp(0, 10), orders(0, 3)]).await;
    assert_eq!(next_offset(&store, 0).await, Some(10));
    assert_eq!(
        store.checkpoint("conformance", "orders", 0).await.unwrap(),
        Some(3)
    );
    // A stale checkpoint of one topic beside a newer one of the other, same partition.
    apply(&store, vec![], vec![cp(0, 4), orders(0, 5)]).await;
    assert_eq!(
        next_offset(&store, 0).await,
        Some(10),
        "a checkpoint went back"
    );
    assert_eq!(
        store.checkpoint("conformance", "orders", 0).await.unwrap(),
        Some(5)
    );
    apply(&store, vec![], vec![cp(0, 10)]).await;
    assert_eq!(next_offset(&store, 0).await, Some(10));
    apply(
        &store,
        vec![],
        vec![orders(0, 2), orders(0, 9), orders(0, 6)],
    )
    .await;
    assert_eq!(
        store.checkpoint("conformance", "orders", 0).await.unwrap(),
        Some(9)
    );
    let mut all = store.checkpoints("conformance").await.unwrap();
    all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    assert_eq!(all, vec![orders(0, 9), cp(0, 10)]);
}

async fn scenario_reapplying_a_batch_is_idempotent(store: Arc<dyn Store>) {
    let b = batch(
        vec![
            put(T, "u", "a", "1", 4),
            del_partition(T, "v", 4),
            put(T, "v", "b", "2", 5),
            del(T, "u", "zz", 5),
        ],
        vec![cp(0, 6)],
    );
    store.apply(b.clone()).await.unwrap();
    let first = (
        whole_table(&store, T, 100).await,
        next_offset(&store, 0).await,
    );
    store.apply(b).await.unwrap();
    let second = (
        whole_table(&store, T, 100).await,
        next_offset(&store, 0).await,
    );
    assert_eq!(first, second);
}

async fn scenario_keys_with_separators_do_not_collide(store: Arc<dyn Store>) {
    let pairs = [
        ("a\u{0}b", "c"),
        ("a", "b\u{0}c"),
        ("a/b", "c"),
        ("a", "b/c"),
        ("ü", "日本"),
        ("", "empty pk"),
        ("x", ""),
    ];
    apply(
        &store,
        pairs
            .iter()
            .map(|(pk, ck)| put(T, pk, ck, &format!("{pk}|{ck}"), 1))
            .collect(),
        vec![],
    )
    .await;
    for (pk, ck) in pairs {
        assert_eq!(
            value(&store, T, pk, ck).await,
            Some(format!("{pk}|{ck}")),
            "{pk:?}/{ck:?}"
        );
    }
    assert_eq!(cks(&store, T, "a").await, ["b\u{0}c", "b/c"]);
}

async fn scenario_large_batch(store: Arc<dyn Store>) {
    let writes: Vec<Write> = (0..5_000)
        .map(|i| put(T, &format!("u{}", i % 50), &format!("c{i:05}"), "v", 1))
        .collect();
    apply(&store, writes, vec![cp(0, 5_000)]).await;
    assert_eq!(whole_table(&store, T, 1_000).await.len(), 5_000);
    assert_eq!(next_offset(&store, 0).await, Some(5_000));
}

async fn scenario_state_and_derived_writes(store: Arc<dyn Store>) {
    store
        .apply(WriteBatch {
            projection: "conformance".into(),
            writes: Writes {
                derived: vec![
                    put(OTHER, "u", "index", "derived", 3),
                    del(OTHER, "u", "old", 3),
                ],
                state: vec![put(T, "u", "state", "v1", 3), put(T, "u", "state", "v2", 3)],
            },
            checkpoints: vec![cp(0, 4)],
        })
        .await
        .unwrap();
    assert_eq!(
        value(&store, OTHER, "u", "index").await.as_deref(),
        Some("derived")
    );
    assert_eq!(value(&store, T, "u", "state").await.as_deref(), Some("v2"));
    assert_eq!(next_offset(&store, 0).await, Some(4));
}

async fn scenario_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

// Tests `embedded::<scenario>` and `scylla::<scenario>`, each in a fresh store
// (`fleuve_projections::testing`).
fleuve_projections::backend_tests!(
    scenario_put_get_delete,
    scenario_later_writes_in_a_batch_win,
    scenario_partition_delete,
    scenario_writes_after_deletes_in_later_batches,
    scenario_delete_and_put_of_one_row_in_one_batch,
    scenario_scan_orders_by_clustering_bytes,
    scenario_paging_with_cursors,
    scenario_scan_table,
    scenario_checkpoints_monotonic_and_separate,
    scenario_stale_checkpoints_per_topic,
    scenario_reapplying_a_batch_is_idempotent,
    scenario_keys_with_separators_do_not_collide,
    scenario_large_batch,
    scenario_state_and_derived_writes,
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
    scenario_partition_delete(store.clone()).await;
    scenario_checkpoints_monotonic_and_separate(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", dir.path().join("nested/db").display());
    let store = open(&url).await.unwrap();
    apply(
        &store,
        (0..20)
            .map(|i| put(T, "u1", &format!("c{i:02}"), "v", i))
            .chain([del_partition(OTHER, "x", 1)])
            .collect(),
        vec![cp(0, 20), cp(3, 7)],
    )
    .await;
    let before = whole_table(&store, T, 6).await;
    drop(store);
    let store = open(&url).await.unwrap();
    assert_eq!(whole_table(&store, T, 6).await, before);
    assert_eq!(before.len(), 20);
    assert_eq!(next_offset(&store, 0).await, Some(20));
    assert_eq!(next_offset(&store, 3).await, Some(7));
}

#[tokio::test]
async fn embedded_refuses_an_older_layout() {
    // A directory written by the first release: a `progress` keyspace and no layout marker.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("progress", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        ks.insert(b"k", b"v").unwrap();
    }
    match open(&format!("embedded://{}", dir.path().display())).await {
        Err(e @ StoreError::Incompatible(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("older release"), "{msg}");
            assert!(msg.contains("delete the directory"), "{msg}");
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
}

#[tokio::test]
async fn open_rejects_bad_urls() {
    for url in ["nope", "foo://x", "embedded://"] {
        match open(url).await {
            Err(StoreError::InvalidUrl { url: u, .. }) => assert_eq!(u, url),
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
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
    apply(&store, vec![], vec![cp(0, 1)]).await;
    drop(store);
    let abs = std::env::current_dir().unwrap().join(&rel);
    assert!(abs.is_dir(), "{} not created", abs.display());
    std::fs::remove_dir_all(abs).unwrap();
}

//! Versions of a projection in one embedded store: namespaces do not leak into each other,
//! the routing survives a restart, reads follow the reader version (or a snapshot), and
//! dropping is refused for versions in use and removes every row otherwise.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too: a failure is a test failure"
)]

use std::sync::Arc;

use fleuve_projections::embedded::EmbeddedStore;
use fleuve_projections::versions::{
    Namespaced, Routing, VersionError, VersionInfo, VersionKind, VersionState, Versions,
};
use fleuve_projections::{progress, Checkpoint, Store, Write, WriteBatch};

const P: &str = progress::PROJECTION;

fn put(table: &'static str, pk: &str, ck: &str, value: &str) -> Write {
    Write::Put {
        table,
        pk: pk.into(),
        ck: ck.into(),
        value: value.as_bytes().to_vec(),
        ts: 1,
    }
}

async fn write(store: &dyn Store, value: &str, next_offset: i64) {
    store
        .apply(WriteBatch {
            projection: P.into(),
            writes: vec![
                put(progress::PROGRESS.name(), "u-1", "c-1", value),
                put(progress::CONTINUE_WATCHING.name(), "u-1", "c-1", value),
            ]
            .into(),
            checkpoints: vec![Checkpoint {
                topic: "user-activity".into(),
                partition: 0,
                next_offset,
            }],
        })
        .await
        .unwrap();
}

async fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(dir.to_str().unwrap()).await.unwrap())
}

fn snapshot_info(version: u32, name: &str) -> VersionInfo {
    VersionInfo {
        projection: P.into(),
        version,
        kind: VersionKind::Snapshot,
        state: VersionState::Ready,
        name: Some(name.into()),
        as_of_ms: Some(1_700_000_000_000),
        created_at_ms: 1,
        built_at_ms: Some(2),
        live_at_ms: None,
        records: 1,
        error: None,
    }
}

#[tokio::test]
async fn versions_are_isolated_and_reads_follow_the_routing() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(dir.path()).await;
    let versions = Versions::open(Arc::clone(&base)).await.unwrap();
    let v1 = Namespaced::view(Arc::clone(&base), P, 1);
    let v2 = Namespaced::view(Arc::clone(&base), P, 2);
    write(&*v1, "one", 10).await;
    write(&*v2, "two", 7).await;

    // Each version sees its own rows and checkpoints.
    let get = |s: Arc<dyn Store>| async move {
        s.get(progress::PROGRESS.name(), "u-1", "c-1")
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(get(Arc::clone(&v1)).await, b"one");
    assert_eq!(get(Arc::clone(&v2)).await, b"two");
    assert_eq!(
        v1.checkpoint(P, "user-activity", 0).await.unwrap(),
        Some(10)
    );
    assert_eq!(v2.checkpoint(P, "user-activity", 0).await.unwrap(), Some(7));
    assert_eq!(
        v2.scan_table(progress::PROGRESS.name(), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Reads go to the reader version; writes to the writer version.
    let readers = versions.readers();
    assert_eq!(get(Arc::clone(&readers)).await, b"one");
    versions
        .set_routing(
            P,
            Routing {
                reader: 1,
                writer: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(get(Arc::clone(&readers)).await, b"one");
    assert_eq!(versions.writer(P).0, 2);
    versions
        .set_routing(
            P,
            Routing {
                reader: 2,
                writer: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(get(Arc::clone(&readers)).await, b"two");
    assert_eq!(
        readers.checkpoint(P, "user-activity", 0).await.unwrap(),
        Some(7)
    );
    assert!(
        readers.apply(WriteBatch::default()).await.is_err(),
        "readers are read-only"
    );

    // Another process (here: a second handle on the same store) sees the routing.
    let again = Versions::open(Arc::clone(&base)).await.unwrap();
    assert_eq!(
        again.routing()[P],
        Routing {
            reader: 2,
            writer: 2
        }
    );
}

#[tokio::test]
async fn snapshots_are_read_by_name_beside_the_live_readers() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(dir.path()).await;
    let versions = Versions::open(Arc::clone(&base)).await.unwrap();
    write(&*base, "live", 10).await;
    write(&*Namespaced::view(Arc::clone(&base), P, 2), "old", 4).await;
    versions.put(&snapshot_info(2, "nov1")).await.unwrap();

    let (info, snap) = versions.snapshot(P, "nov1").await.unwrap();
    assert_eq!(info.version, 2);
    let readers = versions.readers();
    let read = || async {
        readers
            .get(progress::PROGRESS.name(), "u-1", "c-1")
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(read().await, b"live");
    let from_snapshot = snap
        .get(progress::PROGRESS.name(), "u-1", "c-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_snapshot, b"old");
    assert_eq!(
        read().await,
        b"live",
        "reading a snapshot leaves the live readers as they are"
    );

    match versions.snapshot(P, "dec1").await {
        Err(VersionError::UnknownSnapshot { available, .. }) => assert!(available.contains("nov1")),
        other => panic!("expected an unknown snapshot, got {other:?}"),
    }
    match versions
        .snapshot(fleuve_projections::catalog::PROJECTION, "nov1")
        .await
    {
        Err(VersionError::UnknownSnapshot { .. }) => {}
        other => panic!("a snapshot belongs to its projection, got {other:?}"),
    }
    // Listing shows version 1 (never recorded) and the snapshot; numbers are not reused.
    let list = versions.list(P).await.unwrap();
    assert_eq!(list.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(list[0].state, VersionState::Live);
    assert_eq!(versions.next_version(P).await.unwrap(), 3);
}

#[tokio::test]
async fn versions_in_use_cannot_be_dropped_and_dropping_removes_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(dir.path()).await;
    let versions = Versions::open(Arc::clone(&base)).await.unwrap();
    let v2 = Namespaced::view(Arc::clone(&base), P, 2);
    write(&*base, "one", 10).await;
    write(&*v2, "two", 10).await;
    let mut info = snapshot_info(2, "x");
    info.kind = VersionKind::Rebuild;
    info.state = VersionState::Live;
    info.name = None;
    versions.put(&info).await.unwrap();
    versions
        .set_routing(
            P,
            Routing {
                reader: 2,
                writer: 2,
            },
        )
        .await
        .unwrap();

    match versions.drop_version(P, 2).await {
        Err(VersionError::Conflict(m)) => assert!(m.contains("in use"), "{m}"),
        other => panic!("dropping the live version must be refused, got {other:?}"),
    }
    assert!(matches!(
        versions.drop_version(P, 9).await,
        Err(VersionError::UnknownVersion { .. })
    ));
    assert!(matches!(
        versions.drop_version("playlists", 1).await,
        Err(VersionError::UnknownProjection { .. })
    ));

    let dropped = versions.drop_version(P, 1).await.unwrap();
    assert_eq!(dropped.state, VersionState::Dropped);
    for table in progress::TABLES {
        assert!(
            base.scan_table(table, None, 10).await.unwrap().is_empty(),
            "{table}"
        );
        assert_eq!(
            v2.scan_table(table, None, 10).await.unwrap().len(),
            1,
            "{table}"
        );
    }
    assert_eq!(
        versions.get(P, 1).await.unwrap().state,
        VersionState::Dropped
    );
    // The live version still answers.
    let readers = versions.readers();
    assert_eq!(
        readers
            .get(progress::PROGRESS.name(), "u-1", "c-1")
            .await
            .unwrap()
            .unwrap(),
        b"two"
    );
}

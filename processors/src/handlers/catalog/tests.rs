use fleuve_projections::embedded::EmbeddedStore;
use fleuve_projections::{Write, WriteBatch};

use super::*;

fn incoming<E: Event>(offset: i64, e: &E) -> Incoming {
    crate::handlers::testing::incoming(fleuve_kafka::topics::CATALOG, offset, e)
}

const DAY: i64 = 86_400_000;

fn envelope_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn upsert(n: u32, content_id: &str, from: i64, until: Option<i64>) -> ContentUpserted {
    ContentUpserted {
        event_id: envelope_id(n),
        occurred_at: 10 * DAY,
        producer: "cms".into(),
        correlation_id: None,
        content_id: content_id.into(),
        kind: fleuve_schemas::ContentKind::Episode,
        program_id: Some("prog".into()),
        season_number: Some(1),
        episode_number: Some(2),
        title: "Episode 2".into(),
        description: None,
        tags: vec!["drama".into()],
        duration_ms: Some(60_000),
        available_from: from,
        available_until: until,
        rights: vec![fleuve_schemas::DistributionRight {
            partner: "isp-1".into(),
            territories: vec!["FR".into()],
        }],
    }
}

fn unpublish(n: u32, content_id: &str) -> ContentUnpublished {
    ContentUnpublished {
        event_id: envelope_id(n),
        occurred_at: 11 * DAY,
        producer: "cms".into(),
        correlation_id: None,
        content_id: content_id.into(),
        reason: Some("rights expired".into()),
    }
}

fn delete(n: u32, content_id: &str) -> ContentDeleted {
    ContentDeleted {
        event_id: envelope_id(n),
        occurred_at: 12 * DAY,
        producer: "cms".into(),
        correlation_id: None,
        content_id: content_id.into(),
    }
}

fn applied(step: Step) -> ContentState {
    match step {
        Step::Apply(state) => *state,
        other => panic!("expected a new state, got {other:?}"),
    }
}

fn rejected(step: Step) -> String {
    match step {
        Step::Reject(reason) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn an_upsert_carries_every_field() {
    let state = applied(step(None, 3, Item::Upserted(upsert(1, "e", DAY, None))));
    let content = state.content.clone().unwrap();
    assert_eq!(state.status, ContentStatus::Published);
    assert_eq!((state.last_offset, state.changed_at_ms), (3, 10 * DAY));
    assert_eq!(content.kind, ContentKind::Episode);
    assert_eq!(content.program_id.as_deref(), Some("prog"));
    assert_eq!(
        (content.season_number, content.episode_number),
        (Some(1), Some(2))
    );
    assert_eq!(content.available_from_ms, DAY);
    assert_eq!(content.updated_at_ms, 10 * DAY);
    assert_eq!(content.rights[0].partner, "isp-1");
    assert_eq!(content.rights[0].territories, vec!["FR"]);
}

#[test]
fn replays_and_retries_are_skipped() {
    let state = applied(step(None, 5, Item::Upserted(upsert(1, "e", DAY, None))));
    for offset in [4, 5] {
        let replay = step(Some(&state), offset, Item::Deleted(delete(2, "e")));
        assert!(matches!(replay, Step::Skip(_)), "{replay:?}");
    }
    let retry = step(Some(&state), 9, Item::Upserted(upsert(1, "e", DAY, None)));
    assert!(matches!(retry, Step::Skip(_)), "{retry:?}");
}

#[test]
fn unknown_contents_cannot_be_unpublished_or_deleted() {
    let reason = rejected(step(None, 0, Item::Unpublished(unpublish(1, "x"))));
    assert_eq!(
        reason,
        "content `x` is unknown: it was never upserted, so there is nothing to unpublish"
    );
    let reason = rejected(step(None, 0, Item::Deleted(delete(1, "x"))));
    assert_eq!(
        reason,
        "content `x` is unknown: it was never upserted, so there is nothing to delete"
    );
}

#[test]
fn unpublish_delete_and_upsert_again() {
    let published = applied(step(None, 1, Item::Upserted(upsert(1, "e", DAY, None))));
    let hidden = applied(step(
        Some(&published),
        2,
        Item::Unpublished(unpublish(2, "e")),
    ));
    assert_eq!(hidden.status, ContentStatus::Unpublished);
    assert_eq!(hidden.content, published.content);
    assert_eq!(hidden.unpublished_reason.as_deref(), Some("rights expired"));
    assert_eq!(hidden.publishable_at(20 * DAY), None);

    let back = applied(step(
        Some(&hidden),
        3,
        Item::Upserted(upsert(3, "e", DAY, None)),
    ));
    assert_eq!(back.status, ContentStatus::Published);
    assert_eq!(back.unpublished_reason, None);
    assert!(back.publishable_at(20 * DAY).is_some());

    let gone = applied(step(Some(&hidden), 4, Item::Deleted(delete(4, "e"))));
    assert_eq!(
        (gone.status, gone.content.as_ref()),
        (ContentStatus::Deleted, None)
    );
    assert_eq!(
        rejected(step(Some(&gone), 5, Item::Unpublished(unpublish(5, "e")))),
        "content `e` was deleted (offset 4): it must be upserted again before it can be unpublished"
    );
    assert_eq!(
        rejected(step(Some(&gone), 5, Item::Deleted(delete(5, "e")))),
        "content `e` is already deleted (offset 4)"
    );
    let again = applied(step(
        Some(&gone),
        6,
        Item::Upserted(upsert(6, "e", DAY, None)),
    ));
    assert_eq!(again.status, ContentStatus::Published);
}

async fn apply(store: &EmbeddedStore, writes: impl Into<Writes>) {
    store
        .apply(WriteBatch {
            projection: NAME.to_owned(),
            writes: writes.into(),
            checkpoints: Vec::new(),
        })
        .await
        .unwrap();
}

/// `(table, kind, ts)` of each write, derived ones first, to check the phases.
fn summary(writes: &Writes) -> Vec<(&'static str, &'static str, i64)> {
    writes
        .derived
        .iter()
        .chain(&writes.state)
        .map(|w| match w {
            Write::Put { table, ts, .. } => (*table, "put", *ts),
            Write::Delete { table, ts, .. } => (*table, "delete", *ts),
            Write::DeletePartition { table, ts, .. } => (*table, "delete partition", *ts),
        })
        .collect()
}

#[tokio::test]
async fn the_timer_opens_then_closes_a_window_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let (from, until) = (20 * DAY, 30 * DAY);
    let event = upsert(1, "e", from, Some(until));
    let fold = Catalog::default()
        .fold(&store, &[incoming(7, &event)])
        .await
        .unwrap();
    assert!(fold.rejected.is_empty());
    // Not available at its event time: no live row, both edges scheduled.
    assert_eq!(
        summary(&fold.writes),
        vec![
            (SCHEDULE.name(), "put", stamp(7, 0)),
            (SCHEDULE.name(), "put", stamp(7, 0)),
            (CONTENT.name(), "put", stamp(7, 0)),
        ]
    );
    apply(&store, fold.writes).await;

    assert!(Catalog::default()
        .on_timer(&store, from - 1)
        .await
        .unwrap()
        .is_empty());

    let opened = Catalog::default().on_timer(&store, from).await.unwrap();
    assert_eq!(
        summary(&opened),
        vec![
            (LIVE.name(), "put", stamp(7, 1)),
            (EPISODES.name(), "put", stamp(7, 1)),
            (SCHEDULE.name(), "delete", stamp(7, 2)),
        ]
    );
    apply(&store, opened).await;
    assert!(Catalog::default()
        .on_timer(&store, from)
        .await
        .unwrap()
        .is_empty());
    assert!(store.get(LIVE.name(), "e", ROW).await.unwrap().is_some());

    let closed = Catalog::default()
        .on_timer(&store, until + DAY)
        .await
        .unwrap();
    assert_eq!(
        summary(&closed),
        vec![
            (LIVE.name(), "delete", stamp(7, 2)),
            (EPISODES.name(), "delete", stamp(7, 2)),
            (SCHEDULE.name(), "delete", stamp(7, 2)),
        ]
    );
    apply(&store, closed).await;
    assert!(Catalog::default()
        .on_timer(&store, until + DAY)
        .await
        .unwrap()
        .is_empty());
    assert!(store.get(LIVE.name(), "e", ROW).await.unwrap().is_none());
    assert!(store
        .scan(SCHEDULE.name(), SCHEDULE_PARTITION, None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn edges_passed_together_are_applied_once_per_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let fold = Catalog::default()
        .fold(
            &store,
            &[incoming(0, &upsert(1, "e", 20 * DAY, Some(21 * DAY)))],
        )
        .await
        .unwrap();
    apply(&store, fold.writes).await;
    // Both edges are due: the content is evaluated once, as closed.
    let writes = Catalog::default().on_timer(&store, 22 * DAY).await.unwrap();
    assert_eq!(
        summary(&writes),
        vec![
            (LIVE.name(), "delete", stamp(0, 2)),
            (EPISODES.name(), "delete", stamp(0, 2)),
            (SCHEDULE.name(), "delete", stamp(0, 2)),
            (SCHEDULE.name(), "delete", stamp(0, 2)),
        ]
    );
}

#[tokio::test]
async fn a_stale_edge_before_the_window_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let fold = Catalog::default()
        .fold(&store, &[incoming(3, &upsert(1, "e", 20 * DAY, None))])
        .await
        .unwrap();
    apply(&store, fold.writes).await;
    let stale = ScheduledEdge {
        content_id: "e".into(),
        at_ms: 15 * DAY,
        offset: 1,
    };
    apply(
        &store,
        vec![Write::Put {
            table: SCHEDULE.name(),
            pk: SCHEDULE_PARTITION.into(),
            ck: schedule_ck(stale.at_ms, "e"),
            value: serde_json::to_vec(&stale).unwrap(),
            ts: stamp(1, 0),
        }],
    )
    .await;
    let writes = Catalog::default().on_timer(&store, 16 * DAY).await.unwrap();
    assert_eq!(
        summary(&writes),
        vec![(SCHEDULE.name(), "delete", stamp(3, 2))]
    );
}

#[tokio::test]
async fn a_timer_run_applies_a_bounded_number_of_edges() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let events = [
        upsert(1, "a", 20 * DAY, None),
        upsert(2, "b", 21 * DAY, None),
    ];
    let batch: Vec<Incoming> = (0..).zip(&events).map(|(o, e)| incoming(o, e)).collect();
    let fold = Catalog::default().fold(&store, &batch).await.unwrap();
    apply(&store, fold.writes).await;
    let one_at_a_time = Catalog {
        max_edges_per_run: 1,
    };
    for (content_id, offset) in [("a", 0), ("b", 1)] {
        let writes = one_at_a_time.on_timer(&store, 22 * DAY).await.unwrap();
        assert_eq!(
            summary(&writes),
            vec![
                (LIVE.name(), "put", stamp(offset, 1)),
                (EPISODES.name(), "put", stamp(offset, 1)),
                (SCHEDULE.name(), "delete", stamp(offset, 2)),
            ]
        );
        assert!(matches!(&writes.derived[0], Write::Put { pk, .. } if pk == content_id));
        apply(&store, writes).await;
    }
    assert!(one_at_a_time
        .on_timer(&store, 22 * DAY)
        .await
        .unwrap()
        .is_empty());
}

use std::collections::BTreeMap;

use fleuve_projections::embedded::EmbeddedStore;
use fleuve_projections::{Checkpoint, WriteBatch};
use fleuve_schemas::DistributionRight as Right;

use super::*;
use crate::handlers::testing::dump;

const DAY: i64 = 86_400_000;

fn id(n: i64) -> String {
    crate::handlers::testing::uuid(n)
}

fn right(partner: &str, territories: &[&str]) -> Right {
    Right {
        partner: partner.into(),
        territories: territories.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn upsert(
    n: i64,
    content_id: &str,
    window: (i64, Option<i64>),
    rights: Vec<Right>,
) -> ContentUpserted {
    ContentUpserted {
        event_id: id(n),
        occurred_at: 10 * DAY,
        producer: "cms".into(),
        correlation_id: None,
        content_id: content_id.into(),
        kind: fleuve_schemas::ContentKind::Clip,
        program_id: None,
        season_number: None,
        episode_number: None,
        title: format!("title {n}"),
        description: None,
        tags: vec![],
        duration_ms: Some(1_000),
        available_from: window.0,
        available_until: window.1,
        rights,
    }
}

fn unpublish(n: i64, content_id: &str) -> ContentUnpublished {
    ContentUnpublished {
        event_id: id(n),
        occurred_at: 11 * DAY,
        producer: "cms".into(),
        correlation_id: None,
        content_id: content_id.into(),
        reason: None,
    }
}

fn delete(n: i64, content_id: &str) -> ContentDeleted {
    ContentDeleted {
        event_id: id(n),
        occurred_at: 12 * DAY,
        producer: "cms".into(),
        correlation_id: None,
        content_id: content_id.into(),
    }
}

fn partners(list: &[(&str, &[&str])]) -> Arc<Partners> {
    Arc::new(
        Partners::new(
            list.iter()
                .map(|(id, t)| Partner::new(id, t.iter().copied()))
                .collect(),
        )
        .unwrap(),
    )
}

/// One record of a partner's topic: key and value (`None`: tombstone).
type Produced = (String, Option<ExportItem>);

/// A store, the handler, and what a relay produced to each partner's topic.
struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    handler: Exports,
    next_offset: i64,
    topics: BTreeMap<String, Vec<Produced>>,
}

impl Harness {
    async fn new(partners: Arc<Partners>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            EmbeddedStore::open(dir.path().to_str().unwrap())
                .await
                .unwrap(),
        );
        Self {
            _dir: dir,
            store,
            handler: Exports::new(partners),
            next_offset: 0,
            topics: BTreeMap::new(),
        }
    }

    /// The same store with other partners (a restart with another configuration).
    fn reconfigure(&mut self, partners: Arc<Partners>) {
        self.handler = Exports::new(partners);
    }

    /// Folds events at the next offsets as one batch and applies it; the number of writes.
    async fn events(&mut self, events: Vec<Incoming>) -> usize {
        let mut batch = Vec::new();
        for mut e in events {
            e.offset = self.next_offset;
            self.next_offset += 1;
            batch.push(e);
        }
        self.fold_apply(&batch).await
    }

    async fn fold_apply(&mut self, batch: &[Incoming]) -> usize {
        let fold = self.handler.fold(&*self.store, batch).await.unwrap();
        assert!(fold.rejected.is_empty(), "{:?}", fold.rejected);
        let n = fold.writes.len();
        self.store
            .apply(WriteBatch {
                projection: NAME.into(),
                writes: fold.writes,
                checkpoints: vec![Checkpoint {
                    topic: "catalog".into(),
                    partition: 0,
                    next_offset: self.next_offset,
                }],
            })
            .await
            .unwrap();
        self.relay().await;
        n
    }

    /// Runs the timer at `now_ms`; the number of writes.
    async fn tick(&mut self, now_ms: i64) -> usize {
        let writes = self.handler.on_timer(&*self.store, now_ms).await.unwrap();
        let n = writes.len();
        self.store
            .apply(WriteBatch {
                projection: NAME.into(),
                writes,
                checkpoints: vec![],
            })
            .await
            .unwrap();
        self.relay().await;
        n
    }

    /// Moves every outbox row to the simulated topics, as the relay does.
    async fn relay(&mut self) {
        for row in self
            .store
            .scan_table(OUTBOX.name(), None, 100_000)
            .await
            .unwrap()
        {
            let r: OutboxRecord = serde_json::from_slice(&row.value).unwrap();
            assert_eq!(row.ck, asc_i64(r.seq));
            self.topics
                .entry(row.pk.clone())
                .or_default()
                .push((r.content_id.clone(), r.item.clone()));
            self.store
                .apply(WriteBatch {
                    projection: NAME.into(),
                    writes: vec![fleuve_projections::Write::Delete {
                        table: OUTBOX.name(),
                        pk: row.pk,
                        ck: row.ck,
                        ts: r.seq + 1,
                    }]
                    .into(),
                    checkpoints: vec![],
                })
                .await
                .unwrap();
        }
    }

    /// What a compacted topic's reader ends with: the last value per key, tombstones
    /// removed; content id → territories.
    fn view(&self, partner: &str) -> BTreeMap<String, Vec<String>> {
        let mut view = BTreeMap::new();
        for (key, value) in self.topics.get(partner).into_iter().flatten() {
            match value {
                Some(item) => {
                    view.insert(key.clone(), item.territories.clone());
                }
                None => {
                    view.remove(key);
                }
            }
        }
        view
    }

    fn produced(&self, partner: &str) -> usize {
        self.topics.get(partner).map_or(0, Vec::len)
    }
}

fn ev<E: Event>(e: &E) -> Incoming {
    crate::handlers::testing::incoming(fleuve_kafka::topics::CATALOG, 0, e)
}

fn set(items: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    items
        .iter()
        .map(|(k, t)| ((*k).to_owned(), t.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

const OPEN: (i64, Option<i64>) = (0, None);

#[tokio::test]
async fn only_rights_in_configured_territories_are_exported() {
    let mut h = Harness::new(partners(&[("isp-a", &["FR", "BE"]), ("isp-b", &["DE"])])).await;
    h.events(vec![
        ev(&upsert(
            1,
            "c1",
            OPEN,
            vec![right("isp-a", &["IT", "FR", "BE"])],
        )),
        ev(&upsert(2, "c2", OPEN, vec![right("isp-b", &["FR"])])),
        ev(&upsert(
            3,
            "c3",
            OPEN,
            vec![right("isp-a", &["IT"]), right("isp-b", &["DE", "AT"])],
        )),
        ev(&upsert(4, "c4", OPEN, vec![])),
        ev(&upsert(5, "c5", OPEN, vec![right("other", &["FR"])])),
    ])
    .await;
    assert_eq!(h.view("isp-a"), set(&[("c1", &["BE", "FR"])]));
    assert_eq!(h.view("isp-b"), set(&[("c3", &["DE"])]));
    assert_eq!((h.produced("isp-a"), h.produced("isp-b")), (1, 1));
    let item = h.topics["isp-a"][0].1.clone().unwrap();
    assert_eq!(item.title, "title 1");
    assert_eq!(item.kind, ContentKind::Clip);
}

#[tokio::test]
async fn withdrawn_rights_unpublish_and_delete_leave_tombstones() {
    let mut h = Harness::new(partners(&[("isp-a", &["FR", "BE"])])).await;
    let r = || vec![right("isp-a", &["FR"])];
    h.events(vec![
        ev(&upsert(1, "c1", OPEN, r())),
        ev(&upsert(2, "c2", OPEN, r())),
        ev(&upsert(3, "c3", OPEN, r())),
        ev(&upsert(4, "c4", OPEN, r())),
    ])
    .await;
    assert_eq!(h.view("isp-a").len(), 4);
    h.events(vec![
        // Rights withdrawn by a re-upsert.
        ev(&upsert(5, "c1", OPEN, vec![right("isp-b", &["FR"])])),
        // Territories changed: a new value.
        ev(&upsert(6, "c2", OPEN, vec![right("isp-a", &["BE", "FR"])])),
        ev(&unpublish(7, "c3")),
        ev(&delete(8, "c4")),
        // Unknown content: skipped (the catalog processor dead-letters it).
        ev(&unpublish(9, "nope")),
    ])
    .await;
    assert_eq!(h.view("isp-a"), set(&[("c2", &["BE", "FR"])]));
    let tail: Vec<&Produced> = h.topics["isp-a"][4..].iter().collect();
    assert_eq!(tail.len(), 4);
    assert_eq!((tail[0].0.as_str(), tail[0].1.is_none()), ("c1", true));
    assert_eq!((tail[2].0.as_str(), tail[2].1.is_none()), ("c3", true));
    assert_eq!((tail[3].0.as_str(), tail[3].1.is_none()), ("c4", true));
    // Upserted again after its deletion: back.
    h.events(vec![ev(&upsert(10, "c4", OPEN, r()))]).await;
    assert_eq!(
        h.view("isp-a"),
        set(&[("c2", &["BE", "FR"]), ("c4", &["FR"])])
    );
}

#[tokio::test]
async fn windows_open_and_close_on_the_timer() {
    let mut h = Harness::new(partners(&[("isp-a", &["FR"])])).await;
    let r = || vec![right("isp-a", &["FR"])];
    // Occurred at day 10: c1 opens at day 11 and closes at day 12; c2 closed at day 10.5.
    h.events(vec![
        ev(&upsert(1, "c1", (11 * DAY, Some(12 * DAY)), r())),
        ev(&upsert(2, "c2", (DAY, Some(10 * DAY + DAY / 2)), r())),
    ])
    .await;
    assert_eq!(h.view("isp-a"), set(&[("c2", &["FR"])]));
    h.tick(10 * DAY + DAY / 2 - 1).await;
    assert_eq!(h.view("isp-a"), set(&[("c2", &["FR"])]));
    h.tick(10 * DAY + DAY / 2).await;
    assert_eq!(h.view("isp-a"), set(&[]));
    h.tick(11 * DAY).await;
    assert_eq!(h.view("isp-a"), set(&[("c1", &["FR"])]));
    h.tick(12 * DAY).await;
    assert_eq!(h.view("isp-a"), set(&[]));
    let produced = h.produced("isp-a");
    // Nothing left to do: the same instant again writes nothing.
    assert_eq!(h.tick(12 * DAY).await, 0);
    assert_eq!(h.tick(13 * DAY).await, 0);
    assert_eq!(h.produced("isp-a"), produced);
    assert!(dump(&*h.store, &[SCHEDULE.name(), OUTBOX.name()])
        .await
        .is_empty());
}

#[tokio::test]
async fn a_lagging_consumer_closes_windows_already_past_on_the_next_tick() {
    let mut h = Harness::new(partners(&[("isp-a", &["FR"])])).await;
    // Evaluated at its event time (open), closed since: the first tick removes it.
    h.events(vec![ev(&upsert(
        1,
        "c1",
        (DAY, Some(10 * DAY + 5)),
        vec![right("isp-a", &["FR"])],
    ))])
    .await;
    assert_eq!(h.view("isp-a").len(), 1);
    h.tick(20 * DAY).await;
    assert!(h.view("isp-a").is_empty());
}

#[tokio::test]
async fn replays_and_retries_change_nothing() {
    let mut h = Harness::new(partners(&[("isp-a", &["FR"])])).await;
    let batch: Vec<Incoming> = [
        ev(&upsert(1, "c1", OPEN, vec![right("isp-a", &["FR"])])),
        ev(&upsert(
            2,
            "c2",
            (0, Some(20 * DAY)),
            vec![right("isp-a", &["FR"])],
        )),
        ev(&unpublish(3, "c1")),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, mut e)| {
        e.offset = i as i64;
        e
    })
    .collect();
    h.next_offset = 3;
    assert!(h.fold_apply(&batch).await > 0);
    let tables = dump(&*h.store, TABLES).await;
    let produced = h.produced("isp-a");
    // The same batch again (a redelivery after a crash before the offsets were committed).
    assert_eq!(h.fold_apply(&batch).await, 0);
    // A producer's retry: the same event id at a new offset.
    let mut retry = batch[2].clone();
    retry.offset = 3;
    h.next_offset = 4;
    assert_eq!(h.fold_apply(&[retry]).await, 0);
    assert_eq!(dump(&*h.store, TABLES).await, tables);
    assert_eq!(h.produced("isp-a"), produced);
    // Once the partners are seeded, a timer run with nothing due writes nothing (not even
    // the sequence).
    assert_eq!(
        h.tick(11 * DAY).await,
        2,
        "the marker of isp-a and the sequence"
    );
    assert_eq!(h.tick(11 * DAY).await, 0);
}

#[tokio::test]
async fn a_new_partner_gets_the_full_current_set_then_changes() {
    let mut h = Harness::new(partners(&[("isp-a", &["FR"])])).await;
    assert_eq!(h.tick(DAY).await, 2, "the marker of isp-a and the sequence");
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(ev(&upsert(
            i,
            &format!("c{i}"),
            OPEN,
            vec![right("isp-a", &["FR"]), right("isp-b", &["BE"])],
        )));
    }
    events.push(ev(&upsert(
        9,
        "only-a",
        OPEN,
        vec![right("isp-a", &["FR"])],
    )));
    events.push(ev(&unpublish(10, "c4")));
    h.events(events).await;
    assert_eq!(h.view("isp-a").len(), 5);
    assert_eq!(h.produced("isp-b"), 0);
    let a_before = h.produced("isp-a");

    // Restart with isp-b configured, seeding two contents per timer run.
    h.reconfigure(partners(&[("isp-a", &["FR"]), ("isp-b", &["BE", "NL"])]));
    h.handler.seed_page = 2;
    for _ in 0..4 {
        h.tick(11 * DAY).await;
    }
    let expected = set(&[
        ("c0", &["BE"]),
        ("c1", &["BE"]),
        ("c2", &["BE"]),
        ("c3", &["BE"]),
    ]);
    assert_eq!(h.view("isp-b"), expected);
    assert_eq!(h.produced("isp-b"), 4, "only what it may publish, once");
    assert_eq!(h.produced("isp-a"), a_before, "isp-a was seeded already");
    let marker: PartnerMarker = serde_json::from_slice(
        &h.store
            .get(PARTNERS.name(), PARTNERS_PARTITION, "isp-b")
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(marker.done);
    // Then changes.
    h.events(vec![ev(&delete(11, "c0"))]).await;
    assert_eq!(h.view("isp-b").len(), 3);
    assert!(!h.view("isp-a").contains_key("c0"));

    // Territories reconfigured: a diff against what its topic holds.
    h.reconfigure(partners(&[("isp-a", &["FR"]), ("isp-b", &["NL"])]));
    h.tick(11 * DAY).await;
    assert!(h.view("isp-b").is_empty());
    // Removed then added back: seeded again as a diff.
    h.reconfigure(partners(&[("isp-a", &["FR"])]));
    h.tick(11 * DAY).await;
    assert!(h
        .store
        .get(PARTNERS.name(), PARTNERS_PARTITION, "isp-b")
        .await
        .unwrap()
        .is_none());
    h.events(vec![ev(&upsert(
        12,
        "c9",
        OPEN,
        vec![right("isp-b", &["NL"])],
    ))])
    .await;
    let before = h.produced("isp-b");
    h.reconfigure(partners(&[("isp-a", &["FR"]), ("isp-b", &["NL"])]));
    h.tick(11 * DAY).await;
    assert_eq!(h.view("isp-b"), set(&[("c9", &["NL"])]));
    assert_eq!(h.produced("isp-b"), before + 1);
}

#[test]
#[expect(deprecated, reason = "the one-call datum helpers are enough here")]
fn export_records_encode_with_the_export_schema() {
    let schema = &fleuve_schemas::export::catalog_item().schema;
    let mut item = ExportItem {
        content_id: "c1".into(),
        kind: ContentKind::Episode,
        program_id: Some("p".into()),
        season_number: Some(1),
        episode_number: Some(2),
        title: "t".into(),
        description: None,
        tags: vec!["a".into()],
        duration_ms: Some(5),
        available_from_ms: 1,
        available_until_ms: Some(2),
        territories: vec!["BE".into(), "FR".into()],
        updated_at_ms: 3,
    };
    for _ in 0..2 {
        let value = item.to_avro();
        assert!(value.validate(schema), "{value:?}");
        let bytes = apache_avro::to_avro_datum(schema, value.clone()).unwrap();
        let back = apache_avro::from_avro_datum(schema, &mut bytes.as_slice(), None).unwrap();
        assert_eq!(back, value);
        item.program_id = None;
        item.season_number = None;
        item.episode_number = None;
        item.description = Some("d".into());
        item.duration_ms = None;
        item.available_until_ms = None;
        item.kind = ContentKind::Programme;
    }
}

#[test]
fn partners_files_are_checked() {
    let ok = Partners::parse(
        "[[partner]]\nid = \"isp-a\"\nterritories = [\"FR\", \"BE\"]\n\n[[partner]]\nid = \"salto\"\nterritories = [\"FR\"]\n",
    )
    .unwrap();
    assert_eq!(ok.partners.len(), 2);
    assert_eq!(ok.partners[0].topic(), "export.isp-a.catalog");
    assert!(Partners::parse("").unwrap().is_empty());
    for (text, needle) in [
        ("[[partner]]\nid = \"a\"\nterritories = [\"FR\"]\n[[partner]]\nid = \"a\"\nterritories = [\"BE\"]", "twice"),
        ("[[partner]]\nid = \"a b\"\nterritories = [\"FR\"]", "letters"),
        ("[[partner]]\nid = \"a\"\nterritories = []", "no territory"),
        ("[[partner]]\nid = \"a\"\nterritories = [\"XX\"]", "XX"),
        ("[[partner]]\nid = \"a\"\nterritories = [\"FR\"]\ncolour = 1", "colour"),
    ] {
        let e = Partners::parse(text).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
}

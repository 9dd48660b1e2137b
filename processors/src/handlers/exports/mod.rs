//! `exports`: each configured partner's compacted topic `export.<partner>.catalog`, holding
//! the contents the partner may publish now (see `docs/exports.md`).
//!
//! The processor folds `catalog` into its own state (it never reads the `catalog`
//! processor's tables: the two consume at their own pace) and, when what a partner may
//! publish changes, writes a record to a transactional outbox ([`OUTBOX`]) in the same
//! [`Store::apply`] as its state and checkpoints. The [`Relay`] (same process) produces the
//! outbox to Kafka and deletes what the broker acknowledged.
//!
//! | table | partition | rows | value |
//! | --- | --- | --- | --- |
//! | [`CONTENT`] | content id | one ([`ROW`]) | [`ContentState`] (the catalog read model's type): status, fields, rights, window, last offset and event id |
//! | [`SENT`] | partner id | content id | [`ExportItem`] last put in the partner's topic (absent: not in it, or tombstoned) |
//! | [`SCHEDULE`] | [`SCHEDULE_PARTITION`] | [`schedule_ck`]: window edges still to apply | [`ScheduledEdge`] |
//! | [`PARTNERS`] | [`PARTNERS_PARTITION`] | partner id | [`PartnerMarker`]: the territories the partner was seeded with, and how far |
//! | [`OUTBOX`] | partner id | `asc_i64(seq)`: in write order | [`OutboxRecord`]: content id and record, or a tombstone |
//! | [`META`] | [`META_PARTITION`] | [`SEQ_ROW`] | next outbox sequence number |
//!
//! **What a partner may publish.** A content is exported to partner `p` at an instant when
//! it is publishable then (upserted, not unpublished nor deleted, window open: the catalog
//! read model's [`ContentState::publishable_at`]) and one of its distribution rights names
//! `p` with at least one territory among those configured for `p`. The record carries the
//! intersection of the two territory lists. Anything else is a tombstone, if the partner's
//! topic holds the content.
//!
//! **Time.** As in the catalog read model: an event is evaluated at its own `occurred_at`,
//! the window edges after it are scheduled, and the timer (every second) evaluates due
//! edges at the current time. The timer also seeds partners: a configured partner with no
//! marker, or whose territories changed, gets the whole current set (a diff against
//! [`SENT`], [`SEED_PAGE`] contents per run) before its marker says it is seeded.
//!
//! **Idempotence.** The [`CONTENT`] row keeps the offset and event id it applied last: a
//! replay or a producer's retry changes nothing. Records are only written when they differ
//! from [`SENT`], so evaluating again (a timer run repeated after a crash) writes nothing.
//! Every write's timestamp is the processor's own sequence ([`META`]), which only grows:
//! the processor is meant to run as one instance (see `docs/exports.md`).

mod config;
mod relay;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use async_trait::async_trait;
use fleuve_projections::catalog::{
    schedule_ck, ContentKind, ContentState, PublishedContent, ScheduledEdge,
};
use fleuve_projections::paging::asc_i64;
use fleuve_projections::{Staging, Store, StoreError, Table, Writes};
use fleuve_schemas::{ContentDeleted, ContentUnpublished, ContentUpserted, Event};

use super::catalog::{step, Item, Step};
use serde::{Deserialize, Serialize};

pub use config::{Partner, Partners, PartnersError};
pub use relay::{Relay, RelayConfig, RelayError};

use super::decode_each;
use crate::runtime::{Fold, Handler, Incoming};

/// Name of the processor (consumer group `fleuve-exports`, checkpoints, `dlq.exports`).
pub const NAME: &str = "exports";
/// Every content's state, as the exports processor folded it.
pub const CONTENT: Table<ContentState> =
    Table::new("exports_content", "content id", "one row, ROW");
/// What each partner's topic holds, as last produced.
pub const SENT: Table<ExportItem> = Table::new("exports_sent", "partner id", "one per content id");
/// Window edges still to apply.
pub const SCHEDULE: Table<ScheduledEdge> = Table::new(
    "exports_schedule",
    "SCHEDULE_PARTITION, the only one",
    "window edges still to apply, earliest first (schedule_ck)",
);
/// Per partner: seeded with which territories.
pub const PARTNERS: Table<PartnerMarker> = Table::new(
    "exports_partners",
    "PARTNERS_PARTITION, the only one",
    "one per partner id",
);
/// Records to produce, per partner, in order.
pub const OUTBOX: Table<OutboxRecord> = Table::new(
    "export_outbox",
    "partner id",
    "in write order (asc_i64 of the sequence number)",
);
/// The outbox sequence.
pub const META: Table<i64> = Table::new(
    "exports_meta",
    "META_PARTITION, the only one",
    "one row, SEQ_ROW: the next outbox sequence number",
);
/// Every table of the exports processor.
pub const TABLES: &[&str] = &[
    CONTENT.name(),
    SENT.name(),
    SCHEDULE.name(),
    PARTNERS.name(),
    OUTBOX.name(),
    META.name(),
];
/// Clustering key of the single row of a [`CONTENT`] partition.
pub const ROW: &str = "";
/// The partition of [`SCHEDULE`].
pub const SCHEDULE_PARTITION: &str = "edges";
/// The partition of [`PARTNERS`].
pub const PARTNERS_PARTITION: &str = "partners";
/// The partition of [`META`].
pub const META_PARTITION: &str = "outbox";
/// The row of [`META`] holding the next sequence number.
pub const SEQ_ROW: &str = "seq";

/// How often the timer applies due edges and seeds partners.
const TIMER_EVERY: Duration = Duration::from_secs(1);
/// Most window edges one timer run applies.
const MAX_EDGES_PER_RUN: usize = 1000;
/// Most contents one timer run evaluates to seed a partner.
pub const SEED_PAGE: usize = 1000;

/// A content as a partner receives it: the value of its export topic (Avro
/// `fleuve.export.CatalogItem`), kept as JSON in [`SENT`] and [`OUTBOX`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportItem {
    pub content_id: String,
    pub kind: ContentKind,
    pub program_id: Option<String>,
    pub season_number: Option<i32>,
    pub episode_number: Option<i32>,
    pub title: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub duration_ms: Option<i64>,
    pub available_from_ms: i64,
    pub available_until_ms: Option<i64>,
    /// Where the partner may publish it: its right's territories that are configured for
    /// the partner, sorted.
    pub territories: Vec<String>,
    pub updated_at_ms: i64,
}

impl ExportItem {
    fn of(c: &PublishedContent, territories: Vec<String>) -> Self {
        Self {
            content_id: c.content_id.clone(),
            kind: c.kind,
            program_id: c.program_id.clone(),
            season_number: c.season_number,
            episode_number: c.episode_number,
            title: c.title.clone(),
            description: c.description.clone(),
            tags: c.tags.clone(),
            duration_ms: c.duration_ms,
            available_from_ms: c.available_from_ms,
            available_until_ms: c.available_until_ms,
            territories,
            updated_at_ms: c.updated_at_ms,
        }
    }

    /// The record as an Avro value of `fleuve.export.CatalogItem`.
    pub fn to_avro(&self) -> Value {
        fn opt(v: Option<Value>) -> Value {
            match v {
                Some(v) => Value::Union(1, Box::new(v)),
                None => Value::Union(0, Box::new(Value::Null)),
            }
        }
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        let (index, symbol) = match self.kind {
            ContentKind::Programme => (0, "PROGRAMME"),
            ContentKind::Season => (1, "SEASON"),
            ContentKind::Episode => (2, "EPISODE"),
            ContentKind::Clip => (3, "CLIP"),
        };
        Value::Record(vec![
            ("content_id".into(), Value::String(self.content_id.clone())),
            ("kind".into(), Value::Enum(index, symbol.into())),
            (
                "program_id".into(),
                opt(self.program_id.clone().map(Value::String)),
            ),
            (
                "season_number".into(),
                opt(self.season_number.map(Value::Int)),
            ),
            (
                "episode_number".into(),
                opt(self.episode_number.map(Value::Int)),
            ),
            ("title".into(), Value::String(self.title.clone())),
            (
                "description".into(),
                opt(self.description.clone().map(Value::String)),
            ),
            ("tags".into(), strings(&self.tags)),
            ("duration_ms".into(), opt(self.duration_ms.map(Value::Long))),
            (
                "available_from".into(),
                Value::TimestampMillis(self.available_from_ms),
            ),
            (
                "available_until".into(),
                opt(self.available_until_ms.map(Value::TimestampMillis)),
            ),
            ("territories".into(), strings(&self.territories)),
            (
                "updated_at".into(),
                Value::TimestampMillis(self.updated_at_ms),
            ),
        ])
    }
}

/// A record to produce to a partner's topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The Kafka key.
    pub content_id: String,
    /// The value; `None` for a tombstone.
    pub item: Option<ExportItem>,
    /// Sequence number (also the row's clustering key and write timestamp).
    pub seq: i64,
}

/// How far a partner has been seeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerMarker {
    /// The territories it was (or is being) seeded with.
    pub territories: BTreeSet<String>,
    /// Last content id evaluated while seeding.
    pub after: Option<String>,
    /// Whether every content was evaluated.
    pub done: bool,
}

/// What `partner` may publish of a content whose state is `state`, at `now_ms`: `None`
/// when nothing (the rule is in the module docs).
pub fn export_for(state: &ContentState, partner: &Partner, now_ms: i64) -> Option<ExportItem> {
    let content = state.publishable_at(now_ms)?;
    let territories: BTreeSet<&String> = content
        .rights
        .iter()
        .filter(|r| r.partner == partner.id)
        .flat_map(|r| &r.territories)
        .filter(|t| partner.territories.contains(*t))
        .collect();
    if territories.is_empty() {
        return None;
    }
    Some(ExportItem::of(
        content,
        territories.into_iter().cloned().collect(),
    ))
}

/// The `exports` processor.
#[derive(Debug)]
pub struct Exports {
    partners: Arc<Partners>,
    /// Every configured partner was found seeded (by this process): the timer stops looking.
    seeded: AtomicBool,
    max_edges_per_run: usize,
    seed_page: usize,
}

impl Exports {
    pub fn new(partners: Arc<Partners>) -> Self {
        Self {
            partners,
            seeded: AtomicBool::new(false),
            max_edges_per_run: MAX_EDGES_PER_RUN,
            seed_page: SEED_PAGE,
        }
    }

    /// The partners it exports to.
    pub fn partners(&self) -> &Arc<Partners> {
        &self.partners
    }
}

impl Default for Exports {
    /// No partner: the processor keeps its state, so partners configured later are seeded
    /// from it.
    fn default() -> Self {
        Self::new(Arc::new(Partners::default()))
    }
}

/// A batch's or a timer run's writes, with the outbox sequence.
struct Out<'s> {
    st: Staging<'s>,
    seq: i64,
}

impl<'s> Out<'s> {
    async fn new(store: &'s dyn Store) -> Result<Self, StoreError> {
        let mut st = Staging::new(store);
        let seq = META.fetch(&mut st, META_PARTITION, SEQ_ROW).await?;
        Ok(Self {
            st,
            seq: seq.unwrap_or(1),
        })
    }

    /// The next write timestamp (and outbox sequence number).
    fn next(&mut self) -> i64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    /// Makes `partner`'s topic hold `item` for `content_id` (a tombstone for `None`): an
    /// outbox record when that differs from what it holds.
    async fn export(
        &mut self,
        partner: &str,
        content_id: &str,
        item: Option<ExportItem>,
    ) -> Result<(), StoreError> {
        let sent = SENT.fetch(&mut self.st, partner, content_id).await?;
        if sent == item {
            return Ok(());
        }
        let seq = self.next();
        let record = OutboxRecord {
            content_id: content_id.to_owned(),
            item,
            seq,
        };
        OUTBOX.put(&mut self.st, partner, &asc_i64(seq), &record, seq)?;
        match &record.item {
            Some(item) => SENT.put(&mut self.st, partner, content_id, item, seq)?,
            None => SENT.delete(&mut self.st, partner, content_id, seq),
        }
        Ok(())
    }

    /// Evaluates a content for every partner at `now_ms`.
    async fn evaluate(
        &mut self,
        partners: &Partners,
        state: &ContentState,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        for p in partners.iter() {
            self.export(&p.id, &state.content_id, export_for(state, p, now_ms))
                .await?;
        }
        Ok(())
    }

    fn into_writes(mut self) -> Result<Writes, StoreError> {
        if !self.st.is_empty() {
            let seq = self.seq;
            // Its own timestamp is the value it holds, which grows.
            META.put(&mut self.st, META_PARTITION, SEQ_ROW, &seq, seq)?;
        }
        Ok(self.st.into_writes())
    }
}

#[async_trait]
impl Handler for Exports {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> &'static [&'static str] {
        &[fleuve_kafka::topics::CATALOG]
    }

    fn wants(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            ContentUpserted::TYPE | ContentUnpublished::TYPE | ContentDeleted::TYPE
        )
    }

    async fn fold(&self, store: &dyn Store, events: &[Incoming]) -> Result<Fold, StoreError> {
        let mut fold = Fold::default();
        let items = decode_each(events, &mut fold.rejected, Item::decode);
        if items.is_empty() {
            return Ok(fold);
        }
        let mut out = Out::new(store).await?;
        let ids: BTreeSet<&str> = items.iter().map(|(_, _, i)| i.content_id()).collect();
        CONTENT
            .prefetch(
                &mut out.st,
                ids.iter().map(|id| ((*id).to_owned(), ROW.to_owned())),
            )
            .await?;
        for p in self.partners.iter() {
            SENT.prefetch(
                &mut out.st,
                ids.iter().map(|id| (p.id.clone(), (*id).to_owned())),
            )
            .await?;
        }
        for (_, event, item) in items {
            let id = item.content_id().to_owned();
            let old = CONTENT.fetch(&mut out.st, &id, ROW).await?;
            // The catalog read model's transitions; what the catalog processor dead-letters
            // is skipped here (it is in `dlq.catalog` already).
            match step(old.as_ref(), event.offset, item) {
                Step::Skip(why) => tracing::debug!(
                    processor = NAME,
                    topic = %event.topic,
                    partition = event.partition,
                    offset = event.offset,
                    content_id = %id,
                    why,
                    "event skipped"
                ),
                Step::Reject(why) => tracing::debug!(
                    processor = NAME,
                    topic = %event.topic,
                    partition = event.partition,
                    offset = event.offset,
                    content_id = %id,
                    why,
                    "event skipped (dead-lettered by the catalog processor)"
                ),
                Step::Apply(new) => {
                    out.evaluate(&self.partners, &new, new.changed_at_ms)
                        .await?;
                    let old_edges = old
                        .as_ref()
                        .map(ContentState::scheduled_edges)
                        .unwrap_or_default();
                    let new_edges = new.scheduled_edges();
                    for at_ms in old_edges.iter().filter(|e| !new_edges.contains(e)) {
                        let ts = out.next();
                        SCHEDULE.delete(
                            &mut out.st,
                            SCHEDULE_PARTITION,
                            &schedule_ck(*at_ms, &id),
                            ts,
                        );
                    }
                    for at_ms in new_edges {
                        let edge = ScheduledEdge {
                            content_id: id.clone(),
                            at_ms,
                            offset: new.last_offset,
                        };
                        let ts = out.next();
                        SCHEDULE.put(
                            &mut out.st,
                            SCHEDULE_PARTITION,
                            &schedule_ck(at_ms, &id),
                            &edge,
                            ts,
                        )?;
                    }
                    let ts = out.next();
                    CONTENT.put(&mut out.st, &id, ROW, &*new, ts)?;
                }
            }
        }
        fold.writes = out.into_writes()?;
        Ok(fold)
    }

    fn timer(&self) -> Option<Duration> {
        Some(TIMER_EVERY)
    }

    /// Seeds the partners that need it, then applies the window edges due at `now_ms`.
    async fn on_timer(&self, store: &dyn Store, now_ms: i64) -> Result<Writes, StoreError> {
        let mut out = Out::new(store).await?;
        let mut all_seeded = false;
        if !self.seeded.load(Ordering::Relaxed) {
            all_seeded = self.seed(store, &mut out, now_ms).await?;
        }
        let edges = SCHEDULE
            .scan(store, SCHEDULE_PARTITION, None, self.max_edges_per_run)
            .await?;
        SCHEDULE.note_read(&mut out.st);
        let mut evaluated = HashSet::new();
        for (ck, edge) in edges {
            if edge.at_ms > now_ms {
                break;
            }
            if evaluated.insert(edge.content_id.clone()) {
                let state = CONTENT.fetch(&mut out.st, &edge.content_id, ROW).await?;
                if let Some(state) = state {
                    out.evaluate(&self.partners, &state, now_ms).await?;
                }
            }
            let ts = out.next();
            SCHEDULE.delete(&mut out.st, SCHEDULE_PARTITION, &ck, ts);
        }
        let writes = out.into_writes()?;
        // Only once this run cannot fail any more: a run retried after an error seeds again.
        if all_seeded {
            self.seeded.store(true, Ordering::Relaxed);
        }
        Ok(writes)
    }
}

impl Exports {
    /// One seeding step: every configured partner whose marker is missing, unfinished or
    /// for other territories gets up to `seed_page` contents evaluated; markers of partners
    /// no longer configured are removed (if one comes back, it is seeded again as a diff
    /// against what its topic holds). Returns whether every partner is seeded.
    async fn seed(
        &self,
        store: &dyn Store,
        out: &mut Out<'_>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        PARTNERS.note_read(&mut out.st);
        let mut markers: BTreeMap<String, PartnerMarker> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let rows = PARTNERS
                .scan(store, PARTNERS_PARTITION, after.as_deref(), 500)
                .await?;
            let Some((last, _)) = rows.last() else { break };
            after = Some(last.clone());
            markers.extend(rows);
        }
        for id in markers.keys() {
            if !self.partners.iter().any(|p| &p.id == id) {
                let ts = out.next();
                PARTNERS.delete(&mut out.st, PARTNERS_PARTITION, id, ts);
                tracing::info!(processor = NAME, partner = %id, "partner no longer configured: its seeding marker is removed");
            }
        }
        let mut all_done = true;
        for p in self.partners.iter() {
            let from = match markers.get(&p.id) {
                Some(m) if m.territories == p.territories && m.done => continue,
                Some(m) if m.territories == p.territories => m.after.clone(),
                _ => None,
            };
            let page = CONTENT
                .scan_table(store, from.as_deref().map(|id| (id, ROW)), self.seed_page)
                .await?;
            SENT.prefetch(
                &mut out.st,
                page.iter().map(|(pk, _, _)| (p.id.clone(), pk.clone())),
            )
            .await?;
            for (_, _, state) in &page {
                out.export(&p.id, &state.content_id, export_for(state, p, now_ms))
                    .await?;
            }
            let done = page.len() < self.seed_page;
            all_done &= done;
            let marker = PartnerMarker {
                territories: p.territories.clone(),
                after: page.last().map(|(pk, _, _)| pk.clone()).or(from),
                done,
            };
            tracing::info!(processor = NAME, partner = %p.id, contents = page.len(), done, "seeding partner");
            let ts = out.next();
            PARTNERS.put(&mut out.st, PARTNERS_PARTITION, &p.id, &marker, ts)?;
        }
        Ok(all_done)
    }
}

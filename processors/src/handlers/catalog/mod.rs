//! `catalog`: folds `ContentUpserted`, `ContentUnpublished` and `ContentDeleted` from
//! `catalog` into [`fleuve_projections::catalog`]: every content's state, the contents
//! publishable now, each programme's listing, and the availability window edges still to
//! come. A timer (every second) applies the edges that are due, so that contents enter and
//! leave the view when their window opens or closes, with no new event.
//!
//! Dead letters: events that do not decode or break their type's rules, and unpublishing or
//! deleting a content that was never upserted or is deleted. A replayed event (at or below
//! the offset the content has applied) and a producer's retry (the event id the content
//! applied last) change nothing and are not dead-lettered. The semantics are described in
//! [`fleuve_projections::catalog`].

pub(super) mod avro;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use fleuve_projections::catalog::{
    due_edges, schedule_ck, ContentKind, ContentState, ContentStatus, DistributionRight, LiveEntry,
    PublishedContent, ScheduledEdge, CONTENT, EPISODES, LIVE, ROW, SCHEDULE, SCHEDULE_PARTITION,
};
use fleuve_projections::{stamp, Staging, Store, StoreError, Writes};
use fleuve_schemas::{ContentDeleted, ContentUnpublished, ContentUpserted, Event};

use super::{decode, decode_each};
use crate::runtime::{Fold, Handler, Incoming};

pub(super) const NAME: &str = fleuve_projections::catalog::PROJECTION;

/// This processor, as [`super::by_name`] gives it.
pub(super) fn handler() -> std::sync::Arc<dyn crate::runtime::Handler> {
    std::sync::Arc::new(Catalog::default())
}

/// How often the timer applies due window edges.
const TIMER_EVERY: Duration = Duration::from_secs(1);
/// Most window edges one timer run applies by default.
const MAX_EDGES_PER_RUN: usize = 1000;
/// Write phase of the rows an event writes.
const PHASE_EVENT: u8 = 0;
/// Write phase of the rows the timer writes when a window opens.
const PHASE_OPENED: u8 = 1;
/// Write phase of the rows the timer removes when a window closes.
const PHASE_CLOSED: u8 = 2;

/// The `catalog` processor.
#[derive(Debug, Clone, Copy)]
pub struct Catalog {
    /// Most window edges one timer run applies; the rest wait for the next run.
    max_edges_per_run: usize,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            max_edges_per_run: MAX_EDGES_PER_RUN,
        }
    }
}

/// A decoded event of the `catalog` topic (the `exports` processor reads them too).
pub(crate) enum Item {
    Upserted(ContentUpserted),
    Unpublished(ContentUnpublished),
    Deleted(ContentDeleted),
}

impl Item {
    /// Decodes an event of the `catalog` topic; `Err` for another type or bad values.
    pub(crate) fn decode(event: &Incoming) -> Result<Item, String> {
        match event.event_type {
            ContentUpserted::TYPE => decode_upserted(event).map(Item::Upserted),
            ContentUnpublished::TYPE => decode(event).map(Item::Unpublished),
            ContentDeleted::TYPE => decode(event).map(Item::Deleted),
            other => Err(format!("`{other}` is not an event of the catalog topic")),
        }
    }

    pub(crate) fn content_id(&self) -> &str {
        match self {
            Item::Upserted(e) => &e.content_id,
            Item::Unpublished(e) => &e.content_id,
            Item::Deleted(e) => &e.content_id,
        }
    }

    pub(crate) fn event_id(&self) -> &str {
        match self {
            Item::Upserted(e) => &e.event_id,
            Item::Unpublished(e) => &e.event_id,
            Item::Deleted(e) => &e.event_id,
        }
    }
}

/// What an event does to its content.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Nothing: the event was applied already (the reason says how it was recognized).
    Skip(&'static str),
    /// The event goes to the dead-letter topic with this reason.
    Reject(String),
    /// The content's new state.
    Apply(Box<ContentState>),
}

#[async_trait]
impl Handler for Catalog {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> &'static [&'static str] {
        fleuve_projections::catalog::MODEL.topics
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
        let mut st = Staging::with_capacity(store, 3 * items.len());
        CONTENT
            .prefetch(
                &mut st,
                items
                    .iter()
                    .map(|(_, _, item)| (item.content_id().to_owned(), ROW.to_owned())),
            )
            .await?;
        for (i, event, item) in items {
            let content_id = item.content_id().to_owned();
            let old = CONTENT.fetch(&mut st, &content_id, ROW).await?;
            match step(old.as_ref(), event.offset, item) {
                Step::Apply(new) => write_state(&mut st, old.as_ref(), &new)?,
                Step::Skip(why) => tracing::debug!(
                    processor = NAME,
                    topic = %event.topic,
                    partition = event.partition,
                    offset = event.offset,
                    content_id = %content_id,
                    why,
                    "event already applied, skipped"
                ),
                Step::Reject(reason) => fold.rejected.push((i, reason)),
            }
        }
        fold.rejected.sort_by_key(|(i, _)| *i);
        fold.writes = st.into_writes();
        Ok(fold)
    }

    fn timer(&self) -> Option<Duration> {
        Some(TIMER_EVERY)
    }

    /// Applies the window edges due at `now_ms`: each content concerned is evaluated again
    /// from its [`CONTENT`] row, and the edges are removed from [`SCHEDULE`]. Running it
    /// again for the same instant finds nothing due; a run on another replica with a stale
    /// view writes older stamps, which lose to the newer writes.
    async fn on_timer(&self, store: &dyn Store, now_ms: i64) -> Result<Writes, StoreError> {
        let due = due_edges(store, now_ms, self.max_edges_per_run).await?;
        if due.is_empty() {
            return Ok(Writes::default());
        }
        let mut st = Staging::new(store);
        // The edges decide what to write: their removal is written last (state), after the
        // rows they open or close, so a crash in between leaves them due.
        SCHEDULE.note_read(&mut st);
        CONTENT
            .prefetch(
                &mut st,
                due.iter()
                    .map(|(_, edge)| (edge.content_id.clone(), ROW.to_owned())),
            )
            .await?;
        let mut evaluated = HashSet::new();
        for (ck, edge) in &due {
            let state = CONTENT.fetch(&mut st, &edge.content_id, ROW).await?;
            let last_offset = state
                .as_ref()
                .map_or(edge.offset, |s| s.last_offset.max(edge.offset));
            if let Some(state) = &state {
                if evaluated.insert(edge.content_id.as_str()) {
                    apply_window(&mut st, state, now_ms)?;
                }
            }
            SCHEDULE.delete(
                &mut st,
                SCHEDULE_PARTITION,
                ck,
                stamp(last_offset, PHASE_CLOSED),
            );
        }
        tracing::debug!(
            processor = NAME,
            now_ms,
            edges = due.len(),
            contents = evaluated.len(),
            writes = st.len(),
            "window edges applied"
        );
        Ok(st.into_writes())
    }
}

/// [`decode`] of a `ContentUpserted`, read directly from its Avro value when it has the
/// schema's shape (see `avro.rs`).
fn decode_upserted(event: &Incoming) -> Result<ContentUpserted, String> {
    match avro::content_upserted(&event.value) {
        Some(e) => {
            e.validate()
                .map_err(|e| format!("invalid {}: {e}", ContentUpserted::TYPE))?;
            Ok(e)
        }
        None => decode(event),
    }
}

/// The state `item`, at `offset`, gives a content whose state was `old`.
pub(crate) fn step(old: Option<&ContentState>, offset: i64, item: Item) -> Step {
    if let Some(old) = old {
        if offset <= old.last_offset {
            return Step::Skip("replay: offset at or below the content's last applied offset");
        }
        if old.last_event_id == item.event_id() {
            return Step::Skip("retry: same event id as the content's last applied event");
        }
    }
    let deleted = old.filter(|o| o.status == ContentStatus::Deleted);
    match item {
        Item::Upserted(e) => Step::Apply(Box::new(ContentState {
            content_id: e.content_id.clone(),
            status: ContentStatus::Published,
            last_offset: offset,
            last_event_id: e.event_id.clone(),
            changed_at_ms: e.occurred_at,
            unpublished_reason: None,
            content: Some(content_of(e)),
        })),
        Item::Unpublished(e) => match (old, deleted) {
            (None, _) => Step::Reject(format!(
                "content `{}` is unknown: it was never upserted, so there is nothing to unpublish",
                e.content_id
            )),
            (_, Some(d)) => Step::Reject(format!(
                "content `{}` was deleted (offset {}): it must be upserted again before it can be unpublished",
                e.content_id, d.last_offset
            )),
            (Some(old), None) => Step::Apply(Box::new(ContentState {
                content_id: e.content_id,
                status: ContentStatus::Unpublished,
                content: old.content.clone(),
                unpublished_reason: e.reason,
                last_offset: offset,
                last_event_id: e.event_id,
                changed_at_ms: e.occurred_at,
            })),
        },
        Item::Deleted(e) => match (old, deleted) {
            (None, _) => Step::Reject(format!(
                "content `{}` is unknown: it was never upserted, so there is nothing to delete",
                e.content_id
            )),
            (_, Some(d)) => Step::Reject(format!(
                "content `{}` is already deleted (offset {})",
                e.content_id, d.last_offset
            )),
            (Some(_), None) => Step::Apply(Box::new(ContentState {
                content_id: e.content_id,
                status: ContentStatus::Deleted,
                content: None,
                unpublished_reason: None,
                last_offset: offset,
                last_event_id: e.event_id,
                changed_at_ms: e.occurred_at,
            })),
        },
    }
}

/// The content an upsert describes.
fn content_of(e: ContentUpserted) -> PublishedContent {
    PublishedContent {
        content_id: e.content_id,
        kind: match e.kind {
            fleuve_schemas::ContentKind::Programme => ContentKind::Programme,
            fleuve_schemas::ContentKind::Season => ContentKind::Season,
            fleuve_schemas::ContentKind::Episode => ContentKind::Episode,
            fleuve_schemas::ContentKind::Clip => ContentKind::Clip,
        },
        program_id: e.program_id,
        season_number: e.season_number,
        episode_number: e.episode_number,
        title: e.title,
        description: e.description,
        tags: e.tags,
        duration_ms: e.duration_ms,
        available_from_ms: e.available_from,
        available_until_ms: e.available_until,
        rights: e
            .rights
            .into_iter()
            .map(|r| DistributionRight {
                partner: r.partner,
                territories: r.territories,
            })
            .collect(),
        updated_at_ms: e.occurred_at,
    }
}

/// Writes what moving a content from `old` to `new` changes, evaluated at the new event's
/// time: its live row, its listing entry (removed from its old place when it moved), its
/// scheduled edges, and last its state row (so that a store applying the batch partially
/// leaves the event to be applied again).
fn write_state(
    st: &mut Staging<'_>,
    old: Option<&ContentState>,
    new: &ContentState,
) -> Result<(), StoreError> {
    let ts = stamp(new.last_offset, PHASE_EVENT);
    let id = new.content_id.as_str();
    let before = old.and_then(ContentState::published);
    let after = new.publishable_at(new.changed_at_ms);

    let old_key = before.and_then(PublishedContent::listing_key);
    let new_key = after.and_then(PublishedContent::listing_key);
    if old_key != new_key {
        if let Some((pk, ck)) = &old_key {
            EPISODES.delete(st, pk, ck, ts);
        }
    }
    match after {
        Some(content) => {
            LIVE.put(st, id, ROW, &LiveEntry::from(content), ts)?;
            if let Some((pk, ck)) = &new_key {
                EPISODES.put(st, pk, ck, &content.episode_entry(), ts)?;
            }
        }
        None if before.is_some() => LIVE.delete(st, id, ROW, ts),
        None => {}
    }

    let old_edges = old.map(ContentState::scheduled_edges).unwrap_or_default();
    let new_edges = new.scheduled_edges();
    for at_ms in old_edges.iter().filter(|e| !new_edges.contains(e)) {
        SCHEDULE.delete(st, SCHEDULE_PARTITION, &schedule_ck(*at_ms, id), ts);
    }
    for at_ms in new_edges {
        let edge = ScheduledEdge {
            content_id: id.to_owned(),
            at_ms,
            offset: new.last_offset,
        };
        SCHEDULE.put(st, SCHEDULE_PARTITION, &schedule_ck(at_ms, id), &edge, ts)?;
    }

    CONTENT.put(st, id, ROW, new, ts)
}

/// Adds or removes a published content's rows as its window stands at `now_ms`: opened
/// (phase 1) or closed (phase 2). Before the window opens there is nothing to do (an edge
/// is only due once passed, so that happens only with a stale edge), and an unpublished or
/// deleted content had its rows removed by its event.
fn apply_window(st: &mut Staging<'_>, state: &ContentState, now_ms: i64) -> Result<(), StoreError> {
    let Some(content) = state.published() else {
        return Ok(());
    };
    if now_ms < content.available_from_ms {
        return Ok(());
    }
    let id = state.content_id.as_str();
    let key = content.listing_key();
    if content.available_at(now_ms) {
        let ts = stamp(state.last_offset, PHASE_OPENED);
        LIVE.put(st, id, ROW, &LiveEntry::from(content), ts)?;
        if let Some((pk, ck)) = &key {
            EPISODES.put(st, pk, ck, &content.episode_entry(), ts)?;
        }
    } else {
        let ts = stamp(state.last_offset, PHASE_CLOSED);
        LIVE.delete(st, id, ROW, ts);
        if let Some((pk, ck)) = &key {
            EPISODES.delete(st, pk, ck, ts);
        }
    }
    Ok(())
}

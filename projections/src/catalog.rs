//! Catalog (`catalog` processor): the contents fronts may show now, by id, and each
//! programme's seasons, episodes and clips.
//!
//! | table | partition | rows (clustering order) | value |
//! | --- | --- | --- | --- |
//! | [`CONTENT`] | content id | one ([`ROW`]) | [`ContentState`]: every content ever upserted, publishable or not, deleted ones as tombstones |
//! | [`LIVE`] | content id | one ([`ROW`]), only while publishable | [`LiveEntry`]: which version is live (the content itself is in [`CONTENT`]) |
//! | [`EPISODES`] | programme id | [`episode_ck`]: by season, each season's own entry, then its episodes, then its clips; only while publishable | [`EpisodeEntry`] |
//! | [`SCHEDULE`] | [`SCHEDULE_PARTITION`] | [`schedule_ck`]: availability window edges still to apply, earliest first | [`ScheduledEdge`] |
//!
//! A content is *publishable* at an instant when its last event is a `ContentUpserted` (not
//! unpublished, not deleted) and the instant lies in its availability window
//! (`available_from` inclusive, `available_until` exclusive; open-ended when absent).
//!
//! * `ContentUpserted` replaces the whole content: every field comes from the event, and the
//!   content is published again, whether it was unpublished (the schema: "it stays in the
//!   catalogue and may be upserted again later") or deleted (a new upsert re-creates it).
//! * `ContentUnpublished` hides the content and keeps it (with the reason) until the next
//!   upsert; unpublishing an unpublished content only updates the reason.
//! * `ContentDeleted` drops the content's fields and leaves a tombstone in [`CONTENT`] (its
//!   status and last offset), so that a redelivered older event is still recognized.
//! * Seasons, episodes, and clips with a `program_id` are listed in [`EPISODES`] under their
//!   programme. An upsert that changes the programme, season, number or kind moves the entry
//!   (the old one is removed in the same batch); the listing does not depend on the
//!   programme's own state (it is another content, on another Kafka partition): a front
//!   reads the programme with [`get`].
//!
//! **Time.** An event is evaluated at its own `occurred_at`: what is publishable then goes
//! to [`LIVE`] and [`EPISODES`], and the window edges after that instant go to
//! [`SCHEDULE`]. The processor's timer (every second) takes the edges that are due, evaluates
//! their contents again at the current time and adds or removes their rows, with no new
//! event; a consumer that lags, or a rebuild from an old log, schedules edges that are
//! already past, which the next timer run applies. [`LIVE`] and [`EPISODES`] are therefore
//! exact as of the timer's last run (give or take the clock skew of a producer whose
//! `occurred_at` is ahead of the processor's clock). [`get`] and [`get_many`] are exact at
//! any instant: they evaluate the [`CONTENT`] row at the read's `now_ms`.
//! [`list_episodes`] drops the entries whose window is not open at `now_ms`, so a window
//! that closes leaves the listing at once; one that opens shows from the next timer run.
//!
//! **Idempotence.** The [`CONTENT`] row keeps the offset and the event id it applied last:
//! an event at or below that offset is a replay, and an event with that event id is a
//! producer's retry; both change nothing. Rows written by an event carry
//! `stamp(offset, 0)`; the timer writes with the content's last offset, phase 1 when a
//! window opens and phase 2 when it closes, so a stale timer run on another replica never
//! overrides a newer event, nor reopens a window a later run closed (see [`crate::stamp`]).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::model::{Page, PageRequest};
use crate::paging::{asc_i32, asc_i64};
use crate::read_model::ReadModel;
use crate::store::{Store, StoreError};
use crate::table::{RowOf, Table};

/// Table of every content's state.
pub const CONTENT: Table<ContentState> =
    Table::new("catalog_content", "content id", "one row, ROW");
/// Table of the contents publishable now: the set, for scans (the contents are read from
/// [`CONTENT`]).
pub const LIVE: Table<LiveEntry> = Table::new(
    "catalog_live",
    "content id",
    "one row, ROW, only while publishable",
);
/// Table of the programmes' seasons, episodes and clips publishable now.
pub const EPISODES: Table<EpisodeEntry> = Table::new(
    "catalog_episodes",
    "programme id",
    "by season, each season's own entry, then its episodes, then its clips (episode_ck); \
     only while publishable",
);
/// Table of the window edges still to apply.
pub const SCHEDULE: Table<ScheduledEdge> = Table::new(
    "catalog_schedule",
    "SCHEDULE_PARTITION, the only one",
    "window edges still to apply, earliest first (schedule_ck)",
);
/// Every table of this read model.
pub const TABLES: &[&str] = &[
    CONTENT.name(),
    LIVE.name(),
    EPISODES.name(),
    SCHEDULE.name(),
];
/// Name of the processor (and of its checkpoints).
pub const PROJECTION: &str = "catalog";
/// The declaration of this read model.
pub const MODEL: ReadModel = ReadModel {
    name: PROJECTION,
    topics: &[fleuve_kafka::topics::CATALOG],
    tables: TABLES,
};
/// Clustering key of the single row of a [`CONTENT`] or [`LIVE`] partition.
pub const ROW: &str = "";
/// The partition of [`SCHEDULE`]: it holds only edges not applied yet, so it stays small.
pub const SCHEDULE_PARTITION: &str = "edges";

/// Sorts after every number in [`episode_ck`] (the 8 hex digits of `asc_i32`).
const NO_NUMBER: &str = "~~~~~~~~";

/// What a content is (the Avro enum `fleuve.catalog.ContentKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentKind {
    /// A show or a film.
    Programme,
    /// A season of a programme.
    Season,
    /// An episode of a programme.
    Episode,
    /// A short extract or bonus.
    Clip,
}

impl ContentKind {
    /// Where entries of this kind sort within a season in [`EPISODES`]; `None` for a kind
    /// that is not listed under a programme.
    fn listing_rank(self) -> Option<char> {
        match self {
            ContentKind::Programme => None,
            ContentKind::Season => Some('0'),
            ContentKind::Episode => Some('1'),
            ContentKind::Clip => Some('2'),
        }
    }
}

/// Whether the content is shown, as its last event left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentStatus {
    /// Upserted: shown while its window is open.
    Published,
    /// Withdrawn by `ContentUnpublished` until the next upsert.
    Unpublished,
    /// Removed by `ContentDeleted` (a tombstone) until the next upsert.
    Deleted,
}

/// A partner allowed to distribute a content, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionRight {
    pub partner: String,
    /// ISO 3166-1 alpha-2 codes.
    pub territories: Vec<String>,
}

/// A content as its last upsert described it: what fronts read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedContent {
    pub content_id: String,
    pub kind: ContentKind,
    /// The programme a season, an episode or a clip belongs to.
    pub program_id: Option<String>,
    pub season_number: Option<i32>,
    pub episode_number: Option<i32>,
    pub title: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub duration_ms: Option<i64>,
    /// Start of availability (inclusive), ms since the Unix epoch.
    pub available_from_ms: i64,
    /// End of availability (exclusive), ms since the Unix epoch; `None` when open-ended.
    pub available_until_ms: Option<i64>,
    /// Partners allowed to distribute the content outside our own fronts.
    pub rights: Vec<DistributionRight>,
    /// Event time of the upsert that wrote this version, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

impl PublishedContent {
    /// Whether `now_ms` lies in the availability window.
    pub fn available_at(&self, now_ms: i64) -> bool {
        in_window(self.available_from_ms, self.available_until_ms, now_ms)
    }

    /// The instants at which availability changes: the window's start, and its end if any.
    pub fn window_edges(&self) -> impl Iterator<Item = i64> {
        std::iter::once(self.available_from_ms).chain(self.available_until_ms)
    }

    /// Where the content is listed in [`EPISODES`]: the programme id (partition) and the
    /// clustering key; `None` for a programme and for a clip of no programme.
    pub fn listing_key(&self) -> Option<(&str, String)> {
        let program_id = self.program_id.as_deref()?;
        self.kind.listing_rank()?;
        Some((
            program_id,
            episode_ck(
                self.season_number,
                self.kind,
                self.episode_number,
                &self.content_id,
            ),
        ))
    }
}

/// Whether `now_ms` lies in the window [`from_ms`, `until_ms`) (open-ended without an end).
pub fn in_window(from_ms: i64, until_ms: Option<i64>, now_ms: i64) -> bool {
    from_ms <= now_ms && until_ms.is_none_or(|until| now_ms < until)
}

/// A content's row in [`CONTENT`]: its status, its fields, and what it has applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentState {
    pub content_id: String,
    pub status: ContentStatus,
    /// The content as last upserted (kept while unpublished); `None` once deleted.
    pub content: Option<PublishedContent>,
    /// Reason given by the `ContentUnpublished` that hid it, if any.
    pub unpublished_reason: Option<String>,
    /// Offset of the last event applied to this content.
    pub last_offset: i64,
    /// Event id of the last event applied to this content.
    pub last_event_id: String,
    /// Event time of the last event applied to this content, ms since the Unix epoch.
    pub changed_at_ms: i64,
}

impl ContentState {
    /// The content, if it is publishable at `now_ms` (published, window open).
    pub fn publishable_at(&self, now_ms: i64) -> Option<&PublishedContent> {
        self.published().filter(|c| c.available_at(now_ms))
    }

    /// The content, if it is published (whatever its window).
    pub fn published(&self) -> Option<&PublishedContent> {
        match self.status {
            ContentStatus::Published => self.content.as_ref(),
            ContentStatus::Unpublished | ContentStatus::Deleted => None,
        }
    }

    /// The window edges this state put in [`SCHEDULE`]: those of a published content after
    /// the upsert's event time (the earlier ones were applied by the upsert itself).
    pub fn scheduled_edges(&self) -> Vec<i64> {
        self.published()
            .map(|c| c.window_edges().filter(|e| *e > c.updated_at_ms).collect())
            .unwrap_or_default()
    }
}

/// An entry of a programme's listing in [`EPISODES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeEntry {
    pub content_id: String,
    pub kind: ContentKind,
    pub season_number: Option<i32>,
    pub episode_number: Option<i32>,
    pub title: String,
    pub description: Option<String>,
    pub duration_ms: Option<i64>,
    /// Start of availability (inclusive), ms since the Unix epoch.
    pub available_from_ms: i64,
    /// End of availability (exclusive), ms since the Unix epoch; `None` when open-ended.
    pub available_until_ms: Option<i64>,
}

impl From<&PublishedContent> for EpisodeEntry {
    fn from(c: &PublishedContent) -> Self {
        Self {
            content_id: c.content_id.clone(),
            kind: c.kind,
            season_number: c.season_number,
            episode_number: c.episode_number,
            title: c.title.clone(),
            description: c.description.clone(),
            duration_ms: c.duration_ms,
            available_from_ms: c.available_from_ms,
            available_until_ms: c.available_until_ms,
        }
    }
}

impl PublishedContent {
    /// The content's entry in [`EPISODES`], encoded as an [`EpisodeEntry`] without copying
    /// its fields.
    pub fn episode_entry(&self) -> impl Serialize + RowOf<EpisodeEntry> + '_ {
        EpisodeEntryRef {
            content_id: &self.content_id,
            kind: self.kind,
            season_number: self.season_number,
            episode_number: self.episode_number,
            title: &self.title,
            description: self.description.as_deref(),
            duration_ms: self.duration_ms,
            available_from_ms: self.available_from_ms,
            available_until_ms: self.available_until_ms,
        }
    }
}

/// [`EpisodeEntry`] borrowed from a [`PublishedContent`]: the same fields, in the same order,
/// so the same JSON.
#[derive(Serialize)]
struct EpisodeEntryRef<'a> {
    content_id: &'a str,
    kind: ContentKind,
    season_number: Option<i32>,
    episode_number: Option<i32>,
    title: &'a str,
    description: Option<&'a str>,
    duration_ms: Option<i64>,
    available_from_ms: i64,
    available_until_ms: Option<i64>,
}

impl RowOf<EpisodeEntry> for EpisodeEntryRef<'_> {}

/// A content's row in [`LIVE`] while it is publishable: which version is live and until
/// when. The content itself is read from [`CONTENT`] (with [`get_many`] for the ids a scan
/// of [`LIVE`] returns), so it is stored once. The fields are named as in
/// [`PublishedContent`], whose JSON therefore also reads as a `LiveEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEntry {
    pub kind: ContentKind,
    /// Event time of the upsert that wrote the live version, ms since the Unix epoch.
    pub updated_at_ms: i64,
    /// End of availability (exclusive), ms since the Unix epoch; `None` when open-ended.
    pub available_until_ms: Option<i64>,
}

impl From<&PublishedContent> for LiveEntry {
    fn from(c: &PublishedContent) -> Self {
        Self {
            kind: c.kind,
            updated_at_ms: c.updated_at_ms,
            available_until_ms: c.available_until_ms,
        }
    }
}

/// A window edge to apply in [`SCHEDULE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledEdge {
    pub content_id: String,
    /// When the content's availability changes, ms since the Unix epoch.
    pub at_ms: i64,
    /// Offset of the event that scheduled it.
    pub offset: i64,
}

/// Clustering key of an entry in [`EPISODES`]: season number (absent last), then the kind
/// (the season itself, then episodes, then clips), then the episode number (absent last),
/// then the content id.
pub fn episode_ck(
    season_number: Option<i32>,
    kind: ContentKind,
    episode_number: Option<i32>,
    content_id: &str,
) -> String {
    let number = |n: Option<i32>| n.map_or_else(|| NO_NUMBER.to_owned(), asc_i32);
    format!(
        "{}{}{}{content_id}",
        number(season_number),
        kind.listing_rank().unwrap_or('9'),
        number(episode_number),
    )
}

/// Clustering key of an edge in [`SCHEDULE`]: earliest first.
pub fn schedule_ck(at_ms: i64, content_id: &str) -> String {
    format!("{}{content_id}", asc_i64(at_ms))
}

/// A content's state, publishable or not (for tools and operators; fronts use [`get`]).
pub async fn state(
    store: &dyn Store,
    content_id: &str,
) -> Result<Option<ContentState>, StoreError> {
    CONTENT.get(store, content_id, ROW).await
}

/// A content, if it is publishable at `now_ms`.
pub async fn get(
    store: &dyn Store,
    content_id: &str,
    now_ms: i64,
) -> Result<Option<PublishedContent>, StoreError> {
    Ok(state(store, content_id)
        .await?
        .and_then(|s| s.publishable_at(now_ms).cloned()))
}

/// The answer to [`get_many`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentBatch {
    /// The contents publishable now, in the order asked.
    pub items: Vec<PublishedContent>,
    /// The ids asked for that are unknown or not publishable now, in the order asked.
    pub missing: Vec<String>,
}

/// Several contents in one store call, those publishable at `now_ms`; an id asked twice is
/// answered once.
pub async fn get_many(
    store: &dyn Store,
    content_ids: &[String],
    now_ms: i64,
) -> Result<ContentBatch, StoreError> {
    let mut seen = HashSet::with_capacity(content_ids.len());
    let keys: Vec<(String, String)> = content_ids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .map(|id| (id.clone(), ROW.to_owned()))
        .collect();
    let states = CONTENT.get_many(store, &keys).await?;
    let mut batch = ContentBatch {
        items: Vec::with_capacity(keys.len()),
        missing: Vec::new(),
    };
    for ((id, _), state) in keys.into_iter().zip(states) {
        let found = state.and_then(|s| s.publishable_at(now_ms).cloned());
        match found {
            Some(content) => batch.items.push(content),
            None => batch.missing.push(id),
        }
    }
    Ok(batch)
}

/// A programme's seasons, episodes and clips publishable at `now_ms`, in listing order
/// (see [`episode_ck`]). A page may hold fewer than `limit` items when entries closed since
/// the timer's last run; follow `next_cursor` until it is absent.
pub async fn list_episodes(
    store: &dyn Store,
    program_id: &str,
    page: &PageRequest,
    now_ms: i64,
) -> Result<Page<EpisodeEntry>, StoreError> {
    let raw = EPISODES.page(store, program_id, page).await?;
    Ok(Page {
        items: raw
            .items
            .into_iter()
            .filter(|e| in_window(e.available_from_ms, e.available_until_ms, now_ms))
            .collect(),
        next_cursor: raw.next_cursor,
    })
}

/// The window edges due at `now_ms` (at or before it), earliest first, at most `limit`, each
/// with its clustering key in [`SCHEDULE`].
pub async fn due_edges(
    store: &dyn Store,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<(String, ScheduledEdge)>, StoreError> {
    let mut due = SCHEDULE
        .scan(store, SCHEDULE_PARTITION, None, limit)
        .await?;
    due.retain(|(_, edge)| edge.at_ms <= now_ms);
    Ok(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(id: &str, kind: ContentKind) -> PublishedContent {
        PublishedContent {
            content_id: id.to_owned(),
            kind,
            program_id: None,
            season_number: None,
            episode_number: None,
            title: format!("title of {id}"),
            description: None,
            tags: Vec::new(),
            duration_ms: None,
            available_from_ms: 1_000,
            available_until_ms: Some(2_000),
            rights: Vec::new(),
            updated_at_ms: 500,
        }
    }

    fn state_of(c: PublishedContent, status: ContentStatus) -> ContentState {
        ContentState {
            content_id: c.content_id.clone(),
            status,
            content: Some(c),
            unpublished_reason: None,
            last_offset: 7,
            last_event_id: "e".to_owned(),
            changed_at_ms: 500,
        }
    }

    #[test]
    fn window_includes_its_start_and_excludes_its_end() {
        assert!(!in_window(1_000, Some(2_000), 999));
        assert!(in_window(1_000, Some(2_000), 1_000));
        assert!(in_window(1_000, Some(2_000), 1_999));
        assert!(!in_window(1_000, Some(2_000), 2_000));
        assert!(in_window(1_000, None, i64::MAX));
        assert!(!in_window(1_000, None, 999));
    }

    #[test]
    fn only_a_published_content_in_its_window_is_publishable() {
        let c = content("c", ContentKind::Clip);
        let published = state_of(c.clone(), ContentStatus::Published);
        assert_eq!(published.publishable_at(1_500), Some(&c));
        assert_eq!(published.publishable_at(2_000), None);
        for status in [ContentStatus::Unpublished, ContentStatus::Deleted] {
            assert_eq!(state_of(c.clone(), status).publishable_at(1_500), None);
        }
        let mut tombstone = published;
        tombstone.status = ContentStatus::Deleted;
        tombstone.content = None;
        assert_eq!(tombstone.publishable_at(1_500), None);
    }

    #[test]
    fn scheduled_edges_are_those_after_the_upsert() {
        let mut c = content("c", ContentKind::Clip);
        let st = |c: &PublishedContent| state_of(c.clone(), ContentStatus::Published);
        assert_eq!(st(&c).scheduled_edges(), vec![1_000, 2_000]);
        c.updated_at_ms = 1_000;
        assert_eq!(st(&c).scheduled_edges(), vec![2_000]);
        c.available_until_ms = None;
        assert_eq!(st(&c).scheduled_edges(), Vec::<i64>::new());
        c.updated_at_ms = 10;
        assert_eq!(st(&c).scheduled_edges(), vec![1_000]);
        assert!(state_of(c, ContentStatus::Unpublished)
            .scheduled_edges()
            .is_empty());
    }

    #[test]
    fn listing_sorts_seasons_then_kinds_then_numbers() {
        use ContentKind::{Clip, Episode, Season};
        let expected = [
            episode_ck(Some(1), Season, None, "s1"),
            episode_ck(Some(1), Episode, Some(2), "e-1-2"),
            episode_ck(Some(1), Episode, Some(10), "e-1-10"),
            episode_ck(Some(1), Clip, Some(0), "k-1-0"),
            episode_ck(Some(1), Clip, None, "k-1-a"),
            episode_ck(Some(1), Clip, None, "k-1-b"),
            episode_ck(Some(2), Season, None, "s2"),
            episode_ck(Some(2), Episode, Some(1), "e-2-1"),
            episode_ck(Some(10), Season, None, "s10"),
            episode_ck(None, Episode, Some(1), "special-1"),
            episode_ck(None, Clip, None, "trailer"),
        ];
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn only_children_of_a_programme_are_listed() {
        let mut c = content("e", ContentKind::Episode);
        assert_eq!(c.listing_key(), None);
        c.program_id = Some("p".to_owned());
        c.season_number = Some(1);
        c.episode_number = Some(3);
        assert_eq!(
            c.listing_key(),
            Some(("p", episode_ck(Some(1), ContentKind::Episode, Some(3), "e")))
        );
        c.kind = ContentKind::Programme;
        assert_eq!(c.listing_key(), None);
    }

    #[test]
    fn borrowed_episode_entries_encode_as_episode_entries() {
        let mut c = content("e\"1", ContentKind::Episode);
        c.program_id = Some("p".to_owned());
        c.season_number = Some(2);
        c.description = Some("Ça \u{1F600}\n".to_owned());
        c.duration_ms = Some(60_000);
        assert_eq!(
            serde_json::to_vec(&c.episode_entry()).unwrap(),
            serde_json::to_vec(&EpisodeEntry::from(&c)).unwrap()
        );
        c.available_until_ms = None;
        c.description = None;
        assert_eq!(
            serde_json::to_vec(&c.episode_entry()).unwrap(),
            serde_json::to_vec(&EpisodeEntry::from(&c)).unwrap()
        );
    }

    #[test]
    fn a_content_reads_as_its_live_entry() {
        let c = content("c", ContentKind::Clip);
        let from_content: LiveEntry =
            serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(from_content, LiveEntry::from(&c));
    }

    #[test]
    fn schedule_sorts_by_time() {
        assert!(schedule_ck(-1, "z") < schedule_ck(0, "a"));
        assert!(schedule_ck(1_999, "z") < schedule_ck(2_000, "a"));
        assert!(schedule_ck(2_000, "a") < schedule_ck(2_000, "b"));
    }

    #[cfg(feature = "embedded")]
    async fn put(store: &dyn Store, writes: Vec<(&'static str, String, String, Vec<u8>)>) {
        use crate::model::stamp;
        use crate::store::{Write, WriteBatch};
        store
            .apply(WriteBatch {
                projection: PROJECTION.to_owned(),
                writes: writes
                    .into_iter()
                    .map(|(table, pk, ck, value)| Write::Put {
                        table,
                        pk,
                        ck,
                        value,
                        ts: stamp(1, 0),
                    })
                    .collect::<Vec<_>>()
                    .into(),
                checkpoints: Vec::new(),
            })
            .await
            .unwrap();
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn reads_evaluate_the_window_at_the_read_instant() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::embedded::EmbeddedStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        let mut e1 = content("e1", ContentKind::Episode);
        e1.program_id = Some("p".to_owned());
        e1.season_number = Some(1);
        e1.episode_number = Some(1);
        let mut e2 = e1.clone();
        e2.content_id = "e2".to_owned();
        e2.episode_number = Some(2);
        e2.available_until_ms = None;
        let hidden = state_of(
            content("hidden", ContentKind::Clip),
            ContentStatus::Unpublished,
        );
        let mut rows = Vec::new();
        for c in [&e1, &e2] {
            let (pk, ck) = c.listing_key().unwrap();
            let entry = serde_json::to_vec(&EpisodeEntry::from(c)).unwrap();
            rows.push((EPISODES.name(), pk.to_owned(), ck, entry));
            let st = serde_json::to_vec(&state_of(c.clone(), ContentStatus::Published)).unwrap();
            rows.push((CONTENT.name(), c.content_id.clone(), ROW.to_owned(), st));
        }
        let hidden_row = serde_json::to_vec(&hidden).unwrap();
        rows.push((
            CONTENT.name(),
            "hidden".to_owned(),
            ROW.to_owned(),
            hidden_row,
        ));
        put(&store, rows).await;

        assert_eq!(get(&store, "e1", 999).await.unwrap(), None);
        assert_eq!(get(&store, "e1", 1_000).await.unwrap(), Some(e1.clone()));
        assert_eq!(get(&store, "e1", 2_000).await.unwrap(), None);
        assert_eq!(get(&store, "hidden", 1_500).await.unwrap(), None);
        assert_eq!(get(&store, "nope", 1_500).await.unwrap(), None);
        assert_eq!(
            state(&store, "hidden").await.unwrap().map(|s| s.status),
            Some(ContentStatus::Unpublished)
        );

        let ids = ["e2", "nope", "e1", "e2", "hidden"].map(str::to_owned);
        let batch = get_many(&store, &ids, 2_500).await.unwrap();
        assert_eq!(batch.items, vec![e2.clone()]);
        assert_eq!(batch.missing, vec!["nope", "e1", "hidden"]);

        let listed = |now| {
            let store = &store;
            async move {
                list_episodes(store, "p", &PageRequest::first(10), now)
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .map(|e| e.content_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(1_500).await, vec!["e1", "e2"]);
        assert_eq!(listed(2_000).await, vec!["e2"]);

        let first = list_episodes(&store, "p", &PageRequest::first(1), 2_000)
            .await
            .unwrap();
        assert!(first.items.is_empty(), "e1 is closed at 2000");
        let second = list_episodes(
            &store,
            "p",
            &PageRequest {
                limit: 1,
                cursor: first.next_cursor,
            },
            2_000,
        )
        .await
        .unwrap();
        assert_eq!(second.items, vec![EpisodeEntry::from(&e2)]);
        assert_eq!(second.next_cursor, None);
    }
}

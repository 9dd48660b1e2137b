//! User progress (`user_progress` processor): where each user is in each content, and the
//! user's continue-watching list.
//!
//! | table | partition | rows (clustering order) | value |
//! | --- | --- | --- | --- |
//! | [`PROGRESS`] | user id | one per content id | [`Progress`] |
//! | [`CONTINUE_WATCHING`] | user id | newest `updated_at` first, unfinished only | [`ContinueWatching`] |
//!
//! A progress row is replaced only by an event with a greater [`EventVersion`] (event
//! time, then log offset): a device that comes back online with older positions does not
//! move the user backwards. An item counts as *finished*, and leaves the continue-watching
//! list, once its position reaches [`FINISHED_PERCENT`] % of its duration. `UserDataErased`
//! deletes both partitions of the user.

use serde::{Deserialize, Serialize};

use crate::model::{Page, PageRequest};
use crate::paging::desc_i64;
use crate::read_model::ReadModel;
use crate::store::{Store, StoreError};
use crate::table::Table;

/// Table of progress rows.
pub const PROGRESS: Table<Progress> = Table::new("progress", "user id", "one per content id");
/// Table of the continue-watching lists.
pub const CONTINUE_WATCHING: Table<ContinueWatching> = Table::new(
    "continue_watching",
    "user id",
    "newest `updated_at` first (continue_watching_ck), unfinished contents only",
);
/// Every table of this read model.
pub const TABLES: &[&str] = &[PROGRESS.name(), CONTINUE_WATCHING.name()];
/// Name of the processor (and of its checkpoints).
pub const PROJECTION: &str = "user_progress";
/// The declaration of this read model.
pub const MODEL: ReadModel = ReadModel {
    name: PROJECTION,
    topics: &[fleuve_kafka::topics::USER_ACTIVITY],
    tables: TABLES,
};
/// Position, as a percentage of the duration, from which an item is finished.
pub const FINISHED_PERCENT: i64 = 95;

/// Orders two writes of the same row: event time first, then the log offset. Redelivering
/// an event yields the same version, so applying it again is a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventVersion {
    /// `occurred_at` of the event, milliseconds since the Unix epoch.
    pub occurred_at_ms: i64,
    /// Offset of the event in its partition.
    pub offset: i64,
}

/// A user's playback progress on one content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub user_id: String,
    pub content_id: String,
    pub position_ms: i64,
    pub duration_ms: i64,
    pub device: String,
    /// Id of the event that wrote this row.
    pub event_id: String,
    /// Which write this is, for last-write-wins.
    pub version: EventVersion,
}

impl Progress {
    /// Whether the user has (nearly) finished the content.
    pub fn finished(&self) -> bool {
        self.duration_ms > 0
            && i128::from(self.position_ms) * 100
                >= i128::from(self.duration_ms) * i128::from(FINISHED_PERCENT)
    }
}

/// An entry of a continue-watching list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueWatching {
    pub content_id: String,
    pub position_ms: i64,
    pub duration_ms: i64,
    pub device: String,
    /// Event time of the last progress, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

impl From<&Progress> for ContinueWatching {
    fn from(p: &Progress) -> Self {
        Self {
            content_id: p.content_id.clone(),
            position_ms: p.position_ms,
            duration_ms: p.duration_ms,
            device: p.device.clone(),
            updated_at_ms: p.version.occurred_at_ms,
        }
    }
}

/// Clustering key of a progress row in [`CONTINUE_WATCHING`]: newest first.
pub fn continue_watching_ck(updated_at_ms: i64, content_id: &str) -> String {
    format!("{}{content_id}", desc_i64(updated_at_ms))
}

/// One user's progress on one content.
pub async fn get(
    store: &dyn Store,
    user_id: &str,
    content_id: &str,
) -> Result<Option<Progress>, StoreError> {
    PROGRESS.get(store, user_id, content_id).await
}

/// A user's progress rows, by content id.
pub async fn list(
    store: &dyn Store,
    user_id: &str,
    page: &PageRequest,
) -> Result<Page<Progress>, StoreError> {
    PROGRESS.page(store, user_id, page).await
}

/// A user's unfinished contents, most recently watched first.
pub async fn continue_watching(
    store: &dyn Store,
    user_id: &str,
    page: &PageRequest,
) -> Result<Page<ContinueWatching>, StoreError> {
    CONTINUE_WATCHING.page(store, user_id, page).await
}

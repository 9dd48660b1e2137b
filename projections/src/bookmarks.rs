//! Bookmarks (`bookmarks` processor): the contents each user has bookmarked, most recent
//! first.
//!
//! | table | partition | rows (clustering order) | value |
//! | --- | --- | --- | --- |
//! | [`BOOKMARKS`] | user id | newest `added_at` first | [`Bookmark`] |
//! | [`BOOKMARK_KEYS`] | user id | one per content id | [`Bookmark`] (to find its entry in [`BOOKMARKS`]) |
//!
//! Adding a bookmark that exists moves it to the front (its time becomes the new event's);
//! removing an absent one changes nothing. `UserDataErased` deletes both partitions.

use serde::{Deserialize, Serialize};

use crate::model::{Page, PageRequest};
use crate::paging::desc_i64;
use crate::read_model::ReadModel;
use crate::store::{Store, StoreError};
use crate::table::Table;

/// Table of bookmarks, newest first.
pub const BOOKMARKS: Table<Bookmark> = Table::new(
    "bookmarks",
    "user id",
    "newest `added_at` first (bookmark_ck)",
);
/// Table of bookmarks by content id.
pub const BOOKMARK_KEYS: Table<Bookmark> =
    Table::new("bookmark_keys", "user id", "one per content id");
/// Every table of this read model.
pub const TABLES: &[&str] = &[BOOKMARKS.name(), BOOKMARK_KEYS.name()];
/// Name of the processor (and of its checkpoints).
pub const PROJECTION: &str = "bookmarks";
/// The declaration of this read model.
pub const MODEL: ReadModel = ReadModel {
    name: PROJECTION,
    topics: &[fleuve_kafka::topics::USER_ACTIVITY],
    tables: TABLES,
};

/// A bookmarked content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    pub content_id: String,
    /// Event time of the `BookmarkAdded`, ms since the Unix epoch.
    pub added_at_ms: i64,
    pub event_id: String,
}

/// Clustering key of a bookmark in [`BOOKMARKS`]: newest first.
pub fn bookmark_ck(added_at_ms: i64, content_id: &str) -> String {
    format!("{}{content_id}", desc_i64(added_at_ms))
}

/// A user's bookmarks, most recent first.
pub async fn list(
    store: &dyn Store,
    user_id: &str,
    page: &PageRequest,
) -> Result<Page<Bookmark>, StoreError> {
    BOOKMARKS.page(store, user_id, page).await
}

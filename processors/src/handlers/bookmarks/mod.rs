//! `bookmarks`: folds `BookmarkAdded`, `BookmarkRemoved` and `UserDataErased` from
//! `user-activity` into [`fleuve_projections::bookmarks`]. Bookmarks follow log order: adding
//! one that exists moves it to the front with the new event's time; removing one that does
//! not exist changes nothing; an erasure deletes the user's partitions.

use async_trait::async_trait;
use fleuve_projections::bookmarks::{bookmark_ck, Bookmark, BOOKMARKS, BOOKMARK_KEYS};
use fleuve_projections::{stamp, Staging, Store, StoreError};
use fleuve_schemas::{BookmarkAdded, BookmarkRemoved, Event, UserDataErased};

use super::{decode, decode_each};
use crate::runtime::{Fold, Handler, Incoming};

pub(super) const NAME: &str = fleuve_projections::bookmarks::PROJECTION;

/// This processor, as [`super::by_name`] gives it.
pub(super) fn handler() -> std::sync::Arc<dyn crate::runtime::Handler> {
    std::sync::Arc::new(Bookmarks)
}

/// The `bookmarks` processor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bookmarks;

enum Item {
    Added(BookmarkAdded),
    Removed(BookmarkRemoved),
    Erased(UserDataErased),
}

#[async_trait]
impl Handler for Bookmarks {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> &'static [&'static str] {
        fleuve_projections::bookmarks::MODEL.topics
    }

    fn wants(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            BookmarkAdded::TYPE | BookmarkRemoved::TYPE | UserDataErased::TYPE
        )
    }

    async fn fold(&self, store: &dyn Store, events: &[Incoming]) -> Result<Fold, StoreError> {
        let mut fold = Fold::default();
        let items = decode_each(events, &mut fold.rejected, |event| match event.event_type {
            BookmarkAdded::TYPE => decode(event).map(Item::Added),
            BookmarkRemoved::TYPE => decode(event).map(Item::Removed),
            UserDataErased::TYPE => decode(event).map(Item::Erased),
            other => Err(format!("`{other}` is not consumed by {NAME}")),
        });
        let mut st = Staging::new(store);
        BOOKMARK_KEYS
            .prefetch(
                &mut st,
                items.iter().filter_map(|(_, _, item)| match item {
                    Item::Added(e) => Some((e.user_id.clone(), e.content_id.clone())),
                    Item::Removed(e) => Some((e.user_id.clone(), e.content_id.clone())),
                    Item::Erased(_) => None,
                }),
            )
            .await?;
        for (_, event, item) in items {
            let offset = event.offset;
            let ts = stamp(offset, 0);
            match item {
                Item::Added(e) => {
                    let old = BOOKMARK_KEYS
                        .fetch(&mut st, &e.user_id, &e.content_id)
                        .await?;
                    let row = Bookmark {
                        content_id: e.content_id,
                        added_at_ms: e.occurred_at,
                        event_id: e.event_id,
                    };
                    let new_ck = bookmark_ck(row.added_at_ms, &row.content_id);
                    if let Some(old) = old {
                        let old_ck = bookmark_ck(old.added_at_ms, &old.content_id);
                        if old_ck != new_ck {
                            BOOKMARKS.delete(&mut st, &e.user_id, &old_ck, ts);
                        }
                    }
                    BOOKMARKS.put(&mut st, &e.user_id, &new_ck, &row, ts)?;
                    BOOKMARK_KEYS.put(&mut st, &e.user_id, &row.content_id, &row, ts)?;
                }
                Item::Removed(e) => {
                    let old = BOOKMARK_KEYS
                        .fetch(&mut st, &e.user_id, &e.content_id)
                        .await?;
                    if let Some(old) = old {
                        let old_ck = bookmark_ck(old.added_at_ms, &old.content_id);
                        BOOKMARKS.delete(&mut st, &e.user_id, &old_ck, ts);
                        BOOKMARK_KEYS.delete(&mut st, &e.user_id, &e.content_id, ts);
                    }
                }
                Item::Erased(e) => {
                    BOOKMARKS.delete_partition(&mut st, &e.user_id, ts);
                    BOOKMARK_KEYS.delete_partition(&mut st, &e.user_id, ts);
                }
            }
        }
        fold.writes = st.into_writes();
        Ok(fold)
    }
}

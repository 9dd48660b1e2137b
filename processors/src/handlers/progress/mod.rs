//! `user_progress`: folds `PlaybackProgressed` and `UserDataErased` from `user-activity` into
//! [`fleuve_projections::progress`]: one row per user and content (last write wins on event
//! time, then offset) and the user's continue-watching list (unfinished items, most recent
//! first). An erasure deletes both partitions of the user.

use async_trait::async_trait;
use fleuve_projections::progress::{
    continue_watching_ck, ContinueWatching, EventVersion, Progress, CONTINUE_WATCHING, PROGRESS,
};
use fleuve_projections::{stamp, Staging, Store, StoreError};
use fleuve_schemas::{Event, PlaybackProgressed, UserDataErased};

use super::{decode, decode_each};
use crate::runtime::{Fold, Handler, Incoming};

pub(super) const NAME: &str = fleuve_projections::progress::PROJECTION;

/// This processor, as [`super::by_name`] gives it.
pub(super) fn handler() -> std::sync::Arc<dyn crate::runtime::Handler> {
    std::sync::Arc::new(UserProgress)
}

/// The `user_progress` processor.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserProgress;

enum Item {
    Progress(PlaybackProgressed),
    Erased(UserDataErased),
}

#[async_trait]
impl Handler for UserProgress {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> &'static [&'static str] {
        fleuve_projections::progress::MODEL.topics
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == PlaybackProgressed::TYPE || event_type == UserDataErased::TYPE
    }

    async fn fold(&self, store: &dyn Store, events: &[Incoming]) -> Result<Fold, StoreError> {
        let mut fold = Fold::default();
        let items = decode_each(events, &mut fold.rejected, |event| match event.event_type {
            PlaybackProgressed::TYPE => decode(event).map(Item::Progress),
            UserDataErased::TYPE => decode(event).map(Item::Erased),
            other => Err(format!("`{other}` is not consumed by {NAME}")),
        });
        let mut st = Staging::new(store);
        PROGRESS
            .prefetch(
                &mut st,
                items.iter().filter_map(|(_, _, item)| match item {
                    Item::Progress(p) => Some((p.user_id.clone(), p.content_id.clone())),
                    Item::Erased(_) => None,
                }),
            )
            .await?;
        for (_, event, item) in items {
            let offset = event.offset;
            let ts = stamp(offset, 0);
            match item {
                Item::Progress(p) => apply_progress(&mut st, p, offset, ts).await?,
                Item::Erased(e) => {
                    PROGRESS.delete_partition(&mut st, &e.user_id, ts);
                    CONTINUE_WATCHING.delete_partition(&mut st, &e.user_id, ts);
                }
            }
        }
        fold.writes = st.into_writes();
        Ok(fold)
    }
}

async fn apply_progress(
    st: &mut Staging<'_>,
    p: PlaybackProgressed,
    offset: i64,
    ts: i64,
) -> Result<(), StoreError> {
    let version = EventVersion {
        occurred_at_ms: p.occurred_at,
        offset,
    };
    let old = PROGRESS.fetch(st, &p.user_id, &p.content_id).await?;
    if old.as_ref().is_some_and(|old| old.version >= version) {
        return Ok(()); // older than what the row holds, or applied already
    }
    let row = Progress {
        user_id: p.user_id,
        content_id: p.content_id,
        position_ms: p.position_ms,
        duration_ms: p.duration_ms,
        device: p.device,
        event_id: p.event_id,
        version,
    };
    let new_ck = continue_watching_ck(version.occurred_at_ms, &row.content_id);
    if let Some(old) = old.filter(|old| !old.finished()) {
        let old_ck = continue_watching_ck(old.version.occurred_at_ms, &row.content_id);
        if old_ck != new_ck || row.finished() {
            CONTINUE_WATCHING.delete(st, &row.user_id, &old_ck, ts);
        }
    }
    PROGRESS.put(st, &row.user_id, &row.content_id, &row, ts)?;
    if !row.finished() {
        CONTINUE_WATCHING.put(st, &row.user_id, &new_ck, &ContinueWatching::from(&row), ts)?;
    }
    Ok(())
}

//! `user_progress`: folds `PlaybackProgressed` from `user-activity` into the user progress
//! projection (one row per user and content, last write wins on event time then offset).

use std::sync::Arc;

use async_trait::async_trait;
use fleuve_projections::{Checkpoint, EventVersion, Progress, ProgressBatch, Store, StoreError};
use fleuve_schemas::{Event, PlaybackProgressed};

use crate::runtime::{Handler, Incoming};

pub(super) const NAME: &str = "user_progress";

/// The `user_progress` processor.
#[derive(Debug, Clone)]
pub struct UserProgress {
    store: Arc<dyn Store>,
}

impl UserProgress {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    fn row(event: &Incoming) -> Result<Progress, String> {
        let e = PlaybackProgressed::from_avro(&event.value).map_err(|e| e.to_string())?;
        e.validate().map_err(|e| e.to_string())?;
        Ok(Progress {
            version: EventVersion {
                occurred_at_ms: e.occurred_at,
                offset: event.offset,
            },
            user_id: e.user_id,
            content_id: e.content_id,
            position_ms: e.position_ms,
            duration_ms: e.duration_ms,
            device: e.device,
            event_id: e.event_id,
        })
    }
}

#[async_trait]
impl Handler for UserProgress {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> &'static [&'static str] {
        &[fleuve_kafka::topics::USER_ACTIVITY]
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == PlaybackProgressed::TYPE
    }

    fn check(&self, event: &Incoming) -> Result<(), String> {
        Self::row(event).map(|_| ())
    }

    async fn apply(
        &self,
        events: &[Incoming],
        checkpoints: &[Checkpoint],
    ) -> Result<(), StoreError> {
        let upserts = events.iter().filter_map(|e| Self::row(e).ok()).collect();
        self.store
            .apply(ProgressBatch {
                projection: NAME.to_owned(),
                upserts,
                checkpoints: checkpoints.to_vec(),
            })
            .await
    }

    async fn checkpoint(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        Ok(self
            .store
            .checkpoint(NAME, topic, partition)
            .await?
            .map(|c| c.next_offset))
    }
}

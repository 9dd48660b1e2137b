use serde::{Deserialize, Serialize};

/// Orders two writes of the same row: event time first, then the log offset. Redelivering
/// an event yields the same version, so applying it again is a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventVersion {
    /// `occurred_at` of the event, milliseconds since the Unix epoch.
    pub occurred_at_ms: i64,
    /// Offset of the event in its partition.
    pub offset: i64,
}

/// A user's playback progress on one content: the `user_progress` projection's row.
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

/// Where a processor is in one partition: the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    /// The offset of the next event to apply (last applied + 1).
    pub next_offset: i64,
}

/// Rows and checkpoints applied together, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressBatch {
    /// Name of the projection whose checkpoints these are (for example `user_progress`).
    pub projection: String,
    /// Rows in log order; later ones win over earlier ones with a lower version.
    pub upserts: Vec<Progress>,
    pub checkpoints: Vec<Checkpoint>,
}

/// Which page of a list to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items (the caller bounds it).
    pub limit: usize,
    /// The `next_cursor` of the previous page, as the store returned it.
    pub cursor: Option<String>,
}

impl PageRequest {
    pub fn first(limit: usize) -> Self {
        Self {
            limit,
            cursor: None,
        }
    }
}

/// One page of a list, and the cursor of the next one (absent on the last page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

use serde::{Deserialize, Serialize};

/// Where a processor is in one partition: the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    /// The offset of the next event to apply (last applied + 1).
    pub next_offset: i64,
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

/// The write timestamp of a row written by the event at `offset`, `phase` telling apart
/// the writes one event may cause at different times (0 when the event is applied, 1 and 2
/// for later timer-driven changes such as a window opening then closing). Grows with the
/// offset, so a row's writes, which all come from one partition, carry growing timestamps.
pub fn stamp(offset: i64, phase: u8) -> i64 {
    offset
        .saturating_mul(4)
        .saturating_add(i64::from(phase & 3))
}

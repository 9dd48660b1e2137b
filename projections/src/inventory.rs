//! Inventory (`inventory` processor): the stock of each product, and what each order has
//! reserved of it.
//!
//! | table | partition | rows (clustering order) | value |
//! | --- | --- | --- | --- |
//! | [`STOCK`] | sku | one row, [`STOCK_CK`] | [`Stock`] |
//! | [`STOCK_RESERVATIONS`] | sku | one per order id that reserved the sku | [`Reservation`] |
//!
//! The counts are kept exactly: every event is applied once, whatever the redeliveries.
//! Each row holds the offset of the last event it applied, which tells a redelivered event
//! (at or below it) from a new one; a [`Reservation`] also holds every event it applied,
//! and a [`Stock`] the `StockReserved` it applied recently
//! ([`Stock::recent_reserved_offsets`]), so that the processor can finish an event a crash
//! left written to one of its two rows only (see the `inventory` processor). The ids of the
//! last adjustments ([`Stock::recent_adjustment_ids`]) and of every event of a reservation
//! let a producer's retry of an event (same `event_id`, later offset) change nothing.
//!
//! A reservation whose units were all released stays, with `quantity` 0, so that its
//! history keeps recognising its events.

use serde::{Deserialize, Serialize};

use crate::model::{Page, PageRequest};
use crate::read_model::ReadModel;
use crate::store::{Store, StoreError};
use crate::table::Table;

/// Table of stock counts by sku.
pub const STOCK: Table<Stock> = Table::new("stock", "sku", "one row, STOCK_CK");
/// Table of each sku's reservations, by order id.
pub const STOCK_RESERVATIONS: Table<Reservation> = Table::new(
    "stock_reservations",
    "sku",
    "one per order id that reserved the sku",
);
/// Every table of this read model.
pub const TABLES: &[&str] = &[STOCK.name(), STOCK_RESERVATIONS.name()];
/// Name of the processor (and of its checkpoints).
pub const PROJECTION: &str = "inventory";
/// The declaration of this read model.
pub const MODEL: ReadModel = ReadModel {
    name: PROJECTION,
    topics: &[fleuve_kafka::topics::INVENTORY],
    tables: TABLES,
};
/// Clustering key of the only row of a sku's partition in [`STOCK`].
pub const STOCK_CK: &str = "stock";
/// How many offsets back from its last one a [`Stock`] row remembers the `StockReserved`
/// it applied. A batch of the processor must span fewer offsets of a partition than this
/// (its default batch holds 1000 records), so that a replayed batch is covered.
pub const REPLAY_WINDOW: i64 = 10_000;
/// How many `StockAdjusted` ids a [`Stock`] row remembers, to recognise a retry.
pub const ADJUSTMENT_IDS_KEPT: usize = 32;

/// The stock of one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    pub sku: String,
    /// Units that can be sold: adjustments, minus reservations, plus releases. Never
    /// negative.
    pub available: i64,
    /// Units reserved for orders (the sum of the sku's [`Reservation`] quantities). Never
    /// negative.
    pub reserved: i64,
    /// Event time of the last event applied, ms since the Unix epoch.
    pub updated_at_ms: i64,
    /// Offset (in the sku's partition of `inventory`) of the last event applied.
    pub applied_offset: i64,
    /// Offsets of the `StockReserved` applied within [`REPLAY_WINDOW`] offsets of
    /// `applied_offset`, ascending.
    pub recent_reserved_offsets: Vec<i64>,
    /// Event ids of the last [`ADJUSTMENT_IDS_KEPT`] `StockAdjusted` applied, oldest first.
    pub recent_adjustment_ids: Vec<String>,
}

impl Stock {
    /// The stock of a sku no event has touched: nothing available, nothing reserved.
    pub fn empty(sku: &str) -> Self {
        Self {
            sku: sku.to_owned(),
            available: 0,
            reserved: 0,
            updated_at_ms: 0,
            applied_offset: -1,
            recent_reserved_offsets: Vec::new(),
            recent_adjustment_ids: Vec::new(),
        }
    }
}

/// What one order has reserved of one product, and the events that changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: String,
    /// Units currently reserved (reserved minus released); 0 once all were released.
    pub quantity: i64,
    /// Event time of the last event applied, ms since the Unix epoch.
    pub updated_at_ms: i64,
    /// Offset (in the sku's partition of `inventory`) of the last event applied.
    pub applied_offset: i64,
    /// Every event applied, oldest first.
    pub history: Vec<ReservationChange>,
}

impl Reservation {
    /// The reservation of an order that has reserved nothing.
    pub fn empty(order_id: &str) -> Self {
        Self {
            order_id: order_id.to_owned(),
            quantity: 0,
            updated_at_ms: 0,
            applied_offset: -1,
            history: Vec::new(),
        }
    }

    /// Whether the event with this id was applied to the reservation already.
    pub fn has_event(&self, event_id: &str) -> bool {
        self.history.iter().any(|c| c.event_id == event_id)
    }

    /// Whether the event at this offset was applied to the reservation.
    pub fn has_offset(&self, offset: i64) -> bool {
        self.history.iter().any(|c| c.offset == offset)
    }
}

/// One event applied to a [`Reservation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationChange {
    pub offset: i64,
    pub event_id: String,
    /// Units reserved (> 0, `StockReserved`) or released (< 0, `StockReleased`).
    pub change: i64,
    /// Event time, ms since the Unix epoch.
    pub at_ms: i64,
}

/// The stock of one sku (`None` if no event touched it).
pub async fn get(store: &dyn Store, sku: &str) -> Result<Option<Stock>, StoreError> {
    STOCK.get(store, sku, STOCK_CK).await
}

/// What one order has reserved of one sku.
pub async fn reservation(
    store: &dyn Store,
    sku: &str,
    order_id: &str,
) -> Result<Option<Reservation>, StoreError> {
    STOCK_RESERVATIONS.get(store, sku, order_id).await
}

/// The reservations of one sku, by order id (released ones included, with quantity 0).
pub async fn reservations(
    store: &dyn Store,
    sku: &str,
    page: &PageRequest,
) -> Result<Page<Reservation>, StoreError> {
    STOCK_RESERVATIONS.page(store, sku, page).await
}

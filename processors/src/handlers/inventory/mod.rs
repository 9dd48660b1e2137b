//! `inventory`: folds every event of the `inventory` topic into
//! [`fleuve_projections::inventory`]: the available and reserved units of each sku, and what
//! each order has reserved of it.
//!
//! # Rules
//!
//! | event | effect | dead-lettered when |
//! | --- | --- | --- |
//! | `StockAdjusted` | `available += delta` | `available` would become negative (a negative delta takes from the available units only, never from the reserved ones) |
//! | `StockReserved` | `available -= quantity`, `reserved += quantity`, the order's reservation `+= quantity` | fewer than `quantity` units are available |
//! | `StockReleased` | `available += quantity`, `reserved -= quantity`, the order's reservation `-= quantity` | the order has reserved none of the sku, or has fewer than `quantity` units still reserved |
//!
//! A sku no event has touched has nothing available: a reservation or a negative
//! adjustment of it is dead-lettered. An order may reserve a sku more than once: the
//! quantities add up. Each reason names the sku, the order and the counts.
//!
//! # Exact counts
//!
//! Applying a delta twice would be wrong, so each row records what it has applied: the
//! offset of its last event (`applied_offset`); a reservation, every event it applied
//! (`history`); the stock, the `StockReserved` it applied within the last
//! [`REPLAY_WINDOW`](fleuve_projections::inventory::REPLAY_WINDOW) offsets. Rows of a sku
//! are written by the events of one Kafka partition, in log order.
//!
//! * **Redelivery.** After a crash the runtime replays the batch from the store's
//!   checkpoint. The embedded store applies a batch and its checkpoint atomically, so only
//!   events that were not stored come back. ScyllaDB writes each row on its own,
//!   concurrently, then the checkpoints: a crash in between can leave any subset of the
//!   batch's rows written, each row whole (one value, written `USING TIMESTAMP` of its last
//!   event). Each row is then as of some offset, at or past the checkpoint. Replaying the
//!   batch in log order, every row an event concerns has either applied it already (the
//!   event's offset is at or below the row's `applied_offset`) or is exactly as it was
//!   before it (it missed only events the replay has just applied to it again). An
//!   adjustment concerns the stock row only, so it is applied or skipped as a whole. A
//!   reservation or release concerns two rows and can find one ahead and one behind; the
//!   row ahead tells whether it applied the event (a reservation by its history, the stock
//!   by its recent reservations: a replay reaches back one batch at most, and a batch spans
//!   fewer offsets than the window), and a release with its reservation behind is decided
//!   again on that row, which is all its rule reads, with the same outcome. The event is
//!   then applied to the row behind, or, if it was refused the first time, to neither.
//! * **Producer retries.** A producer that retries a publish with the same `event_id` may
//!   leave a second record at a later offset. A reservation keeps the ids of all its events,
//!   the stock the ids of its last
//!   [`ADJUSTMENT_IDS_KEPT`](fleuve_projections::inventory::ADJUSTMENT_IDS_KEPT)
//!   adjustments: a second record of one of those events changes nothing.
//!
//! Skipped events are not dead-lettered: a redelivered event that was refused the first time
//! was dead-lettered then. Offsets identify events within a partition only, so adding
//! partitions to the `inventory` topic (which moves skus between partitions) requires
//! rebuilding this projection.

mod rules;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use fleuve_projections::inventory::{Reservation, Stock, STOCK, STOCK_CK, STOCK_RESERVATIONS};
use fleuve_projections::{stamp, Staging, Store, StoreError};
use fleuve_schemas::{Event, StockAdjusted, StockReleased, StockReserved};

use super::{decode, decode_each};
use crate::runtime::{Fold, Handler, Incoming};
use rules::Effect;

pub(super) const NAME: &str = fleuve_projections::inventory::PROJECTION;

/// This processor, as [`super::by_name`] gives it.
pub(super) fn handler() -> std::sync::Arc<dyn crate::runtime::Handler> {
    std::sync::Arc::new(Inventory)
}

/// The `inventory` processor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inventory;

enum Item {
    Adjusted(StockAdjusted),
    Reserved(StockReserved),
    Released(StockReleased),
}

impl Item {
    fn sku(&self) -> &str {
        match self {
            Item::Adjusted(e) => &e.sku,
            Item::Reserved(e) => &e.sku,
            Item::Released(e) => &e.sku,
        }
    }

    /// The order whose reservation the event concerns.
    fn order_id(&self) -> Option<&str> {
        match self {
            Item::Adjusted(_) => None,
            Item::Reserved(e) => Some(&e.order_id),
            Item::Released(e) => Some(&e.order_id),
        }
    }

    fn event_id(&self) -> &str {
        match self {
            Item::Adjusted(e) => &e.event_id,
            Item::Reserved(e) => &e.event_id,
            Item::Released(e) => &e.event_id,
        }
    }
}

#[async_trait]
impl Handler for Inventory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> &'static [&'static str] {
        fleuve_projections::inventory::MODEL.topics
    }

    fn wants(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            StockAdjusted::TYPE | StockReserved::TYPE | StockReleased::TYPE
        )
    }

    async fn fold(&self, store: &dyn Store, events: &[Incoming]) -> Result<Fold, StoreError> {
        let mut fold = Fold::default();
        let items = decode_each(events, &mut fold.rejected, |event| match event.event_type {
            StockAdjusted::TYPE => decode(event).map(Item::Adjusted),
            StockReserved::TYPE => decode(event).map(Item::Reserved),
            StockReleased::TYPE => decode(event).map(Item::Released),
            other => Err(format!("`{other}` is not consumed by {NAME}")),
        });
        let mut st = Staging::new(store);
        STOCK
            .prefetch(
                &mut st,
                items
                    .iter()
                    .map(|(_, _, item)| (item.sku().to_owned(), STOCK_CK.to_owned())),
            )
            .await?;
        STOCK_RESERVATIONS
            .prefetch(
                &mut st,
                items.iter().filter_map(|(_, _, item)| {
                    item.order_id()
                        .map(|o| (item.sku().to_owned(), o.to_owned()))
                }),
            )
            .await?;
        for (i, event, item) in items {
            let offset = event.offset;
            let sku = item.sku().to_owned();
            let stock = STOCK
                .fetch(&mut st, &sku, STOCK_CK)
                .await?
                .unwrap_or_else(|| Stock::empty(&sku));
            let effect = match &item {
                Item::Adjusted(e) => rules::adjust(&stock, e, offset),
                Item::Reserved(e) => {
                    let r = reservation(&mut st, &sku, &e.order_id).await?;
                    rules::reserve(&stock, &r, e, offset)
                }
                Item::Released(e) => {
                    let r = reservation(&mut st, &sku, &e.order_id).await?;
                    rules::release(&stock, &r, e, offset)
                }
            };
            match effect {
                Ok(Effect::Write { stock, reservation }) => {
                    let ts = stamp(offset, 0);
                    if let Some(r) = reservation {
                        STOCK_RESERVATIONS.put(&mut st, &sku, &r.order_id, &r, ts)?;
                    }
                    if let Some(s) = stock {
                        STOCK.put(&mut st, &sku, STOCK_CK, &s, ts)?;
                    }
                }
                Ok(Effect::Skip(why)) => {
                    tracing::debug!(
                        sku = %sku,
                        offset,
                        event_id = %item.event_id(),
                        why,
                        "inventory event skipped"
                    );
                }
                Err(reason) => fold.rejected.push((i, reason)),
            }
        }
        fold.rejected.sort_by_key(|(i, _)| *i);
        fold.writes = st.into_writes();
        Ok(fold)
    }
}

/// The reservation of `order_id` on `sku`, empty if the order has none.
async fn reservation(
    st: &mut Staging<'_>,
    sku: &str,
    order_id: &str,
) -> Result<Reservation, StoreError> {
    Ok(STOCK_RESERVATIONS
        .fetch(st, sku, order_id)
        .await?
        .unwrap_or_else(|| Reservation::empty(order_id)))
}

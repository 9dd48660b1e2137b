//! `orders`: folds every event of the `orders` topic into [`fleuve_projections::orders`]:
//! each order with its status timeline, and its summary in its buyer's and its seller's
//! lists.
//!
//! # Status machine
//!
//! `OrderPlaced` creates an order in `PLACED`; every other event moves it to the status
//! it names, if the move is allowed:
//!
//! | from | allowed moves (event → status) |
//! | --- | --- |
//! | `PLACED` | `PaymentAuthorized` → `PAYMENT_AUTHORIZED`, `PaymentFailed` → `PAYMENT_FAILED`, `OrderCancelled` → `CANCELLED`; `OrderShipped` → `SHIPPED` only if the order's total is 0 (nothing to pay) |
//! | `PAYMENT_FAILED` | `PaymentAuthorized` (a later attempt succeeded), `PaymentFailed` (another attempt failed), `OrderCancelled` |
//! | `PAYMENT_AUTHORIZED` | `OrderShipped`, `OrderCancelled` |
//! | `SHIPPED` | `OrderDelivered` |
//! | `DELIVERED`, `CANCELLED` | none: final |
//!
//! An order handed to a carrier can no longer be cancelled (its units have left the
//! warehouse; a return is a `StockAdjusted` of reason `RETURNED`).
//!
//! # What is dead-lettered
//!
//! Each reason names the order, the event and the statuses involved:
//!
//! * a move the table does not allow: backwards (`order o-1 is DELIVERED; OrderShipped would
//!   move it back to SHIPPED`), out of a final status, a status repeated, a step skipped
//!   (`… OrderDelivered would move it to DELIVERED, which needs SHIPPED first`), a
//!   cancellation after shipping;
//! * an event for an order that was never placed (per-key order in Kafka means its
//!   `OrderPlaced` did not come first);
//! * a second `OrderPlaced` for an order (with another `event_id`);
//! * a `PaymentAuthorized` whose currency or amount differs from the order's: only the
//!   exact total is accepted, neither a partial nor a larger authorization;
//! * an event that breaks its own rules (see `fleuve_schemas`).
//!
//! # Redeliveries and retries
//!
//! The order row keeps the offset of the last event applied: an event at or below it is a
//! redelivery (a batch replayed after a crash) and changes nothing, without a dead letter.
//! An event whose `event_id` is already in the timeline is a producer's retry of an event
//! applied already (a second record, at a later offset): it changes nothing either.
//!
//! Each order is one row, and its list entries are rewritten from that row whenever a batch
//! holds one of its events, replays included. So whichever of a batch's writes a crash let
//! through (ScyllaDB applies each row on its own, then the checkpoint), replaying the batch
//! from the checkpoint ends with the rows of a clean run.

mod avro;
mod status;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use apache_avro::types::Value;
use async_trait::async_trait;
use fleuve_projections::orders::{
    list_ck, OrderLineRow, OrderRow, OrderStatus, ShipmentRow, ShippingAddressRow,
    TimelineEntryRow, ORDERS, ORDERS_BY_BUYER, ORDERS_BY_SELLER, ORDER_CK,
};
use fleuve_projections::{stamp, Staging, Store, StoreError};
use fleuve_schemas::{
    Event, OrderCancelled, OrderDelivered, OrderPlaced, OrderShipped, PaymentAuthorized,
    PaymentFailed,
};

use super::{decode, decode_each};
use crate::runtime::{Fold, Handler, Incoming};

pub(super) const NAME: &str = fleuve_projections::orders::PROJECTION;

/// This processor, as [`super::by_name`] gives it.
pub(super) fn handler() -> std::sync::Arc<dyn crate::runtime::Handler> {
    std::sync::Arc::new(Orders)
}

/// The `orders` processor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Orders;

enum Item {
    Placed(OrderPlaced),
    Authorized(PaymentAuthorized),
    Failed(PaymentFailed),
    Shipped(OrderShipped),
    Delivered(OrderDelivered),
    Cancelled(OrderCancelled),
}

impl Item {
    fn decode(event: &Incoming) -> Result<Self, String> {
        match event.event_type {
            OrderPlaced::TYPE => fast(event, avro::order_placed).map(Item::Placed),
            PaymentAuthorized::TYPE => fast(event, avro::payment_authorized).map(Item::Authorized),
            PaymentFailed::TYPE => fast(event, avro::payment_failed).map(Item::Failed),
            OrderShipped::TYPE => fast(event, avro::order_shipped).map(Item::Shipped),
            OrderDelivered::TYPE => fast(event, avro::order_delivered).map(Item::Delivered),
            OrderCancelled::TYPE => fast(event, avro::order_cancelled).map(Item::Cancelled),
            other => Err(format!("`{other}` is not consumed by {NAME}")),
        }
    }

    fn order_id(&self) -> &str {
        match self {
            Item::Placed(e) => &e.order_id,
            Item::Authorized(e) => &e.order_id,
            Item::Failed(e) => &e.order_id,
            Item::Shipped(e) => &e.order_id,
            Item::Delivered(e) => &e.order_id,
            Item::Cancelled(e) => &e.order_id,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Item::Placed(_) => OrderPlaced::TYPE,
            Item::Authorized(_) => PaymentAuthorized::TYPE,
            Item::Failed(_) => PaymentFailed::TYPE,
            Item::Shipped(_) => OrderShipped::TYPE,
            Item::Delivered(_) => OrderDelivered::TYPE,
            Item::Cancelled(_) => OrderCancelled::TYPE,
        }
    }

    /// The status the event moves its order to.
    fn status(&self) -> OrderStatus {
        match self {
            Item::Placed(_) => OrderStatus::Placed,
            Item::Authorized(_) => OrderStatus::PaymentAuthorized,
            Item::Failed(_) => OrderStatus::PaymentFailed,
            Item::Shipped(_) => OrderStatus::Shipped,
            Item::Delivered(_) => OrderStatus::Delivered,
            Item::Cancelled(_) => OrderStatus::Cancelled,
        }
    }

    fn occurred_at(&self) -> i64 {
        match self {
            Item::Placed(e) => e.occurred_at,
            Item::Authorized(e) => e.occurred_at,
            Item::Failed(e) => e.occurred_at,
            Item::Shipped(e) => e.occurred_at,
            Item::Delivered(e) => e.occurred_at,
            Item::Cancelled(e) => e.occurred_at,
        }
    }

    fn event_id(&self) -> &str {
        match self {
            Item::Placed(e) => &e.event_id,
            Item::Authorized(e) => &e.event_id,
            Item::Failed(e) => &e.event_id,
            Item::Shipped(e) => &e.event_id,
            Item::Delivered(e) => &e.event_id,
            Item::Cancelled(e) => &e.event_id,
        }
    }
}

/// [`decode`], read directly from the Avro value when it has the schema's shape (see
/// `avro.rs`), then checked by the event's rules as `decode` does.
fn fast<E: Event>(event: &Incoming, read: fn(&Value) -> Option<E>) -> Result<E, String> {
    match read(&event.value) {
        Some(e) => {
            e.validate()
                .map_err(|e| format!("invalid {}: {e}", E::TYPE))?;
            Ok(e)
        }
        None => decode(event),
    }
}

#[async_trait]
impl Handler for Orders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> &'static [&'static str] {
        fleuve_projections::orders::MODEL.topics
    }

    fn wants(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            OrderPlaced::TYPE
                | PaymentAuthorized::TYPE
                | PaymentFailed::TYPE
                | OrderShipped::TYPE
                | OrderDelivered::TYPE
                | OrderCancelled::TYPE
        )
    }

    async fn fold(&self, store: &dyn Store, events: &[Incoming]) -> Result<Fold, StoreError> {
        let mut fold = Fold::default();
        let items = decode_each(events, &mut fold.rejected, Item::decode);
        let mut st = Staging::with_capacity(store, 3 * items.len());
        ORDERS
            .prefetch(
                &mut st,
                items
                    .iter()
                    .map(|(_, _, item)| (item.order_id().to_owned(), ORDER_CK.to_owned())),
            )
            .await?;
        // The batch's orders, in first-seen order: their stored bytes, then each decoded
        // once (borrowing from those bytes), folded in memory and encoded once at the end.
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        let mut stored: Vec<Option<Vec<u8>>> = Vec::with_capacity(items.len());
        // The first item of each order, and the order of each item.
        let mut first: Vec<usize> = Vec::with_capacity(items.len());
        let mut at: Vec<usize> = Vec::with_capacity(items.len());
        for (k, (_, _, item)) in items.iter().enumerate() {
            let order_id = item.order_id();
            let i = match index.get(order_id) {
                Some(i) => *i,
                None => {
                    let bytes = ORDERS.fetch_bytes(&mut st, order_id, ORDER_CK).await?;
                    stored.push(bytes.map(<[u8]>::to_vec));
                    first.push(k);
                    index.insert(order_id, stored.len() - 1);
                    stored.len() - 1
                }
            };
            at.push(i);
        }
        let mut slots: Vec<Slot<'_>> = Vec::with_capacity(stored.len());
        for (bytes, &k) in stored.iter().zip(&first) {
            let order = match bytes {
                Some(b) => {
                    Some(ORDERS.decode_as::<OrderRow<'_>>(items[k].2.order_id(), ORDER_CK, b)?)
                }
                None => None,
            };
            slots.push(Slot {
                order,
                touched: false,
                changed: false,
            });
        }
        // Orders whose list entries are rewritten, in first-seen order.
        let mut touched: Vec<usize> = Vec::with_capacity(slots.len());
        for ((i, event, item), &at) in items.into_iter().zip(&at) {
            let offset = event.offset;
            let slot = &mut slots[at];
            if let Some(order) = &slot.order {
                if offset <= order.applied_offset {
                    tracing::debug!(order_id = %order.order_id, offset, "redelivered event skipped");
                    if !slot.touched {
                        slot.touched = true;
                        touched.push(at);
                    }
                    continue;
                }
                if order.has_event(item.event_id()) {
                    tracing::debug!(
                        order_id = %order.order_id,
                        offset,
                        event_id = %item.event_id(),
                        "retried event skipped: applied already"
                    );
                    continue;
                }
            }
            match apply(&mut slot.order, item, offset) {
                Ok(()) => {
                    if !slot.touched {
                        slot.touched = true;
                        touched.push(at);
                    }
                    slot.changed = true;
                }
                Err(reason) => fold.rejected.push((i, reason)),
            }
        }
        for at in touched {
            let slot = &slots[at];
            let Some(order) = &slot.order else {
                continue;
            };
            let ts = stamp(order.applied_offset, 0);
            if slot.changed {
                ORDERS.put(&mut st, &order.order_id, ORDER_CK, order, ts)?;
            }
            let ck = list_ck(order.placed_at_ms, &order.order_id);
            // One summary, encoded once, in both lists.
            let summary = ORDERS_BY_BUYER.encode(&mut st, &order.summary())?;
            ORDERS_BY_BUYER.put_encoded(&mut st, &order.buyer_id, &ck, summary.clone(), ts);
            ORDERS_BY_SELLER.put_encoded(&mut st, &order.seller_id, &ck, summary, ts);
        }
        fold.rejected.sort_by_key(|(i, _)| *i);
        fold.writes = st.into_writes();
        Ok(fold)
    }
}

/// An order as the batch folds it.
struct Slot<'a> {
    /// `None`: never placed.
    order: Option<OrderRow<'a>>,
    /// Its list entries are rewritten (an event of the batch was applied or redelivered).
    touched: bool,
    /// The order row is rewritten (an event of the batch was applied).
    changed: bool,
}

/// Moves the order by a new event (neither a redelivery nor a retry), or says why the event
/// is dead-lettered, leaving the order as it was.
fn apply(current: &mut Option<OrderRow<'_>>, item: Item, offset: i64) -> Result<(), String> {
    match current {
        None => match item {
            Item::Placed(e) => {
                *current = Some(placed(e, offset)?);
                Ok(())
            }
            item => Err(format!(
                "order {} was never placed; {} needs its OrderPlaced first",
                item.order_id(),
                item.type_name()
            )),
        },
        Some(order) => match item {
            Item::Placed(_) => Err(format!(
                "order {} was already placed (event {}) and is {}; a second OrderPlaced is not \
                 applied",
                order.order_id,
                order.timeline.first().map_or("?", |t| &*t.event_id),
                order.status
            )),
            item => advance(order, item, offset),
        },
    }
}

/// A new order, in `PLACED`.
fn placed(e: OrderPlaced, offset: i64) -> Result<OrderRow<'static>, String> {
    let total_minor = e.total_minor().ok_or_else(|| {
        format!(
            "order {}: the total of its lines overflows a 64-bit amount",
            e.order_id
        )
    })?;
    let a = e.shipping_address;
    Ok(OrderRow {
        order_id: e.order_id.into(),
        buyer_id: e.buyer_id.into(),
        seller_id: e.seller_id.into(),
        lines: e
            .lines
            .into_iter()
            .map(|l| OrderLineRow {
                sku: l.sku.into(),
                quantity: l.quantity,
                unit_price_minor: l.unit_price_minor,
            })
            .collect(),
        currency: e.currency.into(),
        total_minor,
        shipping_address: ShippingAddressRow {
            name: a.name.into(),
            line1: a.line1.into(),
            line2: a.line2.map(Into::into),
            postal_code: a.postal_code.into(),
            city: a.city.into(),
            country: a.country.into(),
        },
        status: OrderStatus::Placed,
        placed_at_ms: e.occurred_at,
        updated_at_ms: e.occurred_at,
        payment_ref: None,
        shipment: None,
        timeline: vec![TimelineEntryRow {
            status: OrderStatus::Placed,
            at_ms: e.occurred_at,
            event_id: e.event_id.into(),
            detail: None,
        }],
        applied_offset: offset,
    })
}

/// Moves the order by a status event, if the status machine and the payment rule allow it;
/// every check comes before the first change, so a rejected event leaves the order as it was.
fn advance(order: &mut OrderRow<'_>, item: Item, offset: i64) -> Result<(), String> {
    let from = order.status;
    let to = item.status();
    status::check(from, to, order.total_minor == 0)
        .map_err(|r| status::reason(r, &order.order_id, item.type_name(), from, to))?;
    let at_ms = item.occurred_at();
    let (event_id, detail) = match item {
        Item::Placed(e) => (e.event_id, None),
        Item::Delivered(e) => (e.event_id, None),
        Item::Authorized(e) => {
            if e.currency != order.currency || e.amount_minor != order.total_minor {
                return Err(format!(
                    "order {} totals {} {} (minor units); PaymentAuthorized authorizes {} {}",
                    order.order_id, order.total_minor, order.currency, e.amount_minor, e.currency
                ));
            }
            order.payment_ref = Some(e.payment_ref.clone().into());
            (e.event_id, Some(e.payment_ref))
        }
        Item::Failed(e) => (e.event_id, Some(e.reason)),
        Item::Shipped(e) => {
            let detail = match &e.tracking_number {
                Some(t) => format!("{} {t}", e.carrier),
                None => e.carrier.clone(),
            };
            order.shipment = Some(ShipmentRow {
                carrier: e.carrier.into(),
                tracking_number: e.tracking_number.map(Into::into),
            });
            (e.event_id, Some(detail))
        }
        Item::Cancelled(e) => (e.event_id, Some(e.reason)),
    };
    order.status = to;
    order.updated_at_ms = at_ms;
    order.applied_offset = offset;
    order.timeline.push(TimelineEntryRow {
        status: to,
        at_ms,
        event_id: event_id.into(),
        detail: detail.map(Into::into),
    });
    Ok(())
}

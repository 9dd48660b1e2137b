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

mod status;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use fleuve_projections::orders::{
    list_ck, Order, OrderLine, OrderStatus, Shipment, ShippingAddress, TimelineEntry, ORDERS,
    ORDERS_BY_BUYER, ORDERS_BY_SELLER, ORDER_CK,
};
use fleuve_projections::{stamp, Staging, Store, StoreError};
use fleuve_schemas::{
    Event, OrderCancelled, OrderDelivered, OrderPlaced, OrderShipped, PaymentAuthorized,
    PaymentFailed,
};

use super::{decode, decode_each};
use crate::runtime::{Fold, Handler, Incoming};

pub(super) const NAME: &str = fleuve_projections::orders::PROJECTION;

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
            OrderPlaced::TYPE => decode(event).map(Item::Placed),
            PaymentAuthorized::TYPE => decode(event).map(Item::Authorized),
            PaymentFailed::TYPE => decode(event).map(Item::Failed),
            OrderShipped::TYPE => decode(event).map(Item::Shipped),
            OrderDelivered::TYPE => decode(event).map(Item::Delivered),
            OrderCancelled::TYPE => decode(event).map(Item::Cancelled),
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

#[async_trait]
impl Handler for Orders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topics(&self) -> &'static [&'static str] {
        &[fleuve_kafka::topics::ORDERS]
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
        let mut st = Staging::new(store);
        st.prefetch(
            ORDERS,
            items
                .iter()
                .map(|(_, _, item)| (item.order_id().to_owned(), ORDER_CK.to_owned())),
        )
        .await?;
        // Each order is decoded once per batch, folded in memory and encoded once at the end.
        let mut orders: HashMap<String, Option<Order>> = HashMap::new();
        // Orders whose list entries are rewritten, in first-seen order, and those changed.
        let mut touched: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut changed: HashSet<String> = HashSet::new();
        for (i, event, item) in items {
            let offset = event.offset;
            let order_id = item.order_id().to_owned();
            if !orders.contains_key(&order_id) {
                let stored: Option<Order> = st.get_json(ORDERS, &order_id, ORDER_CK).await?;
                orders.insert(order_id.clone(), stored);
            }
            let current = orders.get(&order_id).cloned().flatten();
            if let Some(order) = &current {
                if offset <= order.applied_offset {
                    tracing::debug!(order_id = %order_id, offset, "redelivered event skipped");
                    if seen.insert(order_id.clone()) {
                        touched.push(order_id);
                    }
                    continue;
                }
                if order.has_event(item.event_id()) {
                    tracing::debug!(
                        order_id = %order_id,
                        offset,
                        event_id = %item.event_id(),
                        "retried event skipped: applied already"
                    );
                    continue;
                }
            }
            match apply(current, item, offset) {
                Ok(order) => {
                    orders.insert(order_id.clone(), Some(order));
                    if seen.insert(order_id.clone()) {
                        touched.push(order_id.clone());
                    }
                    changed.insert(order_id);
                }
                Err(reason) => fold.rejected.push((i, reason)),
            }
        }
        for order_id in touched {
            let Some(Some(order)) = orders.get(&order_id) else {
                continue;
            };
            let ts = stamp(order.applied_offset, 0);
            if changed.contains(&order_id) {
                st.put_json(ORDERS, &order_id, ORDER_CK, order, ts)?;
            }
            let ck = list_ck(order.placed_at_ms, &order.order_id);
            let summary = order.summary();
            st.put_json(ORDERS_BY_BUYER, &order.buyer_id, &ck, &summary, ts)?;
            st.put_json(ORDERS_BY_SELLER, &order.seller_id, &ck, &summary, ts)?;
        }
        fold.rejected.sort_by_key(|(i, _)| *i);
        fold.writes = st.into_writes();
        Ok(fold)
    }
}

/// The order after a new event (neither a redelivery nor a retry), or why the event is
/// dead-lettered.
fn apply(current: Option<Order>, item: Item, offset: i64) -> Result<Order, String> {
    match (current, item) {
        (None, Item::Placed(e)) => placed(e, offset),
        (Some(order), Item::Placed(_)) => Err(format!(
            "order {} was already placed (event {}) and is {}; a second OrderPlaced is not \
             applied",
            order.order_id,
            order.timeline.first().map_or("?", |t| t.event_id.as_str()),
            order.status
        )),
        (None, item) => Err(format!(
            "order {} was never placed; {} needs its OrderPlaced first",
            item.order_id(),
            item.type_name()
        )),
        (Some(order), item) => advance(order, &item, offset),
    }
}

/// A new order, in `PLACED`.
fn placed(e: OrderPlaced, offset: i64) -> Result<Order, String> {
    let total_minor = e.total_minor().ok_or_else(|| {
        format!(
            "order {}: the total of its lines overflows a 64-bit amount",
            e.order_id
        )
    })?;
    let a = e.shipping_address;
    Ok(Order {
        order_id: e.order_id,
        buyer_id: e.buyer_id,
        seller_id: e.seller_id,
        lines: e
            .lines
            .into_iter()
            .map(|l| OrderLine {
                sku: l.sku,
                quantity: l.quantity,
                unit_price_minor: l.unit_price_minor,
            })
            .collect(),
        currency: e.currency,
        total_minor,
        shipping_address: ShippingAddress {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            postal_code: a.postal_code,
            city: a.city,
            country: a.country,
        },
        status: OrderStatus::Placed,
        placed_at_ms: e.occurred_at,
        updated_at_ms: e.occurred_at,
        payment_ref: None,
        shipment: None,
        timeline: vec![TimelineEntry {
            status: OrderStatus::Placed,
            at_ms: e.occurred_at,
            event_id: e.event_id,
            detail: None,
        }],
        applied_offset: offset,
    })
}

/// The order moved by a status event, if the status machine and the payment rule allow it.
fn advance(mut order: Order, item: &Item, offset: i64) -> Result<Order, String> {
    let from = order.status;
    let to = item.status();
    status::check(from, to, order.total_minor == 0)
        .map_err(|r| status::reason(r, &order.order_id, item.type_name(), from, to))?;
    let detail = match item {
        Item::Placed(_) | Item::Delivered(_) => None,
        Item::Authorized(e) => {
            if e.currency != order.currency || e.amount_minor != order.total_minor {
                return Err(format!(
                    "order {} totals {} {} (minor units); PaymentAuthorized authorizes {} {}",
                    order.order_id, order.total_minor, order.currency, e.amount_minor, e.currency
                ));
            }
            order.payment_ref = Some(e.payment_ref.clone());
            Some(e.payment_ref.clone())
        }
        Item::Failed(e) => Some(e.reason.clone()),
        Item::Shipped(e) => {
            order.shipment = Some(Shipment {
                carrier: e.carrier.clone(),
                tracking_number: e.tracking_number.clone(),
            });
            Some(match &e.tracking_number {
                Some(t) => format!("{} {t}", e.carrier),
                None => e.carrier.clone(),
            })
        }
        Item::Cancelled(e) => Some(e.reason.clone()),
    };
    let at_ms = item.occurred_at();
    order.status = to;
    order.updated_at_ms = at_ms;
    order.applied_offset = offset;
    order.timeline.push(TimelineEntry {
        status: to,
        at_ms,
        event_id: item.event_id().to_owned(),
        detail,
    });
    Ok(order)
}

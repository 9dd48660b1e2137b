//! Orders (`orders` processor): each order with its status timeline, and the orders of each
//! buyer and of each seller, most recently placed first.
//!
//! | table | partition | rows (clustering order) | value |
//! | --- | --- | --- | --- |
//! | [`ORDERS`] | order id | one row, [`ORDER_CK`] | [`Order`] |
//! | [`ORDERS_BY_BUYER`] | buyer id | newest `placed_at` first, then order id ([`list_ck`]) | [`OrderSummary`] |
//! | [`ORDERS_BY_SELLER`] | seller id | newest `placed_at` first, then order id ([`list_ck`]) | [`OrderSummary`] |
//!
//! The [`Order`] row is the state the processor folds events into: it holds the last offset
//! it applied ([`Order::applied_offset`]), so an event redelivered after a crash changes
//! nothing, and the ids of the events it applied (its [`Order::timeline`]), so a producer's
//! retry of an event (same `event_id`, later offset) changes nothing either. The summaries
//! in the buyer's and seller's lists are copies of the order row, rewritten from it whenever
//! the order's events are folded: a summary whose write was lost in a crash is repaired by
//! the replay. An order never leaves the lists, and keeps its place there (its placement
//! time).
//!
//! The statuses an order goes through, and the events that move it, are those of the
//! `orders` processor (see its documentation): [`OrderStatus`].

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Page, PageRequest};
use crate::paging::desc_i64;
use crate::read_model::ReadModel;
use crate::store::{Store, StoreError};
use crate::table::{RowOf, Table};

/// Table of orders by id (the processor reads and writes them as [`OrderRow`]s).
pub const ORDERS: Table<Order> = Table::new("orders", "order id", "one row, ORDER_CK");
/// Table of each buyer's orders, newest first.
pub const ORDERS_BY_BUYER: Table<OrderSummary> = Table::new(
    "orders_by_buyer",
    "buyer id",
    "newest `placed_at` first, then order id (list_ck)",
);
/// Table of each seller's orders, newest first.
pub const ORDERS_BY_SELLER: Table<OrderSummary> = Table::new(
    "orders_by_seller",
    "seller id",
    "newest `placed_at` first, then order id (list_ck)",
);
/// Every table of this read model.
pub const TABLES: &[&str] = &[
    ORDERS.name(),
    ORDERS_BY_BUYER.name(),
    ORDERS_BY_SELLER.name(),
];
/// Name of the processor (and of its checkpoints).
pub const PROJECTION: &str = "orders";
/// The declaration of this read model.
pub const MODEL: ReadModel = ReadModel {
    name: PROJECTION,
    topics: &[fleuve_kafka::topics::ORDERS],
    tables: TABLES,
};
/// Clustering key of the only row of an order's partition in [`ORDERS`].
pub const ORDER_CK: &str = "order";

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Placed by the buyer (`OrderPlaced`), not paid yet.
    Placed,
    /// Its payment was authorized (`PaymentAuthorized`).
    PaymentAuthorized,
    /// Its last payment attempt failed (`PaymentFailed`); another may succeed.
    PaymentFailed,
    /// Handed to a carrier (`OrderShipped`).
    Shipped,
    /// Delivered to the buyer (`OrderDelivered`). Final.
    Delivered,
    /// Cancelled before it shipped (`OrderCancelled`). Final.
    Cancelled,
}

impl OrderStatus {
    /// Every status, in the order of an order's life (cancellation last).
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Placed,
        OrderStatus::PaymentFailed,
        OrderStatus::PaymentAuthorized,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    /// The name fronts see (`PAYMENT_AUTHORIZED`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "PLACED",
            OrderStatus::PaymentAuthorized => "PAYMENT_AUTHORIZED",
            OrderStatus::PaymentFailed => "PAYMENT_FAILED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether no event can move an order out of this status.
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Delivered | OrderStatus::Cancelled)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One product of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i32,
    /// Price of one unit in minor units of the order's currency.
    pub unit_price_minor: i64,
}

/// Where an order is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
}

/// The carrier of a shipped order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_number: Option<String>,
}

/// One step of an order's life: the status an event moved it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub status: OrderStatus,
    /// Event time, ms since the Unix epoch.
    pub at_ms: i64,
    /// Id of the event that made the step.
    pub event_id: String,
    /// What the event says about the step: the payment reference (`PAYMENT_AUTHORIZED`),
    /// the failure or cancellation reason (`PAYMENT_FAILED`, `CANCELLED`), the carrier and
    /// tracking number (`SHIPPED`); `None` for `PLACED` and `DELIVERED`.
    pub detail: Option<String>,
}

/// An order, as its events made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub buyer_id: String,
    pub seller_id: String,
    pub lines: Vec<OrderLine>,
    /// ISO 4217 code of every amount of the order.
    pub currency: String,
    /// Sum of `quantity × unit_price_minor` over the lines, in minor units.
    pub total_minor: i64,
    pub shipping_address: ShippingAddress,
    /// The current status: that of the last [`TimelineEntry`].
    pub status: OrderStatus,
    /// Event time of the `OrderPlaced`, ms since the Unix epoch.
    pub placed_at_ms: i64,
    /// Event time of the last event applied, ms since the Unix epoch.
    pub updated_at_ms: i64,
    /// Reference of the authorized payment at the payment provider.
    pub payment_ref: Option<String>,
    /// Set once the order has shipped.
    pub shipment: Option<Shipment>,
    /// Every step, oldest first (log order), starting with `PLACED`.
    pub timeline: Vec<TimelineEntry>,
    /// Offset (in the order's partition of `orders`) of the last event applied.
    pub applied_offset: i64,
}

impl Order {
    /// Whether the event with this id was applied to the order already.
    pub fn has_event(&self, event_id: &str) -> bool {
        self.timeline.iter().any(|t| t.event_id == event_id)
    }

    /// The order's entry in its buyer's and seller's lists.
    pub fn summary(&self) -> OrderSummary {
        OrderSummary {
            order_id: self.order_id.clone(),
            buyer_id: self.buyer_id.clone(),
            seller_id: self.seller_id.clone(),
            status: self.status,
            currency: self.currency.clone(),
            total_minor: self.total_minor,
            item_count: self.lines.iter().map(|l| i64::from(l.quantity)).sum(),
            placed_at_ms: self.placed_at_ms,
            updated_at_ms: self.updated_at_ms,
        }
    }
}

/// An order in its buyer's or seller's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: String,
    pub buyer_id: String,
    pub seller_id: String,
    pub status: OrderStatus,
    pub currency: String,
    pub total_minor: i64,
    /// Units ordered, over every line.
    pub item_count: i64,
    /// Event time of the `OrderPlaced`, ms since the Unix epoch.
    pub placed_at_ms: i64,
    /// Event time of the last event applied, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

/// An [`Order`] row as the `orders` processor folds it: the same fields in the same order
/// (so the same JSON), its text borrowed from the stored bytes where it can be instead of
/// copied into new strings (decoding, then dropping, every order of a batch was a large
/// share of the processor's time). Read models and fronts use [`Order`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow<'a> {
    #[serde(borrow)]
    pub order_id: Cow<'a, str>,
    #[serde(borrow)]
    pub buyer_id: Cow<'a, str>,
    #[serde(borrow)]
    pub seller_id: Cow<'a, str>,
    #[serde(borrow)]
    pub lines: Vec<OrderLineRow<'a>>,
    #[serde(borrow)]
    pub currency: Cow<'a, str>,
    pub total_minor: i64,
    #[serde(borrow)]
    pub shipping_address: ShippingAddressRow<'a>,
    pub status: OrderStatus,
    pub placed_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(borrow)]
    pub payment_ref: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub shipment: Option<ShipmentRow<'a>>,
    #[serde(borrow)]
    pub timeline: Vec<TimelineEntryRow<'a>>,
    pub applied_offset: i64,
}

/// [`OrderLine`] of an [`OrderRow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineRow<'a> {
    #[serde(borrow)]
    pub sku: Cow<'a, str>,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// [`ShippingAddress`] of an [`OrderRow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddressRow<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub line1: Cow<'a, str>,
    #[serde(borrow)]
    pub line2: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub postal_code: Cow<'a, str>,
    #[serde(borrow)]
    pub city: Cow<'a, str>,
    #[serde(borrow)]
    pub country: Cow<'a, str>,
}

/// [`Shipment`] of an [`OrderRow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentRow<'a> {
    #[serde(borrow)]
    pub carrier: Cow<'a, str>,
    #[serde(borrow)]
    pub tracking_number: Option<Cow<'a, str>>,
}

/// [`TimelineEntry`] of an [`OrderRow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntryRow<'a> {
    pub status: OrderStatus,
    pub at_ms: i64,
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    #[serde(borrow)]
    pub detail: Option<Cow<'a, str>>,
}

impl RowOf<Order> for OrderRow<'_> {}

impl OrderRow<'_> {
    /// [`Order::has_event`].
    pub fn has_event(&self, event_id: &str) -> bool {
        self.timeline.iter().any(|t| t.event_id == event_id)
    }

    /// [`Order::summary`], borrowed: it encodes as the [`OrderSummary`].
    pub fn summary(&self) -> impl Serialize + RowOf<OrderSummary> + '_ {
        OrderSummaryRow {
            order_id: &self.order_id,
            buyer_id: &self.buyer_id,
            seller_id: &self.seller_id,
            status: self.status,
            currency: &self.currency,
            total_minor: self.total_minor,
            item_count: self.lines.iter().map(|l| i64::from(l.quantity)).sum(),
            placed_at_ms: self.placed_at_ms,
            updated_at_ms: self.updated_at_ms,
        }
    }
}

/// [`OrderSummary`] borrowed from an [`OrderRow`]: the same fields in the same order.
#[derive(Serialize)]
struct OrderSummaryRow<'a> {
    order_id: &'a str,
    buyer_id: &'a str,
    seller_id: &'a str,
    status: OrderStatus,
    currency: &'a str,
    total_minor: i64,
    item_count: i64,
    placed_at_ms: i64,
    updated_at_ms: i64,
}

impl RowOf<OrderSummary> for OrderSummaryRow<'_> {}

/// Clustering key of an order in [`ORDERS_BY_BUYER`] and [`ORDERS_BY_SELLER`]: newest
/// first, orders placed at the same millisecond by id.
pub fn list_ck(placed_at_ms: i64, order_id: &str) -> String {
    format!("{}{order_id}", desc_i64(placed_at_ms))
}

/// One order.
pub async fn get(store: &dyn Store, order_id: &str) -> Result<Option<Order>, StoreError> {
    ORDERS.get(store, order_id, ORDER_CK).await
}

/// A buyer's orders, most recently placed first.
pub async fn list_by_buyer(
    store: &dyn Store,
    buyer_id: &str,
    page: &PageRequest,
) -> Result<Page<OrderSummary>, StoreError> {
    ORDERS_BY_BUYER.page(store, buyer_id, page).await
}

/// A seller's orders, most recently placed first.
pub async fn list_by_seller(
    store: &dyn Store,
    seller_id: &str,
    page: &PageRequest,
) -> Result<Page<OrderSummary>, StoreError> {
    ORDERS_BY_SELLER.page(store, seller_id, page).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_as_their_names() {
        for s in OrderStatus::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(
            OrderStatus::ALL
                .iter()
                .filter(|s| s.is_final())
                .collect::<Vec<_>>(),
            [&OrderStatus::Delivered, &OrderStatus::Cancelled]
        );
    }

    fn order() -> Order {
        Order {
            order_id: "o-1".to_owned(),
            buyer_id: "b-\"1\"".to_owned(),
            seller_id: "s-1".to_owned(),
            lines: vec![
                OrderLine {
                    sku: "sku-1".to_owned(),
                    quantity: 2,
                    unit_price_minor: 500,
                },
                OrderLine {
                    sku: "sku-2".to_owned(),
                    quantity: 1,
                    unit_price_minor: 1_999,
                },
            ],
            currency: "EUR".to_owned(),
            total_minor: 2_999,
            shipping_address: ShippingAddress {
                name: "Camille Martin".to_owned(),
                line1: "12 rue de la République".to_owned(),
                line2: Some("bât. B\n".to_owned()),
                postal_code: "13001".to_owned(),
                city: "Marseille".to_owned(),
                country: "FR".to_owned(),
            },
            status: OrderStatus::Shipped,
            placed_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_000_300,
            payment_ref: Some("pay-1".to_owned()),
            shipment: Some(Shipment {
                carrier: "colissimo".to_owned(),
                tracking_number: None,
            }),
            timeline: vec![
                TimelineEntry {
                    status: OrderStatus::Placed,
                    at_ms: 1_700_000_000_000,
                    event_id: "e-1".to_owned(),
                    detail: None,
                },
                TimelineEntry {
                    status: OrderStatus::Shipped,
                    at_ms: 1_700_000_000_300,
                    event_id: "e-2".to_owned(),
                    detail: Some("colissimo".to_owned()),
                },
            ],
            applied_offset: 9,
        }
    }

    #[test]
    fn order_rows_read_and_write_orders_as_they_are() {
        let order = order();
        let bytes = serde_json::to_vec(&order).unwrap();
        let row: OrderRow<'_> = serde_json::from_slice(&bytes).unwrap();
        assert!(matches!(row.order_id, Cow::Borrowed(_)));
        assert_eq!(serde_json::to_vec(&row).unwrap(), bytes);
        assert_eq!(
            serde_json::to_vec(&row.summary()).unwrap(),
            serde_json::to_vec(&order.summary()).unwrap()
        );
        assert!(row.has_event("e-2") && !row.has_event("e-3"));
        let mut bare = order;
        bare.payment_ref = None;
        bare.shipment = None;
        bare.shipping_address.line2 = None;
        let bytes = serde_json::to_vec(&bare).unwrap();
        let row: OrderRow<'_> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::to_vec(&row).unwrap(), bytes);
    }

    #[test]
    fn lists_are_newest_first_then_by_id() {
        let older = list_ck(1_700_000_000_000, "o-2");
        let newer = list_ck(1_700_000_000_001, "o-1");
        let same_time = list_ck(1_700_000_000_001, "o-3");
        assert!(newer < older);
        assert!(newer < same_time);
    }
}

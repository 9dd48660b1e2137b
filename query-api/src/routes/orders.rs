//! Orders: `GET /v1/orders/{order_id}`, `GET /v1/buyers/{buyer_id}/orders`,
//! `GET /v1/sellers/{seller_id}/orders`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::on;
use axum::Json;
use fleuve_projections::orders::{self, Order, OrderStatus, OrderSummary};
use fleuve_service::ApiError;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;

use crate::access::Caller;
use crate::consistency::Positions;
use crate::failure::{store_error, Failure};
use crate::input::{page_request, path_error, quoted, validate_id, Params};
use crate::state::{AppState, Reading};
use crate::table::{Access, Cache, Declared, Docs, Param, Route, Shape, Tag, Verb};
use crate::views::{rfc3339_millis, string_enum, ListView, Money};

const TAG: Tag = Tag {
    name: "orders",
    description: "Orders, for their buyer and their seller.",
};

pub(super) const ROUTES: &[Route] = &[
    Route {
        method: Verb::Get,
        path: "/v1/orders/{order_id}",
        reads: &[&orders::MODEL],
        access: Access::Parties { row: "order" },
        cache: Cache::Revalidate,
        shape: Shape::One,
        params: &[Param {
            name: "order_id",
            description: "The order's id.",
        }],
        answer: SchemaGenerator::subschema_for::<OrderView>,
        docs: Docs {
            operation_id: "getOrder",
            tag: &TAG,
            summary: "One order, with its timeline",
            description: "The order as its events made it, its timeline oldest first. \
                          `shipment` is `null` until shipped.",
            data: "orders",
            snapshot: "",
        },
        handler: |m| on(m, get_order),
    },
    Route {
        method: Verb::Get,
        path: "/v1/buyers/{buyer_id}/orders",
        reads: &[&orders::MODEL],
        access: Access::User,
        cache: Cache::Revalidate,
        shape: Shape::List,
        params: &[Param {
            name: "buyer_id",
            description: "The buyer's user id (the `sub` of a `user` token).",
        }],
        answer: SchemaGenerator::subschema_for::<ListView<OrderSummaryView>>,
        docs: Docs {
            operation_id: "listBuyerOrders",
            tag: &TAG,
            summary: "A buyer's orders",
            description: "The buyer's orders, newest first. A buyer without orders has an \
                          empty list.",
            data: "orders",
            snapshot: "",
        },
        handler: |m| on(m, list_by_buyer),
    },
    Route {
        method: Verb::Get,
        path: "/v1/sellers/{seller_id}/orders",
        reads: &[&orders::MODEL],
        access: Access::Seller,
        cache: Cache::Revalidate,
        shape: Shape::List,
        params: &[Param {
            name: "seller_id",
            description: "The seller's id (the `sub` of a `seller` token).",
        }],
        answer: SchemaGenerator::subschema_for::<ListView<OrderSummaryView>>,
        docs: Docs {
            operation_id: "listSellerOrders",
            tag: &TAG,
            summary: "A seller's orders",
            description: "The seller's orders, newest first. A seller without orders has an \
                          empty list.",
            data: "orders",
            snapshot: "",
        },
        handler: |m| on(m, list_by_seller),
    },
];

/// The schema of an order status: one of the names of [`OrderStatus::as_str`].
fn status_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(OrderStatus::ALL.map(OrderStatus::as_str))
}

/// A line of an order: a product, how many, at what unit price.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "OrderLine")]
struct LineView {
    sku: String,
    /// Units ordered.
    quantity: i32,
    unit_price: Money,
}

/// Where an order is shipped.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ShippingAddress")]
struct AddressView {
    /// The recipient.
    name: String,
    line1: String,
    line2: Option<String>,
    postal_code: String,
    city: String,
    /// ISO 3166-1 alpha-2 code.
    country: String,
}

/// How an order travels, once shipped.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Shipment")]
struct ShipmentView {
    carrier: String,
    tracking_number: Option<String>,
}

/// A step of an order's life.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "OrderStep")]
struct StepView {
    /// The status the order reached at this step.
    #[schemars(schema_with = "status_schema")]
    status: &'static str,
    /// Event time of the step.
    #[schemars(extend("format" = "date-time"))]
    at: String,
    /// Id of the event of the step.
    event_id: String,
    /// What the event says about the step: the payment reference (`PAYMENT_AUTHORIZED`),
    /// the failure or cancellation reason (`PAYMENT_FAILED`, `CANCELLED`), the carrier and
    /// tracking number (`SHIPPED`); `null` for `PLACED` and `DELIVERED`.
    detail: Option<String>,
}

/// An order, with its timeline.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Order")]
pub(crate) struct OrderView {
    order_id: String,
    buyer_id: String,
    seller_id: String,
    #[schemars(schema_with = "status_schema")]
    status: &'static str,
    /// Sum of the lines.
    total: Money,
    lines: Vec<LineView>,
    shipping_address: AddressView,
    /// Reference of the authorized payment at the payment provider; `null` until a payment
    /// is authorized.
    payment_ref: Option<String>,
    /// `null` until shipped.
    shipment: Option<ShipmentView>,
    /// Event time of the `OrderPlaced`.
    #[schemars(extend("format" = "date-time"))]
    placed_at: String,
    /// Event time of the last event applied to the order.
    #[schemars(extend("format" = "date-time"))]
    updated_at: String,
    /// Every step, oldest first.
    timeline: Vec<StepView>,
}

impl TryFrom<Order> for OrderView {
    type Error = ApiError;
    fn try_from(o: Order) -> Result<Self, ApiError> {
        let money = |amount_minor| Money {
            amount_minor,
            currency: o.currency.clone(),
        };
        Ok(Self {
            total: money(o.total_minor),
            lines: o
                .lines
                .iter()
                .map(|l| LineView {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    unit_price: money(l.unit_price_minor),
                })
                .collect(),
            placed_at: rfc3339_millis(o.placed_at_ms)?,
            updated_at: rfc3339_millis(o.updated_at_ms)?,
            timeline: o
                .timeline
                .into_iter()
                .map(|t| {
                    Ok(StepView {
                        status: t.status.as_str(),
                        at: rfc3339_millis(t.at_ms)?,
                        event_id: t.event_id,
                        detail: t.detail,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
            shipping_address: AddressView {
                name: o.shipping_address.name,
                line1: o.shipping_address.line1,
                line2: o.shipping_address.line2,
                postal_code: o.shipping_address.postal_code,
                city: o.shipping_address.city,
                country: o.shipping_address.country,
            },
            shipment: o.shipment.map(|s| ShipmentView {
                carrier: s.carrier,
                tracking_number: s.tracking_number,
            }),
            payment_ref: o.payment_ref,
            status: o.status.as_str(),
            order_id: o.order_id,
            buyer_id: o.buyer_id,
            seller_id: o.seller_id,
        })
    }
}

/// An order in a buyer's or seller's list.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "OrderSummary")]
pub(crate) struct OrderSummaryView {
    order_id: String,
    buyer_id: String,
    seller_id: String,
    #[schemars(schema_with = "status_schema")]
    status: &'static str,
    /// Sum of the lines.
    total: Money,
    /// Units ordered, over every line.
    item_count: i64,
    /// Event time of the `OrderPlaced`.
    #[schemars(extend("format" = "date-time"))]
    placed_at: String,
    /// Event time of the last event applied to the order.
    #[schemars(extend("format" = "date-time"))]
    updated_at: String,
}

impl TryFrom<OrderSummary> for OrderSummaryView {
    type Error = ApiError;
    fn try_from(s: OrderSummary) -> Result<Self, ApiError> {
        Ok(Self {
            placed_at: rfc3339_millis(s.placed_at_ms)?,
            updated_at: rfc3339_millis(s.updated_at_ms)?,
            total: Money {
                amount_minor: s.total_minor,
                currency: s.currency,
            },
            status: s.status.as_str(),
            order_id: s.order_id,
            buyer_id: s.buyer_id,
            seller_id: s.seller_id,
            item_count: s.item_count,
        })
    }
}

async fn get_order(
    route: Declared,
    caller: Caller,
    reading: Reading,
    path: Result<Path<String>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<OrderView>, Failure> {
    let Path(order_id) = path.map_err(path_error)?;
    validate_id("order_id", &order_id)?;
    let what = format!("order `{}`", quoted(&order_id));
    route.allow(&caller, &order_id, &what)?;
    params.check()?;
    let pending = positions.check()?;
    if !pending.is_empty() {
        // An order's buyer and seller never change: a caller that may not read an order
        // already there is refused now, not after the wait.
        if let Some(order) = orders::get(&*reading.store, &order_id)
            .await
            .map_err(store_error)?
        {
            route.allow_parties(&caller, &order.buyer_id, &order.seller_id, &what)?;
        }
    }
    pending.wait().await?;
    let Some(order) = orders::get(&*reading.store, &order_id)
        .await
        .map_err(store_error)?
    else {
        return Err(
            ApiError::not_found("not_found", format!("no order `{}`", quoted(&order_id))).into(),
        );
    };
    route.allow_parties(&caller, &order.buyer_id, &order.seller_id, &what)?;
    Ok(Json(order.try_into()?))
}

/// Whose orders a list route reads.
#[derive(Debug, Clone, Copy)]
enum Party {
    Buyer,
    Seller,
}

/// The inputs of a list route.
type ListInputs = (
    Declared,
    Caller,
    State<AppState>,
    Reading,
    Result<Path<String>, PathRejection>,
    Params,
    Positions,
);

async fn list_by_buyer(
    route: Declared,
    caller: Caller,
    state: State<AppState>,
    reading: Reading,
    path: Result<Path<String>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<ListView<OrderSummaryView>>, Failure> {
    list_orders(
        Party::Buyer,
        (route, caller, state, reading, path, params, positions),
    )
    .await
}

async fn list_by_seller(
    route: Declared,
    caller: Caller,
    state: State<AppState>,
    reading: Reading,
    path: Result<Path<String>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<ListView<OrderSummaryView>>, Failure> {
    list_orders(
        Party::Seller,
        (route, caller, state, reading, path, params, positions),
    )
    .await
}

/// A buyer's or a seller's orders, newest first.
async fn list_orders(
    party: Party,
    (route, caller, State(state), reading, path, params, positions): ListInputs,
) -> Result<Json<ListView<OrderSummaryView>>, Failure> {
    let Path(id) = path.map_err(path_error)?;
    let (field, who) = match party {
        Party::Buyer => ("buyer_id", "buyer"),
        Party::Seller => ("seller_id", "seller"),
    };
    validate_id(field, &id)?;
    route.allow(
        &caller,
        &id,
        &format!("the orders of {who} `{}`", quoted(&id)),
    )?;
    let page = page_request(params.check()?, &state.config)?;
    positions.wait().await?;
    let rows = match party {
        Party::Buyer => orders::list_by_buyer(&*reading.store, &id, &page).await,
        Party::Seller => orders::list_by_seller(&*reading.store, &id, &page).await,
    }
    .map_err(store_error)?;
    Ok(Json(ListView::try_from_page(
        rows,
        OrderSummaryView::try_from,
    )?))
}

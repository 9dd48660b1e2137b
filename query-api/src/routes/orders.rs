//! Orders: `GET /v1/orders/{order_id}`, `GET /v1/buyers/{buyer_id}/orders`,
//! `GET /v1/sellers/{seller_id}/orders`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use fleuve_projections::orders::{self, Order, OrderStatus, OrderSummary};
use fleuve_service::ApiError;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;

use super::{
    page_request, path_error, query_params, quoted, rfc3339_millis, store_error, validate_id,
    Failure, ListView, Money, LIST_PARAMS,
};
use crate::access::{self, Caller};
use crate::consistency::Positions;
use crate::openapi::string_enum;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/buyers/{buyer_id}/orders", get(list_by_buyer))
        .route("/v1/sellers/{seller_id}/orders", get(list_by_seller))
}

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
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    positions: Positions,
) -> Result<Json<OrderView>, Failure> {
    let Path(order_id) = path.map_err(path_error)?;
    validate_id("order_id", &order_id)?;
    let what = format!("order `{}`", quoted(&order_id));
    access::any_order(&caller, &what)?;
    query_params(query, &[])?;
    let pending = positions.check()?;
    if !pending.is_empty() {
        // An order's buyer and seller never change: a caller that may not read an order
        // already there is refused now, not after the wait.
        if let Some(order) = orders::get(&*state.store, &order_id)
            .await
            .map_err(store_error)?
        {
            access::order(&caller, &order, &what)?;
        }
    }
    pending.wait(&state).await?;
    let Some(order) = orders::get(&*state.store, &order_id)
        .await
        .map_err(store_error)?
    else {
        return Err(
            ApiError::not_found("not_found", format!("no order `{}`", quoted(&order_id))).into(),
        );
    };
    access::order(&caller, &order, &what)?;
    Ok(Json(order.try_into()?))
}

/// Whose orders a list route reads.
#[derive(Debug, Clone, Copy)]
enum Party {
    Buyer,
    Seller,
}

async fn list_by_buyer(
    caller: Caller,
    state: State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    positions: Positions,
) -> Result<Json<ListView<OrderSummaryView>>, Failure> {
    list_orders(Party::Buyer, caller, state, path, query, positions).await
}

async fn list_by_seller(
    caller: Caller,
    state: State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    positions: Positions,
) -> Result<Json<ListView<OrderSummaryView>>, Failure> {
    list_orders(Party::Seller, caller, state, path, query, positions).await
}

/// A buyer's or a seller's orders, newest first.
async fn list_orders(
    party: Party,
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    positions: Positions,
) -> Result<Json<ListView<OrderSummaryView>>, Failure> {
    let Path(id) = path.map_err(path_error)?;
    let (field, who) = match party {
        Party::Buyer => ("buyer_id", "buyer"),
        Party::Seller => ("seller_id", "seller"),
    };
    validate_id(field, &id)?;
    let what = format!("the orders of {who} `{}`", quoted(&id));
    match party {
        Party::Buyer => access::user_data(&caller, &id, &what)?,
        Party::Seller => access::seller_data(&caller, &id, &what)?,
    }
    let page = page_request(query_params(query, LIST_PARAMS)?, &state.config)?;
    positions.wait(&state).await?;
    let rows = match party {
        Party::Buyer => orders::list_by_buyer(&*state.store, &id, &page).await,
        Party::Seller => orders::list_by_seller(&*state.store, &id, &page).await,
    }
    .map_err(store_error)?;
    Ok(Json(ListView::try_from_page(
        rows,
        OrderSummaryView::try_from,
    )?))
}

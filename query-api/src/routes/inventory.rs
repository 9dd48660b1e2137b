//! `GET /v1/inventory/{sku}`: the stock of one product.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::routing::on;
use axum::Json;
use fleuve_projections::inventory::{self, Stock};
use fleuve_service::ApiError;
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;

use crate::access::Caller;
use crate::consistency::Positions;
use crate::failure::{store_error, Failure};
use crate::input::{path_error, quoted, validate_id, Params};
use crate::state::Reading;
use crate::table::{Access, Cache, Declared, Docs, Param, Route, Shape, Tag, Verb};
use crate::views::rfc3339_millis;

const TAG: Tag = Tag {
    name: "inventory",
    description: "Stock levels.",
};

pub(super) const ROUTES: &[Route] = &[Route {
    method: Verb::Get,
    path: "/v1/inventory/{sku}",
    reads: &[&inventory::MODEL],
    access: Access::Accounts,
    cache: Cache::Revalidate,
    shape: Shape::One,
    params: &[Param {
        name: "sku",
        description: "The product's sku.",
    }],
    answer: SchemaGenerator::subschema_for::<StockView>,
    docs: Docs {
        operation_id: "getStock",
        tag: &TAG,
        summary: "A product's stock",
        description: "The stock of the sku. A sku no stock event has named is a 404.",
        data: "stock levels",
        snapshot: "",
    },
    handler: |m| on(m, get_stock),
}];

/// The stock of a product (sku).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Stock")]
pub(crate) struct StockView {
    sku: String,
    /// Units that can be sold now.
    available: i64,
    /// Units reserved for orders.
    reserved: i64,
    /// Event time of the last stock event.
    #[schemars(extend("format" = "date-time"))]
    updated_at: String,
}

impl TryFrom<Stock> for StockView {
    type Error = ApiError;
    fn try_from(s: Stock) -> Result<Self, ApiError> {
        Ok(Self {
            updated_at: rfc3339_millis(s.updated_at_ms)?,
            sku: s.sku,
            available: s.available,
            reserved: s.reserved,
        })
    }
}

async fn get_stock(
    route: Declared,
    caller: Caller,
    reading: Reading,
    path: Result<Path<String>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<StockView>, Failure> {
    let Path(sku) = path.map_err(path_error)?;
    validate_id("sku", &sku)?;
    route.allow(
        &caller,
        &sku,
        &format!("the stock of sku `{}`", quoted(&sku)),
    )?;
    params.check()?;
    positions.wait().await?;
    match inventory::get(&*reading.store, &sku)
        .await
        .map_err(store_error)?
    {
        Some(stock) => Ok(Json(stock.try_into()?)),
        None => Err(ApiError::not_found(
            "not_found",
            format!(
                "no stock recorded for sku `{}` (no stock event has named it)",
                quoted(&sku)
            ),
        )
        .into()),
    }
}

//! `GET /v1/inventory/{sku}`: the stock of one product.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use fleuve_projections::inventory::{self, Stock};
use fleuve_service::ApiError;
use schemars::JsonSchema;
use serde::Serialize;

use super::{path_error, query_params, quoted, rfc3339_millis, store_error, validate_id, Failure};
use crate::access::{self, Caller};
use crate::consistency::Positions;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/inventory/{sku}", get(get_stock))
}

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
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    positions: Positions,
) -> Result<Json<StockView>, Failure> {
    let Path(sku) = path.map_err(path_error)?;
    validate_id("sku", &sku)?;
    access::inventory(&caller, &format!("the stock of sku `{}`", quoted(&sku)))?;
    query_params(query, &[])?;
    positions.wait(&state).await?;
    match inventory::get(&*state.store, &sku)
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

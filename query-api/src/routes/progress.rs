//! `GET /v1/users/{user_id}/progress[/{content_id}]`: a user's playback progress.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use fleuve_projections::progress::{self, Progress};
use fleuve_service::ApiError;
use schemars::JsonSchema;
use serde::Serialize;

use super::{
    page_request, path_error, query_params, quoted, rfc3339_millis, store_error, validate_id,
    Failure, ListView, LIST_PARAMS,
};
use crate::access::{self, Caller};
use crate::consistency::Positions;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/users/{user_id}/progress/{content_id}",
            get(get_progress),
        )
        .route("/v1/users/{user_id}/progress", get(list_progress))
}

/// A user's playback progress on one content.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Progress")]
pub(crate) struct ProgressView {
    user_id: String,
    content_id: String,
    /// Playback position, in milliseconds from the start.
    position_ms: i64,
    /// Length of the content, in milliseconds.
    duration_ms: i64,
    /// The device that reported the position.
    device: String,
    /// Event time of the write that produced the row.
    #[schemars(extend("format" = "date-time"))]
    updated_at: String,
    /// Id of the event that produced the row.
    event_id: String,
}

impl TryFrom<Progress> for ProgressView {
    type Error = ApiError;
    fn try_from(p: Progress) -> Result<Self, ApiError> {
        Ok(Self {
            updated_at: rfc3339_millis(p.version.occurred_at_ms)?,
            user_id: p.user_id,
            content_id: p.content_id,
            position_ms: p.position_ms,
            duration_ms: p.duration_ms,
            device: p.device,
            event_id: p.event_id,
        })
    }
}

fn what(user_id: &str) -> String {
    format!("the progress of user `{}`", quoted(user_id))
}

async fn get_progress(
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    positions: Positions,
) -> Result<Json<ProgressView>, Failure> {
    let Path((user_id, content_id)) = path.map_err(path_error)?;
    validate_id("user_id", &user_id)?;
    validate_id("content_id", &content_id)?;
    access::user_data(&caller, &user_id, &what(&user_id))?;
    query_params(query, &[])?;
    positions.wait(&state).await?;
    match progress::get(&*state.store, &user_id, &content_id)
        .await
        .map_err(store_error)?
    {
        Some(p) => Ok(Json(p.try_into()?)),
        None => Err(ApiError::not_found(
            "not_found",
            format!(
                "no progress for user `{}` on content `{}`",
                quoted(&user_id),
                quoted(&content_id)
            ),
        )
        .into()),
    }
}

async fn list_progress(
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    positions: Positions,
) -> Result<Json<ListView<ProgressView>>, Failure> {
    let Path(user_id) = path.map_err(path_error)?;
    validate_id("user_id", &user_id)?;
    access::user_data(&caller, &user_id, &what(&user_id))?;
    let page = page_request(query_params(query, LIST_PARAMS)?, &state.config)?;
    positions.wait(&state).await?;
    let rows = progress::list(&*state.store, &user_id, &page)
        .await
        .map_err(store_error)?;
    Ok(Json(ListView::try_from_page(rows, ProgressView::try_from)?))
}

//! `GET /v1/users/{user_id}/bookmarks`: a user's bookmarks, most recent first.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use fleuve_projections::bookmarks::{self, Bookmark};
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
    Router::new().route("/v1/users/{user_id}/bookmarks", get(list_bookmarks))
}

/// A content a user bookmarked.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Bookmark")]
pub(crate) struct BookmarkView {
    content_id: String,
    /// Event time of the `BookmarkAdded` (of the last one, when added again).
    #[schemars(extend("format" = "date-time"))]
    added_at: String,
    /// Id of the `BookmarkAdded` event.
    event_id: String,
}

impl TryFrom<Bookmark> for BookmarkView {
    type Error = ApiError;
    fn try_from(b: Bookmark) -> Result<Self, ApiError> {
        Ok(Self {
            added_at: rfc3339_millis(b.added_at_ms)?,
            content_id: b.content_id,
            event_id: b.event_id,
        })
    }
}

async fn list_bookmarks(
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    positions: Positions,
) -> Result<Json<ListView<BookmarkView>>, Failure> {
    let Path(user_id) = path.map_err(path_error)?;
    validate_id("user_id", &user_id)?;
    access::user_data(
        &caller,
        &user_id,
        &format!("the bookmarks of user `{}`", quoted(&user_id)),
    )?;
    let page = page_request(query_params(query, LIST_PARAMS)?, &state.config)?;
    positions.wait(&state).await?;
    let rows = bookmarks::list(&*state.store, &user_id, &page)
        .await
        .map_err(store_error)?;
    Ok(Json(ListView::try_from_page(rows, BookmarkView::try_from)?))
}

//! `GET /v1/users/{user_id}/bookmarks`: a user's bookmarks, most recent first.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::on;
use axum::Json;
use fleuve_projections::bookmarks::{self, Bookmark};
use fleuve_service::ApiError;
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;

use super::ids::USER_ID;
use crate::access::Caller;
use crate::consistency::Positions;
use crate::failure::{store_error, Failure};
use crate::input::{page_request, path_error, quoted, validate_id, Params};
use crate::state::{AppState, Reading};
use crate::table::{Access, Cache, Declared, Docs, Route, Shape, Tag, Verb};
use crate::views::{rfc3339_millis, ListView};

const TAG: Tag = Tag {
    name: "bookmarks",
    description: "Users' bookmarks.",
};

pub(super) const ROUTES: &[Route] = &[Route {
    method: Verb::Get,
    path: "/v1/users/{user_id}/bookmarks",
    reads: &[&bookmarks::MODEL],
    access: Access::User,
    cache: Cache::Revalidate,
    shape: Shape::List,
    params: &[USER_ID],
    answer: SchemaGenerator::subschema_for::<ListView<BookmarkView>>,
    docs: Docs {
        operation_id: "listBookmarks",
        tag: &TAG,
        summary: "A user's bookmarks",
        description: "The user's bookmarks, newest first. A user without bookmarks has an \
                      empty list.",
        data: "bookmarks",
        snapshot: "",
    },
    handler: |m| on(m, list_bookmarks),
}];

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
    route: Declared,
    caller: Caller,
    State(state): State<AppState>,
    reading: Reading,
    path: Result<Path<String>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<ListView<BookmarkView>>, Failure> {
    let Path(user_id) = path.map_err(path_error)?;
    validate_id("user_id", &user_id)?;
    route.allow(
        &caller,
        &user_id,
        &format!("the bookmarks of user `{}`", quoted(&user_id)),
    )?;
    let page = page_request(params.check()?, &state.config)?;
    positions.wait().await?;
    let rows = bookmarks::list(&*reading.store, &user_id, &page)
        .await
        .map_err(store_error)?;
    Ok(Json(ListView::try_from_page(rows, BookmarkView::try_from)?))
}

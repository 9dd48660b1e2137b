//! `GET /v1/users/{user_id}/progress[/{content_id}]`: a user's playback progress.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::on;
use axum::Json;
use fleuve_projections::progress::{self, Progress};
use fleuve_service::ApiError;
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;

use super::ids::{CONTENT_ID, USER_ID};
use crate::access::Caller;
use crate::consistency::Positions;
use crate::failure::{store_error, Failure};
use crate::input::{page_request, path_error, quoted, validate_id, Params};
use crate::state::{AppState, Reading};
use crate::table::{Access, Cache, Declared, Docs, Route, Shape, Tag, Verb};
use crate::views::{rfc3339_millis, ListView};

const TAG: Tag = Tag {
    name: "progress",
    description: "Users' playback progress.",
};

pub(super) const ROUTES: &[Route] = &[
    Route {
        method: Verb::Get,
        path: "/v1/users/{user_id}/progress/{content_id}",
        reads: &[&progress::MODEL],
        access: Access::User,
        cache: Cache::Revalidate,
        shape: Shape::One,
        params: &[USER_ID, CONTENT_ID],
        answer: SchemaGenerator::subschema_for::<ProgressView>,
        docs: Docs {
            operation_id: "getProgress",
            tag: &TAG,
            summary: "A user's progress on one content",
            description: "The user's playback position on the content. `updated_at` is the \
                          event time of the write that produced the row. No progress \
                          recorded: 404.",
            data: "progress",
            snapshot: "",
        },
        handler: |m| on(m, get_progress),
    },
    Route {
        method: Verb::Get,
        path: "/v1/users/{user_id}/progress",
        reads: &[&progress::MODEL],
        access: Access::User,
        cache: Cache::Revalidate,
        shape: Shape::List,
        params: &[USER_ID],
        answer: SchemaGenerator::subschema_for::<ListView<ProgressView>>,
        docs: Docs {
            operation_id: "listProgress",
            tag: &TAG,
            summary: "A user's progress rows",
            description: "The user's progress rows, by content id. A user without rows has \
                          an empty list.",
            data: "progress",
            snapshot: "",
        },
        handler: |m| on(m, list_progress),
    },
];

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
    route: Declared,
    caller: Caller,
    reading: Reading,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<ProgressView>, Failure> {
    let Path((user_id, content_id)) = path.map_err(path_error)?;
    validate_id("user_id", &user_id)?;
    validate_id("content_id", &content_id)?;
    route.allow(&caller, &user_id, &what(&user_id))?;
    params.check()?;
    positions.wait().await?;
    match progress::get(&*reading.store, &user_id, &content_id)
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
    route: Declared,
    caller: Caller,
    State(state): State<AppState>,
    reading: Reading,
    path: Result<Path<String>, PathRejection>,
    params: Params,
    positions: Positions,
) -> Result<Json<ListView<ProgressView>>, Failure> {
    let Path(user_id) = path.map_err(path_error)?;
    validate_id("user_id", &user_id)?;
    route.allow(&caller, &user_id, &what(&user_id))?;
    let page = page_request(params.check()?, &state.config)?;
    positions.wait().await?;
    let rows = progress::list(&*reading.store, &user_id, &page)
        .await
        .map_err(store_error)?;
    Ok(Json(ListView::try_from_page(rows, ProgressView::try_from)?))
}

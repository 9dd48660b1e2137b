//! The processors' admin endpoints: builds and versions of a projection, served beside
//! `/metrics`, `/healthz` and `/readyz` on the processors' ops address ([`crate::serve`]).
//! `fleuve rebuild` drives them.
//!
//! A build runs in the process that runs the projection's processor (`fleuve run`, or the
//! `fleuve process <name>` of that projection), because the embedded store belongs to one
//! process.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | `POST` | `/admin/builds` | `{"projection","as_of_ms"?,"name"?}`: start a rebuild (or a snapshot with `as_of_ms`); 202 with the version |
//! | `GET` | `/admin/projections/{p}/versions` | routing and every version of `p` |
//! | `GET` | `/admin/projections/{p}/versions/{n}` | one version, with its build's progress when it runs here |
//! | `DELETE` | `/admin/projections/{p}/versions/{n}` | drop a retired version or a snapshot |
//!
//! These endpoints change what the query API serves: the ops port must stay inside the
//! cluster (the `k8s/` NetworkPolicies open it to Prometheus only; operators reach it with
//! `kubectl port-forward`).

use std::sync::Arc;

use crate::rebuild::{BuildRequest, BuildStatus, RebuildError, Rebuilds};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleuve_projections::versions::{
    known_projection, Routing, VersionError, VersionInfo, VersionState,
};
use fleuve_service::ApiError;
use serde::{Deserialize, Serialize};

/// Which projections this process builds (those whose processor it runs).
#[derive(Clone, Debug)]
pub struct Admin {
    pub rebuilds: Arc<Rebuilds>,
    pub local: Vec<&'static str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    projection: String,
    #[serde(default)]
    as_of_ms: Option<i64>,
    #[serde(default)]
    name: Option<String>,
}

/// A version as the admin endpoints show it.
#[derive(Debug, Serialize, Deserialize)]
pub struct VersionView {
    #[serde(flatten)]
    pub info: VersionInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildView>,
}

/// [`BuildStatus`] as sent and read back by the command.
#[derive(Debug, Serialize, Deserialize)]
pub struct BuildView {
    pub phase: String,
    pub records: u64,
    pub dead_letters: u64,
    pub remaining: i64,
    pub round: usize,
}

impl From<BuildStatus> for BuildView {
    fn from(s: BuildStatus) -> Self {
        Self {
            phase: s.phase.to_owned(),
            records: s.records,
            dead_letters: s.dead_letters,
            remaining: s.remaining,
            round: s.round,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VersionsView {
    pub projection: String,
    pub routing: Routing,
    pub versions: Vec<VersionView>,
}

/// The admin routes, to merge into the processors' ops server.
pub fn routes(admin: Admin) -> Router {
    Router::new()
        .route("/admin/builds", post(start))
        .route("/admin/projections/{projection}/versions", get(list))
        .route(
            "/admin/projections/{projection}/versions/{version}",
            get(one).delete(drop_version),
        )
        .with_state(admin)
}

fn version_error(e: VersionError) -> ApiError {
    match e {
        VersionError::UnknownProjection { .. } => {
            ApiError::not_found("unknown_projection", e.to_string())
        }
        VersionError::UnknownVersion { .. } => {
            ApiError::not_found("unknown_version", e.to_string())
        }
        VersionError::UnknownSnapshot { .. } => {
            ApiError::not_found("unknown_snapshot", e.to_string())
        }
        VersionError::InvalidName(m) => {
            ApiError::bad_request("invalid_parameter", m).with_field("name")
        }
        VersionError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        VersionError::Store(s) if s.is_transient() => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            s.to_string(),
        )
        .with_retry_after(1),
        VersionError::Store(s) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            s.to_string(),
        ),
    }
}

fn rebuild_error(e: RebuildError) -> ApiError {
    match e {
        RebuildError::Version(v) => version_error(v),
        RebuildError::Invalid(m) => ApiError::bad_request("invalid_request", m),
        RebuildError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        RebuildError::Kafka(m) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "kafka_unavailable", m)
        }
    }
}

fn local_projection(admin: &Admin, projection: &str) -> Result<&'static str, ApiError> {
    let projection = known_projection(projection).map_err(version_error)?;
    if !admin.local.contains(&projection) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "not_here",
            format!(
                "the processor of `{projection}` does not run in this process (it runs: {}); \
                 send the request to the ops address of `fleuve process {projection}`",
                admin.local.join(", ")
            ),
        ));
    }
    Ok(projection)
}

async fn start(
    State(admin): State<Admin>,
    body: Result<Json<StartBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request("invalid_body", e.body_text()).into_response(),
    };
    let projection = match local_projection(&admin, &body.projection) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match admin
        .rebuilds
        .start(BuildRequest {
            projection: projection.to_owned(),
            as_of_ms: body.as_of_ms,
            name: body.name,
        })
        .await
    {
        Ok(info) => (
            StatusCode::ACCEPTED,
            Json(VersionView { info, build: None }),
        )
            .into_response(),
        Err(e) => rebuild_error(e).into_response(),
    }
}

fn view(admin: &Admin, info: VersionInfo) -> VersionView {
    let build = admin
        .rebuilds
        .status(&info.projection, info.version)
        .filter(|_| matches!(info.state, VersionState::Building | VersionState::Switching))
        .map(BuildView::from);
    VersionView { info, build }
}

async fn list(State(admin): State<Admin>, Path(projection): Path<String>) -> Response {
    let versions = admin.rebuilds.versions();
    let projection = match known_projection(&projection) {
        Ok(p) => p,
        Err(e) => return version_error(e).into_response(),
    };
    match versions.list(projection).await {
        Ok(list) => Json(VersionsView {
            projection: projection.to_owned(),
            routing: versions
                .routing()
                .get(projection)
                .copied()
                .unwrap_or_default(),
            versions: list.into_iter().map(|i| view(&admin, i)).collect(),
        })
        .into_response(),
        Err(e) => version_error(e).into_response(),
    }
}

async fn one(
    State(admin): State<Admin>,
    Path((projection, version)): Path<(String, String)>,
) -> Response {
    let version = match parse_version(&version) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    match admin.rebuilds.versions().get(&projection, version).await {
        Ok(info) => Json(view(&admin, info)).into_response(),
        Err(e) => version_error(e).into_response(),
    }
}

async fn drop_version(
    State(admin): State<Admin>,
    Path((projection, version)): Path<(String, String)>,
) -> Response {
    let version = match parse_version(&version) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let projection = match local_projection(&admin, &projection) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match admin
        .rebuilds
        .versions()
        .drop_version(projection, version)
        .await
    {
        Ok(info) => Json(VersionView { info, build: None }).into_response(),
        Err(e) => version_error(e).into_response(),
    }
}

fn parse_version(s: &str) -> Result<u32, ApiError> {
    s.trim_start_matches('v')
        .parse::<u32>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!(
                    "version must be a number from 1 (or v1, v2…), got `{}`",
                    s.escape_debug()
                ),
            )
            .with_field("version")
        })
}

#[cfg(test)]
mod tests {
    use crate::runtime::ProcessorConfig;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use fleuve_kafka::KafkaConfig;
    use fleuve_projections::versions::Versions;
    use http_body_util::BodyExt as _;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt as _;

    use super::*;

    /// The admin routes over an embedded store, building `user_progress` only. No broker:
    /// every request here is refused before a build would read Kafka.
    async fn app() -> (Router, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = fleuve_projections::open(&format!("embedded://{}", dir.path().display()))
            .await
            .unwrap();
        let versions = Versions::open(store).await.unwrap();
        let config = ProcessorConfig::new(KafkaConfig::new("127.0.0.1:9"), "http://127.0.0.1:9");
        let rebuilds = Rebuilds::new(config, versions, CancellationToken::new());
        let admin = Admin {
            rebuilds,
            local: vec!["user_progress"],
        };
        (routes(admin), dir)
    }

    async fn call(
        app: &Router,
        method: Method,
        path: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    fn code(body: &serde_json::Value) -> &str {
        body["error"]["code"].as_str().unwrap_or("<none>")
    }

    #[tokio::test]
    async fn bad_build_requests_are_refused_with_a_reason_and_record_nothing() {
        let (app, _dir) = app().await;
        let long = "x".repeat(10_000);
        let cases: Vec<(String, u16, &str)> = vec![
            ("not json".into(), 400, "invalid_body"),
            (
                r#"{"projection":"user_progress","extra":1}"#.into(),
                400,
                "invalid_body",
            ),
            (r#"{"projection":42}"#.into(), 400, "invalid_body"),
            (
                r#"{"projection":"playlists"}"#.into(),
                404,
                "unknown_projection",
            ),
            (
                format!(r#"{{"projection":"{long}"}}"#),
                404,
                "unknown_projection",
            ),
            (
                r#"{"projection":"exports"}"#.into(),
                404,
                "unknown_projection",
            ),
            (r#"{"projection":"catalog"}"#.into(), 421, "not_here"),
            (
                r#"{"projection":"user_progress","name":"a"}"#.into(),
                400,
                "invalid_request",
            ),
            (
                r#"{"projection":"user_progress","as_of_ms":99999999999999}"#.into(),
                400,
                "invalid_request",
            ),
            (
                r#"{"projection":"user_progress","as_of_ms":-5}"#.into(),
                400,
                "invalid_request",
            ),
            (
                r#"{"projection":"user_progress","as_of_ms":1,"name":"../etc"}"#.into(),
                400,
                "invalid_parameter",
            ),
            (
                r#"{"projection":"user_progress","as_of_ms":1,"name":"A\u0000B"}"#.into(),
                400,
                "invalid_parameter",
            ),
            (
                format!(r#"{{"projection":"user_progress","as_of_ms":1,"name":"{long}"}}"#),
                400,
                "invalid_parameter",
            ),
        ];
        for (body, status, expected) in &cases {
            let (got, answer) = call(&app, Method::POST, "/admin/builds", body).await;
            assert_eq!(
                (got, code(&answer)),
                (*status, *expected),
                "{body:.80}: {answer}"
            );
            assert!(
                !answer["error"]["message"].as_str().unwrap_or("").is_empty(),
                "{body:.80}: no message"
            );
        }
        // Nothing was recorded: only the implicit version 1.
        let (status, list) = call(
            &app,
            Method::GET,
            "/admin/projections/user_progress/versions",
            "",
        )
        .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["versions"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(
            list["routing"],
            serde_json::json!({"reader": 1, "writer": 1})
        );
    }

    #[tokio::test]
    async fn bad_version_paths_are_refused_and_versions_in_use_are_kept() {
        let (app, _dir) = app().await;
        let path = |v: &str| format!("/admin/projections/user_progress/versions/{v}");
        for (v, status, expected) in [
            ("abc", 400, "invalid_parameter"),
            ("0", 400, "invalid_parameter"),
            ("-1", 400, "invalid_parameter"),
            ("99999999999", 400, "invalid_parameter"),
            ("7", 404, "unknown_version"),
        ] {
            let (got, answer) = call(&app, Method::GET, &path(v), "").await;
            assert_eq!(
                (got, code(&answer)),
                (status, expected),
                "GET {v}: {answer}"
            );
        }
        let (status, answer) = call(&app, Method::DELETE, &path("1"), "").await;
        assert_eq!((status, code(&answer)), (409, "conflict"), "{answer}");
        assert!(answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in use"));
        let (status, answer) = call(
            &app,
            Method::DELETE,
            "/admin/projections/catalog/versions/1",
            "",
        )
        .await;
        assert_eq!((status, code(&answer)), (421, "not_here"), "{answer}");
        let (status, answer) =
            call(&app, Method::GET, "/admin/projections/nope/versions", "").await;
        assert_eq!(
            (status, code(&answer)),
            (404, "unknown_projection"),
            "{answer}"
        );
        let (status, v1) = call(&app, Method::GET, &path("v1"), "").await;
        assert_eq!((status, v1["state"].as_str()), (200, Some("live")), "{v1}");
    }
}

//! The HTTP pieces every Fleuve service shares: request metrics and the request
//! content-type check.
//!
//! ```
//! use std::sync::LazyLock;
//! use axum::{middleware, routing::get, Router};
//! use fleuve_service::http::{track_requests, RequestMetrics};
//!
//! static METRICS: LazyLock<RequestMetrics> =
//!     LazyLock::new(|| RequestMetrics::register("example", "the example service"));
//!
//! let app: Router = Router::new()
//!     .route("/v1/things", get(|| async { "things" }))
//!     .layer(middleware::from_fn_with_state(METRICS.clone(), track_requests));
//! ```

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use fleuve_schemas::text::quoted;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

use crate::ApiError;

/// Route label of requests no route matched (the label set stays bounded).
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets of every service's request histogram, in seconds.
const BUCKETS: [f64; 13] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A service's request metrics, by route template (never the raw path):
///
/// * `fleuve_<component>_requests_total{route,status}`
/// * `fleuve_<component>_request_duration_seconds{route}`
/// * `fleuve_<component>_in_flight_requests`
///
/// Register them once per process (a `static` `LazyLock`), and count with
/// [`track_requests`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl RequestMetrics {
    /// Creates the metrics of `component` (such as `ingest`; `service` names it in the help
    /// texts) and registers them in the default Prometheus registry. A metric that cannot be
    /// registered (its name is taken) still counts but is not exported: that is logged as an
    /// error, not a crash.
    pub fn register(component: &str, service: &str) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                format!("fleuve_{component}_requests_total"),
                format!("HTTP requests to {service}, by route template and status code."),
            ),
            &["route", "status"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                format!("fleuve_{component}_request_duration_seconds"),
                format!("Time to answer a request to {service}, by route template."),
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        );
        let in_flight = IntGauge::new(
            format!("fleuve_{component}_in_flight_requests"),
            format!("Requests to {service} being handled now."),
        );
        let (requests, duration, in_flight) = match (requests, duration, in_flight) {
            (Ok(r), Ok(d), Ok(i)) => (r, d, i),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                unreachable!("the request metrics of `{component}` are malformed: {e}")
            }
        };
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(in_flight.clone()),
        ] {
            if let Err(e) = prometheus::register(collector) {
                tracing::error!(component, error = %e, "could not register a request metric");
            }
        }
        Self {
            requests,
            duration,
            in_flight,
        }
    }

    /// Requests answered so far on `route` with `status` (for tests).
    pub fn count(&self, route: &str, status: StatusCode) -> u64 {
        self.requests
            .with_label_values(&[route, status.as_str()])
            .get()
    }
}

/// Middleware counting, timing and gauging requests by route template; install it with
/// `axum::middleware::from_fn_with_state(metrics, track_requests)` as the router's
/// outermost layer (requests no route matched are labelled [`UNMATCHED`]).
pub async fn track_requests(
    State(metrics): State<RequestMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    metrics.in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.in_flight.dec();
    metrics
        .duration
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

/// A request body's content type that the route does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected Content-Type: {}, got `{}`", .accepted.join(" or "), quoted(.sent.as_deref().unwrap_or("(none)")))]
pub struct UnsupportedMediaType {
    /// The `Content-Type` header as sent (`None`: there was none).
    pub sent: Option<String>,
    /// Its media type, lower case, without parameters (`application/json`).
    pub essence: String,
    /// The media types the route accepts.
    pub accepted: Vec<&'static str>,
}

/// Whether a request without `Content-Type` is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A body must say its type.
    Refused,
    /// No header is taken as an accepted type (Confluent clients send none).
    Accepted,
}

/// Checks the request's `Content-Type` against the `accepted` media types (compared
/// without parameters such as `; charset=utf-8`, ignoring case).
pub fn check_content_type(
    headers: &HeaderMap,
    accepted: &[&'static str],
    missing: Missing,
) -> Result<(), UnsupportedMediaType> {
    let sent = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = sent
        .as_deref()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let ok = match &sent {
        None => missing == Missing::Accepted,
        Some(_) => accepted.iter().any(|a| a.eq_ignore_ascii_case(&essence)),
    };
    if ok {
        Ok(())
    } else {
        Err(UnsupportedMediaType {
            sent: sent.filter(|s| !s.is_empty()),
            essence,
            accepted: accepted.to_vec(),
        })
    }
}

/// [`check_content_type`] for the JSON APIs: `application/json` and nothing else.
pub fn require_json(headers: &HeaderMap) -> Result<(), UnsupportedMediaType> {
    check_content_type(headers, &["application/json"], Missing::Refused)
}

impl From<UnsupportedMediaType> for ApiError {
    /// 415 `unsupported_media_type`.
    fn from(e: UnsupportedMediaType) -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            e.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::HeaderValue;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    fn with(ct: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        h
    }

    #[test]
    fn json_with_parameters_in_any_case_is_json() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            require_json(&with(Some(ok))).unwrap();
        }
        let e = require_json(&with(Some("text/plain"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected Content-Type: application/json, got `text/plain`"
        );
        let e = ApiError::from(require_json(&with(None)).unwrap_err());
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(e.code, "unsupported_media_type");
        assert!(e.message.ends_with("got `(none)`"), "{e}");
    }

    #[test]
    fn a_missing_type_may_be_accepted() {
        let accepted = ["application/vnd.schemaregistry.v1+json", "application/json"];
        check_content_type(&with(None), &accepted, Missing::Accepted).unwrap();
        let e = check_content_type(&with(Some("text/xml; q=1")), &accepted, Missing::Accepted)
            .unwrap_err();
        assert_eq!(e.essence, "text/xml");
        assert_eq!(e.sent.as_deref(), Some("text/xml; q=1"));
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template() {
        let metrics = RequestMetrics::register("http_kit_test", "the test service");
        let app: Router = Router::new()
            .route("/things/{id}", get(|| async { "thing" }))
            .layer(axum::middleware::from_fn_with_state(
                metrics.clone(),
                track_requests,
            ));
        for path in ["/things/1", "/things/2", "/nothing"] {
            let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }
        assert_eq!(metrics.count("/things/{id}", StatusCode::OK), 2);
        assert_eq!(metrics.count(UNMATCHED, StatusCode::NOT_FOUND), 1);
        assert_eq!(metrics.in_flight.get(), 0);
    }
}

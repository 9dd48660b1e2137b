//! Request metrics, registered once in the default Prometheus registry.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

/// Route label of requests no route matched (the label set stays bounded).
const UNMATCHED: &str = "unmatched";

struct Metrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    if let Err(e) = prometheus::register(Box::new(c.clone())) {
        // Only possible if something else registered the same name: the metric then
        // counts but is not exported, which we say loudly rather than crash.
        tracing::error!(error = %e, "could not register a query API metric");
    }
    c
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| {
    let requests = IntCounterVec::new(
        Opts::new(
            "fleuve_query_requests_total",
            "Query API requests, by route template and HTTP status code.",
        ),
        &["route", "status"],
    );
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "fleuve_query_request_duration_seconds",
            "Query API request latency, by route template.",
        )
        .buckets(vec![
            0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
        &["route"],
    );
    match (requests, duration) {
        (Ok(requests), Ok(duration)) => Some(Metrics {
            requests: register(requests),
            duration: register(duration),
        }),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "invalid query API metric definition");
            None
        }
    }
});

/// Middleware counting and timing every request by its route template.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    if let Some(m) = METRICS.as_ref() {
        m.duration
            .with_label_values(&[route.as_str()])
            .observe(start.elapsed().as_secs_f64());
        m.requests
            .with_label_values(&[route.as_str(), resp.status().as_str()])
            .inc();
    }
    resp
}

//! Ingest metrics (namespace `fleuve_ingest`).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};

#[allow(clippy::expect_used)] // registering a well-formed metric once cannot fail
mod defs {
    use super::*;

    pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
        register_int_counter_vec!(
            "fleuve_ingest_requests_total",
            "HTTP requests to the ingest service, by route template and status code.",
            &["route", "status"]
        )
        .expect("metric registers")
    });
    pub static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
        register_histogram_vec!(
            "fleuve_ingest_request_duration_seconds",
            "Time to answer an ingest request, by route template.",
            &["route"]
        )
        .expect("metric registers")
    });
    pub static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
        register_int_gauge!(
            "fleuve_ingest_in_flight_requests",
            "Ingest requests being handled now."
        )
        .expect("metric registers")
    });
    pub static PRODUCE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
        register_histogram!(
            "fleuve_ingest_produce_duration_seconds",
            "Time from handing an event to the producer to the broker's acknowledgement.",
            vec![0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
        )
        .expect("metric registers")
    });
    pub static BROKER_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
        register_int_counter!(
            "fleuve_ingest_publish_errors_total",
            "Publishes that failed (broker or registry unavailable, delivery timeout)."
        )
        .expect("metric registers")
    });
}

use defs::*;

/// Middleware recording requests, latency and in-flight count.
pub(super) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    IN_FLIGHT.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    IN_FLIGHT.dec();
    REQUEST_SECONDS
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    REQUESTS
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

pub(super) fn observe_produce(elapsed: Duration, ok: bool) {
    PRODUCE_SECONDS.observe(elapsed.as_secs_f64());
    if !ok {
        BROKER_ERRORS.inc();
    }
}

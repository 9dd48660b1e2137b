//! Ingest metrics (namespace `fleuve_ingest`).

use std::sync::LazyLock;
use std::time::Duration;

use fleuve_service::http::RequestMetrics;
use prometheus::{register_histogram, register_int_counter, Histogram, IntCounter};

#[expect(
    clippy::expect_used,
    reason = "registering a well-formed metric once cannot fail"
)]
mod defs {
    use super::*;

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

/// `fleuve_ingest_requests_total{route,status}`, `fleuve_ingest_request_duration_seconds{route}`
/// and `fleuve_ingest_in_flight_requests`.
pub(super) static REQUESTS: LazyLock<RequestMetrics> =
    LazyLock::new(|| RequestMetrics::register("ingest", "the ingest service"));

pub(super) fn observe_produce(elapsed: Duration, ok: bool) {
    PRODUCE_SECONDS.observe(elapsed.as_secs_f64());
    if !ok {
        BROKER_ERRORS.inc();
    }
}

//! The registry's Prometheus metrics, registered once in the default registry.

use std::sync::LazyLock;

use fleuve_service::http::RequestMetrics;
use prometheus::IntGauge;

#[derive(Debug)]
pub(crate) struct Metrics {
    /// `fleuve_registry_requests_total{route,status}`,
    /// `fleuve_registry_request_duration_seconds{route}` and
    /// `fleuve_registry_in_flight_requests`; `route` is the route template.
    pub requests: RequestMetrics,
    /// `fleuve_registry_schemas`: distinct schemas (ids) in the folded state.
    pub schemas: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let requests = RequestMetrics::register("registry", "the schema registry");
    let schemas = IntGauge::new(
        "fleuve_registry_schemas",
        "Distinct schemas (ids) known to the schema registry.",
    )
    .unwrap_or_else(|e| unreachable!("constant metric definition is valid: {e}"));
    if let Err(e) = prometheus::register(Box::new(schemas.clone())) {
        tracing::warn!(error = %e, "could not register a registry metric");
    }
    Metrics { requests, schemas }
});

pub(crate) fn metrics() -> &'static Metrics {
    &METRICS
}

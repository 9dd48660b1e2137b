//! The registry's Prometheus metrics, registered once in the default registry.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, Opts};

#[derive(Debug)]
pub(crate) struct Metrics {
    /// `fleuve_registry_requests_total{route,status}`; `route` is the route template.
    pub requests: IntCounterVec,
    /// `fleuve_registry_schemas`: distinct schemas (ids) in the folded state.
    pub schemas: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let requests = IntCounterVec::new(
        Opts::new(
            "fleuve_registry_requests_total",
            "HTTP requests served by the schema registry, by route template and status code.",
        ),
        &["route", "status"],
    )
    .unwrap_or_else(|e| unreachable!("constant metric definition is valid: {e}"));
    let schemas = IntGauge::new(
        "fleuve_registry_schemas",
        "Distinct schemas (ids) known to the schema registry.",
    )
    .unwrap_or_else(|e| unreachable!("constant metric definition is valid: {e}"));
    for collector in [
        Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(schemas.clone()),
    ] {
        if let Err(e) = prometheus::register(collector) {
            tracing::warn!(error = %e, "could not register a registry metric");
        }
    }
    Metrics { requests, schemas }
});

pub(crate) fn metrics() -> &'static Metrics {
    &METRICS
}

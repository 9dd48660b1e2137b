//! Pieces shared by the benchmark binaries (`src/bin/`): the brokers they run against, the
//! machine description every report carries, and small statistics and output helpers.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

/// The broker a measurement runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    Tansu,
    Mock,
}

impl BrokerKind {
    /// Short name, as in `--brokers` and the reports.
    pub fn label(self) -> &'static str {
        match self {
            BrokerKind::Tansu => "tansu",
            BrokerKind::Mock => "mock",
        }
    }

    /// What it is, for the reports.
    pub fn describe(self) -> &'static str {
        match self {
            BrokerKind::Tansu => {
                "Tansu 0.6 (Kafka-protocol broker, SQLite storage, one node, local TCP, separate process)"
            }
            BrokerKind::Mock => {
                "librdkafka MockCluster (1 broker, in memory, inside the bench process)"
            }
        }
    }
}

/// The machine a report was measured on.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub loadavg_before: String,
    pub loadavg_after: String,
    pub notes: &'static str,
}

impl Machine {
    /// This machine now, with the load average taken before the run.
    pub fn measure(loadavg_before: String, notes: &'static str) -> Self {
        Self {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model: read_proc("/proc/cpuinfo", "model name"),
            mem_total: read_proc("/proc/meminfo", "MemTotal"),
            loadavg_before,
            loadavg_after: loadavg(),
            notes,
        }
    }
}

fn read_proc(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The median (NaN for no values).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A rate for a table: `12345` → `12k`.
pub fn fmt_rate(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.0}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Writes a report as pretty JSON, creating its folder.
pub fn write_json<T: Serialize>(path: &Path, report: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Serves `router` on a free local port; returns its base URL.
pub async fn serve(router: axum::Router) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{addr}"))
}

//! Pieces shared by the benchmark binaries (`src/bin/`): the brokers they run against, the
//! machine description every report carries, and small statistics and output helpers.

use std::path::Path;

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

/// A broker with topics and a schema registry, for one measurement.
pub struct Env {
    pub kind: BrokerKind,
    pub kafka: fleuve_kafka::KafkaConfig,
    /// Base URL of the registry's HTTP API.
    pub registry_url: String,
    /// What must stay alive while the environment is used (the registry, the MockCluster),
    /// dropped before the broker process.
    _guards: Vec<Box<dyn std::any::Any>>,
    /// Tansu's process (`None` on the MockCluster), for benches that watch it or stop it.
    pub tansu: Option<fleuve_e2e::Broker>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("kind", &self.kind)
            .field("registry_url", &self.registry_url)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// Starts `kind` with `topics` and a registry on it. On Tansu the topics are created with
    /// the admin API; the MockCluster does not answer CreateTopics, so there they are made
    /// through its own API (dead-letter topics included: list them).
    pub async fn start(
        kind: BrokerKind,
        topics: &[fleuve_kafka::topics::TopicSpec],
    ) -> Result<Self> {
        use rdkafka::mocking::MockCluster;
        use rdkafka::producer::DefaultProducerContext;

        let (kafka, tansu, cluster) = match kind {
            BrokerKind::Tansu => {
                let proc = fleuve_e2e::Broker::start()
                    .context("starting Tansu (`make tools` installs it)")?;
                let kafka = fleuve_kafka::KafkaConfig::new(proc.bootstrap());
                fleuve_kafka::topics::ensure_topics(&kafka, topics)
                    .await
                    .context("creating the topics on Tansu")?;
                (kafka, Some(proc), None)
            }
            BrokerKind::Mock => {
                let cluster: MockCluster<'static, DefaultProducerContext> =
                    MockCluster::new(1).context("starting the MockCluster")?;
                for t in topics {
                    cluster
                        .create_topic(&t.name, t.partitions, 1)
                        .with_context(|| format!("creating {} on the MockCluster", t.name))?;
                }
                let kafka = fleuve_kafka::KafkaConfig::new(cluster.bootstrap_servers());
                (kafka, None, Some(cluster))
            }
        };
        let registry =
            fleuve_registry::Registry::start(fleuve_registry::RegistryConfig::new(kafka.clone()))
                .await
                .with_context(|| format!("starting the registry on {}", kind.label()))?;
        let registry_url = serve(registry.router()).await?;
        let mut guards: Vec<Box<dyn std::any::Any>> = vec![Box::new(registry)];
        if let Some(cluster) = cluster {
            guards.push(Box::new(cluster));
        }
        Ok(Self {
            kind,
            kafka,
            registry_url,
            _guards: guards,
            tansu,
        })
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
pub use fleuve_schemas::clock::now_ms;

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

// ---------------------------------------------------------------------------------------
// HTTP load generator (closed loop)
// ---------------------------------------------------------------------------------------

/// What the HTTP load generator is, for the reports (add the number of connections).
pub const LOAD_GENERATOR: &str = "fleuve-bench closed-loop (hyper 1.x HTTP/1.1 keep-alive)";

/// One request the generator can send: an origin-form URI (`/path?query`) and its headers
/// (`Host` included if wanted; the generator adds nothing but `If-None-Match`, see
/// [`LoadSpec::conditional`]).
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub uri: axum::http::Uri,
    pub headers: axum::http::HeaderMap,
}

/// A closed-loop HTTP load: `connections` keep-alive HTTP/1.1 connections, each sending
/// its next `GET` when the previous answer (body included) has arrived, for `warmup` then
/// `duration`.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: std::net::SocketAddr,
    pub connections: usize,
    pub warmup: std::time::Duration,
    pub duration: std::time::Duration,
    /// Each request is one of these, picked uniformly at random (the same one if there is
    /// only one).
    pub requests: std::sync::Arc<[RequestTemplate]>,
    /// The status every answer must have; any other is an error.
    pub expect_status: axum::http::StatusCode,
    /// If set, the body every answer must have; any other is an error.
    pub expect_body: Option<bytes::Bytes>,
    /// If set, every request carries `If-None-Match`: this value at first, then the `ETag`
    /// of the previous answer on the same connection, if it had one.
    pub conditional: Option<axum::http::HeaderValue>,
    /// Seed of the random picks (each connection derives its own).
    pub seed: u64,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Latency {
    /// Nearest-rank percentiles of latencies in nanoseconds (sorts them).
    pub fn of_nanos(samples: &mut [u64]) -> Self {
        samples.sort_unstable();
        let n = samples.len();
        if n == 0 {
            return Self::default();
        }
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            samples[rank - 1] as f64 / 1e3
        };
        Self {
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: samples[n - 1] as f64 / 1e3,
            mean_us: samples.iter().map(|&s| s as f64).sum::<f64>() / n as f64 / 1e3,
        }
    }
}

/// What one load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// Answers with the expected status (and body) completed in the measured window.
    pub requests: u64,
    pub requests_per_s: f64,
    /// Every latency of those answers: send of the request to the last byte of the body.
    pub latency: Latency,
    /// Wrong status or body, or a transport error, at any time (warm-up included).
    pub errors: u64,
    /// The first of them, with the status and the beginning of the body.
    pub first_error: Option<String>,
    /// Every answer received, warm-up included, whatever its status (to divide CPU time
    /// measured over the whole run by).
    pub answers: u64,
    /// Connections (re)opened, warm-up included (`connections` when none failed).
    pub connects: u64,
    pub window_s: f64,
}

#[derive(Default)]
struct ConnOutcome {
    samples: Vec<u64>,
    answers: u64,
    errors: u64,
    first_error: Option<String>,
    connects: u64,
}

impl ConnOutcome {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

/// xorshift64*: cheap, deterministic picks.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Never zero (xorshift's fixed point); splitmix the seed so nearby seeds differ.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// Runs a closed-loop load (see [`LoadSpec`]) on the current Tokio runtime: one task per
/// connection.
pub async fn closed_loop(spec: LoadSpec) -> Result<LoadResult> {
    anyhow::ensure!(
        spec.connections > 0,
        "the load needs at least one connection"
    );
    anyhow::ensure!(
        !spec.requests.is_empty(),
        "the load needs at least one request"
    );
    let spec = std::sync::Arc::new(spec);
    let start = tokio::time::Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let tasks: Vec<_> = (0..spec.connections)
        .map(|i| {
            let spec = spec.clone();
            tokio::spawn(connection(spec, i as u64, measure_from, end))
        })
        .collect();
    let mut all = Vec::new();
    let (mut errors, mut first_error, mut connects, mut answers) = (0, None, 0, 0);
    for t in tasks {
        let o = t.await.context("a load connection task panicked")?;
        all.extend_from_slice(&o.samples);
        errors += o.errors;
        connects += o.connects;
        answers += o.answers;
        if first_error.is_none() {
            first_error = o.first_error;
        }
    }
    let window_s = spec.duration.as_secs_f64();
    Ok(LoadResult {
        requests: all.len() as u64,
        requests_per_s: all.len() as f64 / window_s,
        latency: Latency::of_nanos(&mut all),
        errors,
        first_error,
        answers,
        connects,
        window_s,
    })
}

async fn connection(
    spec: std::sync::Arc<LoadSpec>,
    index: u64,
    measure_from: tokio::time::Instant,
    end: tokio::time::Instant,
) -> ConnOutcome {
    use axum::http::{header, Request};
    use http_body_util::{BodyExt, Empty};
    use tokio::time::Instant;

    let mut out = ConnOutcome {
        samples: Vec::with_capacity(64 * 1024),
        ..ConnOutcome::default()
    };
    let mut rng = Rng::new(spec.seed ^ index.wrapping_mul(0x1000_0000_01b3));
    let mut etag = spec.conditional.clone();
    while Instant::now() < end {
        out.connects += 1;
        let stream = match tokio::net::TcpStream::connect(spec.addr).await {
            Ok(s) => s,
            Err(e) => {
                out.error(format!("connect to {}: {e}", spec.addr));
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(
                hyper_util::rt::TokioIo::new(stream),
            )
            .await
            {
                Ok(pair) => pair,
                Err(e) => {
                    out.error(format!("HTTP handshake: {e}"));
                    continue;
                }
            };
        let driver = tokio::spawn(conn);
        while Instant::now() < end {
            let t = &spec.requests[if spec.requests.len() == 1 {
                0
            } else {
                rng.below(spec.requests.len())
            }];
            let mut req = Request::new(Empty::new());
            *req.uri_mut() = t.uri.clone();
            *req.headers_mut() = t.headers.clone();
            if let Some(tag) = &etag {
                req.headers_mut().insert(header::IF_NONE_MATCH, tag.clone());
            }
            if let Err(e) = sender.ready().await {
                out.error(format!("connection closed: {e}"));
                break;
            }
            let sent = Instant::now();
            let resp = match sender.send_request(req).await {
                Ok(r) => r,
                Err(e) => {
                    out.error(format!("request failed: {e}"));
                    break;
                }
            };
            let (parts, body) = resp.into_parts();
            let body = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    out.error(format!("reading the body: {e}"));
                    break;
                }
            };
            let done = Instant::now();
            out.answers += 1;
            if etag.is_some() {
                if let Some(tag) = parts.headers.get(header::ETAG) {
                    etag = Some(tag.clone());
                }
            }
            let body_ok = spec.expect_body.as_ref().is_none_or(|b| *b == body);
            if parts.status == spec.expect_status && body_ok {
                if done >= measure_from && done < end {
                    out.samples
                        .push(u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX));
                }
            } else {
                out.error(format!(
                    "GET {}: expected {}{}, got {} with {} bytes: {}",
                    t.uri,
                    spec.expect_status,
                    if spec.expect_body.is_some() {
                        " and the expected body"
                    } else {
                        ""
                    },
                    parts.status,
                    body.len(),
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
            }
        }
        drop(sender);
        // The connection ends once its sender is gone; don't wait for a slow close.
        driver.abort();
    }
    out
}

/// One request on a fresh connection: status, headers and body (to look at a route's
/// answer before loading it).
pub async fn fetch_once(
    addr: std::net::SocketAddr,
    request: &RequestTemplate,
    extra: &[(axum::http::HeaderName, axum::http::HeaderValue)],
) -> Result<(axum::http::StatusCode, axum::http::HeaderMap, bytes::Bytes)> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await?;
    let driver = tokio::spawn(conn);
    let mut req = axum::http::Request::new(Empty::new());
    *req.uri_mut() = request.uri.clone();
    *req.headers_mut() = request.headers.clone();
    for (k, v) in extra {
        req.headers_mut().insert(k.clone(), v.clone());
    }
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    drop(sender);
    driver.abort();
    Ok((parts.status, parts.headers, body))
}

// ---------------------------------------------------------------------------------------
// CPU time by thread
// ---------------------------------------------------------------------------------------

/// Time so far of a set of threads: on a CPU, and runnable but waiting for one.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ThreadTimes {
    /// On a CPU (user + system), seconds.
    pub cpu_s: f64,
    /// Runnable, waiting for a CPU (run-queue delay), seconds; NaN where the kernel does not
    /// say (no `schedstat`).
    pub wait_s: f64,
}

impl std::ops::Sub for ThreadTimes {
    type Output = ThreadTimes;
    fn sub(self, rhs: Self) -> Self {
        Self {
            cpu_s: self.cpu_s - rhs.cpu_s,
            wait_s: self.wait_s - rhs.wait_s,
        }
    }
}

/// [`ThreadTimes`] of this process's threads whose name starts with `prefix`. From
/// `/proc/self/task/*/schedstat` (nanoseconds), else `stat` (CPU only, clock ticks of
/// 10 ms). Threads that ended are not counted: keep the threads measured alive across a
/// measurement (for a Tokio runtime's blocking pool, a long `thread_keep_alive`).
pub fn threads_times(prefix: &str) -> ThreadTimes {
    let mut total = ThreadTimes::default();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return ThreadTimes {
            cpu_s: f64::NAN,
            wait_s: f64::NAN,
        };
    };
    for task in dir.flatten() {
        let p = task.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let sched: Vec<u64> = std::fs::read_to_string(p.join("schedstat"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [run, wait, ..] = sched[..] {
            total.cpu_s += run as f64 / 1e9;
            total.wait_s += wait as f64 / 1e9;
        } else if let Ok(stat) = std::fs::read_to_string(p.join("stat")) {
            // Fields after the `(comm)`: state is the 3rd field, utime the 14th, stime the 15th.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            total.cpu_s += (ticks(11) + ticks(12)) as f64 / 100.0;
            total.wait_s = f64::NAN;
        }
    }
    total
}

/// CPU time of the whole process so far (every thread, user and system), in seconds.
pub fn process_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Called with the checkpoints of each batch once its [`Store::apply`] has returned.
pub type OnApplied = Box<dyn Fn(&[fleuve_projections::Checkpoint]) + Send + Sync>;

/// A store that delegates, noting the first checkpoint read (a processor reads the
/// checkpoints of the partitions it is assigned before it consumes them: the end of its
/// group join) and, with `on_applied`, telling when each apply has returned.
pub struct TimedStore {
    inner: std::sync::Arc<dyn fleuve_projections::Store>,
    first_checkpoint: std::sync::OnceLock<(std::time::Instant, f64)>,
    on_applied: Option<OnApplied>,
}

impl std::fmt::Debug for TimedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedStore").finish_non_exhaustive()
    }
}

impl TimedStore {
    pub fn new(
        inner: std::sync::Arc<dyn fleuve_projections::Store>,
        on_applied: Option<OnApplied>,
    ) -> Self {
        Self {
            inner,
            first_checkpoint: std::sync::OnceLock::new(),
            on_applied,
        }
    }

    /// (instant, process CPU seconds, [`process_cpu_s`]) of the first checkpoint read.
    pub fn first_checkpoint(&self) -> Option<(std::time::Instant, f64)> {
        self.first_checkpoint.get().copied()
    }
}

#[async_trait::async_trait]
impl fleuve_projections::Store for TimedStore {
    async fn apply(
        &self,
        batch: fleuve_projections::WriteBatch,
    ) -> Result<(), fleuve_projections::StoreError> {
        let Some(on_applied) = &self.on_applied else {
            return self.inner.apply(batch).await;
        };
        let checkpoints = batch.checkpoints.clone();
        self.inner.apply(batch).await?;
        on_applied(&checkpoints);
        Ok(())
    }
    async fn get(
        &self,
        table: &str,
        pk: &str,
        ck: &str,
    ) -> Result<Option<Vec<u8>>, fleuve_projections::StoreError> {
        self.inner.get(table, pk, ck).await
    }
    async fn get_many(
        &self,
        table: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<Vec<u8>>>, fleuve_projections::StoreError> {
        self.inner.get_many(table, keys).await
    }
    async fn scan(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<fleuve_projections::Row>, fleuve_projections::StoreError> {
        self.inner.scan(table, pk, after, limit).await
    }
    async fn scan_table(
        &self,
        table: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<fleuve_projections::TableRow>, fleuve_projections::StoreError> {
        self.inner.scan_table(table, after, limit).await
    }
    async fn checkpoint(
        &self,
        projection: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, fleuve_projections::StoreError> {
        self.first_checkpoint
            .get_or_init(|| (std::time::Instant::now(), process_cpu_s()));
        self.inner.checkpoint(projection, topic, partition).await
    }
    async fn checkpoints(
        &self,
        projection: &str,
    ) -> Result<Vec<fleuve_projections::Checkpoint>, fleuve_projections::StoreError> {
        self.inner.checkpoints(projection).await
    }
    async fn ping(&self) -> Result<(), fleuve_projections::StoreError> {
        self.inner.ping().await
    }
}

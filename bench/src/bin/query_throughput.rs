//! `query-throughput`: what a read of the query API costs compared with a static JSON
//! handler in the same server, under the same load generator, measured interleaved.
//!
//! ```text
//! cargo run -p fleuve-bench --release --bin query-throughput [-- OPTIONS]
//!   --scenarios cached,conditional,spread   which reads to measure (default all three)
//!   --connections N      keep-alive HTTP/1.1 connections of the load (default 32)
//!   --duration S         measured seconds per run (default 5)
//!   --warmup S           seconds of load before each measured window (default 1)
//!   --rounds R           interleaved rounds per scenario, static then read (default 5, ≥ 3)
//!   --users U            users in the store (default 10000)
//!   --rows-per-user K    progress rows per user (default 5)
//!   --server-threads T   Tokio worker threads of the server (default 1)
//!   --client-threads T   Tokio worker threads of the load generator (default 1)
//!   --out PATH           JSON results (default target/bench/query.json)
//!   --load-only static|read   profiling aid: after the set-up, one load of warm-up +
//!                        duration seconds of static or of the first scenario's read, its
//!                        figures printed, no rounds and no report (attach `perf` to it)
//! ```
//!
//! **Server**: `fleuve_query_api::router_with(store, config, extra)` over an
//! `EmbeddedStore` (fjall) in a temporary directory, seeded through `Store::apply` with
//! `users × rows-per-user` `progress` rows, authentication on (`QueryConfig::auth`, HS256),
//! served by axum on 127.0.0.1 on its own Tokio runtime (`--server-threads` workers, threads
//! named `qapi-server`, its blocking pool included). `extra` is `GET /bench/static`: the
//! body and `Content-Type` of the hot row's real answer, captured once, served as constant
//! `Bytes` behind the same middleware (it checks no token; the API route does, which is part
//! of what a real read costs).
//!
//! **Load**: [`fleuve_bench::closed_loop`] on a second Tokio runtime (`--client-threads`
//! workers, threads named `loadgen`) in the same process: N connections, each sending its
//! next request when the previous answer has arrived, every status (and, for the fixed
//! answers, every body) checked; every latency kept.
//!
//! **Scenarios**, each against the static handler, rounds interleaved static, read, static,
//! read…; the value of each side is the median of its rounds:
//!
//! 1. `cached`: `GET /v1/users/{u}/progress/{c}` of one hot row, again and again → 200 and
//!    the captured body. Target: requests/s and p99 both ≥ 0.7 of static's.
//! 2. `conditional`: the same with `If-None-Match` = the `ETag` of the previous answer → 304.
//!    Skipped (and said so) when the API sends no `ETag` or does not answer 304.
//! 3. `spread`: uniformly random (user, content) among every seeded row, each with its
//!    user's token → 200 (context: reads spread over the store).
//!
//! Besides requests/s and latencies, each run records the CPU time of the server's and the
//! generator's threads (`/proc/self/task/*/schedstat`): the server CPU per request
//! (`ratio_server_cpu`), which the machine's other load does not skew, and `contended` when
//! static's threads waited for a CPU (the read, spread over blocking-pool threads, then gets
//! more CPU slices than static's one worker and its requests/s ratio is flattered). See
//! `docs/benchmarks.md` §5.

#![expect(clippy::print_stdout, reason = "the program's output")]

/// The allocator of the `fleuve` binary, which serves the query API, so the figures are the
/// binary's (the load generator in the same process uses it too).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use fleuve_bench::{
    closed_loop, fetch_once, loadavg, median, process_cpu_s, threads_times, write_json, LoadResult,
    LoadSpec, Machine, RequestTemplate, LOAD_GENERATOR,
};
use fleuve_projections::embedded::EmbeddedStore;
use fleuve_projections::progress::{EventVersion, Progress, PROGRESS};
use fleuve_projections::{Store, Write, WriteBatch};
use fleuve_query_api::{router_with, QueryConfig};
use fleuve_service::auth::{mint_hs256, AuthConfig, Authenticator};
use serde::Serialize;

/// Ratio the issue asks for: cached read / static handler, requests/s and p99.
const TARGET: f64 = 0.7;
/// HS256 secret of the run (at least 32 bytes).
const SECRET: &str = "fleuve-bench-query-throughput-hs256-secret-0123456789";
/// Scope of the users' tokens.
const SCOPE: &str = "user";
const SERVER_THREADS: &str = "qapi-server";
const CLIENT_THREADS: &str = "loadgen";
const STATIC_PATH: &str = "/bench/static";
/// Run-queue wait (cores, server + generator, median of the static runs) above which a
/// scenario is flagged `contended`: ~0.01–0.05 on the idle machine, 0.4–1 while other
/// builds run.
const CONTENDED_WAIT_CORES: f64 = 0.2;
/// Rows per `Store::apply` while seeding.
const SEED_BATCH: usize = 1_000;

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scenario {
    Cached,
    Conditional,
    Spread,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Cached => "cached",
            Scenario::Conditional => "conditional",
            Scenario::Spread => "spread",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Options {
    scenarios: Vec<Scenario>,
    connections: usize,
    duration_s: f64,
    warmup_s: f64,
    rounds: usize,
    users: usize,
    rows_per_user: usize,
    server_threads: usize,
    client_threads: usize,
    #[serde(skip)]
    out: PathBuf,
    /// Profiling aid: one load of one side only (the first scenario's read, or static).
    #[serde(skip)]
    load_only: Option<LoadOnly>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadOnly {
    Static,
    Read,
}

impl Options {
    fn parse() -> Result<Self> {
        let mut o = Options {
            scenarios: vec![Scenario::Cached, Scenario::Conditional, Scenario::Spread],
            connections: 32,
            duration_s: 5.0,
            warmup_s: 1.0,
            rounds: 5,
            users: 10_000,
            rows_per_user: 5,
            server_threads: 1,
            client_threads: 1,
            out: PathBuf::from("target/bench/query.json"),
            load_only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--scenarios" => {
                    o.scenarios = value()?
                        .split(',')
                        .map(|s| match s.trim() {
                            "cached" => Ok(Scenario::Cached),
                            "conditional" => Ok(Scenario::Conditional),
                            "spread" => Ok(Scenario::Spread),
                            other => {
                                bail!("unknown scenario `{other}` (cached, conditional, spread)")
                            }
                        })
                        .collect::<Result<_>>()?
                }
                "--connections" => o.connections = value()?.parse()?,
                "--duration" => o.duration_s = value()?.parse()?,
                "--warmup" => o.warmup_s = value()?.parse()?,
                "--rounds" => o.rounds = value()?.parse()?,
                "--users" => o.users = value()?.parse()?,
                "--rows-per-user" => o.rows_per_user = value()?.parse()?,
                "--server-threads" => o.server_threads = value()?.parse()?,
                "--client-threads" => o.client_threads = value()?.parse()?,
                "--out" => o.out = PathBuf::from(value()?),
                "--load-only" => {
                    o.load_only = Some(match value()?.as_str() {
                        "static" => LoadOnly::Static,
                        "read" => LoadOnly::Read,
                        other => bail!("--load-only takes static or read, not `{other}`"),
                    })
                }
                "-h" | "--help" => {
                    println!(
                        "see the header of bench/src/bin/query_throughput.rs or docs/benchmarks.md"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown option {other}"),
            }
        }
        ensure!(o.rounds >= 3, "--rounds must be at least 3");
        ensure!(
            o.connections > 0
                && o.users > 0
                && o.rows_per_user > 0
                && o.server_threads > 0
                && o.client_threads > 0,
            "sizes must be > 0"
        );
        ensure!(
            o.duration_s > 0.0 && o.warmup_s >= 0.0,
            "--duration must be > 0 and --warmup ≥ 0"
        );
        Ok(o)
    }

    fn hot(&self) -> (String, String) {
        (user_id(42 % self.users), content_id(3 % self.rows_per_user))
    }
}

// ---------------------------------------------------------------------------------------
// Data and server
// ---------------------------------------------------------------------------------------

fn user_id(u: usize) -> String {
    format!("user-{u:08}")
}

fn content_id(c: usize) -> String {
    format!("content-{c:06}")
}

/// splitmix64, for the seeded rows' values.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A progress row like the processor writes: a heartbeat of a film or episode.
fn row(u: usize, c: usize, offset: i64) -> Progress {
    let r = mix(offset as u64);
    let duration_ms = [1_320_000_i64, 2_640_000, 5_400_000, 7_200_000][(r % 4) as usize];
    let occurred_at_ms = 1_714_594_503_120 + offset * 977 + (r >> 40) as i64 % 1000;
    Progress {
        user_id: user_id(u),
        content_id: content_id(c),
        position_ms: ((r >> 8) % duration_ms as u64) as i64 / 1000 * 1000,
        duration_ms,
        device: ["tv", "web", "ios", "android"][((r >> 4) % 4) as usize].into(),
        // A UUIDv7-shaped id, as the ingest assigns.
        event_id: format!(
            "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
            (occurred_at_ms >> 16) as u32,
            occurred_at_ms as u16,
            (r >> 12) & 0xfff,
            0x8000 | ((r >> 24) & 0x3fff),
            (r >> 16) & 0xffff_ffff_ffff
        ),
        version: EventVersion {
            occurred_at_ms,
            offset,
        },
    }
}

async fn seed(store: &Arc<dyn Store>, opts: &Options) -> Result<usize> {
    let mut writes = Vec::with_capacity(SEED_BATCH);
    let mut offset = 0i64;
    let mut rows = 0;
    for u in 0..opts.users {
        for c in 0..opts.rows_per_user {
            let p = row(u, c, offset);
            offset += 1;
            writes.push(Write::Put {
                table: PROGRESS.name(),
                pk: p.user_id.clone(),
                ck: p.content_id.clone(),
                value: serde_json::to_vec(&p)?,
                ts: p.version.offset,
            });
            if writes.len() == SEED_BATCH {
                rows += writes.len();
                apply(store, std::mem::take(&mut writes)).await?;
            }
        }
    }
    rows += writes.len();
    apply(store, writes).await?;
    Ok(rows)
}

async fn apply(store: &Arc<dyn Store>, writes: Vec<Write>) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    store
        .apply(WriteBatch {
            projection: "user_progress".into(),
            writes: writes.into(),
            checkpoints: vec![],
        })
        .await
        .context("seeding the store")
}

/// The static handler's answer, set once the real answer has been captured.
type StaticAnswer = Arc<OnceLock<(HeaderValue, Bytes)>>;

async fn static_answer(State(answer): State<StaticAnswer>) -> Response {
    match answer.get() {
        Some((content_type, body)) => {
            ([(header::CONTENT_TYPE, content_type.clone())], body.clone()).into_response()
        }
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

struct Server {
    addr: std::net::SocketAddr,
    rows: usize,
    _store: Arc<dyn Store>,
}

/// Opens and seeds the store, builds the router and serves it (call on the server's
/// runtime: the listener and the readiness task live there).
async fn start_server(
    dir: &std::path::Path,
    opts: &Options,
    answer: StaticAnswer,
) -> Result<Server> {
    let path = dir
        .to_str()
        .context("temporary directory path is not UTF-8")?;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(path).await?);
    let rows = seed(&store, opts).await?;
    let config = QueryConfig {
        auth: Some(Authenticator::new(AuthConfig::hs256(SECRET))?),
        ..QueryConfig::default()
    };
    let extra = Router::new()
        .route(STATIC_PATH, get(static_answer))
        .with_state(answer);
    let app = router_with(store.clone(), config, extra);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Server {
        addr,
        rows,
        _store: store,
    })
}

fn template(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<RequestTemplate> {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_str(&addr.to_string())?);
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(token) = token {
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    Ok(RequestTemplate {
        uri: path.parse::<Uri>()?,
        headers,
    })
}

fn token(user: &str) -> Result<String> {
    Ok(mint_hs256(
        SECRET,
        user,
        &[SCOPE],
        Duration::from_secs(24 * 3600),
    )?)
}

// ---------------------------------------------------------------------------------------
// What the server answers, before loading it
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Probe {
    path: String,
    status: u16,
    content_type: String,
    body_bytes: usize,
    body: String,
    etag: Option<String>,
    /// What the API route answers to the same request without `Authorization`.
    status_without_token: u16,
    /// What it answers with a token of another user.
    status_other_users_token: u16,
    auth_enforced: bool,
    /// What it answers with `If-None-Match` = its `ETag` (if it sent one).
    conditional_status: Option<u16>,
    conditional_body_bytes: Option<usize>,
    static_status: u16,
    static_content_type: String,
    static_same_bytes: bool,
    /// Other headers of the read's answer (and of static's), to see what middleware adds.
    read_headers: Vec<String>,
    static_headers: Vec<String>,
}

fn header_list(h: &HeaderMap) -> Vec<String> {
    h.iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("<binary>")))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Runs and report
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct Run {
    #[serde(flatten)]
    load: LoadResult,
    /// CPU of each side over the whole run (warm-up included), in cores (CPU s / wall s).
    server_cpu_cores: f64,
    generator_cpu_cores: f64,
    /// Time each side's threads were runnable but waited for a CPU (other processes, or
    /// each other), in cores: the contention on the shared machine.
    server_cpu_wait_cores: f64,
    generator_cpu_wait_cores: f64,
    /// The rest of the process: fjall's background threads, the main thread.
    other_cpu_cores: f64,
    /// Server CPU (µs) per answer over the whole run: what a request costs the server,
    /// whatever the CPU it got (robust to the machine's contention, unlike requests/s).
    server_cpu_us_per_answer: f64,
    generator_cpu_us_per_answer: f64,
}

#[derive(Debug, Serialize)]
struct Side {
    name: String,
    request: String,
    expected_status: u16,
    /// Medians of the rounds.
    requests_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    server_cpu_cores: f64,
    generator_cpu_cores: f64,
    server_cpu_wait_cores: f64,
    generator_cpu_wait_cores: f64,
    server_cpu_us_per_answer: f64,
    generator_cpu_us_per_answer: f64,
    errors: u64,
    first_error: Option<String>,
    rounds: Vec<Run>,
}

impl Side {
    fn new(name: &str, request: String, expected: StatusCode, rounds: Vec<Run>) -> Self {
        let m = |f: fn(&Run) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
        Self {
            name: name.to_owned(),
            request,
            expected_status: expected.as_u16(),
            requests_per_s: m(|r| r.load.requests_per_s),
            p50_us: m(|r| r.load.latency.p50_us),
            p99_us: m(|r| r.load.latency.p99_us),
            p999_us: m(|r| r.load.latency.p999_us),
            server_cpu_cores: m(|r| r.server_cpu_cores),
            generator_cpu_cores: m(|r| r.generator_cpu_cores),
            server_cpu_wait_cores: m(|r| r.server_cpu_wait_cores),
            generator_cpu_wait_cores: m(|r| r.generator_cpu_wait_cores),
            server_cpu_us_per_answer: m(|r| r.server_cpu_us_per_answer),
            generator_cpu_us_per_answer: m(|r| r.generator_cpu_us_per_answer),
            errors: rounds.iter().map(|r| r.load.errors).sum(),
            first_error: rounds.iter().find_map(|r| r.load.first_error.clone()),
            rounds,
        }
    }
}

#[derive(Debug, Serialize)]
struct ScenarioReport {
    name: &'static str,
    description: String,
    subject: Side,
    baseline: Side,
    /// Median subject requests/s / median static requests/s.
    ratio_requests_per_s: f64,
    paired_ratios_requests_per_s: Vec<f64>,
    /// Median static p99 / median subject p99 (higher is better, like the throughput ratio).
    ratio_p99: f64,
    paired_ratios_p99: Vec<f64>,
    /// Median static server CPU per answer / median read server CPU per answer (context:
    /// the throughput ratio the server would reach if it alone were the limit).
    ratio_server_cpu: f64,
    target: Option<f64>,
    pass_requests_per_s: Option<bool>,
    pass_p99: Option<bool>,
    /// Both ratios meet the target and no request failed (`null`: no target).
    pass: Option<bool>,
    /// No wrong status or body on either side.
    ok: bool,
    /// The static runs' threads (server and generator) waited for a CPU more than
    /// `CONTENDED_WAIT_CORES` (median): other processes took CPU from the bench. The
    /// requests/s ratio then favours the read, whose blocking-pool threads get more CPU
    /// slices than static's single worker; `ratio_server_cpu` is the figure to trust.
    contended: bool,
    errors: u64,
}

#[derive(Debug, Serialize)]
struct Skipped {
    scenario: &'static str,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    unix_time: u64,
    command: String,
    options: Options,
    load_generator: String,
    server: String,
    placement: &'static str,
    store_rows: usize,
    probe: Probe,
    machine: Machine,
    scenarios: Vec<ScenarioReport>,
    skipped: Vec<Skipped>,
    seconds: f64,
}

struct Bench {
    /// Kept alive for the server it runs.
    _server_rt: tokio::runtime::Runtime,
    client_rt: tokio::runtime::Runtime,
    opts: Options,
    addr: std::net::SocketAddr,
}

impl Bench {
    fn spec(
        &self,
        requests: Arc<[RequestTemplate]>,
        expect_status: StatusCode,
        expect_body: Option<Bytes>,
        conditional: Option<HeaderValue>,
        seed: u64,
    ) -> LoadSpec {
        LoadSpec {
            addr: self.addr,
            connections: self.opts.connections,
            warmup: Duration::from_secs_f64(self.opts.warmup_s),
            duration: Duration::from_secs_f64(self.opts.duration_s),
            requests,
            expect_status,
            expect_body,
            conditional,
            seed,
        }
    }

    fn run(&self, spec: LoadSpec) -> Result<Run> {
        let (s0, c0, p0, t0) = (
            threads_times(SERVER_THREADS),
            threads_times(CLIENT_THREADS),
            process_cpu_s(),
            Instant::now(),
        );
        let load = self.client_rt.block_on(closed_loop(spec))?;
        let wall = t0.elapsed().as_secs_f64();
        let (s, c, p) = (
            threads_times(SERVER_THREADS) - s0,
            threads_times(CLIENT_THREADS) - c0,
            process_cpu_s() - p0,
        );
        Ok(Run {
            server_cpu_cores: s.cpu_s / wall,
            generator_cpu_cores: c.cpu_s / wall,
            server_cpu_wait_cores: s.wait_s / wall,
            generator_cpu_wait_cores: c.wait_s / wall,
            other_cpu_cores: (p - s.cpu_s - c.cpu_s).max(0.0) / wall,
            server_cpu_us_per_answer: s.cpu_s * 1e6 / load.answers.max(1) as f64,
            generator_cpu_us_per_answer: c.cpu_s * 1e6 / load.answers.max(1) as f64,
            load,
        })
    }
}

struct Case {
    scenario: Scenario,
    description: String,
    request: String,
    requests: Arc<[RequestTemplate]>,
    expect_status: StatusCode,
    expect_body: Option<Bytes>,
    conditional: Option<HeaderValue>,
}

fn describe(t: &RequestTemplate, conditional: Option<&HeaderValue>) -> String {
    let mut s = format!("GET {}", t.uri);
    if t.headers.contains_key(header::AUTHORIZATION) {
        s.push_str(" + Authorization: Bearer <user token>");
    }
    if let Some(tag) = conditional {
        s.push_str(&format!(
            " + If-None-Match: {}",
            tag.to_str().unwrap_or("<binary>")
        ));
    }
    s
}

fn main() -> Result<()> {
    let opts = Options::parse()?;
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    fleuve_service::init_tracing();
    let loadavg_before = loadavg();
    let started = Instant::now();

    // Two runtimes in one process, one core's worth of threads each by default (the
    // machine has two): the server's, and the load generator's.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.server_threads)
        .thread_name(SERVER_THREADS)
        // Blocking threads (the store's reads) stay alive, so their CPU stays countable.
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()?;

    let dir = tempfile::tempdir()?;
    let answer: StaticAnswer = Arc::new(OnceLock::new());
    println!(
        "seeding {} users × {} progress rows into an embedded store…",
        opts.users, opts.rows_per_user
    );
    let server = server_rt.block_on(start_server(dir.path(), &opts, answer.clone()))?;
    let addr = server.addr;
    println!("query API on http://{addr} ({} rows)", server.rows);

    // The hot row's answer, the static twin, and what auth and ETags do.
    let (hot_user, hot_content) = opts.hot();
    let hot_path = format!("/v1/users/{hot_user}/progress/{hot_content}");
    let hot_token = token(&hot_user)?;
    let hot = template(addr, &hot_path, Some(&hot_token))?;
    let statik = template(addr, STATIC_PATH, Some(&hot_token))?;
    let (probe, answer_body) = client_rt.block_on(async {
        let (status, headers, body) = fetch_once(addr, &hot, &[]).await?;
        if status != StatusCode::OK {
            bail!(
                "GET {hot_path} with a `{SCOPE}` token of {hot_user} answers {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("application/json"));
        let _ = answer.set((content_type.clone(), body.clone()));
        let (anon, _, _) = fetch_once(addr, &template(addr, &hot_path, None)?, &[]).await?;
        let other = token("someone-else")?;
        let (other_status, _, _) =
            fetch_once(addr, &template(addr, &hot_path, Some(&other))?, &[]).await?;
        let etag = headers.get(header::ETAG).cloned();
        let conditional = match &etag {
            Some(tag) => {
                let (s, _, b) =
                    fetch_once(addr, &hot, &[(header::IF_NONE_MATCH, tag.clone())]).await?;
                Some((s.as_u16(), b.len()))
            }
            None => None,
        };
        let (st, st_headers, st_body) = fetch_once(addr, &statik, &[]).await?;
        let probe = Probe {
            path: hot_path.clone(),
            status: status.as_u16(),
            content_type: content_type.to_str().unwrap_or("<binary>").to_owned(),
            body_bytes: body.len(),
            body: String::from_utf8_lossy(&body).into_owned(),
            etag: etag
                .as_ref()
                .map(|t| t.to_str().unwrap_or("<binary>").to_owned()),
            status_without_token: anon.as_u16(),
            status_other_users_token: other_status.as_u16(),
            auth_enforced: anon == StatusCode::UNAUTHORIZED,
            conditional_status: conditional.map(|c| c.0),
            conditional_body_bytes: conditional.map(|c| c.1),
            static_status: st.as_u16(),
            static_content_type: st_headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            static_same_bytes: st_body == body,
            read_headers: header_list(&headers),
            static_headers: header_list(&st_headers),
        };
        Ok((probe, body))
    })?;
    ensure!(
        probe.static_status == 200 && probe.static_same_bytes,
        "the static route does not answer the captured body: {probe:?}"
    );
    println!(
        "{hot_path}: {} {} bytes ({}), ETag {}, without a token {}, another user's token {}",
        probe.status,
        probe.body_bytes,
        probe.content_type,
        probe.etag.as_deref().unwrap_or("none"),
        probe.status_without_token,
        probe.status_other_users_token
    );

    // The cases.
    let mut skipped = Vec::new();
    let mut cases = Vec::new();
    for &scenario in &opts.scenarios {
        match scenario {
            Scenario::Cached => cases.push(Case {
                scenario,
                description: format!(
                    "the same hot row again and again ({hot_user}/{hot_content}), 200 and the same {} bytes every time",
                    probe.body_bytes
                ),
                request: describe(&hot, None),
                requests: Arc::from(vec![hot.clone()]),
                expect_status: StatusCode::OK,
                expect_body: Some(answer_body.clone()),
                conditional: None,
            }),
            Scenario::Conditional => match (&probe.etag, probe.conditional_status) {
                (None, _) => skipped.push(Skipped {
                    scenario: scenario.label(),
                    reason: format!("the API sends no ETag header on GET {hot_path} (headers: {})", probe.read_headers.join(", ")),
                }),
                (Some(tag), Some(304)) => {
                    let tag = HeaderValue::from_str(tag)?;
                    cases.push(Case {
                        scenario,
                        description: "the hot row with If-None-Match = the ETag of the previous answer, 304 and no body".into(),
                        request: describe(&hot, Some(&tag)),
                        requests: Arc::from(vec![hot.clone()]),
                        expect_status: StatusCode::NOT_MODIFIED,
                        expect_body: Some(Bytes::new()),
                        conditional: Some(tag),
                    })
                }
                (Some(tag), status) => skipped.push(Skipped {
                    scenario: scenario.label(),
                    reason: format!(
                        "GET {hot_path} with If-None-Match: {tag} answers {status:?}, not 304"
                    ),
                }),
            },
            Scenario::Spread => {
                println!("minting {} user tokens…", opts.users);
                let mut all = Vec::with_capacity(opts.users * opts.rows_per_user);
                for u in 0..opts.users {
                    let t = token(&user_id(u))?;
                    for c in 0..opts.rows_per_user {
                        all.push(template(
                            addr,
                            &format!("/v1/users/{}/progress/{}", user_id(u), content_id(c)),
                            Some(&t),
                        )?);
                    }
                }
                cases.push(Case {
                    scenario,
                    description: format!(
                        "a uniformly random row among the {} seeded ({} users), each with its user's token, 200",
                        all.len(),
                        opts.users
                    ),
                    request: format!(
                        "GET /v1/users/{{random user}}/progress/{{random content}} + Authorization: Bearer <that user's token> ({} distinct)",
                        all.len()
                    ),
                    requests: Arc::from(all),
                    expect_status: StatusCode::OK,
                    expect_body: None,
                    conditional: None,
                })
            }
        }
    }
    for s in &skipped {
        println!("skipping {}: {}", s.scenario, s.reason);
    }

    let bench = Bench {
        _server_rt: server_rt,
        client_rt,
        opts: opts.clone(),
        addr,
    };
    let static_requests: Arc<[RequestTemplate]> = Arc::from(vec![statik.clone()]);
    if let Some(side) = opts.load_only {
        // One long load of one side, nothing else (to attach a profiler to).
        let spec = match (side, cases.first()) {
            (LoadOnly::Static, _) => {
                bench.spec(static_requests, StatusCode::OK, Some(answer_body), None, 1)
            }
            (LoadOnly::Read, Some(case)) => bench.spec(
                case.requests.clone(),
                case.expect_status,
                case.expect_body.clone(),
                case.conditional.clone(),
                1,
            ),
            (LoadOnly::Read, None) => bail!("no scenario to load"),
        };
        println!(
            "loading {side:?} only for {} s (pid {})…",
            opts.warmup_s + opts.duration_s,
            std::process::id()
        );
        let r = bench.run(spec)?;
        println!("{}", serde_json::to_string_pretty(&r)?);
        std::process::exit(0)
    }
    let mut scenarios = Vec::new();
    for case in cases {
        let label = case.scenario.label();
        let (mut base, mut subj) = (Vec::new(), Vec::new());
        for round in 1..=opts.rounds {
            let seed = round as u64;
            let b = bench.run(bench.spec(
                static_requests.clone(),
                StatusCode::OK,
                Some(answer_body.clone()),
                None,
                seed,
            ))?;
            let s = bench.run(bench.spec(
                case.requests.clone(),
                case.expect_status,
                case.expect_body.clone(),
                case.conditional.clone(),
                seed,
            ))?;
            let cores = |r: &Run| {
                format!(
                    "server {:.1} µs/req; cores server {:.2}+{:.2}w, loadgen {:.2}+{:.2}w",
                    r.server_cpu_us_per_answer,
                    r.server_cpu_cores,
                    r.server_cpu_wait_cores,
                    r.generator_cpu_cores,
                    r.generator_cpu_wait_cores
                )
            };
            println!(
                "[{label}] round {round}/{}: static {:.0}/s p99 {:.0} µs ({}), read {:.0}/s p99 {:.0} µs ({}): {:.2}{}",
                opts.rounds,
                b.load.requests_per_s,
                b.load.latency.p99_us,
                cores(&b),
                s.load.requests_per_s,
                s.load.latency.p99_us,
                cores(&s),
                s.load.requests_per_s / b.load.requests_per_s,
                if b.load.errors + s.load.errors > 0 {
                    format!(
                        "; ERRORS static {} read {}: {}",
                        b.load.errors,
                        s.load.errors,
                        s.load
                            .first_error
                            .as_deref()
                            .or(b.load.first_error.as_deref())
                            .unwrap_or("")
                    )
                } else {
                    String::new()
                }
            );
            base.push(b);
            subj.push(s);
        }
        let paired_rps = subj
            .iter()
            .zip(&base)
            .map(|(s, b)| s.load.requests_per_s / b.load.requests_per_s)
            .collect();
        let paired_p99 = subj
            .iter()
            .zip(&base)
            .map(|(s, b)| b.load.latency.p99_us / s.load.latency.p99_us)
            .collect();
        let subject = Side::new(label, case.request, case.expect_status, subj);
        let baseline = Side::new(
            "static",
            format!(
                "{} (constant body: the hot row's {} bytes, {})",
                describe(&statik, None),
                probe.body_bytes,
                probe.content_type
            ),
            StatusCode::OK,
            base,
        );
        let ratio_rps = subject.requests_per_s / baseline.requests_per_s;
        let ratio_p99 = baseline.p99_us / subject.p99_us;
        let ratio_server_cpu = baseline.server_cpu_us_per_answer / subject.server_cpu_us_per_answer;
        let errors = subject.errors + baseline.errors;
        let target = (case.scenario == Scenario::Cached).then_some(TARGET);
        scenarios.push(ScenarioReport {
            name: label,
            description: case.description,
            ratio_requests_per_s: ratio_rps,
            paired_ratios_requests_per_s: paired_rps,
            ratio_p99,
            paired_ratios_p99: paired_p99,
            ratio_server_cpu,
            target,
            pass_requests_per_s: target.map(|t| ratio_rps >= t),
            pass_p99: target.map(|t| ratio_p99 >= t),
            pass: target.map(|t| ratio_rps >= t && ratio_p99 >= t && errors == 0),
            ok: errors == 0,
            contended: baseline.server_cpu_wait_cores + baseline.generator_cpu_wait_cores
                > CONTENDED_WAIT_CORES,
            errors,
            subject,
            baseline,
        });
    }

    let report = Report {
        bench: "query-throughput",
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        load_generator: format!(
            "{LOAD_GENERATOR}, {} connections, {} Tokio worker thread(s) in the bench process, every status checked",
            opts.connections, opts.client_threads
        ),
        server: format!(
            "fleuve_query_api::router_with over an EmbeddedStore (fjall, temporary directory, {} rows), HS256 auth on, \
             axum on 127.0.0.1, {} Tokio worker thread(s) + its blocking pool, same process",
            server.rows, opts.server_threads
        ),
        placement: "server and load generator in one process, each on its own Tokio runtime (threads `qapi-server` \
                    and `loadgen`); the static handler and the read share the server, the generator and the \
                    connections, runs interleaved",
        store_rows: server.rows,
        options: opts.clone(),
        probe,
        machine: Machine::measure(
            loadavg_before,
            "shared virtual CPUs (other builds run concurrently): absolute figures are noisy, \
             compare the ratios; server and load generator share these CPUs",
        ),
        scenarios,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    };
    print_table(&report);
    write_json(&opts.out, &report)?;
    println!(
        "\nwrote {} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| !s.ok)
        .map(|s| s.name)
        .collect();
    if !failed.is_empty() {
        bail!(
            "requests failed in scenario(s) {} (see `first_error` in {})",
            failed.join(", "),
            opts.out.display()
        );
    }
    // Leave at once: the runtimes' shutdown would wait for the server's tasks.
    std::process::exit(0)
}

fn print_table(r: &Report) {
    println!("\nload generator: {}", r.load_generator);
    println!(
        "\n{:<12} {:>8} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>5} {:>6}",
        "scenario",
        "read/s",
        "p50 µs",
        "p99 µs",
        "p999",
        "static/s",
        "p99 µs",
        "p999",
        "ratio",
        "p99 r.",
        "CPU r.",
        "target",
        "pass",
        "errors"
    );
    for s in &r.scenarios {
        println!(
            "{:<12} {:>8.0} {:>7.0} {:>7.0} {:>7.0} {:>9.0} {:>7.0} {:>7.0} {:>7.2} {:>7.2} {:>7.2} {:>6} {:>5} {:>6}",
            s.name,
            s.subject.requests_per_s,
            s.subject.p50_us,
            s.subject.p99_us,
            s.subject.p999_us,
            s.baseline.requests_per_s,
            s.baseline.p99_us,
            s.baseline.p999_us,
            s.ratio_requests_per_s,
            s.ratio_p99,
            s.ratio_server_cpu,
            s.target.map_or_else(|| "-".into(), |t| format!("≥{t}")),
            match s.pass {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            },
            s.errors
        );
        let rounds: Vec<String> = s
            .paired_ratios_requests_per_s
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect();
        println!(
            "{:<12} rounds (read/static req/s): {}; server CPU per request: read {:.1} µs, static {:.1} µs; \
             cores server/loadgen (+ waiting for a CPU): read {:.2}/{:.2} (+{:.2}/{:.2}), static {:.2}/{:.2} (+{:.2}/{:.2})",
            "",
            rounds.join(" "),
            s.subject.server_cpu_us_per_answer,
            s.baseline.server_cpu_us_per_answer,
            s.subject.server_cpu_cores,
            s.subject.generator_cpu_cores,
            s.subject.server_cpu_wait_cores,
            s.subject.generator_cpu_wait_cores,
            s.baseline.server_cpu_cores,
            s.baseline.generator_cpu_cores,
            s.baseline.server_cpu_wait_cores,
            s.baseline.generator_cpu_wait_cores,
        );
    }
    for s in r.scenarios.iter().filter(|s| s.contended) {
        println!(
            "CONTENDED {}: static's threads waited {:.2} cores for a CPU (other processes): \
             its req/s and p99 ratios favour the read and are not reliable; trust the CPU ratio ({:.2})",
            s.name,
            s.baseline.server_cpu_wait_cores + s.baseline.generator_cpu_wait_cores,
            s.ratio_server_cpu
        );
    }
    for s in &r.skipped {
        println!("skipped {}: {}", s.scenario, s.reason);
    }
    println!(
        "auth: the API route answers {} without a token, {} with another user's token",
        r.probe.status_without_token, r.probe.status_other_users_token
    );
    println!(
        "machine: {} CPUs ({}), load {} → {}; shared and noisy, compare ratios",
        r.machine.cpus, r.machine.cpu_model, r.machine.loadavg_before, r.machine.loadavg_after
    );
}

//! Harness for end-to-end tests: a real Tansu broker on a free port with its own SQLite file,
//! and the `fleuve` binary (`fleuve run`, `fleuve registry`, `fleuve process`) on free ports,
//! all as child processes; and a reader of the Prometheus text the services serve.
//!
//! The Tansu binary comes from `FLEUVE_TANSU` (set by `make test`, which installs it) or the
//! per-user tools folder; the `fleuve` binary from `FLEUVE_BIN` or the workspace's
//! `target/debug/fleuve` (built by `make test`). Missing binaries fail the test with the
//! command that provides them.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A free TCP port on 127.0.0.1, never one this process was handed before.
///
/// The port is found by binding port 0 and releasing it, so the kernel may offer the same port
/// to the next call while nobody listens on it yet: two services of one platform would then
/// collide ("Address already in use"). Remembering every port handed out keeps them distinct.
pub fn free_port() -> Result<u16> {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return Ok(port);
        }
    }
    bail!("no free TCP port on 127.0.0.1 after 1000 tries")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            bail!("{what} exited with {status} before listening on {port}; its log:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on {port} within 60 s")
}

fn tansu_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("FLEUVE_TANSU") {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var("HOME").context("HOME is not set")?;
    let dir =
        std::env::var("FLEUVE_TOOLS_DIR").unwrap_or_else(|_| format!("{home}/.cache/fleuve/tools"));
    let p = PathBuf::from(dir).join("bin/tansu");
    if p.exists() {
        Ok(p)
    } else {
        bail!(
            "Tansu is not installed at {}: run `make tools` (or `make test`)",
            p.display()
        )
    }
}

/// The `fleuve` binary under test (`FLEUVE_BIN`, or the workspace's `target/debug/fleuve`).
pub fn fleuve_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("FLEUVE_BIN") {
        return Ok(PathBuf::from(p));
    }
    // target/debug/deps/<test-exe> → target/debug/fleuve
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("fleuve"))
        .context("cannot locate the target directory")?;
    if p.exists() {
        Ok(p)
    } else {
        bail!(
            "{} is missing: run `cargo build -p fleuve` (make test does)",
            p.display()
        )
    }
}

/// A child process killed when dropped.
#[derive(Debug)]
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Tansu broker with its data in a temporary directory.
#[derive(Debug)]
pub struct Broker {
    proc: Proc,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Query string after the storage URL (Tansu's storage options), kept for restarts.
    storage_options: String,
}

impl Broker {
    pub fn start() -> Result<Self> {
        Self::start_with_storage_options("")
    }

    /// [`Broker::start`] with Tansu's maintenance task (retention, then compaction of
    /// `cleanup.policy=compact` topics: every superseded value of a key deleted) running
    /// every `every` instead of every 10 minutes, so that tests can see compaction happen.
    pub fn start_with_maintenance(every: Duration) -> Result<Self> {
        Self::start_with_storage_options(&format!("?maintenance_interval={}ms", every.as_millis()))
    }

    /// Starts Tansu with `options` (a query string, or empty) after its storage URL.
    fn start_with_storage_options(options: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let child = Self::spawn(dir.path(), port, options)?;
        let broker = Self {
            proc: Proc { child },
            port,
            dir,
            storage_options: options.to_owned(),
        };
        broker.index_headers()?;
        Ok(broker)
    }

    /// Tansu on `port` with its data in `dir` (logs appended to `broker.log`, `broker.err`).
    fn spawn(dir: &Path, port: u16, options: &str) -> Result<Child> {
        let log = dir.join("broker.log");
        let url = format!("tcp://127.0.0.1:{port}");
        let append = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
        };
        let mut child = Command::new(tansu_binary()?)
            .current_dir(dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &format!("sqlite://tansu.db{options}")])
            .stdout(Stdio::from(append("broker.log")?))
            .stderr(Stdio::from(append("broker.err")?))
            .spawn()
            .context("starting tansu")?;
        wait_for_port(port, &mut child, "tansu", &log)?;
        Ok(child)
    }

    /// Kills the broker with SIGKILL (a crash: nothing flushed beyond what its storage
    /// engine committed) and starts it again at once on the same port and data.
    pub fn kill_and_restart(&mut self) -> Result<()> {
        self.proc.child.kill()?;
        self.proc.child.wait()?;
        self.proc.child = Self::spawn(self.dir.path(), self.port, &self.storage_options)?;
        Ok(())
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Indexes the record headers in the broker's SQLite file.
    ///
    /// Tansu 0.6.0's SQLite schema has no index on `header (topition, offset_id)`, and a
    /// fetch reads the headers of every record it returns with one query per record: each
    /// record fetched scans the whole header table, so reading a topic takes time quadratic
    /// in the number of records. With Fleuve's three headers per event, reading 24,000
    /// records took more than 2 minutes on 2 cores (the broker at 200 % CPU, metadata and
    /// group requests timing out meanwhile) against about 1 s with this index.
    /// [`Broker::start`] calls it (as `scripts/index-tansu.sh` does for `make run`). It uses
    /// `python3`'s `sqlite3` module (`make test` needs `python3` already).
    pub fn index_headers(&self) -> Result<()> {
        const SCRIPT: &str = "import sqlite3, sys\n\
            c = sqlite3.connect(sys.argv[1], timeout=30)\n\
            c.execute('create index if not exists header_topition_offset_id \
            on header (topition, offset_id)')\n\
            c.commit()\n";
        let db = self.dir.path().join("tansu.db");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("python3")
                .args(["-c", SCRIPT])
                .arg(&db)
                .output()
                .context("running python3 to index Tansu's header table")?;
            if out.status.success() {
                return Ok(());
            }
            // The schema is created when the broker starts; give it a moment.
            if Instant::now() > deadline {
                bail!(
                    "could not index the header table of {}: {}",
                    db.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One `fleuve registry` process against a broker.
#[derive(Debug)]
pub struct RegistryProcess {
    proc: Proc,
    pub url: String,
}

impl RegistryProcess {
    pub fn start(broker: &Broker, log_dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let log = log_dir.join(format!("registry-{port}.log"));
        let mut child = Command::new(fleuve_binary()?)
            .current_dir(log_dir)
            .env("FLEUVE_BROKERS", broker.bootstrap())
            .args(["registry", "--registry-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log)?,
            ))
            .spawn()
            .context("starting fleuve registry")?;
        wait_for_port(port, &mut child, "fleuve registry", &log)?;
        Ok(Self {
            proc: Proc { child },
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }
}

/// The HS256 secret the test platforms verify tokens with.
pub const JWT_SECRET: &str = "end-to-end-test-secret-of-at-least-32-bytes";

/// A token for the test platforms with these scopes, valid for an hour.
#[expect(
    clippy::expect_used,
    reason = "a test helper: minting with a constant secret cannot fail"
)]
pub fn token(sub: &str, scopes: &[&str]) -> String {
    fleuve_service::auth::mint_hs256(JWT_SECRET, sub, scopes, Duration::from_secs(3600))
        .expect("minting a test token")
}

/// Waits until `{base}/readyz` answers 200, for at most `timeout`.
pub async fn wait_ready(http: &reqwest::Client, base: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{base}/readyz not ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `fleuve run` against a broker, with its store in `data_dir`.
#[derive(Debug)]
pub struct Platform {
    proc: Proc,
    pub query: String,
    pub ingest: String,
    pub registry: String,
    /// The processors' ops endpoints (metrics, readiness, `fleuve rebuild`'s admin API).
    pub processor: String,
    log: PathBuf,
}

/// Ports of one platform; reuse them to restart on the same addresses.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub query: u16,
    pub registry: u16,
    pub ingest: u16,
    pub processor: u16,
}

impl Ports {
    pub fn free() -> Result<Self> {
        Ok(Self {
            query: free_port()?,
            registry: free_port()?,
            ingest: free_port()?,
            processor: free_port()?,
        })
    }
}

impl Platform {
    pub fn start(broker: &Broker, data_dir: &Path, ports: Ports) -> Result<Self> {
        Self::start_with_env(broker, data_dir, ports, &[])
    }

    /// [`Platform::start`] with extra `FLEUVE_*` settings (`("FLEUVE_EXPORTS_PARTNERS", path)`).
    pub fn start_with_env(
        broker: &Broker,
        data_dir: &Path,
        ports: Ports,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let log = data_dir.join(format!("fleuve-{}.log", free_port()?));
        let addr = |p: u16| format!("127.0.0.1:{p}");
        let mut child = Command::new(fleuve_binary()?)
            .current_dir(data_dir)
            .env("FLEUVE_BROKERS", broker.bootstrap())
            .env(
                "FLEUVE_REGISTRY_URL",
                format!("http://127.0.0.1:{}", ports.registry),
            )
            .env("FLEUVE_STORE", "embedded://projections")
            .env("FLEUVE_DELIVERY_TIMEOUT_MS", "5000")
            .env("FLEUVE_JWT_HS256_SECRET", JWT_SECRET)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .args(["run", "--query-addr", &addr(ports.query)])
            .args(["--registry-addr", &addr(ports.registry)])
            .args(["--ingest-addr", &addr(ports.ingest)])
            .args(["--processor-addr", &addr(ports.processor)])
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log)?,
            ))
            .spawn()
            .context("starting fleuve run")?;
        wait_for_port(ports.query, &mut child, "fleuve run", &log)?;
        Ok(Self {
            proc: Proc { child },
            query: format!("http://{}", addr(ports.query)),
            ingest: format!("http://{}", addr(ports.ingest)),
            registry: format!("http://{}", addr(ports.registry)),
            processor: format!("http://{}", addr(ports.processor)),
            log,
        })
    }

    /// Asks the platform to stop (SIGTERM) and waits for it; returns whether it exited 0.
    pub fn stop(mut self) -> Result<bool> {
        let pid = self.proc.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.proc.child.try_wait()? {
                return Ok(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("fleuve did not stop within 30 s of SIGTERM")
    }

    /// SIGKILL, as a crash: no shutdown, no final commit, no flush. Waits for the exit.
    pub fn kill(mut self) -> Result<()> {
        self.proc.child.kill()?;
        self.proc.child.wait()?;
        Ok(())
    }

    /// The platform's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Sends SIGTERM to a child and waits for it to exit, up to `timeout` (then SIGKILL).
fn terminate(child: &mut Child, what: &str, timeout: Duration) -> Result<ExitStatus> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("{what} did not stop within {timeout:?} of SIGTERM (killed)")
}

/// The last `lines` lines of a log file, ANSI colours removed (for assertion messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequence: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    let all: Vec<&str> = clean.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `fleuve process <names>` (`all` for every processor) against a broker and a schema
/// registry, with its embedded store in `store_dir` and its operational endpoints
/// (`/metrics`, `/readyz`) on a free port.
#[derive(Debug)]
pub struct ProcessorProcess {
    proc: Proc,
    /// Base URL of the operational endpoints.
    pub ops: String,
    log: PathBuf,
}

impl ProcessorProcess {
    /// Starts the process, its output going to `log`, and waits until its operational
    /// endpoint listens (the store is open and the processors are started by then).
    pub fn start(
        broker: &Broker,
        registry_url: &str,
        store_dir: &Path,
        names: &[&str],
        log: &Path,
    ) -> Result<Self> {
        Self::start_with_env(broker, registry_url, store_dir, names, log, &[])
    }

    /// [`ProcessorProcess::start`] with more environment variables (`FLEUVE_*` settings).
    pub fn start_with_env(
        broker: &Broker,
        registry_url: &str,
        store_dir: &Path,
        names: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let port = free_port()?;
        let store = format!("embedded://{}", std::path::absolute(store_dir)?.display());
        let mut child = Command::new(fleuve_binary()?)
            .current_dir(log.parent().unwrap_or(Path::new(".")))
            .env("FLEUVE_BROKERS", broker.bootstrap())
            .env("FLEUVE_REGISTRY_URL", registry_url)
            .env("FLEUVE_STORE", store)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .arg("process")
            .args(names)
            .args(["--processor-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::from(std::fs::File::create(log)?))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(log)?,
            ))
            .spawn()
            .context("starting fleuve process")?;
        wait_for_port(port, &mut child, "fleuve process", log)?;
        Ok(Self {
            proc: Proc { child },
            ops: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.proc.child.try_wait()?)
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Path of its log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGKILL, as a crash: no shutdown, no final commit, no flush. Waits for the exit.
    pub fn kill(mut self) -> Result<()> {
        self.proc.child.kill()?;
        self.proc.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits (up to `timeout`) for the graceful stop; returns the exit status.
    pub fn terminate(mut self, timeout: Duration) -> Result<ExitStatus> {
        terminate(&mut self.proc.child, "fleuve process", timeout)
    }

    /// Scrapes its `/metrics`.
    pub async fn metrics(&self, http: &reqwest::Client) -> Result<Metrics> {
        scrape(http, &format!("{}/metrics", self.ops)).await
    }
}

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus text exposition (`/metrics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text format (comments and malformed lines are skipped).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_sample)
            .collect();
        Self { samples }
    }

    /// Samples of `name` whose labels include every `(key, value)` of `filter`.
    pub fn series<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v))
        })
    }

    /// The value of the one sample of `name` matching `filter`, if there is exactly one.
    pub fn value(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        let mut it = self.series(name, filter);
        match (it.next(), it.next()) {
            (Some(s), None) => Some(s.value),
            _ => None,
        }
    }

    /// The sum of the samples of `name` matching `filter` (0 when there is none).
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.series(name, filter).map(|s| s.value).sum()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name_labels, value) = line.trim().rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match name_labels.split_once('{') {
        None => (name_labels.to_owned(), BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}')?;
            let mut labels = BTreeMap::new();
            let mut chars = body.chars().peekable();
            loop {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                if key.is_empty() {
                    break;
                }
                if chars.next() != Some('"') {
                    return None;
                }
                let mut val = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('n') => val.push('\n'),
                            Some(other) => val.push(other),
                            None => return None,
                        },
                        '"' => break,
                        c => val.push(c),
                    }
                }
                labels.insert(key.trim_start_matches(',').trim().to_owned(), val);
                if chars.peek() == Some(&',') {
                    chars.next();
                }
            }
            (name.to_owned(), labels)
        }
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// GETs a Prometheus text exposition and parses it.
pub async fn scrape(http: &reqwest::Client, url: &str) -> Result<Metrics> {
    let r = http.get(url).send().await?;
    if !r.status().is_success() {
        bail!("GET {url} answered {}", r.status());
    }
    Ok(Metrics::parse(&r.text().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
    }

    #[test]
    fn prometheus_text_is_parsed() {
        let m = Metrics::parse(
            "# HELP x_total X.\n# TYPE x_total counter\n\
             x_total{processor=\"a\"} 3\nx_total{processor=\"b\"} 4\n\
             lag{partition=\"0\",processor=\"a\",topic=\"t\"} 0\n\
             odd{v=\"q\\\"uo,te\"} 1.5e3\nplain 7\n",
        );
        assert_eq!(m.value("x_total", &[("processor", "a")]), Some(3.0));
        assert_eq!(m.value("x_total", &[]), None, "two samples match");
        assert_eq!(m.sum("x_total", &[]), 7.0);
        assert_eq!(
            m.value("lag", &[("topic", "t"), ("partition", "0")]),
            Some(0.0)
        );
        assert_eq!(m.value("odd", &[("v", "q\"uo,te")]), Some(1500.0));
        assert_eq!(m.value("plain", &[]), Some(7.0));
    }
}

//! Harness for end-to-end tests: a real Tansu broker on a free port with its own SQLite file,
//! and the `fleuve` binary (`fleuve run`) on free ports, both as child processes.
//!
//! The Tansu binary comes from `FLEUVE_TANSU` (set by `make test`, which installs it) or the
//! per-user tools folder; the `fleuve` binary from `FLEUVE_BIN` or the workspace's
//! `target/debug/fleuve` (built by `make test`). Missing binaries fail the test with the
//! command that provides them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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

fn fleuve_binary() -> Result<PathBuf> {
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
}

impl Broker {
    pub fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let log = dir.path().join("broker.log");
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(tansu_binary()?)
            .current_dir(dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(std::fs::File::create(
                dir.path().join("broker.err"),
            )?))
            .spawn()
            .context("starting tansu")?;
        wait_for_port(port, &mut child, "tansu", &log)?;
        Ok(Self {
            proc: Proc { child },
            port,
            dir,
        })
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
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
#[allow(clippy::expect_used)] // a test helper: minting with a constant secret cannot fail
pub fn token(sub: &str, scopes: &[&str]) -> String {
    fleuve_service::auth::mint_hs256(JWT_SECRET, sub, scopes, Duration::from_secs(3600))
        .expect("minting a test token")
}

/// `fleuve run` against a broker, with its store in `data_dir`.
#[derive(Debug)]
pub struct Platform {
    proc: Proc,
    pub query: String,
    pub ingest: String,
    pub registry: String,
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

    /// The platform's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

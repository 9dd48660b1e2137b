//! `store-engines`: compares fjall 3 and redb on the `user_progress` projection workload,
//! in one process, on the same machine, to choose the embedded backend's engine.
//!
//! ```text
//! cargo run -p fleuve-bench --release --bin store-engines [-- --upserts N --reads N --scans N --out PATH]
//! ```
//!
//! Workload (the same key layout as `fleuve-projections`' embedded backend):
//!
//! 1. **upserts**: 10,000 users × 50 contents, ~120-byte JSON rows; batches of 500
//!    upserts (distinct keys within a batch), each upsert = read the old row, write the new
//!    row, delete the old index entry (if any), write the new index entry
//!    (user ⟂ descending time ⟂ content); plus one checkpoint key per batch; one atomic
//!    commit per batch.
//! 2. **point reads**: random rows among those written.
//! 3. **scans**: the first 20 entries of a random user's most-recent-first index, each
//!    followed by the row read (what `list_progress` does).
//!
//! Each engine runs under two durability levels (see `docs/storage-engine.md`):
//!
//! * `os-buffer`: fjall `PersistMode::Buffer` (journal written to the OS at each commit:
//!   survives a process crash, not a power loss) vs redb `Durability::None` (no fsync; redb
//!   documents no guarantee at all for such commits until a later durable one, not even
//!   against a process crash). The "cheapest commit" of each engine.
//! * `fsync`: fjall `PersistMode::SyncData` (fdatasync of the journal) vs redb
//!   `Durability::Immediate` (fsync at commit): both survive power loss.
//!
//! Prints a table and writes JSON to `target/bench/store-engines.json`.

#![expect(clippy::print_stdout, reason = "the program's output")]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

const USERS: u32 = 10_000;
const CONTENTS: u32 = 50;
const BATCH: usize = 500;
const SCAN_LEN: usize = 20;
/// Block/page cache of each engine, equal for fairness (fjall's default is 32 MiB, redb's
/// 1 GiB); the data set (~100 MiB) fits.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Workload
// ---------------------------------------------------------------------------------------

/// xorshift64*: deterministic and dependency-free; both engines see the same sequence.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

fn user_id(u: u32) -> String {
    format!("user-{u:08}")
}
fn content_id(c: u32) -> String {
    format!("content-{c:06}")
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn row_key(u: u32, c: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    put_str(&mut k, &user_id(u));
    put_str(&mut k, &content_id(c));
    k
}

fn user_prefix(u: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(20);
    put_str(&mut k, &user_id(u));
    k
}

fn recent_key(u: u32, at_ms: i64, c: u32) -> Vec<u8> {
    let mut k = user_prefix(u);
    k.extend_from_slice(&(!((at_ms as u64) ^ (1 << 63))).to_be_bytes());
    put_str(&mut k, &content_id(c));
    k
}

/// A row value shaped like the embedded backend's (format byte + JSON), ~120 bytes.
fn row_value(at_ms: i64, offset: i64, rng: &mut Rng) -> Vec<u8> {
    let mut v = vec![1u8];
    let json = format!(
        r#"{{"position_ms":{},"duration_ms":5400000,"device":"android-tv","event_id":"0190a1b2-{:04x}-7000-8000-{:012x}","occurred_at_ms":{at_ms},"offset":{offset}}}"#,
        rng.below(5_400_000),
        rng.below(0xffff),
        rng.next() & 0xffff_ffff_ffff
    );
    v.extend_from_slice(json.as_bytes());
    v
}

/// Reads the occurred_at back from a stored value (to find the old index entry).
fn occurred_at(value: &[u8]) -> Result<i64> {
    let s = std::str::from_utf8(value.get(1..).unwrap_or_default())?;
    let i = s
        .find(r#""occurred_at_ms":"#)
        .context("no occurred_at_ms")?
        + 17;
    let end = s[i..].find(',').context("bad row")? + i;
    Ok(s[i..end].parse()?)
}

fn checkpoint_key() -> Vec<u8> {
    let mut k = Vec::new();
    put_str(&mut k, "user_progress");
    put_str(&mut k, "user-activity");
    k.extend_from_slice(&(1u32 << 31).to_be_bytes()); // partition 0, sign bit flipped
    k
}

/// Batches of (user, content, occurred_at, offset), distinct keys within a batch, event
/// times increasing so that every upsert wins.
fn make_batches(upserts: usize, seed: u64) -> Vec<Vec<(u32, u32, i64, i64)>> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut offset = 0i64;
    let mut at = 1_700_000_000_000i64;
    while offset < upserts as i64 {
        let mut seen = HashSet::new();
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH && offset < upserts as i64 {
            let (u, c) = (rng.below(USERS), rng.below(CONTENTS));
            if seen.insert((u, c)) {
                at += 1 + i64::from(rng.below(3));
                batch.push((u, c, at, offset));
                offset += 1;
            }
        }
        out.push(batch);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Durability {
    OsBuffer,
    Fsync,
}

trait Engine {
    fn name(&self) -> &'static str;
    fn durability_setting(&self) -> &'static str;
    /// Applies one batch atomically; returns the number of old index entries deleted.
    fn apply(&mut self, batch: &[(u32, u32, i64, i64)], rng: &mut Rng) -> Result<usize>;
    /// Reads one row; returns its length (0 if absent).
    fn get(&self, key: &[u8]) -> Result<usize>;
    /// Reads the first `SCAN_LEN` index entries of a user and their rows; returns the count.
    fn scan(&self, prefix: &[u8]) -> Result<usize>;
    /// Makes everything durable before measuring disk usage.
    fn finish(&mut self) -> Result<()>;
}

struct Fjall {
    db: fjall::Database,
    rows: fjall::Keyspace,
    recent: fjall::Keyspace,
    checkpoints: fjall::Keyspace,
    mode: fjall::PersistMode,
}

impl Fjall {
    fn open(dir: &Path, durability: Durability) -> Result<Self> {
        let db = fjall::Database::builder(dir)
            .cache_size(CACHE_BYTES)
            .open()?;
        let ks = |n: &str| db.keyspace(n, fjall::KeyspaceCreateOptions::default);
        Ok(Self {
            rows: ks("progress")?,
            recent: ks("progress_recent")?,
            checkpoints: ks("checkpoints")?,
            mode: match durability {
                Durability::OsBuffer => fjall::PersistMode::Buffer,
                Durability::Fsync => fjall::PersistMode::SyncData,
            },
            db,
        })
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }
    fn durability_setting(&self) -> &'static str {
        match self.mode {
            fjall::PersistMode::Buffer => "PersistMode::Buffer",
            fjall::PersistMode::SyncData => "PersistMode::SyncData",
            fjall::PersistMode::SyncAll => "PersistMode::SyncAll",
        }
    }
    fn apply(&mut self, batch: &[(u32, u32, i64, i64)], rng: &mut Rng) -> Result<usize> {
        let mut wb = self.db.batch().durability(Some(self.mode));
        let mut deleted = 0;
        let mut last = 0;
        for &(u, c, at, off) in batch {
            let key = row_key(u, c);
            if let Some(old) = self.rows.get(&key)? {
                wb.remove(&self.recent, recent_key(u, occurred_at(&old)?, c));
                deleted += 1;
            }
            wb.insert(&self.rows, key, row_value(at, off, rng));
            wb.insert(&self.recent, recent_key(u, at, c), Vec::new());
            last = off;
        }
        wb.insert(
            &self.checkpoints,
            checkpoint_key(),
            (last + 1).to_be_bytes().to_vec(),
        );
        wb.commit()?;
        Ok(deleted)
    }
    fn get(&self, key: &[u8]) -> Result<usize> {
        Ok(self.rows.get(key)?.map_or(0, |v| v.len()))
    }
    fn scan(&self, prefix: &[u8]) -> Result<usize> {
        use fjall::Readable as _;
        let snap = self.db.snapshot();
        let mut n = 0;
        for g in snap.prefix(&self.recent, prefix).take(SCAN_LEN) {
            let key = g.key()?;
            // Row key = user prefix + length-prefixed content id after the 8 time bytes.
            let mut rk = prefix.to_vec();
            rk.extend_from_slice(&key[prefix.len() + 8..]);
            if snap.get(&self.rows, &rk)?.is_none() {
                bail!("index entry without row");
            }
            n += 1;
        }
        Ok(n)
    }
    fn finish(&mut self) -> Result<()> {
        // Flush the memtables to tables, as a long-running store would have done.
        for ks in [&self.rows, &self.recent, &self.checkpoints] {
            ks.rotate_memtable_and_wait()?;
        }
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

const R_ROWS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("progress");
const R_RECENT: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new("progress_recent");
const R_CHECKPOINTS: redb::TableDefinition<&[u8], &[u8]> =
    redb::TableDefinition::new("checkpoints");

struct Redb {
    db: redb::Database,
    durability: Durability,
}

impl Redb {
    fn open(file: &Path, durability: Durability) -> Result<Self> {
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES as usize)
            .create(file)?;
        let tx = db.begin_write()?;
        tx.open_table(R_ROWS)?;
        tx.open_table(R_RECENT)?;
        tx.open_table(R_CHECKPOINTS)?;
        tx.commit()?;
        Ok(Self { db, durability })
    }
}

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }
    fn durability_setting(&self) -> &'static str {
        match self.durability {
            Durability::OsBuffer => "Durability::None",
            Durability::Fsync => "Durability::Immediate",
        }
    }
    fn apply(&mut self, batch: &[(u32, u32, i64, i64)], rng: &mut Rng) -> Result<usize> {
        use redb::ReadableTable as _;
        let mut tx = self.db.begin_write()?;
        tx.set_durability(match self.durability {
            Durability::OsBuffer => redb::Durability::None,
            Durability::Fsync => redb::Durability::Immediate,
        })?;
        let mut deleted = 0;
        {
            let mut rows = tx.open_table(R_ROWS)?;
            let mut recent = tx.open_table(R_RECENT)?;
            let mut cps = tx.open_table(R_CHECKPOINTS)?;
            let mut last = 0;
            for &(u, c, at, off) in batch {
                let key = row_key(u, c);
                let old_at = match rows.get(key.as_slice())? {
                    Some(old) => Some(occurred_at(old.value())?),
                    None => None,
                };
                if let Some(old_at) = old_at {
                    recent.remove(recent_key(u, old_at, c).as_slice())?;
                    deleted += 1;
                }
                rows.insert(key.as_slice(), row_value(at, off, rng).as_slice())?;
                recent.insert(recent_key(u, at, c).as_slice(), ())?;
                last = off;
            }
            cps.insert(
                checkpoint_key().as_slice(),
                (last + 1).to_be_bytes().as_slice(),
            )?;
        }
        tx.commit()?;
        Ok(deleted)
    }
    fn get(&self, key: &[u8]) -> Result<usize> {
        use redb::ReadableDatabase as _;
        let tx = self.db.begin_read()?;
        let rows = tx.open_table(R_ROWS)?;
        Ok(rows.get(key)?.map_or(0, |v| v.value().len()))
    }
    fn scan(&self, prefix: &[u8]) -> Result<usize> {
        use redb::ReadableDatabase as _;
        let tx = self.db.begin_read()?;
        let recent = tx.open_table(R_RECENT)?;
        let rows = tx.open_table(R_ROWS)?;
        let mut n = 0;
        for entry in recent.range(prefix..)?.take(SCAN_LEN) {
            let (k, _) = entry?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let mut rk = prefix.to_vec();
            rk.extend_from_slice(&key[prefix.len() + 8..]);
            if rows.get(rk.as_slice())?.is_none() {
                bail!("index entry without row");
            }
            n += 1;
        }
        Ok(n)
    }
    fn finish(&mut self) -> Result<()> {
        // One durable commit so that the `None` commits are persisted and freed pages reused.
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        tx.commit()?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct RunResult {
    engine: &'static str,
    durability: Durability,
    setting: &'static str,
    upserts: usize,
    batches: usize,
    index_entries_moved: usize,
    upsert_secs: f64,
    upserts_per_sec: f64,
    batch_commit_p50_ms: f64,
    batch_commit_p99_ms: f64,
    point_reads: usize,
    point_reads_per_sec: f64,
    scans: usize,
    scan_rows_returned: usize,
    scans_per_sec: f64,
    /// Allocated bytes on disk after a final durable flush.
    disk_bytes: u64,
    /// Sum of file lengths (includes sparse pre-allocation).
    disk_apparent_bytes: u64,
    /// Allocated bytes of write-ahead journal files (fjall `*.jnl`; 0 for redb), included
    /// in `disk_bytes`: the part a long-running store reclaims once memtables are flushed.
    journal_bytes: u64,
}

/// (apparent bytes, allocated bytes) of a file or directory tree. Allocated bytes (like
/// `du`) is what counts: fjall pre-allocates its journal files sparsely.
fn dir_size(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok((meta.len(), meta.blocks() * 512));
    }
    let (mut apparent, mut allocated) = (0, 0);
    for entry in std::fs::read_dir(path)? {
        let (a, b) = dir_size(&entry?.path())?;
        apparent += a;
        allocated += b;
    }
    Ok((apparent, allocated))
}

fn journal_size(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "jnl") {
            total += entry.metadata()?.blocks() * 512;
        }
    }
    Ok(total)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

#[derive(Debug, Clone)]
struct Opts {
    upserts: usize,
    reads: usize,
    scans: usize,
    out: PathBuf,
    work: PathBuf,
    /// Keep the databases after the run (to inspect them).
    keep: bool,
}

fn run(
    engine: &mut dyn Engine,
    data_path: &Path,
    durability: Durability,
    batches: &[Vec<(u32, u32, i64, i64)>],
    opts: &Opts,
) -> Result<RunResult> {
    // Upserts.
    let mut rng = Rng(0x5eed_0ff1_e0e0);
    let mut commit_times = Vec::with_capacity(batches.len());
    let mut moved = 0;
    let start = Instant::now();
    for b in batches {
        let t = Instant::now();
        moved += engine.apply(b, &mut rng)?;
        commit_times.push(t.elapsed());
    }
    let upsert_secs = start.elapsed().as_secs_f64();
    commit_times.sort_unstable();
    let upserts: usize = batches.iter().map(Vec::len).sum();

    // Point reads of written rows.
    let written: Vec<(u32, u32)> = {
        let set: HashSet<(u32, u32)> = batches.iter().flatten().map(|r| (r.0, r.1)).collect();
        let mut v: Vec<_> = set.into_iter().collect();
        v.sort_unstable();
        v
    };
    let keys: Vec<Vec<u8>> = {
        let mut rng = Rng(0xdead_beef);
        (0..opts.reads)
            .map(|_| {
                let (u, c) = written[rng.below(written.len() as u32) as usize];
                row_key(u, c)
            })
            .collect()
    };
    let start = Instant::now();
    for k in &keys {
        if engine.get(k)? == 0 {
            bail!("{}: a written row is missing", engine.name());
        }
    }
    let read_secs = start.elapsed().as_secs_f64();

    // Scans.
    let prefixes: Vec<Vec<u8>> = {
        let mut rng = Rng(0xfeed_f00d);
        (0..opts.scans)
            .map(|_| user_prefix(rng.below(USERS)))
            .collect()
    };
    let start = Instant::now();
    let mut returned = 0;
    for p in &prefixes {
        returned += engine.scan(p)?;
    }
    let scan_secs = start.elapsed().as_secs_f64();

    engine.finish()?;
    let (disk_apparent_bytes, disk_bytes) = dir_size(data_path)?;
    let journal_bytes = journal_size(data_path)?;
    Ok(RunResult {
        engine: engine.name(),
        durability,
        setting: engine.durability_setting(),
        upserts,
        batches: batches.len(),
        index_entries_moved: moved,
        upsert_secs,
        upserts_per_sec: upserts as f64 / upsert_secs,
        batch_commit_p50_ms: percentile(&commit_times, 0.5),
        batch_commit_p99_ms: percentile(&commit_times, 0.99),
        point_reads: opts.reads,
        point_reads_per_sec: opts.reads as f64 / read_secs,
        scans: opts.scans,
        scan_rows_returned: returned,
        scans_per_sec: opts.scans as f64 / scan_secs,
        disk_bytes,
        disk_apparent_bytes,
        journal_bytes,
    })
}

// ---------------------------------------------------------------------------------------
// Crash probe: what survives a SIGKILL right after commits returned, at the cheapest
// durability of each engine.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct CrashProbe {
    engine: &'static str,
    setting: &'static str,
    batches_reported_committed: i64,
    batches_found_after_kill_9: i64,
}

/// Child side: commits batches forever, printing each one after its commit returned.
fn crash_child(engine: &str, path: &Path) -> Result<()> {
    use std::io::Write as _;
    let batches = make_batches(1_000_000, 7);
    let mut rng = Rng(1);
    let mut e: Box<dyn Engine> = match engine {
        "fjall" => Box::new(Fjall::open(path, Durability::OsBuffer)?),
        _ => Box::new(Redb::open(&path.join("db.redb"), Durability::OsBuffer)?),
    };
    let mut out = std::io::stdout().lock();
    for (n, b) in batches.iter().enumerate() {
        e.apply(b, &mut rng)?;
        writeln!(out, "committed {n} {}", b.last().map_or(0, |r| r.3) + 1)?;
        out.flush()?;
    }
    Ok(())
}

fn read_checkpoint(engine: &str, path: &Path) -> Result<Option<i64>> {
    let raw: Option<Vec<u8>> = match engine {
        "fjall" => {
            let db = fjall::Database::builder(path).open()?;
            let ks = db.keyspace("checkpoints", fjall::KeyspaceCreateOptions::default)?;
            ks.get(checkpoint_key())?.map(|v| v.to_vec())
        }
        _ => {
            use redb::ReadableDatabase as _;
            let db = redb::Database::create(path.join("db.redb"))?;
            let tx = db.begin_read()?;
            let t = tx.open_table(R_CHECKPOINTS)?;
            let v = t
                .get(checkpoint_key().as_slice())?
                .map(|v| v.value().to_vec());
            v
        }
    };
    Ok(match raw {
        Some(v) => Some(i64::from_be_bytes(v.as_slice().try_into()?)),
        None => None,
    })
}

fn crash_probe(work: &Path) -> Result<Vec<CrashProbe>> {
    use std::io::BufRead as _;
    let mut out = Vec::new();
    for engine in ["fjall", "redb"] {
        let path = work.join(format!("crash-{engine}"));
        std::fs::create_dir_all(&path)?;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["--crash-child", engine])
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("no child stdout")?;
        let mut reported = (-1i64, 0i64);
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            let mut parts = line.split_whitespace().skip(1);
            if let (Some(n), Some(next)) = (parts.next(), parts.next()) {
                reported = (n.parse()?, next.parse()?);
                if reported.0 >= 20 {
                    break;
                }
            }
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        let next = read_checkpoint(engine, &path)?;
        // Batches are 500 upserts with consecutive offsets: checkpoint / 500 = batches.
        let found = next.map_or(0, |n| n / BATCH as i64);
        out.push(CrashProbe {
            engine: if engine == "fjall" { "fjall" } else { "redb" },
            setting: if engine == "fjall" {
                "PersistMode::Buffer"
            } else {
                "Durability::None"
            },
            batches_reported_committed: reported.0 + 1,
            batches_found_after_kill_9: found,
        });
        std::fs::remove_dir_all(&path).ok();
    }
    Ok(out)
}

fn parse_args() -> Result<Opts> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut opts = Opts {
        upserts: 200_000,
        reads: 100_000,
        scans: 20_000,
        out: target.join("bench/store-engines.json"),
        work: target.join("bench/store-engines-data"),
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--upserts" => opts.upserts = val()?.parse()?,
            "--reads" => opts.reads = val()?.parse()?,
            "--scans" => opts.scans = val()?.parse()?,
            "--out" => opts.out = val()?.into(),
            "--work-dir" => opts.work = val()?.into(),
            "--keep" => opts.keep = true,
            "-h" | "--help" => {
                println!(
                    "store-engines [--upserts N] [--reads N] [--scans N] [--out FILE] [--work-dir DIR] [--keep]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(opts)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, engine, path] = args.as_slice() {
        if flag == "--crash-child" {
            return crash_child(engine, Path::new(path));
        }
    }
    let opts = parse_args()?;
    let batches = make_batches(opts.upserts, 42);
    if opts.work.exists() {
        std::fs::remove_dir_all(&opts.work)?;
    }
    std::fs::create_dir_all(&opts.work)?;
    println!(
        "workload (cache {} MiB per engine): {} upserts in {} batches of {BATCH} ({USERS} users x {CONTENTS} contents), {} point reads, {} scans of {SCAN_LEN}",
        CACHE_BYTES >> 20,
        opts.upserts,
        batches.len(),
        opts.reads,
        opts.scans
    );
    println!(
        "data under {} (same filesystem for both engines)",
        opts.work.display()
    );

    let mut results = Vec::new();
    for durability in [Durability::OsBuffer, Durability::Fsync] {
        for engine in ["fjall", "redb"] {
            let tag = format!("{engine}-{durability:?}").to_lowercase();
            let path = opts.work.join(&tag);
            let result = match engine {
                "fjall" => {
                    let mut e = Fjall::open(&path, durability)?;
                    run(&mut e, &path, durability, &batches, &opts)?
                }
                _ => {
                    std::fs::create_dir_all(&path)?;
                    let file = path.join("db.redb");
                    let mut e = Redb::open(&file, durability)?;
                    run(&mut e, &path, durability, &batches, &opts)?
                }
            };
            println!(
                "  done: {engine:5} {durability:?}: {:.0} upserts/s",
                result.upserts_per_sec
            );
            results.push(result);
            if !opts.keep {
                std::fs::remove_dir_all(&path).ok();
            }
        }
    }

    let crash = crash_probe(&opts.work)?;

    println!();
    println!(
        "| engine | durability (setting) | upserts/s | batch p50 / p99 ms | point reads/s | scans/s | disk MiB (of which journal) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &results {
        println!(
            "| {} | {:?} ({}) | {:.0} | {:.1} / {:.1} | {:.0} | {:.0} | {:.1} ({:.1}) |",
            r.engine,
            r.durability,
            r.setting,
            r.upserts_per_sec,
            r.batch_commit_p50_ms,
            r.batch_commit_p99_ms,
            r.point_reads_per_sec,
            r.scans_per_sec,
            r.disk_bytes as f64 / (1024.0 * 1024.0),
            r.journal_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    #[derive(Serialize)]
    struct Ratio {
        durability: Durability,
        upserts: f64,
        point_reads: f64,
        scans: f64,
        disk: f64,
    }
    let mut ratios = Vec::new();
    println!();
    println!("| durability | fjall/redb upserts | point reads | scans | disk size |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for pair in results.chunks(2) {
        let [f, r] = pair else { continue };
        let ratio = Ratio {
            durability: f.durability,
            upserts: f.upserts_per_sec / r.upserts_per_sec,
            point_reads: f.point_reads_per_sec / r.point_reads_per_sec,
            scans: f.scans_per_sec / r.scans_per_sec,
            disk: f.disk_bytes as f64 / r.disk_bytes as f64,
        };
        println!(
            "| {:?} | {:.2} | {:.2} | {:.2} | {:.2} |",
            ratio.durability, ratio.upserts, ratio.point_reads, ratio.scans, ratio.disk
        );
        ratios.push(ratio);
    }

    println!();
    println!(
        "| SIGKILL probe | setting | batches whose commit returned | batches found after reopen |"
    );
    println!("| --- | --- | ---: | ---: |");
    for c in &crash {
        println!(
            "| {} | {} | {} | {} |",
            c.engine, c.setting, c.batches_reported_committed, c.batches_found_after_kill_9
        );
    }

    #[derive(Serialize)]
    struct Report<'a> {
        workload: serde_json::Value,
        fjall_version: &'static str,
        redb_version: &'static str,
        results: &'a [RunResult],
        ratios_fjall_over_redb: Vec<Ratio>,
        crash_probe: Vec<CrashProbe>,
    }
    let report = Report {
        workload: serde_json::json!({
            "users": USERS, "contents": CONTENTS, "batch_size": BATCH,
            "upserts": opts.upserts, "point_reads": opts.reads,
            "scans": opts.scans, "scan_len": SCAN_LEN, "cache_bytes_per_engine": CACHE_BYTES,
        }),
        fjall_version: "3 (see Cargo.lock)",
        redb_version: "4 (see Cargo.lock)",
        results: &results,
        ratios_fjall_over_redb: ratios,
        crash_probe: crash,
    };
    if let Some(dir) = opts.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.out, serde_json::to_vec_pretty(&report)?)?;
    println!();
    println!("JSON written to {}", opts.out.display());
    if !opts.keep {
        std::fs::remove_dir_all(&opts.work).ok();
    }
    Ok(())
}

//! `rebuild-throughput`: how long rebuilding a projection beside the live one takes, against
//! the live processor building the same projection from scratch, in one run.
//!
//! ```text
//! cargo run -p fleuve-bench --release --bin rebuild-throughput [-- OPTIONS]
//!   --broker mock|tansu    broker (default mock: in process, no Tansu needed)
//!   --events N             PlaybackProgressed events on the topic (default 1000000)
//!   --partitions P         partitions of `user-activity` (default 3 on Tansu; on the mock,
//!                          one per 100,000 events, at least 3: see below)
//!   --out PATH             JSON results (default target/bench/rebuild.json)
//! ```
//!
//! 1. N `PlaybackProgressed` heartbeats (50,000 users, two contents each, ten heartbeats per
//!    content, users interleaved) are published to `user-activity` with the `Publisher`; our
//!    schema registry runs in this process. librdkafka's MockCluster keeps at most 5 MiB of
//!    record batches per partition (`rdkafka_mock.c`, `max_size`, not configurable) and drops
//!    the oldest beyond: about 150,000 of these events (lz4, ~33 bytes each). So on the mock
//!    the topic gets one partition per 100,000 events (10 for 1,000,000), and the bench fails
//!    if any partition does not start at offset 0.
//! 2. **Baseline**: the live `Processor` (`user_progress` handler, `follow_versions`, an
//!    embedded store in a temporary directory behind `Versions::open`) builds version 1 from
//!    scratch. Timed from its start (its consumer group join included) and from its partition
//!    assignment (its first checkpoint read) to the store's checkpoints reaching the end
//!    offsets.
//! 3. **Rebuild**, the live processor still running: `Rebuilds::start` builds version 2 of
//!    `user_progress` (bounded processor reading every partition from the start to the end
//!    offsets into the namespace `user_progress.v2`), then switches the writer and the
//!    reader. Build time = `created_at` → `built_at` of the version's description, total
//!    time = `created_at` → `live_at` (the switch included, whose writer grace is 2 s).
//! 4. **Correctness**: every table of `user_progress` is scanned in version 1 (the base
//!    store) and version 2 (`Namespaced::view`), page by page, and must be identical, as must
//!    the checkpoints; the bench fails otherwise.
//!
//! The MockCluster and the registry run inside this process, so their CPU is in the CPU
//! figures; Tansu (binary from `FLEUVE_TANSU` or `~/.cache/fleuve/tools/bin/tansu`) runs as a
//! child process; with 1,000,000 events a Tansu run takes about 2.5 minutes, a minute of it
//! publishing.

#![expect(clippy::print_stdout, reason = "the program's output")]

/// The allocator of the `fleuve` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use fleuve_bench::{fmt_rate, loadavg, now_ms, process_cpu_s, write_json, Env};
use fleuve_bench::{BrokerKind, Machine};
use fleuve_kafka::topics::{platform_topics, TopicSpec, USER_ACTIVITY};
use fleuve_kafka::KafkaConfig;
use fleuve_processors::handlers;
use fleuve_processors::rebuild::{BuildRequest, Rebuilds};
use fleuve_processors::runtime::{Processor, ProcessorConfig};
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_projections::progress::{PROJECTION, TABLES};
use fleuve_projections::versions::{Namespaced, Routing, VersionState, Versions};
use fleuve_projections::{Checkpoint, Store, TableRow};
use fleuve_schemas::PlaybackProgressed;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Partitions of the event topics (as `make run` creates them).
const PARTITIONS: i32 = 3;
/// Events per partition on the MockCluster, which keeps about 150,000 of them (see the
/// module docs).
const MOCK_EVENTS_PER_PARTITION: usize = 100_000;
const USERS: usize = 50_000;
const CONTENTS: usize = 2_000;
/// Heartbeats of one viewing (a user on one content) before the user moves on.
const HEARTBEATS: usize = 10;
/// Events per `publish_batch`.
const PUBLISH_BATCH: usize = 10_000;
/// How long the idle CPU is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// Rows per page of the correctness scan.
const SCAN_PAGE: usize = 5_000;
/// Longest the baseline build or the rebuild may take before the bench gives up.
const TIMEOUT: Duration = Duration::from_secs(900);

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct Options {
    broker: BrokerKind,
    events: usize,
    partitions: i32,
    #[serde(skip)]
    out: PathBuf,
}

fn options() -> Result<Options> {
    let mut o = Options {
        broker: BrokerKind::Mock,
        events: 1_000_000,
        partitions: 0,
        out: PathBuf::from("target/bench/rebuild.json"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--broker" => {
                o.broker = match value()?.as_str() {
                    "mock" => BrokerKind::Mock,
                    "tansu" => BrokerKind::Tansu,
                    other => bail!("unknown broker `{other}`: mock or tansu"),
                }
            }
            "--events" => o.events = value()?.parse()?,
            "--partitions" => o.partitions = value()?.parse()?,
            "--out" => o.out = PathBuf::from(value()?),
            "-h" | "--help" => {
                println!(
                    "see the header of bench/src/bin/rebuild_throughput.rs or docs/benchmarks.md"
                );
                std::process::exit(0);
            }
            other => {
                bail!("unknown option `{other}` (see the doc comment of rebuild_throughput.rs)")
            }
        }
    }
    ensure!(o.events > 0, "--events must be > 0");
    if o.partitions == 0 {
        o.partitions = match o.broker {
            BrokerKind::Tansu => PARTITIONS,
            BrokerKind::Mock => {
                i32::try_from(o.events.div_ceil(MOCK_EVENTS_PER_PARTITION))?.max(PARTITIONS)
            }
        };
    }
    ensure!(o.partitions > 0, "--partitions must be > 0");
    Ok(o)
}

// ---------------------------------------------------------------------------------------
// Broker, registry, events
// ---------------------------------------------------------------------------------------

/// The platform's topics, `user-activity` with `partitions` partitions.
fn topics(partitions: i32) -> Vec<TopicSpec> {
    platform_topics(PARTITIONS)
        .into_iter()
        .map(|t| {
            if t.name == USER_ACTIVITY {
                TopicSpec::new(USER_ACTIVITY, partitions)
            } else {
                t
            }
        })
        .collect()
}

async fn start(kind: BrokerKind, partitions: i32) -> Result<Env> {
    let mut topics = topics(partitions);
    topics.push(TopicSpec::new(format!("dlq.{PROJECTION}"), 1));
    Env::start(kind, &topics).await
}

fn event_id(i: usize) -> String {
    uuid::Uuid::from_u128(0x00be_7c40_0000_4000_8000_0000_0000_0000 | i as u128).to_string()
}

/// The i-th heartbeat: user `i % USERS` sends [`HEARTBEATS`] heartbeats per content, then
/// moves to another one. One viewing in three is of a two-hour content and stays unfinished
/// (in the continue-watching list); the others reach the end of a 30-minute content
/// (finished: out of the list again).
fn playback(i: usize, occurred_at: i64) -> PlaybackProgressed {
    let user = i % USERS;
    let k = i / USERS;
    let viewing = k / HEARTBEATS;
    let content = (user * 7 + viewing * 13) % CONTENTS;
    let long = (user + viewing).is_multiple_of(3);
    PlaybackProgressed {
        event_id: event_id(i),
        occurred_at,
        producer: "bench".to_owned(),
        correlation_id: None,
        user_id: format!("user-{user:06}"),
        content_id: format!("content-{content:05}"),
        position_ms: ((k % HEARTBEATS) as i64 + 1) * 180_000,
        duration_ms: if long { 7_200_000 } else { 1_800_000 },
        device: if user.is_multiple_of(4) { "tv" } else { "web" }.to_owned(),
    }
}

/// Publishes `n` events in order, a batch at a time. Events/s.
async fn publish(env: &Env, n: usize) -> Result<f64> {
    let publisher = Publisher::new(PublisherConfig::new(
        env.kafka.clone(),
        env.registry_url.clone(),
        "bench",
    ))?;
    let t0 = now_ms() - 86_400_000;
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + PUBLISH_BATCH).min(n);
        let batch: Vec<PlaybackProgressed> = (i..end)
            .map(|j| playback(j, t0 + i64::try_from(j).unwrap_or(i64::MAX)))
            .collect();
        for r in publisher
            .publish_batch(&batch)
            .await
            .context("publishing the topic")?
        {
            r.context("publishing the topic")?;
        }
        i = end;
    }
    publisher.flush(Duration::from_secs(30)).await;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// End offset of each partition of `user-activity`, checking that each still starts at 0.
async fn end_offsets(kafka: &KafkaConfig, partitions: i32) -> Result<Vec<Checkpoint>> {
    let config = kafka.client_config();
    tokio::task::spawn_blocking(move || -> Result<Vec<Checkpoint>> {
        let consumer: BaseConsumer = config.create()?;
        (0..partitions)
            .map(|partition| {
                let (low, high) =
                    consumer.fetch_watermarks(USER_ACTIVITY, partition, Duration::from_secs(10))?;
                ensure!(
                    low == 0,
                    "partition {partition} of {USER_ACTIVITY} starts at {low}, not 0: the broker \
                     dropped its oldest records (the MockCluster keeps 5 MiB per partition); \
                     use more --partitions or fewer --events"
                );
                Ok(Checkpoint {
                    topic: USER_ACTIVITY.to_owned(),
                    partition,
                    next_offset: high,
                })
            })
            .collect()
    })
    .await?
}

/// Whether `checkpoints` have reached every end offset.
fn reached(checkpoints: &[Checkpoint], ends: &[Checkpoint]) -> bool {
    ends.iter().all(|end| {
        end.next_offset == 0
            || checkpoints.iter().any(|c| {
                c.topic == end.topic
                    && c.partition == end.partition
                    && c.next_offset >= end.next_offset
            })
    })
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Baseline {
    what: &'static str,
    /// From the processor's start to its checkpoints at the end offsets.
    seconds: f64,
    events_per_s: f64,
    /// Of which the consumer group join (start → first checkpoint read).
    join_s: f64,
    /// From the first checkpoint read to the end.
    events_per_s_excl_join: f64,
    /// Process CPU from the first checkpoint read to the end, per event.
    cpu_us_per_event: f64,
}

#[derive(Debug, Serialize)]
struct Rebuild {
    what: &'static str,
    version: u32,
    /// Records the build read, as recorded in the version's description.
    records: u64,
    /// `created_at` → `built_at` of the version (ms since the epoch).
    created_at_ms: i64,
    built_at_ms: i64,
    live_at_ms: i64,
    build_s: f64,
    build_events_per_s: f64,
    /// `created_at` → `live_at`: build, writer switch, writer grace, catching up, reader switch.
    total_s: f64,
    total_events_per_s: f64,
    /// Of which the switch (`built_at` → `live_at`).
    switch_s: f64,
    /// Build rounds (the first reads everything; the next finds nothing new and ends it).
    rounds: usize,
    /// From `Rebuilds::start` to the second round seen starting (polled every 20 ms): the
    /// first round, which reads every record; the rest of `build_s` is the second round,
    /// which finds nothing new. `None` when the build took one round.
    first_round_s: Option<f64>,
    /// Process CPU from `Rebuilds::start` to `built_at` seen by the bench (polled every
    /// 20 ms), per event; the idle live processor included.
    cpu_us_per_event: f64,
}

#[derive(Debug, Serialize)]
struct Check {
    /// Rows compared per table (identical in both versions).
    rows: Vec<(String, u64)>,
    checkpoints_v1: Vec<Checkpoint>,
    checkpoints_v2: Vec<Checkpoint>,
    routing_after: Routing,
    v1_state_after: VersionState,
    identical: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    unix_time: u64,
    command: String,
    options: Options,
    broker: String,
    events: usize,
    publish_events_per_s: f64,
    end_offsets: Vec<Checkpoint>,
    baseline: Baseline,
    /// Process CPU, % of one CPU, over 2 s with the live processor idle (between the
    /// baseline and the rebuild).
    idle_cpu_percent: f64,
    rebuild: Rebuild,
    /// Rebuild build events/s / baseline events/s (baseline from its start, join included).
    ratio_build_vs_baseline: f64,
    /// … against the baseline from its partition assignment (join left out).
    ratio_build_vs_baseline_excl_join: f64,
    /// Rebuild events/s up to `live` / baseline events/s (join included).
    ratio_total_vs_baseline: f64,
    check: Check,
    machine: Machine,
    seconds: f64,
    notes: String,
}

// ---------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------

/// Waits until the checkpoints of version 1 reach `ends`.
async fn baseline(
    store: &fleuve_bench::TimedStore,
    ends: &[Checkpoint],
    started: Instant,
    cpu_started: f64,
    task: &tokio::task::JoinHandle<Result<()>>,
    n: usize,
) -> Result<Baseline> {
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let cps = store.checkpoints(PROJECTION).await?;
        if reached(&cps, ends) {
            break;
        }
        if task.is_finished() {
            bail!("the live processor stopped before the end of the topic");
        }
        ensure!(
            started.elapsed() < TIMEOUT,
            "the live processor did not reach the end offsets within {TIMEOUT:?}: {cps:?}"
        );
        if last_print.elapsed() > Duration::from_secs(5) {
            last_print = Instant::now();
            let done: i64 = cps.iter().map(|c| c.next_offset).sum();
            println!(
                "[baseline] {:.0} s: {done} of {n} events applied",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_end = process_cpu_s();
    let (joined, cpu_joined) = store.first_checkpoint().unwrap_or((started, cpu_started));
    let join_s = joined.duration_since(started).as_secs_f64();
    let n = n as f64;
    Ok(Baseline {
        what: "live Processor (user_progress, follow_versions, fresh consumer group, fresh embedded store) builds version 1 from the start of the topic",
        seconds,
        events_per_s: n / seconds,
        join_s,
        events_per_s_excl_join: n / (seconds - join_s),
        cpu_us_per_event: (cpu_end - cpu_joined) * 1e6 / n,
    })
}

/// Starts the rebuild and follows it until its version is live.
async fn rebuild(rebuilds: &Arc<Rebuilds>, versions: &Versions, n: usize) -> Result<Rebuild> {
    let cpu_started = process_cpu_s();
    let started = Instant::now();
    let info = rebuilds
        .start(BuildRequest {
            projection: PROJECTION.to_owned(),
            as_of_ms: None,
            name: None,
        })
        .await
        .context("starting the rebuild")?;
    let version = info.version;
    println!("[rebuild] version {version} of {PROJECTION} started");
    let mut cpu_built = None;
    let mut rounds = 0;
    let mut first_round_s = None;
    let mut last_print = Instant::now();
    let info = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(s) = rebuilds.status(PROJECTION, version) {
            rounds = rounds.max(s.round);
            if s.round >= 2 {
                first_round_s.get_or_insert_with(|| started.elapsed().as_secs_f64());
            }
            if last_print.elapsed() > Duration::from_secs(5) {
                last_print = Instant::now();
                println!(
                    "[rebuild] {:.0} s: {}, round {}, {} records read, {} left in the round",
                    started.elapsed().as_secs_f64(),
                    s.phase,
                    s.round,
                    s.records,
                    s.remaining
                );
            }
        }
        let info = versions.get(PROJECTION, version).await?;
        match info.state {
            VersionState::Building => {}
            VersionState::Switching => {
                cpu_built.get_or_insert_with(process_cpu_s);
            }
            VersionState::Live => break info,
            VersionState::Failed => bail!(
                "the rebuild failed: {}",
                info.error.as_deref().unwrap_or("(no reason recorded)")
            ),
            other => bail!("the rebuild ended in state {other:?}"),
        }
        ensure!(
            started.elapsed() < TIMEOUT,
            "the rebuild did not go live within {TIMEOUT:?} (state {:?}, {:?})",
            info.state,
            rebuilds.status(PROJECTION, version)
        );
    };
    let built_at_ms = info.built_at_ms.context("a live version has no built_at")?;
    let live_at_ms = info.live_at_ms.context("a live version has no live_at")?;
    let build_s = (built_at_ms - info.created_at_ms) as f64 / 1000.0;
    let total_s = (live_at_ms - info.created_at_ms) as f64 / 1000.0;
    let cpu_built = cpu_built.unwrap_or_else(process_cpu_s);
    // Nothing is published during the rebuild: it must have read every record once.
    ensure!(
        info.records == n as u64,
        "the rebuild read {} records, expected {n}",
        info.records
    );
    let n = n as f64;
    Ok(Rebuild {
        what: "Rebuilds::start(user_progress) while the live processor runs: bounded build of version 2, then writer and reader switch",
        version,
        records: info.records,
        created_at_ms: info.created_at_ms,
        built_at_ms,
        live_at_ms,
        build_s,
        build_events_per_s: n / build_s,
        total_s,
        total_events_per_s: n / total_s,
        switch_s: total_s - build_s,
        rounds,
        first_round_s,
        cpu_us_per_event: (cpu_built - cpu_started) * 1e6 / n,
    })
}

/// Compares one table in two store views, page by page. Rows compared.
async fn compare_table(a: &dyn Store, b: &dyn Store, table: &str) -> Result<u64> {
    let mut after: Option<(String, String)> = None;
    let mut rows = 0u64;
    loop {
        let cursor = after.as_ref().map(|(p, c)| (p.as_str(), c.as_str()));
        let (pa, pb) = (
            a.scan_table(table, cursor, SCAN_PAGE).await?,
            b.scan_table(table, cursor, SCAN_PAGE).await?,
        );
        if pa != pb {
            let at = pa.iter().zip(&pb).position(|(x, y)| x != y);
            let show = |r: Option<&TableRow>| {
                r.map_or_else(
                    || "(no row)".to_owned(),
                    |r| {
                        format!(
                            "{}/{}: {}",
                            r.pk,
                            r.ck,
                            String::from_utf8_lossy(&r.value[..r.value.len().min(200)])
                        )
                    },
                )
            };
            let i = at.unwrap_or(pa.len().min(pb.len()));
            bail!(
                "table `{table}` differs between version 1 and version 2 after {} identical rows: \
                 v1 has {}, v2 has {}",
                rows + i as u64,
                show(pa.get(i)),
                show(pb.get(i))
            );
        }
        let Some(last) = pa.last() else { break };
        rows += pa.len() as u64;
        after = Some((last.pk.clone(), last.ck.clone()));
    }
    Ok(rows)
}

async fn check(versions: &Versions, base: &Arc<dyn Store>, version: u32) -> Result<Check> {
    let v2 = Namespaced::view(Arc::clone(base), PROJECTION, version);
    let mut rows = Vec::new();
    for table in TABLES {
        let n = compare_table(&**base, &*v2, table).await?;
        println!("[check] {table}: {n} rows, identical in version 1 and version {version}");
        rows.push(((*table).to_owned(), n));
    }
    let sorted = |mut c: Vec<Checkpoint>| {
        c.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        c
    };
    let checkpoints_v1 = sorted(base.checkpoints(PROJECTION).await?);
    let checkpoints_v2 = sorted(v2.checkpoints(PROJECTION).await?);
    ensure!(
        checkpoints_v1 == checkpoints_v2,
        "checkpoints differ: version 1 {checkpoints_v1:?}, version {version} {checkpoints_v2:?}"
    );
    let routing_after = versions
        .routing()
        .get(PROJECTION)
        .copied()
        .unwrap_or_default();
    ensure!(
        routing_after
            == Routing {
                reader: version,
                writer: version
            },
        "after the switch the routing is {routing_after:?}, expected version {version} for both"
    );
    let v1_state_after = versions.get(PROJECTION, 1).await?.state;
    ensure!(
        v1_state_after == VersionState::Retired,
        "version 1 is {v1_state_after:?} after the switch, expected retired"
    );
    ensure!(
        rows.iter().all(|(_, n)| *n > 0),
        "a table is empty in both versions: {rows:?}; the comparison would prove nothing"
    );
    Ok(Check {
        rows,
        checkpoints_v1,
        checkpoints_v2,
        routing_after,
        v1_state_after,
        identical: true,
    })
}

fn print_table(r: &Report) {
    println!(
        "\nrebuild of {PROJECTION}, {} events on {} ({} partitions), embedded store",
        r.events,
        r.options.broker.label(),
        r.end_offsets.len()
    );
    println!(
        "{:<56} {:>9} {:>10} {:>9}",
        "", "seconds", "events/s", "CPU µs/ev"
    );
    let b = &r.baseline;
    let x = &r.rebuild;
    println!(
        "{:<56} {:>9.1} {:>10} {:>9}",
        "baseline: live processor builds v1",
        b.seconds,
        fmt_rate(b.events_per_s),
        ""
    );
    println!(
        "{:<56} {:>9.1} {:>10} {:>9.2}",
        "  of which after its group join",
        b.seconds - b.join_s,
        fmt_rate(b.events_per_s_excl_join),
        b.cpu_us_per_event
    );
    println!(
        "{:<56} {:>9.1} {:>10} {:>9.2}",
        match x.first_round_s {
            Some(s) => format!(
                "rebuild v{}: build (created → built; 1st round {s:.1} s)",
                x.version
            ),
            None => format!("rebuild v{}: build (created → built)", x.version),
        },
        x.build_s,
        fmt_rate(x.build_events_per_s),
        x.cpu_us_per_event
    );
    println!(
        "{:<56} {:>9.1} {:>10} {:>9}",
        format!(
            "rebuild v{}: until live (switch {:.1} s)",
            x.version, x.switch_s
        ),
        x.total_s,
        fmt_rate(x.total_events_per_s),
        ""
    );
    println!(
        "idle (live processor waiting, between the two): {:.0} % of a CPU",
        r.idle_cpu_percent
    );
    println!(
        "ratio rebuild build / baseline: {:.2} (baseline without its join: {:.2}); until live / baseline: {:.2}",
        r.ratio_build_vs_baseline, r.ratio_build_vs_baseline_excl_join, r.ratio_total_vs_baseline
    );
    let rows: Vec<String> = r
        .check
        .rows
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    println!(
        "check: v1 and v{} identical ({} rows), checkpoints equal, routing v{}/v{}, v1 {:?}",
        x.version,
        rows.join(", "),
        r.check.routing_after.reader,
        r.check.routing_after.writer,
        r.check.v1_state_after
    );
    println!(
        "machine: {} CPUs ({}), load {} → {}; shared and noisy, compare the ratios",
        r.machine.cpus, r.machine.cpu_model, r.machine.loadavg_before, r.machine.loadavg_after
    );
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<()> {
    let opts = options()?;
    // Logs: `RUST_LOG`, else warnings only (the registry's, the processors' and the
    // rebuild's info logs left out). Turned off at the end, when the broker stops under
    // clients still connected.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,librdkafka=error"));
    let (filter, logs) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_target(false))
        .try_init()
        .context("installing the log subscriber")?;
    let loadavg_before = loadavg();
    let started = Instant::now();
    let n = opts.events;

    println!(
        "[setup] starting {}, {USER_ACTIVITY} with {} partitions…",
        opts.broker.describe(),
        opts.partitions
    );
    let env = start(opts.broker, opts.partitions).await?;
    println!("[setup] publishing {n} PlaybackProgressed to {USER_ACTIVITY}…");
    let publish_rate = publish(&env, n).await?;
    let ends = end_offsets(&env.kafka, opts.partitions).await?;
    let total: i64 = ends.iter().map(|c| c.next_offset).sum();
    ensure!(
        total == n as i64,
        "{USER_ACTIVITY} holds {total} records, expected {n}"
    );
    let offsets: Vec<i64> = ends.iter().map(|c| c.next_offset).collect();
    println!(
        "[setup] published at {}/s; end offsets {offsets:?}",
        fmt_rate(publish_rate)
    );

    // The live processor builds version 1.
    let dir = tempfile::tempdir()?;
    let embedded = fleuve_projections::open(&format!("embedded://{}", dir.path().display()))
        .await
        .with_context(|| format!("opening the embedded store in {}", dir.path().display()))?;
    let noted = Arc::new(fleuve_bench::TimedStore::new(embedded, None));
    let base: Arc<dyn Store> = noted.clone();
    let versions = Versions::open(Arc::clone(&base))
        .await
        .context("reading the projection versions")?;
    let config = ProcessorConfig::new(env.kafka.clone(), env.registry_url.clone());
    let handler = handlers::by_name(PROJECTION).context("no user_progress handler")?;
    let shutdown = CancellationToken::new();
    println!("[baseline] the live {PROJECTION} processor builds version 1 from the start…");
    let cpu_started = process_cpu_s();
    let processor_started = Instant::now();
    let processor = Processor::new(config.clone(), handler, Arc::clone(&base))?
        .follow_versions(Arc::clone(&versions));
    let token = shutdown.clone();
    let live = tokio::spawn(async move { processor.run(token).await.map_err(anyhow::Error::from) });
    let baseline = baseline(&noted, &ends, processor_started, cpu_started, &live, n).await?;
    println!(
        "[baseline] {n} events in {:.1} s ({}/s; group join {:.1} s, {}/s after it)",
        baseline.seconds,
        fmt_rate(baseline.events_per_s),
        baseline.join_s,
        fmt_rate(baseline.events_per_s_excl_join)
    );

    // What the process burns with the live processor idle (its consumer's fetches, the
    // mock broker, the registry's reader): part of the rebuild's CPU figure.
    let (idle_wall, idle_cpu) = (Instant::now(), process_cpu_s());
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_cpu_percent = 100.0 * (process_cpu_s() - idle_cpu) / idle_wall.elapsed().as_secs_f64();
    println!(
        "[idle] the process uses {idle_cpu_percent:.0} % of a CPU with the live processor idle"
    );

    // The rebuild, beside the live processor.
    let rebuilds = Rebuilds::new(config, Arc::clone(&versions), shutdown.clone());
    let rebuild = rebuild(&rebuilds, &versions, n).await?;
    println!(
        "[rebuild] built in {:.1} s ({}/s), live after {:.1} s",
        rebuild.build_s,
        fmt_rate(rebuild.build_events_per_s),
        rebuild.total_s
    );
    if live.is_finished() {
        live.await??;
        bail!("the live processor stopped during the rebuild");
    }
    let check = check(&versions, &base, rebuild.version).await?;

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(10), live).await {
        Ok(r) => r??,
        Err(_) => println!("the live processor did not stop within 10 s; left behind"),
    }

    let report = Report {
        bench: "rebuild-throughput",
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        options: opts.clone(),
        broker: opts.broker.describe().to_owned(),
        events: n,
        publish_events_per_s: publish_rate,
        end_offsets: ends,
        ratio_build_vs_baseline: rebuild.build_events_per_s / baseline.events_per_s,
        ratio_build_vs_baseline_excl_join: rebuild.build_events_per_s
            / baseline.events_per_s_excl_join,
        ratio_total_vs_baseline: rebuild.total_events_per_s / baseline.events_per_s,
        baseline,
        idle_cpu_percent,
        rebuild,
        check,
        machine: Machine::measure(
            loadavg_before,
            "shared virtual CPUs (other builds run concurrently): absolute figures are noisy, \
             compare the ratios; the broker (when the mock), the registry and both processors \
             share these CPUs",
        ),
        seconds: started.elapsed().as_secs_f64(),
        notes: format!(
            "broker: {}; the rebuild's times are the version description's created_at, built_at \
             and live_at (ms); its total includes the writer grace of the switch (2 s, \
             rebuild::DEFAULT_WRITER_GRACE); CPU is this process's (CLOCK_PROCESS_CPUTIME_ID)",
            opts.broker.describe()
        ),
    };
    print_table(&report);
    write_json(&opts.out, &report)?;
    println!(
        "\nwrote {} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    // Stop the broker and leave at once; the clients still connected would log its going
    // away.
    let _ = logs.modify(|f| *f = EnvFilter::new("off"));
    drop(env);
    std::process::exit(0)
}

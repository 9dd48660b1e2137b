//! `replay-throughput`: what `fleuve replay` costs compared with a raw Kafka consumer
//! reading the same range.
//!
//! ```text
//! cargo run -p fleuve-bench --release --bin replay-throughput [-- OPTIONS]
//!   --brokers tansu,mock   brokers to measure on (default both)
//!   --events N             events on the topic on Tansu (default 20000)
//!   --mock-events N        … on the MockCluster (default 200000)
//!   --rounds R             interleaved rounds (default 5, ≥ 3)
//!   --out PATH             JSON results (default target/bench/replay.json)
//! ```
//!
//! N events are published once to `user-activity` (3 partitions): `PlaybackProgressed`,
//! `BookmarkAdded` and `BookmarkRemoved` in turn, through the `Publisher`. Then, in rounds
//! whose order alternates, (a) a raw rdkafka `BaseConsumer` with the replay's consumer
//! settings, assigned every partition from the beginning, reads to the end offsets, looking
//! at each record's length and nothing else, and (b) `fleuve_replay::replay` replays the
//! whole topic (registry look-up once per schema id, Avro decode resolved to the current
//! schema, JSON lines) into a file. Each side: records/s and process CPU µs per record
//! (`CLOCK_PROCESS_CPUTIME_ID`); the figure is the median ratio replay / raw over the
//! rounds.
//!
//! Tansu (binary from `FLEUVE_TANSU` or `~/.cache/fleuve/tools/bin/tansu`) runs as a child
//! process, so its CPU is not in the figures; the MockCluster runs inside this process, so
//! its CPU is. Our schema registry runs in this process on each broker.

#![expect(clippy::print_stdout, reason = "the program's output")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fleuve_bench::{fmt_rate, loadavg, median, now_ms, process_cpu_s, write_json, Env};
use fleuve_bench::{BrokerKind, Machine};
use fleuve_kafka::topics::{platform_topics, USER_ACTIVITY};
use fleuve_kafka::KafkaConfig;
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_replay::{NoProgress, ReplayConfig};
use fleuve_schemas::{BookmarkAdded, BookmarkRemoved, PlaybackProgressed};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

const PARTITIONS: i32 = 3;
const USERS: usize = 1000;
const BATCH: usize = 1000;

#[derive(Debug)]
struct Options {
    brokers: Vec<BrokerKind>,
    events: usize,
    mock_events: usize,
    rounds: usize,
    out: PathBuf,
}

fn options() -> Result<Options> {
    let mut o = Options {
        brokers: vec![BrokerKind::Tansu, BrokerKind::Mock],
        events: 20_000,
        mock_events: 200_000,
        rounds: 5,
        out: PathBuf::from("target/bench/replay.json"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--brokers" => {
                o.brokers = value()?
                    .split(',')
                    .map(|b| match b {
                        "tansu" => Ok(BrokerKind::Tansu),
                        "mock" => Ok(BrokerKind::Mock),
                        other => bail!("unknown broker `{other}`: tansu or mock"),
                    })
                    .collect::<Result<_>>()?;
            }
            "--events" => o.events = value()?.parse()?,
            "--mock-events" => o.mock_events = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse()?,
            "--out" => o.out = PathBuf::from(value()?),
            other => {
                bail!("unknown option `{other}` (see the doc comment of replay_throughput.rs)")
            }
        }
    }
    ensure!(o.rounds >= 3, "--rounds must be at least 3");
    Ok(o)
}

async fn start(kind: BrokerKind) -> Result<Env> {
    Env::start(kind, &platform_topics(PARTITIONS)).await
}

fn event_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Publishes `n` events, the three user-activity types in turn, in batches.
async fn publish(env: &Env, n: usize) -> Result<()> {
    let publisher = Publisher::new(PublisherConfig::new(
        env.kafka.clone(),
        &env.registry_url,
        "bench",
    ))?;
    let t0 = now_ms() - 3_600_000;
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        let (mut pp, mut ba, mut br) = (Vec::new(), Vec::new(), Vec::new());
        for j in i..end {
            let user_id = format!("user-{:06}", j % USERS);
            let content_id = format!("content-{:05}", j % 997);
            let occurred_at = t0 + i64::try_from(j)?;
            match j % 3 {
                0 => pp.push(PlaybackProgressed {
                    event_id: event_id(j),
                    occurred_at,
                    producer: "bench".into(),
                    correlation_id: None,
                    user_id,
                    content_id,
                    position_ms: 180_000,
                    duration_ms: 1_800_000,
                    device: "web".into(),
                }),
                1 => ba.push(BookmarkAdded {
                    event_id: event_id(j),
                    occurred_at,
                    producer: "bench".into(),
                    correlation_id: Some(format!("corr-{j}")),
                    user_id,
                    content_id,
                }),
                _ => br.push(BookmarkRemoved {
                    event_id: event_id(j),
                    occurred_at,
                    producer: "bench".into(),
                    correlation_id: None,
                    user_id,
                    content_id,
                }),
            }
        }
        for results in [
            publisher.publish_batch(&pp).await?,
            publisher.publish_batch(&ba).await?,
            publisher.publish_batch(&br).await?,
        ] {
            for r in results {
                r?;
            }
        }
        i = end;
    }
    publisher.flush(Duration::from_secs(30)).await;
    Ok(())
}

/// One side of one round.
#[derive(Debug, Clone, Copy, Serialize)]
struct Run {
    records: u64,
    seconds: f64,
    records_per_s: f64,
    cpu_us_per_record: f64,
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52 are exact in f64"
)]
fn run_of(records: u64, seconds: f64, cpu_s: f64) -> Run {
    Run {
        records,
        seconds,
        records_per_s: records as f64 / seconds,
        cpu_us_per_record: cpu_s * 1e6 / records.max(1) as f64,
    }
}

/// The raw side: every partition from the beginning to its end offset, no decode.
fn raw_read(kafka: &KafkaConfig) -> Result<Run> {
    // Timed like the replay's summary: from the consumer's creation on.
    let (started, cpu) = (Instant::now(), process_cpu_s());
    let mut cfg = kafka.client_config();
    cfg.set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.queue.backoff.ms", "10")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = cfg.create()?;
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (low, high) = consumer.fetch_watermarks(USER_ACTIVITY, p, Duration::from_secs(10))?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(USER_ACTIVITY, p, Offset::Offset(low))?;
        }
    }
    consumer.assign(&tpl)?;
    let (mut records, mut bytes) = (0u64, 0usize);
    let deadline = Instant::now() + Duration::from_secs(600);
    while !ends.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "raw read did not finish in 600 s"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) => bail!("raw consumer: {e}"),
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
                if ends
                    .get(&m.partition())
                    .is_some_and(|e| m.offset() + 1 >= *e)
                {
                    ends.remove(&m.partition());
                }
            }
        }
    }
    std::hint::black_box(bytes);
    Ok(run_of(
        records,
        started.elapsed().as_secs_f64(),
        process_cpu_s() - cpu,
    ))
}

/// The replay side: the whole topic, decoded, as JSON lines into a file.
async fn replay_once(env: &Env, sink: &std::path::Path) -> Result<Run> {
    let config = ReplayConfig::new(env.kafka.clone(), &env.registry_url, USER_ACTIVITY);
    let out = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(sink)?);
    let cpu = process_cpu_s();
    let summary = fleuve_replay::replay(config, Box::new(out), Box::new(NoProgress)).await?;
    ensure!(
        summary.undecodable == 0 && summary.written == summary.read,
        "replay: {summary}"
    );
    Ok(run_of(
        summary.written,
        summary.elapsed.as_secs_f64(),
        process_cpu_s() - cpu,
    ))
}

#[derive(Debug, Serialize)]
struct BrokerResult {
    broker: BrokerKind,
    broker_description: &'static str,
    events: usize,
    raw: Vec<Run>,
    replay: Vec<Run>,
    raw_records_per_s_median: f64,
    replay_events_per_s_median: f64,
    /// Median over the rounds of replay records/s ÷ raw records/s.
    ratio_median: f64,
    /// Median over the rounds of replay CPU per record ÷ raw CPU per record.
    cpu_ratio_median: f64,
    output_bytes_per_event: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    rounds: usize,
    results: Vec<BrokerResult>,
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52 are exact in f64"
)]
async fn measure(kind: BrokerKind, events: usize, rounds: usize) -> Result<BrokerResult> {
    let env = start(kind).await?;
    let t = Instant::now();
    publish(&env, events).await?;
    println!(
        "{}: published {events} events in {:.1} s",
        kind.label(),
        t.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir()?;
    let sink = dir.path().join("replay.jsonl");
    let (mut raw, mut replay) = (Vec::new(), Vec::new());
    // A warm-up of each side (registry look-ups, page cache, connections).
    let kafka = env.kafka.clone();
    tokio::task::spawn_blocking(move || raw_read(&kafka)).await??;
    replay_once(&env, &sink).await?;
    for round in 0..rounds {
        let kafka = env.kafka.clone();
        let raw_side = || async { tokio::task::spawn_blocking(move || raw_read(&kafka)).await? };
        if round % 2 == 0 {
            raw.push(raw_side().await?);
            replay.push(replay_once(&env, &sink).await?);
        } else {
            replay.push(replay_once(&env, &sink).await?);
            raw.push(raw_side().await?);
        }
        let (a, b) = (raw[round], replay[round]);
        ensure!(
            a.records == events as u64 && b.records == events as u64,
            "round {round}: raw read {}, replay {} of {events}",
            a.records,
            b.records
        );
        println!(
            "{} round {round}: raw {} records/s ({:.2} µs CPU), replay {} events/s ({:.2} µs CPU), ratio {:.2}",
            kind.label(),
            fmt_rate(a.records_per_s),
            a.cpu_us_per_record,
            fmt_rate(b.records_per_s),
            b.cpu_us_per_record,
            b.records_per_s / a.records_per_s
        );
    }
    let ratios: Vec<f64> = raw
        .iter()
        .zip(&replay)
        .map(|(a, b)| b.records_per_s / a.records_per_s)
        .collect();
    let cpu_ratios: Vec<f64> = raw
        .iter()
        .zip(&replay)
        .map(|(a, b)| b.cpu_us_per_record / a.cpu_us_per_record)
        .collect();
    let output_bytes = std::fs::metadata(&sink)?.len() as f64;
    Ok(BrokerResult {
        broker: kind,
        broker_description: kind.describe(),
        events,
        raw_records_per_s_median: median(&raw.iter().map(|r| r.records_per_s).collect::<Vec<_>>()),
        replay_events_per_s_median: median(
            &replay.iter().map(|r| r.records_per_s).collect::<Vec<_>>(),
        ),
        ratio_median: median(&ratios),
        cpu_ratio_median: median(&cpu_ratios),
        output_bytes_per_event: output_bytes / events as f64,
        raw,
        replay,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = options()?;
    let before = loadavg();
    let mut results = Vec::new();
    for kind in &opts.brokers {
        let events = match kind {
            BrokerKind::Tansu => opts.events,
            BrokerKind::Mock => opts.mock_events,
        };
        results.push(measure(*kind, events, opts.rounds).await?);
    }
    println!();
    println!("| broker | events | raw records/s | replay events/s | replay / raw | CPU per record, replay / raw |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in &results {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.1}× |",
            r.broker.label(),
            r.events,
            fmt_rate(r.raw_records_per_s_median),
            fmt_rate(r.replay_events_per_s_median),
            r.ratio_median,
            r.cpu_ratio_median
        );
    }
    let report = Report {
        machine: Machine::measure(
            before,
            "replay = decode through the registry + resolve to the current schema + JSON lines to a file",
        ),
        rounds: opts.rounds,
        results,
    };
    write_json(&opts.out, &report)?;
    println!("\nwritten to {}", opts.out.display());
    Ok(())
}

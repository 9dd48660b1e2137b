//! Broker conformance: every Kafka behaviour Fleuve relies on, written once as a scenario
//! (a function of a [`Target`]: a bootstrap address and what broker it is), and run against
//! every broker Fleuve uses:
//!
//! * Tansu (always: [`Broker::start`]);
//! * librdkafka's in-process MockCluster, where the scenario applies (else skipped with the
//!   reason printed);
//! * any broker at `KAFKA_BOOTSTRAP` when it is set (else the suite prints
//!   `SKIPPED (KAFKA_BOOTSTRAP unset)` for it: nothing runs and nothing is counted).
//!
//! Scenarios: idempotent produce and per-key order; offsets-for-times before the start,
//! inside and past the end (the raw answer, and [`fleuve_kafka::time::offsets_at`]'s);
//! committed offsets of a group; headers; compaction (last value per key, tombstones); a
//! group member's crash followed at once by another member's join; a static member's
//! (`group.instance.id`) crash followed at once by its restart.
//!
//! A broker that behaves unlike Kafka in a way Fleuve defends against is a *deviation*: it is
//! named, reported with the defence that covers it, and does not fail the suite; the
//! defence's own check does. [`conformance_suite`] prints, at its end, a table of every
//! broker × scenario with the deviations found and their defences. Each known Tansu deviation
//! also has its own named test (`tansu_deviation_*`) that shows it, or says it was not
//! observed, and checks the defence where it is executable here.
//!
//! The group-crash scenario SIGKILLs a group member: the member is this test binary run
//! again as a child process (`FLEUVE_CONFORMANCE_MEMBER` set), see [`Member`].
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use fleuve_schemas::clock::now_ms;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fleuve_e2e::Broker;
use fleuve_kafka::topics::{ensure_topics, TopicSpec};
use fleuve_kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Longest wait for any one broker operation of a scenario.
const TIMEOUT: Duration = Duration::from_secs(30);
/// librdkafka's default `session.timeout.ms`, which Fleuve's consumers keep.
const SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// A new member that gets its partitions within this long of another member's crash
/// behaves as Kafka does (which waits out the dead member's session).
const REJOIN_EXPECTED: Duration = Duration::from_secs(SESSION_TIMEOUT.as_secs() + 15);
/// How long the group-crash scenario waits for the new member's partitions: past two
/// sessions (the MockCluster takes about that long: 89 s in one run), plus a margin.
const REJOIN_BOUND: Duration = Duration::from_secs(120);
/// How long the compaction scenario watches for the cleaner to remove superseded values.
const COMPACTION_WATCH: Duration = Duration::from_secs(15);
/// How often the suite's Tansu runs its maintenance task (retention, then compaction), so
/// that compaction can be seen within [`COMPACTION_WATCH`] (Tansu's default: 10 minutes).
const TANSU_MAINTENANCE: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------

enum Backend {
    /// Kept until the target is dropped (the broker stops then).
    Tansu {
        _broker: Broker,
    },
    Mock(MockCluster<'static, DefaultProducerContext>),
    External,
}

/// A broker the scenarios run against.
struct Target {
    /// `Tansu 0.6.0`, `MockCluster`, `KAFKA_BOOTSTRAP=…`.
    name: String,
    bootstrap: String,
    backend: Backend,
    /// The test running, which a child process runs again as a group member.
    test: &'static str,
}

impl Target {
    /// Tansu; with `maintenance`, its maintenance task (retention, compaction) runs that
    /// often instead of every 10 minutes.
    fn tansu(test: &'static str, maintenance: Option<Duration>) -> Result<Self> {
        let broker = match maintenance {
            Some(every) => Broker::start_with_maintenance(every)?,
            None => Broker::start()?,
        };
        Ok(Self {
            name: "Tansu 0.6.0".into(),
            bootstrap: broker.bootstrap(),
            backend: Backend::Tansu { _broker: broker },
            test,
        })
    }

    fn mock(test: &'static str) -> Result<Self> {
        let cluster = MockCluster::new(1)?;
        Ok(Self {
            name: "MockCluster".into(),
            bootstrap: cluster.bootstrap_servers(),
            backend: Backend::Mock(cluster),
            test,
        })
    }

    fn external(bootstrap: String, test: &'static str) -> Self {
        Self {
            name: format!("KAFKA_BOOTSTRAP={bootstrap}"),
            bootstrap,
            backend: Backend::External,
            test,
        }
    }

    fn is_mock(&self) -> bool {
        matches!(self.backend, Backend::Mock(_))
    }

    fn is_tansu(&self) -> bool {
        matches!(self.backend, Backend::Tansu { .. })
    }

    fn kafka(&self) -> KafkaConfig {
        KafkaConfig::new(&self.bootstrap).with_client_id("fleuve-conformance")
    }

    /// Creates a topic: through the admin API, or the MockCluster's own (it does not answer
    /// CreateTopics, nor keep topic configs).
    fn create_topic(&self, spec: &TopicSpec) -> Result<()> {
        match &self.backend {
            Backend::Mock(cluster) => Ok(cluster.create_topic(&spec.name, spec.partitions, 1)?),
            Backend::Tansu { .. } | Backend::External => {
                let kafka = self.kafka();
                let specs = [spec.clone()];
                block_on(ensure_topics(&kafka, &specs))?;
                Ok(())
            }
        }
    }
}

/// Runs a future from a scenario's blocking thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

/// A name no earlier run used (an external broker keeps its topics and groups).
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("conformance-{what}-{}-{nanos}", std::process::id())
}

// ---------------------------------------------------------------------------------------
// Outcomes and the report
// ---------------------------------------------------------------------------------------

/// A behaviour unlike Kafka's, and where Fleuve defends against it.
#[derive(Debug, Clone)]
struct Deviation {
    name: &'static str,
    detail: String,
    defence: &'static str,
}

/// What a scenario saw on a broker.
#[derive(Debug, Clone, Default)]
struct Outcome {
    observed: String,
    deviations: Vec<Deviation>,
}

#[derive(Debug)]
enum Verdict {
    Ran(Outcome),
    Skipped(String),
    Failed(String),
}

type Scenario = fn(&Target) -> Result<Option<Outcome>>;

/// The scenarios, by name. A scenario answers `Ok(None)` when it does not apply to the
/// target (it prints why).
const SCENARIOS: [(&str, Scenario); 7] = [
    (
        "1 idempotent produce, per-key order",
        idempotent_produce_keeps_per_key_order,
    ),
    ("2 offsets-for-times", offsets_for_times),
    ("3 committed offsets", committed_offsets),
    ("4 headers", headers_round_trip),
    (
        "5 compaction: last value per key",
        compaction_keeps_the_last_value,
    ),
    ("6 group: crash, then a join", group_crash_then_join),
    (
        "7 static member: crash, then its restart",
        static_member_crash_then_restart,
    ),
];

const OFFSETS_FOR_TIMES_DEFENCE: &str =
    "fleuve_kafka::time::offsets_at checks every answer against the records' timestamps and \
     binary-searches when it is wrong or missing (replay --from/--to, rebuild --as-of)";
const GROUP_CRASH_DEFENCE: &str =
    "processors self-assign partitions on an embedded store (runtime Membership::Owned) and \
     leave and rejoin a group that stalls (runtime stall watchdog)";

const STATIC_MEMBERSHIP_DEFENCE: &str =
    "processor_group_instance_id is optional and off by default; with or without it, a \
     processor whose group stalls leaves and rejoins (runtime stall watchdog)";

/// Every scenario on one target.
fn run_all(target: &Target) -> Vec<(&'static str, Verdict)> {
    SCENARIOS
        .iter()
        .map(|(name, scenario)| {
            let started = Instant::now();
            let verdict = match scenario(target) {
                Ok(Some(outcome)) => Verdict::Ran(outcome),
                Ok(None) => Verdict::Skipped(skip_reason(name, target)),
                Err(e) => Verdict::Failed(format!("{e:#}")),
            };
            eprintln!(
                "[{}] scenario {name}: {} ({:.1} s)",
                target.name,
                match &verdict {
                    Verdict::Ran(o) if o.deviations.is_empty() => "conforms".to_owned(),
                    Verdict::Ran(o) => format!("{} deviation(s)", o.deviations.len()),
                    Verdict::Skipped(why) => format!("SKIPPED ({why})"),
                    Verdict::Failed(e) => format!("FAILED: {e}"),
                },
                started.elapsed().as_secs_f64()
            );
            (*name, verdict)
        })
        .collect()
}

fn skip_reason(scenario: &str, target: &Target) -> String {
    match (scenario.chars().next(), target.is_mock()) {
        (Some('5'), true) => {
            "the MockCluster keeps no topic configs and has no log cleaner: there is no \
             compacted topic to read"
                .into()
        }
        _ => "does not apply".into(),
    }
}

/// The report of a whole run: a table, and the failures.
fn report(
    results: &[(String, Vec<(&'static str, Verdict)>)],
    skipped: &[(String, String)],
) -> (String, Vec<String>) {
    let mut table = String::new();
    let mut failures = Vec::new();
    let mut deviations = Vec::new();
    let _ = writeln!(
        table,
        "\n=== Broker conformance ===\n{:<28} {:<40} result",
        "broker", "scenario"
    );
    for (broker, verdicts) in results {
        for (scenario, verdict) in verdicts {
            let result = match verdict {
                Verdict::Ran(o) if o.deviations.is_empty() => format!("conforms: {}", o.observed),
                Verdict::Ran(o) => {
                    for d in &o.deviations {
                        deviations.push((broker.clone(), d.clone()));
                    }
                    format!(
                        "DEVIATION ({}): {}",
                        o.deviations
                            .iter()
                            .map(|d| d.name)
                            .collect::<Vec<_>>()
                            .join(", "),
                        o.observed
                    )
                }
                Verdict::Skipped(why) => format!("SKIPPED ({why})"),
                Verdict::Failed(e) => {
                    failures.push(format!("{broker} / {scenario}: {e}"));
                    format!("FAILED: {e}")
                }
            };
            let _ = writeln!(table, "{broker:<28} {scenario:<40} {result}");
        }
    }
    for (broker, why) in skipped {
        let _ = writeln!(
            table,
            "{broker:<28} {:<40} SKIPPED ({why})",
            "(every scenario)"
        );
    }
    let _ = writeln!(
        table,
        "\n--- Deviations found, and the defences that cover them ---"
    );
    if deviations.is_empty() {
        let _ = writeln!(table, "(none)");
    }
    for (broker, d) in &deviations {
        let _ = writeln!(
            table,
            "{broker}: {}\n    seen:    {}\n    defence: {}",
            d.name, d.detail, d.defence
        );
    }
    (table, failures)
}

// ---------------------------------------------------------------------------------------
// Reading and writing records
// ---------------------------------------------------------------------------------------

/// One record read back.
#[derive(Debug, Clone)]
struct Rec {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// An assigning consumer (no group joined), reading from the start.
fn reader(kafka: &KafkaConfig) -> Result<BaseConsumer> {
    Ok(kafka
        .client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()?)
}

/// Every record of `topic`, read from the beginning to the end offsets seen at the start.
fn read_all(kafka: &KafkaConfig, topic: &str) -> Result<Vec<Rec>> {
    let consumer = reader(kafka)?;
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .context("topic not in the metadata")?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), TIMEOUT)?;
        if high > low {
            ends.insert(p.id(), high);
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !ends.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "reading `{topic}` back: partitions {:?} not read to their end within {TIMEOUT:?}",
            ends.keys().collect::<Vec<_>>()
        );
        let m = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
                continue;
            }
            Some(Err(e)) => bail!("reading `{topic}` back: {e}"),
            Some(Ok(m)) => m,
        };
        let Some(end) = ends.get(&m.partition()).copied() else {
            continue;
        };
        if m.offset() >= end {
            ends.remove(&m.partition());
            continue;
        }
        if m.offset() + 1 >= end {
            ends.remove(&m.partition());
        }
        out.push(Rec {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    Ok(out)
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
struct Out {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    partition: Option<i32>,
    timestamp: Option<i64>,
    headers: Vec<(&'static str, Option<Vec<u8>>)>,
}

/// Produces `records` in order with Fleuve's idempotent producer settings (all enqueued
/// before the first acknowledgement is awaited); returns where each landed.
fn produce(kafka: &KafkaConfig, topic: &str, records: &[Out]) -> Result<Vec<(i32, i64)>> {
    let producer: FutureProducer = kafka.producer_config().create()?;
    let mut deliveries = Vec::with_capacity(records.len());
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &r.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        if let Some(v) = &r.value {
            record = record.payload(v);
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("enqueuing a record: {e}"))?,
        );
    }
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let delivery = block_on(async { tokio::time::timeout(TIMEOUT, d).await })
            .context("no acknowledgement in time")?
            .context("the producer was dropped")?
            .map_err(|(e, _)| anyhow::anyhow!("delivery failed: {e}"))?;
        out.push((delivery.partition, delivery.offset));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// 1. Idempotent produce, per-key order
// ---------------------------------------------------------------------------------------

/// Fleuve's producers (`enable.idempotence`, `acks=all`) write many records on few keys:
/// each key's records come back in send order, in one partition, none twice, none lost.
fn idempotent_produce_keeps_per_key_order(target: &Target) -> Result<Option<Outcome>> {
    const KEYS: usize = 5;
    const PER_KEY: usize = 200;
    let topic = unique("order");
    target.create_topic(&TopicSpec::new(&topic, 3))?;
    let kafka = target.kafka();
    let records: Vec<Out> = (0..PER_KEY)
        .flat_map(|seq| {
            (0..KEYS).map(move |k| Out {
                key: Some(format!("key-{k}").into_bytes()),
                value: Some(format!("{seq}").into_bytes()),
                ..Out::default()
            })
        })
        .collect();
    let delivered = produce(&kafka, &topic, &records)?;
    let read = read_all(&kafka, &topic)?;
    ensure!(
        read.len() == records.len(),
        "{} records read back, {} sent (duplicates or losses)",
        read.len(),
        records.len()
    );
    let mut per_key: BTreeMap<Vec<u8>, (Vec<usize>, std::collections::BTreeSet<i32>)> =
        BTreeMap::new();
    for r in &read {
        let seq: usize = std::str::from_utf8(r.value.as_deref().context("no value")?)?.parse()?;
        let e = per_key.entry(r.key.clone().context("no key")?).or_default();
        e.0.push(seq);
        e.1.insert(r.partition);
    }
    ensure!(per_key.len() == KEYS, "{} keys read back", per_key.len());
    for (key, (seqs, partitions)) in &per_key {
        let key = String::from_utf8_lossy(key);
        ensure!(
            partitions.len() == 1,
            "key {key} is in partitions {partitions:?}"
        );
        ensure!(
            *seqs == (0..PER_KEY).collect::<Vec<_>>(),
            "key {key}: read back in the order {:?}… (sent 0, 1, 2, …)",
            &seqs[..seqs.len().min(10)]
        );
    }
    // The acknowledged offsets are the offsets read back.
    let mut acked: Vec<(i32, i64)> = delivered;
    acked.sort_unstable();
    let got: Vec<(i32, i64)> = read.iter().map(|r| (r.partition, r.offset)).collect();
    ensure!(
        acked == got,
        "acknowledged offsets differ from those read back"
    );
    Ok(Some(Outcome {
        observed: format!(
            "{} records on {KEYS} keys: per-key order kept, no duplicate, acknowledged offsets \
             are the records'",
            records.len()
        ),
        deviations: Vec::new(),
    }))
}

// ---------------------------------------------------------------------------------------
// 2. Offsets for times
// ---------------------------------------------------------------------------------------

/// What the broker itself answers to offsets-for-times (`-1`: "none"; `None`: an error).
fn raw_offsets_for_times(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    at_ms: i64,
) -> Result<BTreeMap<i32, Option<i64>>> {
    let consumer = reader(kafka)?;
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(at_ms))?;
    }
    let found = consumer.offsets_for_times(tpl, TIMEOUT)?;
    Ok(found
        .elements()
        .iter()
        .map(|e| {
            let answer = match e.error() {
                Ok(()) => e.offset().to_raw(),
                Err(_) => None,
            };
            (e.partition(), answer)
        })
        .collect())
}

/// One look-up of the offsets-for-times scenario.
#[derive(Debug)]
struct TimeCase {
    /// `before the start`, `at a record`, `between records`, `past the end`.
    name: &'static str,
    at_ms: i64,
    /// The right answer per partition.
    expected: BTreeMap<i32, i64>,
    raw: BTreeMap<i32, Option<i64>>,
    fleuve: fleuve_kafka::time::OffsetsAt,
}

impl TimeCase {
    /// The partitions where the raw answer is not Kafka's, with it.
    fn deviating(&self, ends: &BTreeMap<i32, i64>) -> Vec<(i32, Option<i64>)> {
        self.expected
            .iter()
            .filter(|(p, want)| {
                let raw = self.raw.get(p).copied().flatten();
                let at_end = ends.get(p) == Some(want);
                !(raw == Some(**want) || (at_end && raw == Some(-1)))
            })
            .map(|(p, _)| (*p, self.raw.get(p).copied().flatten()))
            .collect()
    }
}

/// Records at known times in partitions 0 and 1 (partition 2 empty); looks up instants
/// before the first record, exactly at one, between two and past the last. Returns the
/// cases and the end offsets.
fn time_cases(target: &Target) -> Result<(Vec<TimeCase>, BTreeMap<i32, i64>)> {
    let topic = unique("times");
    target.create_topic(&TopicSpec::new(&topic, 3))?;
    let kafka = target.kafka();
    // Whole seconds, an hour ago: inside any retention.
    let t0 = (now_ms() / 1000 - 3600) * 1000;
    let plan: [(i32, i64); 8] = [
        (0, 0),
        (0, 1000),
        (0, 2000),
        (0, 3000),
        (0, 4000),
        (1, 500),
        (1, 1500),
        (1, 2500),
    ];
    let records: Vec<Out> = plan
        .iter()
        .map(|&(p, dt)| Out {
            key: Some(b"k".to_vec()),
            value: Some(dt.to_string().into_bytes()),
            partition: Some(p),
            timestamp: Some(t0 + dt),
            ..Out::default()
        })
        .collect();
    let delivered = produce(&kafka, &topic, &records)?;
    let written: Vec<(i32, i64, i64)> = plan
        .iter()
        .zip(&delivered)
        .map(|(&(_, dt), &(p, o))| (p, o, t0 + dt))
        .collect();
    let mut ends: BTreeMap<i32, i64> = (0..3).map(|p| (p, 0)).collect();
    for &(p, o, _) in &written {
        let e = ends.entry(p).or_default();
        *e = (*e).max(o + 1);
    }
    let expected_at = |at: i64| -> BTreeMap<i32, i64> {
        ends.iter()
            .map(|(&p, &end)| {
                let first = written
                    .iter()
                    .filter(|(wp, _, ts)| *wp == p && *ts >= at)
                    .map(|(_, o, _)| *o)
                    .min();
                (p, first.unwrap_or(end))
            })
            .collect()
    };
    let mut cases = Vec::new();
    for (name, at_ms) in [
        ("before the start", t0 - 60_000),
        ("at a record", t0 + 2000),
        ("between records", t0 + 1200),
        ("past the end", now_ms()),
    ] {
        let raw = raw_offsets_for_times(&kafka, &topic, &[0, 1, 2], at_ms)?;
        let fleuve = fleuve_kafka::time::offsets_at(&kafka, &topic, at_ms, TIMEOUT)?;
        cases.push(TimeCase {
            name,
            at_ms,
            expected: expected_at(at_ms),
            raw,
            fleuve,
        });
    }
    Ok((cases, ends))
}

/// The raw answers (a deviation wherever they are not Kafka's) and `offsets_at`'s, which
/// must be right everywhere, with a correction for each deviating partition.
fn offsets_for_times(target: &Target) -> Result<Option<Outcome>> {
    let (cases, ends) = time_cases(target)?;
    let mut outcome = Outcome::default();
    let mut observed = Vec::new();
    for case in &cases {
        ensure!(
            case.fleuve.offsets == case.expected,
            "{}: offsets_at answered {:?}, the records say {:?} (the broker: {:?})",
            case.name,
            case.fleuve.offsets,
            case.expected,
            case.raw
        );
        let deviating = case.deviating(&ends);
        let corrected: Vec<(i32, Option<i64>)> = case
            .fleuve
            .corrections
            .iter()
            .map(|c| (c.partition, c.broker))
            .collect();
        ensure!(
            corrected == deviating,
            "{}: offsets_at corrected {corrected:?}, the broker deviated on {deviating:?}",
            case.name
        );
        observed.push(format!(
            "{} (at {}): broker {}",
            case.name,
            case.at_ms,
            show_raw(&case.raw)
        ));
        if !deviating.is_empty() {
            outcome.deviations.push(Deviation {
                name: match case.name {
                    "before the start" => "offsets-for-times before the start",
                    "at a record" => "offsets-for-times at a record",
                    "between records" => "offsets-for-times between records",
                    _ => "offsets-for-times past the end",
                },
                detail: format!(
                    "answered {} where Kafka answers {} (-1: none); offsets_at found {:?}",
                    show_raw(&case.raw),
                    show_kafka(&case.expected, &ends),
                    case.fleuve.offsets
                ),
                defence: OFFSETS_FOR_TIMES_DEFENCE,
            });
        }
    }
    outcome.observed = format!("{}; offsets_at right in every case", observed.join("; "));
    Ok(Some(outcome))
}

fn show_raw(raw: &BTreeMap<i32, Option<i64>>) -> String {
    let parts: Vec<String> = raw
        .iter()
        .map(|(p, o)| match o {
            Some(o) => format!("{p}:{o}"),
            None => format!("{p}:error"),
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn show_kafka(expected: &BTreeMap<i32, i64>, ends: &BTreeMap<i32, i64>) -> String {
    let parts: Vec<String> = expected
        .iter()
        .map(|(p, o)| {
            if ends.get(p) == Some(o) {
                format!("{p}:-1")
            } else {
                format!("{p}:{o}")
            }
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

// ---------------------------------------------------------------------------------------
// 3. Committed offsets
// ---------------------------------------------------------------------------------------

/// Waits until `consumer` has partitions assigned by its group; their count.
fn wait_for_assignment(consumer: &BaseConsumer, within: Duration) -> Result<Option<usize>> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
            eprintln!("  (consumer error while joining: {e})");
        }
        let n = consumer.assignment()?.count();
        if n > 0 {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// A member of group G commits offsets; a new consumer of G (not joining it) reads them
/// back with `committed_offsets`; a partition without a commit has none.
fn committed_offsets(target: &Target) -> Result<Option<Outcome>> {
    let topic = unique("commits");
    let group = unique("group");
    target.create_topic(&TopicSpec::new(&topic, 3))?;
    let kafka = target.kafka();
    let records: Vec<Out> = (0..3)
        .flat_map(|p| {
            (0..5).map(move |i| Out {
                value: Some(format!("{i}").into_bytes()),
                partition: Some(p),
                ..Out::default()
            })
        })
        .collect();
    produce(&kafka, &topic, &records)?;
    let member: BaseConsumer = kafka
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    member.subscribe(&[&topic])?;
    let assigned = wait_for_assignment(&member, TIMEOUT)?
        .context("the group member got no partition within 30 s")?;
    ensure!(
        assigned == 3,
        "the only member got {assigned} partitions of 3"
    );
    let want = BTreeMap::from([(0, 2), (1, 5)]);
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &want {
        tpl.add_partition_offset(&topic, *p, Offset::Offset(*o))?;
    }
    member.commit(&tpl, CommitMode::Sync)?;
    drop(member);

    let other: BaseConsumer = kafka
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut ask = TopicPartitionList::new();
    for p in 0..3 {
        ask.add_partition(&topic, p);
    }
    let committed = other.committed_offsets(ask, TIMEOUT)?;
    let got: BTreeMap<i32, Offset> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    let expected: BTreeMap<i32, Offset> = BTreeMap::from([
        (0, Offset::Offset(2)),
        (1, Offset::Offset(5)),
        (2, Offset::Invalid),
    ]);
    ensure!(
        got == expected,
        "committed offsets read back {got:?}, committed {expected:?} (Invalid: none)"
    );
    Ok(Some(Outcome {
        observed: "committed {0:2, 1:5} by a member, read back by another consumer of the group; \
                   none for partition 2"
            .into(),
        deviations: Vec::new(),
    }))
}

// ---------------------------------------------------------------------------------------
// 4. Headers
// ---------------------------------------------------------------------------------------

/// Headers round-trip byte for byte, in order, duplicates kept: text, binary, empty and
/// null values (dead letters copy a record's headers and add `dlq.*` ones, some of which
/// may be empty).
fn headers_round_trip(target: &Target) -> Result<Option<Outcome>> {
    let topic = unique("headers");
    target.create_topic(&TopicSpec::new(&topic, 1))?;
    let kafka = target.kafka();
    let sent: Vec<(&'static str, Option<Vec<u8>>)> = vec![
        ("event_type", Some(b"PlaybackProgressed".to_vec())),
        ("binary", Some(vec![0, 255, 1, 128, 0])),
        ("empty", Some(Vec::new())),
        ("null", None),
        ("dup", Some(b"first".to_vec())),
        ("utf8", Some("é → ✓".as_bytes().to_vec())),
        ("dup", Some(b"second".to_vec())),
    ];
    produce(
        &kafka,
        &topic,
        &[Out {
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: sent.clone(),
            ..Out::default()
        }],
    )?;
    let read = read_all(&kafka, &topic)?;
    ensure!(read.len() == 1, "{} records read back", read.len());
    let got = &read[0].headers;
    let want: Vec<(String, Option<Vec<u8>>)> = sent
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    ensure!(*got == want, "headers read back {got:?}, sent {want:?}");
    Ok(Some(Outcome {
        observed: format!(
            "{} headers (text, binary, empty, null, a duplicated key) kept in order",
            sent.len()
        ),
        deviations: Vec::new(),
    }))
}

// ---------------------------------------------------------------------------------------
// 5. Compaction
// ---------------------------------------------------------------------------------------

/// What Fleuve's readers of compacted topics (`_schemas`, `export.<partner>.catalog`) do:
/// read from the start, keep the last value per key, a tombstone (no value) removing it.
fn last_per_key(records: &[Rec]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    for r in records {
        let Some(key) = &r.key else { continue };
        match &r.value {
            Some(v) => out.insert(key.clone(), v.clone()),
            None => out.remove(key),
        };
    }
    out
}

/// Several values per key, some keys ending with a tombstone, on a topic created as Fleuve
/// creates its compacted topics: the reading rule gives the latest value of every key,
/// tombstones are read back as records without value, whether the broker compacted or not
/// (watched for a while: whether it does is reported).
fn compaction_keeps_the_last_value(target: &Target) -> Result<Option<Outcome>> {
    if target.is_mock() {
        return Ok(None);
    }
    const KEYS: usize = 10;
    const ROUNDS: usize = 3;
    let topic = unique("compacted");
    let mut spec = TopicSpec::new(&topic, 1).compacted();
    // Give a cleaner every chance to run during the watch (Kafka compacts closed segments).
    spec.config
        .push(("segment.ms".to_owned(), "100".to_owned()));
    spec.config
        .push(("min.cleanable.dirty.ratio".to_owned(), "0.01".to_owned()));
    spec.config
        .push(("delete.retention.ms".to_owned(), "100".to_owned()));
    target.create_topic(&spec)?;
    let kafka = target.kafka();
    let mut records = Vec::new();
    let mut expected = BTreeMap::new();
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let key = format!("key-{k}").into_bytes();
            // Keys 0 and 1 end deleted.
            let value = (round + 1 < ROUNDS || k >= 2).then(|| format!("v{round}").into_bytes());
            match &value {
                Some(v) => expected.insert(key.clone(), v.clone()),
                None => expected.remove(&key),
            };
            records.push(Out {
                key: Some(key),
                value,
                ..Out::default()
            });
        }
    }
    produce(&kafka, &topic, &records)?;
    let deadline = Instant::now() + COMPACTION_WATCH;
    let mut reads = 0;
    let (compacted, last_count, tombstones) = loop {
        let read = read_all(&kafka, &topic)?;
        reads += 1;
        ensure!(
            last_per_key(&read) == expected,
            "the last value per key is not the latest written (read {} records)",
            read.len()
        );
        let tombstones_as_null = read
            .iter()
            .filter(|r| r.value.is_none())
            .all(|r| matches!(r.key.as_deref(), Some(b"key-0" | b"key-1")));
        ensure!(
            tombstones_as_null,
            "a record without value for a key never deleted"
        );
        let tombstones = read.iter().filter(|r| r.value.is_none()).count();
        if read.len() < records.len() {
            break (true, read.len(), tombstones);
        }
        if Instant::now() >= deadline {
            break (false, read.len(), tombstones);
        }
        // A poll interval while watching for the cleaner, bounded by the deadline.
        std::thread::sleep(Duration::from_millis(500));
    };
    let observed = if compacted {
        format!(
            "compacted: {last_count} of {} records left ({tombstones} of them tombstones); last \
             value per key right in each of {reads} reads",
            records.len()
        )
    } else {
        format!(
            "not compacted within {} s ({last_count} of {} records still there); last value per \
             key right in each of {reads} reads",
            COMPACTION_WATCH.as_secs(),
            records.len()
        )
    };
    let mut outcome = Outcome {
        observed,
        deviations: Vec::new(),
    };
    if !compacted && target.is_tansu() {
        outcome.deviations.push(Deviation {
            name: "no compaction",
            detail: format!(
                "a `cleanup.policy=compact` topic kept all {} records for {} s (its maintenance \
                 task, which compacts, running every {} s)",
                records.len(),
                COMPACTION_WATCH.as_secs(),
                TANSU_MAINTENANCE.as_secs()
            ),
            defence: "readers of compacted topics (registry `_schemas`, partner exports) read \
                      from the start and keep the last value per key: right with or without \
                      compaction (the topics only grow until compacted)",
        });
    }
    Ok(Some(outcome))
}

// ---------------------------------------------------------------------------------------
// 6. A member's crash, then a join
// ---------------------------------------------------------------------------------------

/// Set in a child process: it acts as a group member (`bootstrap|group|topic`).
const MEMBER_ENV: &str = "FLEUVE_CONFORMANCE_MEMBER";
/// What a member child prints once it has partitions.
const ASSIGNED: &str = "FLEUVE-CONFORMANCE-MEMBER-ASSIGNED";

/// A group member in a child process (this test binary run again with [`MEMBER_ENV`]): it
/// joins, prints [`ASSIGNED`] with its partition count, and polls until it is killed (at
/// most two minutes).
struct Member {
    bootstrap: String,
    group: String,
    topic: String,
    /// Its `group.instance.id` (static membership), if any.
    instance: Option<String>,
}

impl Member {
    fn from_env() -> Option<Self> {
        let v = std::env::var(MEMBER_ENV).ok()?;
        let mut parts = v.splitn(4, '|');
        Some(Self {
            bootstrap: parts.next()?.to_owned(),
            group: parts.next()?.to_owned(),
            topic: parts.next()?.to_owned(),
            instance: parts.next().map(str::to_owned),
        })
    }

    fn run(self) -> Result<()> {
        let consumer = group_member(&self.bootstrap, &self.group, self.instance.as_deref())?;
        consumer.subscribe(&[&self.topic])?;
        let n = wait_for_assignment(&consumer, Duration::from_secs(60))?
            .context("the member got no partition")?;
        eprintln!("{ASSIGNED} {n}");
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            consumer.poll(Duration::from_millis(100));
        }
        Ok(())
    }
}

/// A consumer of `group`, static when `instance` is its `group.instance.id`.
fn group_member(bootstrap: &str, group: &str, instance: Option<&str>) -> Result<BaseConsumer> {
    let mut config = KafkaConfig::new(bootstrap).client_config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    if let Some(id) = instance {
        config.set("group.instance.id", id);
    }
    Ok(config.create()?)
}

/// Kills the child when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The result of the crash-then-join scenario.
#[derive(Debug)]
struct Rejoin {
    partitions: usize,
    /// Partitions of the new member, and when it got them after the crash (`None`: not
    /// within [`REJOIN_BOUND`]).
    got: Option<(usize, Duration)>,
}

/// Partitions of the group-crash scenario's topic.
const CRASH_PARTITIONS: usize = 3;

/// A topic for the group-crash scenario.
fn crash_topic(target: &Target) -> Result<String> {
    let topic = unique("crash");
    target.create_topic(&TopicSpec::new(&topic, 3))?;
    Ok(topic)
}

/// A member of a new group G (a child process running `test` again) holds the partitions of
/// `topic` and is SIGKILLed: no LeaveGroup. A new member joins G at once: how many
/// partitions does it get, and when? Kafka gives it all of them once the dead member's
/// session (45 s by default) expires; with `instance` (static membership, both members with
/// that `group.instance.id`, as a restarted processor would be), at once: the broker takes
/// the new member for the old one restarted.
fn crash_then_join(
    bootstrap: &str,
    test: &str,
    topic: &str,
    instance: Option<&str>,
    bound: Duration,
) -> Result<Rejoin> {
    let group = unique("crash-group");
    let member_env = match instance {
        Some(id) => format!("{bootstrap}|{group}|{topic}|{id}"),
        None => format!("{bootstrap}|{group}|{topic}"),
    };
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(MEMBER_ENV, member_env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the member child process")?;
    let stderr = child.stderr.take().context("the child's stderr")?;
    let mut child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tail = Vec::new();
    let first_member = loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        ensure!(
            !wait.is_zero(),
            "the first member got no partition within 60 s; its output:\n{}",
            tail.join("\n")
        );
        match rx.recv_timeout(wait) {
            Ok(line) => {
                if let Some(n) = line.strip_prefix(ASSIGNED) {
                    break n.trim().parse::<usize>()?;
                }
                tail.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!(
                    "the member child exited before it got partitions; its output:\n{}",
                    tail.join("\n")
                )
            }
        }
    };
    // SIGKILL: the member leaves nothing behind but its session in the group.
    child.0.kill()?;
    child.0.wait()?;
    let crashed = Instant::now();
    let member = group_member(bootstrap, &group, instance)?;
    member.subscribe(&[topic])?;
    let got = wait_for_assignment(&member, bound)?.map(|n| (n, crashed.elapsed()));
    ensure!(
        first_member == CRASH_PARTITIONS,
        "the first, only member got {first_member} partitions of {CRASH_PARTITIONS}"
    );
    Ok(Rejoin {
        partitions: CRASH_PARTITIONS,
        got,
    })
}

impl Rejoin {
    /// What the new member saw, and the deviation it shows, if any: it got no partition, or
    /// not all, within [`REJOIN_BOUND`] (a stall), or got them later than one session
    /// (slow).
    fn judge(&self) -> (String, Option<Deviation>) {
        let session = SESSION_TIMEOUT.as_secs();
        match self.got {
            Some((n, after)) if n == self.partitions && after <= REJOIN_EXPECTED => (
                format!(
                    "the new member got all {n} partitions {:.1} s after the crash (session \
                     timeout {session} s)",
                    after.as_secs_f64()
                ),
                None,
            ),
            Some((n, after)) if n == self.partitions => {
                let seen = format!(
                    "got all {n} partitions only {:.1} s after the crash",
                    after.as_secs_f64()
                );
                (
                    format!("the new member {seen}"),
                    Some(Deviation {
                        name: "slow join after a member's crash",
                        detail: format!(
                            "a member joining right after another's SIGKILL {seen}; Kafka gives \
                             them once the dead member's session ({session} s) expires"
                        ),
                        defence: GROUP_CRASH_DEFENCE,
                    }),
                )
            }
            other => {
                let seen = match other {
                    Some((n, after)) => format!(
                        "got {n} of {} partitions ({:.1} s after the crash), no more within {} s",
                        self.partitions,
                        after.as_secs_f64(),
                        REJOIN_BOUND.as_secs()
                    ),
                    None => format!(
                        "got no partition within {} s of the crash",
                        REJOIN_BOUND.as_secs()
                    ),
                };
                (
                    format!("the new member {seen}"),
                    Some(Deviation {
                        name: "group stalls after a member's crash",
                        detail: format!(
                            "a member joining right after another's SIGKILL {seen}; Kafka gives \
                             it all {} once the dead member's session ({session} s) expires",
                            self.partitions
                        ),
                        defence: GROUP_CRASH_DEFENCE,
                    }),
                )
            }
        }
    }
}

fn group_crash_then_join(target: &Target) -> Result<Option<Outcome>> {
    let topic = crash_topic(target)?;
    let r = crash_then_join(&target.bootstrap, target.test, &topic, None, REJOIN_BOUND)?;
    let (observed, deviation) = r.judge();
    Ok(Some(Outcome {
        observed,
        deviations: deviation.into_iter().collect(),
    }))
}

/// How soon a static member's restart must get its partitions back to count as honoured:
/// well before the dead member's session would expire.
const STATIC_REJOIN_EXPECTED: Duration = Duration::from_secs(15);

/// A static member (`group.instance.id`) is SIGKILLed and restarted at once with the same
/// instance id. Kafka hands the restart the old member's partitions at once, without waiting
/// for its session; a broker that does not honour static membership treats it as a new
/// member (one session later, or never, as in scenario 6).
fn static_member_crash_then_restart(target: &Target) -> Result<Option<Outcome>> {
    let topic = crash_topic(target)?;
    let instance = unique("static");
    let bound = SESSION_TIMEOUT + Duration::from_secs(15);
    let r = crash_then_join(
        &target.bootstrap,
        target.test,
        &topic,
        Some(&instance),
        bound,
    )?;
    let seen = match r.got {
        Some((n, after)) => format!(
            "the restarted static member got {n} of {} partitions {:.1} s after the crash",
            r.partitions,
            after.as_secs_f64()
        ),
        None => format!(
            "the restarted static member got no partition within {} s of the crash",
            bound.as_secs()
        ),
    };
    let honoured =
        matches!(r.got, Some((n, after)) if n == r.partitions && after <= STATIC_REJOIN_EXPECTED);
    Ok(Some(Outcome {
        deviations: (!honoured)
            .then(|| Deviation {
                name: "static membership not honoured",
                detail: format!(
                    "{seen}; Kafka hands a restarted static member its partitions at once (here: \
                     within {} s)",
                    STATIC_REJOIN_EXPECTED.as_secs()
                ),
                defence: STATIC_MEMBERSHIP_DEFENCE,
            })
            .into_iter()
            .collect(),
        observed: seen,
    }))
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// Every scenario on Tansu, the MockCluster and `KAFKA_BOOTSTRAP` (when set), the brokers in
/// parallel; prints the table of results and deviations; fails if a scenario failed (a
/// behaviour Fleuve relies on without a defence, or a defence that did not hold).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() -> Result<()> {
    const TEST: &str = "conformance_suite";
    if let Some(member) = Member::from_env() {
        return member.run();
    }
    let tansu = tokio::task::spawn_blocking(|| -> Result<_> {
        let t = Target::tansu(TEST, Some(TANSU_MAINTENANCE))?;
        Ok((t.name.clone(), run_all(&t)))
    });
    let mock = tokio::task::spawn_blocking(|| -> Result<_> {
        let t = Target::mock(TEST)?;
        Ok((t.name.clone(), run_all(&t)))
    });
    let mut skipped = Vec::new();
    let external = match std::env::var("KAFKA_BOOTSTRAP")
        .ok()
        .filter(|b| !b.is_empty())
    {
        Some(bootstrap) => Some(tokio::task::spawn_blocking(move || -> Result<_> {
            let t = Target::external(bootstrap, TEST);
            Ok((t.name.clone(), run_all(&t)))
        })),
        None => {
            eprintln!("KAFKA_BOOTSTRAP: SKIPPED (KAFKA_BOOTSTRAP unset): no scenario ran on it");
            skipped.push((
                "KAFKA_BOOTSTRAP".to_owned(),
                "KAFKA_BOOTSTRAP unset: nothing ran".to_owned(),
            ));
            None
        }
    };
    let mut results = vec![tansu.await??, mock.await??];
    if let Some(external) = external {
        results.push(external.await??);
    }
    let (table, failures) = report(&results, &skipped);
    eprintln!("{table}");
    ensure!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// Tansu 0.6.0 answers offsets-for-times with offset 0, where Kafka answers "none" (-1), for
/// an instant after a partition's last record. The defence: `offsets_at` answers the end
/// offset (so `replay --from <now>` replays nothing and a snapshot as of now holds
/// everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_deviation_offsets_for_times_past_the_end() -> Result<()> {
    tokio::task::spawn_blocking(|| -> Result<()> {
        let target = Target::tansu("tansu_deviation_offsets_for_times_past_the_end", None)?;
        let (cases, ends) = time_cases(&target)?;
        let past = cases
            .iter()
            .find(|c| c.name == "past the end")
            .context("no past-the-end case")?;
        // The defence, whatever the broker said.
        ensure!(
            past.fleuve.offsets == ends,
            "offsets_at past the end answered {:?}, the end offsets are {ends:?}",
            past.fleuve.offsets
        );
        let deviating = past.deviating(&ends);
        if deviating.is_empty() {
            eprintln!(
                "tansu_deviation_offsets_for_times_past_the_end: NOT OBSERVED: Tansu answered \
                 {} past the end, as Kafka does; offsets_at answers the end offsets {ends:?}",
                show_raw(&past.raw)
            );
        } else {
            ensure!(
                past.fleuve.corrections.len() == deviating.len(),
                "offsets_at corrected {:?}, the broker deviated on {deviating:?}",
                past.fleuve.corrections
            );
            eprintln!(
                "tansu_deviation_offsets_for_times_past_the_end: OBSERVED: Tansu answered {} \
                 past the end (Kafka: {}); defence held: offsets_at answered the end offsets \
                 {:?} and reported {} correction(s)",
                show_raw(&past.raw),
                show_kafka(&past.expected, &ends),
                past.fleuve.offsets,
                past.fleuve.corrections.len()
            );
        }
        Ok(())
    })
    .await?
}

/// Tansu 0.6.0: a member that joins a group right after another member's crash (SIGKILL, no
/// LeaveGroup) may get no partition at all, ever: its coordinator notices the dead member's
/// expired session only when a request of the group arrives, and when that request is the
/// new member's SyncGroup (a follower of the dead leader until then), it takes it for the
/// leader's, and the group forms with an empty assignment (seen by the crash test in 2 runs
/// of 5). Which request comes first is a matter of timing, so this runs [`TRIALS`] groups at
/// once, each crashed and joined on its own, and reports how many stalled, bounded by
/// [`REJOIN_BOUND`]. The defence is in the processor runtime ([`GROUP_CRASH_DEFENCE`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_deviation_group_member_crash_then_join() -> Result<()> {
    const TEST: &str = "tansu_deviation_group_member_crash_then_join";
    const TRIALS: usize = 3;
    if let Some(member) = Member::from_env() {
        return member.run();
    }
    tokio::task::spawn_blocking(|| -> Result<()> {
        let target = Target::tansu(TEST, None)?;
        let topics: Vec<String> = (0..TRIALS)
            .map(|_| crash_topic(&target))
            .collect::<Result<_>>()?;
        let bootstrap = target.bootstrap.clone();
        let trials: Vec<Result<Rejoin>> = std::thread::scope(|scope| {
            let handles: Vec<_> = topics
                .iter()
                .map(|topic| {
                    scope.spawn(|| crash_then_join(&bootstrap, TEST, topic, None, REJOIN_BOUND))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a trial panicked")))
                })
                .collect()
        });
        let mut deviations = Vec::new();
        for (i, trial) in trials.into_iter().enumerate() {
            let (observed, deviation) = trial?.judge();
            eprintln!("{TEST}: trial {}: {observed}", i + 1);
            deviations.extend(deviation);
        }
        if deviations.is_empty() {
            eprintln!(
                "{TEST}: NOT OBSERVED this time: in each of {TRIALS} groups the new member got \
                 every partition once the dead member's session ({} s) expired, as with Kafka",
                SESSION_TIMEOUT.as_secs()
            );
        } else {
            eprintln!(
                "{TEST}: OBSERVED in {} of {TRIALS} groups: {}; defence: {GROUP_CRASH_DEFENCE}",
                deviations.len(),
                deviations
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(())
    })
    .await?
}

/// The MockCluster answers "none" (-1) to every offsets-for-times look-up, whatever the
/// instant; `offsets_at` answers right on it all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_deviation_offsets_for_times_unanswered() -> Result<()> {
    tokio::task::spawn_blocking(|| -> Result<()> {
        let target = Target::mock("mock_cluster_deviation_offsets_for_times_unanswered")?;
        let (cases, ends) = time_cases(&target)?;
        let mut seen = Vec::new();
        for case in &cases {
            ensure!(
                case.fleuve.offsets == case.expected,
                "{}: offsets_at answered {:?}, the records say {:?}",
                case.name,
                case.fleuve.offsets,
                case.expected
            );
            let deviating = case.deviating(&ends);
            seen.push(format!(
                "{}: {}{}",
                case.name,
                show_raw(&case.raw),
                if deviating.is_empty() {
                    " (as Kafka)"
                } else {
                    " (DEVIATES)"
                }
            ));
        }
        let unanswered = cases
            .iter()
            .filter(|c| c.name != "past the end")
            .all(|c| c.raw.values().all(|o| *o == Some(-1)));
        eprintln!(
            "mock_cluster_deviation_offsets_for_times_unanswered: {}: {}; defence held: \
             offsets_at right before the start, at a record, between records and past the end",
            if unanswered {
                "OBSERVED"
            } else {
                "NOT OBSERVED (the MockCluster now answers look-ups by time)"
            },
            seen.join("; ")
        );
        Ok(())
    })
    .await?
}

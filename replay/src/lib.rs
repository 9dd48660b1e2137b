//! Replays a range of a Fleuve topic, decoded through the schema registry, as JSON lines or
//! CSV: the library behind `fleuve replay`.
//!
//! ```text
//! fleuve replay --topic user-activity --from 2026-11-22T10:00:00Z --to 2026-11-22T11:00:00Z \
//!     --type PlaybackProgressed --key u-1 --format jsonl --output progress.jsonl
//! ```
//!
//! # Range
//! * `from` is inclusive, `to` exclusive: `[from, to)`, for times and offsets alike.
//! * A time (RFC 3339, or a date meaning midnight UTC) becomes, in each partition, the offset
//!   of the first record whose Kafka timestamp is at or after it, or the partition's end
//!   offset when every record is older (Fleuve's producers stamp records with the event's
//!   `occurred_at`). The broker's offsets-for-times answer is not taken on trust: it is
//!   checked against the records' timestamps and, when wrong or missing, found by a binary
//!   search over them ([`fleuve_kafka::time::offsets_at`]; Tansu 0.6.0 answers `0` past a
//!   partition's last record, the in-process MockCluster answers no look-up by time). So
//!   `--from` a time after the last record replays nothing and `--to` a future time replays
//!   up to the end. The records between the two offsets are replayed, so a late record
//!   (timestamp earlier than the one before it) that lies between them is included.
//! * An offset applies to every partition (`1500`); `0:1500,2:80` sets some partitions only.
//! * Default `from`: the beginning of each partition. Default `to`: the end offsets when the
//!   replay starts: it stops there and does not follow the live tail.
//! * Partitions are assigned directly: no consumer group, nothing committed.
//!
//! # Decoding
//! The writer schema of each record is fetched from the registry by the schema id of its
//! Confluent frame (once per id), and the value is resolved to the event type's current
//! schema (`schemas/avro/`): a record written with an older version is shown in today's
//! shape. Events are rendered as the JSON the ingest service accepts back
//! ([`fleuve_schemas::json::AvroJson`]): timestamps as RFC 3339 strings, optional fields as
//! `null` or their value, enums as symbols.
//!
//! A record that cannot be decoded (not Confluent-framed, unknown schema id, not an event
//! type of the catalogue) is counted and reported in the [`Summary`] (with the first
//! reasons), and the replay goes on; with [`ReplayConfig::strict`] it stops with
//! [`ReplayError::Undecodable`] instead.
//!
//! # Output
//! JSON lines (`jsonl`), one object per event, in log order per partition (partitions
//! interleaved as they are read):
//!
//! ```json
//! {"topic":"user-activity","partition":1,"offset":42,"timestamp":"2026-11-22T10:00:00.5Z",
//!  "key":"u-1","type":"PlaybackProgressed","schema_id":3,"event":{"event_id":"…",…}}
//! ```
//!
//! (one line each; `timestamp` is the Kafka record timestamp, `null` if it has none; `key`
//! is `null` for a record without key; `schema_id` is the writer schema's registry id.)
//! CSV (`csv`): a header row with [`output::CSV_COLUMNS`] (the same fields) and one row per
//! event, the event as a JSON document in the `event` column.
//!
//! # Filters
//! [`ReplayConfig::types`] keeps the named event types (catalogue names, of this topic);
//! [`ReplayConfig::keys`] keeps records whose Kafka key is exactly one of the given keys.
//! Both apply together; what they leave out is counted as skipped.

mod decode;
pub mod output;
pub mod range;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

use fleuve_kafka::{KafkaConfig, QuietContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

pub use output::Format;
pub use range::{BadBound, Bound};

/// What to replay, from where, and how.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub kafka: KafkaConfig,
    /// Base URL of the schema registry.
    pub registry_url: String,
    pub topic: String,
    /// Inclusive start; `None`: the beginning of every partition.
    pub from: Option<Bound>,
    /// Exclusive end; `None`: the end offsets when the replay starts.
    pub to: Option<Bound>,
    /// Event type names to keep (empty: all).
    pub types: Vec<String>,
    /// Kafka keys to keep (empty: all).
    pub keys: Vec<String>,
    pub format: Format,
    /// Stop at the first record that cannot be decoded instead of counting it.
    pub strict: bool,
    /// Longest wait for an answer from the broker or the registry. The replay also fails
    /// when no record arrives for three times this long while some are still expected.
    pub timeout: Duration,
}

impl ReplayConfig {
    /// Everything in `topic`, as JSON lines, with a 10 s timeout.
    pub fn new(
        kafka: KafkaConfig,
        registry_url: impl Into<String>,
        topic: impl Into<String>,
    ) -> Self {
        Self {
            kafka,
            registry_url: registry_url.into(),
            topic: topic.into(),
            from: None,
            to: None,
            types: Vec::new(),
            keys: Vec::new(),
            format: Format::Jsonl,
            strict: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a replay could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "topic `{topic}` does not exist on the broker at {brokers}; its topics: {}",
        list(existing)
    )]
    UnknownTopic {
        topic: String,
        brokers: String,
        existing: Vec<String>,
    },
    #[error("unknown event type `{name}`; event types of `{topic}`: {}", valid.join(", "))]
    UnknownType {
        name: String,
        topic: String,
        valid: Vec<&'static str>,
    },
    #[error("event type `{name}` is published to `{its_topic}`, not `{topic}`; event types of `{topic}`: {}", list(valid))]
    TypeOfOtherTopic {
        name: String,
        its_topic: &'static str,
        topic: String,
        valid: Vec<&'static str>,
    },
    #[error(
        "--{flag}: topic `{topic}` has no partition {partition} (its partitions: 0 to {last})"
    )]
    NoSuchPartition {
        flag: &'static str,
        topic: String,
        partition: i32,
        last: i32,
    },
    #[error("--from ({from}) must be before --to ({to})")]
    EmptyTimeRange { from: Bound, to: Bound },
    #[error(
        "no answer from the broker at {brokers} within {} s ({reason}): is it running and \
         reachable? (`make broker` starts one on this machine; set it with --brokers or \
         FLEUVE_BROKERS)",
        timeout.as_secs_f64()
    )]
    BrokerUnreachable {
        brokers: String,
        timeout: Duration,
        reason: String,
    },
    #[error(
        "the schema registry at {url} did not answer ({reason}): is it running? (`fleuve \
         registry` or `make run` start one; set it with --registry-url or FLEUVE_REGISTRY_URL)"
    )]
    RegistryUnreachable { url: String, reason: String },
    #[error("Kafka `{operation}` on the broker at {brokers} failed")]
    Kafka {
        operation: &'static str,
        brokers: String,
        #[source]
        source: KafkaError,
    },
    #[error(
        "no record from the broker at {brokers} for {} s while {pending} record(s) of the \
         range were still to read; try again, or check the broker",
        waited.as_secs()
    )]
    Stalled {
        brokers: String,
        waited: Duration,
        pending: i64,
    },
    #[error("record at partition {partition} offset {offset} cannot be decoded: {reason} (without --strict it is counted and skipped)")]
    Undecodable {
        partition: i32,
        offset: i64,
        reason: String,
    },
    /// A `--from`/`--to` time could not be turned into offsets.
    #[error(transparent)]
    TimeLookup(fleuve_kafka::KafkaError),
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("the replay thread failed: {0}")]
    Internal(String),
}

fn list(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub topic: String,
    /// Offsets replayed per partition, `[from, to)`.
    pub ranges: BTreeMap<i32, (i64, i64)>,
    /// Records read from Kafka.
    pub read: u64,
    /// Events written.
    pub written: u64,
    /// Records left out by the type and key filters.
    pub skipped: u64,
    /// Records that could not be decoded.
    pub undecodable: u64,
    /// The first few undecodable records: partition, offset, reason.
    pub undecodable_examples: Vec<(i32, i64, String)>,
    /// Events written, per event type.
    pub by_type: BTreeMap<String, u64>,
    /// Events written, per partition.
    pub by_partition: BTreeMap<i32, u64>,
    /// The output was closed by its reader before the end (a pipe into `head`).
    pub output_closed: bool,
    pub elapsed: Duration,
}

impl Summary {
    /// Records read per second.
    pub fn records_per_second(&self) -> f64 {
        per_second(self.read, self.elapsed)
    }

    /// Events written per second.
    pub fn events_per_second(&self) -> f64 {
        per_second(self.written, self.elapsed)
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52 are exact in f64"
)]
fn per_second(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

const MAX_EXAMPLES: usize = 5;

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "replayed {} event(s) of `{}` in {:.2} s ({:.0} events/s; {} record(s) read, {} skipped by filters, {} undecodable){}",
            self.written,
            self.topic,
            self.elapsed.as_secs_f64(),
            self.events_per_second(),
            self.read,
            self.skipped,
            self.undecodable,
            if self.output_closed { "; stopped: the output was closed" } else { "" },
        )?;
        let ranges: Vec<String> = self
            .ranges
            .iter()
            .map(|(p, (from, to))| {
                let n = self.by_partition.get(p).copied().unwrap_or(0);
                format!("{p}: [{from}, {to}) {n} event(s)")
            })
            .collect();
        writeln!(f, "  partitions  {}", list(&ranges))?;
        let types: Vec<String> = self
            .by_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        write!(f, "  types       {}", list(&types))?;
        for (p, o, reason) in &self.undecodable_examples {
            write!(f, "\n  undecodable partition {p} offset {o}: {reason}")?;
        }
        if self.undecodable > self.undecodable_examples.len() as u64 {
            write!(
                f,
                "\n  … and {} more undecodable record(s)",
                self.undecodable - self.undecodable_examples.len() as u64
            )?;
        }
        Ok(())
    }
}

/// Told how a replay advances (a progress bar). Called from the replay's thread.
pub trait Progress: Send {
    /// The range is known: about `records` records to read (exact unless some were
    /// compacted away or are transaction markers).
    fn start(&mut self, _records: u64) {}
    /// `read` records read so far, `written` events written.
    fn advance(&mut self, _read: u64, _written: u64) {}
    /// The replay is over.
    fn finish(&mut self) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Checks the `--type` names against the catalogue and the topic; returns them.
pub fn check_types(topic: &str, types: &[String]) -> Result<Vec<&'static str>, ReplayError> {
    let of_topic: Vec<&'static str> = fleuve_schemas::catalog()
        .iter()
        .filter(|s| s.topic == topic)
        .map(|s| s.name)
        .collect();
    let mut out = Vec::new();
    for name in types {
        match fleuve_schemas::find(name) {
            None => {
                return Err(ReplayError::UnknownType {
                    name: name.clone(),
                    topic: topic.to_owned(),
                    valid: if of_topic.is_empty() {
                        fleuve_schemas::catalog().iter().map(|s| s.name).collect()
                    } else {
                        of_topic
                    },
                })
            }
            Some(spec) if spec.topic != topic => {
                return Err(ReplayError::TypeOfOtherTopic {
                    name: name.clone(),
                    its_topic: spec.topic,
                    topic: topic.to_owned(),
                    valid: of_topic,
                })
            }
            Some(spec) => {
                if !out.contains(&spec.name) {
                    out.push(spec.name);
                }
            }
        }
    }
    Ok(out)
}

/// Replays the range of `config` into `out`, telling `progress` how it goes. Runs the
/// consumer on a blocking thread of the current Tokio runtime.
pub async fn replay(
    config: ReplayConfig,
    out: Box<dyn Write + Send>,
    progress: Box<dyn Progress>,
) -> Result<Summary, ReplayError> {
    let types = check_types(&config.topic, &config.types)?;
    if let (Some(Bound::Time(from)), Some(Bound::Time(to))) = (&config.from, &config.to) {
        if from >= to {
            return Err(ReplayError::EmptyTimeRange {
                from: Bound::Time(*from),
                to: Bound::Time(*to),
            });
        }
    }
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || run(&config, &types, out, progress, handle))
        .await
        .map_err(|e| ReplayError::Internal(e.to_string()))?
}

fn run(
    config: &ReplayConfig,
    types: &[&'static str],
    out: Box<dyn Write + Send>,
    mut progress: Box<dyn Progress>,
    handle: tokio::runtime::Handle,
) -> Result<Summary, ReplayError> {
    let started = Instant::now();
    let brokers = config.kafka.bootstrap_servers.clone();
    let kafka_err = |operation: &'static str| {
        let brokers = brokers.clone();
        move |source| ReplayError::Kafka {
            operation,
            brokers,
            source,
        }
    };
    let consumer = consumer(&config.kafka).map_err(kafka_err("create consumer"))?;
    let ranges = plan(&consumer, config)?;
    let mut summary = Summary {
        topic: config.topic.clone(),
        ranges: ranges.clone(),
        ..Summary::default()
    };
    let mut decoder =
        decode::Decoder::new(&config.registry_url, config.timeout, handle).map_err(|e| {
            ReplayError::RegistryUnreachable {
                url: config.registry_url.clone(),
                reason: e.0,
            }
        })?;
    let mut sink = output::Sink::new(config.format, out).map_err(ReplayError::Output)?;

    // Partitions still to read, with the next offset expected and the end.
    let mut pending: BTreeMap<i32, (i64, i64)> = ranges
        .iter()
        .filter(|(_, (from, to))| from < to)
        .map(|(p, r)| (*p, *r))
        .collect();
    let total: i64 = pending.values().map(|(from, to)| to - from).sum();
    tracing::debug!(
        topic = config.topic,
        records = total,
        planned_ms = started.elapsed().as_millis(),
        "range planned"
    );
    progress.start(u64::try_from(total).unwrap_or(0));
    if !pending.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for (p, (from, _)) in &pending {
            tpl.add_partition_offset(&config.topic, *p, Offset::Offset(*from))
                .map_err(kafka_err("assign"))?;
        }
        consumer.assign(&tpl).map_err(kafka_err("assign"))?;
    }
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    let stall = config.timeout * 3;
    let mut last_activity = Instant::now();
    while !pending.is_empty() {
        let msg = match consumer.poll(Duration::from_millis(100)) {
            None => {
                if last_activity.elapsed() > stall {
                    return Err(ReplayError::Stalled {
                        brokers: brokers.clone(),
                        waited: stall,
                        pending: pending.values().map(|(next, end)| end - next).sum(),
                    });
                }
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                last_activity = Instant::now();
                pending.remove(&p);
                continue;
            }
            Some(Err(e)) => {
                tracing::warn!(topic = config.topic, error = %e, "consumer error (retried)");
                continue;
            }
            Some(Ok(m)) => m,
        };
        last_activity = Instant::now();
        if summary.read == 0 {
            tracing::debug!(
                first_record_ms = started.elapsed().as_millis(),
                "first record"
            );
        }
        let (partition, offset) = (msg.partition(), msg.offset());
        let Some((next, end)) = pending.get_mut(&partition) else {
            continue;
        };
        if offset >= *end {
            pending.remove(&partition);
            continue;
        }
        *next = offset + 1;
        if *next >= *end {
            pending.remove(&partition);
        }
        summary.read += 1;
        if summary.read & 1023 == 0 {
            progress.advance(summary.read, summary.written);
        }
        let key = msg.key();
        if !config.keys.is_empty()
            && !key.is_some_and(|k| config.keys.iter().any(|want| want.as_bytes() == k))
        {
            summary.skipped += 1;
            continue;
        }
        if !types.is_empty() {
            let header = msg.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == "event_type")
                    .and_then(|h| h.value)
            });
            if header.is_some_and(|t| !types.iter().any(|want| want.as_bytes() == t)) {
                summary.skipped += 1;
                continue;
            }
        }
        let decoded =
            decoder
                .decode(msg.payload())
                .map_err(|e| ReplayError::RegistryUnreachable {
                    url: config.registry_url.clone(),
                    reason: e.0,
                })?;
        let (schema_id, writer, value) = match decoded {
            Ok(d) => d,
            Err(decode::Undecodable(reason)) => {
                if config.strict {
                    return Err(ReplayError::Undecodable {
                        partition,
                        offset,
                        reason,
                    });
                }
                tracing::warn!(topic = config.topic, partition, offset, %reason, "undecodable record");
                summary.undecodable += 1;
                if summary.undecodable_examples.len() < MAX_EXAMPLES {
                    summary
                        .undecodable_examples
                        .push((partition, offset, reason));
                }
                continue;
            }
        };
        let event_type = writer.spec.name;
        if !types.is_empty() && !types.contains(&event_type) {
            summary.skipped += 1;
            continue;
        }
        let line = output::Line::new(
            &config.topic,
            partition,
            offset,
            msg.timestamp().to_millis(),
            key,
            event_type,
            schema_id,
            &value,
        );
        match sink.write(&line) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                summary.output_closed = true;
                break;
            }
            Err(e) => return Err(ReplayError::Output(e)),
        }
        summary.written += 1;
        *by_type.entry(event_type).or_default() += 1;
        *summary.by_partition.entry(partition).or_default() += 1;
    }
    match sink.flush() {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => summary.output_closed = true,
        Err(e) => return Err(ReplayError::Output(e)),
    }
    summary.by_type = by_type
        .into_iter()
        .map(|(t, n)| (t.to_owned(), n))
        .collect();
    progress.advance(summary.read, summary.written);
    progress.finish();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

type ReplayConsumer = BaseConsumer<QuietContext>;

/// A consumer whose partitions are assigned (see [`KafkaConfig::assigned_reader`]).
fn consumer(kafka: &KafkaConfig) -> Result<ReplayConsumer, KafkaError> {
    kafka.assigned_reader(
        "fleuve-replay",
        &[
            ("fetch.wait.max.ms", "100"),
            // librdkafka (2.4+) waits this long before fetching again for a partition whose
            // local queue was full (default 1000 ms): a consumer that decodes more slowly
            // than the broker sends would then stall for most of every second. 0.1 s of
            // records per partition is always queued anyway (`queued.min.messages`).
            ("fetch.queue.backoff.ms", "10"),
            ("isolation.level", "read_committed"),
        ],
    )
}

/// The `[from, to)` offsets of every partition of the topic.
fn plan(
    consumer: &ReplayConsumer,
    config: &ReplayConfig,
) -> Result<BTreeMap<i32, (i64, i64)>, ReplayError> {
    let brokers = config.kafka.bootstrap_servers.clone();
    let topic = config.topic.as_str();
    let timeout = config.timeout;
    let unreachable = |e: KafkaError| ReplayError::BrokerUnreachable {
        brokers: brokers.clone(),
        timeout,
        reason: e.to_string(),
    };
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(unreachable)?;
    let Some(t) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    else {
        let mut existing: Vec<String> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.name().to_owned())
            .collect();
        existing.sort();
        return Err(ReplayError::UnknownTopic {
            topic: topic.to_owned(),
            brokers,
            existing,
        });
    };
    let partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    let last = partitions.iter().copied().max().unwrap_or(0);
    for (flag, bound) in [("from", &config.from), ("to", &config.to)] {
        if let Some(Bound::Partitions(map)) = bound {
            if let Some(p) = map.keys().find(|p| !partitions.contains(p)) {
                return Err(ReplayError::NoSuchPartition {
                    flag,
                    topic: topic.to_owned(),
                    partition: *p,
                    last,
                });
            }
        }
    }
    let mut watermarks = BTreeMap::new();
    for &p in &partitions {
        let w = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| classify(e, &brokers, timeout, "fetch_watermarks"))?;
        watermarks.insert(p, w);
    }
    let from = resolve(config, config.from.as_ref(), &watermarks, true)?;
    let to = resolve(config, config.to.as_ref(), &watermarks, false)?;
    Ok(partitions
        .iter()
        .map(|p| {
            let (f, t) = (from[p], to[p]);
            (*p, (f, t.max(f)))
        })
        .collect())
}

/// A broker error: unreachable for timeouts and transport failures, else as is.
fn classify(
    e: KafkaError,
    brokers: &str,
    timeout: Duration,
    operation: &'static str,
) -> ReplayError {
    let unreachable = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    );
    if unreachable {
        ReplayError::BrokerUnreachable {
            brokers: brokers.to_owned(),
            timeout,
            reason: e.to_string(),
        }
    } else {
        ReplayError::Kafka {
            operation,
            brokers: brokers.to_owned(),
            source: e,
        }
    }
}

/// One bound as an offset per partition, clamped to the partition's watermarks. A time goes
/// through [`fleuve_kafka::time::offsets_at`] (blocking: the replay runs on a blocking
/// thread).
fn resolve(
    config: &ReplayConfig,
    bound: Option<&Bound>,
    watermarks: &BTreeMap<i32, (i64, i64)>,
    is_from: bool,
) -> Result<BTreeMap<i32, i64>, ReplayError> {
    let default = |(low, high): (i64, i64)| if is_from { low } else { high };
    let clamp = |o: i64, (low, high): (i64, i64)| o.clamp(low, high);
    Ok(match bound {
        None => watermarks.iter().map(|(p, w)| (*p, default(*w))).collect(),
        Some(Bound::Offset(o)) => watermarks
            .iter()
            .map(|(p, w)| (*p, clamp(*o, *w)))
            .collect(),
        Some(Bound::Partitions(map)) => watermarks
            .iter()
            .map(|(p, w)| (*p, map.get(p).map_or(default(*w), |o| clamp(*o, *w))))
            .collect(),
        Some(Bound::Time(ms)) => {
            let found =
                fleuve_kafka::time::offsets_at(&config.kafka, &config.topic, *ms, config.timeout)
                    .map_err(|e| match e {
                    fleuve_kafka::KafkaError::Admin { operation, source } => classify(
                        source,
                        &config.kafka.bootstrap_servers,
                        config.timeout,
                        operation,
                    ),
                    other => ReplayError::TimeLookup(other),
                })?;
            // The look-up reads the partitions after the plan did, so it has them all
            // (partitions are only ever added); its offsets may be past the plan's ends
            // when records arrived meanwhile: clamped.
            watermarks
                .iter()
                .map(|(p, w)| (*p, found.offsets.get(p).map_or(w.1, |o| clamp(*o, *w))))
                .collect()
        }
    })
}

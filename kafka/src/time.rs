//! Time → offsets, checked against the records: [`offsets_at`].
//!
//! Kafka's offsets-for-times (`ListOffsets` by timestamp) answers, per partition, the offset
//! of the first record whose timestamp is at or after an instant, or "none" (`-1`) when
//! every record is older. Not every broker Fleuve runs on answers it right:
//!
//! * Tansu 0.6.0 answers offset `0` where Kafka answers "none", for an instant after the
//!   partition's last record: trusted, a replay `--from` a recent time would start at the
//!   beginning, and a snapshot as of now would hold nothing;
//! * librdkafka's in-process MockCluster answers "none" (`-1`, no error) to every look-up by
//!   timestamp, whatever the instant.
//!
//! So [`offsets_at`] asks the broker, then checks its answer against the records' own
//! timestamps (the record at the offset must be at or after the instant, the one before it
//! before the instant; "none" needs the last record to be before it), reading two records
//! (more when the offset before the answer is a hole, left by compaction or a transaction
//! marker: then the records below it are searched). An answer that fails the check, or
//! that is missing, is replaced by a binary search over the record timestamps between the
//! partition's watermarks (about log2 of the partition's size reads, a few milliseconds
//! each), logged with `warn`, and reported in [`OffsetsAt::corrections`].
//!
//! The search assumes that timestamps grow with offsets, as they do when producers stamp
//! records as they send them. A late record (a timestamp older than the record before it)
//! can make it stop at a later boundary than Kafka's "first record at or after" would
//! (never an earlier one); a broker whose answer passes the check is taken as it is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaConfig, KafkaError, QuietContext};

/// The offsets of a topic at an instant, per partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsAt {
    /// Per partition, the offset of the first record whose timestamp is at or after the
    /// instant; the partition's end offset (high watermark) when there is none.
    pub offsets: BTreeMap<i32, i64>,
    /// The partitions where the broker's answer was wrong or missing.
    pub corrections: Vec<Correction>,
}

/// A partition where the broker's offset-for-time failed the check against the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub partition: i32,
    /// What the broker answered: an offset, `Some(-1)` for "no record at or after the
    /// instant", `None` when it answered nothing usable (an error, no entry).
    pub broker: Option<i64>,
    /// The offset found in the records (the answer [`OffsetsAt::offsets`] holds).
    pub found: i64,
    /// Why the broker's answer was rejected.
    pub reason: String,
}

/// The offset, in each partition of `topic`, of the first record whose timestamp is at or
/// after `at_ms` (ms since the Unix epoch); the partition's end offset when every record
/// is older, or when it is empty. The broker's offsets-for-times answer is checked against
/// the records and, when wrong or missing, replaced by a binary search (see the
/// [module](self) docs).
///
/// Uses its own short-lived client (`kafka`'s settings and passthrough properties; no
/// consumer group joined, nothing committed). The whole look-up, reads included, is bounded
/// by `timeout`.
///
/// Blocking: call it from a blocking thread (`tokio::task::spawn_blocking`).
pub fn offsets_at(
    kafka: &KafkaConfig,
    topic: &str,
    at_ms: i64,
    timeout: Duration,
) -> Result<OffsetsAt, KafkaError> {
    let deadline = Instant::now() + timeout;
    let consumer = reader(kafka).map_err(KafkaError::Config)?;
    let admin = |operation, source| KafkaError::Admin { operation, source };
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| admin("fetch_metadata", e))?;
    let partitions: Vec<i32> = match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            t.partitions().iter().map(|p| p.id()).collect()
        }
        _ => {
            return Err(KafkaError::UnknownTopic {
                topic: topic.to_owned(),
            })
        }
    };
    let mut watermarks = BTreeMap::new();
    for &p in &partitions {
        let w = consumer
            .fetch_watermarks(topic, p, left(deadline))
            .map_err(|e| admin("fetch_watermarks", e))?;
        watermarks.insert(p, w);
    }
    let broker = broker_answers(&consumer, topic, &partitions, at_ms, left(deadline));

    let mut out = OffsetsAt {
        offsets: BTreeMap::new(),
        corrections: Vec::new(),
    };
    for (&partition, &(low, high)) in &watermarks {
        let said = broker.get(&partition).copied().flatten();
        let mut read = |offset: i64| {
            first_at(&consumer, topic, partition, offset, high, deadline)
                .map_err(|e| e.into_error(kafka, topic, partition, offset, at_ms, timeout))
        };
        let checked = check_partition(&mut read, low, high, at_ms, said)?;
        if let Some(reason) = checked.rejected {
            tracing::warn!(
                topic,
                partition,
                at_ms,
                broker_offset = ?said,
                found = checked.offset,
                reason = %reason,
                "the broker's offset for this time is wrong; using the one found in the records"
            );
            out.corrections.push(Correction {
                partition,
                broker: said,
                found: checked.offset,
                reason,
            });
        }
        out.offsets.insert(partition, checked.offset);
    }
    Ok(out)
}

/// Time left before `deadline` (zero once past it).
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The broker's offsets-for-times per partition, `None` where it gave none.
fn broker_answers(
    consumer: &Reader,
    topic: &str,
    partitions: &[i32],
    at_ms: i64,
    timeout: Duration,
) -> BTreeMap<i32, Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        if let Err(e) = tpl.add_partition_offset(topic, p, Offset::Offset(at_ms)) {
            tracing::debug!(topic, partition = p, error = %e, "offsets_for_times request");
        }
    }
    let mut out: BTreeMap<i32, Option<i64>> = partitions.iter().map(|p| (*p, None)).collect();
    match consumer.offsets_for_times(tpl, timeout) {
        Ok(found) => {
            for el in found.elements() {
                let answer = match el.error() {
                    Ok(()) => el.offset().to_raw(),
                    Err(e) => {
                        tracing::debug!(topic, partition = el.partition(), error = %e, "offsets_for_times failed for a partition");
                        None
                    }
                };
                out.insert(el.partition(), answer);
            }
        }
        Err(e) => tracing::debug!(topic, error = %e, "offsets_for_times failed"),
    }
    out
}

/// A record's position and timestamp (ms; `-1` when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    offset: i64,
    ts: i64,
}

/// The outcome of checking one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    offset: i64,
    /// Why the broker's answer was rejected, if it was.
    rejected: Option<String>,
}

/// Checks the broker's answer `said` for one partition with watermarks `[low, high)`,
/// searching the records when it is wrong or missing. `read(o)` is the first record at or
/// after offset `o` and below `high` (`None`: no record in `[o, high)`; offsets may have
/// holes, left by compaction or transaction markers).
fn check_partition<E>(
    read: &mut impl FnMut(i64) -> Result<Option<Rec>, E>,
    low: i64,
    high: i64,
    at_ms: i64,
    said: Option<i64>,
) -> Result<Checked, E> {
    let right = |offset| Checked {
        offset,
        rejected: None,
    };
    if low >= high {
        // Empty: the end offset. Kafka says "none"; an answer at the end is the same.
        return Ok(match said {
            Some(-1) => right(high),
            Some(o) if o == high => right(high),
            _ => Checked {
                offset: high,
                rejected: Some(match said {
                    None => "no answer for an empty partition".to_owned(),
                    Some(o) => format!("answered offset {o} for an empty partition"),
                }),
            },
        });
    }
    let candidate = match said {
        Some(-1) => Ok(high),
        Some(o) if (low..=high).contains(&o) => Ok(o),
        Some(o) => Err(format!(
            "answered offset {o}, outside the partition's offsets [{low}, {high})"
        )),
        None => Err("no answer".to_owned()),
    };
    let c = match candidate {
        Ok(c) => c,
        Err(reason) => return wrong(read, (low, high), high, high, at_ms, reason),
    };
    let what = if said == Some(-1) {
        "no record at or after the time".to_owned()
    } else {
        format!("offset {c}")
    };
    // The record at c (the first at or after it) must be at or after the instant.
    let mut canon_c = high;
    if c < high {
        if let Some(r) = read(c)? {
            if r.ts < at_ms {
                let reason = format!(
                    "answered {what}, but the record at offset {} has timestamp {}, before {at_ms}",
                    r.offset, r.ts
                );
                let next = (r.offset + 1).min(high);
                return wrong(read, (next, high), high, high, at_ms, reason);
            }
            canon_c = r.offset;
        }
    }
    // The record before c must be before the instant.
    if c == low {
        return Ok(right(canon_c));
    }
    match read(c - 1)? {
        Some(q) if q.offset == c - 1 => {
            if q.ts < at_ms {
                Ok(right(canon_c))
            } else {
                let reason = format!(
                    "answered {what}, but the record at offset {} has timestamp {}, at or after {at_ms}",
                    q.offset, q.ts
                );
                wrong(read, (low, c - 1), c - 1, high, at_ms, reason)
            }
        }
        // A hole before c: the record before it is further back. Search below c.
        _ => {
            let found = search(read, low, c, canon_c, high, at_ms)?;
            Ok(if found == canon_c {
                right(canon_c)
            } else {
                Checked {
                    offset: found,
                    rejected: Some(format!(
                        "answered {what}, but the records from offset {found} on are at or after {at_ms}"
                    )),
                }
            })
        }
    }
}

/// The broker was wrong: search `[lo, hi]` (the answer is in there; `hi_canon` is the first
/// record at or after `hi`, or `high`, the partition's end offset).
fn wrong<E>(
    read: &mut impl FnMut(i64) -> Result<Option<Rec>, E>,
    (lo, hi): (i64, i64),
    hi_canon: i64,
    high: i64,
    at_ms: i64,
    reason: String,
) -> Result<Checked, E> {
    let offset = search(read, lo, hi, hi_canon, high, at_ms)?;
    Ok(Checked {
        offset,
        rejected: Some(reason),
    })
}

/// The smallest offset `o` in `[lo, hi]` whose first record at or after it is at or after
/// `at_ms` (or that has no record after it), as the offset of that record (or `high`).
/// `hi` must satisfy it, its record being `hi_canon`. Reads about log2(hi - lo) records.
fn search<E>(
    read: &mut impl FnMut(i64) -> Result<Option<Rec>, E>,
    mut lo: i64,
    mut hi: i64,
    mut hi_canon: i64,
    high: i64,
    at_ms: i64,
) -> Result<i64, E> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match read(mid)? {
            None => {
                hi = mid;
                hi_canon = high;
            }
            Some(r) if r.ts >= at_ms => {
                hi = mid;
                hi_canon = r.offset;
            }
            Some(r) => lo = (r.offset + 1).min(hi),
        }
    }
    Ok(hi_canon)
}

type Reader = BaseConsumer<QuietContext>;

/// A consumer that reads single records at assigned offsets.
fn reader(kafka: &KafkaConfig) -> Result<Reader, rdkafka::error::KafkaError> {
    kafka.assigned_reader(
        "fleuve-time-lookup",
        &[
            // An offset below the low watermark (removed by retention meanwhile) reads from it.
            ("auto.offset.reset", "earliest"),
            // Aborted records have timestamps too; reading them never waits for open
            // transactions (the end of a read is the high watermark, not the stable offset).
            ("isolation.level", "read_uncommitted"),
            // One record is needed per read: keep each fetch small.
            ("fetch.message.max.bytes", "65536"),
            // After a read, the consumer's next fetch waits at the end of the partition for
            // this long, and the next read's fetch goes out only when it is back: each read
            // took 50 ms with 50 (on the MockCluster), 5 ms with 5.
            ("fetch.wait.max.ms", "5"),
        ],
    )
}

/// Why a read could not be done.
enum ReadError {
    Timeout,
    Kafka(rdkafka::error::KafkaError),
}

impl ReadError {
    fn into_error(
        self,
        kafka: &KafkaConfig,
        topic: &str,
        partition: i32,
        offset: i64,
        at_ms: i64,
        timeout: Duration,
    ) -> KafkaError {
        match self {
            ReadError::Timeout => KafkaError::TimeLookupTimedOut {
                topic: topic.to_owned(),
                partition,
                offset,
                at_ms,
                brokers: kafka.bootstrap_servers.clone(),
                timeout,
            },
            ReadError::Kafka(source) => KafkaError::Admin {
                operation: "assign",
                source,
            },
        }
    }
}

/// The first record of `partition` at or after `offset` and below `high`.
fn first_at(
    consumer: &Reader,
    topic: &str,
    partition: i32,
    offset: i64,
    high: i64,
    deadline: Instant,
) -> Result<Option<Rec>, ReadError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(ReadError::Kafka)?;
    consumer.assign(&tpl).map_err(ReadError::Kafka)?;
    loop {
        let wait = left(deadline);
        if wait.is_zero() {
            return Err(ReadError::Timeout);
        }
        match consumer.poll(wait.min(Duration::from_millis(100))) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) if p == partition => {
                return Ok(None)
            }
            Some(Err(e)) => {
                tracing::debug!(topic, partition, offset, error = %e, "reading a record for a time look-up (retried)");
            }
            Some(Ok(m)) if m.partition() == partition && m.offset() >= offset => {
                if m.offset() >= high {
                    return Ok(None);
                }
                return Ok(Some(Rec {
                    offset: m.offset(),
                    ts: m.timestamp().to_millis().unwrap_or(-1),
                }));
            }
            // A record of an earlier assignment.
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests;

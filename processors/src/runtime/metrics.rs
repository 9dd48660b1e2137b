//! Processor metrics (namespace `fleuve_processor`, label `processor` from the fixed set
//! of processor names).

use std::sync::LazyLock;
use std::time::Duration;

use apache_avro::types::Value;
use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec,
    IntCounterVec, IntGaugeVec,
};
use rdkafka::statistics::Statistics;

use super::{DeadLetterReason, Incoming};

#[expect(
    clippy::expect_used,
    reason = "registering a well-formed metric once cannot fail"
)]
mod defs {
    use super::*;

    pub static CONSUMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
        register_int_counter_vec!(
            "fleuve_processor_events_consumed_total",
            "Records read from Kafka.",
            &["processor"]
        )
        .expect("metric registers")
    });
    pub static APPLIED: LazyLock<IntCounterVec> = LazyLock::new(|| {
        register_int_counter_vec!(
            "fleuve_processor_events_applied_total",
            "Events applied to the projection.",
            &["processor"]
        )
        .expect("metric registers")
    });
    pub static DEAD_LETTERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
        register_int_counter_vec!(
            "fleuve_processor_events_dead_lettered_total",
            "Records sent to the dead-letter topic, by reason.",
            &["processor", "reason"]
        )
        .expect("metric registers")
    });
    pub static RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
        register_int_counter_vec!(
            "fleuve_processor_retries_total",
            "Transient failures retried, by operation.",
            &["processor", "operation"]
        )
        .expect("metric registers")
    });
    pub static BATCH_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
        register_histogram_vec!(
            "fleuve_processor_batch_duration_seconds",
            "Time to decode, apply and checkpoint one batch.",
            &["processor"],
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]
        )
        .expect("metric registers")
    });
    pub static FRESHNESS_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
        register_histogram_vec!(
            "fleuve_processor_freshness_seconds",
            "Time from an event's occurred_at to its projection write.",
            &["processor"],
            vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0]
        )
        .expect("metric registers")
    });
    pub static STALLED_SECONDS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
        register_int_gauge_vec!(
            "fleuve_processor_stalled_seconds",
            "Seconds since the projection last applied a record while it lags (0 when caught up or applying).",
            &["processor"]
        )
        .expect("metric registers")
    });
    pub static GROUP_REJOINS: LazyLock<IntCounterVec> = LazyLock::new(|| {
        register_int_counter_vec!(
            "fleuve_processor_group_rejoins_total",
            "Times a stalled group member left and rejoined its consumer group, by reason.",
            &["processor", "reason"]
        )
        .expect("metric registers")
    });
    pub static LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
        register_int_gauge_vec!(
            "fleuve_processor_lag_events",
            "Records between the consumer's position and the end of each assigned partition.",
            &["processor", "topic", "partition"]
        )
        .expect("metric registers")
    });
}

use defs::*;

pub(super) fn consumed(processor: &str, n: usize) {
    CONSUMED.with_label_values(&[processor]).inc_by(n as u64);
}

pub(super) fn dead_lettered(processor: &str, reason: DeadLetterReason) {
    DEAD_LETTERED
        .with_label_values(&[processor, reason.as_str()])
        .inc();
}

pub(super) fn stalled(processor: &str, idle: Duration) {
    STALLED_SECONDS
        .with_label_values(&[processor])
        .set(i64::try_from(idle.as_secs()).unwrap_or(i64::MAX));
}

/// Counts a group rejoin; `reason` is a label value (`no_partitions`, `no_progress`).
pub(super) fn rejoined(processor: &str, reason: &'static str) {
    GROUP_REJOINS.with_label_values(&[processor, reason]).inc();
}

pub(super) fn retried(processor: &str, operation: &str) {
    RETRIES.with_label_values(&[processor, operation]).inc();
}

/// Updates the lag gauge from librdkafka statistics, for the partitions this consumer is
/// fetching: the end of the partition (last stable offset, or high watermark) minus what
/// the processor has applied (the offset stored after the store write, else the committed
/// one; before either exists, the start of the partition, since everything retained is
/// still to apply). Series of partitions no longer fetched are removed.
pub(super) fn lag(processor: &str, statistics: &Statistics) {
    for (topic, t) in &statistics.topics {
        for p in t.partitions.values() {
            if p.partition < 0 {
                continue; // librdkafka's internal "unassigned" partition
            }
            let partition = p.partition.to_string();
            let labels = [processor, topic.as_str(), partition.as_str()];
            let end = if p.ls_offset >= 0 {
                p.ls_offset
            } else {
                p.hi_offset
            };
            let done = p.stored_offset.max(p.committed_offset);
            let done = if done >= 0 { done } else { p.lo_offset };
            if p.fetch_state == "none" || p.fetch_state == "stopped" || end < 0 || done < 0 {
                let _ = LAG.remove_label_values(&labels);
            } else {
                LAG.with_label_values(&labels).set((end - done).max(0));
            }
        }
    }
}

pub(super) fn applied(processor: &str, took: Duration, events: &[&Incoming]) {
    APPLIED
        .with_label_values(&[processor])
        .inc_by(events.len() as u64);
    BATCH_SECONDS
        .with_label_values(&[processor])
        .observe(took.as_secs_f64());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let freshness = FRESHNESS_SECONDS.with_label_values(&[processor]);
    for e in events {
        if let Some(at) = occurred_at(&e.value) {
            #[expect(
                clippy::cast_precision_loss,
                reason = "counts far below 2^52 are exact in f64"
            )]
            freshness.observe((now_ms - at).max(0) as f64 / 1000.0);
        }
    }
}

fn occurred_at(value: &Value) -> Option<i64> {
    let Value::Record(fields) = value else {
        return None;
    };
    fields.iter().find_map(|(name, v)| match v {
        Value::TimestampMillis(ms) | Value::Long(ms) if name == "occurred_at" => Some(*ms),
        _ => None,
    })
}

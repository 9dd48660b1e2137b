use std::convert::Infallible;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::*;

// ---- The check and the search, on logs in memory ----

/// A partition in memory: records `(offset, timestamp)` in offset order, possibly with
/// holes, and its watermarks.
struct Log {
    records: Vec<Rec>,
    low: i64,
    high: i64,
}

impl Log {
    /// Records at consecutive offsets from `low` with these timestamps.
    fn dense(low: i64, ts: &[i64]) -> Self {
        let records: Vec<Rec> = ts
            .iter()
            .zip(low..)
            .map(|(&ts, offset)| Rec { offset, ts })
            .collect();
        Self {
            high: low + i64::try_from(records.len()).unwrap(),
            records,
            low,
        }
    }

    /// The right answer: the first record at or after `at`, else the end offset.
    fn expected(&self, at: i64) -> i64 {
        self.records
            .iter()
            .find(|r| r.ts >= at)
            .map_or(self.high, |r| r.offset)
    }

    /// Runs the check with the broker answering `said`; returns it and the records read.
    fn check(&self, at: i64, said: Option<i64>) -> (Checked, usize) {
        let mut reads = 0;
        let mut read = |o: i64| -> Result<Option<Rec>, Infallible> {
            reads += 1;
            Ok(self
                .records
                .iter()
                .find(|r| r.offset >= o && r.offset < self.high)
                .copied())
        };
        let checked = check_partition(&mut read, self.low, self.high, at, said).unwrap();
        (checked, reads)
    }
}

#[test]
fn a_right_answer_is_kept_after_reading_at_most_two_records() {
    let log = Log::dense(0, &[10, 20, 30, 40, 50]);
    for (at, said) in [
        (5, Some(0)),
        (10, Some(0)),
        (20, Some(1)),
        (25, Some(2)),
        (50, Some(4)),
        (51, Some(-1)),
        (99, Some(-1)),
    ] {
        let (checked, reads) = log.check(at, said);
        assert_eq!(checked.offset, log.expected(at), "at {at}");
        assert_eq!(checked.rejected, None, "at {at}");
        assert!(reads <= 2, "at {at}: {reads} reads");
    }
}

#[test]
fn tansu_s_zero_past_the_end_is_corrected_to_the_end_offset() {
    let log = Log::dense(0, &[10, 20, 30, 40, 50]);
    let (checked, _) = log.check(60, Some(0));
    assert_eq!(checked.offset, 5);
    let reason = checked.rejected.unwrap();
    assert!(
        reason.contains("offset 0 has timestamp 10, before 60"),
        "{reason}"
    );
}

#[test]
fn the_mock_cluster_s_none_before_the_records_is_corrected() {
    let log = Log::dense(3, &[10, 20, 30]);
    let (checked, _) = log.check(0, Some(-1));
    assert_eq!(checked.offset, 3, "the low watermark");
    let reason = checked.rejected.unwrap();
    assert!(
        reason.contains("no record at or after the time"),
        "{reason}"
    );
    assert!(reason.contains("offset 5 has timestamp 30"), "{reason}");
    let (checked, _) = log.check(20, Some(-1));
    assert_eq!(checked.offset, 4);
}

#[test]
fn missing_and_out_of_range_answers_are_searched() {
    let log = Log::dense(0, &[10, 20, 30, 40, 50]);
    for said in [None, Some(-5), Some(6), Some(1_000)] {
        let (checked, _) = log.check(35, said);
        assert_eq!(checked.offset, 3, "{said:?}");
        assert!(checked.rejected.is_some(), "{said:?}");
    }
}

#[test]
fn an_empty_partition_answers_its_end_offset() {
    let log = Log::dense(7, &[]);
    for (said, rejected) in [
        (Some(-1), false),
        (Some(7), false),
        (Some(0), true),
        (None, true),
    ] {
        let (checked, reads) = log.check(100, said);
        assert_eq!(checked.offset, 7, "{said:?}");
        assert_eq!(checked.rejected.is_some(), rejected, "{said:?}");
        assert_eq!(reads, 0);
    }
}

#[test]
fn the_search_reads_about_log2_of_the_partition() {
    let ts: Vec<i64> = (0..100_000).map(|i| 1_000 + i * 10).collect();
    let log = Log::dense(0, &ts);
    // 17 = ceil(log2(100_000)); the check reads one more record before searching.
    for (at, said) in [
        (i64::MAX, Some(0)),
        (0, Some(-1)),
        (500_000, None),
        (500_005, Some(17)),
        (999_999, Some(99_999)),
    ] {
        let (checked, reads) = log.check(at, said);
        assert_eq!(checked.offset, log.expected(at), "at {at}");
        assert!(checked.rejected.is_some(), "at {at}");
        assert!(reads <= 19, "at {at}: {reads} reads");
    }
}

/// Every instant, every answer a broker could give, on logs with holes (compaction,
/// transaction markers) at the start, the middle and the end, with equal timestamps: the
/// result is always the first record at or after the instant, and an answer is rejected
/// exactly when it does not designate that record.
#[test]
fn every_answer_on_logs_with_holes_ends_at_the_right_offset() {
    let holed = |low: i64, high: i64, recs: &[(i64, i64)]| Log {
        records: recs
            .iter()
            .map(|&(offset, ts)| Rec { offset, ts })
            .collect(),
        low,
        high,
    };
    let logs = [
        Log::dense(0, &[10, 20, 20, 20, 30]),
        Log::dense(4, &[10]),
        holed(0, 10, &[(1, 10), (2, 20), (5, 30), (6, 30), (8, 40)]),
        holed(2, 12, &[(2, 10), (4, 20), (7, 30), (11, 40)]),
        holed(0, 6, &[(3, 10)]),
        holed(5, 9, &[]),
    ];
    for log in &logs {
        let times: Vec<i64> = (0..=45).collect();
        for &at in &times {
            let want = log.expected(at);
            let answers = std::iter::once(None)
                .chain(std::iter::once(Some(-1)))
                .chain((log.low - 1..=log.high + 1).map(Some));
            for said in answers {
                let (checked, reads) = log.check(at, said);
                assert_eq!(
                    checked.offset, want,
                    "at {at}, said {said:?}, log {:?}",
                    log.records
                );
                // Designating the right record: the answer itself, any offset of the hole
                // before it, or "none"/the end when it is the end.
                let designates = match said {
                    Some(-1) => want == log.high,
                    Some(o) if (log.low..=log.high).contains(&o) => {
                        let first = log
                            .records
                            .iter()
                            .find(|r| r.offset >= o)
                            .map_or(log.high, |r| r.offset);
                        first == want
                    }
                    _ => false,
                };
                assert_eq!(
                    checked.rejected.is_none(),
                    designates,
                    "at {at}, said {said:?}, log {:?}: {:?}",
                    log.records,
                    checked.rejected
                );
                assert!(reads <= 8, "at {at}, said {said:?}: {reads} reads");
            }
        }
    }
}

// ---- On librdkafka's MockCluster ----

const TIMEOUT: Duration = Duration::from_secs(10);

/// A mock cluster with topic `t`: partition 0 with records at 1000, 2000, 3000, 4000 ms,
/// partition 1 at 1500 and 2500 ms, partition 2 empty.
fn cluster() -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    KafkaConfig,
) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 3, 1).unwrap();
    let kafka = KafkaConfig::new(cluster.bootstrap_servers());
    let producer: BaseProducer = kafka.producer_config().create().unwrap();
    for (partition, ts) in [
        (0, 1000),
        (0, 2000),
        (0, 3000),
        (0, 4000),
        (1, 1500),
        (1, 2500),
    ] {
        producer
            .send(
                BaseRecord::to("t")
                    .partition(partition)
                    .key("k")
                    .payload("v")
                    .timestamp(ts),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
    (cluster, kafka)
}

/// What the broker itself answers, per partition (raw: `-1` for "none").
fn raw_answer(kafka: &KafkaConfig, at_ms: i64) -> BTreeMap<i32, Option<i64>> {
    let consumer = reader(kafka).unwrap();
    broker_answers(&consumer, "t", &[0, 1, 2], at_ms, TIMEOUT)
}

#[test]
fn the_mock_cluster_answers_none_to_every_look_up_by_time() {
    let (_cluster, kafka) = cluster();
    for at in [0, 2000, 2500, 99_999] {
        assert_eq!(
            raw_answer(&kafka, at),
            BTreeMap::from([(0, Some(-1)), (1, Some(-1)), (2, Some(-1))]),
            "at {at}: the MockCluster's deviation (Kafka would give offsets)"
        );
    }
}

#[test]
fn before_the_first_record_is_the_low_watermark() {
    let (_cluster, kafka) = cluster();
    let at = offsets_at(&kafka, "t", 0, TIMEOUT).unwrap();
    assert_eq!(at.offsets, BTreeMap::from([(0, 0), (1, 0), (2, 0)]));
    // The MockCluster said "none" for the two partitions that have records.
    let corrected: Vec<(i32, Option<i64>, i64)> = at
        .corrections
        .iter()
        .map(|c| (c.partition, c.broker, c.found))
        .collect();
    assert_eq!(corrected, [(0, Some(-1), 0), (1, Some(-1), 0)]);
}

#[test]
fn exactly_at_a_record_s_time_is_that_record() {
    let (_cluster, kafka) = cluster();
    let at = offsets_at(&kafka, "t", 2000, TIMEOUT).unwrap();
    assert_eq!(at.offsets, BTreeMap::from([(0, 1), (1, 1), (2, 0)]));
    let at = offsets_at(&kafka, "t", 2500, TIMEOUT).unwrap();
    assert_eq!(at.offsets, BTreeMap::from([(0, 2), (1, 1), (2, 0)]));
}

#[test]
fn between_two_records_is_the_later_one() {
    let (_cluster, kafka) = cluster();
    let at = offsets_at(&kafka, "t", 3500, TIMEOUT).unwrap();
    assert_eq!(at.offsets, BTreeMap::from([(0, 3), (1, 2), (2, 0)]));
    assert_eq!(
        at.corrections
            .iter()
            .map(|c| c.partition)
            .collect::<Vec<_>>(),
        [0],
        "partition 1 has no record at or after 3500: the MockCluster's none is right there"
    );
}

#[test]
fn past_the_end_is_the_end_offset() {
    let (_cluster, kafka) = cluster();
    let at = offsets_at(&kafka, "t", 99_999, TIMEOUT).unwrap();
    assert_eq!(at.offsets, BTreeMap::from([(0, 4), (1, 2), (2, 0)]));
    assert_eq!(at.corrections, [], "none is the right answer past the end");
}

#[test]
fn an_unknown_topic_is_named() {
    let (_cluster, kafka) = cluster();
    let err = offsets_at(&kafka, "nope", 0, TIMEOUT).unwrap_err();
    assert!(
        matches!(&err, KafkaError::UnknownTopic { topic } if topic == "nope"),
        "{err}"
    );
}

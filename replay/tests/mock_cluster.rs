//! `fleuve_replay::replay` by time on librdkafka's in-process MockCluster with our registry.
//!
//! The MockCluster answers no offsets-for-times look-up (it says "none", `-1`, whatever the
//! instant): the replay's time bounds come from [`fleuve_kafka::time::offsets_at`], which
//! checks that answer against the records and searches them. So time ranges are right here
//! too: `--from` now replays nothing, `--to` a future time replays up to the end, a range
//! in the middle exactly its events.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first unexpected error"
)]

use fleuve_schemas::clock::now_ms;
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_replay::{replay, Bound, NoProgress, ReplayConfig, Summary};
use fleuve_schemas::PlaybackProgressed;
use fleuve_testkit::Kafka;
use serde_json::Value;

const TOPIC: &str = "user-activity";
const EVENTS: i64 = 12;

/// A `Write` whose bytes the test reads afterwards.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn event_id(i: i64) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Publishes event `i` at `t0 + i s` for `i` in `0..EVENTS`, on four users (so on several
/// partitions).
async fn publish(kafka: &Kafka, t0: i64) {
    let publisher = Publisher::new(PublisherConfig::new(
        kafka.config(),
        &kafka.registry_url,
        "replay-test",
    ))
    .unwrap();
    for i in 0..EVENTS {
        publisher
            .publish(&PlaybackProgressed {
                event_id: event_id(i),
                occurred_at: t0 + i * 1000,
                producer: "replay-test".into(),
                correlation_id: None,
                user_id: format!("u-{}", i % 4),
                content_id: format!("c-{i}"),
                position_ms: i,
                duration_ms: 100_000,
                device: "web".into(),
            })
            .await
            .unwrap();
    }
}

/// Replays `[from, to)` and returns the summary and the event ids written.
async fn run(kafka: &Kafka, from: Option<Bound>, to: Option<Bound>) -> (Summary, BTreeSet<String>) {
    let mut config = ReplayConfig::new(kafka.config(), &kafka.registry_url, TOPIC);
    config.from = from;
    config.to = to;
    config.timeout = Duration::from_secs(10);
    let out = Buffer::default();
    let summary = replay(config, Box::new(out.clone()), Box::new(NoProgress))
        .await
        .unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let ids = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event"]["event_id"].as_str().unwrap().to_owned()
        })
        .collect();
    (summary, ids)
}

fn ids(range: std::ops::Range<i64>) -> BTreeSet<String> {
    range.map(event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_bounds_are_right_on_a_broker_that_answers_no_time_look_up() {
    let kafka = Kafka::start().await;
    // Whole seconds, an hour ago.
    let t0 = (now_ms() / 1000 - 3600) * 1000;
    publish(&kafka, t0).await;

    // The deviation this defends against: the MockCluster says "none" for a time before
    // every record.
    let consumer: rdkafka::consumer::BaseConsumer = kafka
        .config()
        .client_config()
        .set("group.id", "replay-test-raw")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, rdkafka::Offset::Offset(t0 - 60_000))
        .unwrap();
    let raw =
        rdkafka::consumer::Consumer::offsets_for_times(&consumer, tpl, Duration::from_secs(10))
            .unwrap();
    assert_eq!(
        raw.elements()[0].offset(),
        rdkafka::Offset::End,
        "the MockCluster answers \"none\" before the first record"
    );

    // Everything, for reference: every partition's end offset.
    let (all, got) = run(&kafka, None, None).await;
    assert_eq!(got, ids(0..EVENTS));
    let ends: Vec<i64> = all.ranges.values().map(|(_, to)| *to).collect();

    // --from now: every partition ended earlier, nothing is replayed.
    let (summary, got) = run(&kafka, Some(Bound::Time(now_ms())), None).await;
    assert_eq!(summary.written, 0, "{summary}");
    assert_eq!(summary.read, 0, "{summary}");
    assert!(got.is_empty());
    for (p, (from, to)) in &summary.ranges {
        assert_eq!(from, to, "partition {p}: {summary}");
        assert_eq!(
            Some(to),
            all.ranges.get(p).map(|(_, end)| end),
            "partition {p}"
        );
    }

    // --to a future time: up to the end.
    let (summary, got) = run(&kafka, None, Some(Bound::Time(now_ms() + 3_600_000))).await;
    assert_eq!(got, ids(0..EVENTS), "{summary}");
    assert_eq!(
        summary
            .ranges
            .values()
            .map(|(_, to)| *to)
            .collect::<Vec<_>>(),
        ends
    );

    // --from before the first record: from the beginning.
    let (summary, got) = run(&kafka, Some(Bound::Time(t0 - 60_000)), None).await;
    assert_eq!(got, ids(0..EVENTS), "{summary}");

    // A range in the middle, bounds on records' times: [t0 + 3 s, t0 + 8 s).
    let (summary, got) = run(
        &kafka,
        Some(Bound::Time(t0 + 3_000)),
        Some(Bound::Time(t0 + 8_000)),
    )
    .await;
    assert_eq!(got, ids(3..8), "{summary}");

    // Between records' times: [t0 + 2.5 s, t0 + 5.5 s) holds events 3, 4 and 5.
    let (summary, got) = run(
        &kafka,
        Some(Bound::Time(t0 + 2_500)),
        Some(Bound::Time(t0 + 5_500)),
    )
    .await;
    assert_eq!(got, ids(3..6), "{summary}");
}

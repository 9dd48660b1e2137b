//! Shared by the runtime tests: a handler whose effect shows an event applied twice, what a
//! [`FaultyStore`] saw it apply, and helpers to publish, wait, and read offsets and metrics.
// Each test binary uses part of this module.
#![expect(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support shared by several test binaries, each using a part; a test stops at the first unexpected error"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use async_trait::async_trait;
use fleuve_processors::runtime::{
    Fold, Handler, Incoming, Processor, ProcessorConfig, ProcessorError,
};
use fleuve_producers::{Publisher, PublisherConfig};
use fleuve_projections::testing::FaultyStore;
use fleuve_projections::{Store, StoreError, TableRow, Write, WriteBatch};
use fleuve_schemas::PlaybackProgressed;
use fleuve_service::{Readiness, ReadyFlag};
use fleuve_testkit::Kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// The topic every test here publishes to.
pub const TOPIC: &str = "user-activity";

/// The table [`Tally`] writes.
pub const TALLY: &str = "tally";

/// Clustering key of a tally row.
const COUNT: &str = "count";

/// A processor whose projection counts how many times each event was applied: one row per
/// `event_id` in [`TALLY`], `<applications> <partition>:<offset>`. The count is read back
/// from the store before each batch, so an event applied in two batches (a redelivery the
/// checkpoints missed) leaves `2`. Playback events from the device `reject` are rejected.
#[derive(Debug)]
pub struct Tally {
    name: &'static str,
}

impl Tally {
    /// `name` is the processor's: its consumer group, dead-letter topic and metric label.
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self { name })
    }
}

fn text(value: &Value, field: &str) -> Option<String> {
    let Value::Record(fields) = value else {
        return None;
    };
    fields.iter().find_map(|(name, v)| match v {
        Value::String(s) if name == field => Some(s.clone()),
        Value::Uuid(u) if name == field => Some(u.to_string()),
        _ => None,
    })
}

#[async_trait]
impl Handler for Tally {
    fn name(&self) -> &'static str {
        self.name
    }

    fn topics(&self) -> &'static [&'static str] {
        &[TOPIC]
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "PlaybackProgressed"
    }

    async fn fold(&self, store: &dyn Store, events: &[Incoming]) -> Result<Fold, StoreError> {
        let ids: Vec<Option<String>> = events.iter().map(|e| text(&e.value, "event_id")).collect();
        let keys: Vec<(String, String)> = ids
            .iter()
            .flatten()
            .map(|id| (id.clone(), COUNT.to_owned()))
            .collect();
        let stored = store.get_many(TALLY, &keys).await?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        for ((id, _), value) in keys.iter().zip(stored) {
            let count = match value {
                Some(v) => parse_count(&v)
                    .ok_or_else(|| StoreError::corrupt(TALLY, id, COUNT, "not a tally row"))?,
                None => 0,
            };
            counts.insert(id.clone(), count);
        }
        let mut fold = Fold::default();
        for (index, (event, id)) in events.iter().zip(ids).enumerate() {
            let Some(id) = id else {
                fold.rejected.push((index, "no event_id".into()));
                continue;
            };
            if text(&event.value, "device").as_deref() == Some("reject") {
                fold.rejected
                    .push((index, "events from the device `reject` are refused".into()));
                continue;
            }
            let count = counts.entry(id.clone()).or_insert(0);
            *count += 1;
            fold.writes.state.push(Write::Put {
                table: TALLY,
                pk: id,
                ck: COUNT.to_owned(),
                value: format!("{count} {}:{}", event.partition, event.offset).into_bytes(),
                ts: event.offset,
            });
        }
        Ok(fold)
    }
}

fn parse_count(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value)
        .ok()?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Longest a held `apply` waits ([`fleuve_projections::testing::Faults::hold_apply`]):
/// shorter than the consumers' session timeout in these tests, so that a processor held
/// before it has seen a rebalance keeps its partitions.
pub const HOLD_MAX: Duration = Duration::from_millis(2500);

/// The [`TALLY`] rows a write batch puts, by event id.
fn tally_ids(batch: &WriteBatch) -> impl Iterator<Item = &str> {
    batch
        .writes
        .derived
        .iter()
        .chain(&batch.writes.state)
        .filter_map(|w| match w {
            Write::Put { table, pk, .. } if *table == TALLY => Some(pk.as_str()),
            _ => None,
        })
}

/// Per event id, how many batches applied through `stores` wrote its tally row.
pub fn applied_per_event(stores: &[&FaultyStore]) -> BTreeMap<String, u64> {
    let mut applied = BTreeMap::new();
    for batch in stores.iter().flat_map(|s| s.applied()) {
        for id in tally_ids(&batch) {
            *applied.entry(id.to_owned()).or_default() += 1;
        }
    }
    applied
}

/// The number of [`TALLY`] rows of each batch applied with checkpoints through `store`, in
/// order.
pub fn batch_sizes(store: &FaultyStore) -> Vec<usize> {
    store
        .applied()
        .iter()
        .filter(|b| !b.checkpoints.is_empty())
        .map(|b| tally_ids(b).count())
        .collect()
}

/// A fresh embedded store in `dir`.
pub async fn embedded(dir: &std::path::Path) -> Arc<dyn Store> {
    fleuve_projections::open(&format!("embedded://{}", dir.display()))
        .await
        .unwrap()
}

/// Event `seq` of the tests: its own `event_id`, keyed by one of `users` users (so spread
/// over the topic's partitions).
pub fn event(seq: u64, users: u64) -> PlaybackProgressed {
    PlaybackProgressed {
        event_id: event_id(seq),
        occurred_at: now_ms() - 5,
        producer: "test".into(),
        correlation_id: None,
        user_id: format!("u-{}", seq % users),
        content_id: format!("c-{seq}"),
        position_ms: i64::try_from(seq).unwrap(),
        duration_ms: 1_000_000,
        device: "web".into(),
    }
}

/// The `event_id` of event `seq`.
pub fn event_id(seq: u64) -> String {
    format!("00000000-0000-4000-8000-{seq:012x}")
}

pub use fleuve_schemas::clock::now_ms;

/// Publishes events `range`, in order.
pub async fn publish(publisher: &Publisher, range: std::ops::Range<u64>, users: u64) {
    let events: Vec<PlaybackProgressed> = range.map(|seq| event(seq, users)).collect();
    for result in publisher.publish_batch(&events).await.unwrap() {
        result.unwrap();
    }
}

/// A publisher of test events to `kafka`.
pub fn publisher(kafka: &Kafka) -> Publisher {
    Publisher::new(PublisherConfig::new(
        kafka.config(),
        &kafka.registry_url,
        "test",
    ))
    .unwrap()
}

/// A Kafka cluster for processor `name` (its dead-letter topic created) and a publisher.
pub async fn kafka_for(name: &str) -> (Kafka, Publisher) {
    let kafka = Kafka::start().await;
    kafka.create_topic(&format!("dlq.{name}"), 1);
    let publisher = publisher(&kafka);
    (kafka, publisher)
}

/// Client settings for the processors of these tests: quick failure detection and
/// rebalances on the mock cluster.
pub fn kafka_config(kafka: &Kafka) -> fleuve_kafka::KafkaConfig {
    kafka
        .config()
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
}

/// A processor running in a task.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), ProcessorError>>,
    pub readiness: Arc<ReadyFlag>,
}

impl Running {
    /// Asks it to stop and waits for its result.
    pub async fn stop(self) -> Result<(), ProcessorError> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the processor stops within 30 s")
            .unwrap()
    }
}

/// Starts `handler` on `store` with short retry backoffs.
pub fn start(kafka: &Kafka, handler: Arc<dyn Handler>, store: Arc<dyn Store>) -> Running {
    start_with(kafka, handler, store, |_| {})
}

/// [`start`], with settings changed by `tune`.
pub fn start_with(
    kafka: &Kafka,
    handler: Arc<dyn Handler>,
    store: Arc<dyn Store>,
    tune: impl FnOnce(&mut ProcessorConfig),
) -> Running {
    let mut config = ProcessorConfig::new(kafka_config(kafka), &kafka.registry_url);
    config.max_backoff = Duration::from_millis(200);
    tune(&mut config);
    let processor = Processor::new(config, handler, store).unwrap();
    let readiness = processor.readiness();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { processor.run(token).await });
    Running {
        shutdown,
        task,
        readiness,
    }
}

/// Polls `check` every 50 ms until it returns `Some`, panicking with `what` after `limit`.
pub async fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row of [`TALLY`].
pub async fn tally_rows(store: &dyn Store) -> Vec<TableRow> {
    let mut rows: Vec<TableRow> = Vec::new();
    loop {
        let after = rows.last().map(|r| (r.pk.as_str(), r.ck.as_str()));
        let page = store.scan_table(TALLY, after, 500).await.unwrap();
        if page.is_empty() {
            return rows;
        }
        rows.extend(page);
    }
}

/// Per event id, the number of applications its tally row counts.
pub async fn tally_counts(store: &dyn Store) -> BTreeMap<String, u64> {
    tally_rows(store)
        .await
        .into_iter()
        .map(|r| (r.pk, parse_count(&r.value).unwrap()))
        .collect()
}

/// The store checkpoints of `projection`, by partition of [`TOPIC`].
pub async fn checkpoints(store: &dyn Store, projection: &str) -> BTreeMap<i32, i64> {
    store
        .checkpoints(projection)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.topic == TOPIC)
        .map(|c| (c.partition, c.next_offset))
        .collect()
}

/// The end offset of each partition of [`TOPIC`].
pub fn end_offsets(kafka: &Kafka) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.cluster.bootstrap_servers())
        .create()
        .unwrap();
    (0..fleuve_testkit::PARTITIONS)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect()
}

/// The offsets committed by consumer group `group` on [`TOPIC`] (partitions with none are
/// left out). Reads them without joining the group.
pub fn committed(kafka: &Kafka, group: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.cluster.bootstrap_servers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..fleuve_testkit::PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The value of a counter, or the sample count of a histogram, of the default registry
/// with these labels (0 when the series does not exist yet).
pub fn metric(name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for family in prometheus::gather() {
        if family.name() != name {
            continue;
        }
        let histogram = family.get_field_type() == prometheus::proto::MetricType::HISTOGRAM;
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if !matches {
                continue;
            }
            #[expect(
                clippy::cast_precision_loss,
                reason = "counts far below 2^52 are exact in f64"
            )]
            let value = if histogram {
                m.get_histogram().get_sample_count() as f64
            } else {
                m.get_counter().get_value()
            };
            total += value;
        }
    }
    total
}

/// Whether the processor behind `readiness` reports ready.
pub fn is_ready(readiness: &ReadyFlag) -> bool {
    readiness.ready().is_ok()
}

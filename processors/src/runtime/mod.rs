//! The consumer runtime shared by every processor.
//!
//! One [`Processor`] runs one [`Handler`], with the partitions of its topics either owned
//! (it assigns them all to itself: a store only this process writes) or shared in the
//! consumer group `fleuve-<name>` ([`Membership`]). A watchdog beside the batch loop tells a
//! *stalled* projection (it lags and applied nothing for [`ProcessorConfig::stall_after`])
//! from one catching up: readiness fails while it lasts, and a group member leaves and
//! rejoins its group. For each batch:
//!
//! 1. poll a batch (see [Batches](#batches) below);
//! 2. per partition, compare each record with the handler's checkpoint (the next offset it
//!    has to apply, read from the store): records below it were applied already and are
//!    skipped; a record above it means Kafka's committed offset is ahead of the store, so the
//!    consumer seeks back to the checkpoint;
//! 3. decode each record through the schema registry; the handler folds the decoded events
//!    into store writes ([`Handler::fold`]: it reads the rows it needs once, through
//!    [`Staging`], and may reject an event with a reason);
//! 4. the records that cannot be decoded and the events the handler rejected are written to
//!    `dlq.<name>` before anything else happens;
//! 5. the writes and the new checkpoints go to the store in one [`Store::apply`], retried
//!    with backoff while the store reports a transient error;
//! 6. only then are the Kafka offsets stored (committed by the next auto-commit).
//!
//! A crash anywhere replays at most the last batch, which the checkpoints turn into no-ops
//! (and which the read models make idempotent where a store cannot apply a batch
//! atomically). A dead letter may be written twice when a crash falls between steps 4 and 5.
//!
//! # Batches
//!
//! A batch is bounded by size and by time. The processor waits, with no limit, for a first
//! record (or for something else to do: a timer tick, newly assigned partitions, a new
//! version of the projection to write, shutdown). From the moment that record is
//! received, it adds records until the batch holds [`ProcessorConfig::batch_max_events`]
//! records or [`ProcessorConfig::batch_max_wait`] has passed, whichever comes first.
//! Records already received by the consumer (librdkafka fetches ahead into a local queue)
//! are always taken, even once the wait is over, up to the size bound; the wait only
//! decides how long to wait for records that have not arrived yet. So with a wait of zero,
//! the default, a batch is the first record plus whatever is already queued behind it, and
//! never waits: at low rates each event is applied as soon as it arrives, under load the
//! queue fills batches anyway. A wait delays the batch's first event by at most that much
//! (at most [`MAX_BATCH_WAIT`]), and ends early on shutdown.
//!
//! A rebalance may revoke partitions while a batch is read. Records read before it whose
//! partition is no longer assigned are dropped, not applied: the partition's new owner
//! applies them from the store checkpoint.
//!
//! Handlers with a timer ([`Handler::timer`]) are also called between batches to make
//! time-driven changes (a catalogue window that opens or closes with no event).
//!
//! Metrics (namespace `fleuve_processor`): records consumed, events applied, dead letters by
//! reason, retries by operation, batch duration, freshness (now − event time), consumer
//! lag per partition (from librdkafka statistics, every 5 s), seconds stalled, and group
//! rejoins by reason.

mod dlq;
pub mod kill;
mod metrics;
mod watch;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use async_trait::async_trait;
use fleuve_kafka::{KafkaConfig, KafkaError as FleuveKafkaError};
use fleuve_projections::versions::Versions;
use fleuve_projections::{Checkpoint, Store, StoreError, WriteBatch, Writes};
use fleuve_service::ReadyFlag;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use tokio_util::sync::CancellationToken;

pub use dlq::DeadLetterReason;
pub use fleuve_projections::Staging;
pub use watch::RejoinReason;

/// A decoded event handed to a [`Handler`].
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Event type name from the catalogue (`PlaybackProgressed`).
    pub event_type: &'static str,
    /// The record, in its writer schema's shape.
    pub value: Value,
}

/// What folding a batch produced: the store writes, and the events rejected (by index in
/// the batch, with the reason) that go to the dead-letter topic instead.
#[derive(Debug, Default)]
pub struct Fold {
    pub writes: Writes,
    pub rejected: Vec<(usize, String)>,
}

/// What a processor does with events. Implementations live in `handlers/<name>/`.
#[async_trait]
pub trait Handler: Send + Sync + std::fmt::Debug + 'static {
    /// Processor name: consumer group `fleuve-<name>`, dead letters in `dlq.<name>`, and the
    /// projection name of its checkpoints.
    fn name(&self) -> &'static str;

    /// Topics it consumes.
    fn topics(&self) -> &'static [&'static str];

    /// Whether it is interested in this event type (others are skipped, not dead-lettered).
    fn wants(&self, event_type: &str) -> bool;

    /// Folds a batch (in log order per partition) into writes. Reads the current rows it
    /// needs from `store` but never writes to it: the runtime applies the writes with the
    /// batch's checkpoints. Rejected events must leave no write behind. A transient store
    /// error makes the runtime retry the whole fold.
    async fn fold(&self, store: &dyn Store, events: &[Incoming]) -> Result<Fold, StoreError>;

    /// How often [`Handler::on_timer`] runs; `None` (the default) for no timer.
    fn timer(&self) -> Option<Duration> {
        None
    }

    /// Time-driven writes as of `now_ms` (ms since the Unix epoch). Must be idempotent: it
    /// may run again for the same instant after a crash, and on every replica.
    async fn on_timer(&self, _store: &dyn Store, _now_ms: i64) -> Result<Writes, StoreError> {
        Ok(Writes::default())
    }
}

/// Largest [`ProcessorConfig::batch_max_events`]: read models recognise a replayed batch
/// within a window of offsets (`fleuve_projections::inventory::REPLAY_WINDOW`) that a batch
/// must not exceed.
pub const MAX_BATCH_EVENTS: usize = 5_000;

/// Longest [`ProcessorConfig::batch_max_wait`]: what a batch's first event may wait for
/// company before it is applied.
pub const MAX_BATCH_WAIT: Duration = Duration::from_secs(10);

/// Longest wait for the last offset commit on shutdown (the store checkpoints are the
/// truth: a commit lost here only makes the next start skip a few records again).
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Shortest and longest [`ProcessorConfig::stall_after`].
pub const STALL_AFTER_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));

/// How a processor gets the partitions of its topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// It assigns itself every partition of its topics, at the store's checkpoints: no
    /// consumer group, no coordinator, no join delay. For a store only this process writes
    /// (the embedded store): no other process could share the work. Partitions added to the
    /// topics later are picked up by the watchdog.
    Owned,
    /// It joins the consumer group `fleuve-<name>`, which splits the partitions between the
    /// processes sharing one store (ScyllaDB). With `instance_id`, static membership
    /// (`group.instance.id`): a restarted member with the same id takes its place at once on
    /// brokers that honour it (see docs/projections.md for what each broker does).
    Group { instance_id: Option<String> },
}

/// Settings of a processor.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub kafka: KafkaConfig,
    /// Base URL of the schema registry.
    pub registry_url: String,
    /// Most records in one batch, from 1 to [`MAX_BATCH_EVENTS`] (default 1,000).
    pub batch_max_events: usize,
    /// Longest wait for records that have not arrived yet, counted from the receipt of a
    /// batch's first record, up to [`MAX_BATCH_WAIT`]. Zero (the default) ends the batch as
    /// soon as no received record is waiting: under load the consumer's prefetch queue fills
    /// batches anyway, and at low rates events are applied without delay. See the module
    /// docs, [Batches](self#batches).
    pub batch_max_wait: Duration,
    /// Longest pause between two retries of a transient failure.
    pub max_backoff: Duration,
    /// How often librdkafka reports statistics (the lag gauge); zero turns them off.
    pub statistics_interval: Duration,
    /// Consumer group or owned partitions (default: a group).
    pub membership: Membership,
    /// A projection that lags and applies nothing for this long is *stalled*: readiness
    /// fails, and a group member leaves and rejoins its group. From 1 s to 1 h (default
    /// 30 s); see [`STALL_AFTER_RANGE`].
    pub stall_after: Duration,
}

impl ProcessorConfig {
    pub fn new(kafka: KafkaConfig, registry_url: impl Into<String>) -> Self {
        Self {
            kafka,
            registry_url: registry_url.into(),
            batch_max_events: 1000,
            batch_max_wait: Duration::ZERO,
            max_backoff: Duration::from_secs(5),
            statistics_interval: Duration::from_secs(5),
            membership: Membership::Group { instance_id: None },
            stall_after: Duration::from_secs(30),
        }
    }

    /// Checks the batch bounds.
    fn validate(&self, processor: &'static str) -> Result<(), ProcessorError> {
        let reason = if !(1..=MAX_BATCH_EVENTS).contains(&self.batch_max_events) {
            format!(
                "batch_max_events must be from 1 to {MAX_BATCH_EVENTS}, got {}",
                self.batch_max_events
            )
        } else if self.batch_max_wait > MAX_BATCH_WAIT {
            format!(
                "batch_max_wait must be from 0 to {} ms, got {} ms",
                MAX_BATCH_WAIT.as_millis(),
                self.batch_max_wait.as_millis()
            )
        } else if !(STALL_AFTER_RANGE.0..=STALL_AFTER_RANGE.1).contains(&self.stall_after) {
            format!(
                "stall_after must be from {} to {} ms, got {} ms",
                STALL_AFTER_RANGE.0.as_millis(),
                STALL_AFTER_RANGE.1.as_millis(),
                self.stall_after.as_millis()
            )
        } else if matches!(&self.membership, Membership::Group { instance_id: Some(id) } if id.trim().is_empty() || id.len() > 249)
        {
            "the group instance id must be 1 to 249 characters, not blank".to_owned()
        } else {
            return Ok(());
        };
        Err(ProcessorError::Config { processor, reason })
    }
}

/// Why a processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("processor `{processor}`: {source}")]
    Kafka {
        processor: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("processor `{processor}`: {source}")]
    Setup {
        processor: &'static str,
        #[source]
        source: FleuveKafkaError,
    },
    #[error("processor `{processor}`: invalid settings: {reason}")]
    Config {
        processor: &'static str,
        reason: String,
    },
    #[error("processor `{processor}`: schema registry: {reason}")]
    Registry {
        processor: &'static str,
        reason: String,
    },
    /// Shutdown was asked while a batch was waiting on a transient failure; nothing of that
    /// batch was stored.
    #[error("processor `{processor}` interrupted by shutdown")]
    Interrupted { processor: &'static str },
    /// The store failed in a way retrying cannot fix: the processor stops without storing
    /// offsets past the failed batch.
    #[error("processor `{processor}` stopped on a store error: {source}")]
    Store {
        processor: &'static str,
        #[source]
        source: StoreError,
    },
}

/// Tells the batch loop about rebalances: a generation counter (its partitions may have
/// changed) and the partitions newly assigned, which it positions at their checkpoints.
#[derive(Debug, Default)]
struct RebalanceContext {
    generation: AtomicU64,
    name: &'static str,
    assigned: std::sync::Mutex<Vec<(String, i32)>>,
    wake: tokio::sync::Notify,
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: Statistics) {
        metrics::lag(self.name, &statistics);
    }
}

impl ConsumerContext for RebalanceContext {
    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match rebalance {
            Rebalance::Assign(tpl) => {
                if tpl.count() > 0 {
                    kill::pass(kill::ON_ASSIGN);
                }
                if let Ok(mut assigned) = self.assigned.lock() {
                    assigned.extend(
                        tpl.elements()
                            .iter()
                            .map(|e| (e.topic().to_owned(), e.partition())),
                    );
                }
                self.wake.notify_one();
                tracing::info!(
                    processor = self.name,
                    partitions = tpl.count(),
                    "partitions assigned"
                );
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(
                    processor = self.name,
                    partitions = tpl.count(),
                    "partitions revoked"
                );
            }
            Rebalance::Error(e) => {
                tracing::warn!(processor = self.name, error = %e, "rebalance error")
            }
        }
    }
}

/// Where a partition stands in this consumer.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// Next offset to apply; records must arrive exactly there.
    At(i64),
    /// After a seek to this offset: the first record at or after it is the next to apply
    /// (compaction or transaction markers may leave holes).
    Seeking(i64),
}

/// A processor: one handler driven by one consumer.
pub struct Processor {
    handler: Arc<dyn Handler>,
    store: Arc<dyn Store>,
    /// When set, the store written is the writer version of the handler's projection, which
    /// may change while the processor runs (a rebuild switching over).
    versions: Option<Arc<Versions>>,
    config: ProcessorConfig,
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    decoder: AvroDecoder,
    /// `None` for a bounded build: its dead letters were sent when the records were first
    /// consumed.
    dlq: Option<dlq::DeadLetters>,
    /// `Some` for a bounded build ([`Processor::bounded`]).
    bounds: Option<Bounds>,
    /// Readiness, and what the watchdog asks of the batch loop.
    signals: Arc<watch::Signals>,
}

/// Where a bounded build stops, and how far it is.
struct Bounds {
    /// Exclusive end offset per partition.
    ends: HashMap<(String, i32), i64>,
    /// The instant the handler's timer runs as of once the ends are reached.
    timer_at_ms: i64,
    progress: Arc<BuildProgress>,
}

/// How far a bounded build ([`Processor::bounded`]) is; shared with whoever watches it.
#[derive(Debug, Default)]
pub struct BuildProgress {
    /// Records read from the log.
    pub records: AtomicU64,
    /// Records that went to the dead-letter topic when first consumed and are skipped again.
    pub dead_letters: AtomicU64,
    /// Per partition: (next offset to apply, end offset).
    partitions: std::sync::Mutex<std::collections::BTreeMap<(String, i32), (i64, i64)>>,
}

impl BuildProgress {
    /// Per partition: topic, partition, next offset to apply, end offset.
    pub fn partitions(&self) -> Vec<(String, i32, i64, i64)> {
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|((t, p), (at, end))| (t.clone(), *p, *at, *end))
            .collect()
    }

    /// Records still to read (sum over partitions of end − next).
    pub fn remaining(&self) -> i64 {
        self.partitions()
            .iter()
            .map(|(_, _, at, end)| (end - at).max(0))
            .sum()
    }

    fn set(&self, topic: &str, partition: i32, at: i64, end: i64) {
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((topic.to_owned(), partition), (at, end));
    }
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("handler", &self.handler.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Processor {
    /// Creates the consumer and subscribes; nothing is consumed before [`Processor::run`].
    pub fn new(
        config: ProcessorConfig,
        handler: Arc<dyn Handler>,
        store: Arc<dyn Store>,
    ) -> Result<Self, ProcessorError> {
        let name = handler.name();
        config.validate(name)?;
        kill::arm().map_err(|reason| ProcessorError::Config {
            processor: name,
            reason,
        })?;
        let kafka_err = |source| ProcessorError::Kafka {
            processor: name,
            source,
        };
        let context = RebalanceContext {
            generation: AtomicU64::new(0),
            name,
            assigned: std::sync::Mutex::default(),
            wake: tokio::sync::Notify::new(),
        };
        let mut client_config = config.kafka.consumer_config(&format!("fleuve-{name}"));
        if !config.statistics_interval.is_zero() {
            client_config.set(
                "statistics.interval.ms",
                config.statistics_interval.as_millis().to_string(),
            );
        }
        if let Membership::Group {
            instance_id: Some(id),
        } = &config.membership
        {
            client_config.set("group.instance.id", id);
        }
        let consumer: StreamConsumer<RebalanceContext> = client_config
            .create_with_context(context)
            .map_err(kafka_err)?;
        // Owned partitions are assigned when the processor runs, at the store checkpoints.
        if matches!(config.membership, Membership::Group { .. }) {
            consumer.subscribe(handler.topics()).map_err(kafka_err)?;
        }
        let dlq = dlq::DeadLetters::new(&config.kafka, name).map_err(kafka_err)?;
        Self::with_consumer(config, handler, store, consumer, Some(dlq), None)
    }

    /// A processor that builds `store` from its checkpoints (the start of the log when it has
    /// none) up to `ends` (exclusive end offset per topic partition), then stops: a rebuild
    /// or a snapshot. It reads every partition itself (no consumer group, no offset
    /// commit), sends no dead letter (the live processor did when the records were first
    /// consumed), and runs the handler's timer once at the end, as of `timer_at_ms` (ms since
    /// the Unix epoch: windows that opened or closed by then with no event).
    pub fn bounded(
        config: ProcessorConfig,
        handler: Arc<dyn Handler>,
        store: Arc<dyn Store>,
        ends: Vec<Checkpoint>,
        timer_at_ms: i64,
        progress: Arc<BuildProgress>,
    ) -> Result<Self, ProcessorError> {
        let name = handler.name();
        config.validate(name)?;
        let context = RebalanceContext {
            generation: AtomicU64::new(0),
            name,
            assigned: std::sync::Mutex::default(),
            wake: tokio::sync::Notify::new(),
        };
        let mut client_config = config
            .kafka
            .consumer_config(&format!("fleuve-{name}-build"));
        client_config.set("enable.auto.commit", "false");
        let consumer: StreamConsumer<RebalanceContext> = client_config
            .create_with_context(context)
            .map_err(|source| ProcessorError::Kafka {
                processor: name,
                source,
            })?;
        let ends = ends
            .into_iter()
            .map(|c| ((c.topic, c.partition), c.next_offset))
            .collect();
        Self::with_consumer(
            config,
            handler,
            store,
            consumer,
            None,
            Some(Bounds {
                ends,
                timer_at_ms,
                progress,
            }),
        )
    }

    fn with_consumer(
        config: ProcessorConfig,
        handler: Arc<dyn Handler>,
        store: Arc<dyn Store>,
        consumer: StreamConsumer<RebalanceContext>,
        dlq: Option<dlq::DeadLetters>,
        bounds: Option<Bounds>,
    ) -> Result<Self, ProcessorError> {
        let name = handler.name();
        let settings = SrSettings::new_builder(config.registry_url.clone())
            .set_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ProcessorError::Registry {
                processor: name,
                reason: e.to_string(),
            })?;
        Ok(Self {
            handler,
            store,
            versions: None,
            decoder: AvroDecoder::new(settings),
            dlq,
            bounds,
            signals: Arc::new(watch::Signals::new()),
            consumer: Arc::new(consumer),
            config,
        })
    }

    /// Ready while the processor consumes and its projection is not stalled (it lags and
    /// has applied nothing for [`ProcessorConfig::stall_after`]); not ready before it starts
    /// and once it has stopped. Not ready always comes with the reason. Serve it on
    /// `/readyz`.
    pub fn readiness(&self) -> Arc<ReadyFlag> {
        self.signals.flag()
    }

    /// Writes the writer version of the handler's projection ([`Versions::writer`]) instead
    /// of the store given to [`Processor::new`], following it when it changes: at the next
    /// batch boundary the processor positions its partitions at the new version's
    /// checkpoints.
    pub fn follow_versions(mut self, versions: Arc<Versions>) -> Self {
        self.versions = Some(versions);
        self
    }

    /// The dead-letter topic of this processor (none for a bounded build).
    pub fn dead_letter_topic(&self) -> Option<&str> {
        self.dlq.as_ref().map(dlq::DeadLetters::topic)
    }

    /// The store written now, and its version.
    fn target(&self) -> (u32, Arc<dyn Store>) {
        match &self.versions {
            Some(v) => v.writer(self.handler.name()),
            None => (1, Arc::clone(&self.store)),
        }
    }

    /// Runs until `shutdown` is cancelled (then finishes the batch at hand, commits and
    /// returns) or a permanent error stops it.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProcessorError> {
        let name = self.handler.name();
        if let Some(dlq) = &self.dlq {
            fleuve_kafka::topics::ensure_topics(
                &self.config.kafka,
                &[fleuve_kafka::topics::TopicSpec::new(dlq.topic(), 1)],
            )
            .await
            .map_err(|source| ProcessorError::Setup {
                processor: name,
                source,
            })?;
        }
        tracing::info!(processor = name, topics = ?self.handler.topics(), membership = ?self.config.membership, "processor started");
        self.signals.set_running(Ok(()));
        let stop_watch = CancellationToken::new();
        if self.bounds.is_none() {
            tokio::spawn(watch::run(
                watch::Watched {
                    name,
                    topics: self.handler.topics(),
                    kafka: self.config.kafka.clone(),
                    membership: self.config.membership.clone(),
                    stall_after: self.config.stall_after,
                    store: Arc::clone(&self.store),
                    versions: self.versions.clone(),
                    consumer: Arc::clone(&self.consumer),
                    signals: Arc::clone(&self.signals),
                },
                stop_watch.clone(),
            ));
        }
        let result = self.consume(&shutdown).await;
        stop_watch.cancel();
        self.signals.set_running(Err(match &result {
            Ok(()) => "the processor has stopped".to_owned(),
            Err(e) => format!("the processor has stopped: {e}"),
        }));
        result
    }

    /// The batch loop, until shutdown, a permanent error, or (bounded build) the end.
    async fn consume(&self, shutdown: &CancellationToken) -> Result<(), ProcessorError> {
        let name = self.handler.name();
        let mut cursors: HashMap<(String, i32), Cursor> = HashMap::new();
        let mut seen_generation = u64::MAX;
        let (mut version, mut store) = self.target();
        let mut changes = self.versions.as_ref().map(|v| v.subscribe());
        let mut timer = match (&self.bounds, self.handler.timer()) {
            (None, Some(every)) => {
                let mut t = tokio::time::interval(every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Some(t)
            }
            _ => None,
        };
        let assigned = match (&self.bounds, &self.config.membership) {
            (Some(bounds), _) => {
                self.assign_bounded(&*store, bounds, &mut cursors, shutdown)
                    .await
            }
            (None, Membership::Owned) => self.assign_owned(&*store, &mut cursors, shutdown).await,
            (None, Membership::Group { .. }) => Ok(()),
        };
        match assigned {
            Ok(()) => {}
            Err(ProcessorError::Interrupted { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
        loop {
            if self.bounds.as_ref().is_some_and(Bounds::done) {
                break;
            }
            let mut batch = match self
                .poll_batch(shutdown, timer.as_mut(), changes.as_mut())
                .await?
            {
                Next::Stop => break,
                Next::Timer => {
                    match self
                        .run_timer(&*store, fleuve_schemas::clock::now_ms(), shutdown)
                        .await
                    {
                        Ok(()) => {}
                        Err(ProcessorError::Interrupted { .. }) => break,
                        Err(e) => return Err(e),
                    }
                    continue;
                }
                Next::Idle => {
                    self.check_bounded_positions();
                    continue;
                }
                Next::Batch(batch) => batch,
            };
            if self.bounds.is_none() {
                if let Some(reason) = self.signals.take_rejoin() {
                    // What this batch holds may belong to partitions about to move: dropped,
                    // read again from the checkpoints by whoever gets them.
                    self.rejoin(reason)?;
                    cursors.clear();
                    continue;
                }
                if self.signals.take_new_partitions() {
                    match self.assign_owned(&*store, &mut cursors, shutdown).await {
                        Ok(()) => {}
                        Err(ProcessorError::Interrupted { .. }) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            let (now_version, now_store) = self.target();
            if now_version != version {
                // A rebuild switched the writer: what this batch holds was read for the old
                // version. Drop it and position every partition at the new version's
                // checkpoints (a seek also discards what librdkafka has prefetched).
                tracing::info!(
                    processor = name,
                    from = version,
                    to = now_version,
                    "writing a new version of the projection"
                );
                version = now_version;
                store = now_store;
                cursors.clear();
                if let (Ok(assignment), Ok(mut assigned)) = (
                    self.consumer.assignment(),
                    self.consumer.context().assigned.lock(),
                ) {
                    assigned.extend(
                        assignment
                            .elements()
                            .iter()
                            .map(|e| (e.topic().to_owned(), e.partition())),
                    );
                }
                match self
                    .position_assigned(&*store, &mut cursors, shutdown)
                    .await
                {
                    Ok(()) => {}
                    Err(ProcessorError::Interrupted { .. }) => break,
                    Err(e) => return Err(e),
                }
                continue;
            }
            if self.bounds.is_none() {
                let generation = self.consumer.context().generation.load(Ordering::SeqCst);
                if generation != seen_generation {
                    // Partitions may have moved: forget what we knew and re-read checkpoints.
                    cursors.clear();
                    seen_generation = generation;
                    batch = self.retain_assigned(batch);
                }
                match self
                    .position_assigned(&*store, &mut cursors, shutdown)
                    .await
                {
                    Ok(()) => {}
                    Err(ProcessorError::Interrupted { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
            match self.process(batch, &*store, &mut cursors, shutdown).await {
                Ok(()) => {}
                Err(ProcessorError::Interrupted { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        if let Some(bounds) = &self.bounds {
            if !bounds.done() || self.handler.timer().is_none() {
                return Ok(());
            }
            return match self.run_timer(&*store, bounds.timer_at_ms, shutdown).await {
                Ok(()) | Err(ProcessorError::Interrupted { .. }) => Ok(()),
                Err(e) => Err(e),
            };
        }
        // A synchronous commit blocks on the broker: off the async workers, and bounded.
        let consumer = Arc::clone(&self.consumer);
        let commit =
            tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync));
        match tokio::time::timeout(FINAL_COMMIT_TIMEOUT, commit).await {
            Ok(Ok(
                Ok(())
                | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)),
            )) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(processor = name, error = %e, "final offset commit failed; the next start resumes from the store checkpoints")
            }
            Ok(Err(e)) => {
                tracing::warn!(processor = name, error = %e, "final offset commit task failed; the next start resumes from the store checkpoints")
            }
            Err(_) => {
                tracing::warn!(processor = name, timeout_s = FINAL_COMMIT_TIMEOUT.as_secs(), "final offset commit timed out; the next start resumes from the store checkpoints")
            }
        }
        tracing::info!(processor = name, "processor stopped");
        Ok(())
    }

    /// Keeps the records of the partitions assigned to this consumer now. A rebalance runs
    /// while the consumer waits for records, possibly in the middle of a batch: the records
    /// read before it may belong to partitions revoked since, which their new owner reads
    /// and applies from the store checkpoint, so applying them here too would apply them
    /// twice. Records of a partition assigned again are kept (no other consumer had it in
    /// between). When the assignment cannot be read the whole batch is dropped: the
    /// partitions still owned are read again from their checkpoints.
    fn retain_assigned(&self, batch: Vec<OwnedMessage>) -> Vec<OwnedMessage> {
        if batch.is_empty() {
            return batch;
        }
        let name = self.handler.name();
        let assigned: HashSet<(String, i32)> = match self.consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(e) => {
                tracing::warn!(processor = name, error = %e, records = batch.len(), "cannot read the assignment after a rebalance; dropping the batch");
                return Vec::new();
            }
        };
        let read = batch.len();
        let kept: Vec<OwnedMessage> = batch
            .into_iter()
            .filter(|m| assigned.contains(&(m.topic().to_owned(), m.partition())))
            .collect();
        if kept.len() < read {
            tracing::info!(
                processor = name,
                dropped = read - kept.len(),
                "dropping records of partitions revoked while the batch was read"
            );
        }
        kept
    }

    /// Assigns a bounded build every partition it has to read, at its checkpoint in the
    /// build's store.
    async fn assign_bounded(
        &self,
        store: &dyn Store,
        bounds: &Bounds,
        cursors: &mut HashMap<(String, i32), Cursor>,
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessorError> {
        let name = self.handler.name();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for ((topic, partition), end) in &bounds.ends {
            let next = self
                .retry(shutdown, "read checkpoint", || {
                    store.checkpoint(name, topic, *partition)
                })
                .await?;
            let at = next.unwrap_or(0);
            bounds.progress.set(topic, *partition, at.min(*end), *end);
            if at >= *end {
                continue;
            }
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(topic, *partition, offset)
                .map_err(|source| ProcessorError::Kafka {
                    processor: name,
                    source,
                })?;
            cursors.insert((topic.clone(), *partition), Cursor::Seeking(at));
        }
        self.consumer
            .assign(&tpl)
            .map_err(|source| ProcessorError::Kafka {
                processor: name,
                source,
            })
    }

    /// Owned partitions: assigns every partition of the handler's topics not assigned yet,
    /// each at its store checkpoint (the beginning when it has none). Metadata that cannot
    /// be read (broker down, topic not created yet) is retried until shutdown.
    async fn assign_owned(
        &self,
        store: &dyn Store,
        cursors: &mut HashMap<(String, i32), Cursor>,
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessorError> {
        let name = self.handler.name();
        let partitions = self
            .retry(shutdown, "read partitions", || self.partitions())
            .await?;
        let assigned: HashSet<(String, i32)> = self
            .consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        let mut tpl = rdkafka::TopicPartitionList::new();
        let mut positioned = Vec::new();
        for (topic, partition) in partitions {
            if assigned.contains(&(topic.clone(), partition)) {
                continue;
            }
            let next = self
                .retry(shutdown, "read checkpoint", || {
                    store.checkpoint(name, &topic, partition)
                })
                .await?;
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(&topic, partition, offset)
                .map_err(|source| ProcessorError::Kafka {
                    processor: name,
                    source,
                })?;
            positioned.push((topic, partition, next));
        }
        if positioned.is_empty() {
            return Ok(());
        }
        self.consumer
            .incremental_assign(&tpl)
            .map_err(|source| ProcessorError::Kafka {
                processor: name,
                source,
            })?;
        tracing::info!(
            processor = name,
            partitions = positioned.len(),
            "partitions assigned (owned: no consumer group)"
        );
        for (topic, partition, next) in positioned {
            if let Some(next) = next.filter(|n| *n > 0) {
                // Lets the committed offset (and the lag gauge) show what the store has.
                if let Err(e) = self.consumer.store_offset(&topic, partition, next - 1) {
                    tracing::debug!(processor = name, %topic, partition, error = %e, "could not store the checkpoint's offset");
                }
            }
            cursors.insert((topic, partition), Cursor::Seeking(next.unwrap_or(0)));
        }
        Ok(())
    }

    /// Every partition of the handler's topics, from the brokers' metadata.
    async fn partitions(&self) -> Result<Vec<(String, i32)>, Failure> {
        let consumer = Arc::clone(&self.consumer);
        let topics = self.handler.topics();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for topic in topics {
                let metadata = consumer
                    .fetch_metadata(Some(topic), Duration::from_secs(5))
                    .map_err(|e| Failure::Metadata(format!("metadata of `{topic}`: {e}")))?;
                let partitions: Vec<i32> = metadata
                    .topics()
                    .iter()
                    .filter(|t| t.name() == *topic && t.error().is_none())
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                if partitions.is_empty() {
                    return Err(Failure::Metadata(format!(
                        "topic `{topic}` does not exist on the brokers yet (`fleuve topics create` creates it)"
                    )));
                }
                out.extend(partitions.into_iter().map(|p| (topic.to_string(), p)));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Failure::Metadata(format!("metadata task: {e}")))?
    }

    /// Leaves the consumer group and joins it again (asked by the watchdog on a stall).
    fn rejoin(&self, reason: RejoinReason) -> Result<(), ProcessorError> {
        let name = self.handler.name();
        tracing::warn!(
            processor = name,
            reason = reason.as_str(),
            "leaving and rejoining the consumer group"
        );
        self.consumer.unsubscribe();
        self.consumer
            .subscribe(self.handler.topics())
            .map_err(|source| ProcessorError::Kafka {
                processor: name,
                source,
            })
    }

    /// A bounded build with nothing arriving: partitions whose consumer position has
    /// reached their end (the last offsets held no record) are done.
    fn check_bounded_positions(&self) {
        let Some(bounds) = &self.bounds else { return };
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for e in positions.elements() {
            let key = (e.topic().to_owned(), e.partition());
            if let (Some(end), Offset::Offset(at)) = (bounds.ends.get(&key), e.offset()) {
                if at >= *end {
                    bounds.progress.set(&key.0, key.1, *end, *end);
                }
            }
        }
    }

    /// Runs the handler's timer once and applies its writes.
    async fn run_timer(
        &self,
        store: &dyn Store,
        now_ms: i64,
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessorError> {
        let writes = self
            .retry(shutdown, "timer", || self.handler.on_timer(store, now_ms))
            .await?;
        if writes.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            processor = self.handler.name(),
            writes = writes.len(),
            "timer writes"
        );
        let batch = WriteBatch {
            projection: self.handler.name().to_owned(),
            writes,
            checkpoints: Vec::new(),
        };
        self.retry(shutdown, "apply timer writes", || {
            store.apply(batch.clone())
        })
        .await
    }

    async fn poll_batch(
        &self,
        shutdown: &CancellationToken,
        timer: Option<&mut tokio::time::Interval>,
        changes: Option<&mut tokio::sync::watch::Receiver<u64>>,
    ) -> Result<Next, ProcessorError> {
        let name = self.handler.name();
        let changed = async {
            match changes {
                // A closed channel never changes again.
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        let idle = async {
            if self.bounds.is_some() {
                tokio::time::sleep(BOUNDED_IDLE_CHECK).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let tick = async {
            match timer {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let first = tokio::select! {
            () = shutdown.cancelled() => return Ok(Next::Stop),
            // New partitions: hand back an empty batch so they get positioned now, even if
            // nothing arrives on them.
            () = self.consumer.context().wake.notified() => return Ok(Next::Batch(Vec::new())),
            // The watchdog asks for a rejoin or saw new partitions.
            () = self.signals.wake.notified() => return Ok(Next::Batch(Vec::new())),
            () = tick => return Ok(Next::Timer),
            // The routing changed: an empty batch makes the loop look at the writer version.
            () = changed => return Ok(Next::Batch(Vec::new())),
            () = idle => return Ok(Next::Idle),
            m = self.consumer.recv() => m,
        };
        let mut batch = Vec::with_capacity(self.config.batch_max_events);
        match first {
            Ok(m) => batch.push(m.detach()),
            Err(e) => {
                tracing::warn!(processor = name, error = %e, "consumer error");
                return Ok(Next::Batch(batch));
            }
        }
        // The wait is counted from the first record's receipt. `timeout_at` polls `recv`
        // before its deadline, so a record already received is taken even once the wait is
        // over (and with no wait at all): only records still to arrive are waited for.
        let deadline = tokio::time::Instant::now() + self.config.batch_max_wait;
        let waits = !self.config.batch_max_wait.is_zero();
        while batch.len() < self.config.batch_max_events {
            let next = tokio::time::timeout_at(deadline, self.consumer.recv());
            let received = if waits {
                tokio::select! {
                    // Shutdown ends the batch: what it holds is applied, the rest read again.
                    () = shutdown.cancelled() => break,
                    r = next => r,
                }
            } else {
                next.await
            };
            match received {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(processor = name, error = %e, "consumer error");
                    break;
                }
                Err(_elapsed) => break,
            }
        }
        Ok(Next::Batch(batch))
    }

    async fn process(
        &self,
        batch: Vec<OwnedMessage>,
        store: &dyn Store,
        cursors: &mut HashMap<(String, i32), Cursor>,
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessorError> {
        let name = self.handler.name();
        let started = Instant::now();
        // A build's records are old: they stay out of the live processor's metrics (a build
        // counts the records of its range below).
        if self.bounds.is_none() {
            metrics::consumed(name, batch.len());
        }
        let mut accepted = Vec::with_capacity(batch.len());
        let mut accepted_msgs = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        let mut checkpoints: HashMap<(String, i32), i64> = HashMap::new();
        let mut rewound: Vec<(String, i32)> = Vec::new();
        for msg in batch {
            let key = (msg.topic().to_owned(), msg.partition());
            if rewound.contains(&key) {
                continue;
            }
            if let Some(bounds) = &self.bounds {
                match bounds.ends.get(&key) {
                    Some(end) if msg.offset() >= *end => {
                        bounds.progress.set(&key.0, key.1, *end, *end);
                        continue;
                    }
                    Some(_) => {
                        bounds.progress.records.fetch_add(1, Ordering::Relaxed);
                    }
                    None => continue,
                }
            }
            let cursor = match cursors.get(&key) {
                Some(c) => *c,
                None => {
                    let next = self
                        .retry(shutdown, "read checkpoint", || {
                            store.checkpoint(name, &key.0, key.1)
                        })
                        .await?;
                    match next {
                        Some(n) => Cursor::At(n),
                        None => Cursor::Seeking(0),
                    }
                }
            };
            let offset = msg.offset();
            let next = match cursor {
                Cursor::At(n) | Cursor::Seeking(n) if offset < n => {
                    // Applied before (redelivery after a crash or rebalance).
                    cursors.insert(key, cursor);
                    continue;
                }
                Cursor::At(n) if offset > n => {
                    tracing::info!(processor = name, topic = %key.0, partition = key.1, offset, checkpoint = n, "Kafka is ahead of the store checkpoint; seeking back");
                    self.seek(&key.0, key.1, n);
                    cursors.insert(key.clone(), Cursor::Seeking(n));
                    rewound.push(key);
                    continue;
                }
                _ => offset + 1,
            };
            cursors.insert(key.clone(), Cursor::At(next));
            checkpoints.insert(key, next);
            match self.retry(shutdown, "decode", || self.decode(&msg)).await? {
                Decoded::Event(event) => {
                    accepted.push(event);
                    accepted_msgs.push(msg);
                }
                Decoded::Skip => {}
                Decoded::Poison(kind, reason) => dead.push((msg, kind, reason)),
            }
        }
        let fold = if accepted.is_empty() {
            Fold::default()
        } else {
            self.retry(shutdown, "fold batch", || {
                self.handler.fold(store, &accepted)
            })
            .await?
        };
        let mut rejected = vec![false; accepted.len()];
        for (index, reason) in fold.rejected {
            if let (Some(flag), Some(msg)) = (rejected.get_mut(index), accepted_msgs.get(index)) {
                *flag = true;
                dead.push((msg.clone(), DeadLetterReason::Rejected, reason));
            }
        }
        for (msg, kind, reason) in &dead {
            match (&self.dlq, &self.bounds) {
                (Some(dlq), _) => {
                    self.retry(shutdown, "write dead letter", || {
                        dlq.send(msg, *kind, reason)
                    })
                    .await?;
                    metrics::dead_lettered(name, *kind);
                }
                (None, Some(bounds)) => {
                    bounds.progress.dead_letters.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(processor = name, topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), %reason, "build skips a record the live processor dead-lettered");
                }
                (None, None) => {}
            }
        }
        let checkpoints: Vec<Checkpoint> = checkpoints
            .into_iter()
            .map(|((topic, partition), next_offset)| Checkpoint {
                topic,
                partition,
                next_offset,
            })
            .collect();
        if checkpoints.is_empty() {
            return Ok(());
        }
        let write_batch = WriteBatch {
            projection: name.to_owned(),
            writes: fold.writes,
            checkpoints,
        };
        if self.bounds.is_none() {
            kill::pass(kill::BEFORE_APPLY);
        }
        self.retry(shutdown, "apply batch", || store.apply(write_batch.clone()))
            .await?;
        let checkpoints = write_batch.checkpoints;
        if let Some(bounds) = &self.bounds {
            for cp in &checkpoints {
                let key = (cp.topic.clone(), cp.partition);
                if let Some(end) = bounds.ends.get(&key) {
                    bounds
                        .progress
                        .set(&cp.topic, cp.partition, cp.next_offset.min(*end), *end);
                }
            }
            return Ok(());
        }
        kill::pass(kill::AFTER_APPLY);
        for cp in &checkpoints {
            if let Err(e) = self
                .consumer
                .store_offset(&cp.topic, cp.partition, cp.next_offset - 1)
            {
                // Lost on a rebalance: harmless, the store checkpoint is the truth.
                tracing::debug!(processor = name, topic = %cp.topic, partition = cp.partition, error = %e, "could not store offset");
            }
        }
        let applied: Vec<&Incoming> = accepted
            .iter()
            .zip(&rejected)
            .filter(|(_, r)| !**r)
            .map(|(e, _)| e)
            .collect();
        metrics::applied(name, started.elapsed(), &applied);
        Ok(())
    }

    /// Positions newly assigned partitions at their store checkpoints (the beginning when
    /// there is none): Kafka's committed offset may be ahead of the store (a store restored
    /// from an older copy, or rebuilt), and an idle partition would otherwise never notice.
    async fn position_assigned(
        &self,
        store: &dyn Store,
        cursors: &mut HashMap<(String, i32), Cursor>,
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessorError> {
        let assigned = match self.consumer.context().assigned.lock() {
            Ok(mut assigned) => std::mem::take(&mut *assigned),
            Err(_) => return Ok(()),
        };
        for (topic, partition) in assigned {
            let next = self
                .retry(shutdown, "read checkpoint", || {
                    store.checkpoint(self.handler.name(), &topic, partition)
                })
                .await?;
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            let mut attempts = 0;
            // Right after an assignment the partition may not accept a seek yet.
            while let Err(e) = self
                .consumer
                .seek(&topic, partition, offset, Duration::from_secs(5))
            {
                attempts += 1;
                if attempts >= 50 || shutdown.is_cancelled() {
                    tracing::warn!(processor = self.handler.name(), %topic, partition, error = %e, "could not seek to the checkpoint; relying on per-record checks");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Some(next) = next.filter(|n| *n > 0) {
                // What the store has applied is done: let the committed offset (and the lag
                // gauge) catch up even if nothing new arrives on this partition.
                if let Err(e) = self.consumer.store_offset(&topic, partition, next - 1) {
                    tracing::debug!(processor = self.handler.name(), %topic, partition, error = %e, "could not store the checkpoint's offset");
                }
            }
            cursors.insert((topic, partition), Cursor::Seeking(next.unwrap_or(0)));
        }
        Ok(())
    }

    fn seek(&self, topic: &str, partition: i32, offset: i64) {
        if let Err(e) = self.consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            tracing::warn!(processor = self.handler.name(), topic, partition, offset, error = %e, "seek failed");
        }
    }

    /// Decodes a record; `Err` only for a transient registry failure.
    async fn decode(&self, msg: &OwnedMessage) -> Result<Decoded, Failure> {
        let Some(payload) = msg.payload() else {
            return Ok(Decoded::Poison(
                DeadLetterReason::Undecodable,
                "record has no value".into(),
            ));
        };
        if payload.len() < 5 || payload[0] != 0 {
            return Ok(Decoded::Poison(
                DeadLetterReason::Undecodable,
                "value is not in the Confluent wire format (magic byte 0 + 4-byte schema id)"
                    .into(),
            ));
        }
        let decoded = match self.decoder.decode(Some(payload)).await {
            Ok(d) => d,
            Err(e) => {
                // The decoder caches failures; a registry that was down must be asked again.
                self.decoder.remove_errors_from_cache();
                let reason = e.to_string();
                return if e.error.contains("Could not transform bytes") {
                    Ok(Decoded::Poison(DeadLetterReason::Undecodable, reason))
                } else if e.retriable {
                    Err(Failure::Registry(reason))
                } else {
                    Ok(Decoded::Poison(DeadLetterReason::UnknownSchema, reason))
                };
            }
        };
        let full_name = decoded.name.map(|n| n.fullname(None)).unwrap_or_default();
        let Some(spec) = fleuve_schemas::find_by_full_name(&full_name) else {
            return Ok(Decoded::Poison(
                DeadLetterReason::UnknownEventType,
                format!("record type `{full_name}` is not an event type of this platform"),
            ));
        };
        if !self.handler.wants(spec.name) {
            return Ok(Decoded::Skip);
        }
        Ok(Decoded::Event(Incoming {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            event_type: spec.name,
            value: decoded.value,
        }))
    }

    /// Retries a transient failure with exponential backoff until it succeeds, a permanent
    /// error occurs, or shutdown is asked (then the batch is abandoned, nothing stored).
    async fn retry<T, E, F, Fut>(
        &self,
        shutdown: &CancellationToken,
        what: &'static str,
        mut op: F,
    ) -> Result<T, ProcessorError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: Into<Failure>,
    {
        use fleuve_service::retry::{retry, Backoff, Stopped};
        let name = self.handler.name();
        let outcome = retry(
            Backoff::new(Duration::from_millis(50), self.config.max_backoff),
            shutdown,
            || {
                let attempt = op();
                async move { attempt.await.map_err(Into::into) }
            },
            |failure: &Failure| match failure {
                Failure::Store(e) => e.is_transient(),
                Failure::Kafka(e) => fleuve_kafka::is_retriable(e),
                Failure::Registry(_) | Failure::Metadata(_) => true,
            },
            |failure, pause| {
                metrics::retried(name, what);
                tracing::warn!(processor = name, operation = what, error = %failure, backoff_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "transient failure; retrying");
            },
        )
        .await;
        outcome.map_err(|stopped| match stopped {
            Stopped::Shutdown => ProcessorError::Interrupted { processor: name },
            Stopped::Permanent(Failure::Store(source)) => ProcessorError::Store {
                processor: name,
                source,
            },
            Stopped::Permanent(Failure::Kafka(source)) => ProcessorError::Kafka {
                processor: name,
                source,
            },
            Stopped::Permanent(other) => {
                unreachable!("only store and Kafka failures are permanent, not `{other}`")
            }
        })
    }
}

/// What the consumer loop does next.
enum Next {
    Batch(Vec<OwnedMessage>),
    Timer,
    /// A bounded build received nothing for a while.
    Idle,
    Stop,
}

/// How long a bounded build waits for a record before it checks whether its partitions'
/// positions have reached their ends.
const BOUNDED_IDLE_CHECK: Duration = Duration::from_millis(300);

impl Bounds {
    fn done(&self) -> bool {
        self.progress.remaining() == 0 && self.progress.partitions().len() >= self.ends.len()
    }
}

enum Decoded {
    Event(Incoming),
    /// An event type this handler does not consume.
    Skip,
    Poison(DeadLetterReason, String),
}

/// A failure inside a batch, before it is classified as transient or permanent.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("schema registry unavailable: {0}")]
    Registry(String),
    #[error("{0}")]
    Metadata(String),
}

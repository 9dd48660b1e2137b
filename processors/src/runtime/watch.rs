//! The processor's watchdog: it measures, every [`check_every`], how far the projection is
//! behind the end of its topics and whether it still applies records ([`StallWatch`]), and
//!
//! * exports the idle time as `fleuve_processor_stalled_seconds{processor}`;
//! * fails the processor's readiness while the projection is stalled, whatever its lag;
//! * in a consumer group, asks the batch loop to leave and rejoin the group when the
//!   projection has stalled (no partition held, or partitions held and no progress), at
//!   most once per stall bound;
//! * with owned partitions, tells the batch loop about partitions added to its topics.
//!
//! It runs beside the batch loop, so a batch stuck on a store that blocks still turns
//! readiness off.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fleuve_kafka::KafkaConfig;
use fleuve_projections::versions::Versions;
use fleuve_projections::Store;
use fleuve_service::stall::{Stall, StallWatch};
use fleuve_service::ReadyFlag;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use super::{metrics, Membership, RebalanceContext};

/// How often the watchdog looks, for a stall bound: a quarter of it, between 100 ms and 5 s.
pub(super) fn check_every(stall_after: Duration) -> Duration {
    (stall_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Longest the watchdog waits for the brokers or the store in one look; a look that times
/// out counts as no progress.
const LOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a group member leaves and rejoins its group (label `reason` of
/// `fleuve_processor_group_rejoins_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejoinReason {
    /// The member holds no partition while the projection lags and applies nothing.
    NoPartitions,
    /// The member holds partitions, the projection lags and nothing is applied.
    NoProgress,
}

impl RejoinReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoPartitions => "no_partitions",
            Self::NoProgress => "no_progress",
        }
    }
}

/// What the watchdog asks of the batch loop, and the readiness verdicts it combines.
#[derive(Debug)]
pub(super) struct Signals {
    rejoin: Mutex<Option<RejoinReason>>,
    new_partitions: Mutex<bool>,
    /// Woken when there is something to take.
    pub wake: tokio::sync::Notify,
    flag: Arc<ReadyFlag>,
    running: Mutex<Result<(), String>>,
    stall: Mutex<Result<(), String>>,
}

impl Signals {
    pub fn new() -> Self {
        let not_started = "the processor has not started".to_owned();
        Self {
            rejoin: Mutex::new(None),
            new_partitions: Mutex::new(false),
            wake: tokio::sync::Notify::new(),
            flag: Arc::new(ReadyFlag::not_ready(not_started.clone())),
            running: Mutex::new(Err(not_started)),
            stall: Mutex::new(Ok(())),
        }
    }

    /// The readiness flag: ready while the processor runs and its projection is not stalled.
    pub fn flag(&self) -> Arc<ReadyFlag> {
        Arc::clone(&self.flag)
    }

    pub fn set_running(&self, result: Result<(), String>) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = result;
        self.publish();
    }

    fn set_stall(&self, result: Result<(), String>) {
        *self.stall.lock().unwrap_or_else(PoisonError::into_inner) = result;
        self.publish();
    }

    fn publish(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let stall = self
            .stall
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Once stopped, why it stopped is all that matters.
        self.flag.set(running.and(stall));
    }

    /// The rejoin asked for, if any (taken: asked once).
    pub fn take_rejoin(&self) -> Option<RejoinReason> {
        self.rejoin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether partitions were added to the topics since the last call.
    pub fn take_new_partitions(&self) -> bool {
        std::mem::take(
            &mut *self
                .new_partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// What the watchdog watches.
pub(super) struct Watched {
    pub name: &'static str,
    pub topics: &'static [&'static str],
    pub kafka: KafkaConfig,
    pub membership: Membership,
    pub stall_after: Duration,
    pub store: Arc<dyn Store>,
    pub versions: Option<Arc<Versions>>,
    pub consumer: Arc<StreamConsumer<RebalanceContext>>,
    pub signals: Arc<Signals>,
}

impl Watched {
    fn store(&self) -> Arc<dyn Store> {
        match &self.versions {
            Some(v) => v.writer(self.name).1,
            None => Arc::clone(&self.store),
        }
    }

    /// Partitions this consumer holds now.
    fn assigned(&self) -> HashSet<(String, i32)> {
        self.consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs until `stop` is cancelled.
pub(super) async fn run(watched: Watched, stop: CancellationToken) {
    let name = watched.name;
    let client: Arc<BaseConsumer> = match watched.kafka.client_config().create() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(processor = name, error = %e, "cannot create the Kafka client of the stall watchdog; stalls go undetected");
            return;
        }
    };
    let every = check_every(watched.stall_after);
    let mut watch = StallWatch::new(watched.stall_after);
    let mut last_rejoin: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
        let seen = look(&watched, &client).await;
        let now = Instant::now();
        let stall = match &seen {
            Ok(look) => Some(watch.observe(now, look.lag, look.applied)),
            Err(reason) => {
                tracing::debug!(processor = name, %reason, "stall watchdog could not look");
                watch.unobserved(now)
            }
        };
        let idle = stall.map_or(Duration::ZERO, |s| s.idle);
        metrics::stalled(name, idle);
        match stall {
            Some(s) if s.stalled => {
                watched.signals.set_stall(Err(describe(name, &s, &watch)));
                if matches!(watched.membership, Membership::Group { .. })
                    && last_rejoin.is_none_or(|at| now.duration_since(at) >= watched.stall_after)
                {
                    let reason = if watched.assigned().is_empty() {
                        RejoinReason::NoPartitions
                    } else {
                        RejoinReason::NoProgress
                    };
                    tracing::warn!(
                        processor = name,
                        reason = reason.as_str(),
                        lag = s.lag,
                        idle_s = s.idle.as_secs(),
                        "projection stalled in its consumer group; leaving and rejoining the group"
                    );
                    metrics::rejoined(name, reason.as_str());
                    *watched
                        .signals
                        .rejoin
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(reason);
                    watched.signals.wake.notify_one();
                    last_rejoin = Some(now);
                }
            }
            _ => watched.signals.set_stall(Ok(())),
        }
        if let (Ok(look), Membership::Owned) = (&seen, &watched.membership) {
            let assigned = watched.assigned();
            if look.partitions.iter().any(|p| !assigned.contains(p)) {
                *watched
                    .signals
                    .new_partitions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = true;
                watched.signals.wake.notify_one();
            }
        }
    }
    metrics::stalled(name, Duration::ZERO);
}

fn describe(name: &str, s: &Stall, watch: &StallWatch) -> String {
    format!(
        "projection `{name}` is stalled: {} records behind and nothing applied for {} s \
         (bound {} s)",
        s.lag,
        s.idle.as_secs(),
        watch.bound().as_secs()
    )
}

/// One look at the log and the store.
struct Look {
    /// Records behind the end of the topics, summed over partitions.
    lag: i64,
    /// Sum of the checkpoints: grows with every applied record.
    applied: i64,
    /// Every partition of the topics.
    partitions: Vec<(String, i32)>,
}

async fn look(watched: &Watched, client: &Arc<BaseConsumer>) -> Result<Look, String> {
    let topics = watched.topics;
    let client = Arc::clone(client);
    let ends = tokio::task::spawn_blocking(move || {
        let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for topic in topics {
            let e = fleuve_kafka::topics::end_offsets(&client, topic, LOOK_TIMEOUT)
                .map_err(|e| e.to_string())?;
            ends.extend(e.into_iter().map(|(p, end)| ((topic.to_string(), p), end)));
        }
        Ok::<_, String>(ends)
    })
    .await
    .map_err(|e| format!("end offsets task: {e}"))??;
    let store = watched.store();
    let checkpoints = tokio::time::timeout(LOOK_TIMEOUT, store.checkpoints(watched.name))
        .await
        .map_err(|_| format!("the store did not answer within {LOOK_TIMEOUT:?}"))?
        .map_err(|e| format!("reading checkpoints: {e}"))?;
    let mut lag = 0;
    let mut applied = 0;
    for ((topic, partition), end) in &ends {
        let at = checkpoints
            .iter()
            .find(|c| c.topic == *topic && c.partition == *partition)
            .map_or(0, |c| c.next_offset);
        lag += (end - at).max(0);
        applied += at;
    }
    Ok(Look {
        lag,
        applied,
        partitions: ends.into_keys().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_looks_often_enough_for_its_bound() {
        assert_eq!(
            check_every(Duration::from_secs(30)),
            Duration::from_millis(7500).min(Duration::from_secs(5))
        );
        assert_eq!(
            check_every(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            check_every(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn readiness_combines_running_and_stall() {
        use fleuve_service::Readiness;
        let s = Signals::new();
        assert!(s.flag().ready().is_err());
        s.set_running(Ok(()));
        assert_eq!(s.flag().ready(), Ok(()));
        s.set_stall(Err("stalled".into()));
        assert_eq!(s.flag().ready(), Err("stalled".into()));
        s.set_stall(Ok(()));
        assert_eq!(s.flag().ready(), Ok(()));
        s.set_running(Err("stopped".into()));
        assert_eq!(s.flag().ready(), Err("stopped".into()));
    }
}

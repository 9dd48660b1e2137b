//! `/readyz`: ready when the store answered its last ping and, with a [`LagConfig`], when
//! every projection the API reads is at most `max_events` records behind its topics and
//! none is *stalled*: lagging with nothing applied for `stall_after`, whatever its lag (a
//! processor that holds no partition, or a store that blocks). The answer names the
//! projections at fault.
//!
//! The lag of a projection is the sum, over the partitions of its topics, of the topic's end
//! offset minus the projection's checkpoint (0 when it has none); it has applied something
//! when the sum of its checkpoints grew ([`fleuve_service::stall::StallWatch`]). Both are
//! measured every [`LagConfig::every`] (5 s by default, at least four times per stall bound)
//! and exported as `fleuve_query_projection_lag_events{projection}` and
//! `fleuve_query_projection_stalled_seconds{projection}`. When the brokers cannot be
//! reached the last lag verdict stands (and a warning is logged): no new event can be
//! accepted then either, so the projections cannot fall further behind. When the store does
//! not answer, the store verdict already fails `/readyz`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use fleuve_projections::Store;
use fleuve_service::stall::StallWatch;
use fleuve_service::ReadyFlag;
use prometheus::{IntGaugeVec, Opts};
use rdkafka::consumer::BaseConsumer;

use crate::config::LagConfig;
use fleuve_projections::MODELS;

const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

static STALLED: LazyLock<Option<IntGaugeVec>> = LazyLock::new(|| {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "fleuve_query_projection_stalled_seconds",
            "Seconds a projection read by the query API has lagged without applying a record (0 when caught up or applying).",
        ),
        &["projection"],
    )
    .ok()?;
    if let Err(e) = prometheus::register(Box::new(gauge.clone())) {
        tracing::error!(error = %e, "could not register the projection stall gauge");
    }
    Some(gauge)
});

static LAG: LazyLock<Option<IntGaugeVec>> = LazyLock::new(|| {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "fleuve_query_projection_lag_events",
            "Records a projection read by the query API is behind the end of its topics.",
        ),
        &["projection"],
    )
    .ok()?;
    if let Err(e) = prometheus::register(Box::new(gauge.clone())) {
        tracing::error!(error = %e, "could not register the projection lag gauge");
    }
    Some(gauge)
});

/// The two verdicts `/readyz` combines.
#[derive(Debug)]
struct Verdicts {
    store: Result<(), String>,
    lag: Result<(), String>,
}

/// Starts the probes into a readiness flag; they stop once the flag (held by the router) is
/// dropped.
pub(crate) fn start(store: Arc<dyn Store>, lag: Option<LagConfig>) -> Arc<ReadyFlag> {
    let flag = Arc::new(ReadyFlag::not_ready(
        "the store has not answered a ping yet",
    ));
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        flag.set(Err("no Tokio runtime to ping the store from".into()));
        return flag;
    };
    let verdicts = Arc::new(Mutex::new(Verdicts {
        store: Err("the store has not answered a ping yet".into()),
        lag: Ok(()),
    }));
    if let Some(lag) = lag {
        lock(&verdicts).lag = Err("the projections' lag has not been measured yet".into());
        rt.spawn(lag_loop(
            store.clone(),
            lag,
            verdicts.clone(),
            Arc::downgrade(&flag),
        ));
    }
    rt.spawn(ping_loop(store, verdicts, Arc::downgrade(&flag)));
    flag
}

fn lock(v: &Mutex<Verdicts>) -> std::sync::MutexGuard<'_, Verdicts> {
    v.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Publishes the combined verdict; false once the router is gone.
fn publish(verdicts: &Mutex<Verdicts>, flag: &Weak<ReadyFlag>) -> bool {
    let Some(flag) = flag.upgrade() else {
        return false;
    };
    let v = lock(verdicts);
    let result = match (&v.store, &v.lag) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(a), Ok(())) | (Ok(()), Err(a)) => Err(a.clone()),
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
    };
    if let Err(reason) = &result {
        tracing::warn!(%reason, "query API not ready");
    }
    flag.set(result);
    true
}

async fn ping_loop(store: Arc<dyn Store>, verdicts: Arc<Mutex<Verdicts>>, flag: Weak<ReadyFlag>) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match tokio::time::timeout(PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("store ping failed: {e}")),
            Err(_) => Err(format!(
                "store did not answer a ping within {} s",
                PING_TIMEOUT.as_secs()
            )),
        };
        lock(&verdicts).store = result;
        if !publish(&verdicts, &flag) {
            return;
        }
    }
}

async fn lag_loop(
    store: Arc<dyn Store>,
    config: LagConfig,
    verdicts: Arc<Mutex<Verdicts>>,
    flag: Weak<ReadyFlag>,
) {
    let client: Option<Arc<BaseConsumer>> = match config.kafka.client_config().create() {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            lock(&verdicts).lag = Err(format!("cannot create a Kafka client to measure lag: {e}"));
            None
        }
    };
    let mut tick = tokio::time::interval(config.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watches: BTreeMap<&'static str, StallWatch> = BTreeMap::new();
    loop {
        tick.tick().await;
        if let Some(client) = &client {
            match measure(&*store, client.clone()).await {
                Ok(lags) => {
                    let now = Instant::now();
                    let mut faults: Vec<String> = Vec::new();
                    for (p, m) in &lags {
                        if config.max_events > 0 && m.lag > config.max_events {
                            faults.push(format!(
                                "{p} is {} records behind (bound: {} records)",
                                m.lag, config.max_events
                            ));
                        }
                        if let Some(g) = LAG.as_ref() {
                            g.with_label_values(&[p]).set(m.lag);
                        }
                        let Some(bound) = config.stall_after else {
                            continue;
                        };
                        let stall = watches
                            .entry(p)
                            .or_insert_with(|| StallWatch::new(bound))
                            .observe(now, m.lag, m.applied);
                        if let Some(g) = STALLED.as_ref() {
                            g.with_label_values(&[p])
                                .set(i64::try_from(stall.idle.as_secs()).unwrap_or(i64::MAX));
                        }
                        if stall.stalled {
                            faults.push(format!(
                                "{p} is stalled: {} records behind and nothing applied for {} s \
                                 (bound: {} s)",
                                stall.lag,
                                stall.idle.as_secs(),
                                bound.as_secs()
                            ));
                        }
                    }
                    lock(&verdicts).lag = if faults.is_empty() {
                        Ok(())
                    } else {
                        Err(faults.join(", "))
                    };
                }
                Err(reason) => {
                    tracing::warn!(%reason, "could not measure the projections' lag; keeping the last verdict");
                }
            }
        }
        if !publish(&verdicts, &flag) {
            return;
        }
    }
}

/// One projection's measure.
struct Measure {
    /// Records behind the end of its topics.
    lag: i64,
    /// Sum of its checkpoints: grows with every record applied.
    applied: i64,
}

/// Records behind the end of its topics, and how far it has applied, by projection.
async fn measure(
    store: &dyn Store,
    client: Arc<BaseConsumer>,
) -> Result<BTreeMap<&'static str, Measure>, String> {
    let ends = tokio::task::spawn_blocking(move || {
        let mut ends = BTreeMap::new();
        for model in MODELS {
            for topic in model.topics {
                if !ends.contains_key(*topic) {
                    let e = fleuve_kafka::topics::end_offsets(&client, topic, KAFKA_TIMEOUT)
                        .map_err(|e| e.to_string())?;
                    ends.insert(*topic, e);
                }
            }
        }
        Ok::<_, String>(ends)
    })
    .await
    .map_err(|e| format!("lag probe task failed: {e}"))??;
    let mut out = BTreeMap::new();
    for model in MODELS {
        let (projection, topics) = (model.name, model.topics);
        let cps = store
            .checkpoints(projection)
            .await
            .map_err(|e| format!("reading the {projection} checkpoints: {e}"))?;
        let mut lag = 0;
        let mut applied = 0;
        for topic in topics {
            for (partition, end) in ends.get(topic).into_iter().flatten() {
                let at = cps
                    .iter()
                    .find(|c| c.topic == *topic && c.partition == *partition)
                    .map_or(0, |c| c.next_offset);
                lag += (end - at).max(0);
                applied += at;
            }
        }
        out.insert(projection, Measure { lag, applied });
    }
    Ok(out)
}

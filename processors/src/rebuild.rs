//! Rebuilds and snapshots of a projection, run beside the live processor.
//!
//! A **rebuild** of projection `P` builds version N+1 ([`fleuve_projections::versions`]) from
//! the start of the log while the live version keeps serving:
//!
//! 1. a bounded build ([`Processor::bounded`]) reads every partition of `P`'s topics up to
//!    their end offsets, in rounds (each round up to the ends seen when it starts) until a
//!    round is short, so the build ends close to the live processor;
//! 2. the *writer* moves to N+1: the live processor, at its next batch, positions itself at
//!    N+1's checkpoints and carries on there (the old version stops moving);
//! 3. once N+1's checkpoints have reached the old version's on every partition, the
//!    *reader* moves: the query API serves N+1, which holds everything the old version
//!    held. No read fails and none goes backwards.
//!
//! The old version is kept, `retired`, until dropped (`fleuve rebuild drop`).
//!
//! A **snapshot** (`--as-of TIME`) builds version N+1 up to the first record at or after
//! `TIME` in each partition (the whole partition when every record is older), runs the
//! handler's timer as of `TIME`, and stays frozen: the query API reads it with
//! `?snapshot=<name>`. Those offsets come from [`fleuve_kafka::time::offsets_at`], which
//! checks the broker's offsets-for-times answer against the records' timestamps (Tansu
//! 0.6.0 answers offset 0 past a partition's last record, which would make a snapshot as of
//! now empty).
//!
//! A build interrupted by a shutdown resumes when the process starts again
//! ([`Rebuilds::resume`]): it reads on from its checkpoints.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleuve_projections::versions::{
    self, known_projection, Namespaced, Routing, VersionError, VersionInfo, VersionKind,
    VersionState, Versions,
};
use fleuve_projections::{Checkpoint, Store};
use fleuve_service::retry::{retry, Backoff, Stopped};
use rdkafka::consumer::BaseConsumer;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::runtime::{BuildProgress, Handler, Processor, ProcessorConfig};

/// A build round shorter than this ends the catching up: what is left, the live processor
/// applies in about that time once it writes the new version.
const SHORT_ROUND: Duration = Duration::from_secs(2);
/// Most build rounds before the switch, whatever their length.
const MAX_ROUNDS: usize = 10;
/// How long the switch waits after moving the writer before it reads the old version's
/// checkpoints: processors in other processes see the routing at their next refresh.
pub const DEFAULT_WRITER_GRACE: Duration = Duration::from_secs(2);
/// Timeout of the broker metadata and offset lookups.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of starting or managing a build.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Kafka: {0}")]
    Kafka(String),
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub projection: String,
    /// A snapshot as of this instant (ms since the Unix epoch); a rebuild when `None`.
    pub as_of_ms: Option<i64>,
    /// The snapshot's name (default: derived from the instant, `20261101t000000z`).
    pub name: Option<String>,
}

/// How far a running build is, for `GET` on a version.
#[derive(Debug, Clone, Serialize)]
pub struct BuildStatus {
    /// `building`, `switching` or `done`.
    pub phase: &'static str,
    pub records: u64,
    /// Records the live processor dead-lettered, skipped again by the build.
    pub dead_letters: u64,
    /// Records still to read in this round.
    pub remaining: i64,
    pub round: usize,
    pub partitions: Vec<PartitionStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    /// Next offset to apply.
    pub next_offset: i64,
    /// Where the build (this round) stops.
    pub end_offset: i64,
}

struct Job {
    progress: Mutex<Arc<BuildProgress>>,
    phase: Mutex<&'static str>,
    round: std::sync::atomic::AtomicUsize,
}

impl Job {
    fn status(&self) -> BuildStatus {
        let progress = Arc::clone(&self.progress.lock().unwrap_or_else(|e| e.into_inner()));
        BuildStatus {
            phase: *self.phase.lock().unwrap_or_else(|e| e.into_inner()),
            records: progress.records.load(Ordering::Relaxed),
            dead_letters: progress.dead_letters.load(Ordering::Relaxed),
            remaining: progress.remaining(),
            round: self.round.load(Ordering::Relaxed),
            partitions: progress
                .partitions()
                .into_iter()
                .map(
                    |(topic, partition, next_offset, end_offset)| PartitionStatus {
                        topic,
                        partition,
                        next_offset,
                        end_offset,
                    },
                )
                .collect(),
        }
    }
}

/// Runs builds in this process. Share it behind an `Arc`.
pub struct Rebuilds {
    config: ProcessorConfig,
    versions: Arc<Versions>,
    jobs: Mutex<HashMap<(String, u32), Arc<Job>>>,
    /// Serializes starts, so two requests cannot take the same version number.
    starting: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    writer_grace: Duration,
    handler_for: fn(&str) -> Option<Arc<dyn Handler>>,
}

impl std::fmt::Debug for Rebuilds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuilds").finish_non_exhaustive()
    }
}

impl Rebuilds {
    /// Builds run with `config` (the processors' Kafka and registry settings), in the store
    /// of `versions`, until `shutdown`.
    pub fn new(
        config: ProcessorConfig,
        versions: Arc<Versions>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            versions,
            jobs: Mutex::default(),
            starting: tokio::sync::Mutex::new(()),
            shutdown,
            writer_grace: DEFAULT_WRITER_GRACE,
            handler_for: crate::handlers::by_name,
        })
    }

    /// The version registry builds write to.
    pub fn versions(&self) -> &Arc<Versions> {
        &self.versions
    }

    /// The status of a build running in this process.
    pub fn status(&self, projection: &str, version: u32) -> Option<BuildStatus> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(projection.to_owned(), version))
            .map(|j| j.status())
    }

    /// Starts a build in the background and returns its description (state `building`).
    pub async fn start(
        self: &Arc<Self>,
        request: BuildRequest,
    ) -> Result<VersionInfo, RebuildError> {
        let projection = known_projection(&request.projection)?;
        let name = match (&request.as_of_ms, &request.name) {
            (None, Some(_)) => {
                return Err(RebuildError::Invalid(
                    "a name is given to snapshots only: add --as-of TIME".into(),
                ))
            }
            (None, None) => None,
            (Some(as_of), Some(name)) => {
                versions::check_snapshot_name(name)?;
                check_as_of(*as_of)?;
                Some(name.clone())
            }
            (Some(as_of), None) => {
                check_as_of(*as_of)?;
                Some(default_snapshot_name(*as_of))
            }
        };
        let _starting = self.starting.lock().await;
        let existing = self.versions.list(projection).await?;
        if let Some(busy) = existing.iter().find(|v| {
            v.kind == VersionKind::Rebuild
                && matches!(v.state, VersionState::Building | VersionState::Switching)
        }) {
            if request.as_of_ms.is_none() {
                return Err(RebuildError::Conflict(format!(
                    "a rebuild of `{projection}` is already running (version {}); wait for it \
                     or follow it with `fleuve rebuild status {projection} {}`",
                    busy.version, busy.version
                )));
            }
        }
        if let Some(name) = &name {
            if existing.iter().any(|v| {
                v.name.as_deref() == Some(name.as_str()) && v.state != VersionState::Dropped
            }) {
                return Err(RebuildError::Conflict(format!(
                    "`{projection}` already has a snapshot named `{name}`; choose another \
                     --name or drop it first"
                )));
            }
        }
        if let Some(first) = existing
            .first()
            .filter(|v| v.version == 1 && v.kind == VersionKind::Initial)
        {
            // Record version 1 as it stands, so the registry lists it from now on.
            self.versions.put(first).await.map_err(VersionError::from)?;
        }
        let version = existing.iter().map(|v| v.version).max().unwrap_or(1) + 1;
        let info = VersionInfo {
            projection: projection.to_owned(),
            version,
            kind: if request.as_of_ms.is_some() {
                VersionKind::Snapshot
            } else {
                VersionKind::Rebuild
            },
            state: VersionState::Building,
            name,
            as_of_ms: request.as_of_ms,
            created_at_ms: fleuve_schemas::clock::now_ms(),
            built_at_ms: None,
            live_at_ms: None,
            records: 0,
            error: None,
        };
        self.versions.put(&info).await.map_err(VersionError::from)?;
        tracing::info!(projection, version, kind = ?info.kind, as_of_ms = ?info.as_of_ms, "build started");
        self.spawn(info.clone());
        Ok(info)
    }

    /// Starts again the builds of `projections` an earlier process left unfinished (state
    /// `building` or `switching`). Call it where those projections' processors run.
    pub async fn resume(
        self: &Arc<Self>,
        projections: &[&'static str],
    ) -> Result<(), RebuildError> {
        for projection in projections {
            for info in self.versions.list(projection).await? {
                if matches!(info.state, VersionState::Building | VersionState::Switching) {
                    tracing::info!(projection, version = info.version, state = ?info.state, "resuming an unfinished build");
                    self.spawn(info);
                }
            }
        }
        Ok(())
    }

    fn spawn(self: &Arc<Self>, info: VersionInfo) {
        let job = Arc::new(Job {
            progress: Mutex::new(Arc::new(BuildProgress::default())),
            phase: Mutex::new("building"),
            round: std::sync::atomic::AtomicUsize::new(0),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((info.projection.clone(), info.version), Arc::clone(&job));
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let projection = info.projection.clone();
            let version = info.version;
            match this.run(info.clone(), &job).await {
                Ok(()) => {}
                Err(Stop::Shutdown) => {
                    tracing::info!(
                        projection,
                        version,
                        "build interrupted by shutdown; it resumes at the next start"
                    );
                }
                Err(Stop::Failed(reason)) => {
                    tracing::error!(projection, version, error = %reason, "build failed");
                    let mut failed = info;
                    failed.state = VersionState::Failed;
                    failed.error = Some(reason);
                    failed.records = job.status().records;
                    if let Err(e) = this.versions.put(&failed).await {
                        tracing::error!(projection, version, error = %e, "could not record the failed build");
                    }
                }
            }
            *job.phase.lock().unwrap_or_else(|e| e.into_inner()) = "done";
        });
    }

    async fn run(&self, mut info: VersionInfo, job: &Job) -> Result<(), Stop> {
        let projection = known_projection(&info.projection).map_err(Stop::failed)?;
        let view = Namespaced::view(Arc::clone(self.versions.base()), projection, info.version);
        if info.state == VersionState::Building {
            match info.as_of_ms {
                Some(as_of) => {
                    let ends = self.ends(projection, Some(as_of)).await?;
                    self.build_round(projection, &view, ends, Some(as_of), job)
                        .await?;
                    info.state = VersionState::Ready;
                }
                None => {
                    let mut round = 0;
                    loop {
                        round += 1;
                        job.round.store(round, Ordering::Relaxed);
                        let started = Instant::now();
                        let ends = self.ends(projection, None).await?;
                        self.build_round(projection, &view, ends, None, job).await?;
                        if started.elapsed() < SHORT_ROUND || round >= MAX_ROUNDS {
                            break;
                        }
                    }
                    info.state = VersionState::Switching;
                }
            }
            info.built_at_ms = Some(fleuve_schemas::clock::now_ms());
            info.records = job.status().records;
            self.put(&info).await?;
            tracing::info!(
                projection,
                version = info.version,
                records = info.records,
                "build reached the end of its range"
            );
        }
        if info.state == VersionState::Switching {
            *job.phase.lock().unwrap_or_else(|e| e.into_inner()) = "switching";
            self.switch(projection, &view, &mut info).await?;
        }
        Ok(())
    }

    /// Moves the writer, waits for the new version to hold everything the old one held,
    /// moves the reader.
    async fn switch(
        &self,
        projection: &'static str,
        view: &Arc<dyn Store>,
        info: &mut VersionInfo,
    ) -> Result<(), Stop> {
        let routing = self
            .versions
            .routing()
            .get(projection)
            .copied()
            .unwrap_or_default();
        let old = routing.reader;
        if routing.writer != info.version {
            self.retry(|| {
                self.versions.set_routing(
                    projection,
                    Routing {
                        reader: old,
                        writer: info.version,
                    },
                )
            })
            .await?;
        }
        self.sleep(self.writer_grace).await?;
        let (_, old_store) = self.versions.reader(projection);
        let target = self.retry(|| old_store.checkpoints(projection)).await?;
        tracing::info!(
            projection,
            version = info.version,
            old,
            "waiting for the new version to catch up with the old one"
        );
        loop {
            let mut behind = 0i64;
            for cp in &target {
                let at = self
                    .retry(|| view.checkpoint(projection, &cp.topic, cp.partition))
                    .await?
                    .unwrap_or(0);
                behind += (cp.next_offset - at).max(0);
            }
            if behind == 0 {
                break;
            }
            self.sleep(Duration::from_millis(20)).await?;
        }
        self.retry(|| {
            self.versions.set_routing(
                projection,
                Routing {
                    reader: info.version,
                    writer: info.version,
                },
            )
        })
        .await?;
        info.state = VersionState::Live;
        info.live_at_ms = Some(fleuve_schemas::clock::now_ms());
        self.put(info).await?;
        if old != info.version {
            if let Ok(mut previous) = self.versions.get(projection, old).await {
                previous.state = VersionState::Retired;
                self.put(&previous).await?;
            }
        }
        tracing::info!(
            projection,
            version = info.version,
            retired = old,
            "the query API now reads the new version"
        );
        Ok(())
    }

    /// One bounded build up to `ends`.
    async fn build_round(
        &self,
        projection: &'static str,
        view: &Arc<dyn Store>,
        ends: Vec<Checkpoint>,
        timer_at_ms: Option<i64>,
        job: &Job,
    ) -> Result<(), Stop> {
        let handler = (self.handler_for)(projection)
            .ok_or_else(|| Stop::Failed(format!("no processor builds `{projection}`")))?;
        let progress = Arc::new(BuildProgress::default());
        {
            let mut current = job.progress.lock().unwrap_or_else(|e| e.into_inner());
            let previous = Arc::clone(&current);
            progress
                .records
                .store(previous.records.load(Ordering::Relaxed), Ordering::Relaxed);
            progress.dead_letters.store(
                previous.dead_letters.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            *current = Arc::clone(&progress);
        }
        let processor = Processor::bounded(
            self.config.clone(),
            handler,
            Arc::clone(view),
            ends,
            timer_at_ms.unwrap_or_else(fleuve_schemas::clock::now_ms),
            progress,
        )
        .map_err(Stop::failed)?;
        processor
            .run(self.shutdown.child_token())
            .await
            .map_err(Stop::failed)?;
        if self.shutdown.is_cancelled() {
            return Err(Stop::Shutdown);
        }
        Ok(())
    }

    /// End offsets of the projection's topics: the high watermarks, or, as of an instant, the
    /// offset of the first record at or after it (the high watermark when every record is
    /// older), checked against the records ([`fleuve_kafka::time::offsets_at`]).
    async fn ends(
        &self,
        projection: &'static str,
        as_of: Option<i64>,
    ) -> Result<Vec<Checkpoint>, Stop> {
        let handler = (self.handler_for)(projection)
            .ok_or_else(|| Stop::Failed(format!("no processor builds `{projection}`")))?;
        let topics: Vec<&'static str> = handler.topics().to_vec();
        let kafka = self.config.kafka.clone();
        let client: BaseConsumer = kafka
            .consumer_config(&format!("fleuve-{projection}-build"))
            .create()
            .map_err(|e| Stop::Failed(format!("Kafka client: {e}")))?;
        let lookup = tokio::task::spawn_blocking(move || -> Result<Vec<Checkpoint>, String> {
            let mut out = Vec::new();
            for topic in topics {
                let ends = match as_of {
                    Some(ms) => {
                        fleuve_kafka::time::offsets_at(&kafka, topic, ms, KAFKA_TIMEOUT)
                            .map_err(|e| e.to_string())?
                            .offsets
                    }
                    None => fleuve_kafka::topics::end_offsets(&client, topic, KAFKA_TIMEOUT)
                        .map_err(|e| e.to_string())?,
                };
                out.extend(ends.into_iter().map(|(partition, next_offset)| Checkpoint {
                    topic: topic.to_owned(),
                    partition,
                    next_offset,
                }));
            }
            Ok(out)
        });
        lookup
            .await
            .map_err(|e| Stop::Failed(format!("offset lookup task: {e}")))?
            .map_err(|e| Stop::Failed(format!("reading the end offsets: {e}")))
    }

    async fn put(&self, info: &VersionInfo) -> Result<(), Stop> {
        self.retry(|| self.versions.put(info)).await
    }

    /// Retries a store call while it fails transiently.
    async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T, Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, fleuve_projections::StoreError>>,
    {
        retry(
            Backoff::default(),
            &self.shutdown,
            &mut op,
            fleuve_projections::StoreError::is_transient,
            |e, _| tracing::warn!(error = %e, "build: transient store failure; retrying"),
        )
        .await
        .map_err(|stopped| match stopped {
            Stopped::Shutdown => Stop::Shutdown,
            Stopped::Permanent(e) => Stop::Failed(e.to_string()),
        })
    }

    async fn sleep(&self, d: Duration) -> Result<(), Stop> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(Stop::Shutdown),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }
}

/// Why a build stopped before its end.
enum Stop {
    Shutdown,
    Failed(String),
}

impl Stop {
    fn failed(e: impl std::fmt::Display) -> Self {
        Stop::Failed(e.to_string())
    }
}

fn check_as_of(as_of_ms: i64) -> Result<(), RebuildError> {
    if as_of_ms > fleuve_schemas::clock::now_ms() {
        return Err(RebuildError::Invalid(format!(
            "--as-of must be a past instant, got {} (ms since the epoch), which is in the future",
            as_of_ms
        )));
    }
    if as_of_ms < 0 {
        return Err(RebuildError::Invalid(
            "--as-of must be after 1970-01-01T00:00:00Z".into(),
        ));
    }
    Ok(())
}

/// `20261101t000000z` for 2026-11-01T00:00:00Z.
pub fn default_snapshot_name(as_of_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(as_of_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}t{:02}{:02}{:02}z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_snapshot_names_follow_the_instant() {
        assert_eq!(default_snapshot_name(0), "19700101t000000z");
        // 2026-11-01T12:34:56Z
        assert_eq!(default_snapshot_name(1_793_536_496_000), "20261101t123456z");
        assert!(versions::check_snapshot_name(&default_snapshot_name(1_793_536_496_000)).is_ok());
    }
}

//! Fleuve's Confluent-compatible schema registry, whose whole state lives in Kafka.
//!
//! Producers and consumers of Fleuve's topics (and any Confluent client, such as
//! `schema_registry_converter` or Python's `confluent-kafka`) register and fetch Avro schemas
//! here. The registry keeps nothing on disk: its state is the fold of a compacted,
//! single-partition topic (`_schemas` by default). Every replica reads that topic from the
//! beginning and folds the same records in the same order, so replicas are stateless, answer
//! identically, and a restart reloads everything from the topic.
//!
//! # Running it
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fleuve_registry::{Registry, RegistryConfig};
//! let kafka = fleuve_kafka::KafkaConfig::new("127.0.0.1:9092").with_client_id("fleuve-registry");
//! let registry = Registry::start(RegistryConfig::new(kafka)).await?; // caught up with the log
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8081").await?;
//! axum::serve(listener, registry.router()).await?;
//! registry.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! [`Registry::start`] creates the topic if it is missing (one partition, compacted; an
//! existing topic with several partitions is refused), starts the background reader and
//! returns once the state has caught up with the end of the log. The reader is a consumer
//! manually assigned to partition 0 from the beginning: it never joins a consumer group and
//! never commits (librdkafka still wants a `group.id`, `fleuve-registry-reader`, to accept
//! the assignment). `/readyz` answers 200 while the reader is alive and caught up;
//! `/metrics` exposes `fleuve_registry_requests_total{route,status}`,
//! `fleuve_registry_request_duration_seconds{route}`, `fleuve_registry_in_flight_requests` (route templates such
//! as `/subjects/{subject}/versions`, never raw paths) and `fleuve_registry_schemas`
//! (distinct ids; process-wide, so with several replicas in one process it shows the last
//! one to fold).
//!
//! In tests, librdkafka's mock cluster does not answer CreateTopics: create the topic on the
//! mock first (`cluster.create_topic("_schemas", 1, 1)`), then start the registry.
//!
//! # REST routes (Confluent semantics and bodies)
//!
//! Responses are `application/vnd.schemaregistry.v1+json`; request bodies may be sent as
//! `application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`,
//! `application/json`, `application/octet-stream` or without a content type. Subjects in
//! URLs are percent-decoded (`a%2Fb` is subject `a/b`). `{version}` is a number in
//! `[1, 2^31-1]`, `latest` or `-1`.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | `{}` |
//! | `GET /subjects[?deleted=true]` | sorted subject names (with soft-deleted subjects) |
//! | `POST /subjects/{subject}/versions` | register `{"schema","schemaType"?,"references"?}` → `{"id"}`, or 409 |
//! | `GET /subjects/{subject}/versions[?deleted=true]` | `[1,2,…]` |
//! | `GET /subjects/{subject}/versions/{version}[?deleted=true]` | `{"subject","version","id","schema"}` |
//! | `GET /subjects/{subject}/versions/{version}/schema` | the schema JSON itself |
//! | `POST /subjects/{subject}[?deleted=true]` | is this schema registered under the subject? → as above |
//! | `DELETE /subjects/{subject}[?permanent=true]` | the versions deleted, `[1,2]` |
//! | `DELETE /subjects/{subject}/versions/{version}[?permanent=true]` | the version deleted, `3` |
//! | `GET /schemas/ids/{id}` | `{"schema"}` (`?deleted=`, `?subject=` are accepted, ignored) |
//! | `GET /schemas/ids/{id}/versions[?deleted=true]` | `[{"subject","version"}]` |
//! | `GET /schemas/types` | `["AVRO"]` |
//! | `GET /config` | `{"compatibilityLevel":"BACKWARD"}` (the global level; BACKWARD unless set) |
//! | `PUT /config` | `{"compatibility":"FULL"}` → the same body |
//! | `GET /config/{subject}[?defaultToGlobal=true]` | `{"compatibilityLevel"}`, else 40408 |
//! | `PUT /config/{subject}` | `{"compatibility":"FULL"}` → the same body |
//! | `DELETE /config/{subject}` | the removed `{"compatibilityLevel"}` (then the global level applies) |
//! | `POST /compatibility/subjects/{subject}/versions/{version}[?verbose=true]` | `{"is_compatible"}` (+ `"messages"`) |
//! | `POST /compatibility/subjects/{subject}/versions[?verbose=true]` | the same, against what a registration would be checked against |
//!
//! Only Avro is supported (another `schemaType` is refused with 42201), and schema
//! references are refused (42201). Errors are Confluent's `{"error_code","message"}`:
//!
//! | code | HTTP | when |
//! | --- | --- | --- |
//! | 40401 | 404 | subject not found (or only soft-deleted, without `?deleted=true`) |
//! | 40402 | 404 | version not found |
//! | 40403 | 404 | schema not found: unknown id, an id no version uses any more, a lookup miss |
//! | 40404 | 404 | soft delete of a subject already soft-deleted |
//! | 40405 | 404 | permanent delete of a subject that was not soft-deleted first |
//! | 40406 | 404 | soft delete of a version already soft-deleted |
//! | 40407 | 404 | permanent delete of a version that was not soft-deleted first |
//! | 40408 | 404 | `GET`/`DELETE /config/{subject}` on a subject without its own level |
//! | 409 | 409 | `Schema being registered is incompatible with an earlier schema for subject "s", details: [...]` |
//! | 415 | 415 | unsupported request content type |
//! | 42201 | 422 | invalid schema (with the Avro parser's reason) |
//! | 42202 | 422 | invalid version |
//! | 42203 | 422 | invalid compatibility level |
//! | 422 | 422 | malformed body |
//! | 50001 | 500 | Kafka/store error |
//! | 50002 | 500 | a written record not read back in time |
//!
//! Not implemented: `DELETE /config` (global), `/mode`, contexts, references, schema
//! normalisation options, metadata and rule sets.
//!
//! # Compatibility
//!
//! [`compatibility::check`] is the whole rule, usable without a registry (the `fleuve
//! schemas check` command runs it on `.avsc` files). The level of a subject is its own
//! (`PUT /config/{subject}`), else the global one, else `BACKWARD`. A registration is checked
//! against the subject's live (not soft-deleted) versions: the latest one, or all of them for
//! a `*_TRANSITIVE` level. `POST /compatibility/.../versions/{version}` checks against that
//! one version, with the directions of the level (`FULL_TRANSITIVE` counts as `FULL`).
//!
//! # Log format
//!
//! Each record has a JSON key and a JSON value; `keytype` selects the kind:
//!
//! ```text
//! SCHEMA          key:   {"keytype":"SCHEMA","subject":"s","magic":1,"write_id":"<uuid v4>"}
//!                 value: {"subject":"s","schema":"<schema text as sent>","schemaType":"AVRO","compatibility":"BACKWARD"}
//! CONFIG          key:   {"keytype":"CONFIG","subject":"s"|null,"magic":0}
//!                 value: {"compatibilityLevel":"FULL"}, or null (tombstone: remove the subject's level)
//! DELETE_SUBJECT  key:   {"keytype":"DELETE_SUBJECT","subject":"s","magic":0,"write_id":"<uuid v4>"}
//!                 value: {"subject":"s","permanent":false}
//! DELETE_VERSION  key:   {"keytype":"DELETE_VERSION","subject":"s","magic":0,"write_id":"<uuid v4>"}
//!                 value: {"subject":"s","version":3,"permanent":false}
//! ```
//!
//! A record that cannot be read (bad JSON, unknown kind, wrong magic, invalid schema, a
//! tombstone of a kind other than `CONFIG`) is logged with its topic/partition/offset and
//! skipped; it never stops the registry.
//!
//! # The fold and the id rule
//!
//! Schemas are kept as the client first sent them (an id always answers the text of the
//! record that introduced it) and compared by a canonical form computed once per record: the JSON that
//! `apache_avro` writes back for the parsed schema, which ignores whitespace, key order and
//! type-name shorthand but keeps `doc`, `default`, aliases, logical types and custom
//! properties (Avro's Parsing Canonical Form drops those, so a new default would be taken for
//! the old schema). Folding a registration of schema `S` under subject `X` at offset `o`:
//!
//! * if a live (not soft-deleted) version of `X` has the canonical form of `S`, nothing happens;
//! * else, if the record carries a level (`compatibility`) and `S` is incompatible under it
//!   with the live versions of `X`, the record is ignored (refused);
//! * otherwise `X` gets version `last version of X + 1` (soft-deleted versions count, so a
//!   re-registered soft-deleted schema comes back as a new version), with id = the id of the
//!   first record anywhere in the log whose schema is equal to `S` (one schema under two
//!   subjects shares an id, like Confluent; a schema whose versions were all deleted gets its
//!   old id back), else `o + 1` (ids start at 1, like Confluent's).
//!
//! A registration request answers at once when the subject already has the schema, and
//! answers 409 without writing when its own state finds it incompatible under the subject's
//! effective level. Otherwise it produces the record with that level (idempotent producer),
//! waits (at most 10 s, else 50002) until the local reader has folded the record's offset,
//! and answers what the fold did with *that* record: an id, or 409 when a racing
//! registration got in first and made it incompatible. Two replicas racing on the same
//! registration both write; the second record is a no-op in the fold, so both answer the
//! same id. Deletes and config writes work the same way (check, write, wait, answer the
//! fold's outcome), so a delete that lost a race answers the same error as if it had been
//! checked later.
//!
//! The level is carried by the registration record, rather than read from the folded
//! config, so that a registration's outcome never depends on `CONFIG` records (which
//! compaction collapses, see below). Registration records written before compatibility
//! existed carry no level and are not checked, so existing logs fold as before. The price: a
//! replica that has not yet read a config change checks under the level it knows (the same
//! staleness as everything else a replica answers before catching up).
//!
//! Deletes: a soft delete marks live versions deleted (hidden from `GET` unless
//! `?deleted=true`, still resolving their ids); a permanent delete removes soft-deleted
//! versions, and a subject left without versions disappears (its next registration is
//! version 1 again, like Confluent). `GET /schemas/ids/{id}` answers while some version of
//! some subject, soft-deleted or not, uses the id; after that, 40403. Subject levels are not
//! removed by subject deletes.
//!
//! # Compaction
//!
//! Ids and versions come from the position of the *first* record that introduced a schema,
//! and whether a registration is a new version, a no-op or refused depends on the deletes
//! folded before it. Compaction keeps only the last record of each key, so if two records
//! that matter to the fold shared a key, compaction could remove the first one and a replica
//! rebuilding from the compacted log would derive different ids or versions (clients
//! holding bytes framed with the old id would then fail to decode). Hence:
//!
//! * `SCHEMA`, `DELETE_SUBJECT` and `DELETE_VERSION` records have a key unique to the write
//!   (`write_id`), so compaction never removes one. A registration record in particular is
//!   never compacted away, whether or not its id is still in use: a permanent delete is a
//!   record of its own, never a tombstone of the registration. Duplicates (two replicas
//!   racing, a client retrying after a 50002) stay in the log as harmless no-ops or
//!   refusals. The price is that compaction does not shrink these kinds; they are few.
//!   (Stable keys per subject or version were considered and rejected: compacting a soft
//!   delete that preceded a re-registration would turn that re-registration into a no-op on
//!   replay.)
//! * `CONFIG` records use stable keys (one per subject, plus `null` for the global level):
//!   only the current level matters, no other record's outcome depends on it (registrations
//!   carry their own level), and a removed subject level is a tombstone, so compaction keeps
//!   config small.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use fleuve_kafka::topics::{ensure_topics, schemas_topic, SCHEMAS};
use fleuve_kafka::KafkaConfig;
use fleuve_service::serve::{ServeError, Server};
use fleuve_service::{ops_routes, Readiness};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod compatibility;
mod http;
mod metrics;
mod reader;
mod record;
mod state;

/// How long a registration waits for the reader to fold its own record (then 50002).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Registry::start`] waits for the topic's metadata and for the state to catch up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the registry keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    pub kafka: KafkaConfig,
    /// The single-partition, compacted topic holding the registry's log (default `_schemas`).
    pub topic: String,
    /// Address of the REST API when [`start`] serves it (default `127.0.0.1:8081`).
    pub addr: SocketAddr,
}

impl RegistryConfig {
    /// The registry on these brokers, with its log in `_schemas`.
    pub fn new(kafka: KafkaConfig) -> Self {
        Self {
            kafka,
            topic: SCHEMAS.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
        }
    }
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The topic could not be created or checked.
    #[error("could not create the schema registry's topic `{topic}`: {source}; check that the brokers are reachable and that this client may create topics")]
    Topic {
        topic: String,
        #[source]
        source: fleuve_kafka::KafkaError,
    },
    /// A Kafka client could not be created from the configuration.
    #[error(
        "could not create the schema registry's Kafka {client}: {source}; check the Kafka settings"
    )]
    Client {
        client: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The topic's metadata or end offset could not be read.
    #[error("could not read the end of topic `{topic}` within {}s: {reason}; check that the brokers are reachable", STARTUP_TIMEOUT.as_secs())]
    Unreachable { topic: String, reason: String },
    /// The topic exists with more than one partition: offsets would not order the log.
    #[error("topic `{topic}` has {partitions} partitions; the schema registry needs a topic with exactly one (recreate it, or point the registry at another topic)")]
    NotSinglePartition { topic: String, partitions: usize },
    /// The state did not catch up with the log in time.
    #[error("the schema registry did not catch up with topic `{topic}` within {}s (read up to offset {folded}, end was {end}); check the brokers and retry", STARTUP_TIMEOUT.as_secs())]
    CatchUpTimeout {
        topic: String,
        folded: i64,
        end: i64,
    },
    /// The reader stopped before catching up.
    #[error("the reader of topic `{topic}` stopped before catching up; see the logs")]
    ReaderStopped { topic: String },
}

/// State shared by the HTTP handlers.
pub(crate) struct Inner {
    pub(crate) topic: String,
    pub(crate) producer: FutureProducer,
    pub(crate) delivery_timeout: Duration,
    /// How long a registration waits for the reader to fold its own record.
    pub(crate) register_timeout: Duration,
    pub(crate) state: Arc<RwLock<state::State>>,
    /// Offset of the last record folded by the reader.
    pub(crate) folded: watch::Receiver<i64>,
    pub(crate) caught_up: watch::Receiver<bool>,
    pub(crate) alive: Arc<AtomicBool>,
    pub(crate) cancel: CancellationToken,
    pub(crate) reader: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("topic", &self.topic)
            .field("folded", &*self.folded.borrow())
            .field("caught_up", &*self.caught_up.borrow())
            .field("alive", &self.alive.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

/// A running registry replica: its background reader and the state it folds.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// Ready = the reader is alive and has caught up with the log.
#[derive(Debug)]
struct ReaderReadiness(Arc<Inner>);

impl Readiness for ReaderReadiness {
    fn ready(&self) -> Result<(), String> {
        let inner = &self.0;
        if !inner.alive.load(Ordering::SeqCst) {
            return Err(format!("the reader of topic `{}` has stopped", inner.topic));
        }
        if !*inner.caught_up.borrow() {
            return Err(format!("catching up with topic `{}`", inner.topic));
        }
        Ok(())
    }
}

impl Registry {
    /// Ensures the topic exists, starts the background log reader, and returns once the local
    /// state has caught up with the end of the log.
    pub async fn start(config: RegistryConfig) -> Result<Registry, RegistryError> {
        let topic = config.topic.clone();
        let mut spec = schemas_topic();
        spec.name.clone_from(&topic);
        ensure_topics(&config.kafka, &[spec])
            .await
            .map_err(|source| RegistryError::Topic {
                topic: topic.clone(),
                source,
            })?;

        let producer: FutureProducer =
            config
                .kafka
                .producer_config()
                .create()
                .map_err(|source| RegistryError::Client {
                    client: "producer",
                    source,
                })?;
        let consumer: reader::ReaderConsumer = reader_config(&config.kafka)
            .create_with_context(reader::ReaderContext)
            .map_err(|source| RegistryError::Client {
                client: "consumer",
                source,
            })?;

        let (consumer, bounds) = tokio::task::spawn_blocking({
            let topic = topic.clone();
            move || {
                let bounds = log_bounds(&consumer, &topic);
                (consumer, bounds)
            }
        })
        .await
        .map_err(|e| RegistryError::Unreachable {
            topic: topic.clone(),
            reason: e.to_string(),
        })?;
        let (low, high) = bounds?;

        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .and_then(|()| consumer.assign(&assignment))
            .map_err(|source| RegistryError::Client {
                client: "consumer assignment",
                source,
            })?;

        let state = Arc::new(RwLock::new(state::State::default()));
        let (folded_tx, folded) = watch::channel(reader::NOTHING_FOLDED);
        let (caught_up_tx, caught_up) = watch::channel(false);
        let alive = Arc::new(AtomicBool::new(true));
        let cancel = CancellationToken::new();
        let end_at_start = (high > low).then_some(high);
        tracing::info!(topic = %topic, low, high, "schema registry reading its log");
        let handle = tokio::spawn(
            reader::Reader {
                consumer,
                topic: topic.clone(),
                state: state.clone(),
                folded: folded_tx,
                caught_up: caught_up_tx,
                alive: alive.clone(),
                end_at_start,
                cancel: cancel.clone(),
            }
            .run(),
        );
        let registry = Registry {
            inner: Arc::new(Inner {
                topic: topic.clone(),
                producer,
                delivery_timeout: config.kafka.delivery_timeout,
                register_timeout: REGISTER_TIMEOUT,
                state,
                folded,
                caught_up,
                alive,
                cancel,
                reader: tokio::sync::Mutex::new(Some(handle)),
            }),
        };

        let mut caught_up = registry.inner.caught_up.clone();
        let outcome = tokio::time::timeout(STARTUP_TIMEOUT, caught_up.wait_for(|c| *c)).await;
        let error = match outcome {
            Ok(Ok(_)) => return Ok(registry),
            Ok(Err(_)) => RegistryError::ReaderStopped { topic },
            Err(_) => RegistryError::CatchUpTimeout {
                topic,
                folded: *registry.inner.folded.borrow(),
                end: high,
            },
        };
        registry.shutdown().await;
        Err(error)
    }

    /// The Confluent REST API plus `/metrics`, `/healthz` and `/readyz`.
    pub fn router(&self) -> axum::Router {
        http::routes(self.inner.clone())
            .merge(ops_routes(Arc::new(ReaderReadiness(self.inner.clone()))))
    }

    /// Stops the background reader (the HTTP API then answers from the last state, and
    /// `/readyz` reports not ready). Calling it again does nothing.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let handle = self.inner.reader.lock().await.take();
        if let Some(handle) = handle {
            if let Err(e) = handle.await {
                tracing::error!(topic = %self.inner.topic, error = %e, "schemas reader task failed");
            }
        }
    }
}

/// Why [`start`] could not serve the registry.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("starting the schema registry on the brokers at {brokers}")]
    Registry {
        brokers: String,
        #[source]
        source: RegistryError,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// [`Registry::start`], then the REST API on `config.addr` until `shutdown`; the log reader
/// stops with the server.
pub async fn start(
    config: RegistryConfig,
    shutdown: &CancellationToken,
) -> Result<Server, StartError> {
    let brokers = config.kafka.bootstrap_servers.clone();
    let addr = config.addr;
    let registry = Registry::start(config)
        .await
        .map_err(|source| StartError::Registry { brokers, source })?;
    let served = Server::bind("registry", addr, registry.router(), shutdown).await;
    let mut server = match served {
        Ok(server) => server,
        Err(e) => {
            registry.shutdown().await;
            return Err(e.into());
        }
    };
    let stop = server.stop_token();
    server.spawn("schemas reader", async move {
        stop.cancelled().await;
        registry.shutdown().await;
        Ok::<(), std::convert::Infallible>(())
    });
    Ok(server)
}

/// A consumer assigned to partition 0 (it never joins a group nor commits: librdkafka only
/// needs a `group.id` to accept a manual assignment), told when it reaches the end of the
/// partition.
fn reader_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut cfg = kafka.client_config();
    cfg.set("group.id", "fleuve-registry-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    cfg
}

/// Checks that the topic has one partition and returns its `(low, high)` watermarks,
/// retrying while the brokers settle (a just-created topic may have no leader yet).
fn log_bounds(consumer: &reader::ReaderConsumer, topic: &str) -> Result<(i64, i64), RegistryError> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        match probe(consumer, topic) {
            Ok(bounds) => return Ok(bounds),
            Err(Probe::Fatal(error)) => return Err(error),
            Err(Probe::Retry(reason)) if Instant::now() >= deadline => {
                return Err(RegistryError::Unreachable {
                    topic: topic.to_owned(),
                    reason,
                })
            }
            Err(Probe::Retry(reason)) => {
                tracing::debug!(topic, %reason, "schemas topic not readable yet; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

enum Probe {
    Retry(String),
    Fatal(RegistryError),
}

fn probe(consumer: &reader::ReaderConsumer, topic: &str) -> Result<(i64, i64), Probe> {
    let step = Duration::from_secs(5);
    let metadata = consumer
        .fetch_metadata(Some(topic), step)
        .map_err(|e| Probe::Retry(e.to_string()))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(Probe::Retry(
            "the topic is not in the metadata yet".to_owned(),
        ));
    };
    if let Some(error) = t.error() {
        return Err(Probe::Retry(format!("metadata error {error:?}")));
    }
    match t.partitions().len() {
        0 => return Err(Probe::Retry("the topic has no partition yet".to_owned())),
        1 => {}
        partitions => {
            return Err(Probe::Fatal(RegistryError::NotSinglePartition {
                topic: topic.to_owned(),
                partitions,
            }))
        }
    }
    consumer
        .fetch_watermarks(topic, 0, step)
        .map_err(|e| Probe::Retry(e.to_string()))
}

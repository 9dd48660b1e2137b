//! The outbox relay: produces the [`OUTBOX`] rows the `exports` processor wrote to each
//! partner's topic, then deletes them.
//!
//! Per partner, in sequence order: up to `batch` rows are read, encoded (the value in
//! Confluent framing, its schema registered under `export.<partner>.catalog-value`; a
//! tombstone has no value), handed to an idempotent producer (`acks=all`) keyed by content
//! id, and awaited; the rows acknowledged, a prefix, are deleted in one store apply. A
//! failure leaves the rest to the next pass, which produces them again in order. A crash
//! between the acknowledgement and the delete produces the same records again: identical
//! values, in the same order, harmless on a compacted topic whose readers keep the last
//! value per key.
//!
//! Metrics (label `partner` from the configured partners): `fleuve_exports_records_produced_total`
//! (`kind` = `record` or `tombstone`, counted when acknowledged) and
//! `fleuve_exports_relay_failures_total`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use fleuve_kafka::topics::{ensure_topics, TopicSpec};
use fleuve_kafka::{KafkaConfig, KafkaError as FleuveKafkaError};
use fleuve_projections::{Store, StoreError, Write, WriteBatch, Writes};
use fleuve_service::retry::Backoff;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use tokio_util::sync::CancellationToken;

use super::{Partner, Partners, NAME, OUTBOX};

#[expect(
    clippy::expect_used,
    reason = "registering a well-formed metric once cannot fail"
)]
static PRODUCED: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "fleuve_exports_records_produced_total",
        "Export records (and tombstones) acknowledged by the broker, by partner.",
        &["partner", "kind"]
    )
    .expect("metric registers")
});

#[expect(
    clippy::expect_used,
    reason = "registering a well-formed metric once cannot fail"
)]
static FAILURES: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "fleuve_exports_relay_failures_total",
        "Relay passes for a partner that failed (broker, registry or store) and will be retried.",
        &["partner"]
    )
    .expect("metric registers")
});

/// Settings of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub kafka: KafkaConfig,
    /// Base URL of the schema registry.
    pub registry_url: String,
    /// Partitions of an export topic when the relay creates it.
    pub partitions: i32,
    /// Most outbox rows produced per partner and pass.
    pub batch: usize,
    /// Pause between passes that found nothing to produce.
    pub idle: Duration,
    /// Longest pause between two attempts after a failure.
    pub max_backoff: Duration,
}

impl RelayConfig {
    pub fn new(kafka: KafkaConfig, registry_url: impl Into<String>) -> Self {
        Self {
            kafka,
            registry_url: registry_url.into(),
            partitions: 3,
            batch: 500,
            idle: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Why the relay could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("exports relay: creating the producer: {0}")]
    Producer(#[source] KafkaError),
    #[error("exports relay: schema registry settings: {0}")]
    Registry(String),
    #[error("exports relay: creating the export topics: {0}")]
    Topics(#[source] FleuveKafkaError),
    /// A store error retrying cannot fix.
    #[error("exports relay stopped on a store error: {0}")]
    Store(#[source] StoreError),
}

/// A failure of one pass.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("producing to {topic}: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("encoding for {topic} (schema registry): {reason}")]
    Encode { topic: String, reason: String },
}

/// The outbox relay (see the module docs).
pub struct Relay {
    config: RelayConfig,
    partners: Arc<Partners>,
    store: Arc<dyn Store>,
    producer: FutureProducer,
    encoder: AvroEncoder,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .field("partners", &self.partners)
            .finish_non_exhaustive()
    }
}

impl Relay {
    pub fn new(
        config: RelayConfig,
        partners: Arc<Partners>,
        store: Arc<dyn Store>,
    ) -> Result<Self, RelayError> {
        let producer = config
            .kafka
            .producer_config()
            .create()
            .map_err(RelayError::Producer)?;
        let settings = SrSettings::new_builder(config.registry_url.clone())
            .set_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| RelayError::Registry(e.to_string()))?;
        Ok(Self {
            config,
            partners,
            store,
            producer,
            encoder: AvroEncoder::new(settings),
        })
    }

    /// The partners' export topics, compacted.
    pub fn topic_specs(&self) -> Vec<TopicSpec> {
        self.partners
            .iter()
            .map(|p| TopicSpec::new(p.topic(), self.config.partitions).compacted())
            .collect()
    }

    /// Creates the export topics that do not exist yet.
    pub async fn ensure_topics(&self) -> Result<(), RelayError> {
        if self.partners.is_empty() {
            return Ok(());
        }
        ensure_topics(&self.config.kafka, &self.topic_specs())
            .await
            .map_err(RelayError::Topics)
    }

    /// Relays until `shutdown` is cancelled, or a permanent store error.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RelayError> {
        tracing::info!(
            processor = NAME,
            partners = self.partners.partners.len(),
            "exports relay started"
        );
        let mut backoff = Backoff::new(Duration::from_millis(50), self.config.max_backoff);
        loop {
            let pause = match self.pass().await {
                Ok(0) => {
                    backoff.reset();
                    self.config.idle
                }
                Ok(_) => {
                    backoff.reset();
                    Duration::ZERO
                }
                Err(Failure::Store(e)) if !e.is_transient() => return Err(RelayError::Store(e)),
                Err(e) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(processor = NAME, error = %e, backoff_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "exports relay: transient failure; retrying");
                    pause
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.flush().await;
        tracing::info!(processor = NAME, "exports relay stopped");
        Ok(())
    }

    async fn flush(&self) {
        use rdkafka::producer::Producer as _;
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    }

    /// One pass over every partner; the number of rows produced and deleted.
    pub async fn pass_once(&self) -> Result<usize, String> {
        self.pass().await.map_err(|e| e.to_string())
    }

    async fn pass(&self) -> Result<usize, Failure> {
        let mut total = 0;
        for partner in self.partners.iter() {
            total += self.relay_partner(partner).await.inspect_err(|_| {
                FAILURES.with_label_values(&[partner.id.as_str()]).inc();
            })?;
        }
        Ok(total)
    }

    /// Produces up to `batch` outbox rows of one partner and deletes those acknowledged.
    async fn relay_partner(&self, partner: &Partner) -> Result<usize, Failure> {
        let rows = OUTBOX
            .scan(&*self.store, &partner.id, None, self.config.batch)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let topic = partner.topic();
        let mut records = Vec::with_capacity(rows.len());
        for (ck, record) in rows {
            let payload = match &record.item {
                Some(item) => Some(self.encode(&topic, item.to_avro()).await?),
                None => None,
            };
            records.push((ck, record, payload));
        }
        let mut deliveries = Vec::with_capacity(records.len());
        // Records enqueued before a failure may still be acknowledged: they are deleted.
        let mut failure = None;
        for (ck, record, payload) in &records {
            let mut r = FutureRecord::<str, [u8]>::to(&topic).key(record.content_id.as_str());
            if let Some(p) = payload {
                r = r.payload(p.as_slice());
            }
            match self.send(r).await {
                Ok(d) => deliveries.push((ck, record.seq, payload.is_none(), d)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Only the acknowledged prefix is deleted: past a failed record, the next pass
        // produces everything again, in order.
        let mut acked = Vec::with_capacity(deliveries.len());
        let mut prefix = true;
        for (ck, seq, tombstone, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) if prefix => {
                    let kind = if tombstone { "tombstone" } else { "record" };
                    PRODUCED
                        .with_label_values(&[partner.id.as_str(), kind])
                        .inc();
                    acked.push(Write::Delete {
                        table: OUTBOX.name(),
                        pk: partner.id.clone(),
                        ck: ck.clone(),
                        // Above the row's own write timestamp (its sequence number).
                        ts: seq + 1,
                    });
                }
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    prefix = false;
                    failure.get_or_insert(e);
                }
                Err(_) => {
                    prefix = false;
                    failure.get_or_insert(KafkaError::Canceled);
                }
            }
        }
        let done = acked.len();
        if done > 0 {
            self.store
                .apply(WriteBatch {
                    projection: NAME.to_owned(),
                    writes: Writes {
                        derived: Vec::new(),
                        state: acked,
                    },
                    checkpoints: Vec::new(),
                })
                .await?;
            tracing::debug!(processor = NAME, partner = %partner.id, %topic, records = done, "outbox records relayed");
        }
        match failure {
            Some(source) => Err(Failure::Kafka { topic, source }),
            None => Ok(done),
        }
    }

    /// Enqueues a record, waiting while the producer's queue is full.
    async fn send(
        &self,
        mut record: FutureRecord<'_, str, [u8]>,
    ) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        loop {
            match self.producer.send_result(record) {
                Ok(d) => return Ok(d),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// The Confluent-framed Avro of an export record for `topic`, its schema registered
    /// under `<topic>-value` (cached by the encoder after the first call).
    async fn encode(
        &self,
        topic: &str,
        value: apache_avro::types::Value,
    ) -> Result<Vec<u8>, Failure> {
        let schema = fleuve_schemas::export::catalog_item();
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
            topic.to_owned(),
            false,
            SuppliedSchema::new(
                Some(schema.full_name.clone()),
                SchemaType::Avro,
                schema.schema_json.to_owned(),
            ),
        );
        self.encoder
            .encode_value(value, &strategy)
            .await
            .map_err(|e| {
                self.encoder.remove_errors_from_cache();
                Failure::Encode {
                    topic: topic.to_owned(),
                    reason: e.to_string(),
                }
            })
    }
}

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use fleuve_kafka::{KafkaConfig, Position};
use fleuve_schemas::{Envelope, Event, EventError, EventSpec};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

/// Longest wait for room in the producer's queue before a publish fails as saturated.
const QUEUE_TIMEOUT: Duration = Duration::from_millis(100);

/// Where and as whom a [`Publisher`] publishes.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub kafka: KafkaConfig,
    /// Base URL of the schema registry (ours, Confluent's, Karapace…).
    pub registry_url: String,
    /// Name of the publishing service, written in every event's `producer` field by callers
    /// that let the publisher fill the envelope.
    pub producer_name: String,
}

impl PublisherConfig {
    pub fn new(
        kafka: KafkaConfig,
        registry_url: impl Into<String>,
        producer_name: impl Into<String>,
    ) -> Self {
        Self {
            kafka,
            registry_url: registry_url.into(),
            producer_name: producer_name.into(),
        }
    }
}

/// An event durably written to Kafka (`acks=all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub event_id: String,
    pub position: Position,
}

/// Why a publish failed. Nothing was written when any of these is returned... except for
/// [`PublishError::Broker`] after a delivery timeout, where the broker may still have the
/// record: retry with the same `event_id`, which projections recognise as the same event.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event breaks its schema or its type's rules.
    #[error(transparent)]
    Invalid(#[from] EventError),
    /// An event of a batch breaks its schema or its type's rules; nothing was produced.
    #[error("event {index} of the batch: {source}")]
    InvalidItem {
        index: usize,
        #[source]
        source: EventError,
    },
    /// The schema registry could not register or return the event's schema.
    #[error("schema registry at {url} failed: {reason}")]
    Registry { url: String, reason: String },
    /// The Avro encoding failed (a value that does not match the registered schema).
    #[error("could not encode the event as Avro: {0}")]
    Encode(String),
    /// The broker did not acknowledge the record within the delivery timeout, or refused it.
    #[error("Kafka did not acknowledge the event: {source}")]
    Broker {
        #[source]
        source: KafkaError,
        /// Whether the same publish may succeed later (broker down, timeout, queue full).
        retriable: bool,
    },
    /// The producer could not be created.
    #[error("could not create the Kafka producer: {0}")]
    Config(#[source] KafkaError),
}

impl PublishError {
    /// Whether retrying the same publish later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            PublishError::Registry { .. } => true,
            PublishError::Broker { retriable, .. } => *retriable,
            _ => false,
        }
    }
}

/// Publishes events: idempotent producer, `acks=all`, Confluent-framed Avro.
///
/// Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    producer: FutureProducer,
    encoder: AvroEncoder,
    config: PublisherConfig,
    /// Per event type, once the registry has given its schema id: the encoding without the
    /// converter's per-call overhead (see [`Publisher::encode`]).
    framed: RwLock<HashMap<&'static str, Framed>>,
}

/// How an event type is encoded once its schema id is known: the Confluent header (magic
/// byte 0 + big-endian schema id) and a writer whose schema is resolved once.
struct Framed {
    header: [u8; 5],
    writer: GenericDatumWriter<'static>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field(
                "bootstrap_servers",
                &self.inner.config.kafka.bootstrap_servers,
            )
            .field("registry_url", &self.inner.config.registry_url)
            .finish()
    }
}

impl Publisher {
    /// Creates the producer. No connection is made until the first publish.
    pub fn new(config: PublisherConfig) -> Result<Self, PublishError> {
        let producer: FutureProducer = config
            .kafka
            .producer_config()
            .create()
            .map_err(PublishError::Config)?;
        let settings = SrSettings::new_builder(config.registry_url.clone())
            .set_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| PublishError::Registry {
                url: config.registry_url.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                producer,
                encoder: AvroEncoder::new(settings),
                config,
                framed: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The configuration this publisher was made with.
    pub fn config(&self) -> &PublisherConfig {
        &self.inner.config
    }

    /// Publishes a typed event after checking its schema and rules.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Published, PublishError> {
        let spec = E::spec();
        let envelope = event.envelope();
        let payload = self.encode_event(event).await?;
        let delivery = self.enqueue(spec, event.key(), &envelope, &payload).await?;
        self.delivered(spec, &envelope, delivery).await
    }

    /// Checks a typed event and encodes it, framed. Once the type's framing is cached, the
    /// event is serialized straight to Avro binary (the same bytes as through its Avro value,
    /// which `fleuve-schemas` property-tests for every type).
    async fn encode_event<E: Event>(&self, event: &E) -> Result<Vec<u8>, PublishError> {
        let spec = E::spec();
        event.validate().map_err(fleuve_schemas::EventError::from)?;
        if let Some(encoded) = self.encode_framed(spec, |writer, out| writer.write_ser(out, event))
        {
            return encoded;
        }
        self.encode(spec, event.to_avro()?).await
    }

    /// Publishes several events of one type.
    ///
    /// Every event is checked and encoded first: if one is invalid, nothing is produced and
    /// the error is [`PublishError::InvalidItem`] with its index. The records are then
    /// handed to the producer in slice order (so events with the same key keep that order in
    /// their partition) and every acknowledgement is awaited. The result has one entry per
    /// event, in order: each is durably in Kafka, or failed with its own error.
    pub async fn publish_batch<E: Event>(
        &self,
        events: &[E],
    ) -> Result<Vec<Result<Published, PublishError>>, PublishError> {
        let spec = E::spec();
        let mut prepared = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let payload = match self.encode_event(event).await {
                Err(PublishError::Invalid(source)) => {
                    return Err(PublishError::InvalidItem { index, source })
                }
                other => other?,
            };
            prepared.push((event.key(), event.envelope(), payload));
        }
        let mut pending = Vec::with_capacity(prepared.len());
        for (key, envelope, payload) in &prepared {
            pending.push(self.enqueue(spec, key, envelope, payload).await);
        }
        let mut results = Vec::with_capacity(pending.len());
        for (delivery, (_, envelope, _)) in pending.into_iter().zip(&prepared) {
            results.push(match delivery {
                Ok(delivery) => self.delivered(spec, envelope, delivery).await,
                Err(e) => Err(e),
            });
        }
        Ok(results)
    }

    /// Publishes an Avro value that is already valid for `spec` (the ingest service's path).
    pub async fn publish_value(
        &self,
        spec: &EventSpec,
        key: &str,
        envelope: &Envelope,
        value: Value,
    ) -> Result<Published, PublishError> {
        let payload = self.encode(spec, value).await?;
        let delivery = self.enqueue(spec, key, envelope, &payload).await?;
        self.delivered(spec, envelope, delivery).await
    }

    /// Hands one record to the producer, in call order, waiting (bounded) for room in its
    /// queue.
    async fn enqueue(
        &self,
        spec: &EventSpec,
        key: &str,
        envelope: &Envelope,
        payload: &[u8],
    ) -> Result<DeliveryFuture, PublishError> {
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "event_type",
                value: Some(spec.name),
            })
            .insert(Header {
                key: "event_id",
                value: Some(&envelope.event_id),
            });
        if let Some(correlation_id) = &envelope.correlation_id {
            headers = headers.insert(Header {
                key: "correlation_id",
                value: Some(correlation_id),
            });
        }
        let mut record = FutureRecord::to(spec.topic)
            .key(key)
            .payload(payload)
            .headers(headers)
            .timestamp(envelope.occurred_at);
        let deadline = tokio::time::Instant::now() + QUEUE_TIMEOUT;
        loop {
            match self.inner.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if tokio::time::Instant::now() < deadline =>
                {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((source, _)) => return Err(self.broker_error(spec, envelope, source)),
            }
        }
    }

    /// Waits for the broker's acknowledgement of an enqueued record.
    async fn delivered(
        &self,
        spec: &EventSpec,
        envelope: &Envelope,
        delivery: DeliveryFuture,
    ) -> Result<Published, PublishError> {
        match delivery.await {
            Ok(Ok(delivered)) => {
                tracing::debug!(
                    event_id = %envelope.event_id,
                    topic = spec.topic,
                    partition = delivered.partition,
                    offset = delivered.offset,
                    "event published"
                );
                Ok(Published {
                    event_id: envelope.event_id.clone(),
                    position: Position::new(spec.topic, delivered.partition, delivered.offset),
                })
            }
            Ok(Err((source, _))) => Err(self.broker_error(spec, envelope, source)),
            Err(_canceled) => Err(self.broker_error(spec, envelope, KafkaError::Canceled)),
        }
    }

    fn broker_error(
        &self,
        spec: &EventSpec,
        envelope: &Envelope,
        source: KafkaError,
    ) -> PublishError {
        let retriable = fleuve_kafka::is_retriable(&source);
        tracing::warn!(event_id = %envelope.event_id, topic = spec.topic, error = %source, retriable, "publish failed");
        PublishError::Broker { source, retriable }
    }

    /// Confluent-framed Avro of `value`.
    ///
    /// The first publish of an event type goes through `schema_registry_converter`, which
    /// registers (or looks up) the schema and caches its id for the life of the encoder. From
    /// then on the same bytes are written directly: the converter would otherwise copy the
    /// schema text twice, format the subject, look up two caches and re-resolve the schema on
    /// every call, about as much CPU as the encoding itself (see docs/benchmarks.md).
    async fn encode(&self, spec: &EventSpec, value: Value) -> Result<Vec<u8>, PublishError> {
        if let Some(encoded) =
            self.encode_framed(spec, |writer, out| writer.write_value_ref(out, &value))
        {
            return encoded;
        }
        let payload = self.encode_with_registry(spec, value).await?;
        self.remember_framing(spec, &payload);
        Ok(payload)
    }

    /// The framed encoding written by `write` when the framing of `spec` is cached, `None`
    /// otherwise.
    fn encode_framed(
        &self,
        spec: &EventSpec,
        write: impl FnOnce(&GenericDatumWriter<'static>, &mut Vec<u8>) -> apache_avro::AvroResult<usize>,
    ) -> Option<Result<Vec<u8>, PublishError>> {
        let cache = self.inner.framed.read().ok()?;
        let framed = cache.get(spec.name)?;
        let mut payload = Vec::with_capacity(128);
        payload.extend_from_slice(&framed.header);
        Some(match write(&framed.writer, &mut payload) {
            Ok(_) => Ok(payload),
            Err(e) => Err(PublishError::Encode(format!(
                "Could not get Avro bytes: {e}"
            ))),
        })
    }

    /// Caches the framing of `spec` taken from a payload the converter produced. Only
    /// catalogue event types (which live for the whole process) are cached.
    fn remember_framing(&self, spec: &EventSpec, payload: &[u8]) {
        let Some(spec) = fleuve_schemas::find(spec.name).filter(|s| std::ptr::eq(*s, spec)) else {
            return;
        };
        let Some(header) = payload
            .get(..5)
            .and_then(|h| <[u8; 5]>::try_from(h).ok())
            .filter(|h| h[0] == 0)
        else {
            return;
        };
        let Ok(writer) = GenericDatumWriter::builder(&spec.schema).build() else {
            return;
        };
        if let Ok(mut framed) = self.inner.framed.write() {
            framed.insert(spec.name, Framed { header, writer });
        }
    }

    async fn encode_with_registry(
        &self,
        spec: &EventSpec,
        value: Value,
    ) -> Result<Vec<u8>, PublishError> {
        let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
            spec.topic.to_owned(),
            SuppliedSchema::new(
                Some(spec.full_name.clone()),
                SchemaType::Avro,
                spec.schema_json.to_owned(),
            ),
        );
        let encoder = &self.inner.encoder;
        encoder.encode_value(value, &strategy).await.map_err(|e| {
            // The encoder caches failures; a registry that was down must be asked again.
            encoder.remove_errors_from_cache();
            if e.error.starts_with("Could not get Avro bytes") {
                PublishError::Encode(e.to_string())
            } else {
                PublishError::Registry {
                    url: self.inner.config.registry_url.clone(),
                    reason: e.to_string(),
                }
            }
        })
    }

    /// Waits until every record handed to the producer is acknowledged, up to `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        let inner = Arc::clone(&self.inner);
        let result = tokio::task::spawn_blocking(move || inner.producer.flush(timeout)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flush did not complete"),
            Err(e) => tracing::warn!(error = %e, "flush task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleuve_schemas::PlaybackProgressed;

    /// The first publish of a type goes through the converter, the next ones through the
    /// cached framing: the records must be byte for byte the same.
    #[tokio::test]
    async fn cached_framing_writes_the_converters_bytes() {
        let kafka = fleuve_testkit::Kafka::start().await;
        let publisher = Publisher::new(PublisherConfig::new(
            kafka.config(),
            &kafka.registry_url,
            "test",
        ))
        .unwrap();
        let event = PlaybackProgressed {
            event_id: "0191f0c2-7a51-7c3e-9a55-1c0d5b1e2f30".to_owned(),
            occurred_at: 1_700_000_000_000,
            producer: "test".to_owned(),
            correlation_id: Some("corr-1".to_owned()),
            user_id: "u-1".to_owned(),
            content_id: "c-1".to_owned(),
            position_ms: 1_000,
            duration_ms: 60_000,
            device: "web".to_owned(),
        };
        for _ in 0..3 {
            publisher.publish(&event).await.unwrap();
        }
        let spec = PlaybackProgressed::spec();
        assert!(publisher
            .inner
            .framed
            .read()
            .unwrap()
            .contains_key(spec.name));
        let records = kafka.read_all(spec.topic);
        assert_eq!(records.len(), 3);
        let first = records[0].payload.clone().unwrap();
        assert_eq!(first[0], 0, "Confluent magic byte");
        for r in &records[1..] {
            assert_eq!(r.payload.as_deref(), Some(first.as_slice()));
        }
    }
}

use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use fleuve_kafka::{KafkaConfig, Position};
use fleuve_schemas::{Envelope, Event, EventError, EventSpec};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

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
            }),
        })
    }

    /// The configuration this publisher was made with.
    pub fn config(&self) -> &PublisherConfig {
        &self.inner.config
    }

    /// Publishes a typed event after checking its schema and rules.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Published, PublishError> {
        let value = event.to_avro()?;
        self.publish_value(E::spec(), event.key(), &event.envelope(), value)
            .await
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
        let record = FutureRecord::to(spec.topic)
            .key(key)
            .payload(&payload)
            .headers(headers)
            .timestamp(envelope.occurred_at);
        let delivery = self
            .inner
            .producer
            .send(record, Duration::from_millis(100))
            .await;
        match delivery {
            Ok(delivered) => {
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
            Err((source, _)) => {
                let retriable = fleuve_kafka::is_retriable(&source);
                tracing::warn!(event_id = %envelope.event_id, topic = spec.topic, error = %source, retriable, "publish failed");
                Err(PublishError::Broker { source, retriable })
            }
        }
    }

    async fn encode(&self, spec: &EventSpec, value: Value) -> Result<Vec<u8>, PublishError> {
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

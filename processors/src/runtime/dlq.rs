//! Dead letters: records a processor cannot use, kept with the reason.
//!
//! Each goes to `dlq.<processor>` with its original key, value and headers, plus:
//!
//! | header | value |
//! | --- | --- |
//! | `dlq.reason` | `undecodable`, `unknown_schema`, `unknown_event_type` or `rejected` |
//! | `dlq.error` | the error message |
//! | `dlq.processor` | processor name |
//! | `dlq.source.topic`, `dlq.source.partition`, `dlq.source.offset` | where it came from |

use std::time::Duration;

use fleuve_kafka::KafkaConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The value is not Confluent-framed Avro, or its bytes do not match its schema.
    Undecodable,
    /// The schema id is unknown to the registry.
    UnknownSchema,
    /// The record's type is not in the platform's catalogue.
    UnknownEventType,
    /// The handler refused the event (it breaks a rule of its type).
    Rejected,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Undecodable => "undecodable",
            DeadLetterReason::UnknownSchema => "unknown_schema",
            DeadLetterReason::UnknownEventType => "unknown_event_type",
            DeadLetterReason::Rejected => "rejected",
        }
    }
}

pub(super) struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    processor: &'static str,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetters {
    pub(super) fn new(kafka: &KafkaConfig, processor: &'static str) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: kafka.producer_config().create()?,
            topic: format!("dlq.{processor}"),
            processor,
        })
    }

    pub(super) fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes one dead letter and waits for the broker's acknowledgement.
    pub(super) async fn send(
        &self,
        msg: &OwnedMessage,
        reason: DeadLetterReason,
        error: &str,
    ) -> Result<(), KafkaError> {
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(original) = msg.headers() {
            for h in original.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        for (key, value) in [
            ("dlq.reason", reason.as_str()),
            ("dlq.error", error),
            ("dlq.processor", self.processor),
            ("dlq.source.topic", msg.topic()),
            ("dlq.source.partition", &partition),
            ("dlq.source.offset", &offset),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = msg.key() {
            record = record.key(key);
        }
        if let Some(payload) = msg.payload() {
            record = record.payload(payload);
        }
        tracing::warn!(
            processor = self.processor,
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            reason = reason.as_str(),
            error,
            "dead-lettering record"
        );
        self.producer
            .send(record, Duration::from_secs(1))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

use apache_avro::types::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::json::FieldError;
use crate::{check_id, EventSpec};

/// The fields every event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id of the event; a retry with the same id is the same event.
    pub event_id: String,
    /// When it happened, milliseconds since the Unix epoch.
    pub occurred_at: i64,
    /// Service that produced it.
    pub producer: String,
    /// Optional id of the flow or request that caused it.
    pub correlation_id: Option<String>,
}

/// An event that cannot be converted or is not valid for its type.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A field breaks the schema or a rule of the event type.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The Avro value does not have the shape of the Rust type (a decoding bug or a schema
    /// the type does not know).
    #[error("Avro value does not match event type {event_type}: {reason}")]
    Shape {
        event_type: &'static str,
        reason: String,
    },
}

/// A typed event of the catalogue.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Event type name (`PlaybackProgressed`).
    const TYPE: &'static str;

    /// The envelope fields.
    fn envelope(&self) -> Envelope;

    /// The Kafka key (the aggregate id).
    fn key(&self) -> &str;

    /// Rules beyond the schema (ranges, id formats). Field paths as in [`FieldError`].
    fn validate(&self) -> Result<(), FieldError>;

    /// This type's entry in the catalogue.
    fn spec() -> &'static EventSpec {
        #[allow(clippy::expect_used)]
        crate::find(Self::TYPE).expect("every Event type is in the catalogue (checked by tests)")
    }

    /// The Avro value of this event, checked against its schema and rules.
    fn to_avro(&self) -> Result<Value, EventError> {
        self.validate()?;
        let json = serde_json::to_value(self).map_err(|e| EventError::Shape {
            event_type: Self::TYPE,
            reason: e.to_string(),
        })?;
        Ok(crate::json::to_avro(&Self::spec().schema, &json)?)
    }

    /// The event from an Avro value of its schema.
    fn from_avro(value: &Value) -> Result<Self, EventError> {
        apache_avro::from_value(value).map_err(|e| EventError::Shape {
            event_type: Self::TYPE,
            reason: e.to_string(),
        })
    }
}

fn id_field(field: &str, value: &str) -> Result<(), FieldError> {
    check_id(value).map_err(|reason| FieldError {
        field: field.to_owned(),
        reason: reason.to_owned(),
    })
}

fn envelope_rules(e: &Envelope) -> Result<(), FieldError> {
    id_field("producer", &e.producer)?;
    if let Some(c) = &e.correlation_id {
        id_field("correlation_id", c)?;
    }
    Ok(())
}

/// A user's player reported how far it got in a content (`user-activity`, key `user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackProgressed {
    pub event_id: String,
    pub occurred_at: i64,
    pub producer: String,
    pub correlation_id: Option<String>,
    pub user_id: String,
    pub content_id: String,
    pub position_ms: i64,
    pub duration_ms: i64,
    pub device: String,
}

impl Event for PlaybackProgressed {
    const TYPE: &'static str = "PlaybackProgressed";

    fn envelope(&self) -> Envelope {
        Envelope {
            event_id: self.event_id.clone(),
            occurred_at: self.occurred_at,
            producer: self.producer.clone(),
            correlation_id: self.correlation_id.clone(),
        }
    }

    fn key(&self) -> &str {
        &self.user_id
    }

    fn validate(&self) -> Result<(), FieldError> {
        envelope_rules(&self.envelope())?;
        id_field("user_id", &self.user_id)?;
        id_field("content_id", &self.content_id)?;
        id_field("device", &self.device)?;
        let fail = |field: &str, reason: String| {
            Err(FieldError {
                field: field.to_owned(),
                reason,
            })
        };
        if self.duration_ms <= 0 {
            return fail(
                "duration_ms",
                format!("must be > 0, got {}", self.duration_ms),
            );
        }
        if self.position_ms < 0 {
            return fail(
                "position_ms",
                format!("must be >= 0, got {}", self.position_ms),
            );
        }
        if self.position_ms > self.duration_ms {
            return fail(
                "position_ms",
                format!(
                    "must not exceed duration_ms ({}), got {}",
                    self.duration_ms, self.position_ms
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_:.-]{1,40}"
    }

    prop_compose! {
        fn progress()(
            user_id in id(), content_id in id(), device in id(), producer in id(),
            correlation_id in proptest::option::of(id()),
            duration_ms in 1i64..=i64::MAX, frac in 0.0f64..=1.0,
            occurred_at in 0i64..=4_102_444_800_000, uuid in any::<u128>(),
        ) -> PlaybackProgressed {
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            let position_ms = ((duration_ms as f64) * frac) as i64;
            PlaybackProgressed {
                event_id: uuid::Uuid::from_u128(uuid).to_string(),
                occurred_at, producer, correlation_id, user_id, content_id,
                position_ms: position_ms.clamp(0, duration_ms), duration_ms, device,
            }
        }
    }

    proptest! {
        #[test]
        fn playback_progressed_round_trips_through_avro_binary(event in progress()) {
            let spec = PlaybackProgressed::spec();
            let value = event.to_avro().unwrap();
            let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&spec.schema).build().unwrap();
            let bytes = writer.write_value_to_vec(value).unwrap();
            let reader = apache_avro::reader::datum::GenericDatumReader::builder(&spec.schema).build().unwrap();
            let back = reader.read_value(&mut bytes.as_slice()).unwrap();
            prop_assert_eq!(PlaybackProgressed::from_avro(&back).unwrap(), event);
        }
    }

    fn sample() -> PlaybackProgressed {
        PlaybackProgressed {
            event_id: "0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11".into(),
            occurred_at: 1,
            producer: "p".into(),
            correlation_id: None,
            user_id: "u".into(),
            content_id: "c".into(),
            position_ms: 10,
            duration_ms: 20,
            device: "web".into(),
        }
    }

    #[test]
    fn rules_name_the_field() {
        type Mutation = fn(&mut PlaybackProgressed);
        let cases: [(Mutation, &str); 5] = [
            (|e| e.position_ms = -1, "position_ms"),
            (|e| e.position_ms = 21, "position_ms"),
            (|e| e.duration_ms = 0, "duration_ms"),
            (|e| e.user_id = String::new(), "user_id"),
            (|e| e.content_id = "x\u{0}y".into(), "content_id"),
        ];
        for (mutate, field) in cases {
            let mut e = sample();
            mutate(&mut e);
            assert_eq!(e.validate().unwrap_err().field, field);
            assert!(e.to_avro().is_err());
        }
        assert!(sample().validate().is_ok());
    }
}

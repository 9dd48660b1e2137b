//! The typed Rust view of every event, one file per topic.
//!
//! Each struct mirrors its `.avsc` record field for field (`Option<T>` for a `["null", T]`
//! union, `Vec<T>` for an array, a nested struct for a nested record, an enum whose variants
//! serialize as the Avro symbols). Values go to Avro through [`crate::json`], so a struct can
//! never produce what the HTTP ingest would refuse, and come back with
//! `apache_avro::from_value`.

use apache_avro::types::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::json::FieldError;
use crate::{check_country, check_currency, check_id, EventSpec};

/// Implements [`Event::envelope`] for a struct that has the four envelope fields.
macro_rules! envelope_from_fields {
    () => {
        fn envelope(&self) -> $crate::Envelope {
            $crate::Envelope {
                event_id: self.event_id.clone(),
                occurred_at: self.occurred_at,
                producer: self.producer.clone(),
                correlation_id: self.correlation_id.clone(),
            }
        }
    };
}

/// A closed set of an Avro enum: a Rust enum whose variants serialize as the Avro symbols,
/// with `ALL` (in the order of the schema's symbols) and `symbol()`.
macro_rules! avro_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $symbol:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $symbol)] $variant,)+
        }

        impl $name {
            /// Every variant, in the order of the Avro enum's symbols.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The Avro symbol of this variant.
            pub const fn symbol(self) -> &'static str {
                match self {
                    $(Self::$variant => $symbol),+
                }
            }
        }
    };
}

#[cfg(test)]
#[macro_use]
mod testing;

pub mod catalog;
pub mod inventory;
pub mod orders;
pub(crate) mod specs;
pub mod user_activity;

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
        #[expect(
            clippy::expect_used,
            reason = "every Event type is in the catalogue, which tests check"
        )]
        specs::find(Self::TYPE).expect("every Event type is in the catalogue (checked by tests)")
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

fn fail(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn id_field(field: &str, value: &str) -> Result<(), FieldError> {
    check_id(value).map_err(|reason| fail(field, reason))
}

fn envelope_rules(e: &Envelope) -> Result<(), FieldError> {
    match uuid::Uuid::parse_str(&e.event_id) {
        Ok(u) if u.hyphenated().to_string() == e.event_id => {}
        Ok(_) => return Err(fail(
            "event_id",
            "must be a UUID in lowercase hyphenated form (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        )),
        Err(_) => return Err(fail("event_id", "must be a UUID")),
    }
    id_field("producer", &e.producer)?;
    if let Some(c) = &e.correlation_id {
        id_field("correlation_id", c)?;
    }
    Ok(())
}

/// A one-line text (title, reason, address line): 1 to `max_bytes` bytes, no control
/// characters.
fn text_field(field: &str, value: &str, max_bytes: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        Err(fail(field, "must not be empty"))
    } else if value.len() > max_bytes {
        Err(fail(field, format!("must be at most {max_bytes} bytes")))
    } else if value.chars().any(char::is_control) {
        Err(fail(field, "must not contain control characters"))
    } else {
        Ok(())
    }
}

/// A multi-line text (description): like [`text_field`] but line breaks and tabs allowed.
fn long_text_field(field: &str, value: &str, max_bytes: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        Err(fail(field, "must not be empty (leave it out instead)"))
    } else if value.len() > max_bytes {
        Err(fail(field, format!("must be at most {max_bytes} bytes")))
    } else if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Err(fail(
            field,
            "must not contain control characters other than line breaks and tabs",
        ))
    } else {
        Ok(())
    }
}

fn country_field(field: &str, value: &str) -> Result<(), FieldError> {
    check_country(value).map_err(|reason| fail(field, reason))
}

fn currency_field(field: &str, value: &str) -> Result<(), FieldError> {
    check_currency(value).map_err(|reason| fail(field, reason))
}

/// `value` must be > 0.
fn positive(field: &str, value: i64) -> Result<(), FieldError> {
    if value > 0 {
        Ok(())
    } else {
        Err(fail(field, format!("must be > 0, got {value}")))
    }
}

/// `value` must be >= 0.
fn non_negative(field: &str, value: i64) -> Result<(), FieldError> {
    if value >= 0 {
        Ok(())
    } else {
        Err(fail(field, format!("must be >= 0, got {value}")))
    }
}

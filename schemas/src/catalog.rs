use std::sync::LazyLock;

use apache_avro::types::Value;
use apache_avro::Schema;

use crate::{Event, EventError, PlaybackProgressed};

/// One event type: its schema, the topic it goes to and the field that is its Kafka key.
#[derive(Debug)]
pub struct EventSpec {
    /// Event type name, as used in URLs and the `event_type` header (`PlaybackProgressed`).
    pub name: &'static str,
    /// Topic the event is published to.
    pub topic: &'static str,
    /// Field of the record whose value is the Kafka key.
    pub key_field: &'static str,
    /// The `.avsc` text, as registered in the schema registry.
    pub schema_json: &'static str,
    /// The parsed schema.
    pub schema: Schema,
    /// Full name of the record (`namespace.Name`).
    pub full_name: String,
    /// The event type's rules beyond the schema, on a value already valid for the schema.
    check: fn(&Value) -> Result<(), EventError>,
}

impl EventSpec {
    fn of<E: Event>(topic: &'static str, key_field: &'static str, json: &'static str) -> Self {
        let name = E::TYPE;
        // The files are part of this crate and checked by its tests: a parse failure is a
        // build defect, caught by `cargo test` before anything ships.
        #[allow(clippy::expect_used)]
        let schema = Schema::parse_str(json).expect("bundled .avsc files are valid Avro");
        let full_name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            _ => name.to_owned(),
        };
        Self {
            name,
            topic,
            key_field,
            schema_json: json,
            schema,
            full_name,
            check: |value| Ok(E::from_avro(value)?.validate()?),
        }
    }

    /// Applies the event type's rules to a value already valid for its schema.
    pub fn check(&self, value: &Value) -> Result<(), EventError> {
        (self.check)(value)
    }

    /// The Kafka key of a value of this event type (its `key_field`).
    pub fn key_of<'v>(&self, value: &'v Value) -> Option<&'v str> {
        match value {
            Value::Record(fields) => fields.iter().find_map(|(name, v)| match v {
                Value::String(s) if name == self.key_field => Some(s.as_str()),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The registry subject (TopicRecordNameStrategy): `<topic>-<record full name>`.
    pub fn subject(&self) -> String {
        format!("{}-{}", self.topic, self.full_name)
    }
}

static CATALOG: LazyLock<Vec<EventSpec>> = LazyLock::new(|| {
    vec![EventSpec::of::<PlaybackProgressed>(
        "user-activity",
        "user_id",
        include_str!("../avro/user-activity/PlaybackProgressed.avsc"),
    )]
});

/// Every event type of the platform.
pub fn catalog() -> &'static [EventSpec] {
    &CATALOG
}

/// The event type with this name, if there is one.
pub fn find(name: &str) -> Option<&'static EventSpec> {
    catalog().iter().find(|s| s.name == name)
}

/// The event type whose record has this full name (`fleuve.user_activity.PlaybackProgressed`).
pub fn find_by_full_name(full_name: &str) -> Option<&'static EventSpec> {
    catalog().iter().find(|s| s.full_name == full_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_schema_parses_and_has_the_envelope() {
        for spec in catalog() {
            let Schema::Record(r) = &spec.schema else {
                panic!("{} is not a record", spec.name)
            };
            for field in [
                "event_id",
                "occurred_at",
                "producer",
                "correlation_id",
                spec.key_field,
            ] {
                assert!(r.lookup.contains_key(field), "{} lacks {field}", spec.name);
            }
            for f in &r.fields {
                assert!(f.doc.is_some(), "{}.{} has no doc", spec.name, f.name);
            }
            assert!(spec.full_name.ends_with(spec.name));
            assert_eq!(
                find_by_full_name(&spec.full_name).map(|s| s.name),
                Some(spec.name)
            );
        }
    }
}

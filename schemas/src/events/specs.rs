use std::sync::LazyLock;

use apache_avro::types::Value;
use apache_avro::Schema;

use super::catalog::{ContentDeleted, ContentUnpublished, ContentUpserted};
use super::inventory::{StockAdjusted, StockReleased, StockReserved};
use super::orders::{
    OrderCancelled, OrderDelivered, OrderPlaced, OrderShipped, PaymentAuthorized, PaymentFailed,
};
use super::user_activity::{BookmarkAdded, BookmarkRemoved, PlaybackProgressed, UserDataErased};
use super::{Event, EventError};

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
        #[expect(
            clippy::expect_used,
            reason = "the bundled .avsc files are valid Avro, which tests check"
        )]
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

/// One catalogue entry: `spec!(Type, "topic", "key_field")` reads
/// `avro/<topic>/<Type>.avsc`.
macro_rules! spec {
    ($ty:ty, $topic:literal, $key:literal) => {
        EventSpec::of::<$ty>(
            $topic,
            $key,
            include_str!(concat!(
                "../../avro/",
                $topic,
                "/",
                stringify!($ty),
                ".avsc"
            )),
        )
    };
}

static CATALOG: LazyLock<Vec<EventSpec>> = LazyLock::new(|| {
    vec![
        spec!(PlaybackProgressed, "user-activity", "user_id"),
        spec!(BookmarkAdded, "user-activity", "user_id"),
        spec!(BookmarkRemoved, "user-activity", "user_id"),
        spec!(UserDataErased, "user-activity", "user_id"),
        spec!(ContentUpserted, "catalog", "content_id"),
        spec!(ContentUnpublished, "catalog", "content_id"),
        spec!(ContentDeleted, "catalog", "content_id"),
        spec!(OrderPlaced, "orders", "order_id"),
        spec!(PaymentAuthorized, "orders", "order_id"),
        spec!(PaymentFailed, "orders", "order_id"),
        spec!(OrderShipped, "orders", "order_id"),
        spec!(OrderDelivered, "orders", "order_id"),
        spec!(OrderCancelled, "orders", "order_id"),
        spec!(StockAdjusted, "inventory", "sku"),
        spec!(StockReserved, "inventory", "sku"),
        spec!(StockReleased, "inventory", "sku"),
    ]
});

/// Every event type of the platform.
pub fn catalog() -> &'static [EventSpec] {
    &CATALOG
}

/// The topics of the catalogue's event types, each once, in catalogue order.
pub fn topics() -> Vec<&'static str> {
    let mut topics: Vec<&'static str> = Vec::new();
    for spec in catalog() {
        if !topics.contains(&spec.topic) {
            topics.push(spec.topic);
        }
    }
    topics
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
    use std::collections::HashSet;
    use std::path::Path;

    use apache_avro::schema::RecordSchema;

    use super::*;
    use crate::events;

    fn record(spec: &EventSpec) -> &RecordSchema {
        match &spec.schema {
            Schema::Record(r) => r,
            _ => panic!("{} is not a record", spec.name),
        }
    }

    /// Every record, enum and field, nested ones included, has a `doc`.
    fn assert_documented(owner: &str, schema: &Schema) {
        match schema {
            Schema::Record(r) => {
                assert!(r.doc.is_some(), "{owner}: record {} has no doc", r.name);
                for f in &r.fields {
                    assert!(f.doc.is_some(), "{owner}: {}.{} has no doc", r.name, f.name);
                    assert_documented(owner, &f.schema);
                }
            }
            Schema::Enum(e) => assert!(e.doc.is_some(), "{owner}: enum {} has no doc", e.name),
            Schema::Array(a) => assert_documented(owner, &a.items),
            Schema::Map(m) => assert_documented(owner, &m.types),
            Schema::Union(u) => u
                .variants()
                .iter()
                .for_each(|v| assert_documented(owner, v)),
            Schema::Ref { name } => {
                panic!("{owner}: reuses named type {name}; json.rs does not resolve references")
            }
            _ => {}
        }
    }

    #[test]
    fn every_bundled_schema_parses_and_has_the_envelope() {
        let reference = record(PlaybackProgressed::spec());
        for spec in catalog() {
            let r = record(spec);
            for (i, field) in ["event_id", "occurred_at", "producer", "correlation_id"]
                .into_iter()
                .enumerate()
            {
                let (ours, theirs) = (&r.fields[i], &reference.fields[i]);
                assert_eq!(ours.name, field, "{}: envelope field {i}", spec.name);
                assert_eq!(ours.schema, theirs.schema, "{}.{field}", spec.name);
                assert_eq!(ours.default, theirs.default, "{}.{field}", spec.name);
            }
            assert!(r.lookup.contains_key(spec.key_field), "{}", spec.name);
            assert_documented(spec.name, &spec.schema);
            assert_eq!(
                r.name.namespace(),
                Some(format!("fleuve.{}", spec.topic.replace('-', "_")).as_str()),
                "{} namespace",
                spec.name
            );
            assert_eq!(r.name.name(), spec.name);
            assert_eq!(
                find_by_full_name(&spec.full_name).map(|s| s.name),
                Some(spec.name)
            );
            for f in &r.fields {
                let snake = f
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                assert!(snake, "{}.{} is not snake_case", spec.name, f.name);
            }
        }
    }

    #[test]
    fn names_are_unique_and_keys_are_string_fields() {
        let mut names = HashSet::new();
        let mut full_names = HashSet::new();
        for spec in catalog() {
            assert!(names.insert(spec.name), "{} twice", spec.name);
            assert!(
                full_names.insert(&spec.full_name),
                "{} twice",
                spec.full_name
            );
            let r = record(spec);
            let key = &r.fields[r.lookup[spec.key_field]];
            assert_eq!(key.schema, Schema::String, "{} key {}", spec.name, key.name);
            assert!(
                key.default.is_none(),
                "{}: the key has no default",
                spec.name
            );
        }
        assert_eq!(
            topics(),
            ["user-activity", "catalog", "orders", "inventory"]
        );
    }

    #[test]
    fn every_type_has_a_round_trip_proptest() {
        let covered: Vec<&str> = [
            events::user_activity::tests::ROUND_TRIPPED,
            events::catalog::tests::ROUND_TRIPPED,
            events::orders::tests::ROUND_TRIPPED,
            events::inventory::tests::ROUND_TRIPPED,
        ]
        .concat();
        let catalogued: Vec<&str> = catalog().iter().map(|s| s.name).collect();
        for name in &catalogued {
            assert!(covered.contains(name), "{name} has no round-trip proptest");
        }
        for name in &covered {
            assert!(
                catalogued.contains(name),
                "{name} is tested but not catalogued"
            );
        }
        assert_eq!(covered.len(), catalogued.len(), "a type is covered twice");
    }

    /// `avro/<topic>/<Name>.avsc`: the record is `Name`, the topic is the folder, and every
    /// file is in the catalogue with exactly that text.
    #[test]
    fn avsc_files_are_where_their_name_and_topic_say() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
        let mut seen = Vec::new();
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            assert!(dir.is_dir(), "{} is not a topic folder", dir.display());
            let topic = dir.file_name().unwrap().to_str().unwrap().to_owned();
            if topic == crate::export::FOLDER {
                continue; // export records, not events: checked in `export`
            }
            for file in std::fs::read_dir(&dir).unwrap() {
                let path = file.unwrap().path();
                assert_eq!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("avsc"),
                    "{} is not an .avsc file",
                    path.display()
                );
                let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
                let text = std::fs::read_to_string(&path).unwrap();
                let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(json["name"], stem.as_str(), "{}", path.display());
                let spec = find(&stem)
                    .unwrap_or_else(|| panic!("{} is not in the catalogue", path.display()));
                assert_eq!(
                    spec.topic,
                    topic,
                    "{} is in the wrong folder",
                    path.display()
                );
                assert_eq!(spec.schema_json, text, "{} is not the bundled text", stem);
                seen.push(stem);
            }
        }
        assert_eq!(seen.len(), catalog().len(), "a catalogued type has no file");
    }
}

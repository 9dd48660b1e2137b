//! The records of the `_schemas` log: their JSON key and value, and how they are decoded.
//!
//! Every record has a JSON key whose `keytype` says what kind of record it is, so that later
//! kinds (subject/version deletes, compatibility config) are new [`KeyType`] and
//! [`LogRecord`] variants that older replicas skip with a log line instead of misreading.

use std::fmt;
use std::sync::Arc;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

/// Version of the key format, as in Confluent's keys.
pub(crate) const MAGIC: u8 = 1;

/// What a record of the log is about (`keytype` of the key).
///
/// Only `SCHEMA` exists today; `DELETE_SUBJECT`, `CONFIG` … are meant to join it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum KeyType {
    /// A schema registration under a subject.
    Schema,
}

/// The JSON key of a record, e.g.
/// `{"keytype":"SCHEMA","subject":"orders-fleuve.OrderPlaced","magic":1,"write_id":"…"}`.
///
/// What the key holds decides what compaction may collapse: records with equal keys are
/// reduced to the last one. A registration's key carries a `write_id` unique to that write,
/// so compaction never removes a registration (see the crate docs: ids derive from offsets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordKey {
    pub keytype: KeyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub magic: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_id: Option<String>,
}

/// The type of a schema. Only Avro is supported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum SchemaType {
    #[default]
    Avro,
}

impl SchemaType {
    /// Reads a `schemaType` as clients send it (absent means Avro, like Confluent).
    pub(crate) fn from_request(value: Option<&str>) -> Result<Self, String> {
        match value {
            None => Ok(SchemaType::Avro),
            Some(t) if t.eq_ignore_ascii_case("AVRO") => Ok(SchemaType::Avro),
            Some(t) => Err(format!(
                "schema type '{t}' is not supported by this registry; only AVRO schemas can be registered"
            )),
        }
    }
}

/// The JSON value of a `SCHEMA` record: `{"subject","schema","schemaType"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaValue {
    pub subject: String,
    /// The schema text as the client sent it.
    pub schema: String,
    #[serde(default)]
    pub schema_type: SchemaType,
}

/// A schema parsed and put in the form used for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedSchema {
    /// The text as sent.
    pub text: Arc<str>,
    pub schema_type: SchemaType,
    /// The canonical form: equal for schemas that differ only by whitespace, key order or
    /// namespace shorthand (see [`canonical_avro`]).
    pub canonical: Arc<str>,
}

impl ParsedSchema {
    /// Parses an Avro schema; `Err` carries the parser's reason.
    pub(crate) fn avro(text: &str) -> Result<Self, String> {
        Ok(ParsedSchema {
            text: Arc::from(text),
            schema_type: SchemaType::Avro,
            canonical: Arc::from(canonical_avro(text)?),
        })
    }
}

/// The canonical form of an Avro schema used to decide whether two schemas are "the same".
///
/// It is the JSON that `apache_avro` writes back for the parsed schema: whitespace, key order,
/// `{"type":"string"}` vs `"string"` and namespace shorthand disappear, but `doc`, `default`,
/// `aliases`, logical types and custom properties are kept. The Avro *Parsing Canonical
/// Form* (`Schema::canonical_form`) is deliberately not used: it drops defaults, docs and
/// logical types, so adding a default to a field (a typical compatibility fix) would be
/// taken for the already registered schema and silently not recorded. Confluent likewise
/// compares the full normalised schema.
pub(crate) fn canonical_avro(text: &str) -> Result<String, String> {
    let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
    serde_json::to_string(&schema)
        .map_err(|e| format!("the schema could not be put in canonical form: {e}"))
}

/// A decoded record of the log, ready to be folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogRecord {
    /// Register `schema` under `subject` (a no-op when the subject already has it).
    Schema {
        subject: String,
        schema: ParsedSchema,
    },
}

/// Why a record of the log was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// No key, or a key that is not a JSON record key of a known kind.
    Key(String),
    /// A tombstone (null value): deletes are not implemented yet.
    Tombstone,
    /// A value that does not match its key.
    Value(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Key(reason) => write!(f, "unreadable key: {reason}"),
            DecodeError::Tombstone => {
                f.write_str("tombstone (permanent deletes are not supported yet)")
            }
            DecodeError::Value(reason) => write!(f, "unreadable value: {reason}"),
        }
    }
}

/// Decodes a raw record; this is where the canonical form is computed, once per record.
pub(crate) fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<LogRecord, DecodeError> {
    let key = key.ok_or_else(|| DecodeError::Key("the record has no key".to_owned()))?;
    let key: RecordKey =
        serde_json::from_slice(key).map_err(|e| DecodeError::Key(e.to_string()))?;
    if key.magic != MAGIC {
        return Err(DecodeError::Key(format!(
            "magic {} is not supported (expected {MAGIC})",
            key.magic
        )));
    }
    let value = value.ok_or(DecodeError::Tombstone)?;
    match key.keytype {
        KeyType::Schema => {
            let value: SchemaValue =
                serde_json::from_slice(value).map_err(|e| DecodeError::Value(e.to_string()))?;
            if key.subject.as_deref() != Some(value.subject.as_str()) {
                return Err(DecodeError::Value(format!(
                    "subject '{}' of the value differs from the key's {:?}",
                    value.subject, key.subject
                )));
            }
            let schema = match value.schema_type {
                SchemaType::Avro => ParsedSchema::avro(&value.schema),
            }
            .map_err(|reason| DecodeError::Value(format!("invalid schema: {reason}")))?;
            Ok(LogRecord::Schema {
                subject: value.subject,
                schema,
            })
        }
    }
}

/// The key and value bytes of a registration record, with a fresh `write_id`.
pub(crate) fn encode_registration(subject: &str, schema: &ParsedSchema) -> (Vec<u8>, Vec<u8>) {
    let key = RecordKey {
        keytype: KeyType::Schema,
        subject: Some(subject.to_owned()),
        magic: MAGIC,
        write_id: Some(uuid::Uuid::new_v4().to_string()),
    };
    let value = SchemaValue {
        subject: subject.to_owned(),
        schema: schema.text.to_string(),
        schema_type: schema.schema_type,
    };
    // Serialising these plain structs cannot fail.
    (
        serde_json::to_vec(&key).unwrap_or_default(),
        serde_json::to_vec(&value).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"string"}]}"#;

    #[test]
    fn registration_round_trips() {
        let schema = ParsedSchema::avro(USER).unwrap();
        let (key, value) = encode_registration("s/1", &schema);
        let key_json: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(key_json["keytype"], "SCHEMA");
        assert_eq!(key_json["subject"], "s/1");
        assert_eq!(key_json["magic"], 1);
        assert!(key_json["write_id"].is_string());
        let value_json: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(value_json["schemaType"], "AVRO");
        assert_eq!(
            decode(Some(&key), Some(&value)).unwrap(),
            LogRecord::Schema {
                subject: "s/1".to_owned(),
                schema
            }
        );
    }

    #[test]
    fn two_writes_of_one_schema_have_different_keys() {
        let schema = ParsedSchema::avro(USER).unwrap();
        assert_ne!(
            encode_registration("s", &schema).0,
            encode_registration("s", &schema).0
        );
    }

    #[test]
    fn bad_records_are_reported_not_panicked_on() {
        let key = br#"{"keytype":"SCHEMA","subject":"s","magic":1}"#;
        type Raw<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
        let cases: Vec<Raw<'_>> = vec![
            (None, Some(b"{}")),
            (Some(b"not json"), Some(b"{}")),
            (Some(br#"{"keytype":"NOOP","magic":0}"#), Some(b"{}")),
            (
                Some(br#"{"keytype":"SCHEMA","subject":"s","magic":7}"#),
                Some(b"{}"),
            ),
            (Some(key), None),
            (Some(key), Some(b"{")),
            (
                Some(key),
                Some(br#"{"subject":"other","schema":"\"string\""}"#),
            ),
            (
                Some(key),
                Some(br#"{"subject":"s","schema":"{\"type\":\"nope\"}"}"#),
            ),
            (
                Some(key),
                Some(br#"{"subject":"s","schema":"\"string\"","schemaType":"PROTOBUF"}"#),
            ),
        ];
        for (k, v) in cases {
            assert!(decode(k, v).is_err(), "{k:?} {v:?}");
        }
        let ok = decode(Some(key), Some(br#"{"subject":"s","schema":"\"string\""}"#)).unwrap();
        assert!(matches!(ok, LogRecord::Schema { .. }));
    }

    #[test]
    fn canonical_form_ignores_layout_but_keeps_defaults() {
        let spaced = "{ \"fields\" : [ {\"type\":\"string\", \"name\":\"id\"} ],\n \"name\":\"User\", \"type\":\"record\", \"namespace\":\"t\" }";
        assert_eq!(canonical_avro(USER), canonical_avro(spaced));
        assert_eq!(
            canonical_avro("\"string\""),
            canonical_avro(r#"{"type":"string"}"#)
        );
        let with_default = USER.replace(r#""type":"string"}"#, r#""type":"string","default":"x"}"#);
        assert_ne!(canonical_avro(USER), canonical_avro(&with_default));
    }
}

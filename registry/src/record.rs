//! The records of the `_schemas` log: their JSON key and value, and how they are decoded.
//!
//! Every record has a JSON key whose `keytype` says what kind of record it is; a kind unknown
//! to a replica is skipped with a log line instead of misread. The kinds, their keys and
//! values are listed in the crate docs ("Log format"), with why each key is unique or stable.

use std::fmt;
use std::sync::Arc;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::compatibility::CompatibilityLevel;

/// Version of the key format of `SCHEMA` records, as in Confluent's keys.
pub(crate) const MAGIC: u8 = 1;

/// Version of the key format of the other kinds (Confluent uses 0 for them).
pub(crate) const MAGIC_OTHER: u8 = 0;

/// What a record of the log is about (`keytype` of the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum KeyType {
    /// A schema registration under a subject.
    Schema,
    /// The compatibility level of a subject, or the global one (`subject: null`).
    Config,
    /// A soft or permanent delete of a whole subject.
    DeleteSubject,
    /// A soft or permanent delete of one version of a subject.
    DeleteVersion,
}

impl KeyType {
    fn magic(self) -> u8 {
        match self {
            KeyType::Schema => MAGIC,
            KeyType::Config | KeyType::DeleteSubject | KeyType::DeleteVersion => MAGIC_OTHER,
        }
    }
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

/// The JSON value of a `SCHEMA` record: `{"subject","schema","schemaType","compatibility"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaValue {
    pub subject: String,
    /// The schema text as the client sent it.
    pub schema: String,
    #[serde(default)]
    pub schema_type: SchemaType,
    /// The level the writing replica checked the schema under; the fold checks it again
    /// under the same level. Absent (records written before compatibility existed): no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<CompatibilityLevel>,
}

/// The key of a `CONFIG` record: stable, `{"keytype":"CONFIG","subject":"s"|null,"magic":0}`,
/// so compaction keeps only the last level of each subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ConfigKey<'a> {
    keytype: KeyType,
    subject: Option<&'a str>,
    magic: u8,
}

/// The value of a `CONFIG` record (Confluent's shape); a tombstone removes a subject's level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigValue {
    compatibility_level: CompatibilityLevel,
}

/// The value of a `DELETE_SUBJECT` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DeleteSubjectValue {
    subject: String,
    #[serde(default)]
    permanent: bool,
}

/// The value of a `DELETE_VERSION` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DeleteVersionValue {
    subject: String,
    version: u32,
    #[serde(default)]
    permanent: bool,
}

/// A schema parsed and put in the form used for comparisons.
#[derive(Debug, Clone)]
pub(crate) struct ParsedSchema {
    /// The text as sent.
    pub text: Arc<str>,
    pub schema_type: SchemaType,
    /// The canonical form: equal for schemas that differ only by whitespace, key order or
    /// namespace shorthand (see [`canonical_avro`]).
    pub canonical: Arc<str>,
    /// The parsed schema, for compatibility checks.
    pub schema: Arc<Schema>,
}

impl PartialEq for ParsedSchema {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
            && self.schema_type == other.schema_type
            && self.canonical == other.canonical
    }
}

impl Eq for ParsedSchema {}

impl ParsedSchema {
    /// Parses an Avro schema; `Err` carries the parser's reason.
    pub(crate) fn avro(text: &str) -> Result<Self, String> {
        let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
        Ok(ParsedSchema {
            text: Arc::from(text),
            schema_type: SchemaType::Avro,
            canonical: Arc::from(canonical_of(&schema)?),
            schema: Arc::new(schema),
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
#[cfg(test)]
pub(crate) fn canonical_avro(text: &str) -> Result<String, String> {
    let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
    canonical_of(&schema)
}

fn canonical_of(schema: &Schema) -> Result<String, String> {
    serde_json::to_string(schema)
        .map_err(|e| format!("the schema could not be put in canonical form: {e}"))
}

/// A decoded record of the log, ready to be folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogRecord {
    /// Register `schema` under `subject` (a no-op when the subject already has it), if it is
    /// compatible under `compatibility`.
    Schema {
        subject: String,
        schema: ParsedSchema,
        compatibility: Option<CompatibilityLevel>,
    },
    /// Set (`Some`) or remove (`None`) the level of a subject, or the global one.
    Config {
        subject: Option<String>,
        level: Option<CompatibilityLevel>,
    },
    /// Soft-delete every live version of a subject, or permanently delete a soft-deleted one.
    DeleteSubject { subject: String, permanent: bool },
    /// Soft-delete a live version, or permanently delete a soft-deleted one.
    DeleteVersion {
        subject: String,
        version: u32,
        permanent: bool,
    },
}

/// Why a record of the log was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// No key, or a key that is not a JSON record key of a known kind.
    Key(String),
    /// A tombstone (null value) of a kind that has none (only `CONFIG` records have).
    Tombstone,
    /// A value that does not match its key.
    Value(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Key(reason) => write!(f, "unreadable key: {reason}"),
            DecodeError::Tombstone => f.write_str(
                "tombstone of a record kind that has none (only CONFIG records may be null)",
            ),
            DecodeError::Value(reason) => write!(f, "unreadable value: {reason}"),
        }
    }
}

/// Decodes a raw record; this is where the canonical form is computed, once per record.
pub(crate) fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<LogRecord, DecodeError> {
    let key = key.ok_or_else(|| DecodeError::Key("the record has no key".to_owned()))?;
    let key: RecordKey =
        serde_json::from_slice(key).map_err(|e| DecodeError::Key(e.to_string()))?;
    if key.magic != key.keytype.magic() {
        return Err(DecodeError::Key(format!(
            "magic {} is not supported for {:?} records (expected {})",
            key.magic,
            key.keytype,
            key.keytype.magic()
        )));
    }
    let check_subject = |subject: &str| {
        if key.subject.as_deref() == Some(subject) {
            Ok(())
        } else {
            Err(DecodeError::Value(format!(
                "subject '{subject}' of the value differs from the key's {:?}",
                key.subject
            )))
        }
    };
    if key.keytype == KeyType::Config {
        let level = value
            .map(|value| {
                serde_json::from_slice::<ConfigValue>(value)
                    .map(|v| v.compatibility_level)
                    .map_err(|e| DecodeError::Value(e.to_string()))
            })
            .transpose()?;
        return Ok(LogRecord::Config {
            subject: key.subject,
            level,
        });
    }
    let value = value.ok_or(DecodeError::Tombstone)?;
    let value_error = |e: serde_json::Error| DecodeError::Value(e.to_string());
    match key.keytype {
        KeyType::Schema => {
            let value: SchemaValue = serde_json::from_slice(value).map_err(value_error)?;
            check_subject(&value.subject)?;
            let schema = match value.schema_type {
                SchemaType::Avro => ParsedSchema::avro(&value.schema),
            }
            .map_err(|reason| DecodeError::Value(format!("invalid schema: {reason}")))?;
            Ok(LogRecord::Schema {
                subject: value.subject,
                schema,
                compatibility: value.compatibility,
            })
        }
        KeyType::DeleteSubject => {
            let value: DeleteSubjectValue = serde_json::from_slice(value).map_err(value_error)?;
            check_subject(&value.subject)?;
            Ok(LogRecord::DeleteSubject {
                subject: value.subject,
                permanent: value.permanent,
            })
        }
        KeyType::DeleteVersion => {
            let value: DeleteVersionValue = serde_json::from_slice(value).map_err(value_error)?;
            check_subject(&value.subject)?;
            Ok(LogRecord::DeleteVersion {
                subject: value.subject,
                version: value.version,
                permanent: value.permanent,
            })
        }
        KeyType::Config => unreachable!("handled above"),
    }
}

/// A key unique to this write (`write_id`), so compaction never removes the record.
fn unique_key(keytype: KeyType, subject: &str) -> Vec<u8> {
    let key = RecordKey {
        keytype,
        subject: Some(subject.to_owned()),
        magic: keytype.magic(),
        write_id: Some(uuid::Uuid::new_v4().to_string()),
    };
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(&key).unwrap_or_default()
}

/// The key and value bytes of a registration record, with a fresh `write_id`.
pub(crate) fn encode_registration(
    subject: &str,
    schema: &ParsedSchema,
    compatibility: CompatibilityLevel,
) -> (Vec<u8>, Vec<u8>) {
    let value = SchemaValue {
        subject: subject.to_owned(),
        schema: schema.text.to_string(),
        schema_type: schema.schema_type,
        compatibility: Some(compatibility),
    };
    // Serialising these plain structs cannot fail.
    (
        unique_key(KeyType::Schema, subject),
        serde_json::to_vec(&value).unwrap_or_default(),
    )
}

/// The stable key of a `CONFIG` record and its value (`None`: a tombstone, removing the
/// subject's level).
pub(crate) fn encode_config(
    subject: Option<&str>,
    level: Option<CompatibilityLevel>,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let key = ConfigKey {
        keytype: KeyType::Config,
        subject,
        magic: MAGIC_OTHER,
    };
    let value = level.map(|compatibility_level| {
        serde_json::to_vec(&ConfigValue {
            compatibility_level,
        })
        .unwrap_or_default()
    });
    (serde_json::to_vec(&key).unwrap_or_default(), value)
}

/// A `DELETE_SUBJECT` record (unique key).
pub(crate) fn encode_delete_subject(subject: &str, permanent: bool) -> (Vec<u8>, Vec<u8>) {
    let value = DeleteSubjectValue {
        subject: subject.to_owned(),
        permanent,
    };
    (
        unique_key(KeyType::DeleteSubject, subject),
        serde_json::to_vec(&value).unwrap_or_default(),
    )
}

/// A `DELETE_VERSION` record (unique key).
pub(crate) fn encode_delete_version(
    subject: &str,
    version: u32,
    permanent: bool,
) -> (Vec<u8>, Vec<u8>) {
    let value = DeleteVersionValue {
        subject: subject.to_owned(),
        version,
        permanent,
    };
    (
        unique_key(KeyType::DeleteVersion, subject),
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
        let (key, value) = encode_registration("s/1", &schema, CompatibilityLevel::Full);
        let key_json: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(key_json["keytype"], "SCHEMA");
        assert_eq!(key_json["subject"], "s/1");
        assert_eq!(key_json["magic"], 1);
        assert!(key_json["write_id"].is_string());
        let value_json: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(value_json["schemaType"], "AVRO");
        assert_eq!(value_json["compatibility"], "FULL");
        assert_eq!(
            decode(Some(&key), Some(&value)).unwrap(),
            LogRecord::Schema {
                subject: "s/1".to_owned(),
                schema,
                compatibility: Some(CompatibilityLevel::Full),
            }
        );
    }

    #[test]
    fn two_writes_of_one_schema_have_different_keys() {
        let schema = ParsedSchema::avro(USER).unwrap();
        assert_ne!(
            encode_registration("s", &schema, CompatibilityLevel::None).0,
            encode_registration("s", &schema, CompatibilityLevel::None).0
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
        assert!(matches!(
            ok,
            LogRecord::Schema {
                compatibility: None,
                ..
            }
        ));
    }

    #[test]
    fn config_keys_are_stable_and_tombstones_remove() {
        let (key, value) = encode_config(Some("s"), Some(CompatibilityLevel::FullTransitive));
        assert_eq!(
            String::from_utf8(key.clone()).unwrap(),
            r#"{"keytype":"CONFIG","subject":"s","magic":0}"#
        );
        assert_eq!(encode_config(Some("s"), None).0, key);
        assert_eq!(
            String::from_utf8(value.clone().unwrap()).unwrap(),
            r#"{"compatibilityLevel":"FULL_TRANSITIVE"}"#
        );
        assert_eq!(
            decode(Some(&key), value.as_deref()).unwrap(),
            LogRecord::Config {
                subject: Some("s".to_owned()),
                level: Some(CompatibilityLevel::FullTransitive)
            }
        );
        assert_eq!(
            decode(Some(&key), None).unwrap(),
            LogRecord::Config {
                subject: Some("s".to_owned()),
                level: None
            }
        );
        let (global, _) = encode_config(None, Some(CompatibilityLevel::None));
        assert_eq!(
            String::from_utf8(global).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert!(decode(Some(&key), Some(br#"{"compatibilityLevel":"SIDEWAYS"}"#)).is_err());
    }

    #[test]
    fn deletes_round_trip_with_unique_keys() {
        let (key, value) = encode_delete_subject("s", true);
        assert_ne!(key, encode_delete_subject("s", true).0);
        let key_json: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(key_json["keytype"], "DELETE_SUBJECT");
        assert_eq!(key_json["magic"], 0);
        assert_eq!(
            decode(Some(&key), Some(&value)).unwrap(),
            LogRecord::DeleteSubject {
                subject: "s".to_owned(),
                permanent: true
            }
        );
        let (key, value) = encode_delete_version("s", 3, false);
        assert_eq!(
            decode(Some(&key), Some(&value)).unwrap(),
            LogRecord::DeleteVersion {
                subject: "s".to_owned(),
                version: 3,
                permanent: false
            }
        );
        assert_eq!(decode(Some(&key), None), Err(DecodeError::Tombstone));
        assert!(decode(Some(&key), Some(br#"{"subject":"t","version":3}"#)).is_err());
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

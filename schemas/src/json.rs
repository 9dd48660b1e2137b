//! JSON → Avro, checked against the schema, with errors that name the field.
//!
//! Rules, applied recursively:
//! * a record accepts exactly its fields: an unknown field is an error, a missing field is an
//!   error unless the schema gives it a default (which is then used);
//! * `long`/`int` accept JSON integers in range (no fractions, no strings);
//! * `timestamp-millis` accepts an integer (ms since the epoch) or an RFC 3339 string;
//! * `uuid` accepts a UUID string in any standard form;
//! * a `["null", T]` union accepts `null` or a `T`; other unions take the first branch that
//!   accepts the value;
//! * enums accept one of their symbols.
//!
//! Errors carry the field path (`position_ms`, `lines[2].sku`, `tags.fr`) and the reason.
//!
//! The other way, [`AvroJson`] renders an Avro value as the JSON [`to_avro`] accepts back
//! (what `fleuve replay` writes): records as objects in field order, `["null", T]` unions
//! as `null` or the bare `T`, enums as their symbol, UUIDs as strings, `timestamp-millis`
//! as an RFC 3339 string in UTC with millisecond precision (`2026-11-22T10:00:00.5Z`).

use std::collections::HashMap;

use apache_avro::schema::UuidSchema;
use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::Value as Json;

/// Kept at its old path: replay and the end-to-end tests format timestamps with it.
pub use crate::clock::rfc3339_millis;
use crate::text::quoted;

/// A JSON document that does not match a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FieldError {
    /// Path of the offending field; empty for the document itself.
    pub field: String,
    pub reason: String,
}

/// Deepest nesting accepted, a guard against hostile documents.
pub const MAX_DEPTH: usize = 32;

/// Converts `json` to an Avro value of `schema`.
pub fn to_avro(schema: &Schema, json: &Json) -> Result<Value, FieldError> {
    convert(schema, json, &mut String::new(), 0)
}

fn err(path: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: if path.is_empty() {
            "(document)".to_owned()
        } else {
            path.to_owned()
        },
        reason: reason.into(),
    }
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Json::Number(_) => "a decimal number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn with_segment<T>(path: &mut String, segment: &str, f: impl FnOnce(&mut String) -> T) -> T {
    let len = path.len();
    if segment.starts_with('[') || path.is_empty() {
        path.push_str(segment);
    } else {
        path.push('.');
        path.push_str(segment);
    }
    let out = f(path);
    path.truncate(len);
    out
}

fn integer(json: &Json, path: &str, min: i64, max: i64, what: &str) -> Result<i64, FieldError> {
    match json {
        Json::Number(n) => match n.as_i64() {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            Some(_) => Err(err(path, format!("{n} is out of range for {what}"))),
            None if n.is_u64() => Err(err(path, format!("{n} is out of range for {what}"))),
            None => Err(err(path, format!("expected an integer ({what}), got {n}"))),
        },
        other => Err(err(
            path,
            format!("expected an integer ({what}), got {}", kind(other)),
        )),
    }
}

fn convert(
    schema: &Schema,
    json: &Json,
    path: &mut String,
    depth: usize,
) -> Result<Value, FieldError> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    match schema {
        Schema::Null => match json {
            Json::Null => Ok(Value::Null),
            other => Err(err(path, format!("expected null, got {}", kind(other)))),
        },
        Schema::Boolean => match json {
            Json::Bool(b) => Ok(Value::Boolean(*b)),
            other => Err(err(
                path,
                format!("expected a boolean, got {}", kind(other)),
            )),
        },
        Schema::Int => {
            let v = integer(json, path, i32::MIN.into(), i32::MAX.into(), "a 32-bit int")?;
            Ok(Value::Int(
                i32::try_from(v).map_err(|_| err(path, "out of range"))?,
            ))
        }
        Schema::Long => Ok(Value::Long(integer(
            json,
            path,
            i64::MIN,
            i64::MAX,
            "a 64-bit long",
        )?)),
        Schema::Float | Schema::Double => match json {
            Json::Number(n) => {
                let v = n.as_f64().ok_or_else(|| err(path, "not a finite number"))?;
                if matches!(schema, Schema::Float) {
                    // Rounds to the nearest `float`, as a `float` field holds it.
                    Ok(Value::Float(v as f32))
                } else {
                    Ok(Value::Double(v))
                }
            }
            other => Err(err(path, format!("expected a number, got {}", kind(other)))),
        },
        Schema::String => match json {
            Json::String(s) => Ok(Value::String(s.clone())),
            other => Err(err(path, format!("expected a string, got {}", kind(other)))),
        },
        Schema::Uuid(UuidSchema::String) => match json {
            Json::String(s) => uuid::Uuid::parse_str(s)
                .map(Value::Uuid)
                .map_err(|_| err(path, format!("`{}` is not a UUID", quoted(s)))),
            other => Err(err(
                path,
                format!("expected a UUID string, got {}", kind(other)),
            )),
        },
        Schema::TimestampMillis => match json {
            Json::String(s) => {
                let t =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| {
                            err(
                                path,
                                format!("`{}` is not an RFC 3339 timestamp", quoted(s)),
                            )
                        })?;
                let ms = t.unix_timestamp_nanos() / 1_000_000;
                Ok(Value::TimestampMillis(
                    i64::try_from(ms).map_err(|_| err(path, "timestamp out of range"))?,
                ))
            }
            other => Ok(Value::TimestampMillis(integer(
                other,
                path,
                i64::MIN,
                i64::MAX,
                "milliseconds since the Unix epoch",
            )?)),
        },
        Schema::Enum(e) => match json {
            Json::String(s) => match e.symbols.iter().position(|x| x == s) {
                Some(i) => Ok(Value::Enum(u32::try_from(i).unwrap_or(u32::MAX), s.clone())),
                None => Err(err(
                    path,
                    format!("`{}` is not one of {}", quoted(s), e.symbols.join(", ")),
                )),
            },
            other => Err(err(
                path,
                format!(
                    "expected one of {}, got {}",
                    e.symbols.join(", "),
                    kind(other)
                ),
            )),
        },
        Schema::Array(a) => match json {
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    with_segment(path, &format!("[{i}]"), |p| {
                        convert(&a.items, item, p, depth + 1)
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Err(err(path, format!("expected an array, got {}", kind(other)))),
        },
        Schema::Map(m) => match json {
            Json::Object(obj) => obj
                .iter()
                .map(|(k, v)| {
                    with_segment(path, k, |p| convert(&m.types, v, p, depth + 1))
                        .map(|v| (k.clone(), v))
                })
                .collect::<Result<HashMap<_, _>, _>>()
                .map(Value::Map),
            other => Err(err(
                path,
                format!("expected an object, got {}", kind(other)),
            )),
        },
        Schema::Union(u) => {
            let variants = u.variants();
            if json.is_null() {
                if let Some(i) = variants.iter().position(|s| matches!(s, Schema::Null)) {
                    return Ok(Value::Union(
                        u32::try_from(i).unwrap_or(0),
                        Box::new(Value::Null),
                    ));
                }
            }
            let non_null: Vec<(usize, &Schema)> = variants
                .iter()
                .enumerate()
                .filter(|(_, s)| !matches!(s, Schema::Null))
                .collect();
            let mut first_error = None;
            for (i, s) in &non_null {
                match convert(s, json, path, depth + 1) {
                    Ok(v) => return Ok(Value::Union(u32::try_from(*i).unwrap_or(0), Box::new(v))),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match (non_null.len(), first_error) {
                (1, Some(e)) => Err(e),
                _ => Err(err(
                    path,
                    format!("{} matches no branch of the union", kind(json)),
                )),
            }
        }
        Schema::Record(r) => {
            let Json::Object(obj) = json else {
                return Err(err(path, format!("expected an object, got {}", kind(json))));
            };
            if let Some(unknown) = obj.keys().find(|k| !r.lookup.contains_key(*k)) {
                return with_segment(path, unknown, |p| {
                    Err(err(
                        p,
                        format!("unknown field (not in schema {})", r.name.fullname(None)),
                    ))
                });
            }
            let mut fields = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let value = with_segment(path, &f.name, |p| match obj.get(&f.name) {
                    Some(v) => convert(&f.schema, v, p, depth + 1),
                    None => match &f.default {
                        Some(default) => convert(&f.schema, default, p, depth + 1),
                        None => Err(err(p, "required field is missing")),
                    },
                })?;
                fields.push((f.name.clone(), value));
            }
            Ok(Value::Record(fields))
        }
        other => Err(err(
            path,
            format!("schema type {other:?} is not accepted from JSON"),
        )),
    }
}

/// An Avro value rendered as JSON (by `serde`), in the shape [`to_avro`] accepts back.
///
/// ```
/// use apache_avro::types::Value;
/// let v = Value::Record(vec![
///     ("at".into(), Value::TimestampMillis(1_795_341_600_500)),
///     ("note".into(), Value::Union(1, Box::new(Value::String("hi".into())))),
/// ]);
/// let json = serde_json::to_string(&fleuve_schemas::json::AvroJson(&v)).unwrap();
/// assert_eq!(json, r#"{"at":"2026-11-22T10:00:00.5Z","note":"hi"}"#);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AvroJson<'a>(pub &'a Value);

/// [`AvroJson`] as a `serde_json` value.
pub fn to_json(value: &Value) -> Json {
    serde_json::to_value(AvroJson(value)).unwrap_or(Json::Null)
}

impl serde::Serialize for AvroJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Int(v) | Value::Date(v) | Value::TimeMillis(v) => s.serialize_i32(*v),
            Value::Long(v)
            | Value::TimeMicros(v)
            | Value::TimestampMicros(v)
            | Value::TimestampNanos(v)
            | Value::LocalTimestampMillis(v)
            | Value::LocalTimestampMicros(v)
            | Value::LocalTimestampNanos(v) => s.serialize_i64(*v),
            Value::TimestampMillis(ms) => match rfc3339_millis(*ms) {
                Some(text) => s.serialize_str(&text),
                None => s.serialize_i64(*ms),
            },
            Value::Float(v) => s.serialize_f32(*v),
            Value::Double(v) => s.serialize_f64(*v),
            Value::String(v) | Value::Enum(_, v) => s.serialize_str(v),
            Value::Uuid(u) => s.collect_str(u),
            Value::Bytes(b) | Value::Fixed(_, b) => s.collect_seq(b),
            Value::Union(_, inner) => AvroJson(inner).serialize(s),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&AvroJson(item))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, &AvroJson(v))?;
                }
                map.end()
            }
            Value::Record(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, &AvroJson(v))?;
                }
                map.end()
            }
            other => s.collect_str(&format_args!("{other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::parse_str(
            r#"{"type":"record","name":"T","namespace":"x","fields":[
                {"name":"id","type":{"type":"string","logicalType":"uuid"}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"n","type":"int"},
                {"name":"opt","type":["null","string"],"default":null},
                {"name":"kind","type":{"type":"enum","name":"K","symbols":["a","b"]}},
                {"name":"lines","type":{"type":"array","items":{"type":"record","name":"L","fields":[{"name":"sku","type":"string"}]}}},
                {"name":"tags","type":{"type":"map","values":"long"}}
            ]}"#,
        )
        .unwrap()
    }

    fn valid() -> Json {
        json!({"id":"0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11","at":"2026-11-22T10:00:00.5Z","n":3,
               "kind":"a","lines":[{"sku":"s1"}],"tags":{"fr":1}})
    }

    fn field_of(doc: Json) -> String {
        to_avro(&schema(), &doc).unwrap_err().field
    }

    #[test]
    fn accepts_a_valid_document_and_fills_defaults() {
        let Value::Record(fields) = to_avro(&schema(), &valid()).unwrap() else {
            panic!()
        };
        assert_eq!(
            fields[1],
            ("at".into(), Value::TimestampMillis(1_795_341_600_500))
        );
        assert_eq!(
            fields[3],
            ("opt".into(), Value::Union(0, Box::new(Value::Null)))
        );
    }

    #[test]
    fn names_the_failing_field() {
        let mut d = valid();
        d["lines"][0]["sku"] = json!(5);
        assert_eq!(field_of(d), "lines[0].sku");
        let mut d = valid();
        d["tags"]["fr"] = json!("x");
        assert_eq!(field_of(d), "tags.fr");
        let mut d = valid();
        d["n"] = json!(1u64 << 40);
        assert_eq!(field_of(d), "n");
        let mut d = valid();
        d["n"] = json!(1.5);
        assert_eq!(field_of(d), "n");
        let mut d = valid();
        d["kind"] = json!("z");
        assert_eq!(field_of(d), "kind");
        let mut d = valid();
        d["id"] = json!("not-a-uuid");
        assert_eq!(field_of(d), "id");
        let mut d = valid();
        d["surprise"] = json!(1);
        assert_eq!(field_of(d), "surprise");
        let mut d = valid();
        d.as_object_mut().unwrap().remove("n");
        let e = to_avro(&schema(), &d).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("n", "required field is missing")
        );
        assert_eq!(field_of(json!([1])), "(document)");
    }

    #[test]
    fn avro_rendered_as_json_is_accepted_back() {
        let v = to_avro(&schema(), &valid()).unwrap();
        let json = to_json(&v);
        assert_eq!(json["at"], json!("2026-11-22T10:00:00.5Z"));
        assert_eq!(json["opt"], Json::Null);
        assert_eq!(json["kind"], json!("a"));
        assert_eq!(to_avro(&schema(), &json).unwrap(), v);
    }

    #[test]
    fn converted_values_encode_with_the_schema() {
        let v = to_avro(&schema(), &valid()).unwrap();
        let schema = schema();
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap();
        let bytes = writer.write_value_to_vec(v).unwrap();
        assert!(!bytes.is_empty());
    }
}

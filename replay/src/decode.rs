//! Confluent-framed Avro → the current shape of a catalogue event.
//!
//! The writer schema comes from the registry by the frame's schema id (once per id); the
//! value is read with it and resolved to the event type's current schema (the reader
//! schema, `schemas/avro/`), so a record written with an older version shows the fields of
//! today's (a field added since with a default gets its default).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::Schema;
use fleuve_schemas::EventSpec;
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_id, SrSettings};

/// How one writer schema is read: the event type it is a version of and the datum reader
/// (writer schema, resolved to the current one when they differ).
pub(crate) struct Writer {
    pub spec: &'static EventSpec,
    reader: GenericDatumReader<'static>,
}

/// Readers built so far, by writer schema text. Schemas live for the whole process: a
/// process sees few distinct schema versions, so this stays small, and the readers can
/// borrow them without copying a schema per record.
static READERS: LazyLock<Mutex<HashMap<String, &'static Writer>>> = LazyLock::new(Mutex::default);

/// A record that is not a readable event.
#[derive(Debug, Clone)]
pub(crate) struct Undecodable(pub String);

/// The registry did not answer.
#[derive(Debug, Clone)]
pub(crate) struct RegistryDown(pub String);

/// Decodes records of one replay, caching the writer schemas by id.
pub(crate) struct Decoder {
    settings: SrSettings,
    handle: tokio::runtime::Handle,
    by_id: HashMap<u32, Result<&'static Writer, Undecodable>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("schemas", &self.by_id.len())
            .finish_non_exhaustive()
    }
}

impl Decoder {
    pub fn new(
        registry_url: &str,
        timeout: Duration,
        handle: tokio::runtime::Handle,
    ) -> Result<Self, RegistryDown> {
        let settings = SrSettings::new_builder(registry_url.to_owned())
            .set_timeout(timeout)
            .build()
            .map_err(|e| RegistryDown(e.to_string()))?;
        Ok(Self {
            settings,
            handle,
            by_id: HashMap::new(),
        })
    }

    /// Decodes a record value. Call from a thread outside the async runtime (it blocks on
    /// the registry the first time it sees a schema id).
    pub fn decode(
        &mut self,
        payload: Option<&[u8]>,
    ) -> Result<Result<(u32, &'static Writer, Value), Undecodable>, RegistryDown> {
        let Some(payload) = payload else {
            return Ok(Err(Undecodable("record has no value".into())));
        };
        let Some((id, mut body)) = frame(payload) else {
            return Ok(Err(Undecodable(
                "value is not in the Confluent wire format (magic byte 0 + 4-byte schema id)"
                    .into(),
            )));
        };
        let writer = match self.writer(id)? {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match writer.reader.read_value(&mut body) {
            Ok(value) => Ok((id, writer, value)),
            Err(e) => Err(Undecodable(format!(
                "cannot read it with schema id {id} as the current {}: {e}",
                writer.spec.name
            ))),
        })
    }

    fn writer(&mut self, id: u32) -> Result<Result<&'static Writer, Undecodable>, RegistryDown> {
        if let Some(cached) = self.by_id.get(&id) {
            return Ok(cached.clone());
        }
        let fetched = self.handle.block_on(get_schema_by_id(id, &self.settings));
        let outcome = match fetched {
            Ok(registered) => reader_for(id, &registered.schema),
            Err(e) if e.retriable => return Err(RegistryDown(e.to_string())),
            Err(e) => Err(Undecodable(format!(
                "schema id {id} is not in the registry: {e}"
            ))),
        };
        self.by_id.insert(id, outcome.clone());
        Ok(outcome)
    }
}

/// The schema id and the Avro body of a Confluent frame.
fn frame(payload: &[u8]) -> Option<(u32, &[u8])> {
    match payload {
        [0, a, b, c, d, body @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => None,
    }
}

fn reader_for(id: u32, text: &str) -> Result<&'static Writer, Undecodable> {
    let mut readers = READERS
        .lock()
        .map_err(|_| Undecodable("schema cache poisoned".into()))?;
    if let Some(w) = readers.get(text) {
        return Ok(*w);
    }
    let schema = Schema::parse_str(text)
        .map_err(|e| Undecodable(format!("schema id {id} is not valid Avro: {e}")))?;
    let full_name = match &schema {
        Schema::Record(r) => r.name.fullname(None),
        _ => String::new(),
    };
    let Some(spec) = fleuve_schemas::find_by_full_name(&full_name) else {
        return Err(Undecodable(format!(
            "schema id {id} is of `{full_name}`, which is not an event type of this platform"
        )));
    };
    let schema: &'static Schema = Box::leak(Box::new(schema));
    let same = schema.canonical_form() == spec.schema.canonical_form();
    let reader = GenericDatumReader::builder(schema)
        .maybe_reader_schema((!same).then_some(&spec.schema))
        .build()
        .map_err(|e| {
            Undecodable(format!(
                "schema id {id} cannot be read as the current {}: {e}",
                spec.name
            ))
        })?;
    let writer: &'static Writer = Box::leak(Box::new(Writer { spec, reader }));
    readers.insert(text.to_owned(), writer);
    Ok(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_version_is_read_in_the_current_shape() {
        let spec = fleuve_schemas::find("PlaybackProgressed").unwrap();
        // The current schema less `correlation_id` (optional, default null).
        let mut older: serde_json::Value = serde_json::from_str(spec.schema_json).unwrap();
        let fields = older["fields"].as_array_mut().unwrap();
        fields.retain(|f| f["name"] != "correlation_id");
        let older_text = older.to_string();
        let older_schema = Schema::parse_str(&older_text).unwrap();
        let value = Value::Record(vec![
            (
                "event_id".into(),
                Value::Uuid(uuid_v("0b5b1f6e-7a0b-4a53-9c0e-0d2f4e3b8a11")),
            ),
            ("occurred_at".into(), Value::TimestampMillis(1_000)),
            ("producer".into(), Value::String("p".into())),
            ("user_id".into(), Value::String("u".into())),
            ("content_id".into(), Value::String("c".into())),
            ("position_ms".into(), Value::Long(5)),
            ("duration_ms".into(), Value::Long(10)),
            ("device".into(), Value::String("web".into())),
        ]);
        let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(&older_schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        let writer = reader_for(7, &older_text).unwrap();
        assert_eq!(writer.spec.name, "PlaybackProgressed");
        let decoded = writer.reader.read_value(&mut bytes.as_slice()).unwrap();
        let json = fleuve_schemas::json::to_json(&decoded);
        assert_eq!(json["correlation_id"], serde_json::Value::Null);
        assert_eq!(json["occurred_at"], "1970-01-01T00:00:01Z");
        let back = fleuve_schemas::json::to_avro(&spec.schema, &json).unwrap();
        spec.check(&back).unwrap();
    }

    fn uuid_v(s: &str) -> apache_avro::Uuid {
        s.parse().unwrap()
    }

    #[test]
    fn frames_are_checked() {
        assert_eq!(frame(&[0, 0, 0, 1, 2, 9]), Some((258, &[9][..])));
        assert_eq!(frame(&[1, 0, 0, 1, 2, 9]), None);
        assert_eq!(frame(&[0, 0]), None);
    }
}

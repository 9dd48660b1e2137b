//! The replayed events as JSON lines or CSV.

use std::io::Write;

use apache_avro::types::Value;
use fleuve_schemas::json::{rfc3339_millis, AvroJson};
use serde::Serialize;

/// Output format of a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON object per line (see the crate docs for its fields).
    #[default]
    Jsonl,
    /// A header row, then one row per event: the envelope columns and the event as JSON.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            other => Err(format!("unknown format `{other}`: expected jsonl or csv")),
        }
    }
}

/// Columns of the CSV output, in order.
pub const CSV_COLUMNS: [&str; 8] = [
    "topic",
    "partition",
    "offset",
    "timestamp",
    "key",
    "type",
    "schema_id",
    "event",
];

/// One replayed event, as written.
#[derive(Debug, Serialize)]
pub(crate) struct Line<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka record timestamp, RFC 3339 (UTC); `null` when the record has none.
    pub timestamp: Option<String>,
    pub key: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub schema_id: u32,
    pub event: AvroJson<'a>,
}

impl<'a> Line<'a> {
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per field of a Kafka record"
    )]
    pub fn new(
        topic: &'a str,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        key: Option<&'a [u8]>,
        event_type: &'a str,
        schema_id: u32,
        event: &'a Value,
    ) -> Self {
        Self {
            topic,
            partition,
            offset,
            timestamp: timestamp_ms.and_then(rfc3339_millis),
            key: key.map(String::from_utf8_lossy),
            event_type,
            schema_id,
            event: AvroJson(event),
        }
    }
}

/// Where lines go.
pub(crate) enum Sink {
    Jsonl(Box<dyn Write + Send>),
    Csv(Box<csv::Writer<Box<dyn Write + Send>>>),
}

impl Sink {
    pub fn new(format: Format, out: Box<dyn Write + Send>) -> std::io::Result<Self> {
        Ok(match format {
            Format::Jsonl => Sink::Jsonl(out),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_COLUMNS).map_err(into_io)?;
                Sink::Csv(Box::new(w))
            }
        })
    }

    pub fn write(&mut self, line: &Line<'_>) -> std::io::Result<()> {
        match self {
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
                out.write_all(b"\n")
            }
            Sink::Csv(w) => {
                let event = serde_json::to_string(&line.event).map_err(std::io::Error::from)?;
                let partition = line.partition.to_string();
                let offset = line.offset.to_string();
                let schema_id = line.schema_id.to_string();
                w.write_record([
                    line.topic,
                    &partition,
                    &offset,
                    line.timestamp.as_deref().unwrap_or(""),
                    line.key.as_deref().unwrap_or(""),
                    line.event_type,
                    &schema_id,
                    &event,
                ])
                .map_err(into_io)
            }
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Jsonl(out) => out.flush(),
            Sink::Csv(w) => w.flush(),
        }
    }
}

fn into_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

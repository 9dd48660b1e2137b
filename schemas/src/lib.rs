//! The contract of every Fleuve event.
//!
//! * `avro/<topic>/<EventType>.avsc` (next to this crate) is the only definition of an event.
//!   The files are compiled in; [`catalog`] lists them with their topic and key field.
//! * [`json`] turns a JSON document into an Avro value of an event's schema, or says which
//!   field is wrong and why: the HTTP ingest service uses it so that nothing invalid reaches
//!   Kafka.
//! * [`PlaybackProgressed`] and the other event structs are the typed Rust view of the same
//!   records, convertible to and from Avro values.
//! * [`Envelope`]: the fields every event carries (`event_id`, `occurred_at`, `producer`,
//!   optional `correlation_id`).
//!
//! The wire format on Kafka is Confluent's (magic byte 0, 4-byte big-endian schema id, Avro
//! binary), with the subject named by TopicRecordNameStrategy: `<topic>-<record full name>`,
//! for example `user-activity-fleuve.user_activity.PlaybackProgressed`.
//!
//! ```
//! let spec = fleuve_schemas::find("PlaybackProgressed").unwrap();
//! assert_eq!(spec.topic, "user-activity");
//! assert_eq!(spec.subject(), "user-activity-fleuve.user_activity.PlaybackProgressed");
//! ```

mod catalog;
mod events;
pub mod json;

pub use catalog::{catalog, find, find_by_full_name, EventSpec};
pub use events::{Envelope, Event, EventError, PlaybackProgressed};

/// Checks an identifier (user id, content id, …): 1 to 128 bytes, no control characters.
/// Returns the reason when it is not acceptable.
pub fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        Err("must not be empty")
    } else if id.len() > MAX_ID_BYTES {
        Err("must be at most 128 bytes")
    } else if id.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

/// Longest identifier accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;

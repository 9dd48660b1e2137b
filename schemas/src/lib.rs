//! The contract of every Fleuve event.
//!
//! * `avro/<topic>/<EventType>.avsc` (next to this crate) is the only definition of an event.
//!   The files are compiled in; [`catalog`] lists them with their topic and key field.
//! * [`json`] turns a JSON document into an Avro value of an event's schema, or says which
//!   field is wrong and why: the HTTP ingest service uses it so that nothing invalid reaches
//!   Kafka.
//! * [`PlaybackProgressed`] and the other event structs ([`events`], one module per topic,
//!   all re-exported here) are the typed Rust view of the same records, convertible to and
//!   from Avro values; [`Event::validate`] holds each type's rules beyond the schema.
//! * [`Envelope`]: the fields every event carries (`event_id`, `occurred_at`, `producer`,
//!   optional `correlation_id`), first in every record.
//! * [`export`]: the records partners read from their export topics (`avro/export/`), which
//!   are not events.
//! * [`clock`]: milliseconds since the epoch (`now_ms`) and their RFC 3339 forms, and
//!   [`text::quoted`], user input as an error message quotes it (one copy for every crate).
//! * [`check_id`], [`check_country`], [`check_currency`]: the identifier, ISO 3166-1 alpha-2
//!   and ISO 4217 rules the events use, for anyone who needs them before building an event.
//!
//! # Event types
//!
//! | topic (key) | record namespace | event types |
//! | --- | --- | --- |
//! | `user-activity` (`user_id`) | `fleuve.user_activity` | [`PlaybackProgressed`], [`BookmarkAdded`], [`BookmarkRemoved`], [`UserDataErased`] |
//! | `catalog` (`content_id`) | `fleuve.catalog` | [`ContentUpserted`], [`ContentUnpublished`], [`ContentDeleted`] |
//! | `orders` (`order_id`) | `fleuve.orders` | [`OrderPlaced`], [`PaymentAuthorized`], [`PaymentFailed`], [`OrderShipped`], [`OrderDelivered`], [`OrderCancelled`] |
//! | `inventory` (`sku`) | `fleuve.inventory` | [`StockAdjusted`], [`StockReserved`], [`StockReleased`] |
//!
//! Money is a `long` in minor units with an ISO 4217 `currency`; countries and territories
//! are ISO 3166-1 alpha-2 codes. `schemas/README.md` explains the layout and how to add an
//! event type.
//!
//! The wire format on Kafka is Confluent's (magic byte 0, 4-byte big-endian schema id, Avro
//! binary), with the subject named by TopicRecordNameStrategy: `<topic>-<record full name>`,
//! for example `user-activity-fleuve.user_activity.PlaybackProgressed`.
//!
//! ```
//! let spec = fleuve_schemas::find("PlaybackProgressed").unwrap();
//! assert_eq!(spec.topic, "user-activity");
//! assert_eq!(spec.subject(), "user-activity-fleuve.user_activity.PlaybackProgressed");
//! assert_eq!(fleuve_schemas::find("OrderPlaced").unwrap().key_field, "order_id");
//! assert_eq!(fleuve_schemas::topics(), ["user-activity", "catalog", "orders", "inventory"]);
//! ```

pub mod clock;
mod codes;
pub mod events;
pub mod export;
pub mod json;
pub mod text;

pub use codes::{check_country, check_currency, COUNTRIES};
pub use events::catalog::{
    ContentDeleted, ContentKind, ContentUnpublished, ContentUpserted, DistributionRight,
};
pub use events::inventory::{StockAdjusted, StockAdjustmentReason, StockReleased, StockReserved};
pub use events::orders::{
    OrderCancelled, OrderDelivered, OrderLine, OrderPlaced, OrderShipped, PaymentAuthorized,
    PaymentFailed, ShippingAddress,
};
pub use events::specs::{catalog, find, find_by_full_name, topics, EventSpec};
pub use events::user_activity::{
    BookmarkAdded, BookmarkRemoved, ErasureReason, PlaybackProgressed, UserDataErased,
};
pub use events::{Envelope, Event, EventError};

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

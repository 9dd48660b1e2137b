//! How answers show values: a page of a list ([`ListView`]), money ([`Money`]), times
//! (RFC 3339 with milliseconds) and the schema of a string enum.

use axum::http::StatusCode;
use fleuve_projections::Page;
use fleuve_schemas::clock;
use fleuve_service::ApiError;
use schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// A page of a list as fronts see it: `{"items":[…],"next_cursor":…}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Page")]
pub(crate) struct ListView<T> {
    /// At most `limit` items (a programme's listing may hold fewer, even none, before its
    /// end: follow `next_cursor` until it is `null`).
    pub items: Vec<T>,
    /// Pass it unchanged as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListView<T> {
    /// Converts each item of a store page.
    pub fn try_from_page<R>(
        page: Page<R>,
        convert: impl FnMut(R) -> Result<T, ApiError>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            items: page
                .items
                .into_iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }
}

/// An amount of money: integer minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Money {
    /// The amount in minor units of the currency (cents of EUR: 4749 is 47.49 EUR).
    pub amount_minor: i64,
    /// ISO 4217 code, such as `EUR`.
    pub currency: String,
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds. An instant outside years
/// 0000 to 9999 is a stored row we cannot show: a 500, logged.
pub(crate) fn rfc3339_millis(ms: i64) -> Result<String, ApiError> {
    clock::rfc3339_millis_fixed(ms).ok_or_else(|| {
        tracing::error!(
            occurred_at_ms = ms,
            "stored row has an unrepresentable time"
        );
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("stored row has an out-of-range event time ({ms} ms)"),
        )
    })
}

/// [`rfc3339_millis`] for an availability-window edge, which a producer may set anywhere
/// (such as `i64::MAX` for "forever"): an instant outside years 0000 to 9999 is shown as
/// the nearest one RFC 3339 can write.
pub(crate) fn rfc3339_millis_clamped(ms: i64) -> Result<String, ApiError> {
    rfc3339_millis(ms.clamp(clock::RFC3339_MIN_MS, clock::RFC3339_MAX_MS))
}

/// The schema of a string that is one of `values`.
pub(crate) fn string_enum(values: impl IntoIterator<Item = &'static str>) -> Schema {
    let mut schema = Map::new();
    schema.insert("type".to_owned(), json!("string"));
    schema.insert(
        "enum".to_owned(),
        Value::Array(values.into_iter().map(Value::from).collect()),
    );
    Schema::from(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_with_millis() {
        assert_eq!(rfc3339_millis(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_714_594_503_120).unwrap(),
            "2024-05-01T20:15:03.120Z"
        );
        assert!(rfc3339_millis(i64::MAX).is_err());
        assert!(rfc3339_millis(-1)
            .unwrap()
            .starts_with("1969-12-31T23:59:59.999Z"));
        assert_eq!(
            rfc3339_millis(clock::RFC3339_MAX_MS).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339_millis(clock::RFC3339_MIN_MS).unwrap(),
            "0000-01-01T00:00:00.000Z"
        );
        assert!(rfc3339_millis(clock::RFC3339_MAX_MS + 1).is_err());
        assert!(rfc3339_millis(clock::RFC3339_MIN_MS - 1).is_err());
    }

    #[test]
    fn window_edges_are_clamped_to_what_rfc3339_writes() {
        assert_eq!(
            rfc3339_millis_clamped(i64::MAX).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339_millis_clamped(i64::MIN).unwrap(),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis_clamped(1_714_594_503_120).unwrap(),
            "2024-05-01T20:15:03.120Z"
        );
    }
}

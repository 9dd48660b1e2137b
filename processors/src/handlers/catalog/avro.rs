//! A direct decoder of `ContentUpserted` from its Avro value, the catalogue's most frequent
//! and largest event: [`Event::from_avro`](fleuve_schemas::Event::from_avro) goes through
//! serde (`apache_avro::from_value`), which was about a tenth of the processor's time.
//!
//! It reads the value shapes the schema gives (a record of its fields, `string` or `uuid`
//! strings, `long` or `timestamp-millis` numbers, `["null", T]` unions, the `ContentKind`
//! enum, arrays) and answers `None` for anything else, in which case the caller decodes with
//! `from_avro`, which then says what is wrong. When it answers, it gives what `from_avro`
//! gives (checked by the tests below on every shape it accepts).
//!
//! The readers of value shapes are shared with the `orders` handler's decoder.

use apache_avro::types::Value;
use fleuve_schemas::{ContentKind, ContentUpserted, DistributionRight};

/// The record's field `name`.
pub(in crate::handlers) fn field<'v>(
    fields: &'v [(String, Value)],
    name: &str,
) -> Option<&'v Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

pub(in crate::handlers) fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Uuid(u) => Some(u.to_string()),
        _ => None,
    }
}

pub(in crate::handlers) fn long(v: &Value) -> Option<i64> {
    match v {
        Value::Long(n) | Value::TimestampMillis(n) => Some(*n),
        _ => None,
    }
}

pub(in crate::handlers) fn int(v: &Value) -> Option<i32> {
    match v {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// A `["null", T]` union: `Some(None)` for null.
pub(in crate::handlers) fn optional<T>(
    v: &Value,
    inner: impl FnOnce(&Value) -> Option<T>,
) -> Option<Option<T>> {
    match v {
        Value::Union(_, x) if **x == Value::Null => Some(None),
        Value::Union(_, x) => inner(x).map(Some),
        _ => None,
    }
}

pub(in crate::handlers) fn array<T>(
    v: &Value,
    item: impl Fn(&Value) -> Option<T>,
) -> Option<Vec<T>> {
    match v {
        Value::Array(items) => items.iter().map(item).collect(),
        _ => None,
    }
}

fn kind(v: &Value) -> Option<ContentKind> {
    let symbol = match v {
        Value::Enum(_, s) | Value::String(s) => s.as_str(),
        _ => return None,
    };
    Some(match symbol {
        "PROGRAMME" => ContentKind::Programme,
        "SEASON" => ContentKind::Season,
        "EPISODE" => ContentKind::Episode,
        "CLIP" => ContentKind::Clip,
        _ => return None,
    })
}

fn right(v: &Value) -> Option<DistributionRight> {
    let Value::Record(f) = v else {
        return None;
    };
    Some(DistributionRight {
        partner: string(field(f, "partner")?)?,
        territories: array(field(f, "territories")?, string)?,
    })
}

/// The event, or `None` when the value is not of a shape this decoder reads.
pub(super) fn content_upserted(v: &Value) -> Option<ContentUpserted> {
    let Value::Record(f) = v else {
        return None;
    };
    Some(ContentUpserted {
        event_id: string(field(f, "event_id")?)?,
        occurred_at: long(field(f, "occurred_at")?)?,
        producer: string(field(f, "producer")?)?,
        correlation_id: optional(field(f, "correlation_id")?, string)?,
        content_id: string(field(f, "content_id")?)?,
        kind: kind(field(f, "kind")?)?,
        program_id: optional(field(f, "program_id")?, string)?,
        season_number: optional(field(f, "season_number")?, int)?,
        episode_number: optional(field(f, "episode_number")?, int)?,
        title: string(field(f, "title")?)?,
        description: optional(field(f, "description")?, string)?,
        tags: array(field(f, "tags")?, string)?,
        duration_ms: optional(field(f, "duration_ms")?, long)?,
        available_from: long(field(f, "available_from")?)?,
        available_until: optional(field(f, "available_until")?, long)?,
        rights: array(field(f, "rights")?, right)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleuve_schemas::Event;

    fn event(i: u8) -> ContentUpserted {
        ContentUpserted {
            event_id: format!("00000000-0000-4000-8000-0000000000{i:02}"),
            occurred_at: 1_790_000_000_000 + i64::from(i),
            producer: "cms".to_owned(),
            correlation_id: matches!(i % 2, 0).then(|| "corr-1".to_owned()),
            content_id: format!("c-{i}"),
            kind: [
                ContentKind::Programme,
                ContentKind::Season,
                ContentKind::Episode,
                ContentKind::Clip,
            ][usize::from(i % 4)],
            program_id: matches!(i % 4, 1..=3).then(|| "p-1".to_owned()),
            season_number: matches!(i % 4, 1..=3).then_some(2),
            episode_number: (i % 4 == 2).then_some(7),
            title: "Un \"titre\" — é".to_owned(),
            description: matches!(i % 3, 0).then(|| "desc\n".to_owned()),
            tags: (0..i % 3).map(|t| format!("tag{t}")).collect(),
            duration_ms: (i % 4 >= 2).then_some(60_000),
            available_from: 1_780_000_000_000,
            available_until: (i % 2 == 1).then_some(1_800_000_000_000),
            rights: (0..i % 3)
                .map(|r| DistributionRight {
                    partner: format!("isp-{r}"),
                    territories: vec!["FR".to_owned(), "BE".to_owned()],
                })
                .collect(),
        }
    }

    #[test]
    fn decodes_as_from_avro_does() {
        for i in 0..12 {
            let value = event(i).to_avro().unwrap();
            let fast = content_upserted(&value).expect("the schema's shapes are read");
            assert_eq!(fast, ContentUpserted::from_avro(&value).unwrap());
            assert_eq!(fast, event(i));
        }
    }

    #[test]
    fn other_shapes_are_left_to_from_avro() {
        let mut value = event(1).to_avro().unwrap();
        let Value::Record(fields) = &mut value else {
            panic!("a record")
        };
        // A missing field, and a field of another type.
        let mut missing = fields.clone();
        missing.retain(|(n, _)| n != "title");
        assert_eq!(content_upserted(&Value::Record(missing)), None);
        for (n, v) in fields.iter_mut() {
            if n == "season_number" {
                *v = Value::Int(3);
            }
        }
        assert_eq!(content_upserted(&value), None);
        assert_eq!(content_upserted(&Value::Null), None);
    }
}

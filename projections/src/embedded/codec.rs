//! Value and cursor encodings of the embedded store.
//!
//! * A row value is one format byte ([`ROW_FORMAT_V1`]) followed by a JSON object of the
//!   columns that are not in the key (`user_id` and `content_id` are). JSON keeps the
//!   values readable with any tool and lets later formats add fields; the format byte lets
//!   a later release change the encoding (e.g. to a binary one) and still read old rows.
//!   A row is about 120 bytes.
//! * A checkpoint value is one format byte ([`CHECKPOINT_FORMAT_V1`]) followed by
//!   `next_offset` as 8 big-endian bytes.
//! * A cursor is base64url (no padding) of: one format byte ([`CURSOR_FORMAT_V1`]), the
//!   `progress_recent` key of the last item returned, and a 64-bit FNV-1a checksum of
//!   both. The checksum is not a secret (cursors are not authorization), it only makes a
//!   truncated or hand-edited cursor fail loudly instead of silently skipping rows.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys;
use crate::{EventVersion, Progress, StoreError};

pub(crate) const ROW_FORMAT_V1: u8 = 1;
pub(crate) const CHECKPOINT_FORMAT_V1: u8 = 1;
pub(crate) const CURSOR_FORMAT_V1: u8 = 1;

#[derive(Serialize, Deserialize)]
struct RowV1<'a> {
    position_ms: i64,
    duration_ms: i64,
    #[serde(borrow)]
    device: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event_id: std::borrow::Cow<'a, str>,
    occurred_at_ms: i64,
    offset: i64,
}

pub(crate) fn encode_row(p: &Progress) -> Result<Vec<u8>, StoreError> {
    let row = RowV1 {
        position_ms: p.position_ms,
        duration_ms: p.duration_ms,
        device: p.device.as_str().into(),
        event_id: p.event_id.as_str().into(),
        occurred_at_ms: p.version.occurred_at_ms,
        offset: p.version.offset,
    };
    let mut out = Vec::with_capacity(128);
    out.push(ROW_FORMAT_V1);
    serde_json::to_writer(&mut out, &row)
        .map_err(|e| StoreError::Backend(format!("could not encode a progress row: {e}")))?;
    Ok(out)
}

pub(crate) fn decode_row(
    key: &[u8],
    user_id: &str,
    content_id: &str,
    value: &[u8],
) -> Result<Progress, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: keys::display_key(key),
        reason,
    };
    match value.split_first() {
        Some((&ROW_FORMAT_V1, json)) => {
            let row: RowV1<'_> = serde_json::from_slice(json)
                .map_err(|e| corrupt(format!("undecodable progress row: {e}")))?;
            Ok(Progress {
                user_id: user_id.to_owned(),
                content_id: content_id.to_owned(),
                position_ms: row.position_ms,
                duration_ms: row.duration_ms,
                device: row.device.into_owned(),
                event_id: row.event_id.into_owned(),
                version: EventVersion {
                    occurred_at_ms: row.occurred_at_ms,
                    offset: row.offset,
                },
            })
        }
        Some((other, _)) => Err(corrupt(format!("unknown row format version {other}"))),
        None => Err(corrupt("empty row value".into())),
    }
}

pub(crate) fn encode_checkpoint(next_offset: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(CHECKPOINT_FORMAT_V1);
    out.extend_from_slice(&next_offset.to_be_bytes());
    out
}

pub(crate) fn decode_checkpoint(key: &[u8], value: &[u8]) -> Result<i64, StoreError> {
    match value.split_first() {
        Some((&CHECKPOINT_FORMAT_V1, rest)) => match <[u8; 8]>::try_from(rest) {
            Ok(b) => Ok(i64::from_be_bytes(b)),
            Err(_) => Err(StoreError::Corrupt {
                key: keys::display_key(key),
                reason: format!("checkpoint value has {} bytes, expected 9", value.len()),
            }),
        },
        Some((other, _)) => Err(StoreError::Corrupt {
            key: keys::display_key(key),
            reason: format!("unknown checkpoint format version {other}"),
        }),
        None => Err(StoreError::Corrupt {
            key: keys::display_key(key),
            reason: "empty checkpoint value".into(),
        }),
    }
}

fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

pub(crate) fn encode_cursor(recent_key: &[u8]) -> String {
    let mut raw = Vec::with_capacity(recent_key.len() + 9);
    raw.push(CURSOR_FORMAT_V1);
    raw.extend_from_slice(recent_key);
    raw.extend_from_slice(&fnv1a64(&[&[CURSOR_FORMAT_V1], recent_key]).to_be_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a cursor into the `progress_recent` key it points after, checking that it is
/// intact and belongs to `user_id`'s list.
pub(crate) fn decode_cursor(cursor: &str, user_id: &str) -> Result<Vec<u8>, StoreError> {
    let invalid = |why: &str| {
        StoreError::InvalidCursor(format!(
            "{why}; pass the `next_cursor` of the previous page unchanged, or no cursor for the first page"
        ))
    };
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| invalid("not a cursor issued by this store (bad encoding)"))?;
    let (&format, rest) = raw.split_first().ok_or_else(|| invalid("empty cursor"))?;
    if format != CURSOR_FORMAT_V1 {
        return Err(invalid("unknown cursor format"));
    }
    let (key, sum) = rest
        .split_last_chunk::<8>()
        .ok_or_else(|| invalid("truncated cursor"))?;
    if u64::from_be_bytes(*sum) != fnv1a64(&[&[format], key]) {
        return Err(invalid("damaged cursor (checksum mismatch)"));
    }
    let parsed = keys::parse_recent_key(key).ok_or_else(|| invalid("malformed cursor"))?;
    if parsed.user_id != user_id {
        return Err(invalid("this cursor belongs to another user's list"));
    }
    Ok(key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_tampering() {
        let key = keys::recent_key("u1", 1_700_000_000_000, "c/9");
        let c = encode_cursor(&key);
        assert_eq!(decode_cursor(&c, "u1").unwrap(), key);
        assert!(matches!(
            decode_cursor(&c, "u2"),
            Err(StoreError::InvalidCursor(_))
        ));
        for bad in ["", "!!!", "AAAA", &c[..c.len() - 2], &format!("{c}A")] {
            assert!(
                matches!(decode_cursor(bad, "u1"), Err(StoreError::InvalidCursor(_))),
                "{bad:?} accepted"
            );
        }
        // Flip one bit of the key inside a well-formed cursor.
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        raw[10] ^= 1;
        assert!(matches!(
            decode_cursor(&URL_SAFE_NO_PAD.encode(raw), "u1"),
            Err(StoreError::InvalidCursor(_))
        ));
    }

    #[test]
    fn row_round_trips_and_rejects_unknown_format() {
        let p = Progress {
            user_id: "u".into(),
            content_id: "c".into(),
            position_ms: 1,
            duration_ms: 2,
            device: "tv".into(),
            event_id: "e".into(),
            version: EventVersion {
                occurred_at_ms: 3,
                offset: 4,
            },
        };
        let v = encode_row(&p).unwrap();
        assert_eq!(decode_row(b"k", "u", "c", &v).unwrap(), p);
        let mut other = v.clone();
        other[0] = 9;
        assert!(matches!(
            decode_row(b"k", "u", "c", &other),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_row(b"k", "u", "c", &v[..v.len() - 1]),
            Err(StoreError::Corrupt { .. })
        ));
    }
}

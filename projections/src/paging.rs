//! Lists read page by page with opaque cursors, and the clustering-key encodings the read
//! models sort by.
//!
//! A cursor is base64url (no padding) of: one format byte (`CURSOR_FORMAT_V1`), the
//! length-prefixed table and partition it belongs to, the clustering key of the last item
//! returned, and a 64-bit FNV-1a checksum of all that. The checksum is not a secret (cursors
//! are not authorization); it makes a truncated or hand-edited cursor fail loudly instead
//! of silently skipping rows, and a cursor of one list is refused by another.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::model::{Page, PageRequest};
use crate::store::{Row, Store, StoreError};

const CURSOR_FORMAT_V1: u8 = 1;

/// Reads one page of partition `pk` of `table`, in clustering order, decoding each row.
pub async fn page<T>(
    store: &dyn Store,
    table: &str,
    pk: &str,
    request: &PageRequest,
    mut decode: impl FnMut(Row) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let after = match request.cursor.as_deref() {
        Some(c) => Some(decode_cursor(c, table, pk)?),
        None => None,
    };
    if request.limit == 0 {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let mut rows = store
        .scan(table, pk, after.as_deref(), request.limit.saturating_add(1))
        .await?;
    let has_more = rows.len() > request.limit;
    rows.truncate(request.limit);
    let next_cursor = match (has_more, rows.last()) {
        (true, Some(last)) => Some(encode_cursor(table, pk, &last.ck)),
        _ => None,
    };
    let items = rows
        .into_iter()
        .map(&mut decode)
        .collect::<Result<_, _>>()?;
    Ok(Page { items, next_cursor })
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn take_str(buf: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (s, rest) = rest.split_at(len);
    Some((std::str::from_utf8(s).ok()?, rest))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The cursor pointing after row `ck` of a list.
pub fn encode_cursor(table: &str, pk: &str, ck: &str) -> String {
    let mut raw = Vec::with_capacity(table.len() + pk.len() + ck.len() + 17);
    raw.push(CURSOR_FORMAT_V1);
    put_str(&mut raw, table);
    put_str(&mut raw, pk);
    raw.extend_from_slice(ck.as_bytes());
    let sum = fnv1a64(&raw);
    raw.extend_from_slice(&sum.to_be_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

/// The clustering key a cursor points after, checking it is intact and belongs to this list.
pub fn decode_cursor(cursor: &str, table: &str, pk: &str) -> Result<String, StoreError> {
    let invalid = |why: &str| {
        StoreError::InvalidCursor(format!(
            "{why}; pass the `next_cursor` of the previous page unchanged, or no cursor for the first page"
        ))
    };
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| invalid("not a cursor issued by this service (bad encoding)"))?;
    let (body, sum) = raw
        .split_last_chunk::<8>()
        .ok_or_else(|| invalid("truncated cursor"))?;
    if u64::from_be_bytes(*sum) != fnv1a64(body) {
        return Err(invalid("damaged cursor (checksum mismatch)"));
    }
    let (&format, rest) = body.split_first().ok_or_else(|| invalid("empty cursor"))?;
    if format != CURSOR_FORMAT_V1 {
        return Err(invalid("unknown cursor format"));
    }
    let (t, rest) = take_str(rest).ok_or_else(|| invalid("malformed cursor"))?;
    let (p, ck) = take_str(rest).ok_or_else(|| invalid("malformed cursor"))?;
    if t != table || p != pk {
        return Err(invalid("this cursor belongs to another list"));
    }
    std::str::from_utf8(ck)
        .map(str::to_owned)
        .map_err(|_| invalid("malformed cursor"))
}

/// 16 hex digits that sort like `v` (sign bit flipped, big-endian).
pub fn asc_i64(v: i64) -> String {
    format!("{:016x}", (v as u64) ^ (1 << 63))
}

/// 16 hex digits that sort in the opposite order of `v` (newest first for times).
pub fn desc_i64(v: i64) -> String {
    format!("{:016x}", !((v as u64) ^ (1 << 63)))
}

/// 8 hex digits that sort like `v`.
pub fn asc_i32(v: i32) -> String {
    format!("{:08x}", (v as u32) ^ (1 << 31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_tampering() {
        let c = encode_cursor("progress", "u1", "c/9");
        assert_eq!(decode_cursor(&c, "progress", "u1").unwrap(), "c/9");
        assert!(matches!(
            decode_cursor(&c, "progress", "u2"),
            Err(StoreError::InvalidCursor(_))
        ));
        assert!(matches!(
            decode_cursor(&c, "bookmarks", "u1"),
            Err(StoreError::InvalidCursor(_))
        ));
        for bad in ["", "!!!", "AAAA", &c[..c.len() - 2], &format!("{c}A")] {
            assert!(
                matches!(
                    decode_cursor(bad, "progress", "u1"),
                    Err(StoreError::InvalidCursor(_))
                ),
                "{bad:?} accepted"
            );
        }
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        raw[10] ^= 1;
        assert!(matches!(
            decode_cursor(&URL_SAFE_NO_PAD.encode(raw), "progress", "u1"),
            Err(StoreError::InvalidCursor(_))
        ));
    }

    #[test]
    fn encodings_sort_like_their_numbers() {
        let values = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in values.windows(2) {
            assert!(asc_i64(w[0]) < asc_i64(w[1]));
            assert!(desc_i64(w[0]) > desc_i64(w[1]));
        }
        for w in [i32::MIN, -1, 0, 1, 9, 10, i32::MAX].windows(2) {
            assert!(asc_i32(w[0]) < asc_i32(w[1]));
        }
    }
}

//! Key layout of the embedded store.
//!
//! Every string component is written as a 4-byte big-endian length followed by its UTF-8
//! bytes, so no id can collide with another whatever characters it holds (`"a\0b"`, `"a/b"`,
//! `"é"`…), and `lp(user_id)` is a prefix of exactly that user's keys and no other's.
//!
//! | keyspace | key | value |
//! | --- | --- | --- |
//! | `progress` | `lp(user) lp(content)` | [`super::codec`] row |
//! | `progress_recent` | `lp(user) desc(occurred_at_ms) lp(content)` | empty |
//! | `checkpoints` | `lp(projection) lp(topic) ord(partition)` | version byte + `next_offset` |
//!
//! `ord(i)` maps a signed integer to big-endian bytes that sort like the integer (sign bit
//! flipped); `desc(i)` is its bitwise complement, so that newer rows sort first.

/// Appends a length-prefixed string.
fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Ids are bounded far below 4 GiB (fjall keys are at most 64 KiB anyway).
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Reads a length-prefixed string at the start of `buf`, returning it and the rest.
fn take_str(buf: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (s, rest) = rest.split_at(len);
    Some((std::str::from_utf8(s).ok()?, rest))
}

fn ord_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn unord_i64(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

fn ord_i32(v: i32) -> [u8; 4] {
    ((v as u32) ^ (1 << 31)).to_be_bytes()
}

/// Key of a row in `progress`.
pub(crate) fn row_key(user_id: &str, content_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + user_id.len() + content_id.len());
    put_str(&mut k, user_id);
    put_str(&mut k, content_id);
    k
}

/// Prefix shared by all the index entries (and rows) of one user.
pub(crate) fn user_prefix(user_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + user_id.len());
    put_str(&mut k, user_id);
    k
}

/// Key of a row's entry in `progress_recent` (most recent first).
pub(crate) fn recent_key(user_id: &str, occurred_at_ms: i64, content_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + user_id.len() + content_id.len());
    put_str(&mut k, user_id);
    let desc = ord_i64(occurred_at_ms).map(|b| !b);
    k.extend_from_slice(&desc);
    put_str(&mut k, content_id);
    k
}

/// A decoded `progress_recent` key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RecentKey<'a> {
    pub user_id: &'a str,
    pub occurred_at_ms: i64,
    pub content_id: &'a str,
}

/// Decodes a `progress_recent` key; `None` unless the bytes are exactly one such key.
pub(crate) fn parse_recent_key(key: &[u8]) -> Option<RecentKey<'_>> {
    let (user_id, rest) = take_str(key)?;
    let (desc, rest) = rest.split_first_chunk::<8>()?;
    let occurred_at_ms = unord_i64(desc.map(|b| !b));
    let (content_id, rest) = take_str(rest)?;
    rest.is_empty().then_some(RecentKey {
        user_id,
        occurred_at_ms,
        content_id,
    })
}

/// Key of a checkpoint.
pub(crate) fn checkpoint_key(projection: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + projection.len() + topic.len());
    put_str(&mut k, projection);
    put_str(&mut k, topic);
    k.extend_from_slice(&ord_i32(partition));
    k
}

/// A printable form of a key for error messages.
pub(crate) fn display_key(key: &[u8]) -> String {
    key.iter()
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(*b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_do_not_collide() {
        assert_ne!(row_key("a\0b", "c"), row_key("a", "b\0c"));
        assert_ne!(row_key("a", "bc"), row_key("ab", "c"));
        assert_ne!(
            checkpoint_key("p", "t\0\0\0\x01", 1),
            checkpoint_key("p\0\0\0\x01t", "", 1)
        );
        // One user's prefix never prefixes another user's keys.
        assert!(!row_key("ab", "c").starts_with(&user_prefix("a")));
        assert!(!recent_key("ab", 5, "c").starts_with(&user_prefix("a")));
    }

    #[test]
    fn recent_keys_sort_newest_first_and_round_trip() {
        let times = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let mut keys: Vec<Vec<u8>> = times.iter().map(|t| recent_key("u", *t, "c")).collect();
        keys.sort();
        let decoded: Vec<i64> = keys
            .iter()
            .map(|k| parse_recent_key(k).map(|r| r.occurred_at_ms))
            .collect::<Option<_>>()
            .unwrap();
        let mut expected = times.to_vec();
        expected.reverse();
        assert_eq!(decoded, expected);
        let k = recent_key("ü\0", 42, "日本/é");
        assert_eq!(
            parse_recent_key(&k),
            Some(RecentKey {
                user_id: "ü\0",
                occurred_at_ms: 42,
                content_id: "日本/é"
            })
        );
        let mut trailing = k.clone();
        trailing.push(0);
        assert_eq!(parse_recent_key(&trailing), None);
        assert_eq!(parse_recent_key(&k[..k.len() - 1]), None);
    }

    #[test]
    fn partitions_sort_numerically() {
        assert!(checkpoint_key("p", "t", -1) < checkpoint_key("p", "t", 0));
        assert!(checkpoint_key("p", "t", 9) < checkpoint_key("p", "t", 10));
    }
}

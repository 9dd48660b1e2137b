//! Key layout of the embedded store.
//!
//! Table names, partition keys, projection and topic names are written as a 4-byte
//! big-endian length followed by their UTF-8 bytes, so no id can collide with another
//! whatever characters it holds (`"a\0b"`, `"a/b"`, `"é"`…), and `lp(table) lp(pk)` is a
//! prefix of exactly that partition's rows. The clustering key comes last, raw, so rows of
//! a partition sort by `ck` bytes, as the store contract says.
//!
//! | keyspace | key | value |
//! | --- | --- | --- |
//! | `rows` | `lp(table) lp(pk) ck` | the row's value, as given |
//! | `checkpoints` | `lp(projection) lp(topic) ord(partition)` | version byte + `next_offset` |
//! | `meta` | `format` | the layout version ([`super::codec::LAYOUT_VERSION`]) |
//!
//! `ord(i)` maps a signed integer to big-endian bytes that sort like the integer (sign bit
//! flipped).

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

fn ord_i32(v: i32) -> [u8; 4] {
    ((v as u32) ^ (1 << 31)).to_be_bytes()
}

fn unord_i32(b: [u8; 4]) -> i32 {
    (u32::from_be_bytes(b) ^ (1 << 31)) as i32
}

/// Prefix of every row of a table.
pub(crate) fn table_prefix(table: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + table.len());
    put_str(&mut k, table);
    k
}

/// Prefix of every row of one partition.
pub(crate) fn partition_prefix(table: &str, pk: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + table.len() + pk.len());
    put_str(&mut k, table);
    put_str(&mut k, pk);
    k
}

/// Key of a row.
pub(crate) fn row_key(table: &str, pk: &str, ck: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + table.len() + pk.len() + ck.len());
    row_key_into(&mut k, table, pk, ck);
    k
}

/// [`row_key`] into a reused buffer (cleared first).
pub(crate) fn row_key_into(k: &mut Vec<u8>, table: &str, pk: &str, ck: &str) {
    k.clear();
    push_row_key(k, table, pk, ck);
}

/// Appends [`row_key`] to `k`.
pub(crate) fn push_row_key(k: &mut Vec<u8>, table: &str, pk: &str, ck: &str) {
    put_str(k, table);
    put_str(k, pk);
    k.extend_from_slice(ck.as_bytes());
}

/// A decoded row key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RowKey<'a> {
    pub table: &'a str,
    pub pk: &'a str,
    pub ck: &'a str,
}

/// Decodes a row key; `None` unless the bytes are one.
pub(crate) fn parse_row_key(key: &[u8]) -> Option<RowKey<'_>> {
    let (table, rest) = take_str(key)?;
    let (pk, rest) = take_str(rest)?;
    Some(RowKey {
        table,
        pk,
        ck: std::str::from_utf8(rest).ok()?,
    })
}

/// Prefix of every checkpoint of a projection.
pub(crate) fn projection_prefix(projection: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + projection.len());
    put_str(&mut k, projection);
    k
}

/// Key of a checkpoint.
pub(crate) fn checkpoint_key(projection: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + projection.len() + topic.len());
    put_str(&mut k, projection);
    put_str(&mut k, topic);
    k.extend_from_slice(&ord_i32(partition));
    k
}

/// Decodes a checkpoint key into (projection, topic, partition).
pub(crate) fn parse_checkpoint_key(key: &[u8]) -> Option<(&str, &str, i32)> {
    let (projection, rest) = take_str(key)?;
    let (topic, rest) = take_str(rest)?;
    let partition = <[u8; 4]>::try_from(rest).ok().map(unord_i32)?;
    Some((projection, topic, partition))
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
        assert_ne!(row_key("t", "a\0b", "c"), row_key("t", "a", "b\0c"));
        assert_ne!(row_key("t", "a", "bc"), row_key("t", "ab", "c"));
        assert_ne!(
            checkpoint_key("p", "t\0\0\0\x01", 1),
            checkpoint_key("p\0\0\0\x01t", "", 1)
        );
        // One partition's prefix never prefixes another partition's rows.
        assert!(!row_key("t", "ab", "c").starts_with(&partition_prefix("t", "a")));
        assert!(!row_key("tt", "a", "c").starts_with(&table_prefix("t")));
    }

    #[test]
    fn keys_round_trip() {
        let k = row_key("tbl", "ü\0", "日本/é");
        assert_eq!(
            parse_row_key(&k),
            Some(RowKey {
                table: "tbl",
                pk: "ü\0",
                ck: "日本/é"
            })
        );
        let c = checkpoint_key("p", "topic", -3);
        assert_eq!(parse_checkpoint_key(&c), Some(("p", "topic", -3)));
        assert_eq!(parse_checkpoint_key(&c[..c.len() - 1]), None);
    }

    #[test]
    fn clustering_keys_sort_as_bytes_and_partitions_numerically() {
        assert!(row_key("t", "p", "a") < row_key("t", "p", "ab"));
        assert!(row_key("t", "p", "ab") < row_key("t", "p", "b"));
        assert!(checkpoint_key("p", "t", -1) < checkpoint_key("p", "t", 0));
        assert!(checkpoint_key("p", "t", 9) < checkpoint_key("p", "t", 10));
    }
}

//! Value encodings of the embedded store.
//!
//! * A row value is stored as the caller gave it.
//! * A checkpoint value is one format byte ([`CHECKPOINT_FORMAT_V1`]) followed by
//!   `next_offset` as 8 big-endian bytes.
//! * The `meta` keyspace records the layout version ([`LAYOUT_VERSION`]), so that a later
//!   release can tell an older directory apart instead of misreading it.

use super::keys;
use crate::store::StoreError;

pub(crate) const CHECKPOINT_FORMAT_V1: u8 = 1;
/// Version of the key layout described in `keys.rs`.
pub(crate) const LAYOUT_VERSION: &[u8] = b"2";

pub(crate) fn encode_checkpoint(next_offset: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(CHECKPOINT_FORMAT_V1);
    out.extend_from_slice(&next_offset.to_be_bytes());
    out
}

pub(crate) fn decode_checkpoint(key: &[u8], value: &[u8]) -> Result<i64, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: keys::display_key(key),
        reason,
    };
    match value.split_first() {
        Some((&CHECKPOINT_FORMAT_V1, rest)) => match <[u8; 8]>::try_from(rest) {
            Ok(b) => Ok(i64::from_be_bytes(b)),
            Err(_) => Err(corrupt(format!(
                "checkpoint value has {} bytes, expected 9",
                value.len()
            ))),
        },
        Some((other, _)) => Err(corrupt(format!(
            "unknown checkpoint format version {other}"
        ))),
        None => Err(corrupt("empty checkpoint value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_garbage() {
        let v = encode_checkpoint(-7);
        assert_eq!(decode_checkpoint(b"k", &v).unwrap(), -7);
        assert!(decode_checkpoint(b"k", &v[..5]).is_err());
        assert!(decode_checkpoint(b"k", &[9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_checkpoint(b"k", &[]).is_err());
    }
}

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Where an event landed in Kafka.
///
/// Its [`token`](Position::token) is the opaque string a producer hands to a front; the query
/// API parses it back with [`Position::from_str`] to wait until a projection has passed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A position token that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position token: {reason}")]
pub struct PositionError {
    reason: &'static str,
}

const TOKEN_VERSION: &str = "p1";

impl Position {
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        Self {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    /// The opaque token form (URL-safe, no padding). Clients must not parse it.
    pub fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{TOKEN_VERSION}|{}|{}|{}",
            self.topic, self.partition, self.offset
        ))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token())
    }
}

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        let err = |reason| PositionError { reason };
        if token.len() > 512 {
            return Err(err("longer than 512 characters"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| err("not URL-safe base64"))?;
        let raw = String::from_utf8(raw).map_err(|_| err("not UTF-8"))?;
        let mut parts = raw.split('|');
        if parts.next() != Some(TOKEN_VERSION) {
            return Err(err("unknown token version"));
        }
        let (Some(topic), Some(partition), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("wrong number of fields"));
        };
        if topic.is_empty() {
            return Err(err("empty topic"));
        }
        let partition: i32 = partition.parse().map_err(|_| err("bad partition"))?;
        let offset: i64 = offset.parse().map_err(|_| err("bad offset"))?;
        if partition < 0 || offset < 0 {
            return Err(err("negative partition or offset"));
        }
        Ok(Position::new(topic, partition, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        let p = Position::new("user-activity", 2, 12345);
        assert_eq!(p.token().parse::<Position>(), Ok(p));
    }

    #[test]
    fn garbage_tokens_are_rejected_with_a_reason() {
        for bad in [
            "",
            "!!!",
            "cDF8dXNlci1hY3Rpdml0eQ",
            &URL_SAFE_NO_PAD.encode("p2|t|0|1"),
            &URL_SAFE_NO_PAD.encode("p1|t|x|1"),
            &URL_SAFE_NO_PAD.encode("p1|t|0|-1"),
            &URL_SAFE_NO_PAD.encode("p1||0|1"),
            &URL_SAFE_NO_PAD.encode("p1|t|0|1|9"),
        ] {
            let e = bad.parse::<Position>().unwrap_err();
            assert!(e.to_string().starts_with("invalid position token"), "{bad}");
        }
    }
}

//! `--from` / `--to`: a time, a date, an offset, or offsets per partition.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;

/// One end of a replay range.
///
/// `from` is inclusive and `to` exclusive: `[from, to)`, whether they are times or offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// An instant, milliseconds since the Unix epoch: per partition, the first record whose
    /// Kafka timestamp is at or after it, or the partition's end when every record is older
    /// ([`fleuve_kafka::time::offsets_at`]: the broker's offsets-for-times, checked).
    Time(i64),
    /// The same offset in every partition.
    Offset(i64),
    /// Offsets of some partitions (`0:120,2:75`); the others keep the default bound (the
    /// beginning for `from`, the end for `to`).
    Partitions(BTreeMap<i32, i64>),
}

/// The formats `--from` and `--to` accept, for error messages.
pub const ACCEPTED: &str =
    "an RFC 3339 time (2026-11-22T10:00:00Z, 2026-11-22T10:00:00.250+01:00), \
     a date (2026-11-22, midnight UTC), an offset in every partition (1500) or offsets per \
     partition (0:1500,2:80)";

/// A `--from` / `--to` value that is none of the accepted formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a time or an offset: expected {ACCEPTED}")]
pub struct BadBound {
    pub value: String,
}

impl FromStr for Bound {
    type Err = BadBound;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || BadBound {
            value: s.to_owned(),
        };
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Bound::Offset).map_err(|_| bad());
        }
        if s.contains(':')
            && s.split(',')
                .all(|p| p.split_once(':').is_some_and(is_offset_pair))
        {
            let mut map = BTreeMap::new();
            for pair in s.split(',') {
                let (p, o) = pair.split_once(':').ok_or_else(bad)?;
                map.insert(
                    p.trim().parse().map_err(|_| bad())?,
                    o.trim().parse().map_err(|_| bad())?,
                );
            }
            return Ok(Bound::Partitions(map));
        }
        if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
            return millis(t).map(Bound::Time).ok_or_else(bad);
        }
        // Lower-case `t`/`z` and a space instead of `T` are common in hand-typed times.
        let upper = s.replacen(' ', "T", 1).to_ascii_uppercase();
        if let Ok(t) = time::OffsetDateTime::parse(&upper, &Rfc3339) {
            return millis(t).map(Bound::Time).ok_or_else(bad);
        }
        if let Some(d) = date(s) {
            return millis(d.midnight().assume_utc())
                .map(Bound::Time)
                .ok_or_else(bad);
        }
        Err(bad())
    }
}

fn is_offset_pair((p, o): (&str, &str)) -> bool {
    let digits = |x: &str| !x.trim().is_empty() && x.trim().bytes().all(|b| b.is_ascii_digit());
    digits(p) && digits(o)
}

/// `YYYY-MM-DD`.
fn date(s: &str) -> Option<time::Date> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

fn millis(t: time::OffsetDateTime) -> Option<i64> {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Time(ms) => match fleuve_schemas::json::rfc3339_millis(*ms) {
                Some(t) => f.write_str(&t),
                None => write!(f, "{ms} ms"),
            },
            Bound::Offset(o) => write!(f, "offset {o}"),
            Bound::Partitions(map) => {
                let parts: Vec<String> = map.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                write!(f, "offsets {}", parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_format() {
        assert_eq!("1500".parse(), Ok(Bound::Offset(1500)));
        assert_eq!(
            "0:10, 2:7".parse(),
            Ok(Bound::Partitions(BTreeMap::from([(0, 10), (2, 7)])))
        );
        assert_eq!(
            "2026-11-22T10:00:00.5Z".parse(),
            Ok(Bound::Time(1_795_341_600_500))
        );
        assert_eq!(
            "2026-11-22T11:00:00.5+01:00".parse(),
            Ok(Bound::Time(1_795_341_600_500))
        );
        assert_eq!(
            "2026-11-22 10:00:00z".parse(),
            Ok(Bound::Time(1_795_341_600_000))
        );
        assert_eq!("2026-11-22".parse(), Ok(Bound::Time(1_795_305_600_000)));
    }

    #[test]
    fn rejects_the_rest_saying_what_is_accepted() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-22T10:00",
            "-5",
            "0:x",
            "1.5",
        ] {
            let e = bad.parse::<Bound>().unwrap_err();
            assert!(e.to_string().contains("RFC 3339"), "{bad}: {e}");
        }
    }
}

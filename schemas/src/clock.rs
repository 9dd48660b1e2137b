//! Time as the platform writes it: milliseconds since the Unix epoch (Avro's
//! `timestamp-millis`, Kafka's record timestamps) and their RFC 3339 form in UTC.
//!
//! ```
//! use fleuve_schemas::clock::{rfc3339_millis, rfc3339_millis_fixed};
//! assert_eq!(rfc3339_millis(1_700_000_000_500).as_deref(), Some("2023-11-14T22:13:20.5Z"));
//! assert_eq!(rfc3339_millis_fixed(1_700_000_000_500).as_deref(), Some("2023-11-14T22:13:20.500Z"));
//! assert_eq!(rfc3339_millis(i64::MAX), None);
//! ```

use std::fmt::Write;

/// Now, in milliseconds since the Unix epoch (0 before 1970, `i64::MAX` past year 292 million).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// First instant RFC 3339 can write: 0000-01-01T00:00:00.000Z.
pub const RFC3339_MIN_MS: i64 = -62_167_219_200_000;
/// Last instant RFC 3339 can write: 9999-12-31T23:59:59.999Z.
pub const RFC3339_MAX_MS: i64 = 253_402_300_799_999;

/// `ms` since the Unix epoch as RFC 3339 in UTC, with the fraction of a second only when
/// it is not zero and without trailing zeros (`2026-11-22T10:00:00.5Z`, as the `time`
/// crate writes it); `None` outside the years 0000 to 9999.
pub fn rfc3339_millis(ms: i64) -> Option<String> {
    format(ms, false)
}

/// `ms` since the Unix epoch as RFC 3339 in UTC with exactly three digits of milliseconds
/// (`2026-11-22T10:00:00.500Z`: every time of an API answer has the same length); `None`
/// outside the years 0000 to 9999.
pub fn rfc3339_millis_fixed(ms: i64) -> Option<String> {
    format(ms, true)
}

fn format(ms: i64, fixed: bool) -> Option<String> {
    if !(RFC3339_MIN_MS..=RFC3339_MAX_MS).contains(&ms) {
        return None;
    }
    // Days to civil date: Howard Hinnant's `civil_from_days`, in proleptic Gregorian.
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = String::with_capacity(24);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if fixed {
        let _ = write!(out, ".{milli:03}");
    } else if milli != 0 {
        let _ = write!(out, ".{milli:03}");
        while out.ends_with('0') {
            out.pop();
        }
    }
    out.push('Z');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_the_time_crate_writes_them() {
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        let mut ms: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        while ms < 253_402_300_800_000 {
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap();
            assert_eq!(rfc3339_millis(ms), Some(t.format(rfc3339).unwrap()), "{ms}");
            ms += 86_399_999_937;
        }
        assert_eq!(rfc3339_millis(253_402_300_800_000), None);
        assert_eq!(rfc3339_millis(-62_167_219_200_001), None);
    }

    #[test]
    fn the_fixed_form_always_has_three_digits() {
        assert_eq!(
            rfc3339_millis_fixed(0).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(
            rfc3339_millis_fixed(1_714_594_503_120).as_deref(),
            Some("2024-05-01T20:15:03.120Z")
        );
        assert_eq!(
            rfc3339_millis_fixed(RFC3339_MAX_MS).as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
        assert_eq!(
            rfc3339_millis_fixed(RFC3339_MIN_MS).as_deref(),
            Some("0000-01-01T00:00:00.000Z")
        );
        assert_eq!(rfc3339_millis_fixed(RFC3339_MAX_MS + 1), None);
        assert_eq!(rfc3339_millis_fixed(RFC3339_MIN_MS - 1), None);
        assert_eq!(rfc3339_millis_fixed(i64::MIN), None);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}

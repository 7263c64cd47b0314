//! Time as text: UTC RFC 3339 with milliseconds, to and from Unix milliseconds (audit `at`,
//! `created_at`, `last_seen`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Latest time rms formats: 9999-12-31T23:59:59.999Z.
pub(crate) const MS_MAX: u64 = 253_402_300_799_999;

/// Formats wall milliseconds since the Unix epoch as UTC RFC 3339 with exactly three fraction
/// digits, e.g. `2026-11-25T17:30:00.123Z`. The fixed width makes text order equal time order
/// (SQLite compares these as text). Out-of-range inputs clamp to the latest representable time.
pub fn rfc3339_from_ms(ms: u64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let nanos = i128::from(ms.min(MS_MAX)) * 1_000_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&format)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000Z"))
}

/// Parses an RFC 3339 time (any offset) into wall milliseconds since the Unix epoch.
/// Times before 1970 are refused.
pub fn ms_from_rfc3339(text: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_fixed_width_milliseconds() {
        assert_eq!(rfc3339_from_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_from_ms(1_764_091_800_123),
            "2025-11-25T17:30:00.123Z"
        );
        assert_eq!(rfc3339_from_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert!(
            rfc3339_from_ms(1_000) < rfc3339_from_ms(1_001),
            "text order is time order"
        );
    }

    #[test]
    fn parses_any_offset() {
        assert_eq!(
            ms_from_rfc3339("2025-11-25T17:30:00.123Z"),
            Some(1_764_091_800_123)
        );
        assert_eq!(
            ms_from_rfc3339("2025-11-25T18:30:00.123+01:00"),
            Some(1_764_091_800_123)
        );
        assert_eq!(ms_from_rfc3339("yesterday"), None);
        assert_eq!(ms_from_rfc3339("1969-12-31T23:59:59Z"), None);
    }
}

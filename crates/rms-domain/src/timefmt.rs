use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats wall milliseconds since the Unix epoch as UTC RFC 3339 with millisecond precision,
/// e.g. `2026-11-25T17:30:00.123Z`. Out-of-range inputs clamp to the nearest representable time.
pub fn rfc3339_from_ms(ms: u64) -> String {
    let ms = ms.min(253_402_300_799_999); // 9999-12-31T23:59:59.999Z
    let nanos = i128::from(ms) * 1_000_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let at = at
        .replace_nanosecond(at.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(rfc3339_from_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_from_ms(1_764_091_800_123),
            "2025-11-25T17:30:00.123Z"
        );
        assert!(rfc3339_from_ms(u64::MAX).starts_with("9999-12-31T23:59:59.999"));
    }
}

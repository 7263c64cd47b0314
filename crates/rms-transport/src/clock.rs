//! [`Clock`]: the node's wall clock, the only place rms reads the time of day.

use std::time::{SystemTime, UNIX_EPOCH};

/// The node's wall clock: the system clock shifted by a fixed offset (`RMS_CLOCK_OFFSET_MS`, for
/// clock skew tests). The only place rms reads the time; everything below takes `now` as input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    /// Added to the system clock's reading (ms, may be negative); 0 outside tests.
    pub offset_ms: i64,
}

impl Clock {
    /// The time now, in ms since the Unix epoch: the system clock plus [`Clock::offset_ms`],
    /// saturating (0 if the system clock is before 1970).
    pub fn now_ms(&self) -> u64 {
        let system_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        system_ms.saturating_add_signed(self.offset_ms)
    }
}

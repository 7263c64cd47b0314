//! [`Clock`]: the node's wall clock, the only place rms reads the time of day.

use std::time::{SystemTime, UNIX_EPOCH};

/// The node's wall clock: the system clock shifted by a fixed offset (`RMS_CLOCK_OFFSET_MS`, for
/// clock skew tests). The only place rms reads the time; everything below takes `now` as input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    pub offset_ms: i64,
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        let system_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        system_ms.saturating_add_signed(self.offset_ms)
    }
}

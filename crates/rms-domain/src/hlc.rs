//! The hybrid logical clock ([`Hlc`]) that stamps every event: it never goes backwards on a
//! device, also across restarts and wall clock jumps.

use serde::{Deserialize, Serialize};

/// A hybrid logical clock timestamp: wall milliseconds and a counter that orders events within the
/// same millisecond. Ordered by `(wall_ms, counter)`.
///
/// A device keeps its last timestamp persisted and only ever moves it forward, so its clock never
/// goes backwards, also across restarts and when the wall clock jumps back.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Wall time in milliseconds since the Unix epoch: the device's clock, or later if the
    /// clock was behind an earlier timestamp.
    pub wall_ms: u64,
    /// Orders timestamps within one `wall_ms`: 0 for the first.
    pub counter: u32,
}

impl Hlc {
    /// The timestamp `(wall_ms, counter)`.
    pub const fn new(wall_ms: u64, counter: u32) -> Hlc {
        Hlc { wall_ms, counter }
    }

    /// The timestamp for a new local event, given the last one this device issued.
    ///
    /// Strictly greater than `self`. If the counter would overflow, the wall part is carried forward
    /// by one millisecond instead.
    #[must_use]
    pub fn tick(self, now_ms: u64) -> Hlc {
        if now_ms > self.wall_ms {
            Hlc::new(now_ms, 0)
        } else {
            self.bump()
        }
    }

    /// The clock after receiving `remote`: strictly greater than both `self` and `remote`.
    ///
    /// The caller decides first whether `remote` is believable (not too far in the future); this
    /// only does the arithmetic.
    #[must_use]
    pub fn merge(self, remote: Hlc, now_ms: u64) -> Hlc {
        let highest = self.max(remote);
        if now_ms > highest.wall_ms {
            Hlc::new(now_ms, 0)
        } else {
            highest.bump()
        }
    }

    fn bump(self) -> Hlc {
        match self.counter.checked_add(1) {
            Some(counter) => Hlc::new(self.wall_ms, counter),
            None => Hlc::new(self.wall_ms.saturating_add(1), 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_never_goes_backwards_when_the_wall_clock_does() {
        let mut clock = Hlc::default();
        let walls = [1_000, 1_000, 999, 0, 5_000, 4_000, 5_000, u64::MAX, 3];
        for now in walls {
            let next = clock.tick(now);
            assert!(next > clock, "{next:?} must be after {clock:?}");
            clock = next;
        }
    }

    #[test]
    fn merge_is_after_both_sides() {
        let local = Hlc::new(100, 3);
        let remote = Hlc::new(200, 7);
        let merged = local.merge(remote, 150);
        assert!(merged > local && merged > remote);
        assert_eq!(merged, Hlc::new(200, 8));
        assert_eq!(local.merge(remote, 300), Hlc::new(300, 0));
    }

    #[test]
    fn counter_overflow_carries_into_the_wall() {
        let clock = Hlc::new(10, u32::MAX);
        assert_eq!(clock.tick(10), Hlc::new(11, 0));
    }
}

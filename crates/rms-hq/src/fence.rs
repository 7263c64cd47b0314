//! The fence: the greatest master epoch head office took a batch from (`hq_stores.max_epoch`),
//! below which a store's batches are refused (`stale_epoch`, the losing island of a split
//! brain), and the bound on how far one batch may raise it (issue #29).
//!
//! A store's token proves which store speaks, not that its master is speaking, and head office
//! cannot check the store devices' signatures: an epoch in a batch is a claim. So head office
//! takes an epoch above its fence only if its term is one a real master can have:
//!
//! - at most one above the greatest term it has seen for the store (terms grow by one an
//!   election, `docs/SYNC.md`), or
//! - at most [`EPOCH_AHEAD_MAX_MS`] ahead of head office's clock: a new incarnation's first
//!   election jumps the store's term to about the current time in milliseconds (its term floor),
//!   and a few elections after it stay close to it.
//!
//! A batch above that bound is refused ([`crate::HqError::EpochOutOfRange`], `409
//! epoch_out_of_range`) and changes nothing. Only a batch that changes head office's log
//! (entries, or a truncation it carried out) raises the fence: a heartbeat (an empty batch) is
//! taken, as it always was, but leaves the fence where it is, so a stolen token cannot fence the
//! real master with a batch that leaves no trace in `hq_log`. What is left open: a token's thief
//! can still raise the fence within the bound with made-up entries; `rms-hq stores reset-epoch`
//! clears it (`docs/SECURITY.md`).
//!
//! It names nothing of the crate but `error`; `ingest` calls it.

use rms_domain::Epoch;

use crate::error::EpochOutOfRange;

/// How far ahead of head office's clock (its database's `now()`) a term may be, in
/// milliseconds: a store's term after a new incarnation is the millisecond that incarnation
/// began by the device's clock, and a till whose clock is set to local time rather than UTC is
/// off by up to 14 hours.
pub const EPOCH_AHEAD_MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// The greatest term a batch may bring when head office's fence is `greatest` and its clock
/// reads `now_ms`.
pub fn term_max(greatest: Option<Epoch>, now_ms: u64) -> u64 {
    let next = greatest.map_or(1, |e| e.term.0.saturating_add(1));
    next.max(now_ms.saturating_add(EPOCH_AHEAD_MAX_MS))
}

/// Checks that `epoch` is one head office may take when its fence is `greatest` and its clock
/// reads `now_ms`: not above the fence, or above it with a term within [`term_max`]. (An epoch
/// below the fence is the caller's `stale_epoch`.)
pub fn check(greatest: Option<Epoch>, epoch: Epoch, now_ms: u64) -> Result<(), EpochOutOfRange> {
    let term_max = term_max(greatest, now_ms);
    if greatest.is_some_and(|g| epoch <= g) || epoch.term.0 <= term_max {
        return Ok(());
    }
    Err(EpochOutOfRange {
        epoch,
        greatest,
        term_max,
    })
}

/// The fence after a batch from `epoch` that head office takes: raised only when the batch
/// changed head office's log (`changes_log`: it carried entries, or truncated).
pub fn after_batch(greatest: Option<Epoch>, epoch: Epoch, changes_log: bool) -> Option<Epoch> {
    match greatest {
        Some(greatest) if !changes_log || epoch <= greatest => Some(greatest),
        None if !changes_log => None,
        _ => Some(epoch),
    }
}

#[cfg(test)]
mod tests {
    use rms_domain::{DeviceId, Term};

    use super::*;

    /// 2027-01-15, in ms: a term of the clock's scale.
    const NOW_MS: u64 = 1_800_000_000_000;

    fn epoch(term: u64, master: u16) -> Epoch {
        Epoch {
            term: Term(term),
            master_id: DeviceId::new(master).expect("a device id"),
            master_priority: 0,
        }
    }

    #[test]
    fn a_term_one_above_the_greatest_or_near_the_clock_is_taken() {
        let seen = Some(epoch(7, 1));
        assert!(check(seen, epoch(8, 2), NOW_MS).is_ok(), "an election");
        assert!(check(seen, epoch(7, 1), NOW_MS).is_ok(), "the same master");
        assert!(check(None, epoch(1, 1), NOW_MS).is_ok(), "a store's first");
        assert!(
            check(seen, epoch(12, 2), NOW_MS).is_ok(),
            "elections meanwhile"
        );
        let incarnation = NOW_MS - 60_000 + 3;
        assert!(
            check(seen, epoch(incarnation, 2), NOW_MS).is_ok(),
            "a new incarnation's jump"
        );
        let skewed = NOW_MS + 14 * 60 * 60 * 1000;
        assert!(
            check(seen, epoch(skewed, 2), NOW_MS).is_ok(),
            "a clock 14 h ahead"
        );
        let far = Some(epoch(NOW_MS + EPOCH_AHEAD_MAX_MS + 5, 1));
        let next = NOW_MS + EPOCH_AHEAD_MAX_MS + 6;
        assert!(
            check(far, epoch(next, 2), NOW_MS).is_ok(),
            "one above a greatest already past the clock"
        );
    }

    #[test]
    fn a_term_past_both_bounds_is_refused_and_says_why() {
        let seen = Some(epoch(7, 1));
        let refused = check(seen, epoch(u64::MAX, 1), NOW_MS).expect_err("refused");
        assert_eq!(refused.term_max, NOW_MS + EPOCH_AHEAD_MAX_MS);
        assert_eq!(refused.greatest, seen);
        let past = NOW_MS + EPOCH_AHEAD_MAX_MS + 1;
        assert!(check(seen, epoch(past, 1), NOW_MS).is_err());
        assert!(check(None, epoch(u64::MAX, 1), NOW_MS).is_err());
        assert!(check(seen, epoch(past, 1), u64::MAX).is_ok(), "no overflow");
    }

    #[test]
    fn only_a_batch_that_changes_the_log_raises_the_fence() {
        let seen = Some(epoch(7, 1));
        assert_eq!(after_batch(seen, epoch(8, 2), false), seen, "a heartbeat");
        assert_eq!(after_batch(None, epoch(8, 2), false), None);
        assert_eq!(after_batch(seen, epoch(8, 2), true), Some(epoch(8, 2)));
        assert_eq!(after_batch(None, epoch(8, 2), true), Some(epoch(8, 2)));
        assert_eq!(after_batch(seen, epoch(7, 1), true), seen);
    }
}

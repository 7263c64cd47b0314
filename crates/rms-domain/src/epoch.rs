//! Terms and masters: an [`Epoch`] is a term with the master that leads it, ordered so that after
//! a split brain every device agrees which master stays; a [`LogEntry`] is an event as the
//! master log holds it (the epoch that decided it, the products right after it).

use std::cmp::{Ordering, Reverse};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::SyncEvent;
use crate::ids::{DeviceId, Term};
use crate::product::Product;

/// Who is master, and since when: the term and the master of that term.
///
/// A term alone is not unique: two islands of a partitioned store can each elect a master in the
/// same term. The pair `(term, master)` is, because a device is master at most once per term.
/// Epochs are ordered by term, then by the master's rank (higher priority, then lower device id),
/// so after a partition heals every device agrees which master stays: the greater epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Epoch {
    /// The election term.
    pub term: Term,
    /// The device that is master in `term`.
    pub master_id: DeviceId,
    /// That master's election priority when it won: with `master_id`, its rank.
    pub master_priority: i32,
}

impl Epoch {
    fn key(&self) -> (Term, i32, Reverse<DeviceId>) {
        (self.term, self.master_priority, Reverse(self.master_id))
    }
}

impl Ord for Epoch {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Epoch {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.term, self.master_id)
    }
}

/// One entry of the master log: an event with the master's verdict (`status`, `reason`,
/// `master_seq`), the epoch that decided it, and the products it touched as they were on the
/// master right after it. Devices apply entries in `master_seq` order; the snapshots let a device
/// set its copy of the master's state without re-deriving it, and rebase its own pending events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// The event with the master's verdict: `status`, `reason` and `master_seq` (the entry's
    /// position) set.
    pub event: SyncEvent,
    /// The epoch whose master decided the event.
    pub epoch: Epoch,
    /// Every product the event names (`EventPayload::skus`), as it was on the master right
    /// after the event; a product the event names that does not exist is absent.
    pub products: Vec<Product>,
    /// Accepted although the rules would refuse it now: another master had accepted it during a
    /// split brain, and an accepted sale is never dropped. Stock may be negative after it.
    #[serde(default)]
    pub forced: bool,
}

impl LogEntry {
    /// The entry's position in the master log.
    pub fn seq(&self) -> u64 {
        self.event.master_seq.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(term: u64, master: u16, priority: i32) -> Epoch {
        Epoch {
            term: Term(term),
            master_id: DeviceId::new(master).unwrap(),
            master_priority: priority,
        }
    }

    #[test]
    fn epochs_order_by_term_then_rank() {
        assert!(epoch(2, 9, 0) > epoch(1, 1, 5), "a newer term wins");
        assert!(
            epoch(2, 1, 0) > epoch(2, 2, 0),
            "same term: the lower device id ranks higher"
        );
        assert!(epoch(2, 2, 1) > epoch(2, 1, 0), "same term: priority first");
        assert_eq!(epoch(2, 1, 0).cmp(&epoch(2, 1, 0)), Ordering::Equal);
    }
}

//! The store port's connection slots (issue #29, item 5): a flood from one source, or from many,
//! cannot take the slots the store's own devices need.
//!
//! A connection takes a slot when it is accepted, before its TLS handshake. Until it shows a
//! certificate the trust list holds it is *unproven*, and unproven connections are limited per
//! source address ([`UNPROVEN_PER_SOURCE_MAX`]) and together ([`UNPROVEN_MAX`], below the
//! total): so one source gets a few slots, and a flood from many sources still leaves
//! `CONNECTIONS_MAX - UNPROVEN_MAX` slots. A connection that shows a trusted certificate is
//! *proven*: it no longer counts as unproven, and its source address becomes *known*; a known
//! address is held to the total alone, so a device reconnecting from the address its store has
//! seen it at gets a slot while strangers are being turned away.
//!
//! **Invariants:** a slot is released when its [`Slot`] is dropped (the connection's task ended,
//! however it ended); the counts never go below zero; memory is bounded
//! ([`KNOWN_SOURCES_MAX`], and one entry per source holding a slot).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::server::CONNECTIONS_MAX;

/// Unproven connections from every source together (the rest of `CONNECTIONS_MAX`, 1 024, is
/// kept for proven connections and known addresses).
pub const UNPROVEN_MAX: usize = CONNECTIONS_MAX * 3 / 4;
/// Unproven connections from one address that no trusted certificate has connected from.
pub const UNPROVEN_PER_SOURCE_MAX: usize = 16;
/// Addresses remembered as known; beyond it the memory starts over.
pub const KNOWN_SOURCES_MAX: usize = 256;

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    unproven: usize,
    /// Unproven connections per source (no entry at zero).
    per_source: HashMap<IpAddr, usize>,
    /// Addresses a trusted certificate connected from.
    known: HashSet<IpAddr>,
}

/// The slots of one listener. Shared by its accept loop and its connections' tasks.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    counts: Mutex<Counts>,
}

/// One connection's slot: released when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    source: IpAddr,
    proven: bool,
}

impl Slots {
    /// A slot for a new connection from `source`, or `None` if the source (or every source
    /// together) holds all it may: the caller closes the connection at once.
    pub(crate) fn take(self: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let mut counts = crate::locks::lock(&self.counts);
        if counts.open >= CONNECTIONS_MAX {
            return None;
        }
        let from_source = counts.per_source.get(&source).copied().unwrap_or(0);
        if !counts.known.contains(&source)
            && (counts.unproven >= UNPROVEN_MAX || from_source >= UNPROVEN_PER_SOURCE_MAX)
        {
            return None;
        }
        counts.open += 1;
        counts.unproven += 1;
        counts.per_source.insert(source, from_source + 1);
        Some(Slot {
            slots: Arc::clone(self),
            source,
            proven: false,
        })
    }

    fn release_unproven(counts: &mut Counts, source: IpAddr) {
        counts.unproven = counts.unproven.saturating_sub(1);
        if let Some(n) = counts.per_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_source.remove(&source);
            }
        }
    }
}

impl Slot {
    /// The connection showed a certificate the trust list holds: it leaves the unproven count,
    /// and its address becomes known.
    pub(crate) fn prove(&mut self) {
        if self.proven {
            return;
        }
        self.proven = true;
        let mut counts = crate::locks::lock(&self.slots.counts);
        Slots::release_unproven(&mut counts, self.source);
        if counts.known.len() >= KNOWN_SOURCES_MAX && !counts.known.contains(&self.source) {
            counts.known.clear();
        }
        counts.known.insert(self.source);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = crate::locks::lock(&self.slots.counts);
        counts.open = counts.open.saturating_sub(1);
        if !self.proven {
            Slots::release_unproven(&mut counts, self.source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_source_gets_its_share_and_a_known_address_still_gets_in() {
        let slots = Arc::new(Slots::default());
        let device = ip(1);
        let mut first = slots.take(device).expect("a slot");
        first.prove();
        let flood: Vec<_> = (0..1000).filter_map(|_| slots.take(ip(9))).collect();
        assert_eq!(flood.len(), UNPROVEN_PER_SOURCE_MAX);
        // Another stranger has its own share; the device's address is known.
        assert!(slots.take(ip(8)).is_some());
        let again: Vec<_> = (0..100).filter_map(|_| slots.take(device)).collect();
        assert_eq!(again.len(), 100);
        drop(flood);
        let counts = crate::locks::lock(&slots.counts);
        assert_eq!((counts.open, counts.unproven), (101, 100));
        assert_eq!(counts.per_source.get(&ip(9)), None);
    }

    #[test]
    fn a_flood_from_many_sources_leaves_the_reserve() {
        let slots = Arc::new(Slots::default());
        let mut device = slots.take(ip(1)).expect("a slot");
        device.prove();
        let flood: Vec<_> = (0..=u8::MAX)
            .flat_map(|a| (0..8).map(move |b| IpAddr::from([192, 168, a, b])))
            .filter_map(|source| slots.take(source))
            .collect();
        assert_eq!(flood.len(), UNPROVEN_MAX);
        assert!(slots.take(ip(77)).is_none(), "a stranger waits");
        let known: Vec<_> = (0..CONNECTIONS_MAX)
            .filter_map(|_| slots.take(ip(1)))
            .collect();
        assert_eq!(known.len(), CONNECTIONS_MAX - UNPROVEN_MAX - 1);
        drop((flood, known, device));
        let counts = crate::locks::lock(&slots.counts);
        assert_eq!((counts.open, counts.unproven), (0, 0));
        assert!(counts.per_source.is_empty());
    }
}

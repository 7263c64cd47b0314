//! The store's trust list (issue #14): which device certificates the store trusts, and which it
//! has revoked for good. It is not a table anyone edits: it is the fold of the `device_trust`
//! events of the master log, in log order ([`TrustList::fold`]), so it replicates, survives
//! restarts and follows a truncation like every other state the log carries.
//!
//! This module never names an event: `event` points down at it (an event's payload makes a
//! [`TrustChange`]), and its verdicts are `verdict`'s [`RejectReason`]s.
//!
//! **Invariants** (the rules the master applies in [`TrustList::check`]):
//! - A revoked fingerprint is never trusted again: a later `trusted` event for it is rejected
//!   ([`RejectReason::Revoked`]); the device must make a new key and be added again.
//! - A device id is bound to at most one trusted fingerprint: trusting a second certificate for
//!   it is rejected ([`RejectReason::DeviceIdTaken`]) until the first is revoked. A peer that
//!   claims a device id with another certificate is therefore refused, whatever it knows. And a
//!   trusted certificate keeps its device id: trusting it for another is rejected the same way.
//! - Trusting a fingerprint that is trusted already for the same device changes nothing (two
//!   devices may admit a new one at once).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::ids::DeviceId;
use crate::verdict::RejectReason;

/// What a `device_trust` event says of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustState {
    /// The certificate may link to the store's devices.
    Trusted,
    /// The certificate is refused for good.
    Revoked,
}

impl TrustState {
    /// `"trusted"` or `"revoked"`, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            TrustState::Trusted => "trusted",
            TrustState::Revoked => "revoked",
        }
    }
}

/// One device certificate in the trust list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    /// The certificate's fingerprint: the device's identity.
    pub fingerprint: Fingerprint,
    /// The device id the certificate is bound to.
    pub device_id: DeviceId,
    /// The device's name, for people.
    pub name: String,
    /// Trusted or revoked, as the latest event that counted left it.
    pub state: TrustState,
    /// The device that wrote the event that set `state`.
    pub added_by: DeviceId,
    /// How: `store_key` (the upgrade window), `approved`, `self`, `revoked`.
    pub how: String,
    /// When that event was made (ms since the epoch, its origin's clock).
    pub at_ms: u64,
}

/// One `device_trust` event, as the fold reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustChange {
    /// The certificate the event names.
    pub fingerprint: Fingerprint,
    /// The device id it binds the certificate to.
    pub device_id: DeviceId,
    /// The device's name, for people.
    pub name: String,
    /// Trusted or revoked.
    pub state: TrustState,
    /// How: `store_key`, `approved`, `self` or `revoked`.
    pub how: String,
    /// The device that made the event (it becomes the entry's `added_by`).
    pub origin: DeviceId,
    /// When the event was made, milliseconds since the Unix epoch on its origin's clock.
    pub at_ms: u64,
}

/// The store's trust list: every certificate a `device_trust` event named, by fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustList {
    entries: BTreeMap<Fingerprint, TrustEntry>,
}

impl TrustList {
    /// The list the `changes` make, in log order.
    pub fn fold(changes: impl IntoIterator<Item = TrustChange>) -> TrustList {
        let mut list = TrustList::default();
        for change in changes {
            if list.check(&change).is_ok() {
                list.apply(change);
            }
        }
        list
    }

    /// Whether the master may log `change` (see the module's invariants).
    pub fn check(&self, change: &TrustChange) -> Result<(), RejectReason> {
        if change.state == TrustState::Revoked {
            return Ok(());
        }
        if self.is_revoked(&change.fingerprint) {
            return Err(RejectReason::Revoked);
        }
        if self
            .get(&change.fingerprint)
            .is_some_and(|e| e.device_id != change.device_id)
        {
            return Err(RejectReason::DeviceIdTaken);
        }
        match self.trusted_for(change.device_id) {
            Some(bound) if bound.fingerprint != change.fingerprint => {
                Err(RejectReason::DeviceIdTaken)
            }
            _ => Ok(()),
        }
    }

    /// Applies a change that [`TrustList::check`] allowed. A revocation is final; trusting an
    /// entry trusted already keeps who added it first.
    pub fn apply(&mut self, change: TrustChange) {
        if let Some(entry) = self.entries.get(&change.fingerprint)
            && (entry.state == TrustState::Revoked
                || (entry.state == change.state && entry.device_id == change.device_id))
        {
            return;
        }
        let entry = TrustEntry {
            fingerprint: change.fingerprint,
            device_id: change.device_id,
            name: change.name,
            state: change.state,
            added_by: change.origin,
            how: change.how,
            at_ms: change.at_ms,
        };
        self.entries.insert(change.fingerprint, entry);
    }

    /// The entry of a certificate, trusted or revoked; `None` if no event named it.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&TrustEntry> {
        self.entries.get(fingerprint)
    }

    /// True if the certificate is trusted now.
    pub fn is_trusted(&self, fingerprint: &Fingerprint) -> bool {
        self.get(fingerprint)
            .is_some_and(|e| e.state == TrustState::Trusted)
    }

    /// True if the certificate was revoked (which is for good).
    pub fn is_revoked(&self, fingerprint: &Fingerprint) -> bool {
        self.get(fingerprint)
            .is_some_and(|e| e.state == TrustState::Revoked)
    }

    /// The trusted certificate bound to `device`, if any.
    pub fn trusted_for(&self, device: DeviceId) -> Option<&TrustEntry> {
        self.entries
            .values()
            .find(|e| e.state == TrustState::Trusted && e.device_id == device)
    }

    /// Every entry, by fingerprint.
    pub fn entries(&self) -> impl Iterator<Item = &TrustEntry> {
        self.entries.values()
    }

    /// The trusted fingerprints.
    pub fn trusted(&self) -> impl Iterator<Item = &Fingerprint> {
        self.entries
            .values()
            .filter(|e| e.state == TrustState::Trusted)
            .map(|e| &e.fingerprint)
    }

    /// How many certificates the list names, trusted and revoked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no `device_trust` event counted yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(byte: u8) -> Fingerprint {
        Fingerprint::from_sha256([byte; 32])
    }

    fn change(byte: u8, device: u16, state: TrustState) -> TrustChange {
        TrustChange {
            fingerprint: fp(byte),
            device_id: DeviceId::new(device).expect("device id"),
            name: format!("till {device}"),
            state,
            how: "approved".into(),
            origin: DeviceId::new(1).expect("1"),
            at_ms: 0,
        }
    }

    #[test]
    fn a_revoked_key_never_comes_back() {
        let list = TrustList::fold([
            change(1, 2, TrustState::Trusted),
            change(1, 2, TrustState::Revoked),
        ]);
        assert!(list.is_revoked(&fp(1)));
        let again = change(1, 2, TrustState::Trusted);
        assert_eq!(list.check(&again), Err(RejectReason::Revoked));
        let folded = TrustList::fold([
            change(1, 2, TrustState::Trusted),
            change(1, 2, TrustState::Revoked),
            again,
        ]);
        assert!(folded.is_revoked(&fp(1)));
    }

    #[test]
    fn a_device_id_has_one_trusted_certificate_until_it_is_revoked() {
        let list = TrustList::fold([change(1, 2, TrustState::Trusted)]);
        let imposter = change(9, 2, TrustState::Trusted);
        assert_eq!(list.check(&imposter), Err(RejectReason::DeviceIdTaken));
        assert_eq!(list.check(&change(1, 2, TrustState::Trusted)), Ok(()));
        // Replacing a device: revoke the old key, then the new one may take the id.
        let replaced = TrustList::fold([
            change(1, 2, TrustState::Trusted),
            change(1, 2, TrustState::Revoked),
            change(9, 2, TrustState::Trusted),
        ]);
        assert!(replaced.is_trusted(&fp(9)));
        // A trusted certificate is not moved to another device id.
        assert_eq!(
            list.check(&change(1, 3, TrustState::Trusted)),
            Err(RejectReason::DeviceIdTaken)
        );
        assert_eq!(
            replaced
                .trusted_for(DeviceId::new(2).expect("2"))
                .map(|e| e.fingerprint),
            Some(fp(9))
        );
    }

    #[test]
    fn a_repeated_trust_keeps_who_added_it_first() {
        let mut second = change(1, 2, TrustState::Trusted);
        second.origin = DeviceId::new(3).expect("3");
        let list = TrustList::fold([change(1, 2, TrustState::Trusted), second]);
        assert_eq!(list.get(&fp(1)).map(|e| e.added_by.get()), Some(1));
        assert_eq!(list.len(), 1);
    }
}

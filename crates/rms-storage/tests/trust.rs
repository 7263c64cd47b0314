//! The trust list a device's links admit against the one a master decides against (issue #26),
//! what moves its stamp, and the heads of a key revoked since (issue #27).

#![allow(clippy::unwrap_used)]

mod common;

use common::device;
use rms_domain::{Fingerprint, Role, TrustState};
use rms_storage::local::{self, Command};
use rms_storage::{Store, trust};

#[test]
fn a_devices_own_pending_trust_change_counts_for_its_links_but_not_for_deciding() {
    // Simulator seed 18797: a master held its own revocation of a certificate as pending (it was
    // undone by a truncation) and decided, before it, another certificate for the device id the
    // revoked one still held in the log: the pending revocation had made the id look free.
    let store = Store::open_in_memory(device(2)).unwrap();
    let fingerprint = Fingerprint::from_sha256([7; 32]);
    let revoke = Command::Trust {
        fingerprint,
        device_id: device(42),
        name: "tablet 2".into(),
        state: TrustState::Revoked,
        how: "revoked".into(),
    };
    let recorded = store
        .write(|tx| local::record(tx, Role::Client, 1_764_000_000_000, revoke))
        .unwrap();
    assert!(recorded.entry.is_none(), "pending on a client");
    let admitted = store.read(trust::load).unwrap();
    assert!(
        admitted.is_revoked(&fingerprint),
        "its links refuse the certificate at once"
    );
    let logged = store.read(trust::load_logged).unwrap();
    assert!(
        logged.get(&fingerprint).is_none(),
        "not in the log yet: nothing to decide against"
    );
}

/// A trust change of `fingerprint` for device 2, recorded on the (client) store.
fn trust_change(store: &Store, fingerprint: Fingerprint, state: TrustState, at_ms: u64) {
    let change = Command::Trust {
        fingerprint,
        device_id: device(2),
        name: "till 2".into(),
        state,
        how: "self".into(),
    };
    store
        .write(|tx| local::record(tx, Role::Client, at_ms, change))
        .unwrap();
}

#[test]
fn a_trust_change_of_this_devices_own_moves_the_stamp_and_large_numbers_stay_exact() {
    // A paired client reloads its list when it records the sponsor's trust, before its master
    // decides it (issue #27: the stamp ignored pending changes); a new incarnation's numbers
    // (near 2^51) keep the stamp's sums exact.
    let store = Store::open_in_memory(device(2)).unwrap();
    rms_storage::incarnation::start(&store, 1_800_000_000_000, true).unwrap();
    let before = store.read(trust::stamp).unwrap();
    trust_change(
        &store,
        Fingerprint::from_sha256([1; 32]),
        TrustState::Trusted,
        1_800_000_000_001,
    );
    let after = store.read(trust::stamp).unwrap();
    assert_ne!(before, after);
    trust_change(
        &store,
        Fingerprint::from_sha256([2; 32]),
        TrustState::Revoked,
        1_800_000_000_002,
    );
    assert_ne!(store.read(trust::stamp).unwrap(), after);
}

#[test]
fn heads_signed_while_a_key_was_trusted_verify_after_it_is_revoked_and_no_other_key_does() {
    use rms_storage::journal;
    use rms_storage::journal_heads;
    // Issue #27: a revoked device restarted and accused itself of tampering: its heads were
    // signed by a key the list no longer trusted.
    let key = common::Key::new();
    let store = Store::open_in_memory(device(2)).unwrap();
    trust_change(
        &store,
        key.fingerprint(),
        TrustState::Trusted,
        1_764_000_000_000,
    );
    let signed = store
        .write(|tx| journal_heads::sign(tx, device(2), &key, 1_764_000_000_001))
        .unwrap();
    assert!(signed > 0);
    assert_eq!(store.read(journal::verify).unwrap().broken, None);
    trust_change(
        &store,
        key.fingerprint(),
        TrustState::Revoked,
        1_764_000_000_002,
    );
    let verified = store.read(journal::verify).unwrap();
    assert_eq!(verified.broken, None, "its own heads stay its own");
    assert_eq!(verified.signed_heads, signed);
    // A key never bound to this device still does not verify.
    let other = common::Key::new();
    assert_ne!(other.fingerprint(), key.fingerprint());
    store
        .write(|tx| journal_heads::sign(tx, device(2), &other, 1_764_000_000_003))
        .unwrap();
    let broken = store
        .read(journal::verify)
        .unwrap()
        .broken
        .expect("a break");
    assert!(
        broken.why.contains("never bound to this device"),
        "{broken}"
    );
}

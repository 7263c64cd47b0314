//! The trust list a device's links admit against the one a master decides against (issue #26).

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

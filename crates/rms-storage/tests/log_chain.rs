//! The master log's hash chain (issue #17, `rms_storage::log_chain`): followed piece by piece it
//! reaches the hash computed in one go, which is the chain of the entries' records; a copy is
//! checked against the master's signed head, and a head the master did not sign is refused.

#![allow(clippy::unwrap_used)]

use rms_domain::{Epoch, PushHead, Role, TrustState};
use rms_storage::journal::Hash;
use rms_storage::journal_heads::{self, LogHeadStatement};
use rms_storage::local;
use rms_storage::log_chain::{
    Compared, Followed, LogChain, LogHeadRefused, MasterHead, Recent, record,
};
use rms_storage::{Store, events};

mod common;

const NOW_MS: u64 = 1_764_091_800_000;

fn sell(store: &Store) {
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, common::sell("tea", 1)))
        .unwrap();
}

#[test]
fn the_log_chain_followed_in_pieces_is_the_chain_of_the_records() {
    let store = common::master(Store::open_in_memory(common::device(1)).unwrap());
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, common::create("tea", 10)))
        .unwrap();
    sell(&store);
    let first = store.read(|c| LogChain::default().extend(c)).unwrap();
    assert_eq!(first.seq, 2);
    sell(&store);
    sell(&store);
    let followed = store.read(|c| first.extend(c)).unwrap();
    let at_once = store.read(|c| LogChain::default().extend(c)).unwrap();
    assert_eq!(followed, at_once);
    assert_eq!(at_once.seq, 4);

    let entries = store.read(|c| events::log_after(c, 0, 100)).unwrap();
    let mut hash = Hash::GENESIS;
    for entry in &entries {
        hash = Hash::link(&hash, &record(entry).unwrap());
    }
    assert_eq!(at_once.hash, hash);
    assert_ne!(first.hash, at_once.hash);
}

/// Device 1 as master with a few sales, trusting `key` for itself.
fn signing_master(key: &common::Key) -> Store {
    let store = common::master(Store::open_in_memory(common::device(1)).unwrap());
    let trust = local::Command::Trust {
        fingerprint: key.fingerprint(),
        device_id: common::device(1),
        name: "till 1".into(),
        state: TrustState::Trusted,
        how: "self".into(),
    };
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, trust))
        .unwrap();
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, common::create("tea", 10)))
        .unwrap();
    sell(&store);
    sell(&store);
    store
}

/// A signing master with a few sales: its key, store, log chain head, the epoch there, and its
/// trust list.
struct Signing {
    key: common::Key,
    store: Store,
    head: LogChain,
    epoch: Epoch,
    trust: rms_domain::TrustList,
}

impl Signing {
    fn new() -> Signing {
        let key = common::Key::new();
        let store = signing_master(&key);
        let head = store.read(|c| LogChain::default().extend(c)).unwrap();
        let epoch = *head.epoch().unwrap();
        let trust = store.read(rms_storage::trust::load).unwrap();
        Signing {
            key,
            store,
            head,
            epoch,
            trust,
        }
    }
}

/// `chain`'s head signed by `key` as device `device`'s, with `epoch` at its position.
fn signed(key: &common::Key, device: u16, chain: &LogChain, epoch: Epoch) -> PushHead {
    signed_at(key, device, chain.seq, &chain.hash, epoch)
}

/// A log head at `seq` with `hash`, signed by `key` as device `device`'s.
fn signed_at(key: &common::Key, device: u16, seq: u64, hash: &Hash, epoch: Epoch) -> PushHead {
    let statement = LogHeadStatement {
        device_id: common::device(device),
        seq,
        epoch,
        hash: hash.to_hex(),
        at_ms: NOW_MS,
    };
    journal_heads::sign_text(key, journal_heads::log_statement(statement).unwrap()).unwrap()
}

/// `chain` followed in `store` with `master`'s head, and the hashes `recent` kept.
fn follow(store: &Store, chain: &LogChain, master: &MasterHead, recent: &mut Recent) -> Followed {
    store
        .read(|c| chain.follow(c, Some(master), recent))
        .unwrap()
}

#[test]
fn a_copy_is_checked_against_the_masters_signed_head_as_the_chain_passes_it() {
    let Signing {
        key,
        store,
        head,
        epoch,
        trust,
    } = Signing::new();
    let one = common::device(1);
    let master = MasterHead::verify(signed(&key, 1, &head, epoch), one, &trust).unwrap();

    // Followed from the start, the untouched copy passes the head's position with its hash.
    let start = LogChain::default();
    let followed = follow(&store, &start, &master, &mut Recent::default());
    assert_eq!(followed.compared, Some(Compared::Same));
    assert_eq!(followed.chain, head);
    assert!(!followed.restarted);

    // A chain already past the position compares from the hashes it kept of its latest
    // positions, and cannot without them.
    sell(&store);
    let mut recent = Recent::default();
    let past = follow(&store, &start, &master, &mut recent).chain;
    assert!(past.seq > head.seq);
    let again = follow(&store, &past, &master, &mut recent);
    assert_eq!(again.compared, Some(Compared::Same));
    let forgotten = follow(&store, &past, &master, &mut Recent::default());
    assert_eq!(forgotten.compared, None);
    // A copy that does not reach the position yet cannot compare (the head waits for it).
    let later = signed_at(&key, 1, past.seq + 5, &past.hash, epoch);
    let later = MasterHead::verify(later, one, &trust).unwrap();
    let short = follow(&store, &start, &later, &mut Recent::default());
    assert_eq!((short.compared, short.chain.seq), (None, past.seq));

    // Another epoch at that position: this copy went another way (no verdict).
    let other = Epoch {
        term: rms_domain::Term(epoch.term.0 + 1),
        ..epoch
    };
    let diverged = MasterHead::verify(signed(&key, 1, &head, other), one, &trust).unwrap();
    let followed = follow(&store, &start, &diverged, &mut Recent::default());
    assert_eq!(followed.compared, Some(Compared::Diverged));

    // A sale changed in this copy's file: the same epoch, another hash.
    store
        .write(|tx| {
            tx.execute(
                "UPDATE sync_events SET user_id = 'eve' WHERE device_id = 1 AND seq = 3",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    let followed = follow(&store, &start, &master, &mut Recent::default());
    assert!(
        matches!(followed.compared, Some(Compared::Differs { own }) if own != head.hash),
        "{followed:?}"
    );
}

#[test]
fn a_chain_whose_head_entry_was_replaced_starts_again() {
    let key = common::Key::new();
    let store = signing_master(&key);
    let head = store.read(|c| LogChain::default().extend(c)).unwrap();
    // The entry at the head decided in another epoch (what a truncation and a new master's
    // entry at the same position look like to this copy).
    store
        .write(|tx| {
            tx.execute(
                "UPDATE sync_events SET epoch_term = epoch_term + 1 \
                 WHERE master_seq = (SELECT MAX(master_seq) FROM sync_events)",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    let followed = store
        .read(|c| head.follow(c, None, &mut Recent::default()))
        .unwrap();
    assert!(followed.restarted);
    assert_eq!(followed.chain.seq, head.seq);
    assert_ne!(followed.chain.hash, head.hash);
}

#[test]
fn a_log_head_not_signed_by_the_master_is_refused() {
    let Signing {
        key,
        head,
        epoch,
        trust,
        ..
    } = Signing::new();
    let one = common::device(1);

    let other_device = signed(&key, 2, &head, epoch);
    assert_eq!(
        MasterHead::verify(other_device, one, &trust),
        Err(LogHeadRefused::NotTheMaster {
            said: common::device(2),
            master: one
        })
    );
    let stranger = common::Key::new();
    assert!(matches!(
        MasterHead::verify(signed(&stranger, 1, &head, epoch), one, &trust),
        Err(LogHeadRefused::Signature { .. })
    ));
    let mut flipped = signed(&key, 1, &head, epoch);
    let digit = if flipped.signature.starts_with('0') {
        "1"
    } else {
        "0"
    };
    flipped.signature.replace_range(0..1, digit);
    assert!(matches!(
        MasterHead::verify(flipped, one, &trust),
        Err(LogHeadRefused::Signature { .. })
    ));
    let mut garbled = signed(&key, 1, &head, epoch);
    garbled.statement = "{\"journal_head\":{}}".into();
    assert_eq!(
        MasterHead::verify(garbled, one, &trust),
        Err(LogHeadRefused::Malformed)
    );
}

#[test]
fn a_recheck_from_the_start_names_a_copy_changed_since_it_was_hashed() {
    let Signing { store, head, .. } = Signing::new();
    assert_eq!(store.read(|c| head.recheck(c)).unwrap(), None);
    // Entries logged after the head are not a change.
    sell(&store);
    assert_eq!(store.read(|c| head.recheck(c)).unwrap(), None);
    let edit = |sql: &str| {
        store
            .write(|tx| {
                tx.execute(sql, [])?;
                Ok(())
            })
            .unwrap();
    };
    // A changed entry before the head: the file gives another hash there.
    edit("UPDATE sync_events SET user_id = 'eve' WHERE master_seq = 3");
    let now = store.read(|c| head.recheck(c)).unwrap().expect("a change");
    assert_eq!(now.seq, head.seq);
    assert_ne!(now.hash, head.hash);
    // Followed from what the file holds now, there is nothing more to name.
    assert_eq!(store.read(|c| now.recheck(c)).unwrap(), None);
    // A deleted entry: the chain computed again stops before it.
    edit("DELETE FROM sync_events WHERE master_seq = 2");
    let holed = store.read(|c| now.recheck(c)).unwrap().expect("a hole");
    assert_eq!(holed.seq, 1);
    // The entry at the head replaced (what a truncation looks like): not the recheck's to name,
    // the chain starts again when it is followed.
    edit("UPDATE sync_events SET epoch_term = epoch_term + 1 WHERE master_seq = 4");
    assert_eq!(store.read(|c| now.recheck(c)).unwrap(), None);
}

//! The master log's hash chain (issue #17, `rms_storage::log_chain`): followed piece by piece it
//! reaches the hash computed in one go, which is the chain of the entries' records.

#![allow(clippy::unwrap_used)]

use rms_domain::Role;
use rms_storage::journal::Hash;
use rms_storage::local;
use rms_storage::log_chain::{LogChain, record};
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

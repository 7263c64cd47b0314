//! The master's check of a pushed chain (issue #17, `rms_storage::chain_check`): a device's
//! linked events and the head it signs verify at the master, and each way of breaking them — an
//! event changed, a link that does not continue, a dropped link, no head, a flipped signature, a
//! key the trust list does not bind to the pusher — is named.

#![allow(clippy::unwrap_used)]

use rms_domain::{
    ChainBreak, Epoch, NewSale, NewSaleLine, PushHead, Role, SyncEvent, Term, TrustState,
};
use rms_storage::chain_check::{Checker, Heads, Prehashed};
use rms_storage::journal_heads::push_head;
use rms_storage::local::{self, Command};
use rms_storage::{Store, events};

mod common;

use common::{Key, device, master};

const NOW_MS: u64 = 1_764_091_800_000;

/// Device 1 as master, trusting `key` for device 2.
fn master_trusting(key: &Key) -> Store {
    let store = master(Store::open_in_memory(device(1)).unwrap());
    let trust = Command::Trust {
        fingerprint: key.fingerprint(),
        device_id: device(2),
        name: "till 2".into(),
        state: TrustState::Trusted,
        how: "approved".into(),
    };
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, trust))
        .unwrap();
    store
}

/// Device 2, a client with `n` pending sales (each linked in its journal).
fn client_with_sales(n: usize) -> Store {
    let store = Store::open_in_memory(device(2)).unwrap();
    let create = common::create("tea", 100);
    store
        .write(|tx| local::record(tx, Role::Client, NOW_MS, create))
        .unwrap();
    for _ in 0..n {
        let sale = common::sell("tea", 1);
        store
            .write(|tx| local::record(tx, Role::Client, NOW_MS, sale))
            .unwrap();
    }
    store
}

/// The client's pending events and the head it signs for them, as its transport pushes them.
fn push(client: &Store, key: &Key) -> (Vec<SyncEvent>, Option<PushHead>) {
    let events = client.read(|c| events::pending(c, 1000)).unwrap();
    let seq = events.last().unwrap().chain.as_ref().unwrap().seq;
    let head = client
        .read(|c| push_head(c, device(2), key, seq, NOW_MS))
        .unwrap();
    (events, head)
}

/// The master's verdict on a push, the same whether the push's hashes and signature were worked
/// out as it arrived (`Prehashed`, what a node does) or by the checker.
fn check(master: &Store, events: &[SyncEvent], head: Option<&PushHead>) -> Result<(), ChainBreak> {
    let checker = Checker::new(Heads::Required);
    let plain = master
        .read(|c| checker.check(c, device(2), events, head, None))
        .unwrap();
    let prehashed = Prehashed::of(device(2), events, head).unwrap();
    assert!(prehashed.is_of(device(2), events, head));
    let fast = master
        .read(|c| checker.check(c, device(2), events, head, Some(&prehashed)))
        .unwrap();
    assert_eq!(plain, fast, "the prehashed check agrees");
    // Worked out from other events, it is not used.
    if let Some((_, rest)) = events.split_first() {
        assert!(!prehashed.is_of(device(2), rest, head));
        let other = master
            .read(|c| checker.check(c, device(2), rest, head, Some(&prehashed)))
            .unwrap();
        let alone = master
            .read(|c| checker.check(c, device(2), rest, head, None))
            .unwrap();
        assert_eq!(other, alone);
    }
    plain
}

#[test]
fn an_honest_push_verifies_and_each_break_is_named() {
    let key = Key::new();
    let master = master_trusting(&key);
    let client = client_with_sales(3);
    let (events, head) = push(&client, &key);
    assert_eq!(events.len(), 4, "the product and three sales");
    assert_eq!(events[0].chain.as_ref().unwrap().seq, 1);
    assert_eq!(check(&master, &events, head.as_ref()), Ok(()));

    // A sale changed after it was journaled: the head signs the journal's hash, not this one.
    let mut changed = events.clone();
    if let rms_domain::EventPayload::SaleRecorded { lines, .. } = &mut changed[3].payload {
        lines[0].qty = 9;
    }
    assert!(matches!(
        check(&master, &changed, head.as_ref()),
        Err(ChainBreak::Signature { .. })
    ));
    // A sale in the middle changed: the next event's link no longer continues it.
    let mut changed = events.clone();
    if let rms_domain::EventPayload::SaleRecorded { lines, .. } = &mut changed[1].payload {
        lines[0].price_cents = 1;
    }
    assert_eq!(
        check(&master, &changed, head.as_ref()),
        Err(ChainBreak::Link {
            event_id: events[2].event_id,
            why: "its link does not continue the hash of the entry before it",
        })
    );
    // Two events swapped.
    let mut swapped = events.clone();
    swapped.swap(1, 2);
    assert!(matches!(
        check(&master, &swapped, head.as_ref()),
        Err(ChainBreak::Link { .. })
    ));
    // A link dropped after linked events.
    let mut dropped = events.clone();
    dropped[2].chain = None;
    assert_eq!(
        check(&master, &dropped, head.as_ref()),
        Err(ChainBreak::Unlinked {
            event_id: events[2].event_id
        })
    );
    // No head, or a head of another position.
    assert_eq!(check(&master, &events, None), Err(ChainBreak::Unsigned));
    assert_eq!(
        check(&master, &events[..3], head.as_ref()),
        Err(ChainBreak::Unsigned)
    );
    // One digit of the signature changed.
    let mut flipped = head.clone().unwrap();
    let digit = if flipped.signature.starts_with('0') {
        "1"
    } else {
        "0"
    };
    flipped.signature.replace_range(0..1, digit);
    assert_eq!(
        check(&master, &events, Some(&flipped)),
        Err(ChainBreak::Signature {
            why: "its signature does not verify"
        })
    );
    // Signed by a key the master does not trust for device 2.
    let stranger = Key::new();
    let (_, foreign) = push(&client, &stranger);
    assert_eq!(
        check(&master, &events, foreign.as_ref()),
        Err(ChainBreak::Signature {
            why: "it is signed by a key the trust list does not trust for this device"
        })
    );
}

#[test]
fn a_push_continues_what_the_master_holds() {
    let key = Key::new();
    let master = master_trusting(&key);
    let client = client_with_sales(2);
    let (events, head) = push(&client, &key);
    assert_eq!(check(&master, &events, head.as_ref()), Ok(()));
    // The master logs them (as deciding the push would), and the client marks them synced.
    master
        .write(|tx| {
            for event in &events {
                events::insert(tx, event, None)?;
            }
            Ok(())
        })
        .unwrap();
    client
        .write(|tx| {
            tx.execute("UPDATE sync_events SET status = 'synced'", [])?;
            Ok(())
        })
        .unwrap();
    let sale = Command::Sell(NewSale {
        user_id: "bob".into(),
        lines: vec![NewSaleLine {
            sku: "tea".into(),
            qty: 1,
        }],
    });
    client
        .write(|tx| local::record(tx, Role::Client, NOW_MS, sale))
        .unwrap();
    let (next, head) = push(&client, &key);
    assert_eq!(next.len(), 1);
    assert_eq!(check(&master, &next, head.as_ref()), Ok(()));

    // A link that skips a position, or names another predecessor, is refused against the
    // master's copy of the event before it.
    let mut skipped = next.clone();
    skipped[0].chain.as_mut().unwrap().seq += 1;
    assert!(matches!(
        check(&master, &skipped, head.as_ref()),
        Err(ChainBreak::Link {
            why: "its chain position does not follow the event before it",
            ..
        })
    ));
    let mut other = next.clone();
    other[0].chain.as_mut().unwrap().prev = "ab".repeat(32);
    assert!(matches!(
        check(&master, &other, head.as_ref()),
        Err(ChainBreak::Link {
            why: "its link does not continue the hash of the entry before it",
            ..
        })
    ));
}

/// The master holds the client's pushed events, as deciding them would leave it.
fn master_holds(master: &Store, events: &[SyncEvent]) {
    master
        .write(|tx| {
            for event in events {
                events::insert(tx, event, None)?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_gap_in_event_numbers_or_a_changed_copy_does_not_move_the_anchor() {
    let key = Key::new();
    let master = master_trusting(&key);
    let client = client_with_sales(2);
    let (events, head) = push(&client, &key);
    assert_eq!(check(&master, &events, head.as_ref()), Ok(()));
    master_holds(&master, &events);

    // Event numbers that skip (a bumped sequence) while the chain does not: a device's numbers
    // and positions move together, so the position no longer follows.
    let mut later = events.last().unwrap().clone();
    later.event_id.seq += 5;
    if let rms_domain::EventPayload::SaleRecorded { sale_id, .. } = &mut later.payload {
        *sale_id = later.event_id.to_string();
    }
    let link = later.chain.as_mut().unwrap();
    link.seq += 1;
    link.prev = "cd".repeat(32);
    assert!(matches!(
        check(&master, std::slice::from_ref(&later), head.as_ref()),
        Err(ChainBreak::Link {
            why: "its chain position does not follow the event before it",
            ..
        })
    ));
    // Nor can a link be dropped after a gap.
    later.chain = None;
    assert_eq!(
        check(&master, std::slice::from_ref(&later), None),
        Err(ChainBreak::Unlinked {
            event_id: later.event_id
        })
    );
    // An event the master holds comes with the link the master holds: a rebuilt link is refused.
    let mut relinked = events[2].clone();
    relinked.chain.as_mut().unwrap().prev = "ef".repeat(32);
    assert_eq!(
        check(&master, std::slice::from_ref(&relinked), head.as_ref()),
        Err(ChainBreak::Link {
            event_id: relinked.event_id,
            why: "it differs from the master's copy of it"
        })
    );
    // Changed content under a held id is the core's `event_id_reused` for that event; the chain
    // goes on from the master's copy, and the head no longer signs the changed event.
    let mut changed = events[2].clone();
    if let rms_domain::EventPayload::SaleRecorded { lines, .. } = &mut changed.payload {
        lines[0].qty = 7;
    }
    assert!(matches!(
        check(&master, std::slice::from_ref(&changed), head.as_ref()),
        Err(ChainBreak::Signature { .. })
    ));
}

#[test]
fn a_devices_first_binding_may_come_in_the_push_it_signs() {
    // The master has no trust entry for device 2 (it admitted it on a link it dialed); the
    // device's own `self` trust event, in the push, binds its certificate as the rules allow.
    let key = Key::new();
    let master = Store::open_in_memory(device(1)).unwrap();
    let client = Store::open_in_memory(device(2)).unwrap();
    let trust = Command::Trust {
        fingerprint: key.fingerprint(),
        device_id: device(2),
        name: "till 2".into(),
        state: TrustState::Trusted,
        how: "self".into(),
    };
    client
        .write(|tx| local::record(tx, Role::Client, NOW_MS, trust))
        .unwrap();
    let (events, head) = push(&client, &key);
    assert_eq!(check(&master, &events, head.as_ref()), Ok(()));
    // Another key is not bound by it.
    let (_, other) = push(&client, &Key::new());
    assert!(matches!(
        check(&master, &events, other.as_ref()),
        Err(ChainBreak::Signature { .. })
    ));
}

#[test]
fn migration_9_links_the_events_journaled_before_it() {
    let client = client_with_sales(3);
    let linked = client.read(|c| events::pending(c, 100)).unwrap();
    client
        .write(|tx| {
            tx.execute_batch("UPDATE sync_events SET chain_seq = NULL, chain_prev = NULL")?;
            let migration = include_str!("../../../migrations/0009_event_chain.sql");
            let fill = &migration[migration.find("UPDATE sync_events").unwrap()..];
            tx.execute_batch(fill)?;
            Ok(())
        })
        .unwrap();
    let filled = client.read(|c| events::pending(c, 100)).unwrap();
    assert_eq!(filled, linked, "the links are the journal's");
}

#[test]
fn a_replaced_device_takes_its_chain_back_from_the_log() {
    // Device 2's disk is lost after its events reached the master's log; its replacement (same
    // id, empty database) pulls them back: its sequence moves past them, its journal takes them
    // back, it verifies, and its next event continues the chain the master holds.
    let old = client_with_sales(3);
    let epoch = Epoch {
        term: Term(1),
        master_id: device(1),
        master_priority: 0,
    };
    let entries: Vec<rms_domain::LogEntry> = old
        .read(|c| events::pending(c, 100))
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, mut event)| {
            event.status = rms_domain::EventStatus::Synced;
            event.master_seq = Some(i as u64 + 1);
            rms_domain::LogEntry {
                event,
                epoch,
                products: Vec::new(),
                forced: false,
            }
        })
        .collect();
    let new = Store::open_in_memory(device(2)).unwrap();
    new.write(|tx| rms_storage::replica::apply_entries(tx, &entries).map(|_| ()))
        .unwrap();
    let verified = new.read(rms_storage::journal::verify).unwrap();
    assert_eq!(verified.broken, None);
    let milk = Command::CreateProduct(rms_domain::NewProduct {
        sku: "milk".into(),
        name: "Milk".into(),
        price_cents: 99,
        stock: 5,
        user_id: None,
    });
    let made = new
        .write(|tx| local::record(tx, Role::Client, NOW_MS, milk))
        .unwrap();
    assert_eq!(
        made.event.event_id.seq, 5,
        "past the events the log brought back"
    );
    let key = Key::new();
    let master = master_trusting(&key);
    let held: Vec<SyncEvent> = entries
        .iter()
        .map(|e| SyncEvent {
            master_seq: None,
            status: rms_domain::EventStatus::Pending,
            ..e.event.clone()
        })
        .collect();
    master_holds(&master, &held);
    let (pending, head) = push(&new, &key);
    assert_eq!(pending.len(), 1);
    assert_eq!(check(&master, &pending, head.as_ref()), Ok(()));
}

#[test]
fn an_honest_pushs_prehashed_result_never_vouches_for_other_content_under_its_ids() {
    let key = Key::new();
    let master = master_trusting(&key);
    let client = client_with_sales(3);
    let (events, head) = push(&client, &key);
    let honest = Prehashed::of(device(2), &events, head.as_ref()).unwrap();
    let checker = Checker::new(Heads::Required);
    let verdicts = |events: &[SyncEvent], head: Option<&PushHead>| {
        let with = master
            .read(|c| checker.check(c, device(2), events, head, Some(&honest)))
            .unwrap();
        let without = master
            .read(|c| checker.check(c, device(2), events, head, None))
            .unwrap();
        (with, without)
    };
    let (with, without) = verdicts(&events, head.as_ref());
    assert_eq!((with, without), (Ok(()), Ok(())));

    // The same ids with other content, another link, or another head.
    let mut qty = events.clone();
    if let rms_domain::EventPayload::SaleRecorded { lines, .. } = &mut qty[3].payload {
        lines[0].qty = 9;
    }
    let mut user = events.clone();
    user[1].user_id = "eve".into();
    let mut link = events.clone();
    link[2].chain.as_mut().unwrap().prev = "ab".repeat(32);
    let mut statement = head.clone().unwrap();
    statement.statement = statement.statement.replace("\"at_ms\":", "\"at_ms\":1");
    let mut certificate = head.clone().unwrap();
    certificate.certificate = format!("00{}", certificate.certificate);
    for (tampered, head) in [
        (&qty, head.clone()),
        (&user, head.clone()),
        (&link, head.clone()),
        (&events, Some(statement)),
        (&events, Some(certificate)),
    ] {
        assert!(!honest.is_of(device(2), tampered, head.as_ref()));
        let (with, without) = verdicts(tampered, head.as_ref());
        assert!(without.is_err(), "the tampered push is refused");
        assert_eq!(with, without, "the honest push's result is not used");
    }
}

/// The master log's entries for `events`, from master_seq `from`.
fn logged(events: Vec<SyncEvent>, from: u64) -> Vec<rms_domain::LogEntry> {
    let epoch = Epoch {
        term: Term(1),
        master_id: device(1),
        master_priority: 0,
    };
    events
        .into_iter()
        .enumerate()
        .map(|(i, mut event)| {
            event.status = rms_domain::EventStatus::Synced;
            event.master_seq = Some(from + i as u64);
            rms_domain::LogEntry {
                event,
                epoch,
                products: Vec::new(),
                forced: false,
            }
        })
        .collect()
}

#[test]
fn a_restored_copy_numbers_past_every_earlier_incarnation_and_its_chain_verifies() {
    use rms_storage::incarnation::{self, Why};
    // Device 2 is backed up after its first sale (events 2-1, 2-2), sells three more, all of
    // which reach the master, then its disk breaks and the copy is restored.
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let store = Store::open(&live, device(2)).unwrap();
    for command in [common::create("tea", 100), common::sell("tea", 1)] {
        store
            .write(|tx| local::record(tx, Role::Client, NOW_MS, command))
            .unwrap();
    }
    let copy = dir.path().join("copy.db");
    rms_storage::db::backup_into(&live, &copy).unwrap();
    for _ in 0..3 {
        let sale = common::sell("tea", 1);
        store
            .write(|tx| local::record(tx, Role::Client, NOW_MS, sale))
            .unwrap();
    }
    let old_events = store.read(|c| events::pending(c, 100)).unwrap();
    assert_eq!(old_events.len(), 5);
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir(&restored_dir).unwrap();
    std::fs::copy(&copy, restored_dir.join("rms.db")).unwrap();
    let restored = Store::open(&restored_dir, device(2)).unwrap();

    // At start it begins an incarnation (once), and sells before it reaches the master.
    let later_ms = NOW_MS + 3_600_000;
    let began = incarnation::start(&restored, later_ms, true)
        .unwrap()
        .unwrap();
    assert_eq!(began.why, Why::Restored);
    assert_eq!(began.after_seq, 2);
    assert_eq!(began.first_seq, incarnation::floor(later_ms));
    assert!(began.first_seq > 5 && began.first_seq < 1 << 53);
    assert_eq!(incarnation::start(&restored, later_ms, true).unwrap(), None);
    let sale = common::sell("tea", 1);
    let made = restored
        .write(|tx| local::record(tx, Role::Client, later_ms, sale))
        .unwrap();
    assert_eq!(made.event.event_id.seq, began.first_seq, "never 2-3 again");
    assert_eq!(made.event.chain.as_ref().unwrap().seq, began.first_seq);

    // The master holds the old incarnation's five; the restored device's push verifies.
    let key = Key::new();
    let master = master_trusting(&key);
    master_holds(&master, &old_events);
    let (pending, head) = push(&restored, &key);
    assert_eq!(
        pending.iter().map(|e| e.event_id.seq).collect::<Vec<_>>(),
        vec![1, 2, began.first_seq],
        "its own unacknowledged events, the old ones as they were"
    );
    assert_eq!(check(&master, &pending, head.as_ref()), Ok(()));

    // The log brings the old incarnation's 2-3..2-5 back: stored, not journaled, and the journal
    // still verifies; the next event follows its own incarnation.
    restored
        .write(|tx| rms_storage::replica::apply_entries(tx, &logged(old_events, 1)).map(|_| ()))
        .unwrap();
    let verified = restored.read(rms_storage::journal::verify).unwrap();
    assert_eq!(verified.broken, None);
    // (The stand-in log entries carry no product state: a new product, not a sale of tea.)
    let milk = common::create("milk", 5);
    let next = restored
        .write(|tx| local::record(tx, Role::Client, later_ms, milk))
        .unwrap();
    assert_eq!(next.event.event_id.seq, began.first_seq + 1);
    assert_eq!(
        restored.read(rms_storage::journal::verify).unwrap().broken,
        None
    );
}

#[test]
fn a_fresh_replacement_that_joins_numbers_past_its_predecessor() {
    use rms_storage::incarnation::{self, Why};
    let old = client_with_sales(3);
    let old_events = old.read(|c| events::pending(c, 100)).unwrap();
    let new = Store::open_in_memory(device(2)).unwrap();
    // A store of its own (no peers) numbers from 1; one that joins a store does not.
    assert_eq!(
        new.read(|c| incarnation::at_start(c, false)).unwrap(),
        incarnation::Start::Go
    );
    let began = incarnation::start(&new, NOW_MS, true).unwrap().unwrap();
    assert_eq!(began.why, Why::Joined);
    assert_eq!(began.after_seq, 0);
    // Its first event (its own trust entry, made before it was paired) cannot collide.
    let key = Key::new();
    let trust = Command::Trust {
        fingerprint: key.fingerprint(),
        device_id: device(2),
        name: "till 2".into(),
        state: TrustState::Trusted,
        how: "self".into(),
    };
    let made = new
        .write(|tx| local::record(tx, Role::Client, NOW_MS, trust))
        .unwrap();
    assert_eq!(made.event.event_id.seq, began.first_seq);
    // The log brings its predecessor's events; its journal verifies, its push verifies at a
    // master that holds them.
    new.write(|tx| {
        rms_storage::replica::apply_entries(tx, &logged(old_events.clone(), 1)).map(|_| ())
    })
    .unwrap();
    assert_eq!(new.read(rms_storage::journal::verify).unwrap().broken, None);
    let master = master(Store::open_in_memory(device(1)).unwrap());
    master_holds(&master, &old_events);
    let (pending, head) = push(&new, &key);
    assert_eq!(pending.len(), 1);
    assert_eq!(check(&master, &pending, head.as_ref()), Ok(()));
}

#[test]
fn only_a_fresh_chain_after_a_gap_of_numbers_may_start_over_at_offset_zero() {
    // The master holds device 2's events at positions one below their numbers (a device that
    // made an event before it had a journal).
    let key = Key::new();
    let master = master_trusting(&key);
    let client = client_with_sales(2);
    let (events, head) = push(&client, &key);
    let offset: Vec<SyncEvent> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.chain.as_mut().unwrap().seq -= 1;
            e
        })
        .collect();
    master_holds(&master, &offset[1..]);
    let last = events.last().unwrap();
    let next_number = |seq: u64| {
        let mut next = last.clone();
        next.event_id.seq = seq;
        if let rms_domain::EventPayload::SaleRecorded { sale_id, .. } = &mut next.payload {
            *sale_id = next.event_id.to_string();
        }
        next
    };
    let relinked = |mut event: SyncEvent, prev: String| {
        event.chain = Some(rms_domain::ChainLink {
            seq: event.event_id.seq,
            prev,
        });
        event
    };
    let position = |r: Result<(), ChainBreak>| {
        matches!(
            r,
            Err(ChainBreak::Link {
                why: "its chain position does not follow the event before it",
                ..
            })
        )
    };
    // The next number at offset zero, from the genesis or any other hash: refused.
    for prev in [journal_genesis(), "cd".repeat(32)] {
        let next = relinked(next_number(last.event_id.seq + 1), prev);
        assert!(position(check(
            &master,
            std::slice::from_ref(&next),
            head.as_ref()
        )));
    }
    // After a gap of numbers, from another hash than the genesis: refused.
    let far = relinked(next_number(1 << 40), "cd".repeat(32));
    assert!(position(check(
        &master,
        std::slice::from_ref(&far),
        head.as_ref()
    )));
    // After a gap, a fresh chain (the genesis, position = number): a new incarnation's first
    // event; its head still has to sign it (here it does not: the head is the old push's).
    let fresh = relinked(next_number(1 << 40), journal_genesis());
    assert!(!position(check(
        &master,
        std::slice::from_ref(&fresh),
        head.as_ref()
    )));
}

fn journal_genesis() -> String {
    "0".repeat(64)
}

#[test]
fn an_incarnation_needs_a_clock_past_the_database_and_a_forged_one_is_named() {
    use rms_storage::incarnation;
    let store = client_with_sales(1);
    store.write(|tx| incarnation::mark_backup_copy(tx)).unwrap();
    // A clock behind the newest event: refused, nothing changed.
    let early = incarnation::start(&store, NOW_MS - 60_000, true);
    assert!(
        matches!(early, Err(rms_storage::StorageError::ClockBehind { .. })),
        "{early:?}"
    );
    assert!(store.read(incarnation::all).unwrap().is_empty());
    let began = incarnation::start(&store, NOW_MS + 1, true)
        .unwrap()
        .unwrap();
    assert_eq!(
        store.read(rms_storage::journal::verify).unwrap().broken,
        None
    );
    // A row added behind the node's back (to skip own events, or allow a jump) is named.
    store
        .write(|tx| {
            tx.execute(
                "INSERT INTO incarnations (first_seq, after_seq, began_at_ms, why) \
                 VALUES (?1, 1, 0, 'restored')",
                [i64::try_from(began.first_seq + 1000).unwrap()],
            )?;
            Ok(())
        })
        .unwrap();
    let broken = store
        .read(rms_storage::journal::verify)
        .unwrap()
        .broken
        .expect("named");
    assert!(broken.why.contains("not in the audit log"), "{broken}");
}

#[test]
fn an_in_memory_copy_begins_an_incarnation_only_from_a_set_clock_past_the_last_one() {
    use rms_storage::StorageError;
    use rms_storage::incarnation::{self, Why};
    let store = client_with_sales(2);
    let copy = store.backup_in_memory().unwrap();
    // The copy holds what the database held, and is marked as a backup copy.
    assert_eq!(
        copy.read(rms_storage::node_state::load).unwrap().last_seq,
        store.read(rms_storage::node_state::load).unwrap().last_seq
    );
    assert_eq!(
        copy.read(|c| incarnation::at_start(c, false)).unwrap(),
        incarnation::Start::Begin(Why::Restored)
    );
    // The original is not marked.
    assert_eq!(
        store.read(|c| incarnation::at_start(c, false)).unwrap(),
        incarnation::Start::Go
    );
    // A clock that was never set (a till that lost its clock battery): refused, nothing changed.
    let unset = incarnation::start(&copy, 86_400_000, true);
    assert!(
        matches!(unset, Err(StorageError::ClockUnset { .. })),
        "{unset:?}"
    );
    assert!(copy.read(incarnation::all).unwrap().is_empty());
    // Begun from a set clock; a copy of it taken before it made any event cannot begin again
    // before that start, although it holds no event newer than the clock.
    let began = incarnation::start(&copy, NOW_MS + 60_000, true)
        .unwrap()
        .expect("begun");
    assert_eq!(began.why, Why::Restored);
    let again = copy.backup_in_memory().unwrap();
    let behind = incarnation::start(&again, NOW_MS + 30_000, true);
    assert!(
        matches!(behind, Err(StorageError::ClockBehind { .. })),
        "{behind:?}"
    );
    let later = incarnation::start(&again, NOW_MS + 90_000, true)
        .unwrap()
        .expect("begun");
    assert!(later.first_seq > began.first_seq);
}

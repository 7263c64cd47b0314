//! The store's side of head office in rms-storage: head office's catalogue change is logged once
//! and wins, and the uplink's batch starts where the store's log and head office's cursor agree.

#![allow(clippy::unwrap_used)]

use rms_domain::hq::{CatalogChange, Cursor};
use rms_domain::{DeviceId, Epoch, NewProduct, NewSale, NewSaleLine, ProductPatch, Role, Term};
use rms_storage::local::{self, Command};
use rms_storage::{StorageError, Store, node_state, uplink};

const NOW_MS: u64 = 1_764_091_800_000;

fn epoch(term: u64) -> Epoch {
    Epoch {
        term: Term(term),
        master_id: DeviceId::new(1).unwrap(),
        master_priority: 0,
    }
}

/// Device 1, master of `term`.
fn master(term: u64) -> Store {
    let store = Store::open_in_memory(DeviceId::new(1).unwrap()).unwrap();
    store
        .write(|tx| {
            let mut state = node_state::load(tx)?;
            state.epoch = Some(epoch(term));
            node_state::save(tx, &state)
        })
        .unwrap();
    store
}

fn write(store: &Store, command: Command) -> Result<local::Recorded, StorageError> {
    store.write(|tx| local::record(tx, Role::Master, NOW_MS, command))
}

fn sell(store: &Store, n: usize) {
    for _ in 0..n {
        let sale = NewSale {
            user_id: "ann".into(),
            lines: vec![NewSaleLine {
                sku: "tea".into(),
                qty: 1,
            }],
        };
        write(store, Command::Sell(sale)).unwrap();
    }
}

fn tea_store(term: u64) -> Store {
    let store = master(term);
    let tea = NewProduct {
        sku: "tea".into(),
        name: "Tea".into(),
        price_cents: 300,
        stock: 1000,
        user_id: None,
    };
    write(&store, Command::CreateProduct(tea)).unwrap();
    store
}

fn change(version: u64, price_cents: i64) -> Command {
    Command::HeadOffice(CatalogChange {
        version,
        sku: "tea".into(),
        name: "Green tea".into(),
        price_cents,
    })
}

#[test]
fn a_catalogue_change_is_logged_once_wins_and_keeps_the_stock() {
    let store = tea_store(1);
    let patch = ProductPatch {
        name: Some("Local tea".into()),
        ..ProductPatch::default()
    };
    write(
        &store,
        Command::UpdateProduct {
            sku: "tea".into(),
            patch,
        },
    )
    .unwrap();
    let done = write(&store, change(1, 350)).unwrap();
    let tea = &done.products[0];
    assert_eq!(
        (tea.name.as_str(), tea.price_cents, tea.stock),
        ("Green tea", 350, 1000)
    );
    assert!(
        done.event.critical,
        "a price change reaches every till at once"
    );
    assert!(done.event.origin().is_head_office());
    let again = write(&store, change(1, 350)).unwrap_err();
    assert!(matches!(again, StorageError::Refused { .. }), "{again}");
    assert_eq!(store.read(local::catalog_version).unwrap(), 1);
    let audit = store
        .read(|c| {
            rms_storage::audit::query(
                c,
                &rms_storage::audit::AuditQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
        })
        .unwrap();
    let overwritten = audit
        .iter()
        .find_map(|e| e.details.get("overwritten"))
        .expect("the overwritten value is audited");
    assert_eq!(overwritten["name"], "Local tea");
    let zero = change(0, 1);
    assert!(matches!(write(&store, zero), Err(StorageError::Invalid(_))));
}

fn cursor(since: u64, epoch: Option<Epoch>) -> Cursor {
    Cursor {
        since,
        since_epoch: epoch,
        since_event: None,
        max_epoch: epoch,
    }
}

fn plan(store: &Store, cursor: &Cursor, entries_max: usize) -> uplink::Planned {
    let now = epoch(9);
    store
        .read(|c| uplink::batch_after(c, cursor, now, entries_max, 1 << 20))
        .unwrap()
}

#[test]
fn a_batch_starts_at_the_cursor_when_the_logs_agree() {
    let store = tea_store(1);
    sell(&store, 5);
    let first = plan(&store, &cursor(0, None), 4);
    assert_eq!((first.batch.since, first.batch.truncate), (0, false));
    let seqs: Vec<u64> = first.batch.entries.iter().map(|e| e.seq()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let next = plan(&store, &cursor(4, Some(epoch(1))), 100);
    assert_eq!(
        (next.batch.since, next.batch.truncate, next.behind),
        (4, false, false)
    );
    assert_eq!(next.batch.entries.len(), 2);
    assert_eq!(
        next.batch.since_event,
        Some(first.batch.entries[3].event.event_id)
    );
}

#[test]
fn a_disagreement_starts_where_the_logs_agree_and_truncates() {
    let store = tea_store(2);
    sell(&store, 3);
    // Head office holds entries of an epoch this log never had past 2 (another island's).
    let other_island = Epoch {
        term: Term(2),
        master_id: DeviceId::new(3).unwrap(),
        master_priority: 0,
    };
    let split = plan(&store, &cursor(3, Some(other_island)), 100);
    assert!(split.batch.truncate);
    assert!(split.batch.since < 3);
    // Head office holds more than this log (a restored backup): behind, truncating at the head.
    let behind = plan(&store, &cursor(10, Some(epoch(2))), 100);
    assert!(behind.behind && behind.batch.truncate);
    assert_eq!(behind.batch.since, 4);
    // Same position and epoch, another event: everything again, from 0.
    let mut restored = cursor(2, Some(epoch(2)));
    restored.since_event = Some("7-7".parse().unwrap());
    let again = plan(&store, &restored, 100);
    assert_eq!((again.batch.since, again.batch.truncate), (0, true));
}

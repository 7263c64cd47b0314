//! rms-storage against in-memory and file databases: migrations, the one-transaction write unit,
//! and the counters that must survive a restart.

#![allow(clippy::unwrap_used)]

use rms_domain::{EventStatus, Operation, RejectReason, Role, StockAdjustment, Term};
use rms_storage::audit::AuditQuery;
use rms_storage::local::{self, Command};
use rms_storage::{StorageError, Store, audit, db, events, node_state, products, sales};

mod common;

use common::{create, device, master, sell};

const NOW_MS: u64 = 1_764_091_800_000;

fn counts(store: &Store) -> (i64, i64, i64, i64) {
    store
        .read(|c| {
            let n = |from: &str| -> Result<i64, StorageError> {
                Ok(c.query_row(&format!("SELECT COUNT(*) FROM {from}"), [], |r| r.get(0))?)
            };
            Ok((
                n("products")?,
                n("sync_events")?,
                n("sync_events WHERE kind = 'sale_recorded'")?,
                n("audit_log")?,
            ))
        })
        .unwrap()
}

#[test]
fn a_master_sale_is_state_event_and_audit_in_one_commit() {
    // Proves the write unit: stock falls, the event is decided at once on the master, one audit entry.
    let store = master(Store::open_in_memory(device(1)).unwrap());
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, create("milk", 3)))
        .unwrap();
    let done = store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, sell("milk", 2)))
        .unwrap();
    assert_eq!(done.event.event_id.to_string(), "1-2");
    assert_eq!(done.event.status, EventStatus::Synced);
    assert_eq!(done.event.master_seq, Some(2));
    assert!(!done.event.critical);
    let sale = done.sale.unwrap();
    assert_eq!(sale.total_cents, 500);
    store
        .read(|c| {
            assert_eq!(products::get(c, "milk")?.unwrap().stock, 1);
            assert_eq!(sales::get(c, &sale.sale_id)?.unwrap(), sale);
            let log = events::log_after(c, 0, 10)?;
            assert_eq!(
                log.iter().map(|e| e.event.master_seq).collect::<Vec<_>>(),
                [Some(1), Some(2)]
            );
            let entries = audit::query(
                c,
                &AuditQuery {
                    limit: 10,
                    ..Default::default()
                },
            )?;
            assert_eq!(entries[0].operation, Operation::Sale);
            assert_eq!(entries[0].event_id, Some(done.event.event_id));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        counts(&store),
        (1, 2, 1, 2),
        "two writes, two audit entries"
    );
}

#[test]
fn a_client_write_stays_pending_and_emptying_a_product_is_critical() {
    let store = Store::open_in_memory(device(2)).unwrap();
    store
        .write(|tx| local::record(tx, Role::Client, NOW_MS, create("milk", 1)))
        .unwrap();
    let done = store
        .write(|tx| local::record(tx, Role::Client, NOW_MS, sell("milk", 1)))
        .unwrap();
    assert_eq!(done.event.status, EventStatus::Pending);
    assert_eq!(done.event.master_seq, None);
    assert!(
        done.event.critical,
        "the last unit sold must reach the master at once"
    );
    let (pending, oldest) = store.read(events::pending_summary).unwrap();
    assert_eq!((pending, oldest), (2, Some(NOW_MS)));
    let pending = store.read(|c| events::pending(c, 1000)).unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending[0].hlc < pending[1].hlc);
}

#[test]
fn a_write_that_fails_half_way_leaves_nothing() {
    // Everything of a write is in one transaction: an error after the inserts rolls all back.
    let store = master(Store::open_in_memory(device(1)).unwrap());
    let before = counts(&store);
    let err = store
        .write(|tx| {
            local::record(tx, Role::Master, NOW_MS, create("milk", 5))?;
            Err::<(), _>(StorageError::NotFound {
                what: "the disk".into(),
            })
        })
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }));
    assert_eq!(counts(&store), before);
    let state = store.read(node_state::load).unwrap();
    assert_eq!((state.last_seq, state.log_head), (0, 0));
}

#[test]
fn refusals_write_nothing() {
    let store = master(Store::open_in_memory(device(1)).unwrap());
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, create("milk", 1)))
        .unwrap();
    let before = counts(&store);
    let refused = |command: Command| {
        store
            .write(|tx| local::record(tx, Role::Master, NOW_MS, command))
            .unwrap_err()
    };
    let reason = |err: StorageError| match err {
        StorageError::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(reason(refused(sell("milk", 2))), RejectReason::OutOfStock);
    assert_eq!(
        reason(refused(sell("bread", 1))),
        RejectReason::UnknownProduct
    );
    assert_eq!(
        reason(refused(create("milk", 1))),
        RejectReason::AlreadyExists
    );
    let adjust = Command::AdjustStock {
        sku: "milk".into(),
        adjustment: StockAdjustment {
            delta: -2,
            reason: "broken".into(),
            user_id: None,
        },
    };
    assert_eq!(reason(refused(adjust)), RejectReason::OutOfStock);
    assert!(
        matches!(refused(sell("milk", 0)), StorageError::Invalid(e) if e.field == "lines[0].qty")
    );
    assert_eq!(counts(&store), before);
    assert_eq!(
        store.read(node_state::load).unwrap().last_seq,
        1,
        "refusals use no sequence number"
    );
}

#[test]
fn the_sequence_and_clock_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let last_hlc = {
        let store = master(Store::open(dir.path(), device(7)).unwrap());
        store
            .write(|tx| local::record(tx, Role::Master, NOW_MS, create("a", 1)))
            .unwrap();
        let b = store
            .write(|tx| local::record(tx, Role::Master, NOW_MS, create("b", 1)))
            .unwrap();
        b.event.hlc
    };
    let store = master(Store::open(dir.path(), device(7)).unwrap());
    // The wall clock went back an hour: the event id and the clock still move forward.
    let c = store
        .write(|tx| local::record(tx, Role::Master, NOW_MS - 3_600_000, create("c", 1)))
        .unwrap();
    assert_eq!(c.event.event_id.to_string(), "7-3");
    assert!(c.event.hlc > last_hlc);
    assert_eq!(c.event.master_seq, Some(3));
}

#[test]
fn migrating_twice_is_a_no_op_and_a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), device(1)).unwrap());
    let path = dir.path().join(db::DB_FILE_NAME);
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    db::migrate(&mut conn).unwrap();
    db::migrate(&mut conn).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, db::SCHEMA_VERSION);
    drop(Store::open(dir.path(), device(1)).unwrap());

    conn.pragma_update(None, "user_version", db::SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = Store::open(dir.path(), device(1)).unwrap_err();
    assert!(
        matches!(err, StorageError::NewerSchema { found, .. } if found == db::SCHEMA_VERSION + 1)
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version,
        db::SCHEMA_VERSION + 1,
        "a refused database is left as it was"
    );
}

#[test]
fn a_database_is_tied_to_its_device() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), device(1)).unwrap());
    let err = Store::open(dir.path(), device(2)).unwrap_err();
    assert!(matches!(
        err,
        StorageError::WrongDevice {
            stored: 1,
            requested: 2
        }
    ));
}

#[test]
fn the_audit_log_is_append_only() {
    let store = master(Store::open_in_memory(device(1)).unwrap());
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, create("milk", 1)))
        .unwrap();
    let update = store.write(|tx| Ok(tx.execute("UPDATE audit_log SET outcome = 'error'", [])?));
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = store.write(|tx| Ok(tx.execute("DELETE FROM audit_log", [])?));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    assert_eq!(counts(&store).3, 1);
}

#[test]
fn a_file_database_passes_its_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = master(Store::open(dir.path(), device(1)).unwrap());
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, create("milk", 10)))
        .unwrap();
    store
        .write(|tx| local::record(tx, Role::Master, NOW_MS, sell("milk", 3)))
        .unwrap();
    assert_eq!(store.read(db::integrity_check).unwrap(), "ok");
    assert_eq!(
        store
            .read(|c| products::get(c, "milk"))
            .unwrap()
            .unwrap()
            .stock,
        7
    );
}

#[test]
fn a_rejected_sale_put_back_to_pending_keeps_its_reason_and_stays_out_of_the_stock() {
    // After an epoch change, own events with a verdict but no log entry go back to pending; a
    // rejected one must neither count in the stock tills see nor lose its reason.
    use rms_storage::replica;
    let store = Store::open_in_memory(device(2)).unwrap();
    store
        .write(|tx| local::record(tx, Role::Client, NOW_MS, create("milk", 5)))
        .unwrap();
    let sale = store
        .write(|tx| local::record(tx, Role::Client, NOW_MS, sell("milk", 2)))
        .unwrap();
    let id = sale.event.event_id;
    let stock = |store: &Store| {
        store
            .read(|c| products::get(c, "milk"))
            .unwrap()
            .unwrap()
            .stock
    };
    assert_eq!(stock(&store), 3);
    store
        .write(|tx| {
            replica::set_verdict(
                tx,
                &id,
                EventStatus::Rejected,
                Some(RejectReason::OutOfStock),
                None,
            )
        })
        .unwrap();
    assert_eq!(stock(&store), 5, "a rejected sale gives its units back");
    store.write(replica::repend_unlogged).unwrap();
    let event = store.read(|c| events::get(c, &id)).unwrap().unwrap();
    assert_eq!(
        (event.status, event.reason),
        (EventStatus::Pending, Some(RejectReason::OutOfStock))
    );
    assert_eq!(
        stock(&store),
        5,
        "and does not take them again while it waits to be logged"
    );
}

#[test]
fn a_database_of_schema_1_keeps_its_events_and_sales_when_migrated() {
    // Schema 1 copied each sale into `sales` and `sale_lines`; migration 2 drops those tables and
    // serves sales from their events, which hold every field.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(db::DB_FILE_NAME);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(include_str!("../../../schema.sql"))
        .unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    let event_id: rms_domain::EventId = "2-1".parse().unwrap();
    let event = rms_domain::SyncEvent {
        event_id,
        hlc: rms_domain::Hlc::new(NOW_MS, 0),
        user_id: "ann".into(),
        term: Term(1),
        critical: false,
        payload: rms_domain::EventPayload::SaleRecorded {
            sale_id: "2-1".into(),
            lines: vec![rms_domain::SaleLine {
                sku: "tea".into(),
                qty: 3,
                price_cents: 250,
            }],
        },
        status: EventStatus::Pending,
        reason: None,
        master_seq: None,
        created_at_ms: NOW_MS,
        accepted_before: false,
        chain: None,
    };
    // Written as schema 1's columns were (today's insert writes columns it did not have).
    conn.execute(
        "INSERT INTO sync_events (event_id, device_id, seq, hlc_wall_ms, hlc_counter, user_id, term,
         kind, entity_key, payload, critical, status, created_at_ms)
         VALUES ('2-1', 2, 1, ?1, 0, 'ann', 1, 'sale_recorded', '2-1', ?2, 0, 'pending', ?1)",
        rusqlite::params![
            i64::try_from(NOW_MS).unwrap(),
            serde_json::to_string(&event.payload).unwrap()
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO sales VALUES ('2-1', '2-1', 2, 'ann', 750, '2025-11-25T17:30:00.000Z')",
        [],
    )
    .unwrap();
    drop(conn);

    let store = Store::open(dir.path(), device(2)).unwrap();
    let sale = store.read(|c| sales::get(c, "2-1")).unwrap().unwrap();
    assert_eq!(sale.total_cents, 750);
    assert_eq!(sale.lines.len(), 1);
    assert_eq!(sale.status, rms_domain::SaleStatus::Pending);
    assert_eq!(sale.created_at, rms_domain::rfc3339_from_ms(NOW_MS));
    assert_eq!(store.read(|c| sales::list(c, 10)).unwrap(), vec![sale]);
    let copies: i64 = store
        .read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('sales', 'sale_lines', 'stock_adjustments')",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(copies, 0, "the copies are gone");
    // Migration 3 rebuilt sync_events keyed by (device_id, seq): the same rows, a sound file.
    let verdict = store.read(db::integrity_check).unwrap();
    assert_eq!(verdict, "ok");
    let stored = store.read(|c| events::get(c, &event_id)).unwrap();
    assert_eq!(stored, Some(event));
}

#[test]
fn entries_are_found_by_id_in_ranges_and_one_by_one() {
    let store = master(Store::open_in_memory(device(1)).unwrap());
    let write = |command| {
        store
            .write(|tx| local::record(tx, Role::Master, NOW_MS, command))
            .unwrap()
    };
    write(create("tea", 10)); // 1-1
    for _ in 0..3 {
        write(sell("tea", 1)); // 1-2 .. 1-4
    }
    let ids = |ids: &[&str]| -> Vec<rms_domain::EventId> {
        ids.iter().map(|id| id.parse().unwrap()).collect()
    };
    let found = |wanted: &[&str]| -> Vec<String> {
        let mut found: Vec<String> = store
            .read(|c| events::entries_of(c, &ids(wanted)))
            .unwrap()
            .iter()
            .map(|e| e.event.event_id.to_string())
            .collect();
        found.sort();
        found
    };
    // Dense: one range per device; ids in the range but not asked for stay out.
    assert_eq!(found(&["1-2", "1-4", "1-5", "2-3"]), ["1-2", "1-4"]);
    // Sparse: one by one.
    assert_eq!(found(&["1-1", "1-1000"]), ["1-1"]);
    assert!(found(&["3-1"]).is_empty());
    // A sequence number SQLite cannot hold is in no row: not found, not an error.
    let huge = format!("1-{}", u64::MAX);
    assert_eq!(found(&["1-1", &huge]), ["1-1"]);
    assert_eq!(store.read(|c| sales::get(c, &huge)).unwrap(), None);
}

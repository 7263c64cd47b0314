//! Daily closings (issue #17, `rms_storage::closing`): a past day a device sold on is due until it
//! is closed, once, with the count and total of its sales that day (rejected ones left out).

#![allow(clippy::unwrap_used)]

use rms_domain::{DAY_MS, DeviceId, EventPayload, RejectReason, Role};
use rms_storage::local::{self, Command};
use rms_storage::{StorageError, Store, closing};

mod common;

/// 2025-11-25T00:00:00Z.
const DAY_ONE: u64 = 1_764_028_800_000;

fn sell(store: &Store, at_ms: u64, qty: i64) {
    store
        .write(|tx| local::record(tx, Role::Client, at_ms, common::sell("tea", qty)))
        .unwrap();
}

#[test]
fn a_day_is_closed_once_with_its_sales() {
    let device = DeviceId::new(2).unwrap();
    let store = Store::open_in_memory(device).unwrap();
    store
        .write(|tx| local::record(tx, Role::Client, DAY_ONE, common::create("tea", 100)))
        .unwrap();
    sell(&store, DAY_ONE + 3_600_000, 2);
    sell(&store, DAY_ONE + DAY_MS - 1, 1);
    sell(&store, DAY_ONE + DAY_MS, 5); // the next day

    // During day one nothing is due; the day after, day one is.
    let due = |now| store.read(|c| closing::due(c, device, now)).unwrap();
    assert!(due(DAY_ONE + 5).is_empty());
    assert_eq!(due(DAY_ONE + DAY_MS + 5), vec!["2025-11-25".to_owned()]);

    let close = |day: &str| {
        let command = Command::CloseDay { day: day.into() };
        store.write(|tx| local::record(tx, Role::Client, DAY_ONE + DAY_MS + 10, command))
    };
    let closed = close("2025-11-25").unwrap();
    assert_eq!(
        closed.event.payload,
        EventPayload::DayClosed {
            day: "2025-11-25".into(),
            sales: 2,
            total_cents: 3 * 250,
        }
    );
    assert!(closed.event.chain.is_some(), "chained like every event");
    assert!(due(DAY_ONE + DAY_MS + 5).is_empty());
    assert!(matches!(
        close("2025-11-25"),
        Err(StorageError::Refused {
            reason: RejectReason::AlreadyExists,
            ..
        })
    ));
    assert!(matches!(close("25/11/2025"), Err(StorageError::Invalid(_))));
    assert_eq!(due(DAY_ONE + 2 * DAY_MS), vec!["2025-11-26".to_owned()]);
    let verified = store.read(rms_storage::journal::verify).unwrap();
    assert_eq!(verified.broken, None);
}

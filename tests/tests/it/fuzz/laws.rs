//! The laws of the rule book (SPEC §4, `docs/SYNC.md`, `rms_domain::resolver`) that a master's
//! state keeps whatever it is sent: what `fuzz_sync_core_as_master` checks after every group of
//! messages.
//!
//! They bind a master's log as long as that master decided every entry of it. A fuzzed master
//! that heard a greater epoch steps down and may then take entries from a "master" the fuzzer
//! makes up (any snapshot, any flag): from then on the laws are not looked at, and the look
//! says so (`Ok(false)`).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rms_domain::rules::{self, Products};
use rms_domain::{
    DeviceId, Epoch, EventPayload, EventStatus, LogEntry, Operation, Role, rfc3339_from_ms,
};
use rms_storage::audit::{self, AuditQuery};
use rms_storage::products::{self, Table};
use rms_storage::{Store, events};
use rms_sync::SyncNode;
use rms_transport::StoreAdapter;

/// What the laws remember of one master between two looks.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// The epoch the master led at the last look that applied, and each product's version then.
    epoch: Option<Epoch>,
    versions: BTreeMap<String, u64>,
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

fn read<T>(
    store: &Store,
    f: impl FnOnce(&rms_storage::Connection) -> Result<T, rms_storage::StorageError>,
) -> Result<T, TestCaseError> {
    store.read(f).map_err(fail)
}

impl Watch {
    /// Checks every law on `node`, device `me`, if it is master of a log it alone decided;
    /// returns whether the laws applied.
    pub(super) fn look(
        &mut self,
        node: &SyncNode<StoreAdapter>,
        me: DeviceId,
    ) -> Result<bool, TestCaseError> {
        let store = node.store().store();
        let log = read(store, |c| events::log_after(c, 0, usize::MAX))?;
        let Some(epoch) = node.epoch() else {
            return Ok(false);
        };
        if node.role() != Role::Master || log.iter().any(|e| e.epoch.master_id != me) {
            return Ok(false);
        }
        decided(&log, epoch)?;
        let base = read(store, |c| products::list_in(c, Table::Base))?;
        replay(&log, &base)?;
        stock(&log, &base)?;
        audited(store, &log)?;
        for product in &base {
            prop_assert!(product.price_cents >= 0, "a negative price: {product:?}");
        }
        self.versions_move_forward(epoch, &base)?;
        Ok(true)
    }

    /// Between two looks at a master of one epoch, no product disappears and no product's
    /// version goes back (undoing a log happens only on a client).
    fn versions_move_forward(
        &mut self,
        epoch: Epoch,
        base: &[rms_domain::Product],
    ) -> Result<(), TestCaseError> {
        let now: BTreeMap<String, u64> = base.iter().map(|p| (p.sku.clone(), p.version)).collect();
        if self.epoch == Some(epoch) {
            for (sku, before) in &self.versions {
                let after = now.get(sku);
                prop_assert!(
                    after.is_some_and(|v| v >= before),
                    "product {sku} went from version {before} to {after:?} in {epoch}"
                );
            }
        }
        self.epoch = Some(epoch);
        self.versions = now;
        Ok(())
    }
}

/// Every entry is a decision of this master: accepted (`synced`, no reason) or rejected with a
/// reason, never pending; a kept entry (`forced`) is an accepted sale or stock adjustment an
/// earlier master had accepted, and such an event is never rejected; no event id is logged
/// twice (a re-push gets its verdict again, not a second entry); epochs never go back along
/// the log, and none is past the master's own.
fn decided(log: &[LogEntry], epoch: Epoch) -> Result<(), TestCaseError> {
    let mut ids = BTreeSet::new();
    let mut previous: Option<Epoch> = None;
    for entry in log {
        let event = &entry.event;
        let id = event.event_id;
        match event.status {
            EventStatus::Synced => prop_assert!(event.reason.is_none(), "{id}: accepted, a reason"),
            EventStatus::Rejected => prop_assert!(event.reason.is_some(), "{id}: no reason"),
            EventStatus::Pending => return Err(fail(format!("{id} is logged as pending"))),
        }
        let keeps_sale = matches!(
            event.payload,
            EventPayload::SaleRecorded { .. } | EventPayload::StockAdjusted { .. }
        );
        if entry.forced {
            prop_assert!(
                event.status == EventStatus::Synced && event.accepted_before && keeps_sale,
                "{id} was forced but is no kept sale: {entry:?}"
            );
        }
        if event.accepted_before && keeps_sale {
            prop_assert_eq!(event.status, EventStatus::Synced, "{} accepted before", id);
        }
        prop_assert!(ids.insert(id), "{id} is logged twice");
        prop_assert!(
            previous.is_none_or(|p| p <= entry.epoch) && entry.epoch <= epoch,
            "entry {} in {} after {previous:?}, the master in {epoch}",
            entry.seq(),
            entry.epoch
        );
        previous = Some(entry.epoch);
    }
    Ok(())
}

/// The accepted entries, replayed from nothing through the rules (a kept one forced), give the
/// master's products: none was applied twice or skipped, and a rejection changed nothing. Each
/// entry's snapshot is its products as the replay leaves them, and along the log a product's
/// version never goes back.
fn replay(log: &[LogEntry], base: &[rms_domain::Product]) -> Result<(), TestCaseError> {
    let mut replayed = Products::new();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    for entry in log {
        let event = &entry.event;
        let at = rfc3339_from_ms(event.created_at_ms);
        if event.status == EventStatus::Synced {
            if entry.forced {
                rules::apply_forced(&event.payload, &mut replayed, &at);
            } else if let Err(reason) = rules::apply(&event.payload, &mut replayed, &at) {
                return Err(fail(format!(
                    "replaying accepted entry {} ({}) is refused: {reason}",
                    entry.seq(),
                    event.event_id
                )));
            }
        }
        let expected: Vec<&rms_domain::Product> = event
            .payload
            .skus()
            .iter()
            .filter_map(|sku| replayed.get(*sku))
            .collect();
        let snapshot: Vec<&rms_domain::Product> = entry.products.iter().collect();
        prop_assert_eq!(snapshot, expected, "the snapshot of entry {}", entry.seq());
        for product in &entry.products {
            let before = versions.insert(product.sku.clone(), product.version);
            prop_assert!(
                before.is_none_or(|v| v <= product.version),
                "entry {} takes {} back from version {before:?} to {}",
                entry.seq(),
                product.sku,
                product.version
            );
        }
    }
    let replayed: Vec<&rms_domain::Product> = replayed.values().collect();
    let base: Vec<&rms_domain::Product> = base.iter().collect();
    prop_assert_eq!(
        replayed,
        base,
        "replaying the log gives the master's products"
    );
    Ok(())
}

/// Stock is never below zero but where a kept sale (a forced entry) overdrew it.
fn stock(log: &[LogEntry], base: &[rms_domain::Product]) -> Result<(), TestCaseError> {
    for product in base.iter().filter(|p| p.stock < 0) {
        let forced = log
            .iter()
            .any(|e| e.forced && e.event.payload.skus().contains(&product.sku.as_str()));
        prop_assert!(
            forced,
            "{} at stock {} with no kept sale",
            product.sku,
            product.stock
        );
    }
    Ok(())
}

/// Every rejection and every kept conflict is in the master's audit log, naming its event.
fn audited(store: &Store, log: &[LogEntry]) -> Result<(), TestCaseError> {
    let of = |operation: Operation| -> Result<BTreeSet<String>, TestCaseError> {
        let query = AuditQuery {
            operation: Some(operation),
            limit: 100_000,
            ..AuditQuery::default()
        };
        Ok(read(store, |c| audit::query(c, &query))?
            .into_iter()
            .filter_map(|a| a.event_id.map(|id| id.to_string()))
            .collect())
    };
    let (rejections, conflicts) = (of(Operation::Rejection)?, of(Operation::Conflict)?);
    for entry in log {
        let id = entry.event.event_id.to_string();
        if entry.event.status == EventStatus::Rejected {
            prop_assert!(rejections.contains(&id), "no rejection audited for {id}");
        }
        if entry.forced {
            prop_assert!(conflicts.contains(&id), "no conflict audited for {id}");
        }
    }
    Ok(())
}

//! This device's copy of the master log, and the rebase of its own events on top of it.
//!
//! Two product tables make the rebase simple: `products_base` is the master's state as of this
//! device's log head, set from the snapshots the log entries carry; `products` (what tills see) is
//! the base with this device's own not-yet-logged events replayed on top, in sequence order
//! ([`recompute_visible`]). Every function here runs inside the caller's transaction.
//!
//! **On crash:** each call is part of one transaction (entries, verdicts, log head, recomputed
//! products together), so a crash leaves the device at the previous head, and the next pull asks
//! again from there.

use std::collections::{BTreeMap, BTreeSet};

use rms_domain::rules::{self, Products};
use rms_domain::{DeviceId, EventStatus, LogEntry, RejectReason, SyncEvent, rfc3339_from_ms};
use rusqlite::Transaction;

use crate::error::StorageError;
use crate::products::{self, Table};
use crate::{events, node_state};

/// Most entries read at once while rebuilding the base after a truncation.
const REBUILD_PAGE: usize = 512;

/// Applies master-log entries, which must continue this device's log without a gap.
/// Returns the SKUs whose visible state was recomputed.
pub fn apply_entries(
    tx: &Transaction<'_>,
    entries: &[LogEntry],
) -> Result<BTreeSet<String>, StorageError> {
    let mut state = node_state::load(tx)?;
    let mut touched = BTreeSet::new();
    // The master's state of each product after the last entry that touched it: written once per
    // batch (a push of 100 sales of one product makes one write, not 100).
    let mut latest: BTreeMap<&str, Option<&rms_domain::Product>> = BTreeMap::new();
    let mut inserter = events::Inserter::new(tx)?;
    for entry in entries {
        let seq = entry.seq();
        if seq != state.log_head + 1 {
            return Err(StorageError::LogGap {
                expected: state.log_head + 1,
                got: seq,
            });
        }
        // Mostly new events (on the master, always): one insert, and a read only when the
        // event is stored already (this device's own, or one a truncation left pending).
        if inserter.entry_if_new(entry)? {
            if entry.event.origin() == state.device_id {
                own_from_log(tx, &mut state, &entry.event)?;
            }
        } else {
            match events::get(tx, &entry.event.event_id)? {
                Some(stored) if stored.same_content(&entry.event) => {
                    events::set_decision(tx, &entry.event, Some(entry))?;
                }
                _ => {
                    return Err(StorageError::corrupt(
                        "sync_events",
                        format!(
                            "log entry {seq} has other content than stored event {}",
                            entry.event.event_id
                        ),
                    ));
                }
            }
        }
        for sku in entry.event.payload.skus() {
            latest.insert(sku, entry.products.iter().find(|p| p.sku == sku));
            touched.insert(sku.to_owned());
        }
        state.log_head = seq;
    }
    for (sku, product) in latest {
        match product {
            Some(product) => products::put(tx, Table::Base, product)?,
            None => products::delete(tx, Table::Base, sku)?,
        }
    }
    node_state::save(tx, &state)?;
    recompute_visible(tx, state.device_id, &touched)?;
    Ok(touched)
}

/// One of this device's own events that it did not hold, brought back by the log: its numbers
/// are taken, so the sequence moves past it. An earlier incarnation's (numbered below this one's
/// first, `crate::incarnation`) stays out of this journal. One of this incarnation's whose link
/// continues the journal (a database copied by hand, which lost it) is journaled again, so the
/// chain goes on from it as the master holds it.
fn own_from_log(
    tx: &Transaction<'_>,
    state: &mut node_state::NodeState,
    event: &rms_domain::SyncEvent,
) -> Result<(), StorageError> {
    let seq = event.event_id.seq;
    state.last_seq = state.last_seq.max(seq);
    if event.chain.is_some()
        && seq >= crate::incarnation::current_first_seq(tx)?
        && event.chain == Some(crate::journal::chain::next_event_link(tx, seq)?)
    {
        crate::journal::chain::append_event(tx, event)?;
    }
    Ok(())
}

/// Records the master's verdict on one of this device's own events (from a push answer). The
/// event keeps no `master_seq` until its log entry arrives. A verdict the log already brought is
/// left as it is.
pub fn set_verdict(
    tx: &Transaction<'_>,
    event_id: &rms_domain::EventId,
    status: EventStatus,
    reason: Option<RejectReason>,
    master_seq: Option<u64>,
) -> Result<(), StorageError> {
    let state = node_state::load(tx)?;
    // A verdict on an event this device does not have (a confused master's) changes nothing:
    // failing here would fail the whole batch, and with it the verdicts that do count.
    let Some(mut event) = events::get(tx, event_id)? else {
        return Ok(());
    };
    if event.status != EventStatus::Pending {
        return Ok(());
    }
    event.status = status;
    event.reason = reason;
    events::set_decision(tx, &event, None)?;
    if let Some(seq) = master_seq.filter(|_| status == EventStatus::Synced) {
        events::set_accepted_seq(tx, event_id, seq)?;
    }
    if status == EventStatus::Rejected {
        let skus = event
            .payload
            .skus()
            .into_iter()
            .map(str::to_owned)
            .collect();
        recompute_visible(tx, state.device_id, &skus)?;
    }
    Ok(())
}

/// Puts this device's own events that have a verdict but no log entry back to pending (see
/// [`events::repend_unlogged`]). What tills see does not change: accepted ones were in the
/// overlay and stay in it; rejected ones keep their reason and stay out of it.
pub fn repend_unlogged(tx: &Transaction<'_>) -> Result<usize, StorageError> {
    let state = node_state::load(tx)?;
    events::repend_unlogged(tx, state.device_id)
}

/// Undoes the log after `keep` (a log that diverged from the master's). This device's own
/// events go back to pending (marked `accepted_before` if a master had accepted them; keeping
/// their reason if it had rejected them); other devices' are removed (they come back from the
/// master's log, or through a relay). Returns the undone entries, so that they can be relayed.
pub fn truncate_after(tx: &Transaction<'_>, keep: u64) -> Result<Vec<LogEntry>, StorageError> {
    let mut state = node_state::load(tx)?;
    let undone = events::log_after(tx, keep, usize::MAX)?;
    let mut touched = BTreeSet::new();
    for entry in &undone {
        let event = &entry.event;
        if event.origin() == state.device_id {
            let mut pending = event.clone();
            pending.accepted_before |= event.status == EventStatus::Synced;
            pending.status = EventStatus::Pending;
            // A rejected event keeps its reason: it is logged as rejected again, not re-decided.
            pending.reason = event
                .reason
                .filter(|_| event.status == EventStatus::Rejected);
            pending.master_seq = None;
            events::set_decision(tx, &pending, None)?;
            if event.status == EventStatus::Synced {
                events::set_accepted_seq(tx, &event.event_id, entry.seq())?;
            }
        } else {
            events::delete_foreign(tx, &event.event_id)?;
        }
        touched.extend(event.payload.skus().into_iter().map(str::to_owned));
    }
    state.log_head = keep.min(state.log_head);
    node_state::save(tx, &state)?;
    rebuild_base(tx, keep, &touched)?;
    recompute_visible(tx, state.device_id, &touched)?;
    Ok(undone)
}

/// Sets `products_base` for `skus` to the newest snapshot at or before `head`.
fn rebuild_base(
    tx: &Transaction<'_>,
    head: u64,
    skus: &BTreeSet<String>,
) -> Result<(), StorageError> {
    let mut unresolved: BTreeSet<&str> = skus.iter().map(String::as_str).collect();
    let mut from = head;
    while !unresolved.is_empty() && from > 0 {
        let page = events::log_before(tx, from, REBUILD_PAGE)?;
        let Some(last) = page.last() else { break };
        from = last.seq().saturating_sub(1);
        for entry in &page {
            for sku in entry.event.payload.skus() {
                if unresolved.remove(sku) {
                    match entry.products.iter().find(|p| p.sku == sku) {
                        Some(product) => products::put(tx, Table::Base, product)?,
                        None => products::delete(tx, Table::Base, sku)?,
                    }
                }
            }
        }
    }
    for sku in unresolved {
        products::delete(tx, Table::Base, sku)?;
    }
    Ok(())
}

/// Sets what tills see for `skus`: the base, with this device's own unlogged events replayed on
/// top in sequence order.
pub fn recompute_visible(
    tx: &Transaction<'_>,
    me: DeviceId,
    skus: &BTreeSet<String>,
) -> Result<(), StorageError> {
    if skus.is_empty() {
        return Ok(());
    }
    let own: Vec<SyncEvent> = events::unlogged_own(tx, me)?;
    let touching: Vec<&SyncEvent> = own
        .iter()
        .filter(|e| e.payload.skus().iter().any(|s| skus.contains(*s)))
        .collect();
    let mut wanted: BTreeSet<&str> = skus.iter().map(String::as_str).collect();
    for event in &touching {
        wanted.extend(event.payload.skus());
    }
    let mut view: Products =
        products::load_many(tx, Table::Base, &wanted.into_iter().collect::<Vec<_>>())?;
    for event in touching {
        rules::apply_forced(
            &event.payload,
            &mut view,
            &rfc3339_from_ms(event.created_at_ms),
        );
    }
    for sku in skus {
        match view.get(sku) {
            Some(product) => products::put(tx, Table::Visible, product)?,
            None => products::delete(tx, Table::Visible, sku)?,
        }
    }
    Ok(())
}

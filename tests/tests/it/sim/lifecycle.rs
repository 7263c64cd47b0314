//! A device's life as a shop lives it (issue #27): a till replaced by an empty one with its id,
//! restored from an older copy of its database, revoked while it runs. Each is a fault the
//! workload injects in one run of three, and each excuses exactly what it must lose:
//!
//! - a replaced or restored device loses the sales it answered that neither its new database
//!   nor any other device held when its disk went (`lost_with_disk`);
//! - a revoked device loses the sales that never reached the store, and must have told its
//!   till: it knows its revocation and lists them as pending (`unconfirmed_sale_ids`, the change
//!   feed's `revoked` event).
//!
//! Everything else is checked as before, plus invariants 18 (no event id with two contents) and
//! 19 (no election won by a log behind a reachable device's), in `invariants`.
//!
//! The network refuses a revoked device as TLS does: a device whose trust list revokes another's
//! certificate neither sends to it nor reads from it, and a device refused by one it does not
//! itself revoke believes the refusal (`403 revoked`) and records its own revocation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rms_domain::{DeviceId, Epoch, SyncEvent, TrustState};
use rms_storage::local::Command;
use rms_storage::{StorageError, Store, events, sales, trust};

use super::WALL_BASE_MS;
use super::harness::{Sim, read};

#[derive(Default)]
pub(super) struct Lifecycle {
    /// This run replaces, restores and revokes devices.
    pub(super) enabled: bool,
    /// A revocation was written in this run: the network asks the trust lists.
    revoking: bool,
    /// Devices refused as revoked since the last step, which learn it.
    refused: BTreeSet<usize>,
    /// Sales whose device's disk went before any other device held them.
    pub(super) lost_with_disk: BTreeSet<String>,
    /// Sales whose device's disk went while only other devices' copies of the log held them:
    /// a split brain that truncates those copies loses them, since the store relies on a sale's
    /// origin to carry it across (`docs/SYNC.md`); excused in runs with a partition only.
    pub(super) held_by_logs_only: BTreeSet<String>,
    /// Every event id seen, with the first content seen for it (invariant 18).
    contents: BTreeMap<String, SyncEvent>,
    pub(super) replaced: u64,
    pub(super) restored: u64,
    pub(super) revoked: u64,
    /// Restores and replacements a wrong clock refused (the node does not start).
    pub(super) refused_starts: u64,
    /// The epochs each device led in its current database.
    led: BTreeMap<DeviceId, BTreeSet<Epoch>>,
    /// Epochs whose master's audit log went with its disk (or predates its restored copy).
    pub(super) audit_lost: BTreeSet<Epoch>,
    /// Role changes audited in databases that were replaced or restored since.
    pub(super) role_changes_lost: u64,
}

impl Sim {
    /// Device `index` breaks and a fresh one with its id takes its place (`rms-node init`, then
    /// started with `--peer`; the simulator has no certificates to pair).
    pub(super) fn replace(&mut self, index: usize) -> Result<(), String> {
        let fresh = Store::open_in_memory(self.devices[index].id).map_err(|e| e.to_string())?;
        if self.swap_store(index, fresh, "replaced by an empty device")? {
            self.lifecycle.replaced += 1;
        }
        Ok(())
    }

    /// `rms-node backup` of device `index`, running or not.
    pub(super) fn take_backup(&mut self, index: usize) -> Result<(), String> {
        let copy = self.devices[index]
            .store
            .backup_in_memory()
            .map_err(|e| format!("d{} backup: {e}", index + 1))?;
        self.devices[index].backup = Some((self.now, copy));
        self.log(format!("backup of d{}", index + 1));
        Ok(())
    }

    /// Device `index` is restored from its latest backup, if it has one.
    pub(super) fn restore(&mut self, index: usize) -> Result<(), String> {
        let Some((taken_at, copy)) = self.devices[index].backup.take() else {
            return Ok(());
        };
        let what = format!("restored from its copy of {taken_at} ms");
        if self.swap_store(index, copy, &what)? {
            self.lifecycle.restored += 1;
        }
        Ok(())
    }

    /// The node of device `index` stops and starts again on `store`, which begins an
    /// incarnation first. A wrong clock refuses it (as `rms-node` refuses to start): the
    /// simulator then starts the device on its old database again, as if the fault had not
    /// happened. Returns whether the store was swapped.
    fn swap_store(&mut self, index: usize, store: Store, what: &str) -> Result<bool, String> {
        if self.is_cast_out(index)? {
            return Ok(false); // a revoked id is paired again with a new certificate first
        }
        let was_running = self.devices[index].node.is_some();
        self.crash(index)?;
        // A replacement or a restore takes minutes: what the old device had in flight has
        // arrived or is gone by then. And the operator sets the clock right first, as
        // `docs/OPERATIONS.md` says: a new incarnation's numbers and terms rely on it (seeds
        // 675 and 8667: a clock behind, or an earlier incarnation begun with a clock ahead,
        // made a replacement number past its floor into its predecessor's numbers). A clock
        // that was never set is refused, which the simulator keeps.
        let id = self.devices[index].id;
        self.queue.retain(|_, packet| packet.from != id);
        let skew = self.devices[index].skew_ms;
        if skew != 0 && skew > -(WALL_BASE_MS as i64) {
            self.devices[index].skew_ms = 0;
            self.log(format!("the clock of d{id} is set right"));
        }
        let now = self.now_of(index);
        match rms_storage::incarnation::start(&store, now.wall_ms, true) {
            Ok(_) => {}
            Err(refused @ (StorageError::ClockBehind { .. } | StorageError::ClockUnset { .. })) => {
                self.lifecycle.refused_starts += 1;
                self.log(format!("d{} not {what}: {refused}", index + 1));
                return if was_running {
                    self.start(index).map(|()| false)
                } else {
                    Ok(false)
                };
            }
            Err(other) => return Err(format!("d{} {what}: {other}", index + 1)),
        }
        let device = &mut self.devices[index];
        device.store = Arc::new(store);
        // Its audit log is the new database's: what the old one audited is gone.
        self.lifecycle.role_changes_lost += device.role_changes;
        device.role_changes = 0;
        let led = self.lifecycle.led.remove(&id).unwrap_or_default();
        self.lifecycle.audit_lost.extend(led);
        // A new incarnation starts from what its database says (a copy's older epoch).
        device.max_epoch = None;
        self.read_heads.remove(&id);
        self.log(format!("d{id} {what}"));
        self.start(index)?;
        self.count_losses()?;
        Ok(true)
    }

    /// After a disk went: every answered sale no device of the store holds any more is lost
    /// with it; one that its origin no longer holds is held by log copies only.
    fn count_losses(&mut self) -> Result<(), String> {
        let mut holders = Vec::new();
        for index in 0..self.devices.len() {
            // A revoked device holds nothing for the store: nobody reads from it.
            if !self.is_cast_out(index)? {
                holders.push((
                    self.devices[index].id,
                    Arc::clone(&self.devices[index].store),
                ));
            }
        }
        let answered: Vec<(String, DeviceId)> = self
            .answered
            .iter()
            .filter(|(sale, _)| !self.lifecycle.lost_with_disk.contains(sale))
            .cloned()
            .collect();
        for (sale, origin) in answered {
            let mut held_by = Vec::new();
            for (id, store) in &holders {
                if read(store, |c| sales::get(c, &sale))?.is_some() {
                    held_by.push(*id);
                }
            }
            if held_by.is_empty() {
                self.log(format!("sale {sale} is lost with a disk"));
                self.lifecycle.lost_with_disk.insert(sale);
            } else if !held_by.contains(&origin) {
                self.lifecycle.held_by_logs_only.insert(sale);
            }
        }
        Ok(())
    }

    /// The owner revokes device `index` (`rms-node devices revoke`) on another running device,
    /// once a run, leaving at least two devices in the store.
    pub(super) fn revoke(&mut self, index: usize) -> Result<(), String> {
        if self.lifecycle.revoked > 0 || self.devices.len() < 3 {
            return Ok(());
        }
        let Some(owner) = (0..self.devices.len()).find(|&i| {
            i != index
                && self.devices[i].paused_until.is_none()
                && self.devices[i].node.as_ref().is_some_and(|n| !n.joining())
        }) else {
            return Ok(());
        };
        let command = self.revocation_of(index);
        let what = format!("d{} revoked on d{}", index + 1, owner + 1);
        if self.trust_write(owner, command, &what)? {
            self.lifecycle.revoked += 1;
            self.lifecycle.revoking = true;
        }
        Ok(())
    }

    /// The trust change that revokes device `index`'s certificate (`devices revoke`, or the
    /// device's own record of a refusal).
    fn revocation_of(&self, index: usize) -> Command {
        let device = &self.devices[index];
        Command::Trust {
            fingerprint: device.fingerprint,
            device_id: device.id,
            name: format!("till-{}", device.id),
            state: TrustState::Revoked,
            how: "revoked".into(),
        }
    }

    /// A trust change written on device `index` through the driver's local write path. Returns
    /// whether it was recorded.
    fn trust_write(&mut self, index: usize, command: Command, what: &str) -> Result<bool, String> {
        let now = self.now_of(index);
        let device = &mut self.devices[index];
        let Some(node) = device.node.as_mut() else {
            return Ok(false);
        };
        match rms_transport::step::local_write(node, &device.store, command, now) {
            Ok(rms_transport::step::LocalWrite { recorded, core }) => {
                self.log(format!("{what}: {}", recorded.event.event_id));
                self.note_event(&recorded.event)?;
                core.map_err(|e| format!("d{} {what}: {e}", index + 1))?;
                self.after_input(index)?;
                Ok(true)
            }
            Err(StorageError::Refused { .. } | StorageError::Invalid(_)) => Ok(false),
            Err(other) => Err(format!("d{} {what}: {other}", index + 1)),
        }
    }

    /// Whether device `index`'s trust list revokes the certificate of device `of`.
    fn revokes(&self, index: usize, of: usize) -> Result<bool, String> {
        let fingerprint = self.devices[of].fingerprint;
        Ok(read(&self.devices[index].store, trust::load)?.is_revoked(&fingerprint))
    }

    /// Whether device `index` holds its own revocation, and so refuses its tills' writes.
    pub(super) fn knows_revoked(&self, index: usize) -> Result<bool, String> {
        if !self.lifecycle.revoking {
            return Ok(false);
        }
        self.revokes(index, index)
    }

    /// Whether device `index` is out of the store: another device's trust list revokes it.
    pub(super) fn is_cast_out(&self, index: usize) -> Result<bool, String> {
        if !self.lifecycle.revoking {
            return Ok(false);
        }
        for other in 0..self.devices.len() {
            if other != index && self.revokes(other, index)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the link `from` → `to` is refused: either end revokes the other's certificate
    /// (TLS refuses the handshake, or the link was closed when the revocation arrived). A
    /// device refused by one it does not revoke itself believes it (`learn_refusals`).
    pub(super) fn refuses(&mut self, from: DeviceId, to: DeviceId) -> bool {
        if !self.lifecycle.revoking {
            return false;
        }
        let (a, b) = (usize::from(from.get()) - 1, usize::from(to.get()) - 1);
        // A store that cannot be read refuses nothing here; the next check reads it again and
        // fails the run with the error.
        let to_revokes = self.revokes(b, a).unwrap_or(false);
        let from_revokes = self.revokes(a, b).unwrap_or(false);
        if to_revokes && !from_revokes {
            self.lifecycle.refused.insert(a);
        }
        to_revokes || from_revokes
    }

    /// Each device refused as revoked since the last step records its own revocation, once,
    /// as `rms-node`'s connector does.
    pub(super) fn learn_refusals(&mut self) -> Result<(), String> {
        for index in std::mem::take(&mut self.lifecycle.refused) {
            if self.devices[index].paused_until.is_some() || self.knows_revoked(index)? {
                continue;
            }
            let command = self.revocation_of(index);
            let what = format!("d{} learns it is revoked", index + 1);
            self.trust_write(index, command, &what)?;
        }
        Ok(())
    }

    /// Device `index` became master of `epoch`.
    pub(super) fn note_led(&mut self, index: usize, epoch: Option<Epoch>) {
        let id = self.devices[index].id;
        self.lifecycle.led.entry(id).or_default().extend(epoch);
    }

    /// Invariant 18: an event id seen again has the content it was first seen with.
    pub(super) fn note_event(&mut self, event: &SyncEvent) -> Result<(), String> {
        let id = event.event_id.to_string();
        match self.lifecycle.contents.get(&id) {
            Some(first) if !first.same_content(event) => Err(format!(
                "event id {id} has two contents: {first:?} and {event:?}"
            )),
            Some(_) => Ok(()),
            None => {
                self.lifecycle.contents.insert(id, event.clone());
                Ok(())
            }
        }
    }

    /// Invariant 18 at quiescence, over every event every device holds.
    pub(super) fn check_contents(&mut self) -> Result<(), String> {
        for index in 0..self.devices.len() {
            let store = Arc::clone(&self.devices[index].store);
            let mut held = read(&store, |c| events::pending(c, usize::MAX))?;
            held.extend(
                read(&store, |c| events::log_after(c, 0, usize::MAX))?
                    .into_iter()
                    .map(|entry| entry.event),
            );
            for event in &held {
                self.note_event(event)
                    .map_err(|e| format!("on d{}: {e}", index + 1))?;
            }
        }
        Ok(())
    }

    /// At quiescence, for a device out of the store: it knows it, and every sale it answered
    /// that is not in the store's log is one it lists as pending for its till.
    pub(super) fn check_cast_out(&self, index: usize, master: &Store) -> Result<(), String> {
        if !self.knows_revoked(index)? {
            return Err(format!("d{} is revoked and does not know it", index + 1));
        }
        let device = &self.devices[index];
        let told = read(&device.store, |c| {
            events::unconfirmed_sale_ids(c, device.id, usize::MAX)
        })?;
        for (sale, _) in self.answered.iter().filter(|(_, by)| *by == device.id) {
            let logged = read(master, |c| sales::get(c, sale))?.is_some();
            // In a run with a partition, a sale that reached the store's log and was undone by
            // a split brain after the revocation cut its device off is lost, and its device
            // cannot know (`docs/OPERATIONS.md`).
            let undone = self.partitioned;
            if !logged
                && !told.contains(sale)
                && !undone
                && !self.lifecycle.lost_with_disk.contains(sale)
            {
                return Err(format!(
                    "sale {sale} of revoked d{} never reached the store and its till was not told",
                    device.id
                ));
            }
        }
        Ok(())
    }
}

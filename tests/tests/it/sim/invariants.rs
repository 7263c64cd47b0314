//! The invariants the simulator checks, each by its number:
//!
//! 1. At quiescence the master's log has no gap: its entries are numbered 1, 2, 3 and so on.
//! 2. Replaying the master's log from nothing gives the master's products, so no event was
//!    applied twice or skipped.
//! 3. At quiescence every device of the store (not a revoked one) holds the master's log (the
//!    same entries, in the same order, with the same status, reason, epoch and forced flag) and
//!    the master's products, visible and base.
//! 4. At quiescence every sale a till was answered for (accepted or pending) is on every device
//!    of the store with a verdict: accepted, or rejected with a reason. Excused: a sale no device
//!    held when a disk went (a replaced or restored device's), one whose origin's disk went
//!    while only log copies held it, in a run with a partition (a split brain may undo it), and
//!    a revoked device's that never reached the store, which its device must know it is out of
//!    and list for its till (`events::unconfirmed_sale_ids`; in a run with a partition, one
//!    undone by a split brain after the revocation cut it off is excused too).
//! 5. A master's stock is never below zero except where a kept sale (a forced entry) overdrew it.
//! 6. Every rejection and kept conflict is audited by the master that decided it, and every role
//!    change by the device that changed, which never became master more often than it audited
//!    an election won or a restart as a lone master (a master whose database was replaced or
//!    restored since lost its audit log with it).
//! 7. With every link cut, a device becomes master of its own island and its sales are accepted
//!    at once.
//! 8. No two devices are master in the same epoch.
//! 9. A device's epoch never goes back.
//! 10. A master's epoch names that master.
//! 11. Every forced entry is excused by a rule: the run had a partition ("split brain"), a master
//!     elected since the entry's first acceptance did not hear from its origin ("origin not
//!     reached"), a master elected from that acceptance's term to the entry's heard from no
//!     other device ("island"), or its first acceptor had accepted before it an entry on its
//!     products that no device the next master heard from knew as accepted ("lost before it"),
//!     or a master since its first acceptance had its database replaced or restored ("disk
//!     lost").
//! 12. Without a partition, an election never deposes a master that is running, was not paused
//!     lately, and exchanged messages with the winner without loss lately.
//! 13. Within `CONVERGE_MS` of everything healing there is exactly one master among the devices
//!     of the store, every one of them runs in its epoch at its log head, follows it in sync,
//!     and has nothing pending, and every revoked device knows it.
//! 14. No device ever finds an honest device's event invalid (an "invalid event" alarm), since
//!     local writes and the master's validation keep the same data rules.
//! 15. Virtual time keeps moving: at most `STEPS_AT_ONE_TIME_MAX` steps run at one instant, so no
//!     node keeps asking for a timeout in the past.
//! 16. Every node starts and handles every message, timeout and local write without error, every
//!     message it sends decodes, and storage turns a local write down only by the data rules.
//! 17. Every trust change the master's log accepted keeps the trust rules against the ones
//!     before it (a revoked certificate never comes back; one trusted certificate per device
//!     id), across failovers and truncations; at quiescence every device's trust list (but a
//!     revoked device's) is the master's.
//! 18. No event id ever has two contents (`SyncEvent::same_content`): not across incarnations of
//!     a device (replaced by an empty one, restored from an older copy), nor anywhere else.
//! 19. Without a partition, an election is never won by a device whose log (the epoch of its
//!     last entry, then its head) is behind that of a running device it could reach (no loss
//!     between them lately, not paused lately, not revoked).
//!
//! Where each is checked: 8 to 10 after every step (`check_step`); 5 and 11 every second of the
//! chaos and every half second while the store converges (`check_master_stock`, `check_forced`);
//! 12 and 19 whenever an election makes a master (`check_deposition`, `check_election_log`); 13
//! by `run_phases` with `quiet`; 18 at every local write, every entry a master logs and over
//! every device at quiescence (`note_event`, `check_contents`); 1 to 4, 6, 14 and 17 at
//! quiescence (`check_final`, `check_replay`, `check_audit`, `check_trust`, `check_cast_out`);
//! 7 by the test
//! `a_lone_device_keeps_selling_as_master_of_its_island`; 15 and 16 as the harness, the network
//! and the workload run (`step`, `deliver`, `after_input`, `local_write`). A broken invariant is an
//! `Err` saying what broke, and the run fails with its seed and its last steps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rms_domain::rules::{self, Products};
use rms_domain::{Epoch, EventStatus, LogEntry, Operation, Role, rfc3339_from_ms};
use rms_storage::audit::AuditQuery;
use rms_storage::products::Table;
use rms_storage::{Store, audit, events, products, sales};

use super::MASTER_TIMEOUT_MS;
use super::harness::{Device, Node, Sim, read};

/// An accepted entry of a master's log, as `excuse` needs it.
pub(super) struct Accepted {
    event_id: String,
    origin: u64,
    skus: Vec<String>,
}

impl Sim {
    /// Invariants 8, 9 and 10, after every step: epochs never go back; a master leads its own
    /// epoch, so no two devices are master in the same epoch.
    pub(super) fn check_step(&mut self) -> Result<(), String> {
        let mut masters = BTreeSet::new();
        for device in &self.devices {
            if let Some(node) = device.node.as_ref().filter(|n| n.role() == Role::Master)
                && !masters.insert(node.epoch())
            {
                return Err(format!("two masters in epoch {:?}", node.epoch()));
            }
        }
        for device in &mut self.devices {
            let Some(node) = &device.node else { continue };
            let epoch = node.epoch();
            if epoch < device.max_epoch {
                return Err(format!(
                    "d{} went back from epoch {:?} to {:?}",
                    device.id, device.max_epoch, epoch
                ));
            }
            device.max_epoch = epoch;
            if node.role() == Role::Master && epoch.is_none_or(|e| e.master_id != device.id) {
                return Err(format!(
                    "d{} is master but its epoch is {epoch:?}",
                    device.id
                ));
            }
        }
        Ok(())
    }

    /// Records which epoch first accepted each entry a master logged since it was last read
    /// (what `excuse` needs for invariant 11).
    pub(super) fn note_accepted(&mut self, index: usize) -> Result<(), String> {
        let device = &self.devices[index];
        let Some(node) = device.node.as_ref() else {
            return Ok(());
        };
        let head = node.log_head();
        let read_head = self
            .read_heads
            .get(&device.id)
            .copied()
            .unwrap_or(0)
            .min(head);
        if node.role() != Role::Master || head == read_head {
            self.read_heads.insert(device.id, read_head);
            return Ok(());
        }
        let store = Arc::clone(&device.store);
        let id = device.id;
        let new = read(&store, |c| events::log_after(c, read_head, usize::MAX))?;
        for entry in &new {
            self.note_event(&entry.event)?;
        }
        for entry in new.iter().filter(|e| e.event.status == EventStatus::Synced) {
            let event_id = entry.event.event_id.to_string();
            self.first_accepted
                .entry(event_id.clone())
                .or_insert((entry.epoch, entry.seq()));
            let accepted = Accepted {
                event_id,
                origin: u64::from(entry.event.origin().get()),
                skus: entry
                    .event
                    .payload
                    .skus()
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            };
            self.accepted_logs
                .entry(entry.epoch)
                .or_default()
                .insert(entry.seq(), accepted);
        }
        self.read_heads.insert(id, head);
        Ok(())
    }

    /// Invariants 5 and 11: a master's stock is never below zero except where a kept sale (a
    /// forced entry) overdrew it, and every forced entry is excused by a rule (`excuse`).
    pub(super) fn check_master_stock(&mut self) -> Result<(), String> {
        for index in 0..self.devices.len() {
            let device = &self.devices[index];
            if !device
                .node
                .as_ref()
                .is_some_and(|n| n.role() == Role::Master)
            {
                continue;
            }
            let store = Arc::clone(&device.store);
            let log = read(&store, |c| events::log_after(c, 0, usize::MAX))?;
            self.check_forced(&log)?;
            let base = read(&store, |c| products::list_in(c, Table::Base))?;
            for product in base.iter().filter(|p| p.stock < 0) {
                let forced = log
                    .iter()
                    .any(|e| e.forced && e.event.payload.skus().contains(&product.sku.as_str()));
                if !forced {
                    return Err(format!(
                        "master d{} has {} at stock {} with no kept sale",
                        index + 1,
                        product.sku,
                        product.stock
                    ));
                }
            }
        }
        Ok(())
    }

    /// Invariant 11: every forced entry of `log` names the rule that excuses it in the trace, or
    /// fails.
    fn check_forced(&mut self, log: &[LogEntry]) -> Result<(), String> {
        for entry in log.iter().filter(|e| e.forced) {
            let id = entry.event.event_id.to_string();
            if self.excused.contains_key(&id) {
                continue;
            }
            let Some(rule) = self.excuse(entry)? else {
                return Err(format!(
                    "entry {} ({id}, from d{}) was forced by d{} in {} without a partition, \
                     although the election that made d{} master reached its origin",
                    entry.seq(),
                    entry.event.origin(),
                    entry.epoch.master_id,
                    entry.epoch,
                    entry.epoch.master_id,
                ));
            };
            self.log(format!(
                "forced {id} at seq {} excused: {rule}",
                entry.seq()
            ));
            self.excused.insert(id, rule);
        }
        Ok(())
    }

    /// Which rule allows a forced entry (a sale two masters both accepted), for invariant 11:
    /// - "split brain": the run had a partition, and each side had a master;
    /// - "origin not reached": between its first acceptance and this entry, a master was elected
    ///   without hearing from the event's origin (crashed, paused, or its answers lost), so that
    ///   master could not decide the event before the sales that overtook it;
    /// - "island": between its first acceptance and this entry, a master was elected hearing
    ///   from no other device (the others paused, crashed or silent): it sold from its own view
    ///   while the store's log went on elsewhere (a paused master is a partition in time);
    /// - "lost before it": the master that first accepted it had accepted, before it, an entry
    ///   on one of its products that the forcing master had not logged before it, and that no
    ///   device a master elected since could hear from knew as accepted: the lost master's own
    ///   write (or one whose origin did not answer), or an event whose origin had not heard its
    ///   verdict (the ack was lost with the master, so the forcing master logged it later as a
    ///   new event). The forced entry came after stock that went missing with its master
    ///   (issue #26, seeds 1953, 4135, 7043, 8558).
    ///
    /// Without a partition, any other forced entry is a bug: `None`.
    fn excuse(&self, entry: &LogEntry) -> Result<Option<&'static str>, String> {
        if self.partitioned {
            return Ok(Some("split brain: the run had a partition"));
        }
        let id = entry.event.event_id.to_string();
        let (first, first_seq) = self
            .first_accepted
            .get(&id)
            .copied()
            .unwrap_or((entry.epoch, entry.seq()));
        let origin = u64::from(entry.event.origin().get());
        // A master of an epoch from the first acceptance to the entry's lost its database (it
        // was replaced or restored): what it had accepted may be gone with it.
        if self
            .lifecycle
            .audit_lost
            .iter()
            .any(|lost| first.term <= lost.term && lost.term <= entry.epoch.term)
        {
            return Ok(Some(
                "disk lost: a master since it was accepted was replaced or restored",
            ));
        }
        let up_to_entry: Vec<(Epoch, Vec<u64>)> = self
            .elections_won()?
            .into_iter()
            .filter(|(epoch, _)| first.term <= epoch.term && epoch.term <= entry.epoch.term)
            .collect();
        // The election that made the first acceptor came before the acceptance: whom it reached
        // says nothing about the event's origin.
        let reached = |epoch: &Epoch, answered: &[u64], device: u64| {
            u64::from(epoch.master_id.get()) == device || answered.contains(&device)
        };
        let since: Vec<&(Epoch, Vec<u64>)> = up_to_entry
            .iter()
            .filter(|(epoch, _)| epoch.term > first.term)
            .collect();
        if since
            .iter()
            .any(|(epoch, answered)| !reached(epoch, answered, origin))
        {
            return Ok(Some(
                "origin not reached: a master elected since it was accepted did not hear from its origin",
            ));
        }
        // An island master sells from its own view, the first acceptor included.
        if up_to_entry.iter().any(|(_, answered)| answered.is_empty()) {
            return Ok(Some(
                "island: a master elected hearing from no other device accepted it, or sold since",
            ));
        }
        if self.lost_before(entry, first, first_seq, &since)? {
            return Ok(Some(
                "lost before it: its first acceptor had accepted an entry on its products before it \
                 that no device the next master heard from knew of",
            ));
        }
        Ok(None)
    }

    /// The "lost before it" rule of `excuse`.
    fn lost_before(
        &self,
        entry: &LogEntry,
        first: Epoch,
        first_seq: u64,
        since: &[&(Epoch, Vec<u64>)],
    ) -> Result<bool, String> {
        let Some(accepted) = self.accepted_logs.get(&first) else {
            return Ok(false);
        };
        let skus = entry.event.payload.skus();
        let forcing = self
            .devices
            .iter()
            .find(|d| d.id == entry.epoch.master_id)
            .ok_or("the forcing master is no device")?;
        let log = read(&forcing.store, |c| events::log_after(c, 0, usize::MAX))?;
        let logged: BTreeMap<String, (u64, bool)> = log
            .iter()
            .map(|e| {
                let id = e.event.event_id.to_string();
                (id, (e.seq(), e.event.accepted_before))
            })
            .collect();
        // Unknown as accepted to the forcing master's store: its origin was not reached by an
        // election since, or the forcing master logged it after the forced entry as a new event
        // (its origin pushed it as pending: the verdict never reached it).
        let unknown = |earlier: &Accepted| {
            let not_reached = since.iter().any(|(epoch, answered)| {
                u64::from(epoch.master_id.get()) != earlier.origin
                    && !answered.contains(&earlier.origin)
            });
            let unheard = logged
                .get(&earlier.event_id)
                .is_some_and(|(seq, before)| *seq > entry.seq() && !before);
            not_reached || unheard
        };
        Ok(accepted.range(..first_seq).any(|(_, earlier)| {
            earlier.skus.iter().any(|sku| skus.contains(&sku.as_str()))
                && logged
                    .get(&earlier.event_id)
                    .is_none_or(|(seq, _)| *seq > entry.seq())
                && unknown(earlier)
        }))
    }

    /// Every epoch won by an election in this run, with the devices whose pre-vote answers the
    /// winner had (a handover or a reclaim wins no election).
    fn elections_won(&self) -> Result<Vec<(Epoch, Vec<u64>)>, String> {
        let query = AuditQuery {
            operation: Some(Operation::Election),
            limit: 1000,
            ..AuditQuery::default()
        };
        let mut won = Vec::new();
        for device in &self.devices {
            for entry in read(&device.store, |c| audit::query(c, &query))? {
                let Some(answered) = entry.details["answered"].as_array() else {
                    continue;
                };
                if let Ok(epoch) = serde_json::from_value::<Epoch>(entry.details["won"].clone()) {
                    won.push((
                        epoch,
                        answered.iter().filter_map(|id| id.as_u64()).collect(),
                    ));
                }
            }
        }
        Ok(won)
    }

    /// Invariant 12 (issue #12): without a partition, an election never deposes a master that is
    /// running, was not paused lately, and exchanged messages with the winner without loss lately.
    pub(super) fn check_deposition(&mut self, winner: usize) -> Result<(), String> {
        if self.partitioned {
            return Ok(());
        }
        let query = AuditQuery {
            operation: Some(Operation::RoleChange),
            limit: 1,
            ..AuditQuery::default()
        };
        let changes = read(&self.devices[winner].store, |c| audit::query(c, &query))?;
        let reason = changes
            .first()
            .and_then(|a| a.details["reason"].as_str())
            .unwrap_or_default()
            .to_owned();
        if !reason.starts_with("election") {
            return Ok(()); // a handover or a reclaim deposes the master on purpose
        }
        let window = 3 * MASTER_TIMEOUT_MS;
        let x = self.devices[winner].id;
        let won = self.devices[winner].node.as_ref().and_then(Node::epoch);
        let recent = |at: Option<&u64>| at.is_some_and(|t| t + window > self.now);
        for device in &self.devices {
            let running_master = device
                .node
                .as_ref()
                .is_some_and(|n| n.role() == Role::Master);
            // A master of a newer epoch than the winner's is not deposed by it: the winner
            // steps down as soon as it hears of that epoch.
            let newer = device.node.as_ref().and_then(Node::epoch) > won;
            if device.id == x || !running_master || device.paused_until.is_some() || newer {
                continue;
            }
            let m = device.id;
            let lossy = recent(self.last_drop.get(&(m, x))) || recent(self.last_drop.get(&(x, m)));
            if recent(device.resumed_at.as_ref()) || lossy {
                continue;
            }
            return Err(format!(
                "d{x} deposed d{m}, a running master it could reach, by {reason}"
            ));
        }
        Ok(())
    }

    /// The device that is master at quiescence: the one master of the store, not a revoked
    /// device that leads an island of its own.
    pub(super) fn final_master(&self) -> Result<usize, String> {
        for (index, device) in self.devices.iter().enumerate() {
            let master = device
                .node
                .as_ref()
                .is_some_and(|n| n.role() == Role::Master);
            if master && !self.is_cast_out(index)? {
                return Ok(index);
            }
        }
        Err("no master at the end".into())
    }

    /// Invariant 19, whenever an election makes a master: no running device it could reach
    /// (no partition in the run, no message lost between them lately, not paused lately, not
    /// revoked) holds a more complete log than the winner's (the epoch of its last entry, then
    /// its head): a fresh or restored device never wins over a device that holds more.
    pub(super) fn check_election_log(&mut self, winner: usize) -> Result<(), String> {
        if self.partitioned || !self.elected(winner)? {
            return Ok(());
        }
        let window = 3 * MASTER_TIMEOUT_MS;
        let recent = |at: Option<&u64>| at.is_some_and(|t| t + window > self.now);
        let x = self.devices[winner].id;
        let won = log_position(&self.devices[winner])?;
        for (index, device) in self.devices.iter().enumerate() {
            if index == winner || device.node.is_none() || device.paused_until.is_some() {
                continue;
            }
            let m = device.id;
            let lossy = recent(self.last_drop.get(&(m, x))) || recent(self.last_drop.get(&(x, m)));
            if lossy || recent(device.resumed_at.as_ref()) || self.is_cast_out(index)? {
                continue;
            }
            let theirs = log_position(device)?;
            if theirs > won {
                return Err(format!(
                    "d{x} won an election with its log at {won:?}, behind d{m}'s at {theirs:?}, \
                     which it could reach"
                ));
            }
        }
        Ok(())
    }

    /// Whether device `index` became master by an election (its last role change says so),
    /// not by a handover or a reclaim.
    fn elected(&self, index: usize) -> Result<bool, String> {
        let query = AuditQuery {
            operation: Some(Operation::RoleChange),
            limit: 1,
            ..AuditQuery::default()
        };
        let changes = read(&self.devices[index].store, |c| audit::query(c, &query))?;
        Ok(changes
            .first()
            .and_then(|a| a.details["reason"].as_str())
            .is_some_and(|reason| reason.starts_with("election")))
    }

    /// Invariant 13's test, which `run_phases` applies after healing: exactly one master, and
    /// every device running in its epoch at its log head, following it in sync, with nothing
    /// pending.
    pub(super) fn quiet(&self) -> Result<bool, String> {
        let mut masters: Vec<&Device> = Vec::new();
        let mut members: Vec<&Device> = Vec::new();
        for (index, device) in self.devices.iter().enumerate() {
            if self.is_cast_out(index)? {
                // Out of the store: quiet once it knows it (it heard a refusal, or the log).
                if device.node.is_none() || !self.knows_revoked(index)? {
                    return Ok(false);
                }
                continue;
            }
            if device
                .node
                .as_ref()
                .is_some_and(|n| n.role() == Role::Master)
            {
                masters.push(device);
            }
            members.push(device);
        }
        let [master] = masters.as_slice() else {
            return Ok(false);
        };
        let Some(master_node) = &master.node else {
            return Ok(false);
        };
        let head = master_node.log_head();
        for device in members {
            let Some(node) = &device.node else {
                return Ok(false);
            };
            if node.epoch() != master_node.epoch() || node.log_head() != head {
                return Ok(false);
            }
            if device.id != master.id && (node.master_id() != Some(master.id) || !node.in_sync()) {
                return Ok(false);
            }
            if read(&device.store, events::pending_summary)?.0 > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// At quiescence: invariants 1, 3 and 4 here, 2 in `check_replay`, 6 and 14 in `check_audit`
    /// (5 and 11 were checked just before, by `run_phases`).
    pub(super) fn check_final(&mut self) -> Result<(), String> {
        self.check_contents()?;
        let master = &self.devices[self.final_master()?];
        let log = read(&master.store, |c| events::log_after(c, 0, usize::MAX))?;
        for (i, entry) in log.iter().enumerate() {
            if entry.seq() != i as u64 + 1 {
                return Err(format!(
                    "master log has a gap at {}: seq {}",
                    i + 1,
                    entry.seq()
                ));
            }
        }
        check_replay(&master.store, &log)?;
        self.check_trust(&master.store, &log)?;
        let master_products = read(&master.store, products::list)?;
        for (index, device) in self.devices.iter().enumerate() {
            if self.is_cast_out(index)? {
                self.check_cast_out(index, &master.store)?;
                continue;
            }
            let theirs = read(&device.store, |c| events::log_after(c, 0, usize::MAX))?;
            let (mine, master_summary) = (summary(&theirs), summary(&log));
            if mine != master_summary {
                let at = mine
                    .iter()
                    .zip(&master_summary)
                    .position(|(a, b)| a != b)
                    .unwrap_or(mine.len().min(master_summary.len()));
                return Err(format!(
                    "d{}'s log differs from the master's (d{}) at index {at}: {:?} vs {:?} (lengths {} and {})",
                    device.id,
                    master.id,
                    mine.get(at),
                    master_summary.get(at),
                    mine.len(),
                    master_summary.len()
                ));
            }
            let visible = read(&device.store, products::list)?;
            let base = read(&device.store, |c| products::list_in(c, Table::Base))?;
            if visible != master_products || base != master_products {
                return Err(format!(
                    "d{}'s products differ from the master's:\n{visible:?}\nvs\n{master_products:?}",
                    device.id
                ));
            }
            for (sale_id, by) in &self.answered {
                let by_cast_out = self.is_cast_out(usize::from(by.get()) - 1)?;
                let Some(sale) = read(&device.store, |c| sales::get(c, sale_id))? else {
                    // Lost with a disk, or a revoked device's that `check_cast_out` answers for.
                    if self.lifecycle.lost_with_disk.contains(sale_id) || by_cast_out {
                        continue;
                    }
                    if self.partitioned && self.lifecycle.held_by_logs_only.contains(sale_id) {
                        continue; // its origin's disk went, and a split brain truncated it
                    }
                    return Err(format!("sale {sale_id} is missing on d{}", device.id));
                };
                let decided = match sale.status {
                    rms_domain::SaleStatus::Accepted => true,
                    rms_domain::SaleStatus::Rejected => sale.reason.is_some(),
                    rms_domain::SaleStatus::Pending => false,
                };
                if !decided {
                    return Err(format!(
                        "sale {sale_id} on d{} is {:?} without a verdict",
                        device.id, sale.status
                    ));
                }
            }
        }
        self.check_audit(&log)
    }

    /// Invariant 17: the trust changes of the log keep the trust rules, and every device's
    /// trust list is the master's.
    fn check_trust(&self, master: &Store, log: &[LogEntry]) -> Result<(), String> {
        let mut list = rms_domain::TrustList::default();
        for entry in log.iter().filter(|e| e.event.status == EventStatus::Synced) {
            let event = &entry.event;
            let Some(change) = event
                .payload
                .trust_change(event.origin(), event.created_at_ms)
            else {
                continue;
            };
            if let Err(reason) = list.check(&change) {
                return Err(format!(
                    "log entry {} accepts a trust change the rules refuse ({reason}): {change:?}",
                    entry.seq()
                ));
            }
            list.apply(change);
        }
        let masters = read(master, rms_storage::trust::load)?;
        if masters != list {
            return Err(format!(
                "the master's trust list is not its log's:\n{masters:?}\nvs\n{list:?}"
            ));
        }
        for (index, device) in self.devices.iter().enumerate() {
            if self.is_cast_out(index)? {
                continue;
            }
            let theirs = read(&device.store, rms_storage::trust::load)?;
            if theirs != list {
                return Err(format!(
                    "d{}'s trust list differs from the master's:\n{theirs:?}\nvs\n{list:?}",
                    device.id
                ));
            }
        }
        Ok(())
    }

    /// Invariants 6 and 14: every rejection and kept conflict is audited by the master that
    /// decided it, and every role change by the device that changed; no honest event is refused.
    fn check_audit(&self, log: &[LogEntry]) -> Result<(), String> {
        for entry in log
            .iter()
            .filter(|e| e.event.status == EventStatus::Rejected || e.forced)
        {
            if self.lifecycle.audit_lost.contains(&entry.epoch) {
                continue; // its master's audit log went with its disk
            }
            let decider = &self.devices[usize::from(entry.epoch.master_id.get()) - 1];
            let operation = if entry.forced {
                Operation::Conflict
            } else {
                Operation::Rejection
            };
            let query = AuditQuery {
                operation: Some(operation),
                limit: 1000,
                ..AuditQuery::default()
            };
            let found = read(&decider.store, |c| audit::query(c, &query))?
                .iter()
                .any(|a| a.event_id == Some(entry.event.event_id));
            if !found {
                return Err(format!(
                    "no {} audit entry on d{} for {}",
                    operation.as_str(),
                    decider.id,
                    entry.event.event_id
                ));
            }
        }
        for device in &self.devices {
            let query = AuditQuery {
                operation: Some(Operation::RoleChange),
                limit: 1000,
                ..AuditQuery::default()
            };
            let audited = read(&device.store, |c| audit::query(c, &query))?;
            if (audited.len() as u64) < device.role_changes {
                return Err(format!(
                    "d{} changed role {} times but audited {}",
                    device.id,
                    device.role_changes,
                    audited.len()
                ));
            }
            let became_master = audited
                .iter()
                .filter(|a| a.details["to"] == "master")
                .count();
            let query = AuditQuery {
                operation: Some(Operation::Election),
                limit: 1000,
                ..AuditQuery::default()
            };
            let won = read(&device.store, |c| audit::query(c, &query))?
                .iter()
                .filter(|a| !a.details["won"].is_null())
                .count();
            let resumed = audited
                .iter()
                .filter(|a| a.details["reason"] == rms_sync::REASON_LONE_RESTART)
                .count();
            if won + resumed < became_master {
                return Err(format!(
                    "d{} became master {became_master} times but audited {won} elections won",
                    device.id
                ));
            }
            // Honest devices only make events that keep the data rules: a master that found an
            // invalid one means local writes and the master's validation disagree.
            let query = AuditQuery {
                operation: Some(Operation::Alarm),
                limit: 1000,
                ..AuditQuery::default()
            };
            if let Some(alarm) = read(&device.store, |c| audit::query(c, &query))?
                .into_iter()
                .find(|a| a.details["why"] == "invalid event")
            {
                return Err(format!(
                    "d{} refused an honest event: {}",
                    device.id, alarm.details
                ));
            }
        }
        Ok(())
    }
}

/// How complete a device's copy of the master log is: the epoch of its last entry, then its
/// head (`rms_sync`'s `LogPosition`).
fn log_position(device: &Device) -> Result<(Option<Epoch>, u64), String> {
    let head = read(&device.store, rms_storage::node_state::load)?.log_head;
    let last = read(&device.store, |c| events::entry_at(c, head))?;
    Ok((last.map(|e| e.epoch), head))
}

/// What two devices' logs must agree on (invariant 3).
fn summary(log: &[LogEntry]) -> Vec<(u64, String, EventStatus, Option<String>, Epoch, bool)> {
    log.iter()
        .map(|e| {
            (
                e.seq(),
                e.event.event_id.to_string(),
                e.event.status,
                e.event.reason.map(|r| r.as_str().to_owned()),
                e.epoch,
                e.forced,
            )
        })
        .collect()
}

/// Invariant 2: replaying the master log from nothing gives the master's products, so no event
/// was applied twice (or skipped).
fn check_replay(store: &Store, log: &[LogEntry]) -> Result<(), String> {
    let mut replayed = Products::new();
    for entry in log.iter().filter(|e| e.event.status == EventStatus::Synced) {
        let at = rfc3339_from_ms(entry.event.created_at_ms);
        if entry.forced {
            rules::apply_forced(&entry.event.payload, &mut replayed, &at);
        } else if let Err(reason) = rules::apply(&entry.event.payload, &mut replayed, &at) {
            return Err(format!(
                "replaying accepted entry {} ({}) is refused: {reason}",
                entry.seq(),
                entry.event.event_id
            ));
        }
    }
    let base = read(store, |c| products::list_in(c, Table::Base))?;
    let replayed: Vec<_> = replayed.into_values().collect();
    if replayed != base {
        return Err(format!(
            "replaying the log gives\n{replayed:?}\nbut the master has\n{base:?}"
        ));
    }
    Ok(())
}

//! The SyncManager of a master and its SyncTasks (SPEC §4, §5): registration, pull answers, the
//! group commit of pushes through the ConflictResolver (`crate::resolver`), and the broadcasts
//! (`sync_update` every sync interval, `critical_event` at once; with eager sync, `sync_update`
//! of every decided entry at once).
//!
//! **Invariants:**
//! - Only a master decides, and not while it hands its role over.
//! - A push is decided in arrival order, its events in [`decision_order`]; the entries of every
//!   push found waiting together are committed in one transaction, and every `push_ack`,
//!   `conflict`, `critical_event` and `sync_update` goes out after that commit.
//! - Broadcasts go in log order: a `sync_update` starts right after the last one
//!   (`broadcast_head`), so a client that follows them never needs to pull.
//! - Idempotency: an event already decided is answered with its verdict again and changes
//!   nothing; an event id reused with other content is refused and never logged.
//! - A device pushes only its own events; others are refused with an alarm.

use std::collections::{BTreeMap, BTreeSet};

use rms_domain::{AuditEntry, DeviceId, Epoch, EventId, EventStatus, Hlc, LogEntry, RejectReason};
use rms_domain::{EventPayload, PushHead, Role, SyncEvent};

use super::audit::{Audited, MasterFact, PushAlarm, SyncAuditLog};
use super::phase::Phase;
use super::{EAGER_BROADCAST_GAP_MS, Notification, Now, Result, SyncNode, To, store_err};
use crate::message::{BATCH_EVENTS_MAX, ErrorCode, Message, PeerInfo, Verdict, within_bytes};
use crate::resolver::{ConflictResolver, Decision, decision_order};
use crate::store::{Batch, SyncStore};

/// What a group decision made so far: the log entries the group's events already had, the
/// entries it made, the audit rows, and the clock.
struct GroupDecision {
    logged: BTreeMap<EventId, LogEntry>,
    entries: Vec<LogEntry>,
    /// Index in `entries` by event id.
    seen: BTreeMap<EventId, usize>,
    audit: Vec<AuditEntry>,
    hlc: Hlc,
    audit_log: SyncAuditLog,
    now: Now,
}

impl GroupDecision {
    fn audit(&mut self, record: impl Into<Audited>) {
        self.audit.extend(self.audit_log.entries(record, self.now));
    }

    /// The verdict for an event already decided (idempotency), or a refusal for an event id
    /// reused with other content. `None` for an event to decide now.
    fn known_verdict(&mut self, event: &SyncEvent) -> Option<Verdict> {
        let known = match self.seen.get(&event.event_id) {
            Some(index) => self.entries.get(*index),
            None => self.logged.get(&event.event_id),
        };
        let known = known?;
        if known.event.same_content(event) {
            return Some(Verdict::of(known));
        }
        let logged_seq = known.seq();
        let event_id = event.event_id;
        self.audit(PushAlarm::EventIdReused {
            event_id,
            logged_seq,
        });
        Some(refused(event_id, RejectReason::EventIdReused))
    }
}

/// The verdict on a pushed event refused without a log entry (the log would carry it to every
/// device).
fn refused(event_id: EventId, reason: RejectReason) -> Verdict {
    Verdict {
        event_id,
        status: EventStatus::Rejected,
        reason: Some(reason),
        master_seq: None,
    }
}

/// An entry broadcast at once: critical (stock ran out), or a rejection the devices must show.
fn broadcast_at_once(entry: &LogEntry) -> bool {
    entry.event.critical || entry.event.status == EventStatus::Rejected
}

impl<S: SyncStore> SyncNode<S> {
    /// Master tick: the handover deadline, then the `sync_update` of what was not yet broadcast,
    /// every sync interval or when eager sync made it due.
    pub(super) fn master_tick(&mut self, now: Now) -> Result<(), S> {
        self.handover_tick(now)?;
        let periodic = now.mono_ms >= self.next_sync_ms;
        if periodic {
            self.next_sync_ms = now.mono_ms + self.sync_delay();
        }
        let Phase::Master(leading) = &self.phase else {
            return Ok(());
        };
        let due = leading.broadcast_due_ms.is_some_and(|at| now.mono_ms >= at);
        if periodic || due {
            self.broadcast_log(now)?;
        }
        Ok(())
    }

    /// A `sync_update` of the entries not yet broadcast (a batch of them; with eager sync the
    /// rest is due next).
    fn broadcast_log(&mut self, now: Now) -> Result<(), S> {
        let Phase::Master(leading) = &mut self.phase else {
            return Ok(());
        };
        leading.broadcast_due_ms = None;
        let broadcast_head = leading.broadcast_head;
        if broadcast_head >= self.log_head {
            return Ok(());
        }
        let entries = within_bytes(
            self.store
                .log_after(broadcast_head, BATCH_EVENTS_MAX)
                .map_err(store_err)?,
        );
        let (Some(last), Some(epoch)) = (entries.last().map(LogEntry::seq), self.epoch) else {
            return Ok(());
        };
        let record = MasterFact::Broadcast {
            from_seq: broadcast_head + 1,
            to_seq: last,
        };
        self.audit(now, record);
        self.commit(Batch::default())?;
        if let Phase::Master(leading) = &mut self.phase {
            leading.broadcast_head = last;
            leading.broadcast_last_ms = now.mono_ms;
        }
        self.send(To::AllPeers, Message::SyncUpdate { epoch, entries });
        self.broadcast_soon(now);
        Ok(())
    }

    /// Eager sync: the entries not yet broadcast go at the next [`Timer::Broadcast`], at once
    /// unless a broadcast went less than [`EAGER_BROADCAST_GAP_MS`] ago. Nothing for a device
    /// with nobody to tell.
    ///
    /// [`Timer::Broadcast`]: super::Timer::Broadcast
    pub(super) fn broadcast_soon(&mut self, now: Now) {
        let alone = !self.config.has_peers && self.peers.is_empty();
        let Phase::Master(leading) = &mut self.phase else {
            return;
        };
        let waiting = leading.broadcast_head < self.log_head;
        if !self.config.eager_sync || alone || !waiting || leading.broadcast_due_ms.is_some() {
            return;
        }
        let earliest = leading.broadcast_last_ms + EAGER_BROADCAST_GAP_MS;
        leading.broadcast_due_ms = Some(now.mono_ms.max(earliest));
    }

    pub(super) fn on_register(&mut self, from: DeviceId, peer: PeerInfo, now: Now) {
        let Some(epoch) = self.epoch.filter(|_| self.role() == Role::Master) else {
            self.send_heartbeat_to(from);
            return;
        };
        if peer.device_id != from {
            let details = serde_json::json!({ "claimed": peer.device_id });
            return self.alarm(now, from, "register names another device", details);
        }
        let term = epoch.term;
        self.audit(now, MasterFact::Registered { device: peer, term });
        let mut roster = self.peers.infos();
        roster.push(self.config.me.clone());
        let ack = Message::RegisterAck {
            epoch,
            roster,
            log_head: self.log_head,
        };
        self.send(To::Device(from), ack);
    }

    fn refuse_not_master(&mut self, to: DeviceId) {
        let message = Message::Error {
            epoch: self.epoch,
            code: ErrorCode::NotMaster,
            message: "this device is not the master".into(),
        };
        self.send(To::Device(to), message);
    }

    /// Whether this master is taking pushes now (not handing over), and whether `message` is
    /// a push of its epoch: such pushes found waiting together are decided together.
    pub(super) fn joins_push_group(&self, from: DeviceId, message: &Message) -> bool {
        let deciding = matches!(&self.phase, Phase::Master(l) if l.handing_over.is_none());
        // A push in the master's own epoch passes `fence` untouched; anything else may change
        // the role or the epoch, so the pushes before it are decided first.
        deciding
            && from != self.me()
            && self.epoch.is_some()
            && matches!(message, Message::Push { .. })
            && message.epoch() == self.epoch
    }

    pub(super) fn on_push(
        &mut self,
        from: DeviceId,
        events: Vec<SyncEvent>,
        head: Option<PushHead>,
        now: Now,
    ) -> Result<(), S> {
        match &self.phase {
            Phase::Master(leading) if leading.handing_over.is_some() => {
                self.refuse_handing_over(from, "push", now);
                Ok(())
            }
            Phase::Master(_) => match self.own_pushed(from, events, head, now)? {
                Some(own) => self.decide_pushes(vec![(from, own)], now),
                None => Ok(()),
            },
            _ => {
                self.refuse_not_master(from);
                Ok(())
            }
        }
    }

    /// The events of a push that are the pusher's own (at most [`BATCH_EVENTS_MAX`]); others are
    /// forged, raise an alarm and are not decided. `None` when nothing is left to decide, or when
    /// the own events' chain or the push's signature does not verify (issue #17): then the whole
    /// push is refused with an alarm and nothing of it is decided (its device keeps it pending).
    pub(super) fn own_pushed(
        &mut self,
        from: DeviceId,
        events: Vec<SyncEvent>,
        head: Option<PushHead>,
        now: Now,
    ) -> Result<Option<Vec<SyncEvent>>, S> {
        let (own, forged): (Vec<SyncEvent>, Vec<SyncEvent>) = events
            .into_iter()
            .take(BATCH_EVENTS_MAX)
            .partition(|e| e.origin() == from);
        if !forged.is_empty() {
            let ids: Vec<String> = forged.iter().map(|e| e.event_id.to_string()).collect();
            let details = serde_json::json!({ "event_ids": ids });
            self.alarm(now, from, "pushed events of another device", details);
        }
        let checked = self
            .store
            .check_push(from, &own, head.as_ref())
            .map_err(store_err)?;
        if let Err(broken) = checked {
            let details = serde_json::json!({
                "event_id": broken.event_id().map(|id| id.to_string()),
                "events": own.len(),
                "problem": broken.to_string(),
            });
            self.alarm(
                now,
                from,
                "pushed events whose chain does not verify",
                details,
            );
            return Ok(None);
        }
        Ok(Some(own).filter(|own| !own.is_empty() || forged.is_empty()))
    }

    /// Decides a group of pushes and acknowledges each.
    pub(super) fn decide_pushes(
        &mut self,
        mut pushes: Vec<(DeviceId, Vec<SyncEvent>)>,
        now: Now,
    ) -> Result<(), S> {
        if pushes.is_empty() {
            return Ok(());
        }
        let failed = match self.decide_group(&mut pushes, now) {
            Ok(verdicts) => {
                for ((from, _), verdicts) in pushes.iter().zip(verdicts) {
                    self.send_push_ack(*from, verdicts);
                }
                return Ok(());
            }
            Err(err) if pushes.len() > 1 => err,
            Err(err) => return Err(err),
        };
        // A group that cannot be committed is decided again push by push: a push that cannot be
        // decided stays unanswered (its device pushes it again), the others are answered. The
        // error returned is the first push's that failed alone, else the group's.
        let mut culprit = None;
        for push in pushes.chunks_mut(1) {
            match self.decide_group(push, now) {
                Ok(mut verdicts) => {
                    // Sent at once: it depends on this push's commit alone, which succeeded.
                    self.send_push_ack(push[0].0, verdicts.pop().unwrap_or_default());
                }
                Err(err) => {
                    culprit.get_or_insert(err);
                }
            }
        }
        Err(culprit.unwrap_or(failed))
    }

    pub(super) fn on_relay(
        &mut self,
        from: DeviceId,
        entries: Vec<LogEntry>,
        now: Now,
    ) -> Result<(), S> {
        match &self.phase {
            Phase::Master(leading) if leading.handing_over.is_some() => {
                self.refuse_handing_over(from, "relay", now);
                return Ok(());
            }
            Phase::Master(_) => {}
            _ => {
                self.refuse_not_master(from);
                return Ok(());
            }
        }
        // Any device that undid accepted entries of a log relays them (whoever decided them):
        // it may hold the only copy. Duplicates are harmless (idempotency); entries from an
        // epoch newer than this master's cannot be genuine.
        let epoch = self.epoch;
        let (valid, invalid): (Vec<LogEntry>, Vec<LogEntry>) = entries
            .into_iter()
            .take(BATCH_EVENTS_MAX)
            .partition(|e| Some(e.epoch) <= epoch && e.event.status == EventStatus::Synced);
        if !invalid.is_empty() {
            let details = serde_json::json!({ "entries": invalid.len() });
            let why = "relayed entries that no earlier master accepted";
            self.alarm(now, from, why, details);
        }
        let events = valid
            .into_iter()
            .map(|entry| {
                let mut event = entry.event;
                event.accepted_before |= event.status == EventStatus::Synced;
                event
            })
            .collect();
        let verdicts = self.decide(from, events, now)?;
        self.send_push_ack(from, verdicts);
        Ok(())
    }

    fn send_push_ack(&mut self, to: DeviceId, verdicts: Vec<Verdict>) {
        let Some(epoch) = self.epoch else { return };
        if to != self.me() {
            self.send(To::Device(to), Message::PushAck { epoch, verdicts });
        }
    }

    /// One push decided alone: see [`SyncNode::decide_group`].
    fn decide(
        &mut self,
        from: DeviceId,
        events: Vec<SyncEvent>,
        now: Now,
    ) -> Result<Vec<Verdict>, S> {
        Ok(self
            .decide_group(&mut [(from, events)], now)?
            .pop()
            .unwrap_or_default())
    }

    /// The SyncTask of deciding: the events of `pushes` (each `(from, events)`) go through the
    /// ConflictResolver in arrival order, push after push, each push sorted by
    /// [`decision_order`]; the new log entries of all of them are committed in one transaction
    /// (group commit: N devices pushing at once cost one commit, not N), then what is critical
    /// is broadcast and origins are told of their conflicts. Returns each push's verdicts, in
    /// the order of `pushes`. Changes nothing but the order of each push's events when it fails,
    /// so that a failed group can be decided again.
    fn decide_group(
        &mut self,
        pushes: &mut [(DeviceId, Vec<SyncEvent>)],
        now: Now,
    ) -> Result<Vec<Vec<Verdict>>, S> {
        let Some(epoch) = self.epoch.filter(|_| self.role() == Role::Master) else {
            return Ok(vec![Vec::new(); pushes.len()]);
        };
        for (_, events) in pushes.iter_mut() {
            events.sort_by_key(decision_order);
        }
        let pushes = &*pushes;
        let (mut resolver, mut group) = self.open_group(epoch, pushes, now)?;
        let answers = pushes
            .iter()
            .map(|(from, events)| self.decide_push(&mut resolver, &mut group, *from, events))
            .collect();
        let update = self.audit_group_broadcasts(&mut group, now);
        let updated_to = update.last().map_or(0, LogEntry::seq);
        let logged = group.entries.clone();
        self.commit(Batch {
            entries: group.entries,
            hlc: Some(group.hlc),
            audit: group.audit,
            ..Batch::default()
        })?;
        self.hlc = group.hlc;
        if let Some(last) = logged.last() {
            self.log_head = last.seq();
            self.outbox.notify(Notification::LogAdvanced {
                log_head: self.log_head,
            });
        }
        if !update.is_empty() {
            if let Phase::Master(leading) = &mut self.phase {
                leading.broadcast_head = updated_to;
                leading.broadcast_last_ms = now.mono_ms;
            }
            let entries = update;
            self.send(To::AllPeers, Message::SyncUpdate { epoch, entries });
        }
        for entry in logged {
            let sent = entry.seq() <= updated_to;
            self.announce_decided(epoch, entry, sent);
        }
        self.broadcast_soon(now);
        Ok(answers)
    }

    /// What a group decision starts from: the resolver over the master's copy of the products the
    /// group's events name (and the trust list, when one of them changes it), and the log
    /// entries its events already have (idempotency).
    fn open_group(
        &self,
        epoch: Epoch,
        pushes: &[(DeviceId, Vec<SyncEvent>)],
        now: Now,
    ) -> Result<(ConflictResolver, GroupDecision), S> {
        let all = || pushes.iter().flat_map(|(_, events)| events);
        let skus: BTreeSet<&str> = all().flat_map(|e| e.payload.skus()).collect();
        let skus: Vec<&str> = skus.into_iter().collect();
        let products = self.store.base_products(&skus).map_err(store_err)?;
        let ids: Vec<EventId> = all().map(|e| e.event_id).collect();
        let logged = self.store.entries(&ids).map_err(store_err)?;
        let mut resolver = ConflictResolver::new(epoch, self.log_head, products);
        if all().any(|e| matches!(e.payload, EventPayload::DeviceTrust { .. })) {
            resolver = resolver.with_trust(self.store.trust_list().map_err(store_err)?);
        }
        let group = GroupDecision {
            logged: logged
                .into_iter()
                .map(|entry| (entry.event.event_id, entry))
                .collect(),
            entries: Vec::new(),
            seen: BTreeMap::new(),
            audit: Vec::new(),
            hlc: self.hlc,
            audit_log: self.audit_log,
            now,
        };
        Ok((resolver, group))
    }

    /// What a group decision broadcasts at once is audited in its transaction (it is sent only
    /// after it): the eager `sync_update` (returned; see [`SyncNode::eager_update`]), and every
    /// entry to go at once that it does not carry, as a `critical_event`.
    fn audit_group_broadcasts(&self, group: &mut GroupDecision, now: Now) -> Vec<LogEntry> {
        let update = self.eager_update(&group.entries, now);
        let updated_to = update.last().map_or(0, LogEntry::seq);
        if let Some(first) = update.first() {
            let (from_seq, to_seq) = (first.seq(), updated_to);
            group.audit(MasterFact::Broadcast { from_seq, to_seq });
        }
        let critical: Vec<(EventId, u64)> = group
            .entries
            .iter()
            .filter(|e| broadcast_at_once(e) && e.seq() > updated_to)
            .map(|e| (e.event.event_id, e.seq()))
            .collect();
        for (event_id, seq) in critical {
            group.audit(MasterFact::BroadcastCritical { event_id, seq });
        }
        update
    }

    /// Eager sync: the entries of a group decision to broadcast with its commit, as one
    /// `sync_update` (as many as fit in one), when they continue the broadcasts and the last
    /// broadcast went at least [`EAGER_BROADCAST_GAP_MS`] ago or one of them is to go at once.
    /// Empty otherwise: they wait for the `Broadcast` timer (critical ones go as
    /// `critical_event` meanwhile), so under load a broadcast carries what many decisions
    /// logged.
    fn eager_update(&self, entries: &[LogEntry], now: Now) -> Vec<LogEntry> {
        let alone = !self.config.has_peers && self.peers.is_empty();
        // What must go at once (stock ran out, a rejection) does not wait for the gap.
        let urgent = entries.iter().any(broadcast_at_once);
        let ready = matches!(&self.phase, Phase::Master(l)
            if l.broadcast_head == self.log_head
                && (urgent || now.mono_ms >= l.broadcast_last_ms + EAGER_BROADCAST_GAP_MS));
        if !self.config.eager_sync || alone || !ready || entries.is_empty() {
            return Vec::new();
        }
        within_bytes(entries.to_vec())
    }

    /// The events of one push, through the resolver; returns their verdicts.
    fn decide_push(
        &self,
        resolver: &mut ConflictResolver,
        group: &mut GroupDecision,
        from: DeviceId,
        events: &[SyncEvent],
    ) -> Vec<Verdict> {
        let now = group.now;
        let mut verdicts = Vec::with_capacity(events.len());
        let (audit_from, logged_from) = (group.audit.len(), group.entries.len());
        // Events decided before (a lost ack, or a replay): answered again, changed nothing.
        let mut replayed: Vec<String> = Vec::new();
        for event in events {
            if let Some(verdict) = group.known_verdict(event) {
                if verdict.reason != Some(RejectReason::EventIdReused) {
                    replayed.push(event.event_id.to_string());
                }
                verdicts.push(verdict);
                continue;
            }
            verdicts.push(self.decide_new(resolver, group, from, event));
        }
        let received = MasterFact::PushReceived {
            from,
            events: verdicts.len(),
            logged: group.entries.len() - logged_from,
            replayed,
        };
        let rows: Vec<AuditEntry> = self.audit_log.entries(received, now).collect();
        group.audit.splice(audit_from..audit_from, rows);
        verdicts
    }

    /// One event not decided before, through the resolver: its verdict, and its log entry added
    /// to the group's (none for an event that breaks the data rules).
    fn decide_new(
        &self,
        resolver: &mut ConflictResolver,
        group: &mut GroupDecision,
        from: DeviceId,
        event: &SyncEvent,
    ) -> Verdict {
        let now = group.now;
        let event_id = event.event_id;
        if let Err(err) = event.validate() {
            // Never logged: the log would carry it to every device (and the database may not
            // even hold it). The pusher gets its verdict; the audit log the details.
            let (field, message) = (err.field.to_string(), err.message.to_string());
            group.audit(PushAlarm::InvalidEvent {
                event_id,
                from,
                field,
                message,
            });
            return refused(event_id, RejectReason::Invalid);
        }
        if self.trusted(event.hlc, now) {
            group.hlc = group.hlc.merge(event.hlc, now.wall_ms);
        } else {
            let (hlc, now_ms) = (event.hlc, now.wall_ms);
            group.audit(PushAlarm::UntrustedClock {
                event_id,
                hlc,
                now_ms,
                from,
            });
        }
        let (entry, decision) = resolver.resolve(event.clone());
        let (origin, seq) = (entry.event.origin(), entry.seq());
        match decision {
            Decision::Accepted => {}
            Decision::Kept(rule) => group.audit(MasterFact::Kept {
                event_id,
                rule,
                origin,
                seq,
            }),
            Decision::Rejected(reason) => group.audit(MasterFact::Rejected {
                event_id,
                reason,
                origin,
                seq,
                kind: entry.event.payload.kind(),
            }),
        }
        group.seen.insert(event_id, group.entries.len());
        let verdict = Verdict::of(&entry);
        group.entries.push(entry);
        verdict
    }

    /// After the commit: the origin of a rejected event is told, and what is critical goes to
    /// every peer at once (unless a `sync_update` already carried it: `sent`).
    fn announce_decided(&mut self, epoch: Epoch, entry: LogEntry, sent: bool) {
        let (origin, event_id) = (entry.event.origin(), entry.event.event_id);
        if entry.event.status == EventStatus::Rejected
            && let Some(reason) = entry.event.reason
            && origin != self.me()
        {
            let conflict = Message::Conflict {
                epoch,
                event_id,
                reason,
            };
            self.send(To::Device(origin), conflict);
        }
        if broadcast_at_once(&entry) && !sent {
            self.send(To::AllPeers, Message::CriticalEvent { epoch, entry });
        }
    }

    /// A pull: the entries after `since`, or where to truncate when the asker's log diverged
    /// (Kafka's end offset of its epoch).
    pub(super) fn on_pull(
        &mut self,
        from: DeviceId,
        since: u64,
        since_epoch: Option<Epoch>,
    ) -> Result<(), S> {
        let Some(epoch) = self.epoch.filter(|_| self.role() == Role::Master) else {
            self.refuse_not_master(from);
            return Ok(());
        };
        let mut answer = Message::Events {
            epoch,
            since,
            since_epoch,
            entries: Vec::new(),
            log_head: self.log_head,
            truncate_to: None,
        };
        let diverged = since > 0 && {
            let mine = self.store.entry_at(since).map_err(store_err)?;
            mine.map(|e| e.epoch) != since_epoch || since_epoch.is_none()
        };
        if let Message::Events {
            entries,
            truncate_to,
            ..
        } = &mut answer
        {
            if diverged {
                let end = match since_epoch {
                    Some(their) => self.store.epoch_end(&their).map_err(store_err)?,
                    None => 0,
                };
                *truncate_to = Some(end.min(since - 1));
            } else {
                let after = self
                    .store
                    .log_after(since, BATCH_EVENTS_MAX)
                    .map_err(store_err)?;
                *entries = within_bytes(after);
            }
        }
        self.send(To::Device(from), answer);
        Ok(())
    }

    /// A local write the master decided itself, critical: every peer hears of it at once.
    pub(super) fn broadcast_critical(&mut self, entry: &LogEntry, now: Now) {
        let Some(epoch) = self.epoch else {
            return;
        };
        let (event_id, seq) = (entry.event.event_id, entry.seq());
        self.audit(now, MasterFact::BroadcastCritical { event_id, seq });
        let entry = entry.clone();
        self.send(To::AllPeers, Message::CriticalEvent { epoch, entry });
        // With eager sync, it continues the broadcasts when it comes right after them.
        if self.config.eager_sync
            && let Phase::Master(leading) = &mut self.phase
            && leading.broadcast_head + 1 == seq
        {
            leading.broadcast_head = seq;
        }
        self.broadcast_soon(now);
    }

    /// This master's own events that wait as pending (made while it was a client, or while it
    /// handed over), decided like a push.
    pub(super) fn decide_own_pending(&mut self, now: Now) -> Result<(), S> {
        loop {
            let pending = self.store.pending(BATCH_EVENTS_MAX).map_err(store_err)?;
            if pending.is_empty() {
                return Ok(());
            }
            let before = self.log_head;
            self.decide_own(pending, now)?;
            if self.log_head == before {
                return Ok(());
            }
        }
    }

    /// Decides events as this device's own push; the verdicts on its own events are notified.
    pub(super) fn decide_own(&mut self, events: Vec<SyncEvent>, now: Now) -> Result<(), S> {
        let me = self.me();
        let verdicts = self.decide(me, events, now)?;
        for verdict in verdicts.into_iter().filter(|v| v.event_id.device_id == me) {
            self.outbox.notify(Notification::Decided(verdict));
        }
        Ok(())
    }
}

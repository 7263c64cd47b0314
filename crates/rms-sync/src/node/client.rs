//! The SyncManager of a client (SPEC §5): register with the master, push pending events (every
//! sync interval, and at once when critical), pull the master log, truncate where it diverged,
//! apply what continues it, and relay entries a deposed master's log held.
//!
//! **Invariants:**
//! - At most one push in flight; a push unanswered within the master timeout is sent again
//!   (idempotency makes the repeat harmless).
//! - Entries are applied only in order, continuing the log; broadcasts only once a pull showed
//!   that the logs agree (`synced`); an entry that breaks the data rules is never stored.
//! - A pull answer vouches for the logs agreeing only if this device's log still ends where the
//!   pull asked; otherwise it is asked again.

use std::collections::BTreeSet;

use rms_domain::{DeviceId, Epoch, EventId, EventStatus, LogEntry, RejectReason, Role};

use super::audit::ClientFact;
use super::phase::{Following, Phase};
use super::{Notification, Now, Result, SyncNode, To, store_err};
use crate::message::{BATCH_EVENTS_MAX, Message, PeerInfo, Verdict, within_bytes};
use crate::store::{Batch, SyncStore};

/// The master's answer to a pull, as `Message::Events` carries it.
pub struct PullAnswer {
    /// The pull it answers: the asker's head and the epoch of its entry there.
    pub since: u64,
    pub since_epoch: Option<Epoch>,
    pub entries: Vec<LogEntry>,
    pub master_log_head: u64,
    pub truncate_to: Option<u64>,
}

impl<S: SyncStore> SyncNode<S> {
    fn following_mut(&mut self) -> Option<&mut Following> {
        match &mut self.phase {
            Phase::Following(following) => Some(following),
            _ => None,
        }
    }

    /// Client tick of a device that follows a master.
    pub(super) fn client_tick(&mut self, now: Now, sync_due: bool) -> Result<(), S> {
        let timeout = self.config.master_timeout_ms;
        let Some(following) = self.following_mut() else {
            return Ok(());
        };
        if now.mono_ms.saturating_sub(following.heard_ms) > timeout {
            return self.lose_master(now, "no heartbeat within the master timeout");
        }
        if following
            .take_over_at
            .is_some_and(|t| t.granted_ms().is_some())
        {
            return self.maybe_take_over(now); // first: nothing else this tick can stop it
        }
        let (registered, synced) = (following.registered, following.synced);
        let pull_stale = following
            .pull_sent_ms
            .is_none_or(|at| now.mono_ms.saturating_sub(at) > timeout);
        if following
            .push_sent_ms
            .is_some_and(|at| now.mono_ms.saturating_sub(at) > timeout)
        {
            following.push_sent_ms = None; // lost: the next push sends the same events again
        }
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        if !registered {
            self.send_register(epoch);
        }
        if !synced && pull_stale {
            self.send_pull(now);
        }
        if sync_due {
            self.push_pending(now)?;
            if synced && pull_stale {
                self.send_pull(now);
            }
            self.send_relay(epoch);
        }
        self.maybe_take_over(now)
    }

    pub(super) fn on_heartbeat(&mut self, from: DeviceId, role: Role, log_head: u64, now: Now) {
        if !(self.is_my_master(from) && role == Role::Master) {
            return;
        }
        self.follow(now);
        let my_head = self.log_head;
        let Some(following) = self.following_mut() else {
            return;
        };
        following.master_log_head = log_head;
        following.master_head_seen = following.master_head_seen.max(log_head);
        if following.synced && log_head > my_head && following.pull_sent_ms.is_none() {
            self.send_pull(now);
        }
    }

    pub(super) fn on_register_ack(
        &mut self,
        from: DeviceId,
        roster: Vec<PeerInfo>,
        log_head: u64,
        now: Now,
    ) {
        if !self.is_my_master(from) {
            return;
        }
        if let Some(following) = self.following_mut() {
            following.registered = true;
            following.heard_ms = now.mono_ms;
            following.master_log_head = log_head;
            following.master_head_seen = following.master_head_seen.max(log_head);
        }
        self.peers.learn(roster);
    }

    pub(super) fn send_register(&mut self, epoch: Epoch) {
        let message = Message::Register {
            peer: self.config.me.clone(),
            epoch: Some(epoch),
            log_head: self.log_head,
        };
        self.send(To::Device(epoch.master_id), message);
    }

    pub(super) fn send_pull(&mut self, now: Now) {
        let Some(epoch) = self.epoch else { return };
        let since_epoch = match self.store.entry_at(self.log_head) {
            Ok(entry) => entry.map(|e| e.epoch),
            Err(_) => return, // retried at the next tick
        };
        if let Some(following) = self.following_mut() {
            following.pull_sent_ms = Some(now.mono_ms);
        }
        let message = Message::Pull {
            epoch: Some(epoch),
            since: self.log_head,
            since_epoch,
        };
        self.send(To::Device(epoch.master_id), message);
    }

    /// Pushes this device's pending events (at most one push in flight).
    pub(super) fn push_pending(&mut self, now: Now) -> Result<(), S> {
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        let Some(following) = self.following_mut().filter(|f| f.synced) else {
            return Ok(());
        };
        if following.push_sent_ms.is_some() {
            following.push_again = true;
            return Ok(());
        }
        let events = within_bytes(self.store.pending(BATCH_EVENTS_MAX).map_err(store_err)?);
        if events.is_empty() {
            return Ok(());
        }
        let first_ids = events
            .iter()
            .take(20)
            .map(|e| e.event_id.to_string())
            .collect();
        let to = epoch.master_id;
        let record = ClientFact::PushSent {
            to,
            events: events.len(),
            first_ids,
        };
        self.audit(now, record);
        // In flight from now. If the commit of the row above fails, the push is dropped with it
        // and goes again when this one would have timed out.
        if let Some(following) = self.following_mut() {
            following.push_sent_ms = Some(now.mono_ms);
            following.push_again = false;
        }
        // The transport signs the head of the events (it holds the key).
        let push = Message::Push {
            epoch: Some(epoch),
            events,
            head: None,
        };
        self.send(To::Device(to), push);
        Ok(())
    }

    pub(super) fn send_relay(&mut self, epoch: Epoch) {
        let synced = matches!(&self.phase, Phase::Following(f) if f.synced);
        if self.relay.is_empty() || !synced {
            return;
        }
        // One message at a time; the rest goes after the master's answer clears what it took.
        let entries = within_bytes(self.relay.iter().take(BATCH_EVENTS_MAX).cloned().collect());
        let message = Message::Relay {
            epoch: Some(epoch),
            entries,
        };
        self.send(To::Device(epoch.master_id), message);
    }

    /// The master's verdicts on a push (or relay): recorded even by a device that stopped
    /// hearing that master meanwhile.
    pub(super) fn on_push_ack(
        &mut self,
        from: DeviceId,
        verdicts: Vec<Verdict>,
        now: Now,
    ) -> Result<(), S> {
        if !self.is_my_master(from) {
            return Ok(());
        }
        if let Some(following) = self.following_mut() {
            following.heard_ms = now.mono_ms;
        }
        let relayed: BTreeSet<EventId> = verdicts.iter().map(|v| v.event_id).collect();
        self.relay
            .retain(|entry| !relayed.contains(&entry.event.event_id));
        let me = self.me();
        let own: Vec<Verdict> = verdicts
            .into_iter()
            .filter(|v| v.event_id.device_id == me)
            .collect();
        if !own.is_empty() {
            let rejected = own
                .iter()
                .filter(|v| v.status == EventStatus::Rejected)
                .count();
            let verdicts = own.len();
            let record = ClientFact::Acknowledged {
                from,
                verdicts,
                rejected,
            };
            self.audit(now, record);
            self.commit(Batch {
                verdicts: own.clone(),
                ..Batch::default()
            })?;
            for verdict in own {
                self.outbox.notify(Notification::Decided(verdict));
            }
        }
        let push_again = match self.following_mut() {
            Some(following) => {
                following.push_sent_ms = None;
                following.push_again
            }
            None => false,
        };
        if push_again || self.store.pending_count().map_err(store_err)? > 0 {
            self.push_pending(now)?;
        }
        Ok(())
    }

    /// The master's answer to a pull: truncate where the logs diverged, or apply what continues
    /// this device's log (and pull again while behind).
    pub(super) fn on_events(
        &mut self,
        from: DeviceId,
        answer: PullAnswer,
        now: Now,
    ) -> Result<(), S> {
        if !self.is_my_master(from) {
            return Ok(());
        }
        if let Some(following) = self.following_mut() {
            following.heard_ms = now.mono_ms;
            following.pull_sent_ms = None;
            following.master_log_head = answer.master_log_head;
            following.master_head_seen = following.master_head_seen.max(answer.master_log_head);
        }
        // The answer vouches for the logs agreeing up to `since` only if our log still ends
        // there, with the same entry: an answer to an older pull proves nothing now.
        let head_epoch = self
            .store
            .entry_at(self.log_head)
            .map_err(store_err)?
            .map(|e| e.epoch);
        if answer.since != self.log_head || answer.since_epoch != head_epoch {
            self.send_pull(now);
            return Ok(());
        }
        let (entries, master_log_head) = (answer.entries, answer.master_log_head);
        if let Some(keep) = answer.truncate_to {
            return self.truncate(keep, now);
        }
        if let Some(following) = self.following_mut() {
            following.synced = true;
        }
        self.apply_entries(from, entries, now, "pull")?;
        if self.log_head < master_log_head {
            self.send_pull(now); // catching up, a batch at a time
        } else {
            self.caught_up = true;
            self.push_pending(now)?;
            if let Some(epoch) = self.epoch {
                self.send_relay(epoch);
            }
        }
        Ok(())
    }

    /// Undoes the log after `keep` (it diverged from the master's); the entries of other devices
    /// it undid are kept to relay.
    fn truncate(&mut self, keep: u64, now: Now) -> Result<(), S> {
        let keep = keep.min(self.log_head);
        let head_was = self.log_head;
        self.audit(now, ClientFact::Truncated { keep, head_was });
        let undone = self.commit(Batch {
            truncate_after: Some(keep),
            ..Batch::default()
        })?;
        let me = self.me();
        let mut listed: Vec<(u64, String)> = undone
            .iter()
            .map(|e| (e.seq(), e.event.event_id.to_string()))
            .collect();
        listed.sort_unstable();
        let count = listed.len();
        listed.truncate(super::audit::UNDONE_LISTED_MAX);
        if count > 0 {
            // Committed with what this input does next (the pull's audit), like every audit row.
            self.audit(
                now,
                ClientFact::Undone {
                    keep,
                    entries: listed,
                    count,
                },
            );
        }
        self.relay.extend(
            undone
                .into_iter()
                .filter(|e| e.event.origin() != me && e.event.status == EventStatus::Synced),
        );
        self.log_head = keep;
        self.outbox
            .notify(Notification::LogAdvanced { log_head: keep });
        self.send_pull(now);
        Ok(())
    }

    /// A `sync_update` or `critical_event`: applied when it continues the log, else pulled.
    pub(super) fn on_broadcast(
        &mut self,
        from: DeviceId,
        entries: Vec<LogEntry>,
        now: Now,
    ) -> Result<(), S> {
        if !self.is_my_master(from) {
            return Ok(());
        }
        let log_head = self.log_head;
        let Some(following) = self.following_mut() else {
            return Ok(());
        };
        following.heard_ms = now.mono_ms;
        let newest = entries.iter().map(LogEntry::seq).max().unwrap_or(0);
        following.master_head_seen = following.master_head_seen.max(newest);
        if !following.synced {
            return Ok(()); // until the logs are known to agree, only pulls are applied
        }
        let pull_sent = following.pull_sent_ms.is_some();
        let first = entries
            .iter()
            .map(LogEntry::seq)
            .find(|seq| *seq > log_head);
        match first {
            None => Ok(()),
            Some(seq) if seq == log_head + 1 => self.apply_entries(from, entries, now, "broadcast"),
            Some(_) => {
                if !pull_sent {
                    self.send_pull(now);
                }
                Ok(())
            }
        }
    }

    /// Applies the entries that continue this device's log.
    fn apply_entries(
        &mut self,
        from: DeviceId,
        entries: Vec<LogEntry>,
        now: Now,
        via: &'static str,
    ) -> Result<(), S> {
        let mut next = self.log_head + 1;
        let mut run = Vec::with_capacity(entries.len());
        let mut invalid = None;
        for entry in entries {
            if entry.seq() == next {
                if let Err(err) = entry.event.validate() {
                    invalid = Some((entry.seq(), err));
                    break;
                }
                next += 1;
                run.push(entry);
            } else if entry.seq() > next {
                break;
            }
        }
        if let Some((seq, err)) = invalid {
            // An entry that breaks the data rules (a master that should have refused it) cannot
            // be stored, and would fail the commit of the entries before it: this device applies
            // those, stops before it, and raises an alarm.
            let details =
                serde_json::json!({ "seq": seq, "field": err.field, "message": err.message });
            self.alarm(now, from, "a log entry breaks the data rules", details);
        }
        let Some(last) = run.last().map(LogEntry::seq) else {
            return Ok(());
        };
        let mut hlc = self.hlc;
        for entry in &run {
            if self.trusted(entry.event.hlc, now) {
                hlc = hlc.merge(entry.event.hlc, now.wall_ms);
            }
        }
        let me = self.me();
        let own: Vec<Verdict> = run
            .iter()
            .filter(|e| e.event.origin() == me)
            .map(Verdict::of)
            .collect();
        let record = ClientFact::Applied {
            via,
            from_seq: self.log_head + 1,
            to_seq: last,
            entries: run.len(),
        };
        self.audit(now, record);
        self.commit(Batch {
            entries: run,
            hlc: Some(hlc),
            ..Batch::default()
        })?;
        self.hlc = hlc;
        self.log_head = last;
        for verdict in own {
            self.outbox.notify(Notification::Decided(verdict));
        }
        self.outbox
            .notify(Notification::LogAdvanced { log_head: last });
        Ok(())
    }

    /// The master rejected one of this device's events: audited (the verdict itself comes with
    /// the log entry).
    pub(super) fn on_conflict(
        &mut self,
        from: DeviceId,
        event_id: EventId,
        reason: RejectReason,
        now: Now,
    ) {
        if !self.is_my_master(from) || event_id.device_id != self.me() {
            return;
        }
        let record = ClientFact::ConflictHeard {
            event_id,
            reason,
            master: from,
        };
        self.audit(now, record);
    }
}

//! The election (SPEC §6): which phase a device is in (the phases' state is `phase.rs`), the epoch
//! rules (fencing), losing a master, the pre-vote round and the election it may lead to, and
//! becoming master.
//!
//! **Invariants:**
//! - A device is in exactly one [`Phase`]. `Phase::Master` only in an epoch this device
//!   persisted in its own name; `Phase::Following` only in an epoch whose master was heard.
//! - An epoch is persisted before it is announced or acted on, and never goes back: a message of
//!   an older epoch is answered `stale_term` and, unless it only says who is alive, refused.
//! - A device that lost its master elects only after a pre-vote in which no peer still hears
//!   that master; the winner is the most complete log, then the best rank (`crate::pre_vote`).
//! - A new master decides what earlier masters accepted before anything new.

use std::collections::BTreeSet;

use rms_domain::{DeviceId, Epoch, Role, SyncEvent, Term};

use super::audit::{
    ElectionFact, ElectionView, EpochFact, REASON_ELECTED, REASON_LONE_RESTART, REASON_NEWER_EPOCH,
    REASON_REVOKED,
};
use super::phase::{Following, Leading, Phase, Waiting};
use super::{Notification, Now, Result, SyncNode, To, fmt_epoch, store_err};
use crate::message::{BATCH_EVENTS_MAX, ErrorCode, Message, within_bytes};
use crate::pre_vote::{Ballot, Candidate, LogPosition, PreVote, Tally};
use crate::resolver::decision_order;
use crate::store::{Batch, SyncStore};

/// Most heartbeat intervals a pre-vote waits for a peer that was alive and has not answered
/// (it is asked again each interval), and never longer than the master timeout.
const PRE_VOTE_ROUNDS_MAX: u64 = 4;

/// A pre-vote waits at most this long (and at most a heartbeat interval) for the answer of the
/// master it lost, even when that master was not heard lately: if it is alive, its answer
/// ("I am master") stops the election of a device that merely stopped hearing it.
const PRE_VOTE_MASTER_WAIT_MS_MAX: u64 = 250;

impl<S: SyncStore> SyncNode<S> {
    /// The election's messages (after `fence`): a master's announce, the pre-vote and its
    /// answers, and a refusal that may say the master is gone. `SyncNode::route` sends every
    /// other message elsewhere.
    pub(super) fn route_election(
        &mut self,
        from: DeviceId,
        message: Message,
        now: Now,
    ) -> Result<(), S> {
        match message {
            Message::MasterAnnounce { epoch, .. } => {
                if epoch.master_id == from && self.role() == Role::Client {
                    self.follow(now);
                }
                Ok(())
            }
            Message::PreVote { .. } => self.on_pre_vote(from, now),
            Message::PreVoteReply {
                epoch,
                master_heard_ms_ago,
                position,
                accepted_unlogged,
            } => {
                // A master the sender hears in an older epoch than ours is one that was deposed:
                // that is no reason to keep waiting for ours.
                let ballot = Ballot {
                    master_heard_ms_ago: master_heard_ms_ago.filter(|_| epoch == self.epoch),
                    position,
                    accepted_unlogged,
                };
                self.on_pre_vote_reply(from, ballot, now)
            }
            Message::Error { code, .. } => {
                if code == ErrorCode::NotMaster && self.is_my_master(from) {
                    self.lose_master(now, "the master says it is not master")?;
                }
                Ok(())
            }
            _ => Ok(()), // not the election's: `route` does not send it here
        }
    }

    // ----- epochs -----

    /// Applies the epoch rules to an incoming message. Returns whether to go on handling it.
    pub(super) fn fence(&mut self, from: DeviceId, message: &Message, now: Now) -> Result<bool, S> {
        let theirs = message.epoch();
        if theirs > self.epoch {
            let Some(newer) = theirs else { return Ok(true) };
            self.adopt(newer, now, message.kind())?;
            return Ok(true);
        }
        if theirs == self.epoch {
            return Ok(true);
        }
        // An older epoch: informational messages are still read (they tell us who is alive),
        // everything else is refused; either way the sender is told of the newer epoch.
        if !matches!(message, Message::Error { .. }) {
            self.send(
                To::Device(from),
                Message::Error {
                    epoch: self.epoch,
                    code: ErrorCode::StaleTerm,
                    message: format!("epoch {} is newer than yours", fmt_epoch(self.epoch)),
                },
            );
        }
        let informational = matches!(
            message,
            Message::Heartbeat { .. }
                | Message::Register { .. }
                | Message::PreVote { .. }
                | Message::PreVoteReply { .. }
        );
        if !informational && !matches!(message, Message::Error { .. }) {
            let record = EpochFact::StaleRefused {
                kind: message.kind(),
                from,
                theirs,
                ours: self.epoch,
            };
            self.audit(now, record);
        }
        Ok(informational)
    }

    /// Takes on a newer epoch: steps down if master, and follows the epoch's master.
    fn adopt(&mut self, newer: Epoch, now: Now, via: &'static str) -> Result<(), S> {
        let was_master = self.role() == Role::Master;
        let previous = self.epoch;
        self.audit(
            now,
            EpochFact::Adopted {
                newer,
                previous,
                via,
            },
        );
        if was_master {
            let reason = REASON_NEWER_EPOCH;
            let record = EpochFact::RoleChanged {
                to: Role::Client,
                reason,
                epoch: Some(newer),
            };
            self.audit(now, record);
        }
        // Own events accepted by an older master but not in our log may be unknown to the new
        // master: they go back to pending (idempotency makes the re-push harmless).
        self.commit(Batch {
            epoch: Some(newer),
            repend_unlogged: true,
            ..Batch::default()
        })?;
        self.epoch = Some(newer);
        self.drop_take_over("a newer epoch", now);
        // Our own old epoch, reflected back after a restart: nobody is master right now.
        // Otherwise the masterless phase ends at once: `follow` below.
        self.phase = Phase::masterless(now.mono_ms);
        if was_master {
            self.outbox.notify(Notification::RoleChanged {
                role: Role::Client,
                epoch: self.epoch,
            });
        }
        if newer.master_id != self.me() {
            self.follow(now);
        }
        Ok(())
    }

    /// A master that learned its own revocation steps down ([`SyncNode::revoked`]).
    pub(super) fn step_down_revoked(&mut self, now: Now) -> Result<(), S> {
        self.step_down(now, REASON_REVOKED)
    }

    /// A master becomes a device without a master, in its epoch, for `reason`.
    pub(super) fn step_down(&mut self, now: Now, reason: &'static str) -> Result<(), S> {
        let record = EpochFact::RoleChanged {
            to: Role::Client,
            reason,
            epoch: self.epoch,
        };
        self.audit(now, record);
        self.commit(Batch::default())?;
        self.phase = Phase::masterless(now.mono_ms);
        self.outbox.notify(Notification::RoleChanged {
            role: Role::Client,
            epoch: self.epoch,
        });
        Ok(())
    }

    /// Starts following the master of the current epoch (it was just heard from).
    pub(super) fn follow(&mut self, now: Now) {
        let Some(epoch) = self.epoch else { return };
        let me = self.me();
        match &mut self.phase {
            Phase::Following(following) => {
                following.heard_ms = now.mono_ms;
                return;
            }
            Phase::Master(_) => return,
            Phase::Masterless(_) if epoch.master_id == me => return,
            Phase::Masterless(_) => {}
        }
        self.phase = Phase::Following(Following::new(now.mono_ms));
        self.send_register(epoch);
        self.send_pull(now);
    }

    /// The master is gone (silent, or it said it is no master): ask the peers before electing.
    pub(super) fn lose_master(&mut self, now: Now, why: &'static str) -> Result<(), S> {
        let master = self.epoch.map(|e| e.master_id);
        self.drop_take_over("lost its master", now);
        self.phase = Phase::masterless(now.mono_ms);
        self.audit(now, ElectionFact::MasterLost { master, why });
        self.start_pre_vote(now)
    }

    /// No master followed: wait for the expected winner, or hold an election.
    pub(super) fn masterless_tick(&mut self, now: Now) -> Result<(), S> {
        let timeout = self.config.master_timeout_ms;
        let Phase::Masterless(masterless) = &mut self.phase else {
            return Ok(());
        };
        if let Some(waiting) = masterless.waiting {
            if now.mono_ms >= waiting.deadline_ms {
                masterless.waiting = None;
                self.peers
                    .suspect(waiting.expected, now.mono_ms + 2 * timeout);
                let expected_winner = waiting.expected;
                self.audit(now, ElectionFact::PassedOver { expected_winner });
                return self.start_pre_vote(now);
            }
            return Ok(());
        }
        if masterless.pre_vote.is_some() {
            return self.tally_pre_vote(now);
        }
        if now.mono_ms.saturating_sub(masterless.since_ms) > timeout
            && !self.joining()
            && !self.revoked
        {
            return self.start_pre_vote(now);
        }
        Ok(())
    }

    /// A new incarnation (a device restored from a copy, or replaced) that has not led or
    /// followed a master elected since it began (its epoch is older than the incarnation) and
    /// has not caught up with a master's log since it started: its log may be far behind the
    /// store's, and the devices that hold more may be down or cut off. It wins an election only
    /// when every device it knows answered the pre-vote (so none that holds more is missing):
    /// otherwise its island's newer term would make the store's devices truncate their logs to
    /// its copy, losing the entries whose origin was the device it replaced (issue #27). Devices
    /// forming a store (none knows an epoch yet) are not held back. It still takes its tills'
    /// writes, as a client.
    fn behind_its_store(&self) -> bool {
        // Devices forming a store (none knows an epoch) have no store log to lose.
        let store_exists = self.epoch.is_some() || self.peers.highest_term().is_some();
        store_exists
            && self.term_floor.0 > 0
            && self.epoch.is_none_or(|e| e.term < self.term_floor)
            && !self.caught_up
    }

    // ----- the pre-vote (see `crate::pre_vote`) -----

    /// Asks every peer whether it still hears the master before anything is decided (the
    /// question goes out with the input's commit).
    fn start_pre_vote(&mut self, now: Now) -> Result<(), S> {
        if self.revoked {
            return Ok(()); // out of its store: it never leads again
        }
        let lost_master = self
            .epoch
            .map(|e| e.master_id)
            .filter(|id| *id != self.me());
        // Every peer heard within the master timeout; the lost master too when it is (it said
        // it is no master any more): its log may be the most complete.
        let awaited: BTreeSet<DeviceId> = self.peers.alive(now.mono_ms);
        let record = ElectionFact::PreVoteAsked {
            lost_master,
            awaited: awaited.iter().copied().collect(),
        };
        self.audit(now, record);
        let master_wait_ms = self
            .config
            .heartbeat_interval_ms
            .min(PRE_VOTE_MASTER_WAIT_MS_MAX);
        let round = PreVote::start(
            lost_master,
            awaited,
            now.mono_ms,
            self.config.heartbeat_interval_ms,
            (master_wait_ms, self.pre_vote_duration_ms()),
        );
        let Phase::Masterless(masterless) = &mut self.phase else {
            return Ok(());
        };
        masterless.waiting = None;
        masterless.pre_vote = Some(round);
        let question = self.pre_vote_question();
        self.send(To::AllPeers, question);
        self.tally_pre_vote(now)
    }

    /// How long a pre-vote waits for a peer that was alive and has not answered: long enough to
    /// ask it again a few times when messages are lost, short enough for failover to stay
    /// within the master timeout and a little more when a second device died too.
    fn pre_vote_duration_ms(&self) -> u64 {
        self.config
            .master_timeout_ms
            .min(PRE_VOTE_ROUNDS_MAX * self.config.heartbeat_interval_ms)
    }

    fn pre_vote_question(&self) -> Message {
        Message::PreVote {
            epoch: self.epoch,
            log_head: self.log_head,
        }
    }

    /// The epoch of the last entry and the head: how complete this device's log is.
    fn log_position(&self) -> Result<LogPosition, S> {
        let head_epoch = self
            .store
            .entry_at(self.log_head)
            .map_err(store_err)?
            .map(|e| e.epoch);
        Ok(LogPosition {
            head_epoch,
            log_head: self.log_head,
        })
    }

    /// How long ago this device heard its master, if within the master timeout (`0`: it is the
    /// master).
    fn master_heard_ms_ago(&self, now: Now) -> Option<u64> {
        match &self.phase {
            Phase::Master(_) => Some(0),
            // Only a client the master answered in this epoch vouches for it: one that merely
            // learned the epoch (from the asker, say) has not heard the master at all.
            Phase::Following(following) if following.registered => {
                let ago = now.mono_ms.saturating_sub(following.heard_ms);
                (ago <= self.config.master_timeout_ms).then_some(ago)
            }
            Phase::Following(_) | Phase::Masterless(_) => None,
        }
    }

    /// A peer asks whether we still hear the master: a device that does refuses to support an
    /// election; one that does not says how far its log is and hands over the events the lost
    /// master accepted from it that its log lacks.
    fn on_pre_vote(&mut self, from: DeviceId, now: Now) -> Result<(), S> {
        if self.revoked {
            // Out of its store: it is no candidate, and the asker decides without it.
            return Ok(());
        }
        let master_heard_ms_ago = self.master_heard_ms_ago(now);
        let accepted_unlogged = if master_heard_ms_ago.is_some() {
            Vec::new()
        } else {
            // This device just said it has no master: it must not take the role from the
            // master it followed later on, as the asker may now elect another (`handover.rs`).
            self.drop_take_over("told a pre-vote it does not hear its master", now);
            within_bytes(
                self.store
                    .accepted_unlogged(BATCH_EVENTS_MAX)
                    .map_err(store_err)?,
            )
        };
        let reply = Message::PreVoteReply {
            epoch: self.epoch,
            master_heard_ms_ago,
            position: self.log_position()?,
            accepted_unlogged,
        };
        self.send(To::Device(from), reply);
        Ok(())
    }

    fn on_pre_vote_reply(&mut self, from: DeviceId, mut ballot: Ballot, now: Now) -> Result<(), S> {
        let Phase::Masterless(masterless) = &mut self.phase else {
            return Ok(()); // an answer to a round already over
        };
        let Some(round) = masterless.pre_vote.as_mut() else {
            return Ok(());
        };
        if let Some(heard_ms_ago) = ballot.master_heard_ms_ago {
            // A live master is never deposed by a device that merely stopped hearing it: wait
            // for its heartbeats, and ask again when the master has been silent for a master
            // timeout as `from` hears it (then `from` would time out itself).
            let lost_master = round.lost_master();
            masterless.pre_vote = None;
            masterless.since_ms = now.mono_ms.saturating_sub(heard_ms_ago);
            let record = ElectionFact::PreVoteRefused {
                by: from,
                lost_master,
                heard_ms_ago,
            };
            self.audit(now, record);
            return Ok(());
        }
        // A device answers only for its own events (SPEC §8).
        let (own, forged): (Vec<SyncEvent>, Vec<SyncEvent>) =
            std::mem::take(&mut ballot.accepted_unlogged)
                .into_iter()
                .take(BATCH_EVENTS_MAX)
                .partition(|e| e.origin() == from);
        ballot.accepted_unlogged = own;
        round.record(from, ballot);
        if !forged.is_empty() {
            let ids: Vec<String> = forged.iter().map(|e| e.event_id.to_string()).collect();
            let why = "pre-vote answer with events of another device";
            self.alarm(now, from, why, serde_json::json!({ "event_ids": ids }));
        }
        self.tally_pre_vote(now)
    }

    /// Asks silent peers again, and holds the election once the round is closed.
    fn tally_pre_vote(&mut self, now: Now) -> Result<(), S> {
        let question = self.pre_vote_question();
        let Phase::Masterless(masterless) = &mut self.phase else {
            return Ok(());
        };
        let Some(round) = masterless.pre_vote.as_mut() else {
            return Ok(());
        };
        if round.tally(now.mono_ms) == Tally::Open {
            for peer in round.ask_again(now.mono_ms) {
                self.send(To::Device(peer), question.clone());
            }
            return Ok(());
        }
        let Some(round) = masterless.pre_vote.take() else {
            return Ok(());
        };
        self.hold_election(round, now)
    }

    /// The pre-vote closed and nobody hears the master: the reachable device with the most
    /// complete log (then the best rank) is to be master.
    fn hold_election(&mut self, round: PreVote, now: Now) -> Result<(), S> {
        let me = Candidate {
            device_id: self.me(),
            priority: self.config.me.priority,
            position: self.log_position()?,
        };
        let peers = &self.peers;
        let (winner, candidates) = round.winner(me, |id| peers.candidate_priority(id, now.mono_ms));
        let answered = round.answered();
        let unanswered: Vec<DeviceId> = round
            .awaited()
            .iter()
            .filter(|id| !answered.contains(id))
            .copied()
            .collect();
        let view = ElectionView {
            candidates,
            expected_winner: winner,
            lost_master: round.lost_master(),
            answered,
            unanswered,
            position: me.position,
        };
        // Every device it knows: its roster, whoever it heard, and its epoch's master (a
        // restored copy may hold no roster).
        let epoch_master = self
            .epoch
            .map(|e| e.master_id)
            .filter(|id| *id != self.me());
        let everyone_answered = self
            .peers
            .known_ids()
            .chain(epoch_master)
            .all(|id| view.answered.contains(&id));
        let may_lead = !self.revoked && (everyone_answered || !self.behind_its_store());
        if winner == self.me() && may_lead {
            let carried = round.into_carried();
            return self.become_master(now, REASON_ELECTED, Some(view), carried);
        }
        self.audit(now, ElectionFact::ElectionHeld(view));
        if let Phase::Masterless(masterless) = &mut self.phase {
            masterless.waiting = Some(Waiting {
                expected: winner,
                deadline_ms: now.mono_ms + self.config.master_timeout_ms,
            });
        }
        Ok(())
    }

    // ----- becoming master -----

    fn highest_known_term(&self) -> Term {
        self.peers
            .highest_term()
            .max(self.epoch.map(|e| e.term))
            .unwrap_or(Term(0))
    }

    /// Takes the master role in a new term. `election` is what the election won looked at (none
    /// for a handover or a lone device); `carried` the events the pre-vote answers carried.
    pub(super) fn become_master(
        &mut self,
        now: Now,
        reason: &'static str,
        election: Option<ElectionView>,
        carried: Vec<SyncEvent>,
    ) -> Result<(), S> {
        // Never a term an earlier incarnation of this id may have led.
        let epoch = Epoch {
            term: Term(self.highest_known_term().0 + 1).max(self.term_floor),
            master_id: self.me(),
            master_priority: self.config.me.priority,
        };
        let record = ElectionFact::Won {
            epoch,
            reason,
            election,
        };
        self.audit(now, record);
        // Persisted before it is announced (SPEC §6). Own events an older master accepted but
        // that are not in this log go back to pending, to be decided into the new log.
        self.commit(Batch {
            epoch: Some(epoch),
            repend_unlogged: true,
            ..Batch::default()
        })?;
        self.epoch = Some(epoch);
        self.take_master_role(now, carried)?;
        self.send(
            To::AllPeers,
            Message::MasterAnnounce {
                epoch,
                url: self.config.me.advertise.clone(),
            },
        );
        Ok(())
    }

    /// A lone device restarting as master of the epoch it already leads.
    pub(super) fn resume_master(&mut self, now: Now) -> Result<(), S> {
        let record = EpochFact::RoleChanged {
            to: Role::Master,
            reason: REASON_LONE_RESTART,
            epoch: self.epoch,
        };
        self.audit(now, record);
        self.take_master_role(now, Vec::new())
    }

    fn take_master_role(&mut self, now: Now, carried: Vec<SyncEvent>) -> Result<(), S> {
        self.phase = Phase::Master(Leading::new(self.log_head));
        self.outbox.notify(Notification::RoleChanged {
            role: Role::Master,
            epoch: self.epoch,
        });
        self.send_heartbeat();
        // What earlier masters accepted is decided before anything new, in the order they
        // decided it (`decision_order`): the entries this device held for a master that is
        // gone, the events the pre-vote answers carried, and its own events accepted before.
        let own_accepted = self
            .store
            .accepted_unlogged(BATCH_EVENTS_MAX)
            .map_err(store_err)?;
        let mut accepted: Vec<SyncEvent> = std::mem::take(&mut self.relay)
            .into_iter()
            .map(|entry| entry.event)
            .chain(carried)
            .chain(own_accepted)
            .map(|mut event| {
                event.accepted_before = true;
                event
            })
            .collect();
        accepted.sort_by_key(decision_order);
        for chunk in accepted.chunks(BATCH_EVENTS_MAX) {
            self.decide_own(chunk.to_vec(), now)?;
        }
        // Then the events this device made while it was a client, like any push.
        self.decide_own_pending(now)
    }
}

//! Handover (SPEC §6, manual override) and `--reclaim`: the master gives its role to a caught-up
//! device, in a new term, without an election.
//!
//! The handshake (Raft's leadership transfer, with the old leader's step-down made explicit):
//! 1. the master freezes (decides nothing new, refuses pushes and relays with `handing_over`)
//!    and sends `handover {log_head}` to the target;
//! 2. the target, once its log reaches that head, answers `handover_ready {log_head}`;
//! 3. the master, if it is still frozen for that target at that head, commits the grant (its
//!    audit row) and only then answers `handover_granted`; it stays frozen, and never decides in
//!    its epoch again: it steps down when it hears the target's epoch, or at its deadline;
//! 4. the target takes over at its next tick (after the messages that waited with the grant were
//!    read), in a new term, if the grant came within its window.
//!
//! **Invariant:** the two never lead at once, whatever the delays and pauses: a target takes over
//! only on a grant, and a master grants only while frozen, and decides nothing in that epoch once
//! it has. Until it steps down, the granting master still answers pre-votes as the master and
//! refuses pushes with `handing_over`, so nobody elects a third device while the target takes
//! over. A master that gives up (its target did not answer within [`HANDOVER_TIMEOUTS`]) has
//! granted nothing, so a `handover` read late (after a pause, a reorder, a reconnect) leads at
//! most to a `handover_ready` that is refused. A target that did not run for a while, or that told
//! a pre-vote it does not hear its master, drops the handover: a grant it reads afterwards is
//! ignored (audited), and the store elects a master as after any failure. A device asking with
//! `--reclaim` never deposes the master: it asks, and the master hands over.

use rms_domain::{DeviceId, Epoch, Role};

use super::audit::{HandoverFact, REASON_HANDED_OVER, REASON_HANDOVER};
use super::phase::{HandingOver, Leading, Phase, TakeOver};
use super::{HandoverError, Now, Result, SyncError, SyncNode, To, store_err};
use crate::message::{ErrorCode, Message};
use crate::pre_vote::rank;
use crate::store::{Batch, SyncStore};

/// A master waits this many master timeouts for its handover target to take over, deciding
/// nothing new meanwhile, before it goes on as master.
const HANDOVER_TIMEOUTS: u64 = 2;

/// A handover target asks for the role within this many master timeouts of the request, or not
/// at all (the master's wait of [`HANDOVER_TIMEOUTS`] leaves time for the grant to come back).
const TAKE_OVER_TIMEOUTS: u64 = 1;

/// `--reclaim` asks the master for the role again after this many master timeouts.
const RECLAIM_ASK_TIMEOUTS: u64 = 1;

impl<S: SyncStore> SyncNode<S> {
    /// The handshake's messages (after `fence`), to the side they are for: `handover` and
    /// `handover_granted` to the target, `handover_ready` and `handover_request` to the master.
    /// `SyncNode::route` sends every other message elsewhere.
    pub(super) fn route_handover(
        &mut self,
        from: DeviceId,
        message: Message,
        now: Now,
    ) -> Result<(), S> {
        match message {
            Message::Handover {
                target, log_head, ..
            } => {
                if target == self.me() && self.is_my_master(from) {
                    self.expect_take_over(log_head, now);
                }
                Ok(())
            }
            Message::HandoverReady { log_head, .. } => self.on_handover_ready(from, log_head, now),
            Message::HandoverGranted { log_head, .. } => {
                if self.is_my_master(from) {
                    self.on_handover_granted(from, log_head, now);
                }
                Ok(())
            }
            Message::HandoverRequest { .. } => self.on_handover_request(from, now),
            _ => Ok(()), // not the handshake's: `route` does not send it here
        }
    }

    /// The master hands its role to `target` (manual override): the target takes over in a new
    /// term once it has caught up. Nothing changes if the handover cannot be recorded.
    pub fn request_handover(
        &mut self,
        target: DeviceId,
        now: Now,
    ) -> std::result::Result<(), HandoverError<S::Error>> {
        let Some(epoch) = self.epoch.filter(|_| self.role() == Role::Master) else {
            return Err(HandoverError::NotMaster);
        };
        if target == self.me() {
            return Err(HandoverError::ToSelf(target));
        }
        if !self.peers.is_alive(target, now.mono_ms) {
            return Err(HandoverError::Unreachable(target));
        }
        if let Phase::Master(Leading {
            handing_over: Some(current),
            ..
        }) = &self.phase
        {
            return Err(HandoverError::InProgress(current.target));
        }
        let result = self.start_handover(epoch, target, now);
        self.finish(result)
            .map_err(|SyncError::Store(e)| HandoverError::Storage(e))
    }

    /// Audits the handover (committed first: a handover that cannot be recorded does not
    /// start), stops deciding (the log is final for this epoch: the target takes over at this
    /// head, and nothing decided here later can be missing from its log), and asks the target to
    /// take over.
    fn start_handover(&mut self, epoch: Epoch, target: DeviceId, now: Now) -> Result<(), S> {
        let log_head = self.log_head;
        let record = HandoverFact::HandoverStarted {
            to: target,
            epoch,
            log_head,
        };
        self.audit(now, record);
        self.commit(Batch::default())?;
        let deadline_ms = now.mono_ms + HANDOVER_TIMEOUTS * self.config.master_timeout_ms;
        if let Phase::Master(leading) = &mut self.phase {
            leading.handing_over = Some(HandingOver {
                target,
                deadline_ms,
                granted: None,
            });
        }
        let handover = Message::Handover {
            epoch,
            target,
            log_head,
        };
        self.send(To::Device(target), handover);
        Ok(())
    }

    /// `--reclaim`: a device that outranks this master and has caught up asks for the role.
    fn on_handover_request(&mut self, from: DeviceId, now: Now) -> Result<(), S> {
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        let Phase::Master(leading) = &self.phase else {
            return Ok(());
        };
        if let Some(handing_over) = leading.handing_over {
            let time_left = handing_over.deadline_ms.saturating_sub(now.mono_ms);
            if handing_over.target == from
                && time_left >= TAKE_OVER_TIMEOUTS * self.config.master_timeout_ms
            {
                // The handover was lost on its way: say it again, while the target's window
                // would still close before this master's deadline.
                let handover = Message::Handover {
                    epoch,
                    target: from,
                    log_head: self.log_head,
                };
                self.send(To::Device(from), handover);
            }
            return Ok(());
        }
        let outranks = self.peers.info(from).is_some_and(|info| {
            rank(info.priority, from) > rank(epoch.master_priority, epoch.master_id)
        });
        if !outranks {
            self.audit(now, HandoverFact::ReclaimRefused { from });
            return Ok(());
        }
        self.start_handover(epoch, from, now)
    }

    /// Master tick: the handover target did not take over in time, so this master goes on, and
    /// decides the local writes that waited meanwhile.
    pub(super) fn handover_tick(&mut self, now: Now) -> Result<(), S> {
        let Phase::Master(leading) = &mut self.phase else {
            return Ok(());
        };
        let Some(handing_over) = leading.handing_over else {
            return Ok(());
        };
        if now.mono_ms < handing_over.deadline_ms {
            return Ok(());
        }
        if handing_over.granted.is_some() {
            // Granted, and the target's new epoch not heard yet: it may lead by now (its
            // announce lost), so this master never goes on; the store elects if it does not.
            return self.step_down_after_grant(now);
        }
        leading.handing_over = None;
        let to = handing_over.target;
        self.audit(now, HandoverFact::HandoverCancelled { to });
        self.decide_own_pending(now)
    }

    /// A master that granted its role and has not heard the target's epoch by its deadline
    /// becomes a device without a master.
    fn step_down_after_grant(&mut self, now: Now) -> Result<(), S> {
        self.step_down(now, REASON_HANDED_OVER)
    }

    /// A push or relay while the master hands over: undecided, to be pushed again to the next
    /// master (the pusher's push times out, or it follows the new epoch first).
    pub(super) fn refuse_handing_over(&mut self, to: DeviceId, what: &'static str, now: Now) {
        self.audit(now, HandoverFact::RefusedHandingOver { what, from: to });
        let message = Message::Error {
            epoch: self.epoch,
            code: ErrorCode::HandingOver,
            message: "this master is handing its role over; push again to the next".into(),
        };
        self.send(To::Device(to), message);
    }

    /// The master's answer to the target's `handover_ready`: granted only while this master is
    /// frozen for that target at that head, committed (audited) before the grant goes. From the
    /// grant on it decides nothing in its epoch again; it stays frozen as master — refusing
    /// pushes with `handing_over`, answering pre-votes as the master — so that nobody elects
    /// another while the target takes over, and steps down when it hears the target's epoch or at
    /// its deadline. A repeated ready (the grant lost) is granted again.
    fn on_handover_ready(&mut self, from: DeviceId, log_head: u64, now: Now) -> Result<(), S> {
        let handing_over = match &self.phase {
            Phase::Master(leading) => leading.handing_over,
            _ => None,
        };
        let (Some(epoch), Some(handing_over)) = (self.epoch, handing_over) else {
            let why = "not handing over";
            self.audit(
                now,
                HandoverFact::ReadyRefused {
                    from,
                    log_head,
                    why,
                },
            );
            return Ok(());
        };
        if handing_over.target != from || log_head != self.log_head {
            let why = "another target or another head";
            self.audit(
                now,
                HandoverFact::ReadyRefused {
                    from,
                    log_head,
                    why,
                },
            );
            return Ok(());
        }
        if handing_over.granted.is_none() {
            self.audit(now, HandoverFact::HandoverGranted { to: from, log_head });
            self.commit(Batch::default())?;
            if let Phase::Master(Leading {
                handing_over: Some(handing_over),
                ..
            }) = &mut self.phase
            {
                handing_over.granted = Some(log_head);
            }
        }
        self.send(
            To::Device(from),
            Message::HandoverGranted { epoch, log_head },
        );
        Ok(())
    }

    /// The master asked this device to take over at `log_head`: it asks for the role once caught
    /// up, within [`TAKE_OVER_TIMEOUTS`].
    fn expect_take_over(&mut self, log_head: u64, now: Now) {
        let until_ms = now.mono_ms + TAKE_OVER_TIMEOUTS * self.config.master_timeout_ms;
        if let Phase::Following(following) = &mut self.phase {
            if following.master_head_seen > log_head {
                // The master decided past this head: the handover ended before its request
                // arrived (a message that came late, or out of order).
                return;
            }
            let take_over = following.take_over_at.get_or_insert(TakeOver {
                log_head,
                until_ms,
                ready_sent_ms: None,
                granted_ms: None,
            });
            take_over.log_head = log_head;
        }
    }

    /// The master granted this device the role at `log_head` (and decides nothing in its epoch
    /// again): taken at the next tick, if this device still expects the handover, within its
    /// window, and its log is at that head (the master's whole log).
    fn on_handover_granted(&mut self, from: DeviceId, log_head: u64, now: Now) {
        let my_head = self.log_head;
        let why = match &mut self.phase {
            Phase::Following(following) => match following.take_over_at.as_mut() {
                Some(take_over) if now.mono_ms > take_over.until_ms => "too late",
                Some(take_over) if following.synced && log_head == my_head => {
                    take_over.granted_ms = Some(now.mono_ms);
                    return;
                }
                Some(_) => "the log is not at the granted head",
                None => "no handover expected (dropped, or never asked)",
            },
            _ => "not following that master",
        };
        self.audit(
            now,
            HandoverFact::GrantIgnored {
                from,
                log_head,
                why,
            },
        );
    }

    /// Drops the handover this device was to carry out, audited with `why`. A grant read later
    /// is ignored.
    pub(super) fn drop_take_over(&mut self, why: &'static str, now: Now) {
        let log_head = self.log_head;
        let Phase::Following(following) = &mut self.phase else {
            return;
        };
        if let Some(take_over) = following.take_over_at.take() {
            let wanted = take_over.log_head;
            let record = HandoverFact::HandoverNotTaken {
                log_head,
                wanted,
                why,
            };
            self.audit(now, record);
        }
    }

    /// Client tick, handover target or `--reclaim`: take a granted role; ask for it once caught
    /// up.
    pub(super) fn maybe_take_over(&mut self, now: Now) -> Result<(), S> {
        if self.revoked {
            self.drop_take_over("revoked", now);
            return Ok(());
        }
        let heartbeat_ms = self.config.heartbeat_interval_ms;
        let (Some(epoch), Phase::Following(following)) = (self.epoch, &mut self.phase) else {
            return Ok(());
        };
        if let Some(take_over) = following.take_over_at.as_mut() {
            if take_over.granted_ms.is_some() {
                following.take_over_at = None;
                return self.become_master(now, REASON_HANDOVER, None, Vec::new());
            }
            if now.mono_ms > take_over.until_ms {
                // Too late: the master goes on deciding after its own deadline.
                self.drop_take_over("not caught up in time", now);
                return Ok(());
            }
            let caught_up = following.synced
                && self.log_head >= take_over.log_head
                && self.log_head >= following.master_log_head;
            let ask = take_over
                .ready_sent_ms
                .is_none_or(|at| now.mono_ms.saturating_sub(at) >= heartbeat_ms);
            if following.master_head_seen > take_over.log_head {
                following.take_over_at = None; // stale: see `expect_take_over`
            } else if caught_up && ask {
                take_over.ready_sent_ms = Some(now.mono_ms);
                let log_head = self.log_head;
                let ready = Message::HandoverReady { epoch, log_head };
                self.send(To::Device(epoch.master_id), ready);
            }
        }
        let Phase::Following(following) = &mut self.phase else {
            return Ok(());
        };
        if !following.synced || self.log_head < following.master_log_head {
            return Ok(());
        }
        let outranks = rank(self.config.me.priority, self.config.me.device_id)
            > rank(epoch.master_priority, epoch.master_id);
        let asked_lately = following.reclaim_asked_ms.is_some_and(|at| {
            now.mono_ms.saturating_sub(at) <= RECLAIM_ASK_TIMEOUTS * self.config.master_timeout_ms
        });
        if !(self.config.reclaim && outranks && !asked_lately) {
            return Ok(());
        }
        if self.store.pending_count().map_err(store_err)? == 0 {
            // The master hands the role over itself (`request_handover`), so that it decides
            // nothing this device's log would lack.
            following.reclaim_asked_ms = Some(now.mono_ms);
            let request = Message::HandoverRequest { epoch };
            self.send(To::Device(epoch.master_id), request);
        }
        Ok(())
    }
}

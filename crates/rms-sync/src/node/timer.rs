//! Timers: what [`SyncNode::poll_timeout`] waits for, named ([`Timer`] has the table), and the
//! pause rule that keeps a stopped device from counting its own silence against its peers.

use rms_domain::Role;

use super::audit::{EpochFact, REASON_PAUSED};
use super::phase::{Masterless, Phase};
use super::{Notification, Now, Result, SyncNode};
use crate::store::{Batch, SyncStore};

/// A timer of the sync core: which deadline made [`SyncNode::poll_timer`] due.
///
/// | timer | phase | when it fires |
/// |---|---|---|
/// | `Heartbeat` | every phase | every heartbeat interval: the heartbeat goes to every peer |
/// | `Sync` | master | every sync interval (jittered): broadcast what is not yet broadcast |
/// | `Broadcast` | master | eager sync: a write of its own was committed; broadcast it (at most every [`crate::EAGER_BROADCAST_GAP_MS`]) |
/// | `Sync` | client | every sync interval (jittered): push pending events, pull, relay |
/// | `MasterTimeout` | following | the master was not heard within the master timeout |
/// | `PreVote` | masterless | ask silent peers again, or close the round and elect |
/// | `ElectionWait` | masterless | the expected winner did not take over in time |
/// | `Handover` | master | the handover target did not take over in time |
/// | `Handover` | following | the master granted this device the role: take it over |
///
/// Every timer is checked at each call of [`SyncNode::handle_timeout`]; the table says which
/// one made the call due. A masterless device without a round also holds one when it has been
/// masterless for a master timeout, checked at its heartbeat and sync ticks.
///
/// **Pauses:** when an input comes later than the heartbeat timer by more than a heartbeat
/// interval, the device did not run meanwhile (a stopped process, a stalled disk): every "last
/// heard" and every deadline moves by the delay before anything is decided, so its own silence
/// never counts against its peers; the pause is audited ([`crate::WHY_INPUT_GAP`]), and a
/// master paused for about a master timeout steps down ([`crate::REASON_PAUSED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// This device's heartbeat is due (every heartbeat interval, in every phase).
    Heartbeat,
    /// The sync interval passed: a master broadcasts, a client pushes, pulls and relays.
    Sync,
    /// Eager sync: a master's entries not yet broadcast are due.
    Broadcast,
    /// A client did not hear its master within the master timeout.
    MasterTimeout,
    /// A pre-vote round asks silent peers again, or closes.
    PreVote,
    /// The device expected to win an election did not take over in time.
    ElectionWait,
    /// A master's handover deadline, or a target's granted handover to carry out.
    Handover,
}

/// The timer of a masterless device due first, if it waits for an election's winner
/// ([`Timer::ElectionWait`]) or runs a pre-vote ([`Timer::PreVote`]).
fn masterless_timer(masterless: &Masterless) -> Option<(Timer, u64)> {
    let waiting = masterless
        .waiting
        .map(|w| (Timer::ElectionWait, w.deadline_ms));
    let pre_vote = masterless
        .pre_vote
        .as_ref()
        .map(|round| (Timer::PreVote, round.next_timeout_ms()));
    waiting
        .into_iter()
        .chain(pre_vote)
        .min_by_key(|(_, at)| *at)
}

impl<S: SyncStore> SyncNode<S> {
    /// When [`SyncNode::handle_timeout`] wants to be called, on the clock of [`Now::mono_ms`]
    /// (milliseconds). It may be in the past: then call it at once. Ask again after every input.
    pub fn poll_timeout(&self) -> u64 {
        self.poll_timer().1
    }

    /// The timer due first, and when.
    pub fn poll_timer(&self) -> (Timer, u64) {
        let timeout = self.config.master_timeout_ms;
        let phase_timer = match &self.phase {
            Phase::Master(leading) => {
                let handover = leading
                    .handing_over
                    .map(|h| (Timer::Handover, h.deadline_ms));
                let broadcast = leading.broadcast_due_ms.map(|at| (Timer::Broadcast, at));
                [handover, broadcast]
                    .into_iter()
                    .flatten()
                    .min_by_key(|(_, at)| *at)
            }
            Phase::Following(following) => {
                let master_timeout = (Timer::MasterTimeout, following.heard_ms + timeout + 1);
                let granted = following.take_over_at.and_then(|t| t.granted_ms());
                Some(granted.map_or(master_timeout, |at| (Timer::Handover, at)))
            }
            Phase::Masterless(masterless) => masterless_timer(masterless),
        };
        [
            (Timer::Heartbeat, self.next_heartbeat_ms),
            (Timer::Sync, self.next_sync_ms),
        ]
        .into_iter()
        .chain(phase_timer)
        .min_by_key(|(_, at)| *at)
        .unwrap_or((Timer::Heartbeat, self.next_heartbeat_ms))
    }

    pub(super) fn on_timeout(&mut self, now: Now) -> Result<(), S> {
        self.forgive_pause(now)?;
        if now.mono_ms >= self.next_heartbeat_ms {
            self.send_heartbeat();
            self.next_heartbeat_ms = now.mono_ms + self.config.heartbeat_interval_ms;
        }
        if self.role() == Role::Master {
            return self.master_tick(now);
        }
        let sync_due = now.mono_ms >= self.next_sync_ms;
        if sync_due {
            self.next_sync_ms = now.mono_ms + self.sync_delay();
        }
        match self.phase {
            Phase::Following(_) => self.client_tick(now, sync_due),
            _ => self.masterless_tick(now),
        }
    }

    /// A pause (SIGSTOP, a stalled disk, a starved thread) is time this device did not listen:
    /// it does not count against its peers. When an input comes later than the heartbeat timer
    /// by more than a heartbeat interval, every "last heard" and every deadline moves by the
    /// delay, so the inputs already waiting are read before any timer decides that a peer or
    /// the master is gone. The pause is audited (committed before a master steps down, as
    /// every role change is).
    pub(super) fn forgive_pause(&mut self, now: Now) -> Result<(), S> {
        let late_ms = now.mono_ms.saturating_sub(self.next_heartbeat_ms);
        if late_ms <= self.config.heartbeat_interval_ms {
            return Ok(());
        }
        // What was recorded before the gap moves by the delay; what was heard since (an input
        // read during a catch-up) stays as it is.
        let gap_started_ms = std::mem::replace(&mut self.next_heartbeat_ms, now.mono_ms);
        self.peers.forgive_pause(gap_started_ms, late_ms);
        match &mut self.phase {
            Phase::Master(_) => {}
            Phase::Following(following) => following.forgive_pause(gap_started_ms, late_ms),
            Phase::Masterless(masterless) => {
                masterless.forgive_pause(gap_started_ms, late_ms, now.mono_ms)
            }
        }
        self.audit(now, EpochFact::InputGap { late_ms });
        // A handover this device was to carry out is dropped: while it did not run, its master
        // may have given up, or granted the role and been succeeded by another (see
        // `handover.rs`). A grant read from now on is ignored, and the store elects instead.
        self.drop_take_over("did not run for a while", now);
        // A master that stopped for about a master timeout has been taken for dead, and another
        // device may lead by now: it decides nothing more (not even the pushes that waited for
        // it) until it knows, as a client of whichever master it hears (or, hearing none, by
        // asking again). A lone device has nobody to yield to.
        let deposed_maybe = self.role() == Role::Master
            && self.config.has_peers
            && late_ms + self.config.heartbeat_interval_ms > self.config.master_timeout_ms;
        if deposed_maybe {
            let record = EpochFact::RoleChanged {
                to: Role::Client,
                reason: REASON_PAUSED,
                epoch: self.epoch,
            };
            self.audit(now, record);
        }
        self.commit(Batch::default())?;
        if deposed_maybe {
            self.phase = Phase::masterless(now.mono_ms);
            self.outbox.notify(Notification::RoleChanged {
                role: Role::Client,
                epoch: self.epoch,
            });
        }
        Ok(())
    }
}

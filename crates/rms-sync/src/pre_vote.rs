//! The election (SPEC §6; issue #12): a device that lost its master does not depose it on its
//! own view. It first asks every peer it can reach whether they still hear that master — the
//! **pre-vote** (Raft's PreVote, without the majority a two-device store cannot have) — and holds
//! an election only if none of the peers that answer does. A peer that still hears a live master
//! refuses and says so. A device that reaches no peer at all is master of its own island.
//!
//! The answers also say how far each peer's copy of the master log is, and carry the events the
//! lost master accepted from that peer whose log entries never reached it. The winner is the
//! device with the **most complete log** among those that answered (Raft's election restriction),
//! then the best rank; it decides the carried events before anything else, so that a failover
//! without a partition does not sell a unit twice.
//!
//! This module owns the round's state and the choice of the winner; the node sends the messages
//! and commits what the round decided.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use rms_domain::{DeviceId, Epoch, SyncEvent};
use serde::{Deserialize, Serialize};

/// How far a device's copy of the master log is: the epoch of its last entry, then the entry's
/// position (Raft's "last log term, last log index"). Greater is more complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogPosition {
    /// The epoch that decided the last entry (`None`: the log is empty).
    pub head_epoch: Option<Epoch>,
    /// The position of the last entry (0: the log is empty).
    pub log_head: u64,
}

/// A device's rank (SPEC §6): higher priority first, then lower device id.
pub(crate) fn rank(priority: i32, device_id: DeviceId) -> (i32, Reverse<DeviceId>) {
    (priority, Reverse(device_id))
}

/// What one peer answered to a pre-vote.
#[derive(Debug, Clone)]
pub(crate) struct Ballot {
    /// How long ago the peer heard the lost master (`0`: it is the master), if within the master
    /// timeout: then there is no election.
    pub master_heard_ms_ago: Option<u64>,
    pub position: LogPosition,
    /// The peer's own events the lost master accepted that the peer's log lacks.
    pub accepted_unlogged: Vec<SyncEvent>,
}

/// A device that may win: itself, or a peer that answered without hearing the master.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub device_id: DeviceId,
    pub priority: i32,
    pub position: LogPosition,
}

impl Candidate {
    /// The order of candidates: the most complete log first, then the best rank.
    fn key(&self) -> (LogPosition, (i32, Reverse<DeviceId>)) {
        (self.position, rank(self.priority, self.device_id))
    }
}

/// Where a pre-vote round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tally {
    /// Awaited peers have not all answered, and the deadline has not passed.
    Open,
    /// Every awaited peer answered, or the deadline passed: elect among those that answered.
    Closed,
}

/// A pre-vote round in progress.
#[derive(Debug, Clone)]
pub(crate) struct PreVote {
    /// The master that was lost (`None`: there was none, e.g. after a start).
    lost_master: Option<DeviceId>,
    /// Peers heard within the master timeout when the round started: the round closes as soon
    /// as all of them answered.
    awaited: BTreeSet<DeviceId>,
    ballots: BTreeMap<DeviceId, Ballot>,
    /// Awaited peers that have not answered are asked again this often (a lost question or
    /// answer is not taken for an unreachable peer).
    ask_every_ms: u64,
    next_ask_ms: u64,
    /// The round waits for the lost master's own answer (it may be alive and merely unheard)
    /// until then, even when every awaited peer answered.
    master_wait_until_ms: u64,
    /// The round closes with the answers it has by then.
    deadline_ms: u64,
}

impl PreVote {
    /// `waits_ms`: how long to wait for the lost master's own answer, and for the round.
    pub fn start(
        lost_master: Option<DeviceId>,
        awaited: BTreeSet<DeviceId>,
        now_ms: u64,
        ask_every_ms: u64,
        waits_ms: (u64, u64),
    ) -> PreVote {
        let ask_every_ms = ask_every_ms.max(1);
        let (master_wait_ms, duration_ms) = waits_ms;
        PreVote {
            lost_master,
            awaited,
            ballots: BTreeMap::new(),
            ask_every_ms,
            next_ask_ms: now_ms + ask_every_ms,
            master_wait_until_ms: now_ms + master_wait_ms.min(duration_ms),
            deadline_ms: now_ms + duration_ms,
        }
    }

    pub fn lost_master(&self) -> Option<DeviceId> {
        self.lost_master
    }

    pub fn awaited(&self) -> &BTreeSet<DeviceId> {
        &self.awaited
    }

    /// The peers that answered, in device order.
    pub fn answered(&self) -> Vec<DeviceId> {
        self.ballots.keys().copied().collect()
    }

    /// Records `from`'s answer (a repeated answer replaces the earlier one).
    pub fn record(&mut self, from: DeviceId, ballot: Ballot) {
        self.ballots.insert(from, ballot);
    }

    fn all_awaited_answered(&self) -> bool {
        self.awaited.iter().all(|id| self.ballots.contains_key(id))
    }

    pub fn tally(&self, now_ms: u64) -> Tally {
        let all_answered = self.all_awaited_answered();
        let master_answered_or_waited = self
            .lost_master
            .is_none_or(|master| self.ballots.contains_key(&master))
            || now_ms >= self.master_wait_until_ms;
        if (all_answered && master_answered_or_waited) || now_ms >= self.deadline_ms {
            Tally::Closed
        } else {
            Tally::Open
        }
    }

    /// The awaited peers to ask again now (empty when it is not time yet).
    pub fn ask_again(&mut self, now_ms: u64) -> Vec<DeviceId> {
        if now_ms < self.next_ask_ms {
            return Vec::new();
        }
        self.next_ask_ms = now_ms + self.ask_every_ms;
        self.awaited
            .iter()
            .filter(|id| !self.ballots.contains_key(id))
            .copied()
            .collect()
    }

    /// When the round wants to be looked at again.
    pub fn next_timeout_ms(&self) -> u64 {
        // The wait for the lost master closes the round only once every awaited peer answered.
        let master_wait = Some(self.master_wait_until_ms).filter(|_| {
            self.all_awaited_answered()
                && self
                    .lost_master
                    .is_some_and(|master| !self.ballots.contains_key(&master))
        });
        self.next_ask_ms
            .min(self.deadline_ms)
            .min(master_wait.unwrap_or(u64::MAX))
    }

    /// The winner among `me` and the peers that answered without hearing the master, each
    /// ranked by `priority_of` (a peer for which it says `None` cannot be chosen).
    pub fn winner(
        &self,
        me: Candidate,
        priority_of: impl Fn(DeviceId) -> Option<i32>,
    ) -> (DeviceId, Vec<DeviceId>) {
        let mut best = me;
        let mut candidates = vec![me.device_id];
        for (id, ballot) in &self.ballots {
            let hears_master = ballot.master_heard_ms_ago.is_some();
            let Some(priority) = priority_of(*id).filter(|_| !hears_master) else {
                continue;
            };
            let candidate = Candidate {
                device_id: *id,
                priority,
                position: ballot.position,
            };
            candidates.push(*id);
            if candidate.key() > best.key() {
                best = candidate;
            }
        }
        (best.device_id, candidates)
    }

    /// The events the answers carried, for the winner to decide first: each event once, in the
    /// order the lost master decided them (`master_seq`).
    pub fn into_carried(self) -> Vec<SyncEvent> {
        let mut carried: Vec<SyncEvent> = self
            .ballots
            .into_values()
            .flat_map(|ballot| ballot.accepted_unlogged)
            .collect();
        carried.sort_by_key(|e| (e.master_seq, e.event_id));
        carried.dedup_by_key(|e| e.event_id);
        carried
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rms_domain::Term;

    fn id(n: u16) -> DeviceId {
        DeviceId::new(n).expect("not zero")
    }

    fn position(term: u64, log_head: u64) -> LogPosition {
        LogPosition {
            head_epoch: Some(Epoch {
                term: Term(term),
                master_id: id(1),
                master_priority: 0,
            }),
            log_head,
        }
    }

    fn ballot(hears_master: bool, position: LogPosition) -> Ballot {
        Ballot {
            master_heard_ms_ago: hears_master.then_some(50),
            position,
            accepted_unlogged: Vec::new(),
        }
    }

    #[test]
    fn the_most_complete_log_wins_then_the_best_rank() {
        let mut round = PreVote::start(Some(id(1)), [id(2), id(4)].into(), 0, 10, (20, 100));
        round.record(id(2), ballot(false, position(1, 7)));
        round.record(id(4), ballot(false, position(1, 9)));
        let me = Candidate {
            device_id: id(3),
            priority: 0,
            position: position(1, 9),
        };
        let (winner, candidates) = round.winner(me, |_| Some(0));
        assert_eq!(
            winner,
            id(3),
            "equal logs: the lower device id ranks higher"
        );
        assert_eq!(candidates, vec![id(3), id(2), id(4)]);
        let behind = Candidate {
            position: position(1, 8),
            ..me
        };
        assert_eq!(
            round.winner(behind, |_| Some(0)).0,
            id(4),
            "a log behind loses"
        );
        let newer_epoch = Candidate {
            position: position(2, 1),
            ..me
        };
        assert_eq!(
            round.winner(newer_epoch, |_| Some(0)).0,
            id(3),
            "the epoch of the head first"
        );
    }

    #[test]
    fn a_peer_that_hears_the_master_or_is_unknown_is_no_candidate() {
        let mut round = PreVote::start(Some(id(1)), [id(2), id(4)].into(), 0, 10, (20, 100));
        round.record(id(2), ballot(true, position(1, 9)));
        round.record(id(4), ballot(false, position(1, 9)));
        let me = Candidate {
            device_id: id(3),
            priority: 0,
            position: position(1, 1),
        };
        let (winner, candidates) = round.winner(me, |d| (d != id(4)).then_some(0));
        assert_eq!(winner, id(3));
        assert_eq!(candidates, vec![id(3)]);
    }

    #[test]
    fn a_round_closes_when_all_awaited_answered_or_at_its_deadline() {
        let mut round = PreVote::start(Some(id(1)), [id(2), id(3)].into(), 0, 10, (20, 100));
        assert_eq!(round.tally(5), Tally::Open);
        assert!(round.ask_again(5).is_empty(), "not time to ask again yet");
        round.record(id(2), ballot(false, position(1, 1)));
        assert_eq!(
            round.ask_again(10),
            vec![id(3)],
            "only the silent peer is asked again"
        );
        assert_eq!(round.tally(99), Tally::Open);
        assert_eq!(round.tally(100), Tally::Closed, "the deadline closes it");
        round.record(id(3), ballot(false, position(1, 1)));
        assert_eq!(
            round.tally(11),
            Tally::Open,
            "the lost master may still answer"
        );
        assert_eq!(
            round.tally(20),
            Tally::Closed,
            "everyone answered, the master did not"
        );
        round.record(id(1), ballot(true, position(1, 1)));
        assert_eq!(
            round.tally(11),
            Tally::Closed,
            "everyone answered, the master too"
        );
        let alone = PreVote::start(None, BTreeSet::new(), 0, 10, (20, 100));
        assert_eq!(
            alone.tally(0),
            Tally::Closed,
            "nobody to wait for: an island"
        );
    }
}

//! The peers a device knows: liveness (last heard), what each said of itself (the roster), and the
//! devices passed over in an election.
//!
//! **Invariant:** a peer is alive while it was heard within the master timeout, as measured on
//! the monotonic clock of the inputs; a pause of this device moves every "last heard" by the
//! pause (see `SyncNode::forgive_pause`), so a pause never counts against a peer.

use std::collections::{BTreeMap, BTreeSet};

use rms_domain::{DeviceId, Epoch, Role, Term};

use crate::message::{Message, PeerInfo};

/// What this device knows of one peer.
#[derive(Debug, Clone)]
struct Peer {
    info: Option<PeerInfo>,
    /// Monotonic time of the last message from it (`None`: never).
    last_heard_ms: Option<u64>,
    epoch: Option<Epoch>,
    role: Role,
    log_head: u64,
}

impl Peer {
    /// A peer known by what it (or a master's roster) said of itself, not heard from yet.
    fn known(info: Option<PeerInfo>) -> Peer {
        Peer {
            info,
            last_heard_ms: None,
            epoch: None,
            role: Role::Client,
            log_head: 0,
        }
    }
}

#[derive(Debug)]
pub struct Peers {
    me: DeviceId,
    timeout_ms: u64,
    known: BTreeMap<DeviceId, Peer>,
    /// Peers that were expected to take over and did not, until when they are passed over.
    suspects: BTreeMap<DeviceId, u64>,
    /// This device is not admitted by its store (its transport knows it: the store binds another
    /// certificate to its id) and has heard no peer since (issue #27).
    refused: bool,
}

impl Peers {
    /// The peers of the persisted roster, none heard from yet.
    pub fn new(me: DeviceId, timeout_ms: u64, roster: Vec<PeerInfo>) -> Peers {
        let known = roster
            .into_iter()
            .filter(|info| info.device_id != me)
            .map(|info| (info.device_id, Peer::known(Some(info))))
            .collect();
        Peers {
            me,
            timeout_ms,
            known,
            suspects: BTreeMap::new(),
            refused: false,
        }
    }

    /// No other device is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// This device is not admitted by its store; cleared by the next message any peer sends
    /// (only an admitted device hears one).
    pub fn not_admitted(&mut self) {
        self.refused = true;
    }

    /// Every other device this one knows of (its persisted roster and any heard since).
    pub fn known_ids(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.known.keys().copied()
    }

    /// Whether this device is not admitted and has heard no peer since.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// `from` was heard now, saying `message`.
    pub fn note(&mut self, from: DeviceId, message: &Message, now_ms: u64) {
        self.refused = false;
        let peer = self.known.entry(from).or_insert(Peer::known(None));
        peer.last_heard_ms = Some(now_ms);
        peer.epoch = peer.epoch.max(message.epoch());
        match message {
            Message::Heartbeat {
                peer: info,
                role,
                log_head,
                ..
            } if info.device_id == from => {
                peer.info = Some(info.clone());
                peer.role = *role;
                peer.log_head = *log_head;
            }
            Message::Register {
                peer: info,
                log_head,
                ..
            } if info.device_id == from => {
                peer.info = Some(info.clone());
                peer.role = Role::Client;
                peer.log_head = *log_head;
            }
            _ => {}
        }
        self.suspects.remove(&from);
    }

    /// Devices a master's roster names, learned without hearing them.
    pub fn learn(&mut self, roster: Vec<PeerInfo>) {
        for info in roster {
            if info.device_id != self.me {
                let peer = self
                    .known
                    .entry(info.device_id)
                    .or_insert_with(|| Peer::known(Some(info.clone())));
                peer.info.get_or_insert(info);
            }
        }
    }

    pub fn is_alive(&self, device: DeviceId, now_ms: u64) -> bool {
        self.known
            .get(&device)
            .and_then(|p| p.last_heard_ms)
            .is_some_and(|heard| now_ms.saturating_sub(heard) <= self.timeout_ms)
    }

    /// Every peer heard within the master timeout.
    pub fn alive(&self, now_ms: u64) -> BTreeSet<DeviceId> {
        self.known
            .keys()
            .copied()
            .filter(|id| self.is_alive(*id, now_ms))
            .collect()
    }

    pub fn info(&self, device: DeviceId) -> Option<&PeerInfo> {
        self.known.get(&device).and_then(|p| p.info.as_ref())
    }

    /// Every peer's self-description, for a roster.
    pub fn infos(&self) -> Vec<PeerInfo> {
        self.known.values().filter_map(|p| p.info.clone()).collect()
    }

    /// The priority of a peer that may win an election now (`None`: it is passed over). A peer
    /// that never said its priority (it answered a pre-vote before any heartbeat of it was read,
    /// as after this device restarted without its roster) ranks last among equal logs, but a
    /// more complete log still wins: electing a device behind it would undo what that peer's log
    /// holds beyond (issue #26, seed 4135).
    pub fn candidate_priority(&self, device: DeviceId, now_ms: u64) -> Option<i32> {
        let suspected = self
            .suspects
            .get(&device)
            .is_some_and(|until| *until > now_ms);
        if suspected {
            return None;
        }
        Some(self.info(device).map_or(i32::MIN, |info| info.priority))
    }

    /// `device` did not take over when expected: it is passed over until `until_ms`.
    pub fn suspect(&mut self, device: DeviceId, until_ms: u64) {
        self.suspects.insert(device, until_ms);
    }

    /// The highest term any peer said it is in.
    pub fn highest_term(&self) -> Option<Term> {
        self.known
            .values()
            .filter_map(|p| p.epoch.map(|e| e.term))
            .max()
    }

    /// This device did not run from `gap_started_ms` for `late_ms`: what was heard before the
    /// gap moves by it (what was heard since stays), and so do the suspicions.
    pub fn forgive_pause(&mut self, gap_started_ms: u64, late_ms: u64) {
        for heard in self
            .known
            .values_mut()
            .filter_map(|p| p.last_heard_ms.as_mut())
        {
            if *heard <= gap_started_ms {
                *heard += late_ms;
            }
        }
        for until in self.suspects.values_mut() {
            *until += late_ms;
        }
    }

    /// Peers heard within the master timeout, with what they said of themselves.
    pub fn live(&self, now_ms: u64) -> Vec<(PeerInfo, Role, Option<Epoch>)> {
        self.known
            .iter()
            .filter(|(id, _)| self.is_alive(**id, now_ms))
            .filter_map(|(_, p)| p.info.clone().map(|info| (info, p.role, p.epoch)))
            .collect()
    }

    pub fn log_heads(&self) -> Vec<(DeviceId, u64)> {
        self.known.iter().map(|(id, p)| (*id, p.log_head)).collect()
    }

    pub fn roster(&self) -> Vec<(PeerInfo, Option<u64>)> {
        self.known
            .values()
            .filter_map(|p| p.info.clone().map(|i| (i, p.last_heard_ms)))
            .collect()
    }
}

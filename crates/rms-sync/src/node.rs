//! [`SyncNode`]: one device's sync state machine, for both roles.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rms_domain::rules::{self, Products};
use rms_domain::{
    AuditEntry, DeviceId, Epoch, EventId, EventPayload, EventStatus, Hlc, LogEntry, Operation,
    Outcome, RejectReason, Role, SyncEvent, Term, rfc3339_from_ms,
};
use serde_json::{Value, json};

use crate::election::{Ballot, Candidate, LogPosition, PreVote, Tally, rank};
use crate::message::{BATCH_BYTES_MAX, BATCH_EVENTS_MAX, ErrorCode, Message, PeerInfo, Verdict};
use crate::rng::Rng;
use crate::store::{Batch, SyncStore};

/// The time, as every input carries it: monotonic milliseconds for timers, wall milliseconds
/// (since the Unix epoch, possibly skewed) for clocks and audit entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: u64,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub me: PeerInfo,
    /// False for a lone device: it is master of its own store at once.
    pub has_peers: bool,
    pub sync_interval_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub master_timeout_ms: u64,
    /// Take the master role back (in a new term) once caught up, when this device outranks the
    /// master.
    pub reclaim: bool,
    pub rng_seed: u64,
    /// Events stamped further than this in the future are not trusted: their clock is not merged
    /// into this device's, and the audit log flags them.
    pub clock_drift_max_ms: u64,
}

impl SyncConfig {
    pub fn device_id(&self) -> DeviceId {
        self.me.device_id
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Device(DeviceId),
    /// Every peer the driver can reach (configured peers and the roster).
    AllPeers,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub to: To,
    pub message: Message,
}

/// What the application may want to know.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    RoleChanged {
        role: Role,
        epoch: Option<Epoch>,
    },
    /// The master decided one of this device's own events.
    Decided(Verdict),
    /// The device's copy of the master log grew (or was truncated) to `log_head`.
    LogAdvanced {
        log_head: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError<E: std::error::Error + 'static> {
    #[error("storage: {0}")]
    Store(#[source] E),
}

/// Why [`SyncNode::request_handover`] did not start a handover; `E` is the store's error.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError<E: std::error::Error + 'static> {
    #[error("only the master can hand its role over")]
    NotMaster,
    #[error("device {0} is this device")]
    ToSelf(DeviceId),
    #[error("device {0} has not been heard from within the master timeout")]
    Unreachable(DeviceId),
    #[error("cannot record the handover: {0}")]
    Storage(#[source] E),
}

/// What this device knows of a peer.
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
    fn known(info: PeerInfo) -> Peer {
        Peer {
            info: Some(info),
            last_heard_ms: None,
            epoch: None,
            role: Role::Client,
            log_head: 0,
        }
    }
}

/// A client's view of the master it follows.
#[derive(Debug, Clone, Default)]
struct Following {
    /// A master is believed alive (heard within the timeout).
    active: bool,
    heard_ms: u64,
    registered: bool,
    /// The logs were found to agree up to our head (a pull answered without truncation).
    synced: bool,
    master_log_head: u64,
    push_sent_ms: Option<u64>,
    push_again: bool,
    pull_sent_ms: Option<u64>,
    /// Handover asked us to take over once our head reaches `log_head`, until `until_ms`.
    take_over_at: Option<TakeOver>,
    /// `--reclaim`: when this device last asked the master to hand the role back.
    reclaim_asked_ms: Option<u64>,
}

/// The master's answer to a pull, as `Message::Events` carries it.
struct PullAnswer {
    /// The pull it answers: the asker's head and the epoch of its entry there.
    since: u64,
    since_epoch: Option<Epoch>,
    entries: Vec<LogEntry>,
    master_log_head: u64,
    truncate_to: Option<u64>,
}

/// A master handing its role over: it decides nothing new until the target took over (so the
/// target's log is the whole log) or the deadline passed (then it goes on as master).
#[derive(Debug, Clone, Copy)]
struct HandingOver {
    target: DeviceId,
    deadline_ms: u64,
}

/// A handover this device was asked to carry out. It takes over only while its master's latest
/// heartbeat still names it, and within [`TAKE_OVER_TIMEOUTS`] (one master timeout) of the
/// request; its master waits [`HANDOVER_TIMEOUTS`] (two) before it decides again, so the two
/// never lead at once while messages take less than half a master timeout.
#[derive(Debug, Clone, Copy)]
struct TakeOver {
    log_head: u64,
    until_ms: u64,
}

/// An election this device runs while it waits for a better-ranked device to take over.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    expected: DeviceId,
    deadline_ms: u64,
}

type Result<T, S> = std::result::Result<T, SyncError<<S as SyncStore>::Error>>;

/// Most heartbeat intervals a pre-vote waits for a peer that was alive and has not answered
/// (it is asked again each interval), and never longer than the master timeout.
const PRE_VOTE_ROUNDS_MAX: u64 = 4;

/// A master waits this many master timeouts for its handover target to take over, deciding
/// nothing new meanwhile, before it goes on as master.
const HANDOVER_TIMEOUTS: u64 = 2;

/// A handover target takes over within this many master timeouts of the request, or not at all.
const TAKE_OVER_TIMEOUTS: u64 = 1;

/// `--reclaim` asks the master for the role again after this many master timeouts.
const RECLAIM_ASK_TIMEOUTS: u64 = 1;

/// A pre-vote waits at most this long (and at most a heartbeat interval) for the answer of the
/// master it lost, even when that master was not heard lately: if it is alive, its answer
/// ("I am master") stops the election of a device that merely stopped hearing it.
const PRE_VOTE_MASTER_WAIT_MS_MAX: u64 = 250;

pub struct SyncNode<S: SyncStore> {
    config: SyncConfig,
    store: S,
    rng: Rng,
    role: Role,
    epoch: Option<Epoch>,
    log_head: u64,
    hlc: Hlc,
    peers: BTreeMap<DeviceId, Peer>,
    following: Following,
    waiting: Option<Waiting>,
    /// The pre-vote round this device runs before it holds an election.
    pre_vote: Option<PreVote>,
    /// Master: a handover in progress.
    handing_over: Option<HandingOver>,
    /// Peers that were expected to take over and did not, until when they are passed over.
    suspects: BTreeMap<DeviceId, u64>,
    /// When this device last lost (or started without) a master.
    masterless_since_ms: u64,
    /// Entries this device decided as master that the new master's log lacks.
    relay: Vec<LogEntry>,
    /// Master: entries up to here were broadcast as `sync_update`.
    broadcast_head: u64,
    next_heartbeat_ms: u64,
    next_sync_ms: u64,
    transmits: VecDeque<Transmit>,
    notifications: VecDeque<Notification>,
}

impl<S: SyncStore> std::fmt::Debug for SyncNode<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncNode")
            .field("device", &self.config.me.device_id)
            .field("role", &self.role)
            .field("epoch", &self.epoch)
            .field("log_head", &self.log_head)
            .finish_non_exhaustive()
    }
}

fn store_err<E: std::error::Error + 'static>(e: E) -> SyncError<E> {
    SyncError::Store(e)
}

impl<S: SyncStore> SyncNode<S> {
    /// Starts from what `store` has persisted. A lone device (no peers) is master of its own
    /// store at once; a device with peers starts as a client looking for the master, and holds an
    /// election if it finds none within the master timeout.
    pub fn new(config: SyncConfig, store: S, now: Now) -> Result<SyncNode<S>, S> {
        let persisted = store.persisted().map_err(store_err)?;
        let mut node = SyncNode {
            rng: Rng::new(config.rng_seed),
            role: Role::Client,
            epoch: persisted.epoch,
            log_head: persisted.log_head,
            hlc: persisted.hlc,
            peers: BTreeMap::new(),
            following: Following::default(),
            waiting: None,
            pre_vote: None,
            handing_over: None,
            suspects: BTreeMap::new(),
            masterless_since_ms: now.mono_ms,
            relay: Vec::new(),
            broadcast_head: persisted.log_head,
            next_heartbeat_ms: now.mono_ms,
            next_sync_ms: now.mono_ms,
            transmits: VecDeque::new(),
            notifications: VecDeque::new(),
            config,
            store,
        };
        node.next_sync_ms = now.mono_ms + node.sync_delay();
        for info in persisted.roster {
            if info.device_id != node.me() {
                node.peers.insert(info.device_id, Peer::known(info));
            }
        }
        if !node.config.has_peers {
            match node.epoch {
                Some(epoch) if epoch.master_id == node.me() => node.resume_master(now)?,
                _ => {
                    node.become_master(now, "alone: no peers configured", Value::Null, Vec::new())?
                }
            }
        }
        Ok(node)
    }

    // ----- getters -----

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn epoch(&self) -> Option<Epoch> {
        self.epoch
    }

    /// The master this device follows or is, if it knows one.
    pub fn master_id(&self) -> Option<DeviceId> {
        match self.role {
            Role::Master => Some(self.me()),
            Role::Client if self.following.active => self.epoch.map(|e| e.master_id),
            Role::Client => None,
        }
    }

    pub fn log_head(&self) -> u64 {
        self.log_head
    }

    /// A client whose log is known to agree with its master's (a pull succeeded in this epoch);
    /// the master itself is always in agreement.
    pub fn in_sync(&self) -> bool {
        self.role == Role::Master || (self.following.active && self.following.synced)
    }

    /// The master's log head as last heard (a client catching up is `log_head` of this).
    pub fn master_log_head(&self) -> u64 {
        match self.role {
            Role::Master => self.log_head,
            Role::Client => self.following.master_log_head,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Peers heard from within the master timeout, with what they said of themselves.
    pub fn live_peers(&self, now: Now) -> Vec<(PeerInfo, Role, Option<Epoch>)> {
        self.peers
            .iter()
            .filter(|(id, _)| self.is_alive(**id, now))
            .filter_map(|(_, p)| p.info.clone().map(|info| (info, p.role, p.epoch)))
            .collect()
    }

    /// How far each peer said its copy of the master log is (its last heartbeat or register).
    pub fn peer_log_heads(&self) -> Vec<(DeviceId, u64)> {
        self.peers.iter().map(|(id, p)| (*id, p.log_head)).collect()
    }

    /// Every peer this device has heard of, with the monotonic time it was last heard from.
    pub fn roster(&self) -> Vec<(PeerInfo, Option<u64>)> {
        self.peers
            .values()
            .filter_map(|p| p.info.clone().map(|i| (i, p.last_heard_ms)))
            .collect()
    }

    fn me(&self) -> DeviceId {
        self.config.me.device_id
    }

    fn is_alive(&self, device: DeviceId, now: Now) -> bool {
        self.peers
            .get(&device)
            .and_then(|p| p.last_heard_ms)
            .is_some_and(|heard| now.mono_ms.saturating_sub(heard) <= self.config.master_timeout_ms)
    }

    // ----- outputs -----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.notifications.pop_front()
    }

    /// The monotonic time at which [`SyncNode::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> u64 {
        let mut at = self.next_heartbeat_ms.min(self.next_sync_ms);
        if self.role == Role::Client && self.following.active {
            at = at.min(self.following.heard_ms + self.config.master_timeout_ms + 1);
        }
        if let Some(waiting) = self.waiting {
            at = at.min(waiting.deadline_ms);
        }
        if let Some(round) = &self.pre_vote {
            at = at.min(round.next_timeout_ms());
        }
        if let Some(handing_over) = self.handing_over {
            at = at.min(handing_over.deadline_ms);
        }
        at
    }

    /// The role a local write is recorded in: a master decides it at once, except while it
    /// hands its role over (then the write waits, pending, for the next master).
    pub fn local_write_role(&self) -> Role {
        match self.role {
            Role::Master if self.handing_over.is_none() => Role::Master,
            _ => Role::Client,
        }
    }

    // ----- inputs -----

    /// Timers: heartbeats, failure detection, elections, periodic sync, broadcasts.
    pub fn handle_timeout(&mut self, now: Now) -> Result<(), S> {
        self.forgive_pause(now)?;
        if now.mono_ms >= self.next_heartbeat_ms {
            self.send_heartbeat();
            self.next_heartbeat_ms = now.mono_ms + self.config.heartbeat_interval_ms;
        }
        match self.role {
            Role::Master => self.master_tick(now),
            Role::Client => self.client_tick(now),
        }
    }

    /// A local write was committed (by `rms_storage::local::record`): on the master `entry` is its
    /// log entry; on a client the event is pending and, if critical, is pushed at once.
    pub fn handle_local_write(
        &mut self,
        event: &SyncEvent,
        entry: Option<&LogEntry>,
        now: Now,
    ) -> Result<(), S> {
        self.forgive_pause(now)?;
        self.hlc = self.hlc.max(event.hlc);
        match (self.role, entry) {
            (Role::Master, Some(entry)) => {
                self.log_head = self.log_head.max(entry.seq());
                if entry.event.critical {
                    self.broadcast_critical(entry, now)?;
                }
                self.notifications.push_back(Notification::LogAdvanced {
                    log_head: self.log_head,
                });
            }
            (Role::Client, _) if event.critical => self.push_pending(now)?,
            _ => {}
        }
        Ok(())
    }

    /// The master hands its role to `target` (manual override): the target takes over in a new
    /// term once it has caught up.
    pub fn request_handover(
        &mut self,
        target: DeviceId,
        now: Now,
    ) -> std::result::Result<(), HandoverError<S::Error>> {
        let Some(epoch) = self.epoch.filter(|_| self.role == Role::Master) else {
            return Err(HandoverError::NotMaster);
        };
        if target == self.me() {
            return Err(HandoverError::ToSelf(target));
        }
        if !self.is_alive(target, now) {
            return Err(HandoverError::Unreachable(target));
        }
        self.start_handover(epoch, target, now)
            .map_err(|SyncError::Store(e)| HandoverError::Storage(e))
    }

    /// Audits the handover, stops deciding (the log is final for this epoch: the target takes
    /// over at this head, and nothing decided here later can be missing from its log), and asks
    /// the target to take over.
    fn start_handover(&mut self, epoch: Epoch, target: DeviceId, now: Now) -> Result<(), S> {
        let details = json!({ "to": target, "term": epoch.term, "log_head": self.log_head });
        let entry = self.audit(now, Operation::Handover, Outcome::Ok, None, details);
        self.commit(Batch::audit(entry))?;
        self.handing_over = Some(HandingOver {
            target,
            deadline_ms: now.mono_ms + HANDOVER_TIMEOUTS * self.config.master_timeout_ms,
        });
        self.send(
            To::Device(target),
            Message::Handover {
                epoch,
                target,
                log_head: self.log_head,
            },
        );
        Ok(())
    }

    /// A message from `from` (the device the driver's session is registered as).
    pub fn handle_message(&mut self, from: DeviceId, message: Message, now: Now) -> Result<(), S> {
        if from == self.me() {
            return Ok(());
        }
        self.forgive_pause(now)?;
        if let Message::MasterAnnounce { epoch, .. } = &message
            && epoch.master_id != from
        {
            // Only a master announces itself (`become_master`); an announce in another device's
            // name is forged, and its epoch is not adopted.
            return self.refuse_forged_announce(from, *epoch, now);
        }
        self.note_peer(from, &message, now);
        if !self.fence(from, &message, now)? {
            return Ok(());
        }
        match message {
            Message::Heartbeat {
                role,
                log_head,
                handing_over_to,
                ..
            } => self.on_heartbeat(from, role, log_head, handing_over_to, now),
            Message::Register { peer, .. } => self.on_register(from, peer, now),
            Message::RegisterAck {
                roster, log_head, ..
            } => {
                self.on_register_ack(from, roster, log_head, now);
                Ok(())
            }
            Message::MasterAnnounce { epoch, .. } => {
                if epoch.master_id == from && self.role == Role::Client {
                    self.follow(now);
                }
                Ok(())
            }
            Message::Push { events, .. } => self.on_push(from, events, now),
            Message::Relay { entries, .. } => self.on_relay(from, entries, now),
            Message::PushAck { verdicts, .. } => self.on_push_ack(from, verdicts, now),
            Message::Pull {
                since, since_epoch, ..
            } => self.on_pull(from, since, since_epoch),
            Message::Events {
                since,
                since_epoch,
                entries,
                log_head,
                truncate_to,
                ..
            } => {
                let answer = PullAnswer {
                    since,
                    since_epoch,
                    entries,
                    master_log_head: log_head,
                    truncate_to,
                };
                self.on_events(from, answer, now)
            }
            Message::SyncUpdate { entries, .. } => self.on_broadcast(from, entries, now),
            Message::CriticalEvent { entry, .. } => self.on_broadcast(from, vec![entry], now),
            Message::Conflict {
                event_id, reason, ..
            } => self.on_conflict(from, event_id, reason, now),
            Message::Handover {
                target, log_head, ..
            } => {
                if target == self.me() && self.is_my_master(from) {
                    self.expect_take_over(log_head, now);
                }
                Ok(())
            }
            Message::PreVote { .. } => self.on_pre_vote(from, now),
            Message::HandoverRequest { .. } => self.on_handover_request(from, now),
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
        }
    }

    /// Handles `messages` in order, as [`SyncNode::handle_message`] would one by one, except that
    /// the pushes a master finds waiting together are decided together and committed in one
    /// transaction (group commit); each pusher still gets its own `push_ack`, after the commit.
    /// A message that fails does not stop the ones after it; the first error is returned.
    pub fn handle_messages(
        &mut self,
        messages: impl IntoIterator<Item = (DeviceId, Message)>,
        now: Now,
    ) -> Result<(), S> {
        let mut first_error = self.forgive_pause(now).err();
        let mut group: Vec<(DeviceId, Vec<SyncEvent>)> = Vec::new();
        for (from, message) in messages {
            // A push in the master's own epoch passes `fence` untouched; anything else may change
            // the role or the epoch, so the pushes before it are decided first.
            let joins_group = self.role == Role::Master
                && self.handing_over.is_none()
                && from != self.me()
                && self.epoch.is_some()
                && matches!(&message, Message::Push { .. })
                && message.epoch() == self.epoch;
            let result = if joins_group {
                self.note_peer(from, &message, now);
                match message {
                    Message::Push { events, .. } => self.own_pushed(from, events, now).map(|own| {
                        group.extend(own.map(|own| (from, own)));
                    }),
                    _ => Ok(()),
                }
            } else {
                let decided = self.decide_pushes(std::mem::take(&mut group), now);
                decided.and(self.handle_message(from, message, now))
            };
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        }
        if let Err(err) = self.decide_pushes(group, now) {
            first_error.get_or_insert(err);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Decides a group of pushes and acknowledges each.
    fn decide_pushes(
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
                    self.send_push_ack(push[0].0, verdicts.pop().unwrap_or_default());
                }
                Err(err) => {
                    culprit.get_or_insert(err);
                }
            }
        }
        Err(culprit.unwrap_or(failed))
    }

    // ----- peers and epochs -----

    fn note_peer(&mut self, from: DeviceId, message: &Message, now: Now) {
        let peer = self.peers.entry(from).or_insert(Peer {
            info: None,
            last_heard_ms: None,
            epoch: None,
            role: Role::Client,
            log_head: 0,
        });
        peer.last_heard_ms = Some(now.mono_ms);
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

    fn refuse_forged_announce(&mut self, from: DeviceId, epoch: Epoch, now: Now) -> Result<(), S> {
        let details = json!({ "refused": "master_announce", "from": from, "why": "announce_for_another_device", "their_epoch": epoch, "our_epoch": self.epoch });
        let message = format!("device {from} cannot announce device {}", epoch.master_id);
        self.refuse(now, from, Operation::Error, details, message)
    }

    /// Applies the epoch rules to an incoming message. Returns whether to go on handling it.
    fn fence(&mut self, from: DeviceId, message: &Message, now: Now) -> Result<bool, S> {
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
            let details = json!({ "refused": message.kind(), "from": from, "their_epoch": theirs, "our_epoch": self.epoch });
            let entry = self.audit(now, Operation::Error, Outcome::Rejected, None, details);
            self.commit(Batch::audit(entry))?;
        }
        Ok(informational)
    }

    /// Takes on a newer epoch: steps down if master, and follows the epoch's master.
    fn adopt(&mut self, newer: Epoch, now: Now, via: &str) -> Result<(), S> {
        let was_master = self.role == Role::Master;
        let mut audit = vec![self.audit(
            now,
            Operation::Election,
            Outcome::Ok,
            None,
            json!({ "adopted": newer, "previous": self.epoch, "via": via }),
        )];
        if was_master {
            audit.push(self.audit(
                now,
                Operation::RoleChange,
                Outcome::Ok,
                None,
                json!({ "from": "master", "to": "client", "reason": "a newer epoch exists", "epoch": newer }),
            ));
        }
        // Own events accepted by an older master but not in our log may be unknown to the new
        // master: they go back to pending (idempotency makes the re-push harmless).
        self.commit(Batch {
            epoch: Some(newer),
            repend_unlogged: true,
            audit,
            ..Batch::default()
        })?;
        self.epoch = Some(newer);
        self.role = Role::Client;
        self.waiting = None;
        self.pre_vote = None;
        self.handing_over = None;
        self.following = Following::default();
        if was_master {
            self.notifications.push_back(Notification::RoleChanged {
                role: Role::Client,
                epoch: self.epoch,
            });
        }
        if newer.master_id == self.me() {
            // Our own old epoch, reflected back after a restart: nobody is master right now.
            self.masterless_since_ms = now.mono_ms;
        } else {
            self.follow(now);
        }
        Ok(())
    }

    fn is_my_master(&self, device: DeviceId) -> bool {
        self.role == Role::Client && self.epoch.is_some_and(|e| e.master_id == device)
    }

    /// Starts following the master of the current epoch (it was just heard from).
    fn follow(&mut self, now: Now) {
        let Some(epoch) = self.epoch else { return };
        if epoch.master_id == self.me() || self.following.active {
            if self.following.active {
                self.following.heard_ms = now.mono_ms;
            }
            return;
        }
        self.following = Following {
            active: true,
            heard_ms: now.mono_ms,
            ..Following::default()
        };
        self.waiting = None;
        self.pre_vote = None;
        self.send_register(epoch);
        self.send_pull(now);
    }

    fn lose_master(&mut self, now: Now, why: &str) -> Result<(), S> {
        let master = self.epoch.map(|e| e.master_id);
        self.following = Following::default();
        self.masterless_since_ms = now.mono_ms;
        let lost = self.audit(
            now,
            Operation::HeartbeatLoss,
            Outcome::Error,
            None,
            json!({ "master": master, "why": why }),
        );
        self.start_pre_vote(now, vec![lost])
    }

    // ----- elections (see `crate::election`) -----

    /// Asks every peer whether it still hears the master before anything is decided: the
    /// round, with `audit` before it, is committed before the question goes out.
    fn start_pre_vote(&mut self, now: Now, mut audit: Vec<AuditEntry>) -> Result<(), S> {
        let lost_master = self
            .epoch
            .map(|e| e.master_id)
            .filter(|id| *id != self.me());
        // Every peer heard within the master timeout; the lost master too when it is (it said
        // it is no master any more): its log may be the most complete.
        let awaited: BTreeSet<DeviceId> = self
            .peers
            .keys()
            .copied()
            .filter(|id| self.is_alive(*id, now))
            .collect();
        let details =
            json!({ "pre_vote": "asked", "lost_master": lost_master, "awaited": awaited });
        audit.push(self.audit(now, Operation::Election, Outcome::Ok, None, details));
        self.commit(Batch {
            audit,
            ..Batch::default()
        })?;
        self.waiting = None;
        let master_wait_ms = self
            .config
            .heartbeat_interval_ms
            .min(PRE_VOTE_MASTER_WAIT_MS_MAX);
        self.pre_vote = Some(PreVote::start(
            lost_master,
            awaited,
            now.mono_ms,
            self.config.heartbeat_interval_ms,
            (master_wait_ms, self.pre_vote_duration_ms()),
        ));
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
        match self.role {
            Role::Master => Some(0),
            // Only a client the master answered in this epoch vouches for it: one that merely
            // learned the epoch (from the asker, say) has not heard the master at all.
            Role::Client if self.following.active && self.following.registered => {
                let ago = now.mono_ms.saturating_sub(self.following.heard_ms);
                (ago <= self.config.master_timeout_ms).then_some(ago)
            }
            Role::Client => None,
        }
    }

    /// A peer asks whether we still hear the master: a device that does refuses to support an
    /// election; one that does not says how far its log is and hands over the events the lost
    /// master accepted from it that its log lacks.
    fn on_pre_vote(&mut self, from: DeviceId, now: Now) -> Result<(), S> {
        let master_heard_ms_ago = self.master_heard_ms_ago(now);
        let accepted_unlogged = if master_heard_ms_ago.is_some() {
            Vec::new()
        } else {
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
        let Some(round) = self.pre_vote.as_mut() else {
            return Ok(()); // an answer to a round already over
        };
        if let Some(ago) = ballot.master_heard_ms_ago {
            // A live master is never deposed by a device that merely stopped hearing it: wait
            // for its heartbeats, and ask again when the master has been silent for a master
            // timeout as `from` hears it (then `from` would time out itself).
            let lost_master = round.lost_master();
            self.pre_vote = None;
            self.masterless_since_ms = now.mono_ms.saturating_sub(ago);
            let details = json!({ "pre_vote": "refused", "by": from, "lost_master": lost_master, "why": "still hears the master", "heard_ms_ago": ago });
            let entry = self.audit(now, Operation::Election, Outcome::Rejected, None, details);
            self.commit(Batch::audit(entry))?;
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
            let details = json!({ "event_ids": ids });
            self.alarm(
                now,
                from,
                "pre-vote answer with events of another device",
                details,
            )?;
        }
        self.tally_pre_vote(now)
    }

    /// Asks silent peers again, and holds the election once the round is closed.
    fn tally_pre_vote(&mut self, now: Now) -> Result<(), S> {
        let Some(round) = self.pre_vote.as_mut() else {
            return Ok(());
        };
        if round.tally(now.mono_ms) == Tally::Open {
            let silent = round.ask_again(now.mono_ms);
            let question = self.pre_vote_question();
            for peer in silent {
                self.send(To::Device(peer), question.clone());
            }
            return Ok(());
        }
        let Some(round) = self.pre_vote.take() else {
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
        let suspected = |id: DeviceId| {
            self.suspects
                .get(&id)
                .is_some_and(|until| *until > now.mono_ms)
        };
        let priority_of = |id: DeviceId| {
            self.peers
                .get(&id)
                .and_then(|p| p.info.as_ref())
                .filter(|_| !suspected(id))
                .map(|info| info.priority)
        };
        let (winner, candidates) = round.winner(me, priority_of);
        let (lost, answered) = (round.lost_master(), round.answered());
        let unanswered: Vec<DeviceId> = round
            .awaited()
            .iter()
            .filter(|id| !answered.contains(id))
            .copied()
            .collect();
        let details = json!({ "candidates": candidates, "expected_winner": winner, "lost_master": lost, "answered": answered, "unanswered": unanswered, "position": me.position });
        if winner == self.me() {
            let carried = round.into_carried();
            let why =
                "election: the most complete log of the reachable devices, then the best rank";
            return self.become_master(now, why, details, carried);
        }
        let entry = self.audit(now, Operation::Election, Outcome::Ok, None, details);
        self.commit(Batch::audit(entry))?;
        self.waiting = Some(Waiting {
            expected: winner,
            deadline_ms: now.mono_ms + self.config.master_timeout_ms,
        });
        Ok(())
    }

    /// A pause (SIGSTOP, a stalled disk, a starved thread) is time this device did not listen:
    /// it does not count against its peers. When an input comes later than the heartbeat timer
    /// by more than a heartbeat interval, every "last heard" and every deadline moves by the
    /// delay, so the inputs already waiting are read before any timer decides that a peer or
    /// the master is gone.
    fn forgive_pause(&mut self, now: Now) -> Result<(), S> {
        let late_ms = now.mono_ms.saturating_sub(self.next_heartbeat_ms);
        if late_ms <= self.config.heartbeat_interval_ms {
            return Ok(());
        }
        // What was recorded before the gap moves by the delay; what was heard since (an input
        // read during a catch-up) stays as it is.
        let gap_started_ms = std::mem::replace(&mut self.next_heartbeat_ms, now.mono_ms);
        let shift = |at: &mut u64| {
            if *at <= gap_started_ms {
                *at += late_ms;
            }
        };
        let f = &mut self.following;
        shift(&mut f.heard_ms);
        for sent in [&mut f.push_sent_ms, &mut f.pull_sent_ms]
            .into_iter()
            .flatten()
        {
            shift(sent);
        }
        for heard in self
            .peers
            .values_mut()
            .filter_map(|p| p.last_heard_ms.as_mut())
        {
            shift(heard);
        }
        for until in self.suspects.values_mut() {
            *until += late_ms;
        }
        shift(&mut self.masterless_since_ms);
        if let Some(waiting) = self.waiting.as_mut() {
            waiting.deadline_ms += late_ms;
        }
        // A pre-vote open across the gap counts answers from before it: the store may have a
        // master by now (its announce is among the inputs that waited). It is dropped, and asked
        // again a master timeout from now if no master is heard meanwhile.
        if self.pre_vote.take().is_some() {
            self.masterless_since_ms = now.mono_ms;
        }
        let details = json!({ "why": "input gap: the node did not run", "late_ms": late_ms });
        let mut audit = vec![self.audit(now, Operation::Error, Outcome::Error, None, details)];
        // A master that stopped for about a master timeout has been taken for dead, and another
        // device may lead by now: it decides nothing more (not even the pushes that waited for
        // it) until it knows, as a client of whichever master it hears (or, hearing none, by
        // asking again). A lone device has nobody to yield to.
        let deposed_maybe = self.role == Role::Master
            && self.config.has_peers
            && late_ms + self.config.heartbeat_interval_ms > self.config.master_timeout_ms;
        if deposed_maybe {
            let details = json!({ "from": "master", "to": "client", "reason": "paused past the master timeout", "epoch": self.epoch });
            audit.push(self.audit(now, Operation::RoleChange, Outcome::Ok, None, details));
        }
        self.commit(Batch {
            audit,
            ..Batch::default()
        })?;
        if deposed_maybe {
            self.role = Role::Client;
            self.handing_over = None;
            self.following = Following::default();
            self.masterless_since_ms = now.mono_ms;
            self.notifications.push_back(Notification::RoleChanged {
                role: Role::Client,
                epoch: self.epoch,
            });
        }
        Ok(())
    }

    fn highest_known_term(&self) -> Term {
        self.peers
            .values()
            .filter_map(|p| p.epoch.map(|e| e.term))
            .chain(self.epoch.map(|e| e.term))
            .max()
            .unwrap_or(Term(0))
    }

    /// Takes the master role in a new term. `election` is the audit details of the election won
    /// (none for a handover or a reclaim); `carried` the events the pre-vote answers carried.
    fn become_master(
        &mut self,
        now: Now,
        why: &str,
        election: Value,
        carried: Vec<SyncEvent>,
    ) -> Result<(), S> {
        let epoch = Epoch {
            term: Term(self.highest_known_term().0 + 1),
            master_id: self.me(),
            master_priority: self.config.me.priority,
        };
        let mut won = json!({ "won": epoch, "reason": why });
        if let (Some(won), Value::Object(election)) = (won.as_object_mut(), election) {
            won.extend(election);
        }
        let audit = vec![
            self.audit(now, Operation::Election, Outcome::Ok, None, won),
            self.audit(
                now,
                Operation::RoleChange,
                Outcome::Ok,
                None,
                json!({ "from": "client", "to": "master", "reason": why, "epoch": epoch }),
            ),
        ];
        // Persisted before it is announced (SPEC §6). Own events an older master accepted but
        // that are not in this log go back to pending, to be decided into the new log.
        self.commit(Batch {
            epoch: Some(epoch),
            repend_unlogged: true,
            audit,
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
    fn resume_master(&mut self, now: Now) -> Result<(), S> {
        let entry = self.audit(now, Operation::RoleChange, Outcome::Ok, None, json!({ "from": "client", "to": "master", "reason": "restart of a lone master", "epoch": self.epoch }));
        self.commit(Batch::audit(entry))?;
        self.take_master_role(now, Vec::new())
    }

    fn take_master_role(&mut self, now: Now, carried: Vec<SyncEvent>) -> Result<(), S> {
        self.role = Role::Master;
        self.waiting = None;
        self.pre_vote = None;
        self.handing_over = None;
        self.following = Following::default();
        self.broadcast_head = self.log_head;
        self.notifications.push_back(Notification::RoleChanged {
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

    fn decide_own_pending(&mut self, now: Now) -> Result<(), S> {
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
    fn decide_own(&mut self, events: Vec<SyncEvent>, now: Now) -> Result<(), S> {
        let me = self.me();
        let verdicts = self.decide(me, events, now)?;
        self.notifications.extend(
            verdicts
                .into_iter()
                .filter(|v| v.event_id.device_id == me)
                .map(Notification::Decided),
        );
        Ok(())
    }

    // ----- ticks -----

    fn master_tick(&mut self, now: Now) -> Result<(), S> {
        if let Some(handing_over) = self.handing_over
            && now.mono_ms >= handing_over.deadline_ms
        {
            self.cancel_handover(handing_over.target, now)?;
        }
        if now.mono_ms < self.next_sync_ms {
            return Ok(());
        }
        self.next_sync_ms = now.mono_ms + self.sync_delay();
        if self.broadcast_head >= self.log_head {
            return Ok(());
        }
        let entries = within_bytes(
            self.store
                .log_after(self.broadcast_head, BATCH_EVENTS_MAX)
                .map_err(store_err)?,
        );
        let Some(last) = entries.last().map(LogEntry::seq) else {
            return Ok(());
        };
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        let details =
            json!({ "kind": "sync_update", "from_seq": self.broadcast_head + 1, "to_seq": last });
        let entry = self.audit(now, Operation::Broadcast, Outcome::Ok, None, details);
        self.commit(Batch::audit(entry))?;
        self.broadcast_head = last;
        self.send(To::AllPeers, Message::SyncUpdate { epoch, entries });
        Ok(())
    }

    fn client_tick(&mut self, now: Now) -> Result<(), S> {
        let timeout = self.config.master_timeout_ms;
        let sync_due = now.mono_ms >= self.next_sync_ms;
        if sync_due {
            self.next_sync_ms = now.mono_ms + self.sync_delay();
        }
        if !self.following.active {
            return self.masterless_tick(now);
        }
        if now.mono_ms.saturating_sub(self.following.heard_ms) > timeout {
            return self.lose_master(now, "no heartbeat within the master timeout");
        }
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        if !self.following.registered {
            self.send_register(epoch);
        }
        let pull_stale = self
            .following
            .pull_sent_ms
            .is_none_or(|at| now.mono_ms.saturating_sub(at) > timeout);
        if !self.following.synced && pull_stale {
            self.send_pull(now);
        }
        if self
            .following
            .push_sent_ms
            .is_some_and(|at| now.mono_ms.saturating_sub(at) > timeout)
        {
            self.following.push_sent_ms = None; // lost: the next push sends the same events again
        }
        if sync_due {
            self.push_pending(now)?;
            if self.following.synced && pull_stale {
                self.send_pull(now);
            }
            self.send_relay(epoch);
        }
        self.maybe_take_over(now)
    }

    /// No master followed: wait for the expected winner, or hold an election.
    fn masterless_tick(&mut self, now: Now) -> Result<(), S> {
        let timeout = self.config.master_timeout_ms;
        if let Some(waiting) = self.waiting {
            if now.mono_ms >= waiting.deadline_ms {
                self.suspects
                    .insert(waiting.expected, now.mono_ms + 2 * timeout);
                self.waiting = None;
                let details = json!({ "expected_winner": waiting.expected, "why": "did not take over in time" });
                let passed_over =
                    self.audit(now, Operation::Election, Outcome::Error, None, details);
                return self.start_pre_vote(now, vec![passed_over]);
            }
            return Ok(());
        }
        if self.pre_vote.is_some() {
            return self.tally_pre_vote(now);
        }
        if now.mono_ms.saturating_sub(self.masterless_since_ms) > timeout {
            return self.start_pre_vote(now, Vec::new());
        }
        Ok(())
    }

    /// Handover target or `--reclaim`: take the role once caught up.
    fn maybe_take_over(&mut self, now: Now) -> Result<(), S> {
        let f = &self.following;
        if !(f.active && f.synced) || self.log_head < f.master_log_head {
            return Ok(());
        }
        if let Some(take_over) = f.take_over_at
            && now.mono_ms > take_over.until_ms
        {
            // Too late: the master goes on deciding after its own deadline.
            self.following.take_over_at = None;
            let details = json!({ "handover": "not taken", "why": "not caught up in time", "log_head": self.log_head, "wanted": take_over.log_head });
            let entry = self.audit(now, Operation::Handover, Outcome::Error, None, details);
            self.commit(Batch::audit(entry))?;
            return Ok(());
        }
        let f = &self.following;
        if let Some(take_over) = f.take_over_at
            && self.log_head >= take_over.log_head
        {
            return self.become_master(now, "handover", Value::Null, Vec::new());
        }
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        let outranks =
            rank(self.config.me.priority, self.me()) > rank(epoch.master_priority, epoch.master_id);
        let asked_lately = self.following.reclaim_asked_ms.is_some_and(|at| {
            now.mono_ms.saturating_sub(at) <= RECLAIM_ASK_TIMEOUTS * self.config.master_timeout_ms
        });
        if self.config.reclaim
            && outranks
            && !asked_lately
            && self.store.pending_count().map_err(store_err)? == 0
        {
            // The master hands the role over itself (`request_handover`), so that it decides
            // nothing this device's log would lack.
            self.following.reclaim_asked_ms = Some(now.mono_ms);
            self.send(
                To::Device(epoch.master_id),
                Message::HandoverRequest { epoch },
            );
        }
        Ok(())
    }

    fn sync_delay(&mut self) -> u64 {
        self.rng.jitter(self.config.sync_interval_ms, 10).max(1)
    }

    // ----- client side of the protocol -----

    fn on_heartbeat(
        &mut self,
        from: DeviceId,
        role: Role,
        log_head: u64,
        handing_over_to: Option<DeviceId>,
        now: Now,
    ) -> Result<(), S> {
        if self.is_my_master(from) && role == Role::Master {
            if !self.following.active {
                self.follow(now);
            }
            self.following.heard_ms = now.mono_ms;
            self.following.master_log_head = log_head;
            // The master's latest heartbeat says whether a handover to us still stands: one
            // that ended (the master went on deciding) is never carried out late. Only the
            // `handover` message opens the window; a heartbeat never opens or widens it.
            if handing_over_to != Some(self.me()) {
                self.following.take_over_at = None;
            } else if let Some(take_over) = self.following.take_over_at.as_mut() {
                take_over.log_head = log_head;
            }
            if self.following.synced
                && log_head > self.log_head
                && self.following.pull_sent_ms.is_none()
            {
                self.send_pull(now);
            }
        }
        Ok(())
    }

    /// The master asked this device to take over at `log_head`: done from the next tick (after
    /// every message that waited with the request was read), within [`TAKE_OVER_TIMEOUTS`].
    fn expect_take_over(&mut self, log_head: u64, now: Now) {
        let until_ms = now.mono_ms + TAKE_OVER_TIMEOUTS * self.config.master_timeout_ms;
        let take_over = self
            .following
            .take_over_at
            .get_or_insert(TakeOver { log_head, until_ms });
        take_over.log_head = log_head;
    }

    fn on_register_ack(&mut self, from: DeviceId, roster: Vec<PeerInfo>, log_head: u64, now: Now) {
        if !self.is_my_master(from) {
            return;
        }
        self.following.registered = true;
        self.following.heard_ms = now.mono_ms;
        self.following.master_log_head = log_head;
        for info in roster {
            if info.device_id != self.me() {
                let peer = self
                    .peers
                    .entry(info.device_id)
                    .or_insert_with(|| Peer::known(info.clone()));
                peer.info.get_or_insert(info);
            }
        }
    }

    fn send_register(&mut self, epoch: Epoch) {
        let message = Message::Register {
            peer: self.config.me.clone(),
            epoch: Some(epoch),
            log_head: self.log_head,
        };
        self.send(To::Device(epoch.master_id), message);
    }

    fn send_pull(&mut self, now: Now) {
        let Some(epoch) = self.epoch else { return };
        let since_epoch = match self.store.entry_at(self.log_head) {
            Ok(entry) => entry.map(|e| e.epoch),
            Err(_) => return, // retried at the next tick
        };
        self.following.pull_sent_ms = Some(now.mono_ms);
        let message = Message::Pull {
            epoch: Some(epoch),
            since: self.log_head,
            since_epoch,
        };
        self.send(To::Device(epoch.master_id), message);
    }

    /// Pushes this device's pending events (at most one push in flight).
    fn push_pending(&mut self, now: Now) -> Result<(), S> {
        let Some(epoch) = self
            .epoch
            .filter(|_| self.following.active && self.following.synced)
        else {
            return Ok(());
        };
        if self.following.push_sent_ms.is_some() {
            self.following.push_again = true;
            return Ok(());
        }
        let events = within_bytes(self.store.pending(BATCH_EVENTS_MAX).map_err(store_err)?);
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = events
            .iter()
            .take(20)
            .map(|e| e.event_id.to_string())
            .collect();
        let details = json!({ "to": epoch.master_id, "events": events.len(), "first_ids": ids });
        let entry = self.audit(now, Operation::PushSent, Outcome::Ok, None, details);
        self.commit(Batch::audit(entry))?;
        self.following.push_sent_ms = Some(now.mono_ms);
        self.following.push_again = false;
        self.send(
            To::Device(epoch.master_id),
            Message::Push {
                epoch: Some(epoch),
                events,
            },
        );
        Ok(())
    }

    fn send_relay(&mut self, epoch: Epoch) {
        if self.relay.is_empty() || !self.following.synced {
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

    fn on_push_ack(&mut self, from: DeviceId, verdicts: Vec<Verdict>, now: Now) -> Result<(), S> {
        if !self.is_my_master(from) {
            return Ok(());
        }
        self.following.heard_ms = now.mono_ms;
        let relayed: BTreeSet<EventId> = verdicts.iter().map(|v| v.event_id).collect();
        self.relay
            .retain(|entry| !relayed.contains(&entry.event.event_id));
        let own: Vec<Verdict> = verdicts
            .into_iter()
            .filter(|v| v.event_id.device_id == self.me())
            .collect();
        if !own.is_empty() {
            let rejected = own
                .iter()
                .filter(|v| v.status == EventStatus::Rejected)
                .count();
            let details = json!({ "from": from, "verdicts": own.len(), "rejected": rejected });
            let audit = vec![self.audit(now, Operation::Ack, Outcome::Ok, None, details)];
            self.commit(Batch {
                verdicts: own.clone(),
                audit,
                ..Batch::default()
            })?;
            self.notifications
                .extend(own.into_iter().map(Notification::Decided));
        }
        self.following.push_sent_ms = None;
        let more = self.store.pending_count().map_err(store_err)? > 0;
        if self.following.push_again || more {
            self.push_pending(now)?;
        }
        Ok(())
    }

    fn on_events(&mut self, from: DeviceId, answer: PullAnswer, now: Now) -> Result<(), S> {
        if !self.is_my_master(from) {
            return Ok(());
        }
        self.following.heard_ms = now.mono_ms;
        self.following.pull_sent_ms = None;
        self.following.master_log_head = answer.master_log_head;
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
        self.following.synced = true;
        self.apply_entries(from, entries, now, "pull")?;
        if self.log_head < master_log_head {
            self.send_pull(now); // catching up, a batch at a time
        }
        if self.log_head >= master_log_head {
            self.push_pending(now)?;
            if let Some(epoch) = self.epoch {
                self.send_relay(epoch);
            }
        }
        Ok(())
    }

    fn truncate(&mut self, keep: u64, now: Now) -> Result<(), S> {
        let keep = keep.min(self.log_head);
        let details = json!({ "keep": keep, "undo_after": keep, "head_was": self.log_head });
        let audit = vec![self.audit(now, Operation::Pull, Outcome::Conflict, None, details)];
        let undone = self.commit(Batch {
            truncate_after: Some(keep),
            audit,
            ..Batch::default()
        })?;
        let me = self.me();
        self.relay.extend(
            undone
                .into_iter()
                .filter(|e| e.event.origin() != me && e.event.status == EventStatus::Synced),
        );
        self.log_head = keep;
        self.broadcast_head = self.broadcast_head.min(keep);
        self.notifications
            .push_back(Notification::LogAdvanced { log_head: keep });
        self.send_pull(now);
        Ok(())
    }

    fn on_broadcast(&mut self, from: DeviceId, entries: Vec<LogEntry>, now: Now) -> Result<(), S> {
        if !self.is_my_master(from) {
            return Ok(());
        }
        self.following.heard_ms = now.mono_ms;
        if !self.following.synced {
            return Ok(()); // until the logs are known to agree, only pulls are applied
        }
        let first = entries
            .iter()
            .map(LogEntry::seq)
            .find(|seq| *seq > self.log_head);
        match first {
            None => Ok(()),
            Some(seq) if seq == self.log_head + 1 => {
                self.apply_entries(from, entries, now, "broadcast")
            }
            Some(_) => {
                if self.following.pull_sent_ms.is_none() {
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
        via: &str,
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
            let details = json!({ "seq": seq, "field": err.field, "message": err.message });
            self.alarm(now, from, "a log entry breaks the data rules", details)?;
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
        let details = json!({ "via": via, "from_seq": self.log_head + 1, "to_seq": last, "entries": run.len() });
        let audit = vec![self.audit(now, Operation::Pull, Outcome::Ok, None, details)];
        self.commit(Batch {
            entries: run,
            hlc: Some(hlc),
            audit,
            ..Batch::default()
        })?;
        self.hlc = hlc;
        self.log_head = last;
        self.notifications
            .extend(own.into_iter().map(Notification::Decided));
        self.notifications
            .push_back(Notification::LogAdvanced { log_head: last });
        Ok(())
    }

    fn on_conflict(
        &mut self,
        from: DeviceId,
        event_id: EventId,
        reason: RejectReason,
        now: Now,
    ) -> Result<(), S> {
        if !self.is_my_master(from) || event_id.device_id != self.me() {
            return Ok(());
        }
        let details = json!({ "reason": reason, "master": from });
        let entry = self.audit(
            now,
            Operation::Conflict,
            Outcome::Conflict,
            Some(event_id),
            details,
        );
        self.commit(Batch::audit(entry))?;
        Ok(())
    }

    // ----- master side of the protocol -----

    fn on_register(&mut self, from: DeviceId, peer: PeerInfo, now: Now) -> Result<(), S> {
        let Some(epoch) = self.epoch.filter(|_| self.role == Role::Master) else {
            self.send_heartbeat_to(from);
            return Ok(());
        };
        if peer.device_id != from {
            return self.alarm(
                now,
                from,
                "register names another device",
                json!({ "claimed": peer.device_id }),
            );
        }
        let details = json!({ "device": peer, "term": epoch.term });
        let entry = self.audit(now, Operation::Registration, Outcome::Ok, None, details);
        self.commit(Batch::audit(entry))?;
        let mut roster: Vec<PeerInfo> =
            self.peers.values().filter_map(|p| p.info.clone()).collect();
        roster.push(self.config.me.clone());
        self.send(
            To::Device(from),
            Message::RegisterAck {
                epoch,
                roster,
                log_head: self.log_head,
            },
        );
        Ok(())
    }

    /// A push or relay while the master hands over: undecided, to be pushed again to the next
    /// master (the pusher's push times out, or it follows the new epoch first).
    fn refuse_handing_over(&mut self, to: DeviceId, what: &str, now: Now) -> Result<(), S> {
        let details = json!({ "refused": what, "from": to, "why": "handing_over" });
        let entry = self.audit(now, Operation::Handover, Outcome::Rejected, None, details);
        self.commit(Batch::audit(entry))?;
        let message = Message::Error {
            epoch: self.epoch,
            code: ErrorCode::HandingOver,
            message: "this master is handing its role over; push again to the next".into(),
        };
        self.send(To::Device(to), message);
        Ok(())
    }

    /// `--reclaim`: a device that outranks this master and has caught up asks for the role.
    fn on_handover_request(&mut self, from: DeviceId, now: Now) -> Result<(), S> {
        let Some(epoch) = self.epoch.filter(|_| self.role == Role::Master) else {
            return Ok(());
        };
        if let Some(handing_over) = self.handing_over {
            let time_left = handing_over.deadline_ms.saturating_sub(now.mono_ms);
            if handing_over.target == from
                && time_left >= TAKE_OVER_TIMEOUTS * self.config.master_timeout_ms
            {
                // The handover was lost on its way: say it again, while the target's window
                // would still close before this master's deadline.
                let log_head = self.log_head;
                let handover = Message::Handover {
                    epoch,
                    target: from,
                    log_head,
                };
                self.send(To::Device(from), handover);
            }
            return Ok(());
        }
        let outranks = self
            .peers
            .get(&from)
            .and_then(|p| p.info.as_ref())
            .is_some_and(|info| {
                rank(info.priority, from) > rank(epoch.master_priority, epoch.master_id)
            });
        if !outranks {
            let details = json!({ "refused": "handover_request", "from": from, "why": "does not outrank the master" });
            let entry = self.audit(now, Operation::Handover, Outcome::Rejected, None, details);
            self.commit(Batch::audit(entry))?;
            return Ok(());
        }
        self.start_handover(epoch, from, now)
    }

    /// The handover target did not take over in time: this master goes on, and decides the
    /// local writes that waited meanwhile.
    fn cancel_handover(&mut self, target: DeviceId, now: Now) -> Result<(), S> {
        self.handing_over = None;
        let details = json!({ "to": target, "why": "the target did not take over in time" });
        let entry = self.audit(now, Operation::Handover, Outcome::Error, None, details);
        self.commit(Batch::audit(entry))?;
        self.decide_own_pending(now)
    }

    fn refuse_not_master(&mut self, to: DeviceId) {
        let message = Message::Error {
            epoch: self.epoch,
            code: ErrorCode::NotMaster,
            message: "this device is not the master".into(),
        };
        self.send(To::Device(to), message);
    }

    fn on_push(&mut self, from: DeviceId, events: Vec<SyncEvent>, now: Now) -> Result<(), S> {
        if self.role != Role::Master {
            self.refuse_not_master(from);
            return Ok(());
        }
        if self.handing_over.is_some() {
            return self.refuse_handing_over(from, "push", now);
        }
        match self.own_pushed(from, events, now)? {
            Some(own) => self.decide_pushes(vec![(from, own)], now),
            None => Ok(()),
        }
    }

    /// The events of a push that are the pusher's own (at most [`BATCH_EVENTS_MAX`]); others are
    /// forged, raise an alarm and are not decided. `None` when nothing is left to decide.
    fn own_pushed(
        &mut self,
        from: DeviceId,
        events: Vec<SyncEvent>,
        now: Now,
    ) -> Result<Option<Vec<SyncEvent>>, S> {
        let (own, forged): (Vec<SyncEvent>, Vec<SyncEvent>) = events
            .into_iter()
            .take(BATCH_EVENTS_MAX)
            .partition(|e| e.origin() == from);
        if !forged.is_empty() {
            let ids: Vec<String> = forged.iter().map(|e| e.event_id.to_string()).collect();
            self.alarm(
                now,
                from,
                "pushed events of another device",
                json!({ "event_ids": ids }),
            )?;
        }
        Ok(Some(own).filter(|own| !own.is_empty() || forged.is_empty()))
    }

    fn on_relay(&mut self, from: DeviceId, entries: Vec<LogEntry>, now: Now) -> Result<(), S> {
        if self.role != Role::Master {
            self.refuse_not_master(from);
            return Ok(());
        }
        if self.handing_over.is_some() {
            return self.refuse_handing_over(from, "relay", now);
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
            self.alarm(
                now,
                from,
                "relayed entries that no earlier master accepted",
                json!({ "entries": invalid.len() }),
            )?;
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

    /// The ConflictResolver for one push: see [`SyncNode::decide_group`].
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

    /// The ConflictResolver: decides the events of `pushes` (each `(from, events)`) in arrival
    /// order, push after push, each push sorted by `(hlc, device, seq)`; commits the new log
    /// entries of all of them in one transaction (group commit: N devices pushing at once cost
    /// one commit, not N), then broadcasts what is critical and tells origins of their conflicts.
    /// Returns each push's verdicts, in the order of `pushes`.
    /// Changes nothing but the order of each push's events when it fails, so that a failed group
    /// can be decided again.
    fn decide_group(
        &mut self,
        pushes: &mut [(DeviceId, Vec<SyncEvent>)],
        now: Now,
    ) -> Result<Vec<Vec<Verdict>>, S> {
        let Some(epoch) = self.epoch.filter(|_| self.role == Role::Master) else {
            return Ok(vec![Vec::new(); pushes.len()]);
        };
        for (_, events) in pushes.iter_mut() {
            events.sort_by_key(decision_order);
        }
        let pushes = &*pushes;
        let all = || pushes.iter().flat_map(|(_, events)| events);
        let skus: BTreeSet<&str> = all().flat_map(|e| e.payload.skus()).collect();
        let mut products: Products = self
            .store
            .base_products(&skus.into_iter().collect::<Vec<_>>())
            .map_err(store_err)?;
        let ids: Vec<EventId> = all().map(|e| e.event_id).collect();
        let logged: BTreeMap<EventId, LogEntry> = self
            .store
            .entries(&ids)
            .map_err(store_err)?
            .into_iter()
            .map(|entry| (entry.event.event_id, entry))
            .collect();
        let mut answers = Vec::with_capacity(pushes.len());
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut audit = Vec::new();
        let mut hlc = self.hlc;
        let mut seen: BTreeMap<EventId, usize> = BTreeMap::new();
        let mut seq = self.log_head;
        for (from, events) in pushes {
            let from = *from;
            let mut verdicts = Vec::with_capacity(events.len());
            let (audit_from, logged_from) = (audit.len(), entries.len());
            // Events decided before (a lost ack, or a replay): answered again, changed nothing.
            let mut replayed: Vec<String> = Vec::new();
            for event in events {
                let decided = (entries.as_slice(), &seen, &logged);
                if let Some(verdict) = self.known_verdict(event, decided, now, &mut audit)? {
                    if verdict.reason != Some(RejectReason::EventIdReused) {
                        replayed.push(event.event_id.to_string());
                    }
                    verdicts.push(verdict);
                    continue;
                }
                if let Err(err) = event.validate() {
                    // Never logged: the log would carry it to every device (and the database
                    // may not even hold it). The pusher gets its verdict; the audit log the
                    // details.
                    let details = json!({ "why": "invalid event", "from": from, "field": err.field, "message": err.message });
                    let reason = RejectReason::Invalid;
                    verdicts.push(self.refuse_unlogged(event, reason, details, now, &mut audit));
                    continue;
                }
                if self.trusted(event.hlc, now) {
                    hlc = hlc.merge(event.hlc, now.wall_ms);
                } else {
                    let details = json!({ "hlc": event.hlc, "now_ms": now.wall_ms, "from": from });
                    audit.push(self.audit(
                        now,
                        Operation::Alarm,
                        Outcome::Ok,
                        Some(event.event_id),
                        details,
                    ));
                }
                seq += 1;
                let event = event.clone();
                let entry = self.resolve(event, seq, &mut products, epoch, now, &mut audit);
                seen.insert(entry.event.event_id, entries.len());
                verdicts.push(Verdict::of(&entry));
                entries.push(entry);
            }
            let details = json!({ "from": from, "events": verdicts.len(), "logged": entries.len() - logged_from, "replayed": replayed });
            let received = self.audit(now, Operation::PushReceived, Outcome::Ok, None, details);
            audit.insert(audit_from, received);
            answers.push(verdicts);
        }
        // What is broadcast at once is audited in the same transaction; it is sent only after it.
        let broadcasts =
            |entry: &LogEntry| entry.event.critical || entry.event.status == EventStatus::Rejected;
        for entry in entries.iter().filter(|e| broadcasts(e)) {
            let details = json!({ "kind": "critical_event", "seq": entry.seq() });
            let event_id = Some(entry.event.event_id);
            audit.push(self.audit(now, Operation::Broadcast, Outcome::Ok, event_id, details));
        }
        let logged = entries.clone();
        self.commit(Batch {
            entries,
            hlc: Some(hlc),
            audit,
            ..Batch::default()
        })?;
        self.hlc = hlc;
        if let Some(last) = logged.last() {
            self.log_head = last.seq();
            self.notifications.push_back(Notification::LogAdvanced {
                log_head: self.log_head,
            });
        }
        for entry in logged {
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
            if broadcasts(&entry) {
                self.send(To::AllPeers, Message::CriticalEvent { epoch, entry });
            }
        }
        Ok(answers)
    }

    /// The verdict for an event already decided (idempotency), or an alarm for an event id
    /// reused with other content. `None` for an event to decide now.
    ///
    /// `decided`: the entries this batch made so far, their index by event id, and the entries
    /// already in the log for the batch's event ids.
    fn known_verdict(
        &mut self,
        event: &SyncEvent,
        decided: (
            &[LogEntry],
            &BTreeMap<EventId, usize>,
            &BTreeMap<EventId, LogEntry>,
        ),
        now: Now,
        audit: &mut Vec<AuditEntry>,
    ) -> Result<Option<Verdict>, S> {
        let (batch, seen, logged) = decided;
        let known = match seen.get(&event.event_id) {
            Some(index) => Some(batch[*index].clone()),
            None => logged.get(&event.event_id).cloned(),
        };
        let Some(known) = known else { return Ok(None) };
        if known.event.same_content(event) {
            return Ok(Some(Verdict::of(&known)));
        }
        let details =
            json!({ "why": "event id reused with other content", "logged_seq": known.seq() });
        let reason = RejectReason::EventIdReused;
        Ok(Some(
            self.refuse_unlogged(event, reason, details, now, audit),
        ))
    }

    /// The verdict on a pushed event refused without a log entry (the log would carry it to
    /// every device), and its alarm in `audit`.
    fn refuse_unlogged(
        &self,
        event: &SyncEvent,
        reason: RejectReason,
        details: Value,
        now: Now,
        audit: &mut Vec<AuditEntry>,
    ) -> Verdict {
        let event_id = Some(event.event_id);
        audit.push(self.audit(now, Operation::Alarm, Outcome::Rejected, event_id, details));
        Verdict {
            event_id: event.event_id,
            status: EventStatus::Rejected,
            reason: Some(reason),
            master_seq: None,
        }
    }

    /// First come, first served: applies the rules to one event and makes its log entry.
    fn resolve(
        &mut self,
        mut event: SyncEvent,
        seq: u64,
        products: &mut Products,
        epoch: Epoch,
        now: Now,
        audit: &mut Vec<AuditEntry>,
    ) -> LogEntry {
        let at = rfc3339_from_ms(event.created_at_ms);
        let keeps_sale = matches!(
            event.payload,
            EventPayload::SaleRecorded { .. } | EventPayload::StockAdjusted { .. }
        );
        // A pending event that carries a reason was rejected by an earlier master whose log
        // entry was lost: the cashier was told so, so it is logged as rejected again, never
        // re-decided (it could otherwise be accepted now, a sale that never happened).
        let rejected_before = event.reason.filter(|_| !event.accepted_before);
        let decision = match rejected_before {
            Some(reason) => Err(reason),
            None => rules::apply(&event.payload, products, &at),
        };
        let (status, reason, forced, critical) = match decision {
            Ok(applied) => (EventStatus::Synced, None, false, applied.critical),
            Err(reason) if event.accepted_before && keeps_sale => {
                let applied = rules::apply_forced(&event.payload, products, &at);
                (EventStatus::Synced, Some(reason), true, applied.critical)
            }
            Err(reason) => (EventStatus::Rejected, Some(reason), false, true),
        };
        event.master_seq = Some(seq);
        event.status = status;
        event.reason = if forced { None } else { reason };
        event.critical |= critical;
        let products_after = event
            .payload
            .skus()
            .iter()
            .filter_map(|sku| products.get(*sku).cloned())
            .collect();
        let entry = LogEntry {
            event,
            epoch,
            products: products_after,
            forced,
        };
        let event_id = Some(entry.event.event_id);
        let origin = entry.event.origin();
        if forced {
            let details = json!({ "kept": "accepted by another master before", "rule": reason, "origin": origin, "seq": entry.seq() });
            audit.push(self.audit(
                now,
                Operation::Conflict,
                Outcome::Conflict,
                event_id,
                details,
            ));
        } else if let Some(reason) = entry.event.reason {
            let details = json!({ "reason": reason, "origin": origin, "seq": entry.seq(), "kind": entry.event.payload.kind() });
            audit.push(self.audit(
                now,
                Operation::Conflict,
                Outcome::Conflict,
                event_id,
                details.clone(),
            ));
            audit.push(self.audit(
                now,
                Operation::Rejection,
                Outcome::Rejected,
                event_id,
                details,
            ));
        }
        entry
    }

    fn on_pull(&mut self, from: DeviceId, since: u64, since_epoch: Option<Epoch>) -> Result<(), S> {
        let Some(epoch) = self.epoch.filter(|_| self.role == Role::Master) else {
            self.refuse_not_master(from);
            return Ok(());
        };
        if since > 0 {
            let mine = self.store.entry_at(since).map_err(store_err)?;
            if mine.map(|e| e.epoch) != since_epoch || since_epoch.is_none() {
                let end = match since_epoch {
                    Some(their) => self.store.epoch_end(&their).map_err(store_err)?,
                    None => 0,
                };
                let keep = end.min(since - 1);
                let message = Message::Events {
                    epoch,
                    since,
                    since_epoch,
                    entries: Vec::new(),
                    log_head: self.log_head,
                    truncate_to: Some(keep),
                };
                self.send(To::Device(from), message);
                return Ok(());
            }
        }
        let entries = within_bytes(
            self.store
                .log_after(since, BATCH_EVENTS_MAX)
                .map_err(store_err)?,
        );
        let message = Message::Events {
            epoch,
            since,
            since_epoch,
            entries,
            log_head: self.log_head,
            truncate_to: None,
        };
        self.send(To::Device(from), message);
        Ok(())
    }

    fn broadcast_critical(&mut self, entry: &LogEntry, now: Now) -> Result<(), S> {
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        let details = json!({ "kind": "critical_event", "seq": entry.seq() });
        let audit = self.audit(
            now,
            Operation::Broadcast,
            Outcome::Ok,
            Some(entry.event.event_id),
            details,
        );
        self.commit(Batch::audit(audit))?;
        self.send(
            To::AllPeers,
            Message::CriticalEvent {
                epoch,
                entry: entry.clone(),
            },
        );
        Ok(())
    }

    // ----- helpers -----

    fn trusted(&self, hlc: Hlc, now: Now) -> bool {
        hlc.wall_ms <= now.wall_ms.saturating_add(self.config.clock_drift_max_ms)
    }

    /// The driver refused what a link sent before it could reach the core: an undecodable
    /// message, a message before the link said who it is, a link that changed its identity.
    /// Recorded like every other refusal of the sync protocol (the driver closes the link).
    pub fn handle_link_refusal(
        &mut self,
        from: Option<DeviceId>,
        why: &str,
        details: Value,
        now: Now,
    ) -> Result<(), S> {
        let details = json!({ "from": from, "why": why, "details": details });
        let entry = self.audit(now, Operation::Error, Outcome::Rejected, None, details);
        self.commit(Batch::audit(entry))?;
        Ok(())
    }

    fn alarm(&mut self, now: Now, from: DeviceId, why: &str, details: Value) -> Result<(), S> {
        let details = json!({ "from": from, "why": why, "details": details });
        self.refuse(now, from, Operation::Alarm, details, why.to_owned())
    }

    /// Audits a refusal of what `from` sent (committed first), then tells `from`: `refused`.
    fn refuse(
        &mut self,
        now: Now,
        from: DeviceId,
        operation: Operation,
        details: Value,
        message: String,
    ) -> Result<(), S> {
        let entry = self.audit(now, operation, Outcome::Rejected, None, details);
        self.commit(Batch::audit(entry))?;
        let refusal = Message::Error {
            epoch: self.epoch,
            code: ErrorCode::Refused,
            message,
        };
        self.send(To::Device(from), refusal);
        Ok(())
    }

    /// This device's heartbeat as it would send it now (a REST exchange answers with it).
    pub fn heartbeat(&self) -> Message {
        Message::Heartbeat {
            peer: self.config.me.clone(),
            epoch: self.epoch,
            role: self.role,
            log_head: self.log_head,
            handing_over_to: self.handing_over.map(|h| h.target),
        }
    }

    fn send_heartbeat(&mut self) {
        self.send(To::AllPeers, self.heartbeat());
    }

    fn send_heartbeat_to(&mut self, to: DeviceId) {
        self.send(To::Device(to), self.heartbeat());
    }

    fn send(&mut self, to: To, message: Message) {
        self.transmits.push_back(Transmit { to, message });
    }

    fn commit(&mut self, batch: Batch) -> Result<Vec<LogEntry>, S> {
        self.store.commit(batch).map_err(store_err)
    }

    fn audit(
        &self,
        now: Now,
        operation: Operation,
        outcome: Outcome,
        event_id: Option<EventId>,
        details: Value,
    ) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: rfc3339_from_ms(now.wall_ms),
            operation,
            device_id: Some(self.me()),
            user_id: None,
            event_id,
            outcome,
            details,
        }
    }
}

/// The order in which the master decides the events of one push: first those an earlier master
/// accepted, in the order it decided them (they came first, whatever their clocks say; those
/// whose place is unknown after those whose place is known), then the others by
/// `(hlc, device, seq)` (SPEC §4).
fn decision_order(event: &SyncEvent) -> (bool, bool, Option<u64>, (Hlc, DeviceId, u64)) {
    let before = event.accepted_before;
    let place = event.master_seq.filter(|_| before);
    (!before, place.is_none(), place, event.arrival_key())
}

fn fmt_epoch(epoch: Option<Epoch>) -> String {
    epoch.map_or_else(|| "none".to_owned(), |e| e.to_string())
}

/// The longest prefix of `items` whose JSON fits in [`BATCH_BYTES_MAX`], and at least one item:
/// a batch must fit in one WebSocket message (1 MiB) whatever its events hold.
fn within_bytes<T: serde::Serialize>(mut items: Vec<T>) -> Vec<T> {
    let mut total = 0;
    for (index, item) in items.iter().enumerate() {
        total += serde_json::to_vec(item).map_or(0, |json| json.len()) + 1;
        if total > BATCH_BYTES_MAX && index > 0 {
            items.truncate(index);
            break;
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stop_at_the_byte_limit_but_never_empty() {
        let item = "x".repeat(100 * 1024);
        let items = vec![item.clone(); 20];
        let kept = within_bytes(items);
        assert!(kept.len() >= 7 && kept.len() < 20, "{}", kept.len());
        assert!(kept.len() * (item.len() + 3) <= BATCH_BYTES_MAX + item.len() + 3);
        let huge = vec!["y".repeat(2 * BATCH_BYTES_MAX)];
        assert_eq!(
            within_bytes(huge).len(),
            1,
            "one oversized item still goes alone"
        );
    }
}

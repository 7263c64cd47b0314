//! [`SyncNode`]: one device's sync state machine, for both roles, made of parts that own their
//! state (as quinn-proto's `Connection`):
//!
//! | part | file | owns |
//! |---|---|---|
//! | dispatch of inputs, getters | `mod.rs` | the epoch, the log head, the clock |
//! | timers and pauses | `timer.rs` | [`Timer`], heartbeat and sync deadlines |
//! | what an input leaves | `outbox.rs` | messages, notifications, the input's audit rows |
//! | the SyncAuditLog | `audit.rs` | every audited fact as a typed record |
//! | peers | `peers.rs` | liveness, roster, passed-over devices |
//! | the phase | `phase.rs` | what each phase knows: leading, following, masterless |
//! | election | `election.rs` | phase changes, fencing, pre-vote, becoming master |
//! | handover | `handover.rs` | handover and `--reclaim` |
//! | SyncManager of a client | `client.rs` | push, pull, truncate, apply, relay |
//! | SyncManager of a master, SyncTasks | `master.rs` | registration, pulls, group commit, broadcasts |
//!
//! The ConflictResolver itself is `crate::resolver`, a pure type the master's SyncTasks feed.
//!
//! **Dependencies point one way:** the role modules (`election.rs`, `client.rs`, `master.rs`,
//! `handover.rs`) and `timer.rs` import the leaves (`phase.rs` for the state of each phase,
//! `audit.rs` for the audited facts and their reasons, `outbox.rs`, `peers.rs`) and this module's
//! shared types; no leaf imports a role module, and no role module imports another. The role
//! modules are `impl` blocks of the one [`SyncNode`], so they call each other's methods through
//! `self` (an election won runs the master's first decisions, a handover ends in becoming
//! master): that is one type's behaviour split by design name, not a dependency between modules.
//!
//! **Invariants:**
//! - One input, one commit: the writes an input decides leave in one [`Batch`] with the input's
//!   audit rows, and what depends on them is sent only after that commit succeeded
//!   (`outbox.rs`). Where an input must read what it wrote, or makes a second decision on top of
//!   the first, it commits once per step, each step before the messages that depend on it: an
//!   election won with events to decide first, a master deciding its own backlog in chunks, a
//!   verdict or an applied pull followed by the next push, a pause noticed before the input
//!   itself, a handover given up before the broadcast tick.
//! - The phase is one value: a device is master, follows a master, or has none; what each phase
//!   knows lives in it and is gone when the phase ends.

mod audit;
mod client;
mod election;
mod handover;
mod master;
mod outbox;
mod peers;
mod phase;
mod timer;

use rms_domain::{DeviceId, Epoch, Hlc, LogEntry, Role, SyncEvent, Term};
use serde_json::Value;

use crate::message::{ErrorCode, Message, PeerInfo, Verdict};
use crate::rng::Rng;
use crate::store::{Batch, SyncStore};

pub use audit::{
    REASON_ALONE, REASON_ELECTED, REASON_HANDOVER, REASON_LONE_RESTART, REASON_NEWER_EPOCH,
    REASON_PAUSED, REASON_REVOKED, WHY_INPUT_GAP,
};
pub use timer::Timer;

use audit::{Audited, Refusal, SyncAuditLog};
use outbox::Outbox;
use peers::Peers;
use phase::Phase;

/// The time, as every input carries it: monotonic milliseconds for timers, wall milliseconds
/// (since the Unix epoch, possibly skewed) for clocks and audit entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds on a clock that never goes back (any origin, e.g. the process's start):
    /// every timer, deadline and "last heard" of the core is on it.
    pub mono_ms: u64,
    /// Milliseconds since the Unix epoch on the device's wall clock (it may be skewed or set
    /// back): merged into the hybrid logical clock, and the time of audit entries.
    pub wall_ms: u64,
}

/// How one device takes part in sync: who it is and its timings. Fixed for the life of a
/// [`SyncNode`].
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// This device, as it describes itself to its peers (its id, name, address and priority).
    pub me: PeerInfo,
    /// False for a lone device: it is master of its own store at once.
    pub has_peers: bool,
    /// How often a client pushes, pulls and relays, and a master broadcasts, in milliseconds,
    /// each time jittered by up to 10% (and at least 1 ms). It is also the retry when eager
    /// sync is on.
    pub sync_interval_ms: u64,
    /// How often this device sends its heartbeat to every peer, in milliseconds; also how often
    /// a pre-vote asks silent peers again. An input that comes more than one interval after a
    /// due heartbeat is taken for a pause of this device (see [`Timer`]).
    pub heartbeat_interval_ms: u64,
    /// How long, in milliseconds, a peer counts as alive after it was last heard, and how long
    /// a client waits for its master's heartbeat before it holds a pre-vote; elections and
    /// handovers wait multiples of it.
    pub master_timeout_ms: u64,
    /// Take the master role back (in a new term) once caught up, when this device outranks the
    /// master.
    pub reclaim: bool,
    /// The seed of the core's only randomness (the jitter of the sync interval): a run replays
    /// exactly from it.
    pub rng_seed: u64,
    /// Events stamped further than this in the future are not trusted: their clock is not merged
    /// into this device's, and the audit log flags them.
    pub clock_drift_max_ms: u64,
    /// Sync at once rather than every sync interval: a client pushes each local write as it is
    /// made (one push in flight, so a rush goes as a few batches), and a master broadcasts each
    /// decided entry as it is committed (at most every [`EAGER_BROADCAST_GAP_MS`]; what comes
    /// sooner goes at the `Broadcast` timer). The sync interval remains the retry. Off, only
    /// critical events go at once (SPEC §5).
    pub eager_sync: bool,
}

/// An eager master broadcasts at most this often: a sale that comes when the store is quiet is
/// broadcast at once, and in a rush each broadcast carries what the gap gathered (every entry
/// must reach every device; fewer, larger messages keep a master with many devices taking
/// pushes nearly as fast as without eager sync).
pub const EAGER_BROADCAST_GAP_MS: u64 = 1;

impl SyncConfig {
    /// This device's id (`me.device_id`).
    pub fn device_id(&self) -> DeviceId {
        self.me.device_id
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// One device, by its id.
    Device(DeviceId),
    /// Every peer the driver can reach (configured peers and the roster).
    AllPeers,
}

/// A message for the driver to send ([`SyncNode::poll_transmit`]). It goes only after the
/// commit it depends on succeeded; sending it is best effort (a lost message is asked again).
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    /// Where it goes.
    pub to: To,
    /// What goes.
    pub message: Message,
}

/// What the application may want to know ([`SyncNode::poll_notification`]), after the commit
/// it reports succeeded.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// This device became master, or stopped being master (it stepped down, or was paused,
    /// revoked, or handed its role over). Following another master is no change of role.
    RoleChanged {
        /// The role from now on.
        role: Role,
        /// This device's epoch after the change: the one it leads, or, for a master that
        /// stepped down, the newer epoch it adopted or else the one it led.
        epoch: Option<Epoch>,
    },
    /// The master decided one of this device's own events: from a `push_ack`, from its log
    /// entry, or as master. It may come more than once for one event (the ack, then the
    /// entry).
    Decided(Verdict),
    /// The device's copy of the master log grew (or was truncated) to `log_head`.
    LogAdvanced {
        /// The position of the last entry of this device's copy of the master log now.
        log_head: u64,
    },
}

/// Why an input of [`SyncNode`] failed; `E` is the store's error.
///
/// The node stays usable: what the input staged after its last successful commit (messages,
/// audit rows) is dropped, so nothing it promised goes out, and its peers and timers ask again.
/// What the input committed before the failing step stays committed (an input that must read
/// what it wrote commits once per step).
#[derive(Debug, thiserror::Error)]
pub enum SyncError<E: std::error::Error + 'static> {
    /// A [`SyncStore`] read or commit failed.
    #[error("storage: {0}")]
    Store(#[source] E),
}

/// Why [`SyncNode::request_handover`] did not start a handover; `E` is the store's error.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError<E: std::error::Error + 'static> {
    /// This device is not the master (only the master hands its role over).
    #[error("only the master can hand its role over")]
    NotMaster,
    /// The target named is this device itself.
    #[error("device {0} is this device")]
    ToSelf(DeviceId),
    /// The target was not heard within the master timeout.
    #[error("device {0} has not been heard from within the master timeout")]
    Unreachable(DeviceId),
    /// A handover to this device is in progress already.
    #[error("a handover to device {0} is in progress")]
    InProgress(DeviceId),
    /// The commit that records the handover's start failed: nothing changed, no handover.
    #[error("cannot record the handover: {0}")]
    Storage(#[source] E),
}

type Result<T, S> = std::result::Result<T, SyncError<<S as SyncStore>::Error>>;

fn store_err<E: std::error::Error + 'static>(e: E) -> SyncError<E> {
    SyncError::Store(e)
}

/// One device's sync state machine, for both roles: it decides, the driver executes.
///
/// Inputs ([`SyncNode::handle_message`], [`SyncNode::handle_messages`],
/// [`SyncNode::handle_local_write`], [`SyncNode::handle_timeout`], and the commands
/// [`SyncNode::request_handover`], [`SyncNode::revoked`], [`SyncNode::not_admitted`],
/// [`SyncNode::handle_link_refusal`]) each carry [`Now`]; what they decide is committed to the
/// store `S` (one [`Batch`] per step), then the outputs ([`SyncNode::poll_transmit`],
/// [`SyncNode::poll_notification`], [`SyncNode::poll_timeout`]) say what to send, what to tell
/// the application, and when to call again. It reads no clock, does no I/O but through `S`,
/// and replays exactly from its inputs and [`SyncConfig::rng_seed`].
pub struct SyncNode<S: SyncStore> {
    config: SyncConfig,
    store: S,
    rng: Rng,
    audit_log: SyncAuditLog,
    epoch: Option<Epoch>,
    /// The lowest term this incarnation may lead ([`crate::Persisted::term_floor`]).
    term_floor: Term,
    /// This device holds its own revocation ([`SyncNode::revoked`]): it never leads again.
    revoked: bool,
    /// This device caught up with a master's log since it started.
    caught_up: bool,
    log_head: u64,
    hlc: Hlc,
    peers: Peers,
    phase: Phase,
    /// Entries this device decided as master that the new master's log lacks, to relay.
    relay: Vec<LogEntry>,
    next_heartbeat_ms: u64,
    /// Master: the next broadcast; client: the next push, pull and relay.
    next_sync_ms: u64,
    outbox: Outbox,
}

impl<S: SyncStore> std::fmt::Debug for SyncNode<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncNode")
            .field("device", &self.config.me.device_id)
            .field("role", &self.role())
            .field("epoch", &self.epoch)
            .field("log_head", &self.log_head)
            .finish_non_exhaustive()
    }
}

impl<S: SyncStore> SyncNode<S> {
    /// Starts from what `store` has persisted. A lone device (no peers) is master of its own
    /// store at once; a device with peers starts as a client looking for the master, and holds an
    /// election if it finds none within the master timeout.
    pub fn new(config: SyncConfig, store: S, now: Now) -> Result<SyncNode<S>, S> {
        let persisted = store.persisted().map_err(store_err)?;
        let me = config.me.device_id;
        let mut node = SyncNode {
            rng: Rng::new(config.rng_seed),
            audit_log: SyncAuditLog::new(me),
            epoch: persisted.epoch,
            term_floor: persisted.term_floor,
            revoked: false,
            caught_up: false,
            log_head: persisted.log_head,
            hlc: persisted.hlc,
            peers: Peers::new(me, config.master_timeout_ms, persisted.roster),
            phase: Phase::masterless(now.mono_ms),
            relay: Vec::new(),
            next_heartbeat_ms: now.mono_ms,
            next_sync_ms: now.mono_ms,
            outbox: Outbox::default(),
            config,
            store,
        };
        node.next_sync_ms = now.mono_ms + node.sync_delay();
        if !node.config.has_peers {
            let result = match node.epoch {
                Some(epoch) if epoch.master_id == me => node.resume_master(now),
                _ => node.become_master(now, REASON_ALONE, None, Vec::new()),
            };
            node.finish(result)?;
        }
        Ok(node)
    }

    // ----- getters -----

    /// This device's role now: master, or client (following a master or looking for one).
    pub fn role(&self) -> Role {
        self.phase.role()
    }

    /// The newest epoch this device knows (persisted before it was acted on); `None` before it
    /// has known any.
    pub fn epoch(&self) -> Option<Epoch> {
        self.epoch
    }

    /// A device given peers that is not in its store: it never was (it knows no epoch and has
    /// heard from no other device: it is not paired yet, so no link admits it), or, without a
    /// master, it started [`SyncNode::not_admitted`] and has heard no peer since (a device
    /// restored without its identity files has a new certificate). It never holds an election,
    /// so that it never becomes the master of an island of one (whose newer term would win over
    /// the store); its transport refuses its tills' writes until it joins (`docs/SYNC.md`).
    pub fn joining(&self) -> bool {
        let never = self.epoch.is_none() && self.peers.is_empty();
        let refused = self.peers.refused() && matches!(self.phase, Phase::Masterless(_));
        self.config.has_peers && (never || refused)
    }

    /// At start, before any input: this device's store does not admit it (its transport knows
    /// the store binds another certificate to its id). Until it hears a peer, it is
    /// [`SyncNode::joining`]. Nothing is sent or stored.
    pub fn not_admitted(&mut self) {
        self.peers.not_admitted();
    }

    /// This device holds its own revocation (its transport read it in the trust list, from the
    /// log or a trusted peer's refusal): it is out of its store. From now on it holds no
    /// election, and a master steps down: its peers refuse its links, so it would lead an island
    /// of one whose epoch a device that does not know of the revocation yet (a fresh
    /// replacement, say) could carry into the store, with a log that truncates the store's
    /// (issue #27). Its transport refuses its tills' writes. Idempotent.
    pub fn revoked(&mut self, now: Now) -> Result<(), S> {
        if std::mem::replace(&mut self.revoked, true) || self.role() != Role::Master {
            return Ok(());
        }
        let result = self.step_down_revoked(now);
        self.finish(result)
    }

    /// Whether [`SyncNode::revoked`] was called.
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// The master this device follows or is, if it knows one.
    pub fn master_id(&self) -> Option<DeviceId> {
        match self.phase {
            Phase::Master(_) => Some(self.me()),
            Phase::Following(_) => self.epoch.map(|e| e.master_id),
            Phase::Masterless(_) => None,
        }
    }

    /// The position of the last entry of this device's copy of the master log (0: empty).
    pub fn log_head(&self) -> u64 {
        self.log_head
    }

    /// A client whose log is known to agree with its master's (a pull succeeded in this epoch);
    /// the master itself is always in agreement.
    pub fn in_sync(&self) -> bool {
        match &self.phase {
            Phase::Master(_) => true,
            Phase::Following(following) => following.synced,
            Phase::Masterless(_) => false,
        }
    }

    /// The master's log head as last heard (a client catching up is `log_head` of this).
    pub fn master_log_head(&self) -> u64 {
        match &self.phase {
            Phase::Master(_) => self.log_head,
            Phase::Following(following) => following.master_log_head,
            Phase::Masterless(_) => 0,
        }
    }

    /// The store the node commits to (for the driver's reads; writes go through the inputs).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration the node was built with.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Peers heard from within the master timeout, with what they said of themselves.
    pub fn live_peers(&self, now: Now) -> Vec<(PeerInfo, Role, Option<Epoch>)> {
        self.peers.live(now.mono_ms)
    }

    /// How far each peer said its copy of the master log is (its last heartbeat or register).
    pub fn peer_log_heads(&self) -> Vec<(DeviceId, u64)> {
        self.peers.log_heads()
    }

    /// Every peer this device has heard of, with the monotonic time it was last heard from.
    pub fn roster(&self) -> Vec<(PeerInfo, Option<u64>)> {
        self.peers.roster()
    }

    /// The role a local write is recorded in: a master decides it at once, except while it
    /// hands its role over (then the write waits, pending, for the next master).
    pub fn local_write_role(&self) -> Role {
        match &self.phase {
            Phase::Master(leading) if leading.handing_over.is_none() => Role::Master,
            _ => Role::Client,
        }
    }

    /// This device's heartbeat as it would send it now (a REST exchange answers with it).
    pub fn heartbeat(&self) -> Message {
        let handing_over_to = match &self.phase {
            Phase::Master(leading) => leading.handing_over.map(|h| h.target),
            _ => None,
        };
        Message::Heartbeat {
            peer: self.config.me.clone(),
            epoch: self.epoch,
            role: self.role(),
            log_head: self.log_head,
            handing_over_to,
            log_chain: None,
        }
    }

    fn me(&self) -> DeviceId {
        self.config.me.device_id
    }

    // ----- outputs -----

    /// The next message to send, oldest first; `None` when there is nothing (more) to send.
    /// Drain it after every input.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.poll_transmit()
    }

    /// The next notification for the application, oldest first; `None` when there is none.
    /// Drain it after every input.
    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.outbox.poll_notification()
    }

    // ----- inputs -----

    /// Timers (see [`Timer`]): heartbeats, failure detection, elections, periodic sync,
    /// broadcasts.
    pub fn handle_timeout(&mut self, now: Now) -> Result<(), S> {
        let result = self.on_timeout(now);
        self.finish(result)
    }

    /// A local write was committed (by `rms_storage::local::record`): on the master `entry` is its
    /// log entry; on a client the event is pending and, if critical, is pushed at once.
    pub fn handle_local_write(
        &mut self,
        event: &SyncEvent,
        entry: Option<&LogEntry>,
        now: Now,
    ) -> Result<(), S> {
        let result = self.on_local_write(event, entry, now);
        self.finish(result)
    }

    fn on_local_write(
        &mut self,
        event: &SyncEvent,
        entry: Option<&LogEntry>,
        now: Now,
    ) -> Result<(), S> {
        self.hlc = self.hlc.max(event.hlc);
        if let Some(entry) = entry {
            // Decided as master when it was written: the log grew, whatever the role is now (a
            // pause noticed below may have made this device step down since).
            self.log_head = self.log_head.max(entry.seq());
            self.outbox.notify(Notification::LogAdvanced {
                log_head: self.log_head,
            });
        }
        self.forgive_pause(now)?;
        let eager = self.config.eager_sync;
        match (self.role(), entry) {
            (Role::Master, Some(entry)) if entry.event.critical => {
                self.broadcast_critical(entry, now);
            }
            (Role::Master, Some(_)) if eager => self.broadcast_soon(now),
            (Role::Client, None) if event.critical || eager => self.push_pending(now)?,
            _ => {}
        }
        Ok(())
    }

    /// A message from `from` (the device the driver's session is registered as).
    pub fn handle_message(&mut self, from: DeviceId, message: Message, now: Now) -> Result<(), S> {
        let result = self
            .forgive_pause(now)
            .and_then(|()| self.dispatch(from, message, now));
        self.finish(result)
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
        let paused = self.forgive_pause(now);
        let mut first_error = self.finish(paused).err();
        let mut group: Vec<(DeviceId, Vec<SyncEvent>)> = Vec::new();
        for (from, message) in messages {
            let result = if self.joins_push_group(from, &message) {
                self.peers.note(from, &message, now.mono_ms);
                let mut checked = Ok(());
                if let Message::Push { events, head, .. } = message {
                    checked = self
                        .own_pushed(from, events, head, now)
                        .map(|own| group.extend(own.map(|own| (from, own))));
                }
                // A forged or broken push's alarm is committed now: the group's commit may fail.
                self.finish(checked)
            } else {
                let decided = self.decide_pushes(std::mem::take(&mut group), now);
                let decided = self.finish(decided);
                let handled = self.dispatch(from, message, now);
                decided.and(self.finish(handled))
            };
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        }
        let decided = self.decide_pushes(group, now);
        if let Err(err) = self.finish(decided) {
            first_error.get_or_insert(err);
        }
        first_error.map_or(Ok(()), Err)
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
        let why = why.to_owned();
        self.audit(now, Refusal::LinkRefused { from, why, details });
        self.finish(Ok(()))
    }

    /// One message, after the pause check.
    fn dispatch(&mut self, from: DeviceId, message: Message, now: Now) -> Result<(), S> {
        if from == self.me() {
            return Ok(());
        }
        if self.forged_announce(from, &message, now) {
            return Ok(());
        }
        self.peers.note(from, &message, now.mono_ms);
        if !self.fence(from, &message, now)? {
            return Ok(());
        }
        self.route(from, message, now)
    }

    /// A message that passed the epoch rules, to the part that handles it.
    fn route(&mut self, from: DeviceId, message: Message, now: Now) -> Result<(), S> {
        match message {
            Message::Heartbeat { role, log_head, .. } => {
                self.on_heartbeat(from, role, log_head, now);
                Ok(())
            }
            Message::Register { peer, .. } => {
                self.on_register(from, peer, now);
                Ok(())
            }
            Message::RegisterAck {
                roster, log_head, ..
            } => {
                self.on_register_ack(from, roster, log_head, now);
                Ok(())
            }
            Message::MasterAnnounce { .. }
            | Message::PreVote { .. }
            | Message::PreVoteReply { .. }
            | Message::Error { .. } => self.route_election(from, message, now),
            Message::Push { events, head, .. } => self.on_push(from, events, head, now),
            Message::Relay { entries, .. } => self.on_relay(from, entries, now),
            Message::PushAck { verdicts, .. } => self.on_push_ack(from, verdicts, now),
            Message::Pull {
                since, since_epoch, ..
            } => self.on_pull(from, since, since_epoch),
            Message::Events {
                since,
                since_epoch,
                entries,
                log_head: master_log_head,
                truncate_to,
                ..
            } => {
                let answer = client::PullAnswer {
                    since,
                    since_epoch,
                    entries,
                    master_log_head,
                    truncate_to,
                };
                self.on_events(from, answer, now)
            }
            Message::SyncUpdate { entries, .. } => self.on_broadcast(from, entries, now),
            Message::CriticalEvent { entry, .. } => self.on_broadcast(from, vec![entry], now),
            Message::Conflict {
                event_id, reason, ..
            } => {
                self.on_conflict(from, event_id, reason, now);
                Ok(())
            }
            Message::Handover { .. }
            | Message::HandoverReady { .. }
            | Message::HandoverGranted { .. }
            | Message::HandoverRequest { .. } => self.route_handover(from, message, now),
        }
    }

    /// Only a master announces itself (`become_master`): an announce in another device's name
    /// is forged, refused, and its epoch is not adopted.
    fn forged_announce(&mut self, from: DeviceId, message: &Message, now: Now) -> bool {
        let Message::MasterAnnounce { epoch, .. } = message else {
            return false;
        };
        if epoch.master_id == from {
            return false;
        }
        let (theirs, ours) = (*epoch, self.epoch);
        let refusal = format!("device {from} cannot announce device {}", theirs.master_id);
        let record = Refusal::ForgedAnnounce { from, theirs, ours };
        self.refuse(now, from, record, refusal);
        true
    }

    // ----- helpers -----

    fn is_my_master(&self, device: DeviceId) -> bool {
        self.role() == Role::Client && self.epoch.is_some_and(|e| e.master_id == device)
    }

    fn trusted(&self, hlc: Hlc, now: Now) -> bool {
        hlc.wall_ms <= now.wall_ms.saturating_add(self.config.clock_drift_max_ms)
    }

    fn sync_delay(&mut self) -> u64 {
        self.rng.jitter(self.config.sync_interval_ms, 10).max(1)
    }

    /// A peer sent what no honest peer sends: audited as an alarm, and the peer told.
    fn alarm(&mut self, now: Now, from: DeviceId, why: &'static str, details: Value) {
        self.refuse(
            now,
            from,
            Refusal::Alarm { from, why, details },
            why.to_owned(),
        );
    }

    /// Audits a refusal of what `from` sent, then tells `from` (once the audit is committed).
    fn refuse(&mut self, now: Now, from: DeviceId, record: impl Into<Audited>, message: String) {
        self.audit(now, record);
        let refusal = Message::Error {
            epoch: self.epoch,
            code: ErrorCode::Refused,
            message,
        };
        self.send(To::Device(from), refusal);
    }

    fn send_heartbeat(&mut self) {
        let heartbeat = self.heartbeat();
        self.outbox.send_now(Transmit {
            to: To::AllPeers,
            message: heartbeat,
        });
    }

    fn send_heartbeat_to(&mut self, to: DeviceId) {
        let heartbeat = self.heartbeat();
        self.outbox.send_now(Transmit {
            to: To::Device(to),
            message: heartbeat,
        });
    }

    /// Stages `message`: sent once the input's writes are committed.
    fn send(&mut self, to: To, message: Message) {
        self.outbox.stage(Transmit { to, message });
    }

    /// Stages an audited fact: committed with the input's next batch, or alone at its end.
    fn audit(&mut self, now: Now, record: impl Into<Audited>) {
        let entries = self.audit_log.entries(record, now);
        self.outbox.audit(entries);
    }

    /// Commits `batch` with the input's staged audit rows; on success the staged messages may go,
    /// on failure they are dropped.
    fn commit(&mut self, mut batch: Batch) -> Result<Vec<LogEntry>, S> {
        let mut audit = self.outbox.take_audit();
        audit.append(&mut batch.audit);
        batch.audit = audit;
        match self.store.commit(batch) {
            Ok(undone) => {
                self.outbox.release();
                Ok(undone)
            }
            Err(err) => {
                self.outbox.discard();
                Err(store_err(err))
            }
        }
    }

    /// The end of an input: commits what is staged (audit rows) and releases its messages, or,
    /// if the input failed, drops them.
    fn finish(&mut self, result: Result<(), S>) -> Result<(), S> {
        match result {
            Ok(()) if self.outbox.has_audit() => self.commit(Batch::default()).map(drop),
            Ok(()) => {
                self.outbox.release();
                Ok(())
            }
            Err(err) => {
                self.outbox.discard();
                Err(err)
            }
        }
    }
}

fn fmt_epoch(epoch: Option<Epoch>) -> String {
    epoch.map_or_else(|| "none".to_owned(), |e| e.to_string())
}

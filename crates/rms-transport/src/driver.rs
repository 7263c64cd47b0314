//! The driver: one thread that owns the node's `SyncNode` and its writer, feeds it real time and
//! real messages, and carries out what it says (quinn's role around quinn-proto).
//!
//! Every write of the node goes through this thread: local writes from the REST handlers and the
//! core's batches. So the core's view (log head, epoch) is never behind the database, and SQLite
//! never runs on the async runtime's threads. Inputs arrive on a bounded channel; the loop
//! sleeps until the next input or the core's next timeout.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rms_domain::{AuditEntry, DeviceId, EventId, Operation, Outcome, Role, rfc3339_from_ms};
use rms_storage::local::{self, Command};
use rms_storage::{StorageError, Store};
use rms_sync::{
    Message, Notification, Now, PeerInfo, SyncConfig, SyncError, SyncNode, To, Verdict,
};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::input::{INPUT_QUEUE_MAX, Input, LocalDone};
use crate::net::connector::Connector;
use crate::net::link::Links;
use crate::net::trust::{self, TrustBook};
use crate::net::trust_watch::TrustWatch;
use crate::status::StatusCell;
use crate::step;
use crate::sync_store::StoreAdapter;

/// After a gap (the node did not run), at most this many waiting inputs are read before the
/// overdue timers run: the whole queue.
const CATCH_UP_INPUTS_MAX: usize = INPUT_QUEUE_MAX;

/// Moves the pushes waiting at the head of the queue into `group` (see [`step::PushGroup`]);
/// returns the first other input taken, to be handled next.
/// The pushes' `prehashed` go into `prehashed`.
fn gather_pushes(
    rx: &Receiver<Input>,
    group: &mut step::PushGroup,
    prehashed: &mut Vec<rms_storage::chain_check::Prehashed>,
) -> Option<Input> {
    loop {
        match rx.try_recv().ok()? {
            Input::Net {
                from,
                message,
                prehashed: worked_out,
            } => match group.offer(from, message) {
                Some((from, message)) => {
                    return Some(Input::Net {
                        from,
                        message,
                        prehashed: worked_out,
                    });
                }
                None => prehashed.extend(worked_out),
            },
            other => return Some(other),
        }
    }
}

/// Why the driver did not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The operating system refused a new thread.
    #[error("cannot start the sync driver thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The sync core could not read its persisted state from the database.
    #[error("the sync core cannot start: {0}")]
    Core(#[source] SyncError<StorageError>),
    /// The thread ended (panicked) before it said whether the core started.
    #[error("the sync driver thread stopped while starting")]
    Stopped,
}

/// The driver thread; it ends with the result of recording the node's stop.
pub type DriverThread = std::thread::JoinHandle<Result<(), StorageError>>;

/// Notifications kept for a subscriber that reads slowly; beyond, it is told how many it missed.
pub const NOTIFICATIONS_MAX: usize = 1024;

/// What the driver thread owns besides its queue.
pub struct Parts {
    /// Every notification of the core, for the application (`Node::subscribe`).
    pub notifications: tokio::sync::broadcast::Sender<Notification>,
    pub config: SyncConfig,
    pub store: Arc<Store>,
    pub clock: Clock,
    pub links: Links,
    pub connector: Connector,
    pub status: StatusCell,
    pub trust: TrustBook,
    pub log_watch: Arc<crate::log_head::LogWatch>,
}

/// Whether this device signs its pushes (issue #17): not before its journal verified at start
/// (a push waits, and goes the moment the check passes), then with the device key; never
/// again once the journal did not verify (pushes go unsigned, and the master refuses them with
/// an alarm of its own).
enum PushSigner {
    Checking,
    Ready(Arc<rms_security::signer::Signer>),
    Broken,
}

/// Starts the driver thread on `rx`. Returns once the core has started (or failed to).
pub fn spawn(rx: Receiver<Input>, parts: Parts) -> Result<DriverThread, DriverError> {
    let Parts {
        notifications,
        config,
        store,
        clock,
        links,
        connector,
        status,
        trust,
        log_watch,
    } = parts;
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("rms-sync-driver".into())
        .spawn(move || {
            let origin = Instant::now();
            let now = || Now {
                mono_ms: elapsed_ms(origin),
                wall_ms: clock.now_ms(),
            };
            let mut node = match SyncNode::new(config, StoreAdapter::new(Arc::clone(&store)), now())
            {
                Ok(node) => node,
                Err(err) => {
                    let _ = started_tx.send(Err(err));
                    return Ok(());
                }
            };
            // A database whose store binds another certificate to this device's id (restored
            // without its identity files): not admitted until the store pairs it (issue #27).
            if trust.another_certificate_holds_my_id() {
                log::warn!(
                    "the store binds another certificate to this device's id: pair this device \
                     (rms-node pair / rms-node join); until then it holds no election"
                );
                node.not_admitted();
            }
            let metrics = Arc::clone(&status.get().metrics);
            let mut state = Loop {
                node,
                metrics,
                push_sent: None,
                store,
                links,
                connector,
                status,
                waiters: BTreeMap::new(),
                notifications,
                origin,
                clock,
                persisted_roster: Vec::new(),
                trust,
                trust_watch: TrustWatch::default(),
                trust_dirty: true,
                push_signer: PushSigner::Checking,
                held_push: None,
                log_watch,
            };
            // The status is filled before `spawn` returns, so the first request sees the role.
            state.after_input(now());
            let _ = started_tx.send(Ok(()));
            state.run(&rx)
        })
        .map_err(DriverError::Thread)?;
    match started_rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(err)) => Err(DriverError::Core(err)),
        Err(_) => Err(DriverError::Stopped),
    }
}

fn elapsed_ms(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Why the driver's loop ended.
enum Stopped {
    /// `Input::Stop`: the node shuts down.
    Asked,
    /// Every handle to the driver is gone.
    Orphaned,
}

/// What handing an input to the core came to: a failure is the store's.
type Handled = Result<(), SyncError<StorageError>>;

struct Loop {
    node: SyncNode<StoreAdapter>,
    metrics: Arc<crate::status::Metrics>,
    /// When the push now in flight was sent (client), for the push latency histogram.
    push_sent: Option<Instant>,
    store: Arc<Store>,
    links: Links,
    connector: Connector,
    status: StatusCell,
    /// Critical client sales waiting (up to 2 s) for the master's verdict.
    waiters: BTreeMap<EventId, oneshot::Sender<Verdict>>,
    notifications: tokio::sync::broadcast::Sender<Notification>,
    origin: Instant,
    clock: Clock,
    /// The roster as last persisted, so that only changes are written.
    persisted_roster: Vec<PeerInfo>,
    /// The trust list the links check, kept in step with the log.
    trust: TrustBook,
    trust_watch: TrustWatch,
    /// An input may have changed the trust list (the log moved, or a local trust change).
    trust_dirty: bool,
    push_signer: PushSigner,
    /// The push made while the journal's check at start ran (a newer one replaces it).
    held_push: Option<rms_sync::Transmit>,
    /// The master log's chain: heads this device signed go out in heartbeats, heads its master
    /// signed come in with them.
    log_watch: Arc<crate::log_head::LogWatch>,
}

impl Loop {
    fn now(&self) -> Now {
        Now {
            mono_ms: elapsed_ms(self.origin),
            wall_ms: self.clock.now_ms(),
        }
    }

    /// Handles inputs until asked to stop (then records the stop: the driver's last write) or
    /// until every handle is gone.
    fn run(&mut self, rx: &Receiver<Input>) -> Result<(), StorageError> {
        match self.serve(rx) {
            Stopped::Asked => {
                self.sign_at_stop();
                self.record_stop()
            }
            Stopped::Orphaned => Ok(()),
        }
    }

    /// What was journaled since the last signing is signed before the driver stops (not by a key
    /// the device knows is revoked, nor before the journal verified).
    fn sign_at_stop(&mut self) {
        if let PushSigner::Ready(signer) = &self.push_signer
            && !self.trust.is_revoked(&self.trust.me())
        {
            let signer = Arc::clone(signer);
            self.sign_journal(&signer, self.now());
        }
    }

    /// The node stops cleanly: audited, with the role it had.
    fn record_stop(&mut self) -> Result<(), StorageError> {
        let entry = AuditEntry {
            id: 0,
            at: rfc3339_from_ms(self.now().wall_ms),
            operation: Operation::Shutdown,
            device_id: Some(self.node.config().device_id()),
            user_id: None,
            event_id: None,
            outcome: Outcome::Ok,
            details: serde_json::json!({ "role": self.node.role().as_str() }),
        };
        self.store
            .write(|tx| local::record_audit(tx, &entry))
            .map(drop)
    }

    fn serve(&mut self, rx: &Receiver<Input>) -> Stopped {
        // An input taken from the queue while gathering pushes, to handle next.
        let mut held: Option<Input> = None;
        let gap_ms = self.node.config().heartbeat_interval_ms;
        loop {
            let woke_from_sleep = held.is_none();
            let input = match held.take() {
                Some(input) => Ok(input),
                None => {
                    let wait = self.node.poll_timeout().saturating_sub(self.now().mono_ms);
                    rx.recv_timeout(Duration::from_millis(wait))
                }
            };
            let now = self.now();
            let late_ms = now.mono_ms.saturating_sub(self.node.poll_timeout());
            if let ControlFlow::Break(stopped) = self.take(input, now, rx, &mut held) {
                return stopped;
            }
            // Inputs before timeouts: a driver that woke up far past its own timer (the process
            // was stopped, or this thread starved) first reads what waited in its queue, so
            // overdue timers do not decide that peers are gone before their messages are read.
            if woke_from_sleep && late_ms > gap_ms {
                log::warn!("the node did not run for {late_ms} ms: reading waiting inputs first");
                for _ in 0..CATCH_UP_INPUTS_MAX {
                    let waiting = match held.take() {
                        Some(input) => input,
                        None => match rx.try_recv() {
                            Ok(input) => input,
                            Err(_) => break,
                        },
                    };
                    let now = self.now();
                    if let ControlFlow::Break(stopped) = self.take(Ok(waiting), now, rx, &mut held)
                    {
                        return stopped;
                    }
                }
            }
            // Timers run after every input, even when inputs never stop coming (a sales rush): a
            // master that only served inputs would stop sending heartbeats and be deposed at its
            // busiest.
            let now = self.now();
            if self.node.poll_timeout() <= now.mono_ms
                && let Err(err) = self.node.handle_timeout(now)
            {
                log::error!("sync: {err}");
            }
            self.after_input(now);
        }
    }

    /// Hands one input (or a timeout) to the core; pushes waiting right behind a push join it
    /// (the first other input taken goes to `held`). `Break` when the driver is to stop.
    fn take(
        &mut self,
        input: Result<Input, RecvTimeoutError>,
        now: Now,
        rx: &Receiver<Input>,
        held: &mut Option<Input>,
    ) -> ControlFlow<Stopped> {
        let result = match input {
            Ok(Input::Stop) => return ControlFlow::Break(Stopped::Asked),
            Err(RecvTimeoutError::Disconnected) => return ControlFlow::Break(Stopped::Orphaned),
            Ok(Input::Net {
                from,
                message,
                prehashed,
            }) if matches!(message, Message::Push { .. }) => {
                let mut group = step::PushGroup::default();
                let first = group.offer(from, message);
                debug_assert!(first.is_none(), "a group always takes its first push");
                let mut prehashed: Vec<_> = prehashed.into_iter().collect();
                *held = gather_pushes(rx, &mut group, &mut prehashed);
                self.node.store().expect_pushes(prehashed);
                let handled = self.handle_pushes(group.into_pushes(), now);
                self.node.store().expect_pushes(Vec::new());
                handled
            }
            Ok(input) => self.handle(input, now),
            Err(RecvTimeoutError::Timeout) => Ok(()),
        };
        if let Err(err) = result {
            log::error!("sync: {err}");
        }
        ControlFlow::Continue(())
    }

    /// Pushes found waiting together go to the core together: it decides them in one
    /// transaction, so N devices pushing at once cost one commit and one `fsync`, not N.
    fn handle_pushes(&mut self, pushes: Vec<(DeviceId, Message)>, now: Now) -> Handled {
        let started = Instant::now();
        let result = self.node.handle_messages(pushes, now);
        self.metrics.apply.observe(started.elapsed());
        result
    }

    /// A message from a peer: a master's signed log head goes to the log watch, the message to
    /// the core.
    fn on_net(&mut self, from: DeviceId, mut message: Message, now: Now) -> Handled {
        if let Message::Heartbeat {
            role: Role::Master,
            log_chain: head @ Some(_),
            ..
        } = &mut message
            && let Some(head) = head.take()
        {
            self.log_watch.heard(from, head);
        }
        let applies = matches!(
            message,
            Message::Push { .. }
                | Message::Relay { .. }
                | Message::Events { .. }
                | Message::SyncUpdate { .. }
                | Message::CriticalEvent { .. }
        );
        if matches!(message, Message::PushAck { .. })
            && let Some(sent) = self.push_sent.take()
        {
            self.metrics.push_latency.observe(sent.elapsed());
        }
        let started = Instant::now();
        let result = self.node.handle_message(from, message, now);
        if applies {
            self.metrics.apply.observe(started.elapsed());
        }
        result
    }

    fn handle(&mut self, input: Input, now: Now) -> Handled {
        match input {
            Input::Net { from, message, .. } => self.on_net(from, message, now),
            Input::LinkUp { link } => {
                match serde_json::to_string(&self.node.heartbeat()) {
                    Ok(introduction) => self.links.introduce(link, &introduction),
                    Err(err) => log::error!("cannot encode a heartbeat: {err}"),
                }
                Ok(())
            }
            Input::LinkRefused { from, why, details } => {
                self.node.handle_link_refusal(from, why, details, now)
            }
            Input::Alarm { why, details } => {
                self.audit_alarm(why, details, now);
                Ok(())
            }
            Input::SignJournal(signer) => {
                self.signer_ready(signer, now);
                Ok(())
            }
            Input::JournalBroken => {
                self.push_signer = PushSigner::Broken;
                if let Some(held) = self.held_push.take() {
                    self.send(&held);
                }
                Ok(())
            }
            Input::DeviceRefused(refusal) => {
                if let Err(err) = trust::record_refusal(&self.store, &refusal, now.wall_ms) {
                    log::error!("cannot audit a refused device: {err}");
                }
                Ok(())
            }
            Input::Local { command, reply } => {
                self.trust_dirty |= matches!(command, Command::Trust { .. });
                let outcome = self.local_write(command, now);
                if let Err(err) = &outcome
                    && !matches!(err, StorageError::Refused { .. } | StorageError::Invalid(_))
                {
                    log::error!("a local write failed: {err}");
                }
                let _ = reply.send(outcome);
                Ok(())
            }
            Input::Rest {
                from,
                message,
                reply,
            } => self.on_rest(from, message, reply, now),
            Input::Handover { target, reply } => {
                let _ = reply.send(self.node.request_handover(target, now));
                Ok(())
            }
            Input::Stop => Ok(()),
        }
    }

    /// Records an alarm raised outside the sync core in the audit log (logged if it cannot).
    fn audit_alarm(&self, why: &'static str, details: serde_json::Value, now: Now) {
        let entry = AuditEntry {
            id: 0,
            at: rfc3339_from_ms(now.wall_ms),
            operation: Operation::Alarm,
            device_id: Some(self.node.config().device_id()),
            user_id: None,
            event_id: None,
            outcome: Outcome::Error,
            details: serde_json::json!({ "why": why, "details": details }),
        };
        if let Err(err) = self.store.write(|tx| local::record_audit(tx, &entry)) {
            log::error!("cannot audit an alarm ({why}): {err}");
        }
    }

    /// A message posted over REST: the core handles it, and `reply` gets what the core sends
    /// `from` in answer, with this device's heartbeat last.
    fn on_rest(
        &mut self,
        from: DeviceId,
        message: Message,
        reply: oneshot::Sender<Vec<Message>>,
        now: Now,
    ) -> Handled {
        let result = self.node.handle_message(from, message, now);
        let mut answers = Vec::new();
        self.drain_transmits(Some((from, &mut answers)));
        // A REST peer hears nothing between its requests: every answer carries our
        // heartbeat, so it knows we are alive and how far our log is.
        let mut heartbeat = self.node.heartbeat();
        if let Message::Heartbeat { log_chain, .. } = &mut heartbeat {
            *log_chain = self.log_watch.signed();
        }
        answers.push(heartbeat);
        let _ = reply.send(answers);
        result
    }

    fn local_write(&mut self, command: Command, now: Now) -> Result<LocalDone, StorageError> {
        let step::LocalWrite { recorded, core } =
            step::local_write(&mut self.node, &self.store, command, now)?;
        if let Err(err) = core {
            log::error!("sync after a local write: {err}");
        }
        let role = if recorded.entry.is_some() {
            Role::Master
        } else {
            Role::Client
        };
        let mut verdict = None;
        if role == Role::Client && recorded.event.critical && self.node.master_id().is_some() {
            let (tx, rx) = oneshot::channel();
            self.waiters.insert(recorded.event.event_id, tx);
            verdict = Some(rx);
        }
        Ok(LocalDone {
            recorded,
            role,
            verdict,
        })
    }

    /// Keeps the `devices` table in step with the roster, so a restarted node knows the store's
    /// devices (and links to them) even if its `--peer` names only one.
    fn persist_roster(&mut self, roster: &[(PeerInfo, bool, Option<u64>)]) {
        let current: Vec<PeerInfo> = roster.iter().map(|(info, _, _)| info.clone()).collect();
        if current == self.persisted_roster {
            return;
        }
        let devices: Vec<rms_domain::Device> = roster
            .iter()
            .map(|(info, _, last_seen)| rms_domain::Device {
                device_id: info.device_id,
                name: info.name.clone(),
                role: if self.node.master_id() == Some(info.device_id) {
                    Role::Master
                } else {
                    Role::Client
                },
                advertise: info.advertise.clone(),
                priority: info.priority,
                online: false,
                last_seen: last_seen.map(rms_domain::rfc3339_from_ms),
            })
            .collect();
        let written = self.store.write(|tx| {
            for device in &devices {
                rms_storage::devices::put(tx, device)?;
            }
            Ok(())
        });
        match written {
            Ok(()) => self.persisted_roster = current,
            Err(err) => log::error!("cannot persist the roster: {err}"),
        }
    }

    /// Sends what the core wants sent; messages to `capture.0` go into `capture.1` instead.
    fn drain_transmits(&mut self, mut capture: Option<(DeviceId, &mut Vec<Message>)>) {
        while let Some(mut transmit) = self.node.poll_transmit() {
            // One push is in flight at a time; a new one replaces one whose ack was lost.
            if let Message::Push { events, head, .. } = &mut transmit.message {
                self.push_sent = Some(Instant::now());
                match &self.push_signer {
                    PushSigner::Ready(signer) => *head = self.push_head(signer, events),
                    PushSigner::Broken => {}
                    PushSigner::Checking => {
                        // Sent, signed, as soon as the check passes (`Input::SignJournal`).
                        log::debug!("a push waits for the journal's check at start");
                        self.held_push = Some(transmit);
                        continue;
                    }
                }
            }
            if let (Message::Heartbeat { log_chain, .. }, To::AllPeers) =
                (&mut transmit.message, transmit.to)
            {
                *log_chain = self.log_watch.to_send();
            }
            if let (Some((device, answers)), To::Device(to)) = (capture.as_mut(), transmit.to)
                && *device == to
            {
                answers.push(transmit.message);
                continue;
            }
            self.send(&transmit);
        }
    }

    /// Sends `transmit` on the links.
    fn send(&self, transmit: &rms_sync::Transmit) {
        let text = match serde_json::to_string(&transmit.message) {
            Ok(text) => text,
            Err(err) => {
                log::error!("cannot encode a {} message: {err}", transmit.message.kind());
                return;
            }
        };
        match transmit.to {
            To::Device(device) => {
                if !self.links.send_to(device, &text) {
                    log::debug!(
                        "no link to device {device} for a {} message",
                        transmit.message.kind()
                    );
                }
            }
            To::AllPeers => self.links.broadcast(&text),
        }
    }

    /// The journal verified at start (or its heads are due again): sign the heads that moved,
    /// and from now on every push, beginning with the one that waited.
    fn signer_ready(&mut self, signer: Arc<rms_security::signer::Signer>, now: Now) {
        self.sign_journal(&signer, now);
        if matches!(self.push_signer, PushSigner::Checking) {
            // A push held for a device that is no longer the master is dropped: the core pushes
            // again to the one it follows.
            if let Some(mut held) = self.held_push.take()
                && held.to
                    == To::Device(
                        self.node
                            .master_id()
                            .unwrap_or(self.node.config().device_id()),
                    )
                && let Message::Push { events, head, .. } = &mut held.message
            {
                *head = self.push_head(&signer, events);
                self.send(&held);
            }
            self.push_signer = PushSigner::Ready(signer);
        }
    }

    fn sign_journal(&self, signer: &rms_security::signer::Signer, now: Now) {
        let device_id = self.node.config().device_id();
        let signed = self
            .store
            .write(|tx| rms_storage::journal_heads::sign(tx, device_id, signer, now.wall_ms));
        if let Err(err) = signed {
            log::error!("cannot sign the journal's heads: {err}");
        }
    }

    /// This device's signature over the journal's hash of the last linked event of a push.
    fn push_head(
        &self,
        signer: &rms_security::signer::Signer,
        events: &[rms_domain::SyncEvent],
    ) -> Option<rms_domain::PushHead> {
        let seq = events.iter().rev().find_map(|e| e.chain.as_ref())?.seq;
        let device_id = self.node.config().device_id();
        let at_ms = self.clock.now_ms();
        let signed = self
            .store
            .read(|c| rms_storage::journal_heads::push_head(c, device_id, signer, seq, at_ms));
        signed.unwrap_or_else(|err| {
            log::error!("cannot sign a push: {err}");
            None
        })
    }

    fn after_input(&mut self, now: Now) {
        self.drain_transmits(None);
        let synced = self.pass_notifications_on();
        if std::mem::take(&mut self.trust_dirty)
            && let Err(err) = self
                .trust_watch
                .refresh(&self.store, &self.trust, &self.links)
        {
            log::error!("cannot read the trust list: {err}");
            self.trust_dirty = true;
        }
        // A device that holds its own revocation never leads again (`SyncNode::revoked`).
        if !self.node.is_revoked() && self.trust.is_revoked(&self.trust.me()) {
            log::error!("this device's certificate is revoked: it steps out of its store");
            if let Err(err) = self.node.revoked(now) {
                log::error!("cannot step down: {err}");
            }
            self.drain_transmits(None);
        }
        self.waiters.retain(|_, waiter| !waiter.is_closed());
        let roster = self.roster(now);
        for (info, _, _) in &roster {
            self.connector
                .ensure_device(&info.advertise, info.device_id);
        }
        self.persist_roster(&roster);
        self.publish_status(roster, synced, now);
    }

    /// Hands the core's notifications to the subscribers and answers the verdicts waited for;
    /// after a verdict or new log entries the trust list is to be read again, and after a role
    /// change no verdict is waited for any more. True when this device's copy of the master log
    /// grew.
    fn pass_notifications_on(&mut self) -> bool {
        let mut synced = false;
        while let Some(notification) = self.node.poll_notification() {
            // `send` fails only when nobody subscribed: then nobody is to be told.
            let _ = self.notifications.send(notification.clone());
            match notification {
                Notification::Decided(verdict) => {
                    // A verdict on one of this device's trust changes changes its list.
                    self.trust_dirty = true;
                    if let Some(waiter) = self.waiters.remove(&verdict.event_id) {
                        let _ = waiter.send(verdict);
                    }
                }
                Notification::RoleChanged { role, epoch } => {
                    log::info!(
                        "now {} in epoch {}",
                        role.as_str(),
                        epoch.map_or_else(|| "-".into(), |e| e.to_string())
                    );
                    // Waiters for verdicts from a master that is gone answer 202 on their own.
                    self.waiters.clear();
                }
                Notification::LogAdvanced { log_head } => {
                    synced = true;
                    self.trust_dirty = true;
                    let master_head = self.node.master_log_head();
                    if log_head < master_head {
                        log::info!("catching up with the master log: {log_head} of {master_head}");
                    }
                }
            }
        }
        synced
    }

    /// The other devices the core knows: each with whether it was heard within the master
    /// timeout, and when it was last heard (wall ms), as the status shows them.
    fn roster(&self, now: Now) -> Vec<(PeerInfo, bool, Option<u64>)> {
        let me = self.node.config().device_id();
        let live: Vec<DeviceId> = self
            .node
            .live_peers(now)
            .into_iter()
            .map(|(info, _, _)| info.device_id)
            .collect();
        let roster: Vec<(PeerInfo, bool, Option<u64>)> = self
            .node
            .roster()
            .into_iter()
            .filter(|(info, _)| info.device_id != me)
            .map(|(info, heard)| {
                let online = live.contains(&info.device_id);
                let last_seen =
                    heard.map(|mono| now.wall_ms.saturating_sub(now.mono_ms.saturating_sub(mono)));
                (info, online, last_seen)
            })
            .collect();
        roster
    }

    /// Publishes the sync state after an input (`synced`: the log grew, which on a client is
    /// its last sync) and bumps the status page's change counter.
    fn publish_status(&self, roster: Vec<(PeerInfo, bool, Option<u64>)>, synced: bool, now: Now) {
        let (node, links) = (&self.node, &self.links);
        self.status.update(|status| {
            status.role = Some(node.role());
            status.joining = node.joining();
            status.epoch = node.epoch();
            status.master_id = node.master_id();
            status.log_head = node.log_head();
            status.roster = roster;
            status.connected = links.connected();
            status.peer_log_heads = node.peer_log_heads().into_iter().collect();
            if synced && node.role() == Role::Client {
                status.last_sync_at_ms = Some(now.wall_ms);
            }
            status
                .changes
                .send_modify(|version| *version = version.wrapping_add(1));
        });
    }
}

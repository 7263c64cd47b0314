//! The driver's inputs and the handle that queues them: the leaf that links, the connector, the
//! background tasks and the API share with the driver thread, so that none of them imports
//! another. Of this crate it imports only the leaf that rate-limits refusals and alarms
//! ([`crate::audit_gate`]): every one of them passes it here, on its way to the audit log.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use rms_domain::{DeviceId, Fingerprint, Role};
use rms_storage::StorageError;
use rms_storage::local::{Command, Recorded};
use rms_sync::{HandoverError, Message, Verdict};
use tokio::sync::oneshot;

use crate::audit_gate::{AuditGate, Subject};

/// A link's number in the driver's table of links.
pub type LinkId = u64;

/// Inputs waiting for the driver before new ones are refused (the node is overloaded).
pub const INPUT_QUEUE_MAX: usize = 8192;

/// One thing for the driver thread to do, queued through a [`Driver`]. The driver takes them in
/// order, one at a time; every write of a running node is one of them.
pub enum Input {
    /// A message from a peer.
    Net {
        /// The device the link belongs to (as its certificate and session proved it).
        from: DeviceId,
        /// The message as it came off the link.
        message: Message,
        /// A push's hashes and signature, worked out in the link's task as it arrived (issue
        /// #17), so that the driver thread does not.
        prehashed: Option<rms_storage::chain_check::Prehashed>,
    },
    /// A link this node dialed came up: our heartbeat goes out on it first, then anything else.
    LinkUp {
        /// The link that came up, in the driver's table of links.
        link: LinkId,
    },
    /// A link sent something refused before it reached the core (the link is closed): audited.
    LinkRefused {
        /// The device at the link's other end, if its session got as far as saying.
        from: Option<DeviceId>,
        /// The reason, a short fixed name the audit log keeps (e.g. `bad_message`).
        why: &'static str,
        /// What was refused, as the audit entry's details.
        details: serde_json::Value,
    },
    /// A local write (all writes of the node go through the driver).
    Local {
        /// The write.
        command: Command,
        /// Gets the committed write, or why it wrote nothing.
        reply: oneshot::Sender<Result<LocalDone, StorageError>>,
    },
    /// A message over the REST fallback; the reply carries what the core answers to `from`.
    Rest {
        /// The device that posted it (its certificate proved it on the store port).
        from: DeviceId,
        /// The posted message.
        message: Message,
        /// Gets the core's answers to `from`, this node's heartbeat last.
        reply: oneshot::Sender<Vec<Message>>,
    },
    /// Hand the master role to another device (this node must be master).
    Handover {
        /// The device to become master.
        target: DeviceId,
        /// Gets the core's answer: the handover began, or why it cannot.
        reply: oneshot::Sender<Result<(), HandoverError<StorageError>>>,
    },
    /// An alarm raised outside the sync core (the head-office uplink): audited.
    Alarm {
        /// The alarm, a short fixed name the audit log keeps.
        why: &'static str,
        /// What raised it, as the audit entry's details.
        details: serde_json::Value,
    },
    /// The store port refused a certificate: audited, and an unknown one listed as pending.
    DeviceRefused(DeviceRefusal),
    /// Sign the journal's heads that moved, with this signer from now on (sent by
    /// `tasks::journal` every `tasks::SIGN_INTERVAL`).
    SignJournal(std::sync::Arc<rms_security::signer::Signer>),
    /// The journal did not verify at start: sign no more pushes (the master then refuses them
    /// and raises its alarm too; `docs/JOURNAL.md`).
    JournalBroken,
    /// Stop after the inputs queued before this one ([`Driver::stop`]).
    Stop,
}

/// A certificate the store port refused (see `api::store_port`).
#[derive(Debug, Clone)]
pub struct DeviceRefusal {
    /// The refused certificate's SHA-256 fingerprint.
    pub fingerprint: Fingerprint,
    /// The device id it claimed.
    pub claimed: Option<DeviceId>,
    /// Where it connected from.
    pub address: String,
    /// Why it was refused.
    pub why: Refused,
    /// For an unknown certificate: the name it gave, to list it as pending.
    pub pending_name: Option<String>,
}

/// Why the store port refused a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// Nobody trusts it yet (and it proved nothing): it is listed as pending.
    UnknownDevice,
    /// The certificate is on the store's trust list as revoked.
    Revoked,
    /// A trusted certificate claimed another device id than its own.
    DeviceIdMismatch,
    /// It claimed a device id that another trusted certificate holds.
    DeviceIdTaken,
    /// Its join was refused: the reason, for the log and audit (the joiner reads only
    /// `pairing_refused`).
    Pairing(rms_security::pairing::PairingRefused),
    /// The master (or this device) refused the trust change it asked for.
    Trust(rms_domain::RejectReason),
}

impl Refused {
    /// The refusal's fixed name, as the audit log and the refused device read it
    /// (`unknown_device`, `revoked`, ...; a pairing or trust refusal by its own code).
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::UnknownDevice => "unknown_device",
            Refused::Revoked => "revoked",
            Refused::DeviceIdMismatch => rms_sync::DEVICE_ID_MISMATCH,
            Refused::DeviceIdTaken => "device_id_taken",
            Refused::Pairing(refused) => refused.code(),
            Refused::Trust(reason) => reason.as_str(),
        }
    }

    /// Whether it means someone claims what is not theirs (an alarm), rather than a device
    /// nobody added yet.
    pub fn is_alarm(self) -> bool {
        self != Refused::UnknownDevice
    }
}

/// Why a request to the node did not complete (`api` maps each to an HTTP answer).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The driver's queue is full ([`INPUT_QUEUE_MAX`] inputs), or the driver stopped before it
    /// answered. Nothing was done; the request may be retried.
    #[error("the node is overloaded or stopping; retry shortly")]
    Busy,
    /// The write reached the database and failed there (refused, invalid, or SQLite).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The driver thread panicked (found when the node stops).
    #[error("a thread of the node panicked")]
    Panicked,
    /// The driver thread did not stop within this time after it was asked to.
    #[error("the sync driver did not stop within {0:?}")]
    StopTimedOut(std::time::Duration),
    /// A till write on a device that has not joined its store yet.
    #[error(
        "this device has not joined its store yet: run `rms-node pair` on a device of the store, \
         then `rms-node join CODE --peer <that device's store port>` here"
    )]
    Joining,
    /// A till write on a device whose certificate its store revoked.
    #[error(
        "this device's certificate was revoked by its store: what it records would never reach \
         the store; sell on another device (docs/OPERATIONS.md, \"Remove a device\")"
    )]
    Revoked,
}

/// A committed local write, and for a critical event on a client, where its verdict will come.
pub struct LocalDone {
    /// What the write recorded: the event, and the rows it changed.
    pub recorded: Recorded,
    /// This device's role when it wrote: [`Role::Master`] if the event was decided in the same
    /// transaction (it has a master-log entry), [`Role::Client`] otherwise.
    pub role: Role,
    /// On a client that knows its master, for a critical event (a sale): gets the master's
    /// verdict when it comes. `None` otherwise; dropped unanswered if the node stops first.
    pub verdict: Option<oneshot::Receiver<Verdict>>,
}

/// The handle the rest of the node uses to reach the driver thread.
#[derive(Clone, Debug)]
pub struct Driver {
    tx: SyncSender<Input>,
    gate: std::sync::Arc<AuditGate>,
}

impl Driver {
    /// Queues an input; false if the driver is gone or overloaded (the input is dropped, which
    /// the protocol tolerates for network messages).
    /// A refusal or an alarm ([`Input::LinkRefused`], [`Input::DeviceRefused`],
    /// [`Input::Alarm`]) beyond its rate limit ([`crate::audit_gate`]) is not queued, and counts
    /// as handled.
    pub fn send(&self, input: Input) -> bool {
        self.queue(input) != Queued::Dropped
    }

    /// Queues a refusal or an alarm; whether it will be audited (false when its rate limit
    /// held it back, or the driver is busy or gone).
    pub fn audit(&self, input: Input) -> bool {
        self.queue(input) == Queued::Waiting
    }

    /// The rate limits of refusals and alarms, and what they held back.
    pub fn audit_gate(&self) -> &AuditGate {
        &self.gate
    }

    fn queue(&self, input: Input) -> Queued {
        if !self.admits(&input) {
            return Queued::Gated;
        }
        match self.tx.try_send(input) {
            Ok(()) => Queued::Waiting,
            Err(TrySendError::Full(_)) => {
                log::warn!("the sync driver is overloaded; an input was dropped");
                Queued::Dropped
            }
            Err(TrySendError::Disconnected(_)) => Queued::Dropped,
        }
    }

    /// Whether the gate lets `input` through: every input that is not a refusal or an alarm,
    /// and those within their rate limits.
    fn admits(&self, input: &Input) -> bool {
        match input {
            Input::LinkRefused { from, why, .. } => {
                let subject = from.map_or(Subject::Node, Subject::Device);
                self.gate.admit(why, &[subject])
            }
            Input::DeviceRefused(refusal) => {
                let certificate = Subject::Certificate(refusal.fingerprint);
                match refusal.address.parse::<std::net::SocketAddr>() {
                    Ok(address) => {
                        let source = Subject::Source(address.ip());
                        self.gate
                            .admit(refusal.why.as_str(), &[certificate, source])
                    }
                    Err(_) => self.gate.admit(refusal.why.as_str(), &[certificate]),
                }
            }
            Input::Alarm { why, .. } => self.gate.admit(why, &[Subject::Node]),
            _ => true,
        }
    }
}

/// What became of an input given to [`Driver::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    /// In the driver's queue.
    Waiting,
    /// A refusal or an alarm beyond its rate limit: counted, not written.
    Gated,
    /// The driver is overloaded or gone.
    Dropped,
}

impl Driver {
    /// A local write through the driver (one transaction; on a client, pushed at once if
    /// critical). [`NodeError::Busy`] when the queue is full or the driver stopped before
    /// answering; the write's own refusal is [`NodeError::Storage`].
    pub async fn local_write(&self, command: Command) -> Result<LocalDone, NodeError> {
        let (reply, answer) = oneshot::channel();
        if !self.send(Input::Local { command, reply }) {
            return Err(NodeError::Busy);
        }
        Ok(answer.await.map_err(|_| NodeError::Busy)??)
    }

    /// Audits an alarm raised outside the sync core (through the driver, like every write);
    /// logged when the driver is busy or stopping.
    pub fn alarm(&self, why: &'static str, details: serde_json::Value) {
        if !self.send(Input::Alarm { why, details }) {
            log::error!("cannot audit an alarm (the node is busy or stopping): {why}");
        }
    }

    /// Queues an input made outside the sync core; logged when the driver is busy or stopping.
    pub fn send_or_log(&self, input: Input) {
        if !self.send(input) {
            log::warn!("an input for the driver was dropped (the node is busy or stopping)");
        }
    }

    /// Asks the driver to stop after the inputs queued before this one; waits for queue room
    /// (blocking: call it off the runtime).
    pub fn stop(&self) {
        let _ = self.tx.send(Input::Stop);
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Net { from, message, .. } => write!(f, "Net({from}, {})", message.kind()),
            Input::LinkUp { link } => write!(f, "LinkUp({link})"),
            Input::LinkRefused { from, why, .. } => write!(f, "LinkRefused({from:?}, {why})"),
            Input::Local { .. } => f.write_str("Local"),
            Input::Alarm { why, .. } => write!(f, "Alarm({why})"),
            Input::Rest { from, message, .. } => write!(f, "Rest({from}, {})", message.kind()),
            Input::Handover { target, .. } => write!(f, "Handover({target})"),
            Input::DeviceRefused(refusal) => {
                write!(f, "DeviceRefused({})", refusal.why.as_str())
            }
            Input::SignJournal(_) => f.write_str("SignJournal"),
            Input::JournalBroken => f.write_str("JournalBroken"),
            Input::Stop => f.write_str("Stop"),
        }
    }
}

/// The driver's input channel, made before the thread so that links and the connector can hold a
/// [`Driver`] while the thread starts.
pub fn channel() -> (Driver, Receiver<Input>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(INPUT_QUEUE_MAX);
    let gate = std::sync::Arc::default();
    (Driver { tx, gate }, rx)
}

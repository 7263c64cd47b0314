//! The driver's inputs and the handle that queues them: the leaf that links, the connector, the
//! background tasks and the API share with the driver thread, so that none of them imports
//! another. It imports nothing of this crate.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use rms_domain::{DeviceId, Fingerprint, Role};
use rms_storage::StorageError;
use rms_storage::local::{Command, Recorded};
use rms_sync::{HandoverError, Message, Verdict};
use tokio::sync::oneshot;

/// A link's number in the driver's table of links.
pub type LinkId = u64;

/// Inputs waiting for the driver before new ones are refused (the node is overloaded).
pub const INPUT_QUEUE_MAX: usize = 8192;

pub enum Input {
    /// A message from a peer.
    Net {
        from: DeviceId,
        message: Message,
        /// A push's hashes and signature, worked out in the link's task as it arrived (issue
        /// #17), so that the driver thread does not.
        prehashed: Option<rms_storage::chain_check::Prehashed>,
    },
    /// A link this node dialed came up: our heartbeat goes out on it first, then anything else.
    LinkUp {
        link: LinkId,
    },
    /// A link sent something refused before it reached the core (the link is closed): audited.
    LinkRefused {
        from: Option<DeviceId>,
        why: &'static str,
        details: serde_json::Value,
    },
    /// A local write (all writes of the node go through the driver).
    Local {
        command: Command,
        reply: oneshot::Sender<Result<LocalDone, StorageError>>,
    },
    /// A message over the REST fallback; the reply carries what the core answers to `from`.
    Rest {
        from: DeviceId,
        message: Message,
        reply: oneshot::Sender<Vec<Message>>,
    },
    Handover {
        target: DeviceId,
        reply: oneshot::Sender<Result<(), HandoverError<StorageError>>>,
    },
    /// An alarm raised outside the sync core (the head-office uplink): audited.
    Alarm {
        why: &'static str,
        details: serde_json::Value,
    },
    /// The store port refused a certificate: audited, and an unknown one listed as pending.
    DeviceRefused(DeviceRefusal),
    /// Sign the journal's heads that moved (`journal_sign.rs`).
    SignJournal(std::sync::Arc<rms_security::signer::Signer>),
    /// The journal did not verify at start: sign no more pushes (the master then refuses them
    /// and raises its alarm too; `docs/JOURNAL.md`).
    JournalBroken,
    Stop,
}

/// A certificate the store port refused (see `store_port`).
#[derive(Debug, Clone)]
pub struct DeviceRefusal {
    pub fingerprint: Fingerprint,
    /// The device id it claimed.
    pub claimed: Option<DeviceId>,
    /// Where it connected from.
    pub address: String,
    pub why: Refused,
    /// For an unknown certificate: the name it gave, to list it as pending.
    pub pending_name: Option<String>,
}

/// Why the store port refused a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    /// Nobody trusts it yet (and it proved nothing): it is listed as pending.
    UnknownDevice,
    Revoked,
    /// A trusted certificate claimed another device id than its own.
    DeviceIdMismatch,
    /// It claimed a device id that another trusted certificate holds.
    DeviceIdTaken,
    /// Its pairing code was wrong, or the window expired, used or locked.
    Pairing(rms_security::pairing::PairingRefused),
    /// The master (or this device) refused the trust change it asked for.
    Trust(rms_domain::RejectReason),
}

impl Refused {
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
    #[error("the node is overloaded or stopping; retry shortly")]
    Busy,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("a thread of the node panicked")]
    Panicked,
    #[error("the sync driver did not stop within {0:?}")]
    StopTimedOut(std::time::Duration),
    #[error(
        "this device has not joined its store yet: run `rms-node pair` on a device of the store, \
         then `rms-node join CODE --peer <that device's store port>` here"
    )]
    Joining,
    #[error(
        "this device's certificate was revoked by its store: what it records would never reach \
         the store; sell on another device (docs/OPERATIONS.md, \"Remove a device\")"
    )]
    Revoked,
}

/// A committed local write, and for a critical event on a client, where its verdict will come.
pub struct LocalDone {
    pub recorded: Recorded,
    pub role: Role,
    pub verdict: Option<oneshot::Receiver<Verdict>>,
}

/// The handle the rest of the node uses to reach the driver thread.
#[derive(Clone, Debug)]
pub struct Driver {
    tx: SyncSender<Input>,
}

impl Driver {
    /// Queues an input; false if the driver is gone or overloaded (the input is dropped, which
    /// the protocol tolerates for network messages).
    pub fn send(&self, input: Input) -> bool {
        match self.tx.try_send(input) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::warn!("the sync driver is overloaded; an input was dropped");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
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
    (Driver { tx }, rx)
}

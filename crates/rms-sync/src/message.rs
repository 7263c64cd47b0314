//! The sync protocol's messages. On the wire each is a JSON text message with a `"type"` field
//! (`"register"`, `"push"`, ...). Every message carries the sender's epoch, so a receiver can fence
//! off a deposed master (`stale_term`) and adopt a newer one.

use rms_domain::{
    DeviceId, Epoch, EventId, EventStatus, LogEntry, PushHead, RejectReason, Role, SyncEvent,
};
use serde::{Deserialize, Serialize};

use crate::pre_vote::LogPosition;

/// Most events in one push, and most entries in one answer to a pull (SPEC §4).
pub const BATCH_EVENTS_MAX: usize = 1000;
/// Most bytes of JSON events or entries in one message, well under the 1 MiB message limit
/// (room for the envelope): a batch stops at whichever limit comes first.
pub const BATCH_BYTES_MAX: usize = 768 * 1024;

/// What a device tells others about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerInfo {
    pub device_id: DeviceId,
    pub name: String,
    /// How peers reach it, e.g. `http://10.0.0.5:7878`.
    pub advertise: String,
    pub priority: i32,
}

/// The master's decision on one pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub event_id: EventId,
    /// `synced` (accepted) or `rejected`.
    pub status: EventStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_seq: Option<u64>,
}

impl Verdict {
    pub fn of(entry: &LogEntry) -> Verdict {
        Verdict {
            event_id: entry.event.event_id,
            status: entry.event.status,
            reason: entry.event.reason,
            master_seq: entry.event.master_seq,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// A client introduces itself to the master (and again after every reconnect or new epoch).
    Register {
        peer: PeerInfo,
        epoch: Option<Epoch>,
        log_head: u64,
    },
    /// The master's answer: its epoch and the roster it knows.
    RegisterAck {
        epoch: Epoch,
        roster: Vec<PeerInfo>,
        log_head: u64,
    },
    /// Every device to every peer, every heartbeat interval: who I am, what I think, how far I am.
    Heartbeat {
        peer: PeerInfo,
        epoch: Option<Epoch>,
        role: Role,
        log_head: u64,
        /// A master handing its role over names the target in every heartbeat until it ends, for
        /// operators and the status page; the target takes over only on `handover_granted`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handing_over_to: Option<DeviceId>,
        /// The master's signed head of its log chain (issue #17), so that each device checks its
        /// copy of the log against it. Added by the transport, which holds the key, to the first
        /// heartbeat after each signing; the core neither reads nor sets it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_chain: Option<PushHead>,
    },
    /// A client's own pending events, at most [`BATCH_EVENTS_MAX`], for the master to decide.
    Push {
        epoch: Option<Epoch>,
        events: Vec<SyncEvent>,
        /// The pusher's signature over the hash of its last linked event (issue #17), which the
        /// master checks with the events' links before deciding any of them. Added by the
        /// transport, which holds the device's key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<PushHead>,
    },
    /// The master's verdicts, sent only after the commit that holds them.
    PushAck {
        epoch: Epoch,
        verdicts: Vec<Verdict>,
    },
    /// Master-log entries after `since`; `since_epoch` is the epoch of the asker's entry at
    /// `since`, so the master can tell whether the two logs agree up to there.
    Pull {
        epoch: Option<Epoch>,
        since: u64,
        since_epoch: Option<Epoch>,
    },
    /// The answer to a pull: entries after `since` (at most [`BATCH_EVENTS_MAX`]), or, when the
    /// logs disagree, `truncate_to`: undo your log after this position and ask again.
    Events {
        epoch: Epoch,
        /// The pull this answers (`since`, `since_epoch` echoed), so a late answer to an older
        /// pull is recognised and ignored.
        since: u64,
        since_epoch: Option<Epoch>,
        entries: Vec<LogEntry>,
        log_head: u64,
        truncate_to: Option<u64>,
    },
    /// The master's periodic broadcast of entries not broadcast yet.
    SyncUpdate {
        epoch: Epoch,
        entries: Vec<LogEntry>,
    },
    /// The master's immediate broadcast of a critical entry (stock at 0 or below, or a rejection).
    CriticalEvent { epoch: Epoch, entry: LogEntry },
    /// To the origin of a rejected event.
    Conflict {
        epoch: Epoch,
        event_id: EventId,
        reason: RejectReason,
    },
    /// A new master, to every device it can reach.
    MasterAnnounce { epoch: Epoch, url: String },
    /// A former master hands the new master the entries it decided that the new log lacks.
    Relay {
        epoch: Option<Epoch>,
        entries: Vec<LogEntry>,
    },
    /// The master asks `target` to take the role over once it has caught up to `log_head`.
    Handover {
        epoch: Epoch,
        target: DeviceId,
        log_head: u64,
    },
    /// The handover target has caught up to `log_head` and asks the master for the role.
    HandoverReady { epoch: Epoch, log_head: u64 },
    /// The master's answer to `handover_ready`: it stepped down at `log_head` (it leads this
    /// epoch no more and decides nothing in it again), so the target may take over. Only this
    /// message lets a target take over: a handover whose master gave up cannot be carried out
    /// late, however late its messages arrive.
    HandoverGranted { epoch: Epoch, log_head: u64 },
    /// `--reclaim`: a device that outranks the master and has caught up asks it to hand the role
    /// back (the master answers with a `handover`, and decides nothing new meanwhile).
    HandoverRequest { epoch: Epoch },
    /// A device that lost its master asks whether the receiver still hears it, before it holds an
    /// election (the pre-vote, `crate::pre_vote`).
    PreVote { epoch: Option<Epoch>, log_head: u64 },
    /// The answer to a pre-vote: how long ago the sender heard the master of its epoch, if it
    /// did within the master timeout (`0`: it is the master), how far its log is, and — when it
    /// does not hear the master — its own events that master accepted but its log lacks (at most
    /// [`BATCH_EVENTS_MAX`]), for the election's winner to decide first.
    PreVoteReply {
        epoch: Option<Epoch>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        master_heard_ms_ago: Option<u64>,
        position: LogPosition,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        accepted_unlogged: Vec<SyncEvent>,
    },
    /// A refusal, with its [`ErrorCode`] and a text for people.
    Error {
        epoch: Option<Epoch>,
        code: ErrorCode,
        message: String,
    },
}

/// Why a peer refused a message (`error.code` on the wire, a snake_case string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ErrorCode {
    /// The receiver's epoch is newer than the sender's: adopt it.
    StaleTerm,
    /// The receiver is not the master.
    NotMaster,
    /// The master is handing its role over: push again to the next one.
    HandingOver,
    /// Refused for another reason (forged, not introduced, ...); the message says which.
    Refused,
    /// A code this version does not know (a newer peer's), kept as it was sent.
    Other(String),
}

impl ErrorCode {
    /// The wire form.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::StaleTerm => "stale_term",
            ErrorCode::NotMaster => "not_master",
            ErrorCode::HandingOver => "handing_over",
            ErrorCode::Refused => "refused",
            ErrorCode::Other(code) => code,
        }
    }
}

impl From<String> for ErrorCode {
    fn from(code: String) -> ErrorCode {
        match code.as_str() {
            "stale_term" => ErrorCode::StaleTerm,
            "not_master" => ErrorCode::NotMaster,
            "handing_over" => ErrorCode::HandingOver,
            "refused" => ErrorCode::Refused,
            _ => ErrorCode::Other(code),
        }
    }
}

impl From<ErrorCode> for String {
    fn from(code: ErrorCode) -> String {
        code.as_str().to_owned()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Message {
    /// The sender's epoch.
    pub fn epoch(&self) -> Option<Epoch> {
        match self {
            Message::Register { epoch, .. }
            | Message::Heartbeat { epoch, .. }
            | Message::Push { epoch, .. }
            | Message::Pull { epoch, .. }
            | Message::Relay { epoch, .. }
            | Message::PreVote { epoch, .. }
            | Message::PreVoteReply { epoch, .. }
            | Message::Error { epoch, .. } => *epoch,
            Message::RegisterAck { epoch, .. }
            | Message::PushAck { epoch, .. }
            | Message::Events { epoch, .. }
            | Message::SyncUpdate { epoch, .. }
            | Message::CriticalEvent { epoch, .. }
            | Message::Conflict { epoch, .. }
            | Message::MasterAnnounce { epoch, .. }
            | Message::Handover { epoch, .. }
            | Message::HandoverReady { epoch, .. }
            | Message::HandoverGranted { epoch, .. }
            | Message::HandoverRequest { epoch } => Some(*epoch),
        }
    }

    /// The wire name (`"push"`, ...), for logs and audit details.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Register { .. } => "register",
            Message::RegisterAck { .. } => "register_ack",
            Message::Heartbeat { .. } => "heartbeat",
            Message::Push { .. } => "push",
            Message::PushAck { .. } => "push_ack",
            Message::Pull { .. } => "pull",
            Message::Events { .. } => "events",
            Message::SyncUpdate { .. } => "sync_update",
            Message::CriticalEvent { .. } => "critical_event",
            Message::Conflict { .. } => "conflict",
            Message::MasterAnnounce { .. } => "master_announce",
            Message::Relay { .. } => "relay",
            Message::Handover { .. } => "handover",
            Message::HandoverReady { .. } => "handover_ready",
            Message::HandoverGranted { .. } => "handover_granted",
            Message::HandoverRequest { .. } => "handover_request",
            Message::PreVote { .. } => "pre_vote",
            Message::PreVoteReply { .. } => "pre_vote_reply",
            Message::Error { .. } => "error",
        }
    }
}

/// The longest prefix of `items` whose JSON fits in [`BATCH_BYTES_MAX`], and at least one item:
/// a batch must fit in one WebSocket message (1 MiB) whatever its events hold.
pub(crate) fn within_bytes<T: serde::Serialize>(mut items: Vec<T>) -> Vec<T> {
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
mod batch_tests {
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

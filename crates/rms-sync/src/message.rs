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

/// What a device tells others about itself: in its heartbeats and registrations, and, for every
/// device of the store, in a master's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerInfo {
    /// The device's id in its store (never 0): the origin of its events and its place in rank
    /// ties.
    pub device_id: DeviceId,
    /// A name for people (the status page, the audit log), e.g. `till 5`; never matched on.
    pub name: String,
    /// How peers reach it, e.g. `http://10.0.0.5:7878`.
    pub advertise: String,
    /// The device's rank in elections and for `--reclaim`: among equally complete logs the
    /// higher priority wins, then the lower device id (SPEC §6).
    pub priority: i32,
}

/// The master's decision on one pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// The decided event: its origin device and that device's sequence number.
    pub event_id: EventId,
    /// `synced` (accepted) or `rejected`.
    pub status: EventStatus,
    /// Why the event was rejected; `None` for an accepted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// The event's position in the master log; `None` for an event refused without a log
    /// entry (it breaks the data rules, or reuses a logged event id with other content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_seq: Option<u64>,
}

impl Verdict {
    /// The verdict a log entry records on its event.
    pub fn of(entry: &LogEntry) -> Verdict {
        Verdict {
            event_id: entry.event.event_id,
            status: entry.event.status,
            reason: entry.event.reason,
            master_seq: entry.event.master_seq,
        }
    }
}

/// One message of the sync protocol between the devices of a store; the JSON of each is
/// `docs/API.md`'s WebSocket section, what it means is `docs/SYNC.md`.
///
/// Every message carries its sender's epoch (`None`: the sender knows none yet), and every
/// receiver applies the epoch rules before anything else: a newer epoch is adopted at once (a
/// master steps down), and a message of an older one is answered with an [`Message::Error`]
/// `stale_term` (unless it is an error itself) and, unless it only tells who is alive
/// (heartbeat, register, pre-vote and its reply), refused. `log_head` is always the position of the last entry of the sender's copy
/// of the master log (0: it is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// A client introduces itself to the master of its epoch: when it starts following that
    /// master, and again at each of its ticks until a [`Message::RegisterAck`] comes. The master
    /// audits the registration and answers `register_ack`; a device that is not master answers
    /// with its heartbeat; a `peer` that is not the sender raises an alarm.
    Register {
        /// The sender's own description (its device id must be the sender's).
        peer: PeerInfo,
        /// The epoch whose master the sender registers with.
        epoch: Option<Epoch>,
        /// How far the sender's copy of the master log is.
        log_head: u64,
    },
    /// The master's answer to a [`Message::Register`]. A client of that master counts itself
    /// registered (from now on it vouches for the master in a pre-vote), learns the roster's
    /// devices ([`crate::SyncNode::roster`]), and notes how far the master's log is.
    RegisterAck {
        /// The master's epoch.
        epoch: Epoch,
        /// Every device the master knows, the master included.
        roster: Vec<PeerInfo>,
        /// How far the master's log is.
        log_head: u64,
    },
    /// Every device to every peer, every heartbeat interval (and at once when it becomes
    /// master): who it is, which epoch it is in, its role and how far its log is. A receiver
    /// notes the sender alive and its description. A client hearing the master of its epoch
    /// this way follows it (registering and pulling if it did not follow it yet), and, once its
    /// log is known to agree, pulls when the master's log is ahead of its own.
    Heartbeat {
        /// The sender's own description.
        peer: PeerInfo,
        /// The sender's epoch.
        epoch: Option<Epoch>,
        /// The sender's role in that epoch.
        role: Role,
        /// How far the sender's copy of the master log is.
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
    /// A client's own pending events, oldest first, to its master once its log is known to
    /// agree with the master's: at most [`BATCH_EVENTS_MAX`] and [`BATCH_BYTES_MAX`], one push
    /// in flight, every sync interval, at once after a critical local write (after every one
    /// with eager sync), and again when a `push_ack` leaves events pending. The master decides
    /// the events (with the pushes that arrived together, in one commit), then answers
    /// `push_ack`. Events of another device are refused with an alarm (`error` `refused`) and
    /// not decided; a chain or signature that does not verify gets the whole push refused that
    /// way, and no `push_ack`. A master handing its role over answers `error` `handing_over`, a
    /// device that is not master `not_master`.
    Push {
        /// The epoch whose master the events are for.
        epoch: Option<Epoch>,
        /// The sender's own events, pending, in its sequence order.
        events: Vec<SyncEvent>,
        /// The pusher's signature over the hash of its last linked event (issue #17), which the
        /// master checks with the events' links before deciding any of them. Added by the
        /// transport, which holds the device's key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<PushHead>,
    },
    /// The master's verdicts on a push or a relay, sent only after the commit that holds them.
    /// A client of that master records the verdicts on its own events (one commit, then one
    /// [`crate::Notification::Decided`] each), forgets the relayed entries it acknowledges, and
    /// pushes again if events are still pending.
    PushAck {
        /// The master's epoch.
        epoch: Epoch,
        /// One verdict per event decided (the pusher's own, or the valid relayed entries), in
        /// the order they were decided.
        verdicts: Vec<Verdict>,
    },
    /// A client asks its master for the log after `since`: when it starts following, until a
    /// pull succeeded in the epoch, when a heartbeat or broadcast shows it behind, after a
    /// truncation, while it catches up, and every sync interval once the last pull is older
    /// than the master timeout. The master answers [`Message::Events`]; a device that is not
    /// master answers `error` `not_master`.
    Pull {
        /// The epoch whose master is asked.
        epoch: Option<Epoch>,
        /// The asker's log head: the entries after it are wanted.
        since: u64,
        /// The epoch of the asker's entry at `since` (`None` when its log is empty), so the
        /// master can tell whether the two logs agree up to there.
        since_epoch: Option<Epoch>,
    },
    /// The master's answer to a [`Message::Pull`]: the entries after `since`, or, when the logs
    /// disagree, `truncate_to`. The client acts on it only if its log still ends at `since` with
    /// an entry of `since_epoch`: then it truncates and pulls again, or applies the entries that
    /// continue its log (from now on it applies broadcasts too) and pulls again while behind;
    /// otherwise it pulls again.
    Events {
        /// The master's epoch.
        epoch: Epoch,
        /// The pull this answers (`since`, `since_epoch` echoed), so a late answer to an older
        /// pull is recognised and ignored.
        since: u64,
        /// The `since_epoch` of the pull this answers.
        since_epoch: Option<Epoch>,
        /// The master-log entries after `since`, in order: at most [`BATCH_EVENTS_MAX`] and
        /// [`BATCH_BYTES_MAX`]; empty when `truncate_to` is set.
        entries: Vec<LogEntry>,
        /// How far the master's log is (the client pulls again while it is behind it).
        log_head: u64,
        /// The logs disagree at `since`: the asker undoes its log after this position (the last
        /// at which the two logs can agree) and asks again.
        truncate_to: Option<u64>,
    },
    /// The master to every peer: the entries not broadcast yet, continuing the last broadcast
    /// (every sync interval; with eager sync right after the commit that logged them, at most
    /// every [`crate::EAGER_BROADCAST_GAP_MS`]). A client of that master whose log is known to
    /// agree applies them when they continue its log, and pulls when they leave a gap.
    SyncUpdate {
        /// The master's epoch.
        epoch: Epoch,
        /// Master-log entries, in order, at most [`BATCH_EVENTS_MAX`] and [`BATCH_BYTES_MAX`].
        entries: Vec<LogEntry>,
    },
    /// The master's immediate broadcast, after its commit, of an entry that cannot wait (a
    /// critical event, such as stock at 0 or below; or a rejection) and that no `sync_update`
    /// carried. Received as a [`Message::SyncUpdate`] of one entry.
    CriticalEvent {
        /// The master's epoch.
        epoch: Epoch,
        /// The entry.
        entry: LogEntry,
    },
    /// The master to the origin of an event it rejected, after the commit. The origin audits it
    /// (the verdict itself comes with the `push_ack` or the log entry).
    Conflict {
        /// The master's epoch.
        epoch: Epoch,
        /// The rejected event, one of the receiver's own.
        event_id: EventId,
        /// Why it was rejected.
        reason: RejectReason,
    },
    /// A device that has just become master (elected, handed the role, or alone), to every
    /// peer, after its epoch is persisted. A receiver adopts the epoch if it is newer, and a
    /// client follows the new master (registers and pulls). An announce in another device's
    /// name is forged: refused with `error` `refused`, audited, and its epoch not adopted.
    MasterAnnounce {
        /// The new master's epoch; its `master_id` must be the sender.
        epoch: Epoch,
        /// The new master's advertise URL.
        url: String,
    },
    /// A client to its master, once its log agrees with the master's: entries of other devices
    /// that an earlier master accepted and that a truncation undid from the client's log (it
    /// may hold the only copy), a batch at a time, every sync interval until acknowledged. The
    /// master decides them like a push of events accepted before and answers `push_ack`; an
    /// entry that no earlier master can have accepted (a newer epoch, not accepted) raises an
    /// alarm.
    Relay {
        /// The epoch whose master the entries are for.
        epoch: Option<Epoch>,
        /// The undone entries, at most [`BATCH_EVENTS_MAX`] and [`BATCH_BYTES_MAX`].
        entries: Vec<LogEntry>,
    },
    /// The master asks `target` to take the role over once its log reaches `log_head`; from now
    /// on the master decides nothing new. A target that follows that master waits until it has
    /// caught up, then answers `handover_ready`, within a master timeout or not at all (a
    /// handover to a head behind what it heard of the master's log is stale and ignored).
    Handover {
        /// The master's epoch.
        epoch: Epoch,
        /// The device to take the role over.
        target: DeviceId,
        /// The master's final log head in this epoch: the target's log must reach it.
        log_head: u64,
    },
    /// The handover target has caught up to `log_head` and asks the master for the role (again
    /// each heartbeat interval until the grant comes). The master grants it only while it hands
    /// over to that target at that head; otherwise it audits the refusal.
    HandoverReady {
        /// The master's epoch, as the target knows it.
        epoch: Epoch,
        /// The target's log head.
        log_head: u64,
    },
    /// The master's answer to `handover_ready`: it stepped down at `log_head` (it leads this
    /// epoch no more and decides nothing in it again), so the target may take over. Only this
    /// message lets a target take over: a handover whose master gave up cannot be carried out
    /// late, however late its messages arrive. A target that follows that master takes the role
    /// in a new term at its next tick, if it still expects the handover, within its window, at
    /// that head; otherwise it audits the grant as ignored.
    HandoverGranted {
        /// The granting master's epoch.
        epoch: Epoch,
        /// The head at which the role was granted.
        log_head: u64,
    },
    /// `--reclaim`: a device that outranks the master, has caught up and has nothing pending asks
    /// it to hand the role back, at most once a master timeout. The master answers with a
    /// `handover` (and decides nothing new meanwhile) if the asker outranks it, else it audits
    /// the refusal.
    HandoverRequest {
        /// The master's epoch, as the asker knows it.
        epoch: Epoch,
    },
    /// A device that lost its master asks whether the receiver still hears it, before it holds an
    /// election (the pre-vote, `crate::pre_vote`): to every peer when the round starts, then to
    /// the awaited peers that have not answered, each heartbeat interval. Every device that is
    /// not revoked answers [`Message::PreVoteReply`].
    PreVote {
        /// The asker's epoch (its master is the one lost).
        epoch: Option<Epoch>,
        /// How far the asker's copy of the master log is.
        log_head: u64,
    },
    /// The answer to a pre-vote: how long ago the sender heard the master of its epoch, if it
    /// did within the master timeout (`0`: it is the master), how far its log is, and — when it
    /// does not hear the master — its own events that master accepted but its log lacks (at most
    /// [`BATCH_EVENTS_MAX`]), for the election's winner to decide first. An asker told that the
    /// master is heard ends its round and waits; otherwise it counts the answer, and elects
    /// once every awaited peer answered or the round's deadline passed.
    PreVoteReply {
        /// The sender's epoch: `master_heard_ms_ago` counts only if it is the asker's.
        epoch: Option<Epoch>,
        /// Milliseconds since the sender last heard its master; absent when not within the
        /// master timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        master_heard_ms_ago: Option<u64>,
        /// How complete the sender's log is.
        position: LogPosition,
        /// The sender's own events the lost master accepted that its log lacks (events of
        /// another device here raise an alarm and are dropped).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        accepted_unlogged: Vec<SyncEvent>,
    },
    /// A refusal of what the receiver sent, with its [`ErrorCode`] and a text for people. The
    /// receiver adopts the epoch it carries if newer; `not_master` from the master it follows
    /// makes it lose that master (and start a pre-vote). An error is never answered with an
    /// error.
    Error {
        /// The refusing device's epoch.
        epoch: Option<Epoch>,
        /// Why, for code to match on.
        code: ErrorCode,
        /// Why, for people (logs, the audit log); never matched on.
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

//! The SyncAuditLog: every fact the sync core audits, as a typed record, turned into an audit
//! entry (operation, outcome, event, details) in this one place.
//!
//! The details are the JSON that operators, the status page and the simulator read; their keys
//! and texts are part of the audit log's contract (docs/SYNC.md), so a record's rendering here
//! changes only with that document. The `REASON_*` and `WHY_*` constants are the texts other
//! code matches on.

use rms_domain::{
    AuditEntry, DeviceId, Epoch, EventId, Hlc, Operation, Outcome, RejectReason, Role,
    rfc3339_from_ms,
};
use serde_json::{Value, json};

use crate::message::PeerInfo;
use crate::pre_vote::LogPosition;

use super::Now;

/// Role change: a lone device restarting as master of the epoch it already leads.
pub const REASON_LONE_RESTART: &str = "restart of a lone master";
/// Role change: a master stopped for about a master timeout steps down.
pub const REASON_PAUSED: &str = "paused past the master timeout";
/// Role change: a master learned that its own certificate was revoked.
pub const REASON_REVOKED: &str = "revoked: this device is out of its store";
/// Role change: a master saw a newer epoch.
pub const REASON_NEWER_EPOCH: &str = "a newer epoch exists";
/// Election won by a device alone in its store.
pub const REASON_ALONE: &str = "alone: no peers configured";
/// Election won on the pre-vote's answers.
pub const REASON_ELECTED: &str =
    "election: the most complete log of the reachable devices, then the best rank";
/// Election won by a handover (requested, or asked for with `--reclaim`).
pub const REASON_HANDOVER: &str = "handover";
/// Role change: a master handing over granted the role to its caught-up target.
pub const REASON_HANDED_OVER: &str = "handed over: the target caught up and was granted the role";
/// An input came long after its timer: the node did not run.
pub const WHY_INPUT_GAP: &str = "input gap: the node did not run";

/// What one election looked at, as its audit records say.
#[derive(Debug, Clone)]
pub struct ElectionView {
    pub candidates: Vec<DeviceId>,
    pub expected_winner: DeviceId,
    pub lost_master: Option<DeviceId>,
    pub answered: Vec<DeviceId>,
    pub unanswered: Vec<DeviceId>,
    pub position: LogPosition,
}

/// A fact the sync core audits, by the part that audits it.
#[derive(Debug, Clone)]
pub enum Audited {
    Epoch(EpochFact),
    Election(ElectionFact),
    Handover(HandoverFact),
    Client(ClientFact),
    Master(MasterFact),
    PushAlarm(PushAlarm),
    Refusal(Refusal),
}

/// One audit row: operation, outcome, event, details.
type Row = (Operation, Outcome, Option<EventId>, Value);

impl Audited {
    /// The record as the audit log stores it (most facts are one row; a won election is two).
    fn render(self) -> Vec<Row> {
        match self {
            Audited::Epoch(fact) => fact.render(),
            Audited::Election(fact) => fact.render(),
            Audited::Handover(fact) => fact.render(),
            Audited::Client(fact) => fact.render(),
            Audited::Master(fact) => fact.render(),
            Audited::PushAlarm(fact) => fact.render(),
            Audited::Refusal(fact) => fact.render(),
        }
    }
}

/// Epochs and role changes.
#[derive(Debug, Clone)]
pub enum EpochFact {
    /// A message of an older epoch was refused.
    StaleRefused {
        kind: &'static str,
        from: DeviceId,
        theirs: Option<Epoch>,
        ours: Option<Epoch>,
    },
    /// A newer epoch was taken on.
    Adopted {
        newer: Epoch,
        previous: Option<Epoch>,
        via: &'static str,
    },
    RoleChanged {
        to: Role,
        reason: &'static str,
        epoch: Option<Epoch>,
    },
    /// The node did not run for `late_ms` (a pause).
    InputGap { late_ms: u64 },
}

impl From<EpochFact> for Audited {
    fn from(fact: EpochFact) -> Audited {
        Audited::Epoch(fact)
    }
}

/// Losing a master, the pre-vote and the election.
#[derive(Debug, Clone)]
pub enum ElectionFact {
    /// No heartbeat of the master (or it said it is not master).
    MasterLost {
        master: Option<DeviceId>,
        why: &'static str,
    },
    PreVoteAsked {
        lost_master: Option<DeviceId>,
        awaited: Vec<DeviceId>,
    },
    PreVoteRefused {
        by: DeviceId,
        lost_master: Option<DeviceId>,
        heard_ms_ago: u64,
    },
    /// An election another device is expected to win.
    ElectionHeld(ElectionView),
    /// This device takes the master role in `epoch`.
    Won {
        epoch: Epoch,
        reason: &'static str,
        election: Option<ElectionView>,
    },
    /// The expected winner did not take over in time.
    PassedOver { expected_winner: DeviceId },
}

impl From<ElectionFact> for Audited {
    fn from(fact: ElectionFact) -> Audited {
        Audited::Election(fact)
    }
}

/// Handover and `--reclaim`.
#[derive(Debug, Clone)]
pub enum HandoverFact {
    HandoverStarted {
        to: DeviceId,
        epoch: Epoch,
        log_head: u64,
    },
    HandoverCancelled {
        to: DeviceId,
    },
    /// The handover target dropped the handover: not caught up within its window, or it did
    /// not run for a while (`why`).
    HandoverNotTaken {
        log_head: u64,
        wanted: u64,
        why: &'static str,
    },
    /// The master granted the role to its caught-up target and stepped down.
    HandoverGranted {
        to: DeviceId,
        log_head: u64,
    },
    /// A `handover_ready` the master cannot grant (it is not handing over to the sender at
    /// that head).
    ReadyRefused {
        from: DeviceId,
        log_head: u64,
        why: &'static str,
    },
    /// A `handover_granted` this device does not act on (it dropped the handover, or its log
    /// is not at the granted head): the store elects a master instead.
    GrantIgnored {
        from: DeviceId,
        log_head: u64,
        why: &'static str,
    },
    /// A push or relay refused while handing over.
    RefusedHandingOver {
        what: &'static str,
        from: DeviceId,
    },
    /// A `handover_request` from a device that does not outrank the master.
    ReclaimRefused {
        from: DeviceId,
    },
}

impl From<HandoverFact> for Audited {
    fn from(fact: HandoverFact) -> Audited {
        Audited::Handover(fact)
    }
}

/// Most undone entries an audit row of a truncation names (the count is always there).
pub(super) const UNDONE_LISTED_MAX: usize = 1000;

/// The SyncManager of a client.
#[derive(Debug, Clone)]
pub enum ClientFact {
    PushSent {
        to: DeviceId,
        events: usize,
        first_ids: Vec<String>,
    },
    Acknowledged {
        from: DeviceId,
        verdicts: usize,
        rejected: usize,
    },
    Truncated {
        keep: u64,
        head_was: u64,
    },
    /// The entries a truncation undid (issue #17: the audit says which), the first
    /// [`UNDONE_LISTED_MAX`] of them by position.
    Undone {
        keep: u64,
        entries: Vec<(u64, String)>,
        count: usize,
    },
    Applied {
        via: &'static str,
        from_seq: u64,
        to_seq: u64,
        entries: usize,
    },
    /// The master rejected one of this device's events.
    ConflictHeard {
        event_id: EventId,
        reason: RejectReason,
        master: DeviceId,
    },
}

impl From<ClientFact> for Audited {
    fn from(fact: ClientFact) -> Audited {
        Audited::Client(fact)
    }
}

/// The SyncManager of a master and its SyncTasks.
#[derive(Debug, Clone)]
pub enum MasterFact {
    Registered {
        device: PeerInfo,
        term: rms_domain::Term,
    },
    PushReceived {
        from: DeviceId,
        events: usize,
        logged: usize,
        replayed: Vec<String>,
    },
    /// Entries broadcast as `sync_update`.
    Broadcast { from_seq: u64, to_seq: u64 },
    /// An entry broadcast at once (critical, or a rejection).
    BroadcastCritical { event_id: EventId, seq: u64 },
    /// An event the resolver rejected: audited as a conflict and as a rejection.
    Rejected {
        event_id: EventId,
        reason: RejectReason,
        origin: DeviceId,
        seq: u64,
        kind: &'static str,
    },
    /// A rejection an earlier master did not make: the event was accepted before, and is kept.
    Kept {
        event_id: EventId,
        rule: Option<RejectReason>,
        origin: DeviceId,
        seq: u64,
    },
}

impl From<MasterFact> for Audited {
    fn from(fact: MasterFact) -> Audited {
        Audited::Master(fact)
    }
}

/// What a master's SyncTasks find wrong with one pushed event: alarms.
#[derive(Debug, Clone)]
pub enum PushAlarm {
    /// A pushed event that breaks the data rules: never logged.
    InvalidEvent {
        event_id: EventId,
        from: DeviceId,
        field: String,
        message: String,
    },
    /// A pushed event id that was logged with other content: never logged.
    EventIdReused { event_id: EventId, logged_seq: u64 },
    /// An event stamped too far in the future: its clock is not merged.
    UntrustedClock {
        event_id: EventId,
        hlc: Hlc,
        now_ms: u64,
        from: DeviceId,
    },
}

impl From<PushAlarm> for Audited {
    fn from(fact: PushAlarm) -> Audited {
        Audited::PushAlarm(fact)
    }
}

/// What a peer sent that no honest peer sends, and what the driver refused.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// A peer sent what no honest peer sends.
    Alarm {
        from: DeviceId,
        why: &'static str,
        details: Value,
    },
    ForgedAnnounce {
        from: DeviceId,
        theirs: Epoch,
        ours: Option<Epoch>,
    },
    /// The driver refused what a link sent before it reached the core.
    LinkRefused {
        from: Option<DeviceId>,
        why: String,
        details: Value,
    },
}

impl From<Refusal> for Audited {
    fn from(fact: Refusal) -> Audited {
        Audited::Refusal(fact)
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Master => "master",
        Role::Client => "client",
    }
}

fn election_details(view: &ElectionView) -> serde_json::Map<String, Value> {
    let details = json!({ "candidates": view.candidates, "expected_winner": view.expected_winner, "lost_master": view.lost_master, "answered": view.answered, "unanswered": view.unanswered, "position": view.position });
    match details {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

impl EpochFact {
    fn render(self) -> Vec<Row> {
        use Operation as Op;
        use Outcome as Out;
        let (op, outcome, event, details) = match self {
            EpochFact::StaleRefused {
                kind,
                from,
                theirs,
                ours,
            } => (
                Op::Error,
                Out::Rejected,
                None,
                json!({ "refused": kind, "from": from, "their_epoch": theirs, "our_epoch": ours }),
            ),
            EpochFact::Adopted {
                newer,
                previous,
                via,
            } => (
                Op::Election,
                Out::Ok,
                None,
                json!({ "adopted": newer, "previous": previous, "via": via }),
            ),
            EpochFact::RoleChanged { to, reason, epoch } => {
                let from = match to {
                    Role::Master => Role::Client,
                    Role::Client => Role::Master,
                };
                let details = json!({ "from": role_name(from), "to": role_name(to), "reason": reason, "epoch": epoch });
                (Op::RoleChange, Out::Ok, None, details)
            }
            EpochFact::InputGap { late_ms } => (
                Op::Error,
                Out::Error,
                None,
                json!({ "why": WHY_INPUT_GAP, "late_ms": late_ms }),
            ),
        };
        vec![(op, outcome, event, details)]
    }
}

impl ElectionFact {
    fn render(self) -> Vec<Row> {
        use Operation as Op;
        use Outcome as Out;
        let (op, outcome, event, details) = match self {
            ElectionFact::MasterLost { master, why } => (
                Op::HeartbeatLoss,
                Out::Error,
                None,
                json!({ "master": master, "why": why }),
            ),
            ElectionFact::PreVoteAsked {
                lost_master,
                awaited,
            } => (
                Op::Election,
                Out::Ok,
                None,
                json!({ "pre_vote": "asked", "lost_master": lost_master, "awaited": awaited }),
            ),
            ElectionFact::PreVoteRefused {
                by,
                lost_master,
                heard_ms_ago,
            } => {
                let details = json!({ "pre_vote": "refused", "by": by, "lost_master": lost_master, "why": "still hears the master", "heard_ms_ago": heard_ms_ago });
                (Op::Election, Out::Rejected, None, details)
            }
            ElectionFact::ElectionHeld(view) => (
                Op::Election,
                Out::Ok,
                None,
                Value::Object(election_details(&view)),
            ),
            ElectionFact::Won {
                epoch,
                reason,
                election,
            } => {
                let mut won = json!({ "won": epoch, "reason": reason });
                if let (Some(won), Some(view)) = (won.as_object_mut(), election) {
                    won.extend(election_details(&view));
                }
                // Winning is an election and a role change, audited together.
                let role =
                    json!({ "from": "client", "to": "master", "reason": reason, "epoch": epoch });
                return vec![
                    (Op::Election, Out::Ok, None, won),
                    (Op::RoleChange, Out::Ok, None, role),
                ];
            }
            ElectionFact::PassedOver { expected_winner } => (
                Op::Election,
                Out::Error,
                None,
                json!({ "expected_winner": expected_winner, "why": "did not take over in time" }),
            ),
        };
        vec![(op, outcome, event, details)]
    }
}

impl HandoverFact {
    fn render(self) -> Vec<Row> {
        use Operation as Op;
        use Outcome as Out;
        let (op, outcome, event, details) = match self {
            HandoverFact::HandoverStarted {
                to,
                epoch,
                log_head,
            } => (
                Op::Handover,
                Out::Ok,
                None,
                json!({ "to": to, "term": epoch.term, "log_head": log_head }),
            ),
            HandoverFact::HandoverCancelled { to } => (
                Op::Handover,
                Out::Error,
                None,
                json!({ "to": to, "why": "the target did not take over in time" }),
            ),
            HandoverFact::HandoverNotTaken {
                log_head,
                wanted,
                why,
            } => {
                let details = json!({ "handover": "not taken", "why": why, "log_head": log_head, "wanted": wanted });
                (Op::Handover, Out::Error, None, details)
            }
            HandoverFact::HandoverGranted { to, log_head } => (
                Op::Handover,
                Out::Ok,
                None,
                json!({ "granted": to, "log_head": log_head }),
            ),
            HandoverFact::ReadyRefused {
                from,
                log_head,
                why,
            } => {
                let details = json!({ "refused": "handover_ready", "from": from, "log_head": log_head, "why": why });
                (Op::Handover, Out::Rejected, None, details)
            }
            HandoverFact::GrantIgnored {
                from,
                log_head,
                why,
            } => {
                let details = json!({ "ignored": "handover_granted", "from": from, "log_head": log_head, "why": why });
                (Op::Handover, Out::Rejected, None, details)
            }
            HandoverFact::RefusedHandingOver { what, from } => (
                Op::Handover,
                Out::Rejected,
                None,
                json!({ "refused": what, "from": from, "why": "handing_over" }),
            ),
            HandoverFact::ReclaimRefused { from } => {
                let details = json!({ "refused": "handover_request", "from": from, "why": "does not outrank the master" });
                (Op::Handover, Out::Rejected, None, details)
            }
        };
        vec![(op, outcome, event, details)]
    }
}

impl ClientFact {
    fn render(self) -> Vec<Row> {
        use Operation as Op;
        use Outcome as Out;
        let (op, outcome, event, details) = match self {
            ClientFact::PushSent {
                to,
                events,
                first_ids,
            } => (
                Op::PushSent,
                Out::Ok,
                None,
                json!({ "to": to, "events": events, "first_ids": first_ids }),
            ),
            ClientFact::Acknowledged {
                from,
                verdicts,
                rejected,
            } => (
                Op::Ack,
                Out::Ok,
                None,
                json!({ "from": from, "verdicts": verdicts, "rejected": rejected }),
            ),
            ClientFact::Truncated { keep, head_was } => (
                Op::Pull,
                Out::Conflict,
                None,
                json!({ "keep": keep, "undo_after": keep, "head_was": head_was }),
            ),
            ClientFact::Undone {
                keep,
                entries,
                count,
            } => {
                let undone: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|(seq, id)| json!({ "master_seq": seq, "event_id": id }))
                    .collect();
                (
                    Op::Pull,
                    Out::Conflict,
                    None,
                    json!({ "undone_after": keep, "undone": undone, "undone_count": count }),
                )
            }
            ClientFact::Applied {
                via,
                from_seq,
                to_seq,
                entries,
            } => (
                Op::Pull,
                Out::Ok,
                None,
                json!({ "via": via, "from_seq": from_seq, "to_seq": to_seq, "entries": entries }),
            ),
            ClientFact::ConflictHeard {
                event_id,
                reason,
                master,
            } => (
                Op::Conflict,
                Out::Conflict,
                Some(event_id),
                json!({ "reason": reason, "master": master }),
            ),
        };
        vec![(op, outcome, event, details)]
    }
}

impl MasterFact {
    fn render(self) -> Vec<Row> {
        use Operation as Op;
        use Outcome as Out;
        let (op, outcome, event, details) = match self {
            MasterFact::Registered { device, term } => (
                Op::Registration,
                Out::Ok,
                None,
                json!({ "device": device, "term": term }),
            ),
            MasterFact::PushReceived {
                from,
                events,
                logged,
                replayed,
            } => {
                let details = json!({ "from": from, "events": events, "logged": logged, "replayed": replayed });
                (Op::PushReceived, Out::Ok, None, details)
            }
            MasterFact::Broadcast { from_seq, to_seq } => (
                Op::Broadcast,
                Out::Ok,
                None,
                json!({ "kind": "sync_update", "from_seq": from_seq, "to_seq": to_seq }),
            ),
            MasterFact::BroadcastCritical { event_id, seq } => (
                Op::Broadcast,
                Out::Ok,
                Some(event_id),
                json!({ "kind": "critical_event", "seq": seq }),
            ),
            MasterFact::Rejected {
                event_id,
                reason,
                origin,
                seq,
                kind,
            } => {
                let details =
                    json!({ "reason": reason, "origin": origin, "seq": seq, "kind": kind });
                // A conflict, and the rejection it led to.
                return vec![
                    (Op::Conflict, Out::Conflict, Some(event_id), details.clone()),
                    (Op::Rejection, Out::Rejected, Some(event_id), details),
                ];
            }
            MasterFact::Kept {
                event_id,
                rule,
                origin,
                seq,
            } => {
                let details = json!({ "kept": "accepted by another master before", "rule": rule, "origin": origin, "seq": seq });
                (Op::Conflict, Out::Conflict, Some(event_id), details)
            }
        };
        vec![(op, outcome, event, details)]
    }
}

impl PushAlarm {
    fn render(self) -> Vec<Row> {
        use Operation as Op;
        use Outcome as Out;
        let (op, outcome, event, details) = match self {
            PushAlarm::InvalidEvent {
                event_id,
                from,
                field,
                message,
            } => {
                let details = json!({ "why": "invalid event", "from": from, "field": field, "message": message });
                (Op::Alarm, Out::Rejected, Some(event_id), details)
            }
            PushAlarm::EventIdReused {
                event_id,
                logged_seq,
            } => {
                let details = json!({ "why": "event id reused with other content", "logged_seq": logged_seq });
                (Op::Alarm, Out::Rejected, Some(event_id), details)
            }
            PushAlarm::UntrustedClock {
                event_id,
                hlc,
                now_ms,
                from,
            } => (
                Op::Alarm,
                Out::Ok,
                Some(event_id),
                json!({ "hlc": hlc, "now_ms": now_ms, "from": from }),
            ),
        };
        vec![(op, outcome, event, details)]
    }
}

impl Refusal {
    fn render(self) -> Vec<Row> {
        use Operation as Op;
        use Outcome as Out;
        let (op, outcome, event, details) = match self {
            Refusal::Alarm { from, why, details } => (
                Op::Alarm,
                Out::Rejected,
                None,
                json!({ "from": from, "why": why, "details": details }),
            ),
            Refusal::ForgedAnnounce { from, theirs, ours } => {
                let details = json!({ "refused": "master_announce", "from": from, "why": "announce_for_another_device", "their_epoch": theirs, "our_epoch": ours });
                (Op::Error, Out::Rejected, None, details)
            }
            Refusal::LinkRefused { from, why, details } => (
                if why == crate::DEVICE_ID_MISMATCH {
                    Op::Alarm
                } else {
                    Op::Error
                },
                Out::Rejected,
                None,
                json!({ "from": from, "why": why, "details": details }),
            ),
        };
        vec![(op, outcome, event, details)]
    }
}

/// Turns audited facts into this device's audit entries.
#[derive(Debug, Clone, Copy)]
pub struct SyncAuditLog {
    device: DeviceId,
}

impl SyncAuditLog {
    pub fn new(device: DeviceId) -> SyncAuditLog {
        SyncAuditLog { device }
    }

    /// The entries of one audited fact (most facts are one entry; a won election is two).
    pub fn entries(
        &self,
        record: impl Into<Audited>,
        now: Now,
    ) -> impl Iterator<Item = AuditEntry> {
        let (device, at) = (self.device, rfc3339_from_ms(now.wall_ms));
        record
            .into()
            .render()
            .into_iter()
            .map(move |(operation, outcome, event_id, details)| AuditEntry {
                id: 0,
                at: at.clone(),
                operation,
                device_id: Some(device),
                user_id: None,
                event_id,
                outcome,
                details,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_won_election_is_an_election_and_a_role_change() {
        let two = DeviceId::new(2).expect("not 0");
        let log = SyncAuditLog::new(two);
        let epoch = Epoch {
            term: rms_domain::Term(3),
            master_id: two,
            master_priority: 1,
        };
        let record = ElectionFact::Won {
            epoch,
            reason: REASON_HANDOVER,
            election: None,
        };
        let now = Now {
            mono_ms: 0,
            wall_ms: 0,
        };
        let entries: Vec<AuditEntry> = log.entries(record, now).collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].operation, Operation::Election);
        assert_eq!(entries[0].details["reason"], REASON_HANDOVER);
        assert_eq!(entries[1].operation, Operation::RoleChange);
        assert_eq!(entries[1].details["to"], "master");
    }
}

//! The sync core's group commit, over the real repositories (an in-memory database): pushes a
//! master finds waiting together are decided as if one by one, in arrival order, with one commit.

use std::cell::Cell;
use std::rc::Rc;

use rms_domain::rules::Products;
use rms_domain::{
    DeviceId, Epoch, EventId, EventPayload, EventStatus, Hlc, LogEntry, RejectReason, SaleLine,
    SyncEvent, Term,
};
use rms_storage::StorageError;
use rms_sync::{Batch, Message, Persisted, SyncNode, SyncStore, To, Verdict};
use rms_transport::StoreAdapter;

use crate::fuzz::{core_with, now};

/// A store that counts its commits, and fails those that would log `poison` (a push whose
/// commit fails for a reason of its own).
struct Counting {
    inner: StoreAdapter,
    commits: Rc<Cell<usize>>,
    poison: Option<EventId>,
}

impl SyncStore for Counting {
    type Error = <StoreAdapter as SyncStore>::Error;

    fn persisted(&self) -> Result<Persisted, Self::Error> {
        self.inner.persisted()
    }
    fn pending(&self, limit: usize) -> Result<Vec<SyncEvent>, Self::Error> {
        self.inner.pending(limit)
    }
    fn accepted_unlogged(&self, limit: usize) -> Result<Vec<SyncEvent>, Self::Error> {
        self.inner.accepted_unlogged(limit)
    }
    fn pending_count(&self) -> Result<u64, Self::Error> {
        self.inner.pending_count()
    }
    fn entry(&self, event_id: &EventId) -> Result<Option<LogEntry>, Self::Error> {
        self.inner.entry(event_id)
    }
    fn entries(&self, event_ids: &[EventId]) -> Result<Vec<LogEntry>, Self::Error> {
        self.inner.entries(event_ids)
    }
    fn entry_at(&self, master_seq: u64) -> Result<Option<LogEntry>, Self::Error> {
        self.inner.entry_at(master_seq)
    }
    fn log_after(&self, since: u64, limit: usize) -> Result<Vec<LogEntry>, Self::Error> {
        self.inner.log_after(since, limit)
    }
    fn epoch_end(&self, epoch: &Epoch) -> Result<u64, Self::Error> {
        self.inner.epoch_end(epoch)
    }
    fn base_products(&self, skus: &[&str]) -> Result<Products, Self::Error> {
        self.inner.base_products(skus)
    }
    fn trust_list(&self) -> Result<rms_domain::TrustList, Self::Error> {
        self.inner.trust_list()
    }
    fn check_push(
        &self,
        from: rms_domain::DeviceId,
        events: &[SyncEvent],
        head: Option<&rms_domain::PushHead>,
    ) -> Result<Result<(), rms_domain::ChainBreak>, Self::Error> {
        self.inner.check_push(from, events, head)
    }
    fn commit(&mut self, batch: Batch) -> Result<Vec<LogEntry>, Self::Error> {
        self.commits.set(self.commits.get() + 1);
        if let Some(poison) = self.poison
            && batch.entries.iter().any(|e| e.event.event_id == poison)
        {
            return Err(StorageError::NotFound {
                what: format!("the test's poisoned event {poison}"),
            });
        }
        self.inner.commit(batch)
    }
}

/// A lone master (device 1) with "tea" at stock 1 and "soap" at 5, and its commit counter.
fn master() -> (SyncNode<Counting>, Rc<Cell<usize>>) {
    master_failing_on(None)
}

fn master_failing_on(poison: Option<EventId>) -> (SyncNode<Counting>, Rc<Cell<usize>>) {
    let commits = Rc::new(Cell::new(0));
    let counter = Rc::clone(&commits);
    let node = core_with(true, move |inner| Counting {
        inner,
        commits,
        poison,
    });
    (node, counter)
}

fn device(id: u16) -> DeviceId {
    DeviceId::new(id).expect("not zero")
}

fn sale(origin: u16, seq: u64, sku: &str) -> SyncEvent {
    let event_id = EventId {
        device_id: device(origin),
        seq,
    };
    SyncEvent {
        event_id,
        hlc: Hlc::new(now(1).wall_ms, 0),
        user_id: "cashier".into(),
        term: Term(1),
        critical: false,
        payload: EventPayload::SaleRecorded {
            sale_id: event_id.to_string(),
            lines: vec![SaleLine {
                sku: sku.into(),
                qty: 1,
                price_cents: 100,
            }],
        },
        status: EventStatus::Pending,
        reason: None,
        master_seq: None,
        created_at_ms: now(1).wall_ms,
        accepted_before: false,
        chain: None,
    }
}

fn push(node: &SyncNode<Counting>, events: Vec<SyncEvent>) -> Message {
    Message::Push {
        epoch: node.epoch(),
        events,
        head: None,
    }
}

/// The `push_ack`s the node sent, by device.
fn acks(node: &mut SyncNode<Counting>) -> Vec<(DeviceId, Vec<Verdict>)> {
    let mut acks = Vec::new();
    for transmit in rms_tests::drain("transmits", || node.poll_transmit()) {
        if let (To::Device(to), Message::PushAck { verdicts, .. }) = (transmit.to, transmit.message)
        {
            acks.push((to, verdicts));
        }
    }
    acks
}

#[test]
fn pushes_waiting_together_are_decided_in_arrival_order_in_one_commit() {
    let (mut node, commits) = master();
    let head = node.log_head();
    acks(&mut node);
    commits.set(0);
    // Devices 2 and 3 both sell the last tea; device 2's push arrived first.
    let first = push(&node, vec![sale(2, 1, "tea"), sale(2, 2, "soap")]);
    let second = push(&node, vec![sale(3, 1, "tea")]);
    node.handle_messages([(device(2), first), (device(3), second)], now(5))
        .expect("the group is decided");

    assert_eq!(commits.get(), 1, "one transaction for both pushes");
    let acks = acks(&mut node);
    assert_eq!(acks.len(), 2, "each pusher gets its own ack: {acks:?}");
    let (to, verdicts) = &acks[0];
    assert_eq!(*to, device(2));
    assert!(
        verdicts.iter().all(|v| v.status == EventStatus::Synced),
        "first come, first served: {verdicts:?}"
    );
    let (to, verdicts) = &acks[1];
    assert_eq!(*to, device(3));
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].status, EventStatus::Rejected);
    assert_eq!(verdicts[0].reason, Some(RejectReason::OutOfStock));

    let log = node.store().log_after(head, 100).expect("the log");
    let order: Vec<String> = log.iter().map(|e| e.event.event_id.to_string()).collect();
    assert_eq!(order, ["2-1", "2-2", "3-1"], "the log keeps arrival order");
    assert_eq!(node.log_head(), head + 3);
}

#[test]
fn a_push_repeated_inside_a_group_is_answered_again_and_logged_once() {
    let (mut node, commits) = master();
    let head = node.log_head();
    acks(&mut node);
    commits.set(0);
    let events = vec![sale(2, 1, "soap")];
    let (once, again) = (push(&node, events.clone()), push(&node, events));
    node.handle_messages([(device(2), once), (device(2), again)], now(5))
        .expect("the group is decided");

    assert_eq!(commits.get(), 1);
    let acks = acks(&mut node);
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].1, acks[1].1, "the replay gets the same verdicts");
    assert_eq!(acks[0].1[0].master_seq, Some(head + 1));
    assert_eq!(node.log_head(), head + 1, "logged once");
}

#[test]
fn a_message_between_pushes_splits_the_group() {
    let (mut node, commits) = master();
    acks(&mut node);
    commits.set(0);
    // A push in an older epoch is refused (and audited) between two good ones: the pushes around
    // it are decided in their own commits, in order.
    let stale = Message::Push {
        epoch: None,
        events: vec![sale(4, 1, "tea")],
        head: None,
    };
    let first = push(&node, vec![sale(2, 1, "tea")]);
    let last = push(&node, vec![sale(3, 1, "tea")]);
    node.handle_messages(
        [(device(2), first), (device(4), stale), (device(3), last)],
        now(5),
    )
    .expect("the messages are handled");

    assert_eq!(commits.get(), 3, "push, refusal, push");
    let acks = acks(&mut node);
    let statuses: Vec<(DeviceId, EventStatus)> =
        acks.iter().map(|(to, v)| (*to, v[0].status)).collect();
    assert_eq!(
        statuses,
        [
            (device(2), EventStatus::Synced),
            (device(3), EventStatus::Rejected)
        ]
    );
}

#[test]
fn an_event_id_the_database_cannot_hold_is_refused_and_its_group_answered() {
    // Any u64 parses as a sequence number; SQLite holds at most i64::MAX. Found by review: the
    // idempotency lookup failed on it, and with it the whole group, unanswered.
    let (mut node, _) = master();
    acks(&mut node);
    let huge = sale(2, u64::MAX, "soap");
    let (hostile, honest) = (
        push(&node, vec![huge]),
        push(&node, vec![sale(3, 1, "soap")]),
    );
    node.handle_messages([(device(2), hostile), (device(3), honest)], now(5))
        .expect("the group is decided");
    let acks = acks(&mut node);
    assert_eq!(acks.len(), 2, "both pushers are answered: {acks:?}");
    assert_eq!(acks[0].1[0].status, EventStatus::Rejected);
    assert_eq!(acks[0].1[0].reason, Some(RejectReason::Invalid));
    assert_eq!(acks[1].1[0].status, EventStatus::Synced);
}

#[test]
fn a_group_that_cannot_be_committed_is_decided_again_push_by_push() {
    let poison = EventId {
        device_id: device(3),
        seq: 1,
    };
    let (mut node, commits) = master_failing_on(Some(poison));
    let head = node.log_head();
    acks(&mut node);
    commits.set(0);
    let first = push(&node, vec![sale(2, 1, "soap")]);
    let poisoned = push(&node, vec![sale(3, 1, "soap")]);
    let last = push(&node, vec![sale(4, 1, "soap")]);
    let result = node.handle_messages(
        [(device(2), first), (device(3), poisoned), (device(4), last)],
        now(5),
    );

    assert!(result.is_err(), "the failure is reported");
    assert_eq!(commits.get(), 4, "the group, then each push alone");
    let answered: Vec<DeviceId> = acks(&mut node).into_iter().map(|(to, _)| to).collect();
    assert_eq!(
        answered,
        [device(2), device(4)],
        "only the poisoned push is unanswered"
    );
    let log = node.store().log_after(head, 100).expect("the log");
    let order: Vec<String> = log.iter().map(|e| e.event.event_id.to_string()).collect();
    assert_eq!(order, ["2-1", "4-1"]);
    assert_eq!(node.log_head(), head + 2);
}

/// Everything the node sent, in order.
fn sent(node: &mut SyncNode<Counting>) -> Vec<(To, Message)> {
    rms_tests::drain("transmits", || node.poll_transmit())
        .into_iter()
        .map(|t| (t.to, t.message))
        .collect()
}

/// The seqs of the broadcasts among `sent`: (`sync_update` or `critical_event`, seqs).
fn broadcasts(sent: &[(To, Message)]) -> Vec<(&'static str, Vec<u64>)> {
    sent.iter()
        .filter_map(|(to, message)| match (to, message) {
            (To::AllPeers, Message::SyncUpdate { entries, .. }) => {
                Some(("sync_update", entries.iter().map(LogEntry::seq).collect()))
            }
            (To::AllPeers, Message::CriticalEvent { entry, .. }) => {
                Some(("critical_event", vec![entry.seq()]))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_eager_master_broadcasts_a_decision_with_its_commit_and_its_own_writes_at_the_broadcast_timer()
{
    let (mut node, commits) = master();
    let head = node.log_head();
    sent(&mut node);
    // Alone, the master broadcast nothing. Device 2's first push makes it known: what was not
    // broadcast goes at the broadcast timer, due at once.
    let pushed = push(&node, vec![sale(2, 1, "soap")]);
    node.handle_messages([(device(2), pushed)], now(5))
        .expect("decided");
    assert!(broadcasts(&sent(&mut node)).is_empty());
    node.handle_timeout(now(5)).expect("the timer");
    let out = sent(&mut node);
    let all: Vec<u64> = (1..=head + 1).collect();
    assert_eq!(broadcasts(&out), [("sync_update", all)], "{out:?}");

    // Device 2's next push sells soap and the last tea (critical: the stock runs out).
    commits.set(0);
    let mut last_tea = sale(2, 3, "tea");
    last_tea.critical = true;
    let pushed = push(&node, vec![sale(2, 2, "soap"), last_tea]);
    node.handle_messages([(device(2), pushed)], now(6))
        .expect("decided");
    assert_eq!(
        commits.get(),
        1,
        "the broadcast's audit row goes with the decision"
    );
    let out = sent(&mut node);
    assert_eq!(
        broadcasts(&out),
        [("sync_update", vec![head + 2, head + 3])],
        "one sync_update in log order, the critical entry not sent twice: {out:?}"
    );
    let audited = node
        .store()
        .inner
        .store()
        .read(|conn| {
            let query = rms_storage::audit::AuditQuery {
                limit: 20,
                ..Default::default()
            };
            rms_storage::audit::query(conn, &query)
        })
        .expect("the audit log");
    assert!(
        audited
            .iter()
            .any(|a| a.operation == rms_domain::Operation::Broadcast
                && a.details["kind"] == "sync_update"
                && a.details["to_seq"] == head + 3),
        "{audited:?}"
    );
    assert_ne!(
        node.poll_timer().0,
        rms_sync::Timer::Broadcast,
        "nothing is left to broadcast"
    );

    // A write of the master's own: broadcast when the broadcast timer fires, not before.
    let store = std::sync::Arc::clone(node.store().inner.store());
    let command = rms_storage::local::Command::Sell(rms_domain::NewSale {
        lines: vec![rms_domain::NewSaleLine {
            sku: "soap".into(),
            qty: 1,
        }],
        user_id: "cashier".into(),
    });
    let recorded = store
        .write(|tx| {
            rms_storage::local::record(tx, rms_domain::Role::Master, now(6).wall_ms, command)
        })
        .expect("a sale");
    node.handle_local_write(&recorded.event, recorded.entry.as_ref(), now(7))
        .expect("the core takes the write");
    assert!(broadcasts(&sent(&mut node)).is_empty());
    let (timer, at) = node.poll_timer();
    assert_eq!(timer, rms_sync::Timer::Broadcast);
    assert!(
        at <= now(6).mono_ms + rms_sync::EAGER_BROADCAST_GAP_MS,
        "{at}"
    );
    node.handle_timeout(now(at)).expect("the timer");
    assert_eq!(
        broadcasts(&sent(&mut node)),
        [("sync_update", vec![head + 4])]
    );
}

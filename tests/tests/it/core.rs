//! The sync core's group commit, over the real repositories (an in-memory database): pushes a
//! master finds waiting together are decided as if one by one, in arrival order, with one commit.

use std::cell::Cell;
use std::rc::Rc;

use rms_domain::rules::Products;
use rms_domain::{
    DeviceId, Epoch, EventId, EventPayload, EventStatus, Hlc, LogEntry, RejectReason, SaleLine,
    SyncEvent, Term,
};
use rms_sync::{Batch, Message, Persisted, SyncNode, SyncStore, To, Verdict};
use rms_transport::StoreAdapter;

use crate::fuzz::{core_with, now};

/// A store that counts its commits.
struct Counting {
    inner: StoreAdapter,
    commits: Rc<Cell<usize>>,
}

impl SyncStore for Counting {
    type Error = <StoreAdapter as SyncStore>::Error;

    fn persisted(&self) -> Result<Persisted, Self::Error> {
        self.inner.persisted()
    }
    fn pending(&self, limit: usize) -> Result<Vec<SyncEvent>, Self::Error> {
        self.inner.pending(limit)
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
    fn commit(&mut self, batch: Batch) -> Result<Vec<LogEntry>, Self::Error> {
        self.commits.set(self.commits.get() + 1);
        self.inner.commit(batch)
    }
}

/// A lone master (device 1) with "tea" at stock 1 and "soap" at 5, and its commit counter.
fn master() -> (SyncNode<Counting>, Rc<Cell<usize>>) {
    let commits = Rc::new(Cell::new(0));
    let counter = Rc::clone(&commits);
    let node = core_with(true, move |inner| Counting { inner, commits });
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
    }
}

fn push(node: &SyncNode<Counting>, events: Vec<SyncEvent>) -> Message {
    Message::Push {
        epoch: node.epoch(),
        events,
    }
}

/// The `push_ack`s the node sent, by device.
fn acks(node: &mut SyncNode<Counting>) -> Vec<(DeviceId, Vec<Verdict>)> {
    let mut acks = Vec::new();
    while let Some(transmit) = node.poll_transmit() {
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

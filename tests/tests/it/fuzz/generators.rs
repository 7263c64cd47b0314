//! The input generators of the fuzz targets: JSON built from the protocol's own words, and
//! near-valid messages, events, log entries and verdicts whose fields come from small domains so
//! that they meet each other (and, now and then, from the edges: huge numbers, odd text).

use proptest::prelude::*;
use rms_domain::{
    DeviceId, Epoch, EventId, EventPayload, EventStatus, Hlc, LogEntry, Product, RejectReason,
    Role, SaleLine, SyncEvent, Term,
};
use rms_sync::{Message, PeerInfo, Verdict};
use serde_json::{Value, json};

/// Words of the protocol and the API, so that generated JSON often gets past the first checks.
const WORDS: &[&str] = &[
    "type",
    "epoch",
    "term",
    "master_id",
    "master_priority",
    "peer",
    "device_id",
    "name",
    "advertise",
    "priority",
    "log_head",
    "events",
    "event_id",
    "hlc",
    "wall_ms",
    "counter",
    "user_id",
    "critical",
    "payload",
    "kind",
    "sku",
    "qty",
    "lines",
    "status",
    "reason",
    "master_seq",
    "created_at_ms",
    "since",
    "since_epoch",
    "entries",
    "verdicts",
    "roster",
    "role",
    "target",
    "url",
    "code",
    "message",
    "entry",
    "truncate_to",
    "products",
    "stock",
    "price_cents",
    "version",
    "updated_at",
    "delta",
    "sale_id",
    "base_version",
    "forced",
    "accepted_before",
    "messages",
    "push",
    "register",
    "heartbeat",
    "pull",
    "relay",
    "master_announce",
    "handover",
    "sale_recorded",
    "product_created",
    "stock_adjusted",
    "product_updated",
    "pending",
    "synced",
    "rejected",
    "master",
    "client",
    "soap",
    "2-1",
    "1-1",
];

pub(super) fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

pub(super) fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3_i64..12).prop_map(Value::from),
        proptest::sample::select(vec![
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(-0.5),
            json!(1e300),
            json!(1_000_001),
            json!(253_402_300_800_000_u64),
        ]),
    ]
}

/// JSON made of the protocol's words: objects of up to six keys, nested three deep.
pub(super) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        word().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(word(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub(super) fn device() -> impl Strategy<Value = DeviceId> {
    (1_u16..6).prop_map(|d| DeviceId::new(d).expect("1..6 is a device id"))
}

/// Mostly the epoch of the fuzzed node's store (term 1, master 1), so that messages get past the
/// fencing; sometimes any other.
pub(super) fn epoch() -> impl Strategy<Value = Epoch> {
    let any_epoch = (0_u64..4, device(), -1_i32..2).prop_map(|(term, master_id, priority)| Epoch {
        term: Term(term),
        master_id,
        master_priority: priority,
    });
    prop_oneof![3 => Just(ours()), 1 => any_epoch]
}

/// The epoch of the fuzzed node's store: term 1, master 1.
fn ours() -> Epoch {
    Epoch {
        term: Term(1),
        master_id: DeviceId::new(1).expect("device 1"),
        master_priority: 0,
    }
}

pub(super) fn sku() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec!["soap", "tea", "milk"]).prop_map(str::to_owned),
        1 => "\\PC{0,70}",
    ]
}

pub(super) fn small() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -2_i64..12,
        1 => proptest::sample::select(vec![i64::MIN, i64::MAX, 1_000_001, 10_000_000_001]),
    ]
}

pub(super) fn big_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0_u64..1_800_000_000_000,
        1 => proptest::sample::select(vec![u64::MAX, i64::MAX as u64 + 1, 253_402_300_800_000]),
    ]
}

pub(super) fn payload(origin: DeviceId, seq: u64) -> impl Strategy<Value = EventPayload> {
    let line = (sku(), small(), small()).prop_map(|(sku, qty, price_cents)| SaleLine {
        sku,
        qty,
        price_cents,
    });
    prop_oneof![
        (sku(), word(), small(), small()).prop_map(|(sku, name, price_cents, stock)| {
            EventPayload::ProductCreated {
                sku,
                name,
                price_cents,
                stock,
            }
        }),
        (
            sku(),
            proptest::option::of(word()),
            proptest::option::of(small()),
            big_u64()
        )
            .prop_map(|(sku, name, price_cents, base_version)| {
                EventPayload::ProductUpdated {
                    sku,
                    name,
                    price_cents,
                    base_version: base_version % 4,
                }
            }),
        (sku(), small(), word()).prop_map(|(sku, delta, reason)| EventPayload::StockAdjusted {
            sku,
            delta,
            reason
        }),
        (
            proptest::collection::vec(line, 0..3),
            prop_oneof![4 => Just(format!("{origin}-{seq}")), 1 => word()]
        )
            .prop_map(|(lines, sale_id)| EventPayload::SaleRecorded { sale_id, lines }),
    ]
}

pub(super) fn status() -> impl Strategy<Value = EventStatus> {
    proptest::sample::select(vec![
        EventStatus::Pending,
        EventStatus::Synced,
        EventStatus::Rejected,
    ])
}

pub(super) fn reason() -> impl Strategy<Value = Option<RejectReason>> {
    proptest::option::of(proptest::sample::select(vec![
        RejectReason::OutOfStock,
        RejectReason::StaleVersion,
        RejectReason::UnknownProduct,
        RejectReason::AlreadyExists,
        RejectReason::EventIdReused,
        RejectReason::Invalid,
    ]))
}

pub(super) fn sync_event() -> impl Strategy<Value = SyncEvent> {
    (device(), event_seq()).prop_flat_map(|(origin, seq)| event_at(origin, seq))
}

/// Mostly small sequence numbers (so events collide and replay), sometimes ones the database
/// cannot hold (any u64 parses as an event id).
fn event_seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        20 => 0_u64..5,
        1 => proptest::sample::select(vec![i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX]),
    ]
}

/// An event of `origin`: the rest of it from the same small domains as [`sync_event`].
fn event_of(origin: DeviceId) -> impl Strategy<Value = SyncEvent> {
    event_seq().prop_flat_map(move |seq| event_at(origin, seq))
}

/// Event `seq` of `origin`, the rest of it from small domains.
fn event_at(origin: DeviceId, seq: u64) -> impl Strategy<Value = SyncEvent> {
    (
        payload(origin, seq),
        big_u64(),
        prop_oneof![4 => Just("ann".to_owned()), 1 => "\\PC{0,70}"],
        (0_u64..4, any::<bool>(), status(), reason()),
        (proptest::option::of(0_u64..6), big_u64(), any::<bool>()),
    )
        .prop_map(
            move |(payload, wall_ms, user_id, (term, critical, status, reason), rest)| {
                let (master_seq, created_at_ms, accepted_before) = rest;
                SyncEvent {
                    event_id: EventId {
                        device_id: origin,
                        seq,
                    },
                    hlc: Hlc::new(wall_ms, 0),
                    user_id,
                    term: Term(term),
                    critical,
                    payload,
                    status,
                    reason,
                    master_seq,
                    created_at_ms,
                    accepted_before,
                    chain: None,
                }
            },
        )
}

/// A push that reaches the fuzzed master's decisions: in its epoch (term 1, master 1), from
/// another device, every event that device's own; the events themselves anything
/// [`event_of`] makes. Among [`message`]'s pushes few pass all three.
pub(super) fn push_to_master() -> impl Strategy<Value = (DeviceId, Message)> {
    (2_u16..6).prop_flat_map(|from| {
        let from = DeviceId::new(from).expect("2..6 is a device id");
        proptest::collection::vec(event_of(from), 1..4).prop_map(move |events| {
            let push = Message::Push {
                epoch: Some(ours()),
                events,
                head: None,
            };
            (from, push)
        })
    })
}

pub(super) fn product() -> impl Strategy<Value = Product> {
    (sku(), word(), small(), small(), big_u64()).prop_map(
        |(sku, name, price_cents, stock, version)| Product {
            sku,
            name,
            price_cents,
            stock,
            version: version % 5,
            updated_at: "2026-11-26T00:00:00.000Z".into(),
        },
    )
}

pub(super) fn log_entry() -> impl Strategy<Value = LogEntry> {
    (
        sync_event(),
        epoch(),
        proptest::collection::vec(product(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(event, epoch, products, forced)| LogEntry {
            event,
            epoch,
            products,
            forced,
        })
}

pub(super) fn peer_info() -> impl Strategy<Value = PeerInfo> {
    (device(), word(), -1_i32..2).prop_map(|(device_id, name, priority)| PeerInfo {
        device_id,
        name,
        advertise: "http://127.0.0.1:1".into(),
        priority,
    })
}

pub(super) fn verdict() -> impl Strategy<Value = Verdict> {
    (
        sync_event(),
        status(),
        reason(),
        proptest::option::of(0_u64..6),
    )
        .prop_map(|(event, status, reason, master_seq)| Verdict {
            event_id: event.event_id,
            status,
            reason,
            master_seq,
        })
}

/// Any message of the protocol, with fields from small domains so that they meet each other.
pub(super) fn message() -> impl Strategy<Value = Message> {
    let e = || proptest::option::of(epoch());
    prop_oneof![
        (peer_info(), e(), 0_u64..6).prop_map(|(peer, epoch, log_head)| Message::Register {
            peer,
            epoch,
            log_head
        }),
        (
            epoch(),
            proptest::collection::vec(peer_info(), 0..3),
            0_u64..6
        )
            .prop_map(|(epoch, roster, log_head)| Message::RegisterAck {
                epoch,
                roster,
                log_head
            }),
        (peer_info(), e(), any::<bool>(), 0_u64..6).prop_map(|(peer, epoch, master, log_head)| {
            let role = if master { Role::Master } else { Role::Client };
            Message::Heartbeat {
                peer,
                epoch,
                role,
                log_head,
                handing_over_to: None,
                log_chain: None,
            }
        }),
        (e(), proptest::collection::vec(sync_event(), 0..4)).prop_map(|(epoch, events)| {
            Message::Push {
                epoch,
                events,
                head: None,
            }
        }),
        (epoch(), proptest::collection::vec(verdict(), 0..3))
            .prop_map(|(epoch, verdicts)| Message::PushAck { epoch, verdicts }),
        (e(), 0_u64..6, e()).prop_map(|(epoch, since, since_epoch)| Message::Pull {
            epoch,
            since,
            since_epoch
        }),
        (
            epoch(),
            (0_u64..6, e()),
            proptest::collection::vec(log_entry(), 0..3),
            0_u64..8,
            proptest::option::of(0_u64..6)
        )
            .prop_map(
                |(epoch, (since, since_epoch), entries, log_head, truncate_to)| {
                    Message::Events {
                        epoch,
                        since,
                        since_epoch,
                        entries,
                        log_head,
                        truncate_to,
                    }
                }
            ),
        (epoch(), proptest::collection::vec(log_entry(), 0..3))
            .prop_map(|(epoch, entries)| Message::SyncUpdate { epoch, entries }),
        (epoch(), log_entry()).prop_map(|(epoch, entry)| Message::CriticalEvent { epoch, entry }),
        (epoch(), sync_event(), reason()).prop_map(|(epoch, event, reason)| Message::Conflict {
            epoch,
            event_id: event.event_id,
            reason: reason.unwrap_or(RejectReason::OutOfStock),
        }),
        epoch().prop_map(|epoch| Message::MasterAnnounce {
            epoch,
            url: "http://127.0.0.1:1".into()
        }),
        (e(), proptest::collection::vec(log_entry(), 0..3))
            .prop_map(|(epoch, entries)| Message::Relay { epoch, entries }),
        (epoch(), device(), 0_u64..6).prop_map(|(epoch, target, log_head)| Message::Handover {
            epoch,
            target,
            log_head
        }),
        epoch().prop_map(|epoch| Message::HandoverRequest { epoch }),
        (epoch(), 0_u64..6)
            .prop_map(|(epoch, log_head)| Message::HandoverReady { epoch, log_head }),
        (epoch(), 0_u64..6)
            .prop_map(|(epoch, log_head)| Message::HandoverGranted { epoch, log_head }),
        (e(), 0_u64..6).prop_map(|(epoch, log_head)| Message::PreVote { epoch, log_head }),
        (
            e(),
            proptest::option::of(0_u64..1_000),
            (e(), 0_u64..6),
            proptest::collection::vec(sync_event(), 0..3)
        )
            .prop_map(
                |(epoch, master_heard_ms_ago, (head_epoch, log_head), accepted_unlogged)| {
                    Message::PreVoteReply {
                        epoch,
                        master_heard_ms_ago,
                        position: rms_sync::LogPosition {
                            head_epoch,
                            log_head,
                        },
                        accepted_unlogged,
                    }
                }
            ),
        (e(), word()).prop_map(|(epoch, code)| Message::Error {
            epoch,
            code: code.into(),
            message: String::new()
        }),
    ]
}

//! The change feed for the apps of this device (issue #16): what a till must hear at once, as
//! ordered, resumable events — a product's new state (any device's change), a verdict on a sale
//! made here, this device's role, an alarm. `GET /api/v1/changes` serves it as Server-Sent
//! Events; an embedding Rust app reads the same events with [`Node::changes`](crate::Node::changes).
//!
//! **Invariants:**
//! - Ids are `<boot>-<seq>`: `boot` is this node's start (wall ms), `seq` grows by one per event.
//!   A subscriber that names an id of another boot, or older than the ring keeps, gets `reset`
//!   first: it must read the state again.
//! - One shared ring ([`RING_MAX`] events) and one broadcast channel serve every subscriber: the
//!   node keeps nothing per subscriber, so a reader that never reads costs it nothing. A reader
//!   that falls behind the live channel catches up from the ring; one that falls [`RING_MAX`]
//!   events behind is told `reset` and its stream ends.
//! - The producer only reads the database (the reader pool): it never slows the driver.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rms_domain::{AuditEntry, DeviceId, Epoch, EventId, EventStatus, Operation, Product};
use rms_domain::{RejectReason, Role, Sale};
use rms_storage::audit::AuditQuery;
use rms_storage::{audit, events, products, sales};
use rms_sync::{Notification, Verdict};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::locks;
use crate::tasks::Handles;

/// Events kept: for subscribers that resume (`Last-Event-ID`, `since`), and the most a
/// connected subscriber may fall behind before it is told `reset`.
pub const RING_MAX: usize = 4096;
/// The live channel's capacity: a subscriber further behind catches up from the ring.
const LIVE_MAX: usize = 256;
/// Products read per look (more are read at once by the next look).
const PRODUCTS_PER_READ: usize = 1000;
/// Alarms read per change (more wait for the next one).
const ALARMS_PER_READ: usize = 100;
/// Verdicts remembered to publish each once (see [`Announced`]).
const VERDICTS_REMEMBERED: usize = 4096;

/// Where an event stands in this node's feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChangeId {
    /// When this node started (wall ms since the epoch): ids of another boot name no event of
    /// this feed.
    pub boot: u64,
    /// The event's number in this boot: 1 for the first, one more for each after.
    pub seq: u64,
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.boot, self.seq)
    }
}

/// A `since` or `Last-Event-ID` that is not `<boot>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event id is <boot>-<seq>, two whole numbers")]
pub struct BadChangeId;

impl FromStr for ChangeId {
    type Err = BadChangeId;
    fn from_str(s: &str) -> Result<ChangeId, BadChangeId> {
        let (boot, seq) = s.trim().split_once('-').ok_or(BadChangeId)?;
        let number = |t: &str| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadChangeId);
            }
            t.parse::<u64>().map_err(|_| BadChangeId)
        };
        Ok(ChangeId {
            boot: number(boot)?,
            seq: number(seq)?,
        })
    }
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Change {
    /// A product's new state (stock, price, name or version), whichever device changed it.
    Product(Product),
    /// The master's verdict on a sale made on this device, and the sale as it is now.
    Sale(Sale),
    /// This device's role or its master changed.
    Role {
        /// This device's role now.
        role: Role,
        /// The store's master as this device now knows it, if it knows one.
        master_id: Option<DeviceId>,
        /// The master's epoch (term) as this device now knows it, if it knows one.
        epoch: Option<Epoch>,
    },
    /// An alarm was audited on this device.
    Alarm(AuditEntry),
    /// This device holds its own revocation (issue #27): it refuses sales from now on, and these
    /// sales of its own will never reach the store: those still pending, and those it accepted
    /// itself as master that no other master's log vouches for (an island it led before it
    /// knew; `rms_storage::events::unconfirmed_sale_ids`). At most [`REVOKED_SALES_MAX`]; the
    /// till shows them as lost.
    Revoked {
        /// The ids of the sales that will never reach the store, as the REST API names them.
        pending_sales: Vec<String>,
    },
    /// The subscriber missed events this feed no longer has: read the state again.
    Reset {
        /// Why, for a person: the node restarted since the subscriber's last event, or the
        /// feed no longer holds events that old.
        reason: &'static str,
    },
}

impl Change {
    /// The SSE `event:` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Product(_) => "product",
            Change::Sale(_) => "sale",
            Change::Role { .. } => "role",
            Change::Alarm(_) => "alarm",
            Change::Revoked { .. } => "revoked",
            Change::Reset { .. } => "reset",
        }
    }
}

/// One event of the feed. A `reset` has no id of its own (it names no position).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Where the event stands in the feed (the SSE `id:`); `None` for a `reset`.
    pub id: Option<ChangeId>,
    /// What changed.
    pub change: Change,
}

struct Ring {
    next_seq: u64,
    events: VecDeque<Arc<ChangeEvent>>,
}

/// The feed's shared state: the ring and the live channel, appended to together.
#[derive(Clone)]
pub struct ChangeFeed {
    boot: u64,
    ring: Arc<Mutex<Ring>>,
    live: broadcast::Sender<Arc<ChangeEvent>>,
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("boot", &self.boot)
            .finish_non_exhaustive()
    }
}

impl ChangeFeed {
    pub(crate) fn new(boot: u64) -> ChangeFeed {
        let (live, _) = broadcast::channel(LIVE_MAX);
        ChangeFeed {
            boot,
            ring: Arc::new(Mutex::new(Ring {
                next_seq: 1,
                events: VecDeque::with_capacity(64),
            })),
            live,
        }
    }

    fn publish(&self, change: Change) {
        let mut ring = locks::lock(&self.ring);
        let id = ChangeId {
            boot: self.boot,
            seq: ring.next_seq,
        };
        ring.next_seq += 1;
        let event = Arc::new(ChangeEvent {
            id: Some(id),
            change,
        });
        if ring.events.len() == RING_MAX {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&event));
        // Sent under the ring's lock, so a subscriber replays up to here and hears the rest.
        let _ = self.live.send(event);
    }

    /// Streams open on the feed (SSE feeds and embedding apps' streams).
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// The events after `since` (none: only those from now on), then the live ones.
    pub fn subscribe(&self, since: Option<ChangeId>) -> Result<ChangeStream, FutureChangeId> {
        let ring = locks::lock(&self.ring);
        let live = self.live.subscribe();
        let newest = ring.next_seq - 1;
        let mut stream = ChangeStream {
            feed: self.clone(),
            replay: VecDeque::new(),
            live,
            last_seq: newest,
            ended: false,
        };
        if let Some(since) = since {
            let same_boot = since.boot == self.boot;
            if same_boot && since.seq > newest {
                return Err(FutureChangeId);
            }
            let reason = if same_boot {
                "the feed no longer has events that old"
            } else {
                "the node restarted since that event"
            };
            stream.last_seq = if same_boot { since.seq } else { 0 };
            stream.replay = after(&ring, stream.last_seq, same_boot, reason);
        }
        Ok(stream)
    }
}

/// The ring's events after `seq`, or a `reset` if it no longer holds the one right after it.
fn after(
    ring: &Ring,
    seq: u64,
    same_boot: bool,
    reason: &'static str,
) -> VecDeque<Arc<ChangeEvent>> {
    let oldest = ring
        .events
        .front()
        .and_then(|e| e.id)
        .map_or(ring.next_seq, |id| id.seq);
    if !same_boot || seq + 1 < oldest {
        return VecDeque::from([Arc::new(ChangeEvent {
            id: None,
            change: Change::Reset { reason },
        })]);
    }
    ring.events
        .iter()
        .filter(|e| e.id.is_some_and(|id| id.seq > seq))
        .cloned()
        .collect()
}

/// A `since` after the newest event of this boot: no such position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the feed has no event with that id yet")]
pub struct FutureChangeId;

/// One subscriber's events: the replay, then the live ones; after a `reset` it ends.
#[derive(Debug)]
pub struct ChangeStream {
    feed: ChangeFeed,
    replay: VecDeque<Arc<ChangeEvent>>,
    live: broadcast::Receiver<Arc<ChangeEvent>>,
    /// The last event this subscriber was given.
    last_seq: u64,
    ended: bool,
}

impl ChangeStream {
    /// The next event; `None` when the stream ended (after a `reset`, or the node stopped).
    pub async fn next(&mut self) -> Option<Arc<ChangeEvent>> {
        loop {
            if self.ended {
                return None;
            }
            let event = match self.replay.pop_front() {
                Some(event) => event,
                None => match self.live.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Behind the live channel: catch up from the ring, or reset.
                        let ring = locks::lock(&self.feed.ring);
                        let reason = "this reader fell too far behind";
                        self.replay = after(&ring, self.last_seq, true, reason);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            match event.id {
                // Already given (the live copy of an event the catch-up delivered).
                Some(id) if id.seq <= self.last_seq => continue,
                Some(id) => self.last_seq = id.seq,
                None => self.ended = matches!(event.change, Change::Reset { .. }),
            }
            return Some(event);
        }
    }
}

/// What the producer remembers between two changes.
/// The verdicts already on the feed, so that each sale's verdict reaches it once: the core tells
/// a client of its own event's verdict twice, by the master's `push_ack` and again when the log
/// entry arrives (issue #27 saw every decided sale announced twice). A verdict that differs from
/// the one published (a sale decided again after a truncation) is published again. The latest
/// [`VERDICTS_REMEMBERED`] are kept.
#[derive(Default)]
struct Announced {
    order: VecDeque<EventId>,
    last: BTreeMap<EventId, (EventStatus, Option<RejectReason>)>,
}

impl Announced {
    /// Whether `verdict` is news: not the one last published for its event.
    fn first_time(&mut self, verdict: &Verdict) -> bool {
        let decided = (verdict.status, verdict.reason);
        if self.last.insert(verdict.event_id, decided) == Some(decided) {
            return false;
        }
        self.order.push_back(verdict.event_id);
        while self.order.len() > VERDICTS_REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.last.remove(&oldest);
            }
        }
        true
    }
}

struct Seen {
    verdicts: Announced,
    products: BTreeMap<String, Product>,
    /// The last product change (`feed_seq`) looked at.
    feed_seq: i64,
    alarm_after: i64,
    role: (Option<Role>, Option<DeviceId>),
    /// Whether this device's revocation was announced.
    revoked: bool,
}

/// Most pending sales a `revoked` change names.
pub const REVOKED_SALES_MAX: usize = 1000;

/// Produces the feed until the node stops: after every input the driver handled (its
/// status bump), the products that differ and the new alarms; on the core's notifications, the
/// verdicts on this device's sales. It looks whether or not a stream is open: a reader that
/// resumes with `Last-Event-ID` must find every event it missed in the ring, not only the
/// latest state.
pub(crate) async fn produce(
    handles: Handles,
    mut notifications: broadcast::Receiver<Notification>,
    feed: ChangeFeed,
) {
    let mut changes = handles.status.get().changes.subscribe();
    let Ok(mut seen) = first_look(&handles).await else {
        log::error!("the change feed cannot read the products; it stays empty");
        return;
    };
    while !handles.stopping.is_set() {
        tokio::select! {
            notification = notifications.recv() => match notification {
                Ok(Notification::Decided(verdict)) if seen.verdicts.first_time(&verdict) => {
                    let id = verdict.event_id.to_string();
                    if let Ok(Some(sale)) = handles.db.read(move |c| sales::get(c, &id)).await {
                        feed.publish(Change::Sale(sale));
                    }
                }
                Ok(
                    Notification::Decided(_)
                    | Notification::RoleChanged { .. }
                    | Notification::LogAdvanced { .. },
                ) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = changes.changed() => if changed.is_err() { return },
        }
        loop {
            match look(&handles, &feed, &mut seen).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) => {
                    log::warn!("the change feed cannot read the database: {err}");
                    break;
                }
            }
        }
    }
}

async fn first_look(handles: &Handles) -> Result<Seen, crate::DbError> {
    let (list, newest, feed_seq) = handles
        .db
        .read(|c| {
            let feed_seq = products::feed_head(c)?;
            let list = products::list(c)?;
            let newest = audit::query(
                c,
                &AuditQuery {
                    limit: 1,
                    ..Default::default()
                },
            )?;
            Ok((list, newest, feed_seq))
        })
        .await?;
    let status = handles.status.get();
    Ok(Seen {
        verdicts: Announced::default(),
        products: list.into_iter().map(|p| (p.sku.clone(), p)).collect(),
        feed_seq,
        alarm_after: newest.first().map_or(0, |e| e.id),
        role: (status.role, status.master_id),
        revoked: false,
    })
}

/// Publishes what changed since the last look; `true` when there is more to read at once.
async fn look(
    handles: &Handles,
    feed: &ChangeFeed,
    seen: &mut Seen,
) -> Result<bool, crate::DbError> {
    let status = handles.status.get();
    if (status.role, status.master_id) != seen.role {
        seen.role = (status.role, status.master_id);
        feed.publish(Change::Role {
            role: status.role.unwrap_or(Role::Client),
            master_id: status.master_id,
            epoch: status.epoch,
        });
    }
    if !seen.revoked && handles.is_revoked() {
        seen.revoked = true;
        let me = handles.device_id;
        let pending_sales = handles
            .db
            .read(move |c| events::unconfirmed_sale_ids(c, me, REVOKED_SALES_MAX))
            .await?;
        feed.publish(Change::Revoked { pending_sales });
    }
    let (after, feed_seq) = (seen.alarm_after, seen.feed_seq);
    let ((list, last), alarms) = handles
        .db
        .read(move |c| {
            let list = products::changed_since(c, feed_seq, PRODUCTS_PER_READ)?;
            let alarms = audit::after(c, Operation::Alarm, after, ALARMS_PER_READ)?;
            Ok((list, alarms))
        })
        .await?;
    seen.feed_seq = last;
    let more = list.len() == PRODUCTS_PER_READ || alarms.len() == ALARMS_PER_READ;
    for product in list {
        if seen.products.get(&product.sku) != Some(&product) {
            seen.products.insert(product.sku.clone(), product.clone());
            feed.publish(Change::Product(product));
        }
    }
    for alarm in alarms {
        seen.alarm_after = seen.alarm_after.max(alarm.id);
        feed.publish(Change::Alarm(alarm));
    }
    Ok(more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(stock: i64) -> Change {
        Change::Product(Product {
            sku: "tea".into(),
            name: "Tea".into(),
            price_cents: 300,
            stock,
            version: 1,
            updated_at: "2027-01-15T08:00:00.000Z".into(),
        })
    }

    #[test]
    fn ids_read_back_and_refuse_garbage() {
        let id: ChangeId = "1764-12".parse().unwrap();
        assert_eq!(
            id,
            ChangeId {
                boot: 1764,
                seq: 12
            }
        );
        assert_eq!(id.to_string(), "1764-12");
        for bad in [
            "",
            "12",
            "a-1",
            "1-",
            "-1",
            "1-2-3",
            "1-+2",
            "99999999999999999999-1",
        ] {
            assert_eq!(bad.parse::<ChangeId>(), Err(BadChangeId), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_subscriber_resumes_without_a_gap_or_a_repeat_and_a_stale_one_resets() {
        let feed = ChangeFeed::new(7);
        for stock in 0..5 {
            feed.publish(product(stock));
        }
        let mut resumed = feed.subscribe(Some(ChangeId { boot: 7, seq: 3 })).unwrap();
        feed.publish(product(5));
        let mut seqs = Vec::new();
        for _ in 0..3 {
            seqs.push(resumed.next().await.unwrap().id.unwrap().seq);
        }
        assert_eq!(seqs, [4, 5, 6]);
        let mut other_boot = feed.subscribe(Some(ChangeId { boot: 6, seq: 3 })).unwrap();
        assert_eq!(other_boot.next().await.unwrap().change.kind(), "reset");
        assert!(other_boot.next().await.is_none(), "a reset ends the stream");
        assert!(feed.subscribe(Some(ChangeId { boot: 7, seq: 99 })).is_err());
    }

    #[tokio::test]
    async fn a_reader_behind_the_live_channel_catches_up_and_one_behind_the_ring_resets() {
        let feed = ChangeFeed::new(1);
        let mut behind = feed.subscribe(None).unwrap();
        let mut slow = feed.subscribe(None).unwrap();
        for stock in 0..(LIVE_MAX as i64 * 3) {
            feed.publish(product(stock));
        }
        for seq in 1..=(LIVE_MAX as u64 * 3) {
            let event = behind.next().await.unwrap();
            assert_eq!(event.id.unwrap().seq, seq, "no gap, no repeat");
        }
        for stock in 0..(RING_MAX as i64) {
            feed.publish(product(stock));
        }
        assert_eq!(slow.next().await.unwrap().change.kind(), "reset");
        assert!(slow.next().await.is_none());
        let mut late = feed.subscribe(Some(ChangeId { boot: 1, seq: 1 })).unwrap();
        assert_eq!(
            late.next().await.unwrap().change.kind(),
            "reset",
            "older than the ring"
        );
    }
}

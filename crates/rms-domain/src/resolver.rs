//! The ConflictResolver: how the master decides one event, first come, first served (SPEC §4).
//!
//! A pure type over the products the events touch: no storage, no clock, no messages. Every
//! event a master decides goes through it: those the SyncTasks of rms-sync decide (pushed by a
//! client, relayed, carried by a pre-vote, or the master's own backlog), in [`decision_order`],
//! and the master's own local writes, decided at once in their write transaction by
//! `rms_storage::local::record`. It lives here, below both, so that the two are one code.
//!
//! **Invariants:**
//! - Each entry continues the log: `master_seq` is the resolver's head plus one.
//! - An event is accepted only if the rules (`rms_domain::rules`) allow it against the products
//!   as every earlier entry left them; else it is rejected with the rule's reason.
//! - A sale or adjustment an earlier master accepted (`accepted_before`) is never rejected: the
//!   cashier was told "done". If the rules refuse it now (a split brain sold the units twice) it
//!   is *kept*, forced into the products, and marked `forced`.
//! - An event an earlier master rejected (it carries its reason, not `accepted_before`) is logged
//!   as rejected again, never re-decided.

use crate::epoch::{Epoch, LogEntry};
use crate::event::{EventPayload, SyncEvent};
use crate::hlc::Hlc;
use crate::ids::DeviceId;
use crate::rules::{self, Products};
use crate::timefmt::rfc3339_from_ms;
use crate::trust::TrustList;
use crate::verdict::{EventStatus, RejectReason};

/// What the resolver decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The rules allowed it: logged as `synced`, its changes made.
    Accepted,
    /// Logged as `rejected` with this reason; it changed nothing.
    Rejected(RejectReason),
    /// Accepted by an earlier master, refused by the rules now, kept anyway (`forced`).
    /// Logged as `synced` and `forced`; the reason is the rule's refusal it was kept against.
    Kept(Option<RejectReason>),
}

/// Decides events against the products, one after the other, and makes their log entries.
#[derive(Debug, Clone)]
pub struct ConflictResolver {
    epoch: Epoch,
    log_head: u64,
    products: Products,
    trust: TrustList,
}

impl ConflictResolver {
    /// A resolver continuing a log at `log_head`, in `epoch`, over `products` (at least every
    /// product the events to decide name, as the log leaves them).
    pub fn new(epoch: Epoch, log_head: u64, products: Products) -> ConflictResolver {
        ConflictResolver {
            epoch,
            log_head,
            products,
            trust: TrustList::default(),
        }
    }

    /// The same, deciding trust changes against `trust` (the list as the log leaves it). A
    /// resolver that is given events of kind `device_trust` must be given the list.
    pub fn with_trust(mut self, trust: TrustList) -> ConflictResolver {
        self.trust = trust;
        self
    }

    /// The position of the last entry made.
    pub fn log_head(&self) -> u64 {
        self.log_head
    }

    /// Decides `event` and makes its log entry, the next one.
    pub fn resolve(&mut self, mut event: SyncEvent) -> (LogEntry, Decision) {
        let at = rfc3339_from_ms(event.created_at_ms);
        let products = &mut self.products;
        let keeps_sale = matches!(
            event.payload,
            EventPayload::SaleRecorded { .. } | EventPayload::StockAdjusted { .. }
        );
        let rejected_before = event.reason.filter(|_| !event.accepted_before);
        let trust_change = event
            .payload
            .trust_change(event.event_id.device_id, event.created_at_ms);
        let decision = match rejected_before {
            Some(reason) => Err(reason),
            None => match &trust_change {
                Some(change) => self.trust.check(change),
                None => Ok(()),
            }
            .and_then(|()| rules::apply(&event.payload, products, &at)),
        };
        if let (Ok(_), Some(change)) = (&decision, trust_change) {
            self.trust.apply(change);
        }
        let (decision, critical) = match decision {
            Ok(applied) => (Decision::Accepted, applied.critical),
            Err(reason) if event.accepted_before && keeps_sale => {
                let applied = rules::apply_forced(&event.payload, products, &at);
                (Decision::Kept(Some(reason)), applied.critical)
            }
            Err(reason) => (Decision::Rejected(reason), true),
        };
        self.log_head += 1;
        event.master_seq = Some(self.log_head);
        (event.status, event.reason) = match decision {
            Decision::Accepted | Decision::Kept(_) => (EventStatus::Synced, None),
            Decision::Rejected(reason) => (EventStatus::Rejected, Some(reason)),
        };
        event.critical |= critical;
        let products_after = event
            .payload
            .skus()
            .iter()
            .filter_map(|sku| products.get(*sku).cloned())
            .collect();
        let entry = LogEntry {
            event,
            epoch: self.epoch,
            products: products_after,
            forced: matches!(decision, Decision::Kept(_)),
        };
        (entry, decision)
    }
}

/// The order in which the master decides the events of one push: first those an earlier master
/// accepted, in the order it decided them (they came first, whatever their clocks say; those
/// whose place is unknown after those whose place is known), then the others by
/// `(hlc, device, seq)` (SPEC §4).
pub fn decision_order(event: &SyncEvent) -> (bool, bool, Option<u64>, (Hlc, DeviceId, u64)) {
    let before = event.accepted_before;
    let place = event.master_seq.filter(|_| before);
    (!before, place.is_none(), place, event.arrival_key())
}

#[cfg(test)]
mod tests {
    use crate::event::SaleLine;
    use crate::ids::{EventId, Term};

    use super::*;

    fn device(id: u16) -> DeviceId {
        DeviceId::new(id).expect("a device id is not 0")
    }

    fn epoch() -> Epoch {
        Epoch {
            term: Term(1),
            master_id: device(1),
            master_priority: 0,
        }
    }

    fn products(stock: i64) -> Products {
        let mut products = Products::new();
        let create = EventPayload::ProductCreated {
            sku: "milk".into(),
            name: "Milk".into(),
            price_cents: 99,
            stock,
        };
        let applied = rules::apply(&create, &mut products, &rfc3339_from_ms(0));
        assert!(applied.is_ok(), "the product is created");
        products
    }

    fn sale(origin: u16, seq: u64, qty: i64) -> SyncEvent {
        let event_id = EventId {
            device_id: device(origin),
            seq,
        };
        SyncEvent {
            event_id,
            hlc: Hlc {
                wall_ms: 1_000 + seq,
                counter: 0,
            },
            user_id: "cashier".into(),
            term: Term(1),
            critical: false,
            payload: EventPayload::SaleRecorded {
                sale_id: event_id.to_string(),
                lines: vec![SaleLine {
                    sku: "milk".into(),
                    qty,
                    price_cents: 99,
                }],
            },
            status: EventStatus::Pending,
            reason: None,
            master_seq: None,
            created_at_ms: 1_000,
            accepted_before: false,
            chain: None,
        }
    }

    #[test]
    fn the_last_unit_goes_to_the_first_sale() {
        let mut resolver = ConflictResolver::new(epoch(), 7, products(1));
        let (first, decided) = resolver.resolve(sale(2, 1, 1));
        assert_eq!(decided, Decision::Accepted);
        assert_eq!(first.seq(), 8);
        assert_eq!(first.products[0].stock, 0);
        let (second, decided) = resolver.resolve(sale(3, 1, 1));
        assert_eq!(decided, Decision::Rejected(RejectReason::OutOfStock));
        assert_eq!(second.seq(), 9);
        assert_eq!(second.event.status, EventStatus::Rejected);
        assert!(second.event.critical, "a rejection is broadcast at once");
        assert_eq!(second.products[0].stock, 0, "a rejection changes nothing");
        assert_eq!(resolver.log_head(), 9);
    }

    #[test]
    fn a_sale_accepted_before_is_kept_even_without_stock() {
        let mut resolver = ConflictResolver::new(epoch(), 0, products(0));
        let mut event = sale(2, 1, 2);
        event.accepted_before = true;
        let (entry, decided) = resolver.resolve(event);
        assert_eq!(decided, Decision::Kept(Some(RejectReason::OutOfStock)));
        assert!(entry.forced);
        assert_eq!(entry.event.status, EventStatus::Synced);
        assert_eq!(entry.event.reason, None);
        assert_eq!(entry.products[0].stock, -2);
    }

    #[test]
    fn a_rejection_of_an_earlier_master_stands() {
        let mut resolver = ConflictResolver::new(epoch(), 0, products(5));
        let mut event = sale(2, 1, 1);
        event.reason = Some(RejectReason::OutOfStock);
        let (entry, decided) = resolver.resolve(event);
        assert_eq!(decided, Decision::Rejected(RejectReason::OutOfStock));
        assert_eq!(entry.products[0].stock, 5, "stock there is not taken");
    }

    #[test]
    fn events_accepted_before_come_first_in_their_old_order() {
        let mut late = sale(2, 1, 1);
        late.accepted_before = true;
        late.master_seq = Some(4);
        let mut early = sale(3, 1, 1);
        early.accepted_before = true;
        early.master_seq = Some(2);
        let fresh = sale(4, 1, 1);
        let mut events = [fresh.clone(), late.clone(), early.clone()];
        events.sort_by_key(decision_order);
        let ids: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, [early.event_id, late.event_id, fresh.event_id]);
    }
}

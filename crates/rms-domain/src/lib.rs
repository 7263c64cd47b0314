//! rms-domain: the types and rules every rms crate shares.
//!
//! **Architecture invariant:** this crate does no I/O and reads no clock. Every function that needs
//! the time takes it as an argument (`now_ms`, wall milliseconds since the Unix epoch), so the same
//! rules run in a node, in a test and in the deterministic simulator.
//!
//! What lives here:
//! - identities: [`DeviceId`], [`EventId`], [`Term`], [`Role`], and a device's [`Fingerprint`];
//! - the hybrid logical clock [`Hlc`];
//! - the catalogue and tills: [`Product`], [`NewProduct`], [`ProductPatch`], [`StockAdjustment`],
//!   [`NewSale`], [`Sale`], [`SaleLine`];
//! - the replication unit [`SyncEvent`] and its [`EventPayload`];
//! - the [`rules`] that decide whether an event may apply to the current products, and the
//!   [`resolver`] (the ConflictResolver) through which a master decides every event;
//! - the audit record [`AuditEntry`];
//! - an event's place in its origin's journal, [`ChainLink`], and a push's signature, [`PushHead`]
//!   (issue #17);
//! - the [`hq`] wire types between a store's master and head office (issue #15);
//! - validation errors ([`ValidationError`]) that always name the offending field.
//!
//! **Module layers** (dependencies point down only; `cycles.py` finds no circle):
//! - at the bottom, naming nothing of the crate: `ids`, `hlc`, `timefmt`, `validate`,
//!   `fingerprint`; just above them `verdict` (an event's status and reject reason: it names only
//!   `ids`), `chain_link` (an event's journal link: `validate` only), `product`, `audit`,
//!   `device`;
//! - `trust`: the trust list, over `verdict`, `ids` and `fingerprint`; it never names an event
//!   (events make [`TrustChange`]s, the list folds them);
//! - `event`: [`SyncEvent`] and its payload, over all of the above (the payload carries sale
//!   lines, trust states and a chain link);
//! - over `event`: `sale` (a [`Sale`] is a view of its event), `chain` (an event's journal record;
//!   it re-exports `chain_link`), `epoch` (a [`LogEntry`] holds an event), `rules`;
//! - at the top: `hq` (over `epoch`) and `resolver` (over `rules`, `trust`, `epoch`).
//!
//! # Example
//!
//! What a store does with these types: a till's input is checked, the till records it as an
//! event, and the master decides every event in one [`resolver::ConflictResolver`], first come
//! first served. Two tills sell the last pint of milk; the first sale wins.
//!
//! ```rust
//! use rms_domain::resolver::{ConflictResolver, Decision};
//! use rms_domain::rules::Products;
//! use rms_domain::{
//!     DeviceId, Epoch, EventId, EventPayload, EventStatus, Hlc, NewSale, NewSaleLine,
//!     RejectReason, Sale, SaleLine, SaleStatus, SyncEvent, Term,
//! };
//!
//! /// The `seq`-th event of `device`, made at `now_ms` (wall milliseconds), not decided yet.
//! fn event(device: DeviceId, seq: u64, now_ms: u64, payload: EventPayload) -> SyncEvent {
//!     SyncEvent {
//!         event_id: EventId { device_id: device, seq },
//!         hlc: Hlc::new(now_ms, 0),
//!         user_id: "ann".into(),
//!         term: Term(1),
//!         critical: false,
//!         payload,
//!         status: EventStatus::Pending,
//!         reason: None,
//!         master_seq: None,
//!         created_at_ms: now_ms,
//!         accepted_before: false,
//!         chain: None,
//!     }
//! }
//!
//! /// A till's sale of one pint of milk at 1.29, as its `seq`-th event.
//! fn sell_milk(till: DeviceId, seq: u64, now_ms: u64) -> SyncEvent {
//!     let sale_id = EventId { device_id: till, seq }.to_string();
//!     let lines = vec![SaleLine { sku: "milk".into(), qty: 1, price_cents: 129 }];
//!     event(till, seq, now_ms, EventPayload::SaleRecorded { sale_id, lines })
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let device = |id| DeviceId::new(id).ok_or("0 is not a device");
//!     let (master, till_2, till_3) = (device(1)?, device(2)?, device(3)?);
//!
//!     // What a cashier sends is checked field by field before anything is written.
//!     let input = NewSale {
//!         user_id: "ann".into(),
//!         lines: vec![NewSaleLine { sku: "milk".into(), qty: 1 }],
//!     };
//!     input.validate()?;
//!
//!     // The master of term 1 decides the store's events, here from an empty log.
//!     let epoch = Epoch { term: Term(1), master_id: master, master_priority: 0 };
//!     let mut resolver = ConflictResolver::new(epoch, 0, Products::new());
//!     let milk = EventPayload::ProductCreated {
//!         sku: "milk".into(),
//!         name: "Milk 1L".into(),
//!         price_cents: 129,
//!         stock: 1,
//!     };
//!     let (created, decided) = resolver.resolve(event(master, 1, 1_000, milk));
//!     assert_eq!((decided, created.seq()), (Decision::Accepted, 1));
//!
//!     // Both tills sold the last pint; an event from another device is checked first.
//!     let (first, second) = (sell_milk(till_2, 1, 2_000), sell_milk(till_3, 1, 2_001));
//!     first.validate()?;
//!     second.validate()?;
//!     let (first, decided) = resolver.resolve(first);
//!     assert_eq!(decided, Decision::Accepted);
//!     let (second, decided) = resolver.resolve(second);
//!     assert_eq!(decided, Decision::Rejected(RejectReason::OutOfStock));
//!     assert_eq!(second.products[0].stock, 0, "a rejection changes nothing");
//!
//!     // A sale is a view of its event: what the tills show once the log reaches them.
//!     let sold = Sale::of_event(&first.event).ok_or("a sale event")?;
//!     assert_eq!((sold.status, sold.total_cents), (SaleStatus::Accepted, 129));
//!     let refused = Sale::of_event(&second.event).ok_or("a sale event")?;
//!     assert_eq!(refused.reason, Some(RejectReason::OutOfStock));
//!     Ok(())
//! }
//! ```

#![deny(missing_docs)]

mod audit;
pub mod chain;
mod chain_link;
mod device;
mod epoch;
mod event;
mod fingerprint;
mod hlc;
pub mod hq;
mod ids;
mod product;
pub mod resolver;
pub mod rules;
mod sale;
mod timefmt;
pub mod trust;
mod validate;
mod verdict;

pub use audit::{AuditEntry, Operation, Outcome};
pub use chain::{ChainBreak, ChainLink, PushHead};
pub use device::Device;
pub use epoch::{Epoch, LogEntry};
pub use event::{DAY_MS, EventPayload, SaleLine, SyncEvent, day_of_ms, day_start_ms};
pub use fingerprint::{Fingerprint, ParseFingerprintError};
pub use hlc::Hlc;
pub use ids::{DeviceId, EventId, ParseEventIdError, Role, Term, UnknownName};
pub use product::{NewProduct, Product, ProductPatch, StockAdjustment, validate_sku};
pub use sale::{NewSale, NewSaleLine, Sale, SaleStatus};
pub use timefmt::{ms_from_rfc3339, rfc3339_from_ms};
pub use trust::{TrustChange, TrustEntry, TrustList, TrustState};
/// Checks a free-text field: 1 to `chars_max` characters, not only white space, no control
/// characters.
pub use validate::text as validate_text;
pub use validate::{
    NAME_CHARS_MAX, QTY_MAX, REASON_CHARS_MAX, SALE_LINES_MAX, SKU_CHARS_MAX, USER_ID_CHARS_MAX,
    ValidationError,
};
pub use verdict::{EventStatus, RejectReason};

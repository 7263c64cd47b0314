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

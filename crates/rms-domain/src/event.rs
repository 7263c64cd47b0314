//! The replication unit: a [`SyncEvent`] (one local write: its id, clock, payload, status) with
//! its [`EventPayload`] (what it does), including the [`SaleLine`]s of a sale.
//!
//! Dependencies point down from here: the payload carries a trust state (`trust`), a chain link
//! (`chain_link`) and the verdict (`verdict`); `sale`, `chain`, `epoch` and `rules` point down at
//! this module, never the other way.

use serde::{Deserialize, Serialize};

use crate::chain_link::ChainLink;
use crate::fingerprint::Fingerprint;
use crate::hlc::Hlc;
use crate::ids::{DeviceId, EventId, Term};
use crate::trust::{TrustChange, TrustState};
use crate::validate::{self, ValidationError};
use crate::validate::{NAME_CHARS_MAX, QTY_MAX, REASON_CHARS_MAX, SALE_LINES_MAX, STOCK_MAX};
use crate::verdict::{EventStatus, RejectReason};

/// Longest `how` of a trust change.
const HOW_CHARS_MAX: usize = 32;

/// Milliseconds in a day: closings are per UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// The first millisecond (UTC) of `day`, `YYYY-MM-DD`; `None` if it is not such a date.
pub fn day_start_ms(day: &str) -> Option<u64> {
    let well_formed = day.len() == 10
        && day.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !well_formed {
        return None;
    }
    crate::timefmt::ms_from_rfc3339(&format!("{day}T00:00:00.000Z"))
}

/// A closing's fields: a date, and numbers the database can hold.
fn validate_closing(day: &str, sales: u64, total_cents: i64) -> Result<(), ValidationError> {
    if day_start_ms(day).is_none() {
        let why = "must be a date, YYYY-MM-DD";
        return Err(ValidationError::new("payload.day", why));
    }
    if i64::try_from(sales).is_err() {
        return Err(ValidationError::new("payload.sales", "is too large"));
    }
    if total_cents < 0 {
        let why = "must not be negative";
        return Err(ValidationError::new("payload.total_cents", why));
    }
    Ok(())
}

/// A `product_updated` payload's fields: an edit changes the name or the price (or both) of a
/// product at a version the database can hold.
fn validate_edit(
    sku: &str,
    name: Option<&str>,
    price_cents: Option<i64>,
    base_version: u64,
) -> Result<(), ValidationError> {
    validate::sku("payload.sku", sku)?;
    if name.is_none() && price_cents.is_none() {
        return Err(ValidationError::new(
            "payload",
            "an edit changes name or price",
        ));
    }
    if let Some(name) = name {
        validate::text("payload.name", name, NAME_CHARS_MAX)?;
    }
    if let Some(price) = price_cents {
        validate::price("payload.price_cents", price)?;
    }
    if base_version == 0 || i64::try_from(base_version).is_err() {
        return Err(ValidationError::new(
            "payload.base_version",
            "is out of range",
        ));
    }
    Ok(())
}

/// A `sale_recorded` payload's fields: the sale's id is its event's id, and every line names a
/// SKU, a quantity and a price within the data rules.
fn validate_sale(
    event_id: EventId,
    sale_id: &str,
    lines: &[SaleLine],
) -> Result<(), ValidationError> {
    // A sale's id is its event's id: unique store-wide without coordination.
    if sale_id != event_id.to_string() {
        return Err(ValidationError::new(
            "payload.sale_id",
            "must be the event id",
        ));
    }
    if lines.is_empty() || lines.len() > SALE_LINES_MAX {
        let message = format!("a sale has 1 to {SALE_LINES_MAX} lines");
        return Err(ValidationError::new("payload.lines", message));
    }
    for (i, line) in lines.iter().enumerate() {
        validate::sku(&format!("payload.lines[{i}].sku"), &line.sku)?;
        validate::range(&format!("payload.lines[{i}].qty"), line.qty, 1, QTY_MAX)?;
        validate::price(&format!("payload.lines[{i}].price_cents"), line.price_cents)?;
    }
    Ok(())
}

/// The UTC day (`YYYY-MM-DD`) of a wall time in milliseconds.
pub fn day_of_ms(ms: u64) -> String {
    let mut day = crate::timefmt::rfc3339_from_ms(ms);
    day.truncate(10);
    day
}

/// The unit of replication: one local write, as its origin recorded it.
///
/// The origin device is `event_id.device_id`. `status`, `reason` and `master_seq` are what the
/// master decided; everything else is fixed when the event is made and is the event's *content*
/// (two events with one id and different content are an alarm, never a retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncEvent {
    /// The event's store-wide id: its origin device and that device's own sequence number.
    pub event_id: EventId,
    /// The origin's hybrid logical clock when it made the event: the order of events that
    /// arrive at a master together.
    pub hlc: Hlc,
    /// Who made the write: the cashier or operator, or a fixed name for what a device or head
    /// office does by itself (1 to [`crate::USER_ID_CHARS_MAX`] characters).
    pub user_id: String,
    /// The term the origin knew when it made the event.
    pub term: Term,
    /// Must reach the master, and from it every device, at once rather than at the next sync:
    /// the event left a product's stock at 0 or below, sets head office's price, revokes a
    /// certificate, or was rejected.
    pub critical: bool,
    /// What the event does.
    pub payload: EventPayload,
    /// `pending` until a master decides the event, then `synced` (accepted) or `rejected`.
    pub status: EventStatus,
    /// Why the master (or the origin, for a local write) rejected it; `None` unless `status`
    /// is `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// Position in the master's log, once the master has decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_seq: Option<u64>,
    /// Wall time at the origin, milliseconds since the Unix epoch (for display; order is `hlc`).
    pub created_at_ms: u64,
    /// A master had accepted this event before its log entry was undone (a master that lost a
    /// split brain, or a log that diverged). Not content: the next master keeps such a sale even
    /// when stock is short, and flags it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accepted_before: bool,
    /// The event's place in its origin's journal (issue #17): set when the origin journals it,
    /// checked by the master against the origin's chain and signature before it decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainLink>,
}

impl SyncEvent {
    /// The device that made the event (`event_id.device_id`).
    pub fn origin(&self) -> DeviceId {
        self.event_id.device_id
    }

    /// True when `other` carries the same content (the fields its origin fixed).
    pub fn same_content(&self, other: &SyncEvent) -> bool {
        self.event_id == other.event_id
            && self.hlc == other.hlc
            && self.user_id == other.user_id
            && self.term == other.term
            && self.payload == other.payload
    }

    /// The data rules of SPEC §3 for an event that arrives from another device: what a local
    /// write would have refused, and numbers the database cannot hold, are refused here (a
    /// master never logs an event that breaks them). Names the field, as the API does.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let storable = |field: &str, value: u64| {
            if i64::try_from(value).is_err() {
                return Err(ValidationError::new(field, "is too large"));
            }
            Ok(())
        };
        if self.event_id.seq == 0 {
            return Err(ValidationError::new("event_id", "the sequence starts at 1"));
        }
        storable("event_id", self.event_id.seq)?;
        storable("term", self.term.0)?;
        storable("hlc.wall_ms", self.hlc.wall_ms)?;
        if self.created_at_ms > crate::timefmt::MS_MAX {
            return Err(ValidationError::new(
                "created_at_ms",
                "is after the year 9999",
            ));
        }
        validate::user_id("user_id", &self.user_id)?;
        if let Some(link) = &self.chain {
            link.validate()?;
        }
        self.payload.validate(self.event_id)
    }

    /// The order of events that arrive together: `(hlc, device_id, seq)`.
    pub fn arrival_key(&self) -> (Hlc, DeviceId, u64) {
        (self.hlc, self.event_id.device_id, self.event_id.seq)
    }
}

/// A priced sale line: the price is the product's price on the selling device when it was sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleLine {
    /// The product sold.
    pub sku: String,
    /// Units sold, 1 to [`crate::QTY_MAX`].
    pub qty: i64,
    /// The price of one unit, in minor units (cents), 0 to 10^10.
    pub price_cents: i64,
}

/// What an event does. Serialized with a `kind` tag: `{"kind":"sale_recorded", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventPayload {
    /// A new product (`POST /products`): refused as `already_exists` if the SKU is taken.
    ProductCreated {
        /// The new product's SKU.
        sku: String,
        /// Its name.
        name: String,
        /// Its unit price, in minor units (cents).
        price_cents: i64,
        /// The units in stock it starts with (0 or more).
        stock: i64,
    },
    /// A name and/or price edit (`PATCH /products/{sku}`): refused as `stale_version` unless
    /// the product is still at `base_version`. At least one of `name` and `price_cents` is set.
    ProductUpdated {
        /// The product edited.
        sku: String,
        /// The new name, if it changes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The new unit price in minor units (cents), if it changes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price_cents: Option<i64>,
        /// The product version the edit was made on.
        base_version: u64,
    },
    /// A stock movement that is not a sale (delivery, count, breakage): refused as
    /// `out_of_stock` if it would take the stock below zero.
    StockAdjusted {
        /// The product whose stock moves.
        sku: String,
        /// Units added (positive) or taken away (negative), never 0, at most
        /// [`crate::QTY_MAX`] either way.
        delta: i64,
        /// Why, in the operator's words.
        reason: String,
    },
    /// A sale at a till: refused as `out_of_stock` (or `unknown_product`) as a whole if any
    /// line cannot be served.
    SaleRecorded {
        /// The sale's id: always the event's id as text (`"<device_id>-<seq>"`).
        sale_id: String,
        /// What was sold, 1 to [`crate::SALE_LINES_MAX`] lines; a SKU may appear on several.
        lines: Vec<SaleLine>,
    },
    /// Head office set a product's name and price (issue #15): origin
    /// [`DeviceId::HEAD_OFFICE`], `seq` = `catalog_version`. It wins over the store's edits (no
    /// base version), creates the product with stock 0 if the store has none, and never touches
    /// stock, which the store owns.
    CatalogSet {
        /// The product head office sets.
        sku: String,
        /// Its name as head office sets it.
        name: String,
        /// Its unit price as head office sets it, in minor units (cents).
        price_cents: i64,
    },
    /// A device's daily closing (issue #17, as France's NF525 asks): the count and total of the
    /// sales it made on `day` (UTC, `YYYY-MM-DD`), from its own events. Its chain link is the
    /// journal's head before it, and the push that carries it is signed: a closing is chained and
    /// signed like every event. Changes no product.
    DayClosed {
        /// The UTC day closed, `YYYY-MM-DD`.
        day: String,
        /// How many sales the device made that day.
        sales: u64,
        /// Their total, in minor units (cents); never negative.
        total_cents: i64,
    },
    /// A device certificate trusted or revoked (the trust list, `crate::trust`).
    DeviceTrust {
        /// The certificate's fingerprint: the device's identity.
        fingerprint: Fingerprint,
        /// The device id the certificate is bound to.
        device_id: DeviceId,
        /// The device's name, for people.
        name: String,
        /// Whether the certificate is now trusted or revoked (for good).
        trust: TrustState,
        /// How the device came to be trusted (`store_key`, `approved`, `self`) or `revoked`.
        how: String,
    },
}

impl EventPayload {
    fn validate(&self, event_id: EventId) -> Result<(), ValidationError> {
        match self {
            EventPayload::ProductCreated {
                sku,
                name,
                price_cents,
                stock,
            } => {
                validate::sku("payload.sku", sku)?;
                validate::text("payload.name", name, NAME_CHARS_MAX)?;
                validate::price("payload.price_cents", *price_cents)?;
                validate::range("payload.stock", *stock, 0, STOCK_MAX)
            }
            EventPayload::ProductUpdated {
                sku,
                name,
                price_cents,
                base_version,
            } => validate_edit(sku, name.as_deref(), *price_cents, *base_version),
            EventPayload::StockAdjusted { sku, delta, reason } => {
                validate::sku("payload.sku", sku)?;
                if *delta == 0 {
                    return Err(ValidationError::new("payload.delta", "must not be 0"));
                }
                validate::range("payload.delta", *delta, -QTY_MAX, QTY_MAX)?;
                validate::text("payload.reason", reason, REASON_CHARS_MAX)
            }
            EventPayload::SaleRecorded { sale_id, lines } => {
                validate_sale(event_id, sale_id, lines)
            }
            EventPayload::CatalogSet {
                sku,
                name,
                price_cents,
            } => {
                if !event_id.device_id.is_head_office() {
                    return Err(ValidationError::new(
                        "payload.kind",
                        "a catalogue change comes from head office only",
                    ));
                }
                validate::sku("payload.sku", sku)?;
                validate::text("payload.name", name, NAME_CHARS_MAX)?;
                validate::price("payload.price_cents", *price_cents)
            }
            EventPayload::DeviceTrust { name, how, .. } => {
                validate::text("payload.name", name, NAME_CHARS_MAX)?;
                validate::text("payload.how", how, HOW_CHARS_MAX)
            }
            EventPayload::DayClosed {
                day,
                sales,
                total_cents,
            } => validate_closing(day, *sales, *total_cents),
        }
    }

    /// The `kind` tag of the payload's JSON form, e.g. `"sale_recorded"`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventPayload::ProductCreated { .. } => "product_created",
            EventPayload::ProductUpdated { .. } => "product_updated",
            EventPayload::StockAdjusted { .. } => "stock_adjusted",
            EventPayload::SaleRecorded { .. } => "sale_recorded",
            EventPayload::CatalogSet { .. } => "catalog_set",
            EventPayload::DeviceTrust { .. } => "device_trust",
            EventPayload::DayClosed { .. } => "day_closed",
        }
    }

    /// The entity the event is about: the SKU, the sale id, or the device certificate's
    /// fingerprint.
    pub fn entity_key(&self) -> std::borrow::Cow<'_, str> {
        match self {
            EventPayload::ProductCreated { sku, .. }
            | EventPayload::ProductUpdated { sku, .. }
            | EventPayload::StockAdjusted { sku, .. }
            | EventPayload::CatalogSet { sku, .. } => sku.into(),
            EventPayload::SaleRecorded { sale_id, .. } => sale_id.into(),
            EventPayload::DeviceTrust { fingerprint, .. } => fingerprint.to_string().into(),
            EventPayload::DayClosed { day, .. } => format!("closing:{day}").into(),
        }
    }

    /// Whether this is a revocation (which must take effect everywhere at once).
    pub fn revokes_trust(&self) -> bool {
        matches!(
            self,
            EventPayload::DeviceTrust {
                trust: TrustState::Revoked,
                ..
            }
        )
    }

    /// The trust change this event makes, if it is a `device_trust` event from `origin`.
    pub fn trust_change(&self, origin: DeviceId, at_ms: u64) -> Option<TrustChange> {
        let EventPayload::DeviceTrust {
            fingerprint,
            device_id,
            name,
            trust,
            how,
        } = self
        else {
            return None;
        };
        Some(TrustChange {
            fingerprint: *fingerprint,
            device_id: *device_id,
            name: name.clone(),
            state: *trust,
            how: how.clone(),
            origin,
            at_ms,
        })
    }

    /// Every SKU the event reads or writes, each once, sorted (none for a trust change).
    pub fn skus(&self) -> Vec<&str> {
        let mut skus: Vec<&str> = match self {
            EventPayload::SaleRecorded { lines, .. } => {
                lines.iter().map(|l| l.sku.as_str()).collect()
            }
            EventPayload::ProductCreated { sku, .. }
            | EventPayload::ProductUpdated { sku, .. }
            | EventPayload::StockAdjusted { sku, .. }
            | EventPayload::CatalogSet { sku, .. } => vec![sku.as_str()],
            EventPayload::DeviceTrust { .. } | EventPayload::DayClosed { .. } => Vec::new(),
        };
        skus.sort_unstable();
        skus.dedup();
        skus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_wire_shape_is_kind_tagged() {
        let payload = EventPayload::StockAdjusted {
            sku: "milk".into(),
            delta: -2,
            reason: "broken".into(),
        };
        let json = serde_json::to_value(&payload).unwrap();
        assert_eq!(json["kind"], "stock_adjusted");
        assert_eq!(json["delta"], -2);
        assert_eq!(
            serde_json::from_value::<EventPayload>(json).unwrap(),
            payload
        );
    }
}

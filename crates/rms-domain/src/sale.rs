//! Sales: the till's input ([`NewSale`], [`NewSaleLine`]) and the sale as stored and shown
//! ([`Sale`], [`SaleStatus`]), read from its `sale_recorded` event.
//!
//! This module sits above `event`: a sale is a view of its event, and the priced
//! [`SaleLine`] is part of the event's payload, so it lives in `event`.

use serde::{Deserialize, Serialize};

use crate::event::{EventPayload, SaleLine, SyncEvent};
use crate::ids::{DeviceId, EventId};
use crate::timefmt::rfc3339_from_ms;
use crate::validate::{self, QTY_MAX, SALE_LINES_MAX, ValidationError};
use crate::verdict::{EventStatus, RejectReason};

/// `POST /sales`: what the till sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSale {
    /// The cashier (a JSON string or integer, kept as text; 1 to
    /// [`crate::USER_ID_CHARS_MAX`] characters).
    #[serde(deserialize_with = "validate::de_user_id")]
    pub user_id: String,
    /// What is sold, 1 to [`SALE_LINES_MAX`] lines; the device prices them.
    pub lines: Vec<NewSaleLine>,
}

/// One line of a till's sale: a product and a quantity, priced by the device that records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSaleLine {
    /// The product sold.
    pub sku: String,
    /// Units sold, 1 to [`QTY_MAX`].
    pub qty: i64,
}

impl NewSale {
    /// Checks the data rules of SPEC §3; the error names the first field that breaks one
    /// (`lines[2].qty`). Whether the stock holds the lines is the rules' question, not this one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::user_id("user_id", &self.user_id)?;
        if self.lines.is_empty() || self.lines.len() > SALE_LINES_MAX {
            return Err(ValidationError::new(
                "lines",
                format!("a sale has 1 to {SALE_LINES_MAX} lines"),
            ));
        }
        for (i, line) in self.lines.iter().enumerate() {
            validate::sku(&format!("lines[{i}].sku"), &line.sku)?;
            validate::range(&format!("lines[{i}].qty"), line.qty, 1, QTY_MAX)?;
        }
        Ok(())
    }
}

/// What the master (or, until it has spoken, the selling device) says of a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleStatus {
    /// The master accepted it (its event is `synced`).
    Accepted,
    /// No master has decided it yet.
    Pending,
    /// The master (or the till itself) refused it; the sale's `reason` says why.
    Rejected,
}

impl From<EventStatus> for SaleStatus {
    fn from(status: EventStatus) -> SaleStatus {
        match status {
            EventStatus::Pending => SaleStatus::Pending,
            EventStatus::Synced => SaleStatus::Accepted,
            EventStatus::Rejected => SaleStatus::Rejected,
        }
    }
}

/// A recorded sale: a view of its `sale_recorded` event, never stored apart from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    /// The sale's id: its event's id as text (`"<device_id>-<seq>"`).
    pub sale_id: String,
    /// The `sale_recorded` event that records it.
    pub event_id: EventId,
    /// The till that sold it (the event's origin).
    pub device_id: DeviceId,
    /// The cashier.
    pub user_id: String,
    /// What the master (or, until it has spoken, the till) says of it.
    pub status: SaleStatus,
    /// Why it was rejected; `None` unless `status` is `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// The priced lines, as sold.
    pub lines: Vec<SaleLine>,
    /// The sum of `qty × price_cents` over the lines, in minor units (cents).
    pub total_cents: i64,
    /// When the till recorded it: UTC RFC 3339 with milliseconds.
    pub created_at: String,
}

impl Sale {
    /// The sale an event records, if it records one.
    pub fn of_event(event: &SyncEvent) -> Option<Sale> {
        let EventPayload::SaleRecorded { sale_id, lines } = &event.payload else {
            return None;
        };
        Some(Sale {
            sale_id: sale_id.clone(),
            event_id: event.event_id,
            device_id: event.origin(),
            user_id: event.user_id.clone(),
            status: event.status.into(),
            reason: event.reason,
            lines: lines.clone(),
            total_cents: lines.iter().map(|l| l.qty * l.price_cents).sum(),
            created_at: rfc3339_from_ms(event.created_at_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_refusals_name_the_line() {
        let sale = |lines: Vec<(&str, i64)>| NewSale {
            user_id: "ann".into(),
            lines: lines
                .into_iter()
                .map(|(s, q)| NewSaleLine {
                    sku: s.into(),
                    qty: q,
                })
                .collect(),
        };
        assert_eq!(sale(vec![]).validate().unwrap_err().field, "lines");
        assert_eq!(
            sale(vec![("a", 1), ("b", 0)]).validate().unwrap_err().field,
            "lines[1].qty"
        );
        assert_eq!(
            sale(vec![("a", -2)]).validate().unwrap_err().field,
            "lines[0].qty"
        );
        assert_eq!(
            sale(vec![("a b", 1)]).validate().unwrap_err().field,
            "lines[0].sku"
        );
        let mut no_user = sale(vec![("a", 1)]);
        no_user.user_id.clear();
        assert_eq!(no_user.validate().unwrap_err().field, "user_id");
        sale(vec![("a", 1), ("a", 2)]).validate().unwrap();
    }
}

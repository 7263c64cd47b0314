//! What a master decides of an event: its [`EventStatus`] and, when it refuses it, the
//! [`RejectReason`]. It sits at the bottom of the crate (it names only `ids`), so the event, the
//! sale view, the trust list and the rules all point down at it and never at each other for it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::UnknownName;

/// Where an event stands with the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Not decided by a master yet (its origin applied it to its own copy).
    Pending,
    /// The master accepted it: it has a place in the master log.
    Synced,
    /// The master (or the origin, for a local write) refused it, with a [`RejectReason`].
    Rejected,
}

impl EventStatus {
    /// `"pending"`, `"synced"` or `"rejected"`, as serialized and stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Synced => "synced",
            EventStatus::Rejected => "rejected",
        }
    }
}

impl FromStr for EventStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(EventStatus::Pending),
            "synced" => Ok(EventStatus::Synced),
            "rejected" => Ok(EventStatus::Rejected),
            other => Err(UnknownName::new("event status", other)),
        }
    }
}

/// Why the master (or the device itself, for a local write) refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// A sale or adjustment wants more units than the stock holds.
    OutOfStock,
    /// An edit was made on a product version that another edit has moved past.
    StaleVersion,
    /// The event names a product the store does not have.
    UnknownProduct,
    /// A product with this SKU exists already.
    AlreadyExists,
    /// The event id was seen before with other content: a misbehaving or confused device.
    EventIdReused,
    /// The event breaks a data rule (SPEC §3) that its origin should have enforced: a
    /// misbehaving device. Never logged; the verdict goes to the pusher and the audit log.
    Invalid,
    /// The device certificate was revoked: it is never trusted again.
    Revoked,
    /// The device id is bound to another trusted certificate.
    DeviceIdTaken,
}

impl RejectReason {
    /// The snake_case name (`"out_of_stock"`), as serialized and stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfStock => "out_of_stock",
            RejectReason::StaleVersion => "stale_version",
            RejectReason::UnknownProduct => "unknown_product",
            RejectReason::AlreadyExists => "already_exists",
            RejectReason::EventIdReused => "event_id_reused",
            RejectReason::Invalid => "invalid",
            RejectReason::Revoked => "revoked",
            RejectReason::DeviceIdTaken => "device_id_taken",
        }
    }
}

impl RejectReason {
    /// A sentence for people (API messages, audit details).
    pub const fn describe(self) -> &'static str {
        match self {
            RejectReason::OutOfStock => "not enough stock for this change",
            RejectReason::StaleVersion => {
                "the product was changed since the version this edit was made on; read it again and retry"
            }
            RejectReason::UnknownProduct => "no such product",
            RejectReason::AlreadyExists => "a product with this sku exists already",
            RejectReason::EventIdReused => "this event id was used before for other content",
            RejectReason::Invalid => "the event breaks a data rule",
            RejectReason::Revoked => {
                "this device certificate was revoked; the device must pair again with a new key"
            }
            RejectReason::DeviceIdTaken => {
                "this device id belongs to another trusted certificate; revoke it first"
            }
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RejectReason {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            RejectReason::OutOfStock,
            RejectReason::StaleVersion,
            RejectReason::UnknownProduct,
            RejectReason::AlreadyExists,
            RejectReason::EventIdReused,
            RejectReason::Invalid,
            RejectReason::Revoked,
            RejectReason::DeviceIdTaken,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| UnknownName::new("reject reason", s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reasons_read_back_from_their_names() {
        for reason in [
            "out_of_stock",
            "stale_version",
            "unknown_product",
            "already_exists",
            "revoked",
            "device_id_taken",
        ] {
            assert_eq!(reason.parse::<RejectReason>().unwrap().as_str(), reason);
        }
    }
}

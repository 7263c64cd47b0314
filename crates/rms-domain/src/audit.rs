//! The SyncAuditLog's entry: [`AuditEntry`], with the [`Operation`] it records and its
//! [`Outcome`]. Append-only: rms-storage stores entries and never updates or deletes one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, EventId};

/// One line of the SyncAuditLog. Append-only: nothing updates or deletes an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in this device's audit log (assigned when stored; 0 before).
    #[serde(default)]
    pub id: i64,
    /// UTC RFC 3339.
    pub at: String,
    pub operation: Operation,
    pub device_id: Option<DeviceId>,
    pub user_id: Option<String>,
    pub event_id: Option<EventId>,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = crate::ids::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| crate::ids::UnknownName::new(stringify!($name), s))
            }
        }
    };
}

string_enum! {
    /// What an audit entry records.
    Operation {
        /// A local write: product created.
        ProductCreate = "product_create",
        /// A local write: name or price changed.
        ProductUpdate = "product_update",
        /// A local write: stock adjusted.
        StockAdjust = "stock_adjust",
        /// A local write: a sale.
        Sale = "sale",
        /// A local write: a device certificate trusted or revoked.
        Trust = "trust",
        /// A device's daily closing (issue #17).
        Closing = "closing",
        PushSent = "push_sent",
        PushReceived = "push_received",
        Ack = "ack",
        Pull = "pull",
        Broadcast = "broadcast",
        Conflict = "conflict",
        Rejection = "rejection",
        Registration = "registration",
        HeartbeatLoss = "heartbeat_loss",
        Election = "election",
        RoleChange = "role_change",
        Handover = "handover",
        /// An event id seen again with other content, or another sign of a misbehaving peer.
        Alarm = "alarm",
        /// The node started (with its role and term).
        Startup = "startup",
        /// The node stopped cleanly.
        Shutdown = "shutdown",
        Error = "error",
    }
}

string_enum! {
    Outcome {
        Ok = "ok",
        Error = "error",
        Conflict = "conflict",
        Rejected = "rejected",
    }
}

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
    /// When it happened on the device that wrote the entry: UTC RFC 3339 with milliseconds.
    pub at: String,
    /// What happened.
    pub operation: Operation,
    /// The device that wrote the entry (for a local write, the event's origin, which is that
    /// device). Optional in the stored form; every writer in rms sets it.
    pub device_id: Option<DeviceId>,
    /// The cashier or operator who made the write, for local writes; `None` for what the
    /// device did by itself.
    pub user_id: Option<String>,
    /// The event concerned, when the entry is about one event.
    pub event_id: Option<EventId>,
    /// How it ended.
    pub outcome: Outcome,
    /// The facts of the entry as a JSON object (peer, epoch, reason, counts...), its shape
    /// depending on the operation; stored as the writer gave it.
    pub details: serde_json::Value,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The snake_case name, as stored and as serialized.
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
        /// A client pushed its pending events to the master.
        PushSent = "push_sent",
        /// The master received a push and logged (or replayed) its events.
        PushReceived = "push_received",
        /// A client received the master's verdicts on a push.
        Ack = "ack",
        /// A client applied master-log entries, or undid entries after the master's log
        /// diverged from its copy.
        Pull = "pull",
        /// The master sent new log entries (or one critical event) to its clients.
        Broadcast = "broadcast",
        /// An event lost to the rules (or was kept against them after a split brain).
        Conflict = "conflict",
        /// The master rejected an event (with the conflict entry that led to it).
        Rejection = "rejection",
        /// A device registered with the master for a term.
        Registration = "registration",
        /// A client stopped hearing the master's heartbeats.
        HeartbeatLoss = "heartbeat_loss",
        /// A pre-vote or an election: asked, refused, held, won, or a newer epoch adopted.
        Election = "election",
        /// The device became master or client.
        RoleChange = "role_change",
        /// A planned handover of the master role: started, granted, refused or cancelled.
        Handover = "handover",
        /// An event id seen again with other content, or another sign of a misbehaving peer.
        Alarm = "alarm",
        /// The node started (with its role and term).
        Startup = "startup",
        /// The node stopped cleanly.
        Shutdown = "shutdown",
        /// Something refused or gone wrong that is not an alarm: a stale epoch refused, a link
        /// refused, the device's own input running late.
        Error = "error",
    }
}

string_enum! {
    /// How the operation of an audit entry ended.
    Outcome {
        /// It did what it set out to do.
        Ok = "ok",
        /// It failed, or did not happen in time.
        Error = "error",
        /// An event met another that the rules put first.
        Conflict = "conflict",
        /// Something was refused: an event, a message, a vote, a handover step.
        Rejected = "rejected",
    }
}

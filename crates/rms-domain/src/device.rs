//! A device of the store as the roster and `GET /cluster` show it: [`Device`] (id, name, role,
//! advertise URL, priority, whether it was heard lately).

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, Role};

/// A device of the store as the roster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub device_id: DeviceId,
    pub name: String,
    pub role: Role,
    /// How peers reach it, e.g. `http://10.0.0.5:7878`.
    pub advertise: String,
    pub priority: i32,
    pub online: bool,
    /// UTC RFC 3339 of the last message from it, if any.
    pub last_seen: Option<String>,
}

impl Device {
    /// Rank for elections: higher priority first, then lower device id. Greater is better.
    pub fn rank(&self) -> (i32, std::cmp::Reverse<DeviceId>) {
        (self.priority, std::cmp::Reverse(self.device_id))
    }
}

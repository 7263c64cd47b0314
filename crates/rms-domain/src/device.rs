//! A device of the store as the roster and `GET /cluster` show it: [`Device`] (id, name, role,
//! advertise URL, priority, whether it was heard lately).

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, Role};

/// A device of the store as the roster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The device's id in the store.
    pub device_id: DeviceId,
    /// The name people know it by (`till 2`, `back office`), as it announces itself.
    pub name: String,
    /// Master if it leads the term the roster's writer knows, else client.
    pub role: Role,
    /// How peers reach it, e.g. `http://10.0.0.5:7878`.
    pub advertise: String,
    /// Its election priority: the highest becomes master (ties go to the lower device id).
    pub priority: i32,
    /// Whether the device reading the roster heard from it lately (within the peer timeout);
    /// always true for the reader itself.
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

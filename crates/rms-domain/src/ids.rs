//! Identifiers: [`DeviceId`] (1..=65535, unique in a store) and [`EventId`]
//! (`"<device_id>-<seq>"`, never reused), with their text forms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A device of the store, `1..=65535`, unique in the store. Zero is never a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct DeviceId(u16);

impl DeviceId {
    /// Returns `None` for 0, which is not a device.
    pub const fn new(id: u16) -> Option<DeviceId> {
        if id == 0 { None } else { Some(DeviceId(id)) }
    }

    /// The number, `1..=65535`.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The reserved origin of head office's catalogue changes (issue #15): never a device of a
    /// store (`rms-node` refuses it as `--device-id`). Its event `seq` is the catalogue version.
    pub const HEAD_OFFICE: DeviceId = DeviceId(u16::MAX);

    /// True for [`DeviceId::HEAD_OFFICE`].
    pub const fn is_head_office(self) -> bool {
        self.0 == u16::MAX
    }
}

impl TryFrom<u16> for DeviceId {
    type Error = &'static str;
    fn try_from(id: u16) -> Result<Self, Self::Error> {
        DeviceId::new(id).ok_or("device_id must be in 1..=65535")
    }
}

impl From<DeviceId> for u16 {
    fn from(id: DeviceId) -> u16 {
        id.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The store-wide identity of a [`crate::SyncEvent`]: `"<device_id>-<seq>"`.
///
/// `seq` is the origin device's own sequence: strictly increasing, persisted, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// The device that made the event (its origin).
    pub device_id: DeviceId,
    /// The origin's own sequence number of the event, from 1 (for head office's catalogue
    /// changes, the catalogue version).
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.device_id, self.seq)
    }
}

/// A name outside a closed set: an audit operation or outcome, an event status, a reject reason,
/// a role. `what` names the set, `name` is what was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    /// The set the name was looked up in, e.g. `"role"`, `"reject reason"`.
    pub what: &'static str,
    /// The text that names nothing in it, as read.
    pub name: String,
}

impl UnknownName {
    /// `name` is not a member of the set `what`.
    pub fn new(what: &'static str, name: &str) -> UnknownName {
        UnknownName {
            what,
            name: name.to_owned(),
        }
    }
}

/// A text that is not an [`EventId`]: not `"<device_id>-<seq>"` in decimal digits, with
/// `device_id` in `1..=65535` and `seq` from 1 (no sign, no spaces).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event_id must look like \"<device_id>-<seq>\" with device_id in 1..=65535 and seq >= 1")]
pub struct ParseEventIdError;

impl FromStr for EventId {
    type Err = ParseEventIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (device, seq) = s.split_once('-').ok_or(ParseEventIdError)?;
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(device) || !all_digits(seq) {
            return Err(ParseEventIdError);
        }
        let device_id = device
            .parse::<u16>()
            .ok()
            .and_then(DeviceId::new)
            .ok_or(ParseEventIdError)?;
        let seq = seq.parse::<u64>().map_err(|_| ParseEventIdError)?;
        if seq == 0 {
            return Err(ParseEventIdError);
        }
        Ok(EventId { device_id, seq })
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An election term. Only ever grows on a device (persisted before it is announced).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Term(pub u64);

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a device is in the store right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Decides every event of the store, keeps the master log and broadcasts it.
    Master,
    /// Pushes its own events to the master and applies the master's log.
    Client,
}

impl Role {
    /// `"master"` or `"client"`, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Client => "client",
        }
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "master" => Ok(Role::Master),
            "client" => Ok(Role::Client),
            other => Err(UnknownName::new("role", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_round_trips_and_refuses_garbage() {
        let id: EventId = "12-345".parse().unwrap();
        assert_eq!(id.device_id.get(), 12);
        assert_eq!(id.seq, 345);
        assert_eq!(id.to_string(), "12-345");
        for bad in [
            "", "1", "1-", "-1", "0-1", "1-0", "65536-1", "1-2-3", "+1-2", "a-1", "1- 2",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?} must be refused");
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"12-345\"");
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
    }

    #[test]
    fn device_zero_is_not_a_device() {
        assert!(DeviceId::new(0).is_none());
        assert!(serde_json::from_str::<DeviceId>("0").is_err());
        assert_eq!(
            serde_json::from_str::<DeviceId>("65535").unwrap().get(),
            65535
        );
    }
}

//! An event's place in its origin's journal (issue #17, `docs/JOURNAL.md`), as it travels
//! through sync: the [`ChainLink`] an event carries, the [`PushHead`] a push carries (the origin's
//! signature over the hash of the last event pushed, which by the chain covers every event before
//! it), and the [`ChainBreak`] a master names when they do not verify.
//!
//! The hashing and the signature check are rms-storage's (`journal`, `chain_check`): this crate
//! only holds the wire types and their shape rules.
//!
//! This module sits above `event` ([`event_record`] reads an event); the link an event carries and
//! the hash hex helpers live below it, in `chain_link`, and are re-exported here.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::chain_link::{ChainLink, HASH_HEX_CHARS, hash_from_hex, hex_digit, is_hash_hex};
use crate::event::{EventPayload, SyncEvent};
use crate::hlc::Hlc;
use crate::ids::EventId;
use crate::validate::ValidationError;

/// Longest statement a push head may carry (the statement is a few hundred bytes).
pub const HEAD_STATEMENT_CHARS_MAX: usize = 1024;
/// Longest certificate a push head may carry, in hex digits (a device certificate is under 1 KiB).
pub const HEAD_CERTIFICATE_HEX_MAX: usize = 8192;

/// A push's signature: the origin's key signed `statement` (the journal-head statement of the
/// last event pushed, `{"journal_head":{"device_id","chain":"events","seq","hash","at_ms"}}`).
/// `key` is the raw public key and `certificate` the device certificate (DER) that holds it, both
/// hex; `signature` is ECDSA P-256 with SHA-256, `r ‖ s`, hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushHead {
    /// The journal-head statement of the last event pushed, as signed (JSON text, at most
    /// [`HEAD_STATEMENT_CHARS_MAX`] characters).
    pub statement: String,
    /// The origin's raw public key (an uncompressed P-256 point), hex.
    pub key: String,
    /// The origin's device certificate (DER), hex, at most [`HEAD_CERTIFICATE_HEX_MAX`] digits.
    pub certificate: String,
    /// ECDSA P-256 with SHA-256 over `statement`, `r ‖ s`, hex.
    pub signature: String,
}

impl PushHead {
    /// Checks the shape only (lengths, hex digits), naming the field (`head.statement`,
    /// `head.key`, `head.signature`, `head.certificate`); whether the signature verifies is
    /// rms-storage's check.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let hex = |field: &str, text: &str, max: usize| {
            if text.is_empty() || text.len() > max || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ValidationError::new(
                    field,
                    format!("must be 1 to {max} hex digits"),
                ));
            }
            Ok(())
        };
        if self.statement.is_empty() || self.statement.len() > HEAD_STATEMENT_CHARS_MAX {
            return Err(ValidationError::new(
                "head.statement",
                format!("must be 1 to {HEAD_STATEMENT_CHARS_MAX} characters"),
            ));
        }
        hex("head.key", &self.key, 130)?;
        hex("head.signature", &self.signature, 128)?;
        hex(
            "head.certificate",
            &self.certificate,
            HEAD_CERTIFICATE_HEX_MAX,
        )
    }
}

/// The record an event has in its origin's `events` chain at position `seq`: what it was when
/// made (its verdict comes later and is the master log's). The text hashed: `SHA-256(prev ‖
/// record)`; `docs/JOURNAL.md` gives its byte form. Every checker (the device's journal, a
/// master, head office) rebuilds it with this one function.
pub fn event_record(seq: u64, event: &SyncEvent) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct EventRecord<'a> {
        chain: &'static str,
        seq: u64,
        event_id: String,
        user_id: &'a str,
        created_at_ms: u64,
        hlc: Hlc,
        payload: &'a EventPayload,
    }
    serde_json::to_string(&EventRecord {
        chain: "events",
        seq,
        event_id: event.event_id.to_string(),
        user_id: &event.user_id,
        created_at_ms: event.created_at_ms,
        hlc: event.hlc,
        payload: &event.payload,
    })
}

/// Why a push's chain does not verify: the master refuses the whole push and raises an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The event's link does not continue the entry before it (another hash, or a position that
    /// does not follow), or contradicts what the master holds for that event already.
    Link {
        /// The event whose link does not verify.
        event_id: EventId,
        /// What does not match, for the alarm.
        why: &'static str,
    },
    /// An event without a link after events with one: a chain cannot be dropped.
    Unlinked {
        /// The first unlinked event after a linked one.
        event_id: EventId,
    },
    /// Linked events came without a head, or with one that does not sign the last of them.
    Unsigned,
    /// The head's signature, key or certificate does not verify, or the certificate is not one
    /// the trust list binds to the pushing device.
    Signature {
        /// What does not verify, for the alarm.
        why: &'static str,
    },
}

impl ChainBreak {
    /// The event concerned, when it is one event.
    pub fn event_id(&self) -> Option<EventId> {
        match self {
            ChainBreak::Link { event_id, .. } | ChainBreak::Unlinked { event_id } => {
                Some(*event_id)
            }
            ChainBreak::Unsigned | ChainBreak::Signature { .. } => None,
        }
    }
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::Link { event_id, why } => write!(f, "event {event_id}: {why}"),
            ChainBreak::Unlinked { event_id } => {
                write!(f, "event {event_id} has no chain link after linked events")
            }
            ChainBreak::Unsigned => {
                f.write_str("the push does not carry a head signing its last linked event")
            }
            ChainBreak::Signature { why } => write!(f, "the push's head: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_bounded_hex() {
        let good = PushHead {
            statement: "{}".into(),
            key: "04".repeat(65),
            certificate: "30".repeat(400),
            signature: "ab".repeat(64),
        };
        assert!(good.validate().is_ok());
        let long = PushHead {
            certificate: "3".repeat(HEAD_CERTIFICATE_HEX_MAX + 1),
            ..good.clone()
        };
        assert_eq!(long.validate().unwrap_err().field, "head.certificate");
        let not_hex = PushHead {
            signature: "zz".into(),
            ..good
        };
        assert_eq!(not_hex.validate().unwrap_err().field, "head.signature");
    }
}

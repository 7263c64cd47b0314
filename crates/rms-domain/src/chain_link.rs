//! An event's link in its origin's journal chain ([`ChainLink`]) and the hex form of a SHA-256
//! hash. It sits low in the crate (it names only `validate`): the event carries a link, and
//! `chain`, which rebuilds an event's record, points down at both. `chain` re-exports all of it.

use serde::{Deserialize, Serialize};

use crate::validate::ValidationError;

/// Hex digits of a SHA-256 hash.
pub const HASH_HEX_CHARS: usize = 64;

/// Where an event sits in its origin's `events` chain: its position and the hash of the entry
/// before it. The event's own hash is `SHA-256(prev ‖ record)`, the record being rebuilt from the
/// event (`rms_storage::journal::event_hash`), so it cannot disagree with the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLink {
    /// Position in the origin's `events` chain, from 1.
    pub seq: u64,
    /// The hash of entry `seq - 1` (64 zero digits for entry 1), lowercase hex.
    pub prev: String,
}

impl ChainLink {
    /// Checks the shape only: `seq` from 1 and storable as an `i64` (field `chain.seq`), `prev`
    /// 64 lowercase hex digits (field `chain.prev`). Whether it continues the chain is
    /// rms-storage's check.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.seq == 0 || i64::try_from(self.seq).is_err() {
            return Err(ValidationError::new("chain.seq", "is out of range"));
        }
        if !is_hash_hex(&self.prev) {
            return Err(ValidationError::new(
                "chain.prev",
                "must be 64 lowercase hex digits",
            ));
        }
        Ok(())
    }
}

/// The 32 bytes of a hash written as 64 hex digits; `None` for anything else.
pub fn hash_from_hex(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != HASH_HEX_CHARS {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(out)
}

/// The value of one hex digit.
pub fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// True for 64 lowercase hex digits.
pub fn is_hash_hex(text: &str) -> bool {
    text.len() == HASH_HEX_CHARS && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_needs_a_position_and_a_hash() {
        let good = ChainLink {
            seq: 1,
            prev: "0".repeat(64),
        };
        assert!(good.validate().is_ok());
        let zero = ChainLink {
            seq: 0,
            ..good.clone()
        };
        assert_eq!(zero.validate().unwrap_err().field, "chain.seq");
        let upper = ChainLink {
            prev: "A".repeat(64),
            ..good.clone()
        };
        assert_eq!(upper.validate().unwrap_err().field, "chain.prev");
        let short = ChainLink {
            prev: "0".repeat(63),
            ..good
        };
        assert_eq!(short.validate().unwrap_err().field, "chain.prev");
    }

    #[test]
    fn hex_of_a_hash() {
        assert_eq!(hash_from_hex(&"0".repeat(64)), Some([0; 32]));
        assert_eq!(hash_from_hex(&"ff".repeat(32)), Some([0xff; 32]));
        assert_eq!(hash_from_hex(&"f".repeat(63)), None);
        assert_eq!(hash_from_hex(&"g".repeat(64)), None);
    }
}

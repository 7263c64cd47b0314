//! Proof of the store key, bound to one TLS session (issue #14, the upgrade window).
//!
//! A device of a store that ran with a shared store key (the release before device
//! certificates) proves it knows the key without sending it: an HMAC-SHA256 under the key of
//! the session's exported keying material (RFC 8446 §7.5), the prover's role and certificate,
//! and the device id it claims. So:
//! - the key never leaves the device (no `Authorization` header on a device link);
//! - a proof is worth nothing on another connection: a man in the middle terminates two TLS
//!   sessions with two different exporters, and a relayed proof does not verify;
//! - a proof names one certificate and one device id: it cannot admit another.
//!
//! The exact bytes are in `docs/SECURITY.md`.

use ring::hmac;
use rms_domain::{DeviceId, Fingerprint};

/// Request and response header that carries a proof (lower-case hex, 64 characters).
pub const PROOF_HEADER: &str = "rms-proof";
/// The device id the dialing device claims, or the answering device's id.
pub const DEVICE_HEADER: &str = "rms-device";
/// The dialing device's name, for the trust list.
pub const NAME_HEADER: &str = "rms-name";

/// The exporter label (RFC 8446 §7.5).
const EXPORTER_LABEL: &[u8] = b"EXPORTER-rms-store-key-proof";
/// What the HMAC input starts with, so a proof is never valid as anything else.
const CONTEXT: &[u8] = b"rms store key proof v1\0";

/// Which end of the session proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The device that opened the connection.
    Dialer,
    /// The device that accepted it.
    Acceptor,
}

impl Side {
    const fn byte(self) -> u8 {
        match self {
            Side::Dialer => b'D',
            Side::Acceptor => b'A',
        }
    }
}

/// The session's keying material for proofs; `None` before the handshake completed.
pub fn exporter<D>(connection: &rustls::ConnectionCommon<D>) -> Option<[u8; 32]> {
    connection
        .export_keying_material([0_u8; 32], EXPORTER_LABEL, None)
        .ok()
}

/// The bytes a proof signs.
fn message(side: Side, exporter: &[u8; 32], prover: &Fingerprint, device: DeviceId) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONTEXT.len() + 1 + 32 + 32 + 2);
    message.extend_from_slice(CONTEXT);
    message.push(side.byte());
    message.extend_from_slice(exporter);
    message.extend_from_slice(prover.as_bytes());
    message.extend_from_slice(&device.get().to_be_bytes());
    message
}

/// The proof that `prover` (on `side`, claiming `device`) knows `key` in this session.
pub fn prove(
    key: &str,
    side: Side,
    exporter: &[u8; 32],
    prover: &Fingerprint,
    device: DeviceId,
) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    hmac::sign(&key, &message(side, exporter, prover, device))
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `proof` is [`prove`]'s answer for these inputs (compared in constant time).
pub fn verify(
    key: &str,
    side: Side,
    exporter: &[u8; 32],
    prover: &Fingerprint,
    device: DeviceId,
    proof: &str,
) -> bool {
    let Some(bytes) = from_hex(proof) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    hmac::verify(&key, &message(side, exporter, prover, device), &bytes).is_ok()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: u16) -> DeviceId {
        DeviceId::new(id).expect("a device id")
    }

    #[test]
    fn a_proof_verifies_only_for_its_key_session_side_certificate_and_device() {
        let exporter = [7_u8; 32];
        let me = Fingerprint::from_sha256([1; 32]);
        let proof = prove("store key", Side::Dialer, &exporter, &me, device(2));
        assert!(verify(
            "store key",
            Side::Dialer,
            &exporter,
            &me,
            device(2),
            &proof
        ));
        let other = Fingerprint::from_sha256([2; 32]);
        for (key, side, exporter, prover, id) in [
            ("other key", Side::Dialer, [7_u8; 32], me, 2),
            ("store key", Side::Acceptor, [7; 32], me, 2),
            ("store key", Side::Dialer, [8; 32], me, 2),
            ("store key", Side::Dialer, [7; 32], other, 2),
            ("store key", Side::Dialer, [7; 32], me, 1),
        ] {
            assert!(!verify(key, side, &exporter, &prover, device(id), &proof));
        }
        assert!(!verify(
            "store key",
            Side::Dialer,
            &exporter,
            &me,
            device(2),
            "zz"
        ));
    }
}

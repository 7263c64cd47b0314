//! rms-security: who a device is and how it proves it (issue #14), apart from any socket.
//!
//! - [`identity`]: the device's key and self-signed certificate, in files of mode 0600.
//! - [`tls`]: the TLS 1.3 configurations between devices, and the verifiers that pin the other
//!   side's certificate to the store's trust list (never to a certificate authority).
//! - [`proof`]: a session-bound proof (HMAC over the TLS exporter) of a shared secret: the store
//!   key or a pairing code, which never crosses the wire.
//! - [`pairing`]: the one-time pairing window and its codes.
//! - [`signer`]: the device key as the journal signs its heads with it.
//!
//! **Why a crate of its own:** this is the code an auditor reads. It has no tokio, no sockets and
//! no node: every function is a check, a computation, or (for the identity) the reading and
//! writing of two files, testable alone. `rms-transport`
//! dials, accepts and drives; it asks this crate who is who. Dependencies point one way:
//! `identity` is the leaf; `tls` and `signer` use it; `proof` and `pairing` use neither.
//!
//! # Example
//!
//! Two devices prove to each other that they know a pairing code, bound to one TLS session:
//!
//! ```
//! use rms_domain::DeviceId;
//! use rms_security::identity::Identity;
//! use rms_security::proof::{self, Side};
//!
//! let dialer = Identity::ephemeral()?;
//! let device = DeviceId::new(2).expect("a device id");
//! // Both sides of one TLS session read the same exporter value; here, any 32 bytes.
//! let exporter = [7u8; 32];
//! let given = proof::prove("ABCDEFGHJKMN", Side::Dialer, &exporter, &dialer.fingerprint(), device);
//! assert!(proof::verify("ABCDEFGHJKMN", Side::Dialer, &exporter, &dialer.fingerprint(), device, &given));
//! // Another code, another session or the other side's role: the proof does not verify.
//! assert!(!proof::verify("ABCDEFGHJKMP", Side::Dialer, &exporter, &dialer.fingerprint(), device, &given));
//! assert!(!proof::verify("ABCDEFGHJKMN", Side::Acceptor, &exporter, &dialer.fingerprint(), device, &given));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod identity;
pub mod pairing;
pub mod proof;
pub mod signer;
pub mod tls;

//! What a link is made of, on either side: who is at the other end ([`Peer`]), the WebSocket
//! settings every link uses, and the socket a dialed link runs on. The leaf of `net`: the dialer
//! and the links both use it, and it imports nothing of this crate.

use rms_domain::{DeviceId, Fingerprint};

/// Largest WebSocket message, in bytes (SPEC §8); a larger one closes the connection.
pub const MESSAGE_BYTES_MAX: usize = 1024 * 1024;
/// Who is on the other side of a link, as its TLS handshake and the trust list say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer {
    /// None on the loopback API (a tool of this machine).
    pub fingerprint: Option<Fingerprint>,
    /// The device id the trust list binds the certificate to: the link may claim no other.
    pub device: Option<DeviceId>,
}

/// The WebSocket settings of every link, both directions: messages and frames up to 1 MiB, a
/// 4 KiB read buffer (tungstenite's default of 128 KiB is zero-filled on the first read, so it
/// would cost every idle link 128 KiB of memory; a large message grows the buffer as needed), and
/// frames written out as soon as they are made (no 128 KiB write buffer to fill first), which
/// `link::frames` relies on.
pub fn config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(LINK_READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(MESSAGE_BYTES_MAX))
        .max_frame_size(Some(MESSAGE_BYTES_MAX))
}

/// See [`config`].
const LINK_READ_BUFFER_BYTES: usize = 4 * 1024;

/// A WebSocket link this device dialed, over TLS.
pub type ClientSocket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

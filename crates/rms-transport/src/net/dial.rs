//! Dialing another device (issue #14): TCP, then TLS 1.3 with this device's certificate, the
//! other side pinned by the trust list ([`TrustBook::dial`]), then HTTP on top.
//!
//! **Invariants:**
//! - Nothing but the TLS handshake goes out before the other side's certificate passed: a
//!   server the trust list does not name gets no HTTP byte, unless this device knows no other
//!   device of its store yet (then it gets this device's ID, and while the upgrade window is
//!   open a proof of the store key bound to this session, never the key).
//! - A link is used only if the other side is trusted, or proved the store key in its answer;
//!   either way it is bound to one device id, and a link that claims another is closed.

use std::sync::Arc;
use std::time::Duration;

use rms_domain::{DeviceId, Fingerprint};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue};

use rms_security::identity::Identity;
use rms_security::proof::{self, DEVICE_HEADER, NAME_HEADER, PROOF_HEADER, Side};
use rms_security::tls;

use crate::clock::Clock;
use crate::net::trust::TrustBook;
use crate::net::wire::{self, ClientSocket, Peer};

/// A dial (TCP, TLS and the HTTP answer together) gives up after this long.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The address given is not `host:port` (with `http://` or `https://`).
    #[error("{address:?} is not an address of a device (host:port, with http:// or https://)")]
    BadAddress {
        /// The address as given.
        address: String,
    },
    /// The TCP connection or the TLS handshake failed: nothing listens there, the network is
    /// down, or the other side's certificate is not one the trust list accepts.
    #[error("cannot connect: {0}")]
    Io(#[from] std::io::Error),
    /// This device's own TLS configuration cannot be made (its key does not parse).
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The WebSocket upgrade failed for a reason other than an HTTP refusal (which is
    /// [`DialError::Refused`] or [`DialError::Revoked`]).
    #[error("WebSocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// The HTTP exchange on the dialed connection failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The other device answered with this HTTP status instead of what was asked (or its body
    /// was too long to read).
    #[error("the device answered {0}")]
    Refused(u16),
    /// The other side is not who it must be: the handshake gave no certificate or keying
    /// material, a trusted device claimed another device id than its own, or an untrusted one
    /// did not prove the store key.
    #[error("the device is not trusted and did not prove the store key")]
    Unproven,
    /// A device this one trusts refused it with `403 revoked`: this device's certificate was
    /// revoked (issue #27).
    #[error("a trusted device of the store says this device's certificate was revoked")]
    Revoked,
    /// The dial (TCP, TLS and the HTTP answer together) took longer than [`DIAL_TIMEOUT`].
    #[error("the dial took longer than {DIAL_TIMEOUT:?}")]
    TimedOut,
    /// A store without a store key dials only devices on this machine.
    #[error(
        "{authority} is not on this machine: a store without a store key keeps its devices on \
         loopback"
    )]
    NotLoopback {
        /// The `host:port` that was refused.
        authority: String,
    },
}

/// A TLS connection to another device, before HTTP.
pub struct Dialed {
    /// The TLS stream, handshake done, nothing sent on it yet.
    pub stream: TlsStream<TcpStream>,
    /// Who answered, and the session's keying material for proofs.
    pub session: Session,
    /// The address, `host:port`.
    pub authority: String,
}

/// What the handshake established.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    /// The SHA-256 fingerprint of the certificate the other side presented.
    pub fingerprint: Fingerprint,
    /// The session's TLS exporter value ([`proof::exporter`]): what binds a proof to this one
    /// connection.
    pub exporter: [u8; 32],
}

/// One HTTP request on a dialed connection (which it then closes): the answer's status,
/// headers and body (at most `body_max` bytes).
pub async fn request_once(
    dialed: Dialed,
    request: hyper::Request<http_body_util::Full<hyper::body::Bytes>>,
    body_max: usize,
) -> Result<(u16, HeaderMap, hyper::body::Bytes), DialError> {
    let io = hyper_util::rt::TokioIo::new(dialed.stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let connection = tokio::spawn(connection);
    let answer = async {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http_body_util::Limited::new(response.into_body(), body_max);
        let body = http_body_util::BodyExt::collect(body)
            .await
            .map_err(|_| DialError::Refused(status))?
            .to_bytes();
        Ok((status, headers, body))
    };
    let answer = tokio::time::timeout(DIAL_TIMEOUT, answer)
        .await
        .map_err(|_| DialError::TimedOut)?;
    connection.abort();
    answer
}

/// Dials other devices as this one.
#[derive(Debug, Clone)]
pub struct Dialer {
    identity: Arc<Identity>,
    book: TrustBook,
    me: DeviceId,
    name: String,
    clock: Clock,
}

impl Dialer {
    /// A dialer for device `me` named `name` (sent in its headers), with its `identity`,
    /// checking the other side against `book`; `clock` says whether the store key's upgrade
    /// window is open.
    pub fn new(
        identity: Arc<Identity>,
        book: TrustBook,
        me: DeviceId,
        name: String,
        clock: Clock,
    ) -> Dialer {
        Dialer {
            identity,
            book,
            me,
            name,
            clock,
        }
    }

    /// TCP and TLS to `url`, accepting what the trust list accepts for `expected` (the device
    /// the address is known to be, when it is).
    pub async fn connect(
        &self,
        url: &str,
        expected: Option<DeviceId>,
    ) -> Result<Dialed, DialError> {
        self.connect_trusting(url, self.book.dial(expected).trusted)
            .await
    }

    /// TCP and TLS to `url`, accepting any certificate but this device's own: for pairing,
    /// where the other side proves the code after the handshake.
    pub async fn connect_any(&self, url: &str) -> Result<Dialed, DialError> {
        self.connect_trusting(url, tls::Trusted::anyone()).await
    }

    async fn connect_trusting(
        &self,
        url: &str,
        trusted: tls::Trusted,
    ) -> Result<Dialed, DialError> {
        let authority = authority(url).ok_or_else(|| DialError::BadAddress {
            address: url.to_owned(),
        })?;
        // Without a key the store trusts every device of this machine on first use: never
        // another machine's.
        if self.book.store_key().is_none() && !is_loopback(&authority) {
            return Err(DialError::NotLoopback { authority });
        }
        let config = tls::client_config(&self.identity, trusted)?;
        let connector = TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from(tls::SERVER_NAME).map_err(|_| DialError::BadAddress {
            address: tls::SERVER_NAME.to_owned(),
        })?;
        let tcp = TcpStream::connect(&authority).await?;
        tcp.set_nodelay(true)?;
        let stream = connector.connect(name, tcp).await?;
        let (_, session) = stream.get_ref();
        let fingerprint = tls::peer_fingerprint(session.peer_certificates());
        let exporter = proof::exporter(session);
        let (Some(fingerprint), Some(exporter)) = (fingerprint, exporter) else {
            return Err(DialError::Unproven);
        };
        Ok(Dialed {
            stream,
            session: Session {
                fingerprint,
                exporter,
            },
            authority,
        })
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.me
    }

    /// This device's certificate's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }

    /// The headers a request to `dialed` carries: who this device is, and while the window is
    /// open, its proof of the store key (for a device that does not know it yet).
    pub fn headers(&self, session: &Session) -> HeaderMap {
        let mut headers = self.identity_headers();
        if let Some(key) = self.book.window_key(self.clock.now_ms()) {
            let me = self.identity.fingerprint();
            let proof = proof::prove(&key, Side::Dialer, &session.exporter, &me, self.me);
            if let Ok(value) = HeaderValue::from_str(&proof) {
                headers.insert(PROOF_HEADER, value);
            }
        }
        headers
    }

    /// Who this device is: its id and name.
    pub fn identity_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(DEVICE_HEADER, HeaderValue::from(self.me.get()));
        if let Ok(name) = HeaderValue::from_str(&self.name) {
            headers.insert(NAME_HEADER, name);
        }
        headers
    }

    /// Who answered, from its certificate and its answer's headers: a trusted device (bound
    /// to its id in the list), or one that proved the store key.
    pub fn check_answer(&self, session: &Session, answer: &HeaderMap) -> Result<Peer, DialError> {
        let claimed = answer
            .get(DEVICE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok())
            .and_then(DeviceId::new);
        if let Some(entry) = self.book.entry(&session.fingerprint)
            && self.book.is_trusted(&session.fingerprint)
        {
            if claimed.is_some_and(|c| c != entry.device_id) {
                return Err(DialError::Unproven);
            }
            return Ok(Peer {
                fingerprint: Some(session.fingerprint),
                device: Some(entry.device_id),
            });
        }
        let key = self.book.window_key(self.clock.now_ms());
        let given = answer.get(PROOF_HEADER).and_then(|v| v.to_str().ok());
        match (key, claimed, given) {
            (Some(key), Some(device), Some(given))
                if device != self.me
                    && self.book.trusted_for(device).is_none()
                    && proof::verify(
                        &key,
                        Side::Acceptor,
                        &session.exporter,
                        &session.fingerprint,
                        device,
                        given,
                    ) =>
            {
                Ok(Peer {
                    fingerprint: Some(session.fingerprint),
                    device: Some(device),
                })
            }
            _ => Err(DialError::Unproven),
        }
    }

    /// Whether this device holds its own revocation (from the log, or from a trusted device's
    /// refusal, [`DialError::Revoked`]).
    pub fn knows_itself_revoked(&self) -> bool {
        self.book.is_revoked(&self.fingerprint())
    }

    /// This device's own revocation, as it records it when a trusted device says so.
    pub fn own_revocation(&self) -> rms_storage::local::Command {
        rms_storage::local::Command::Trust {
            fingerprint: self.fingerprint(),
            device_id: self.me,
            name: self.name.clone(),
            state: rms_domain::TrustState::Revoked,
            how: "revoked".into(),
        }
    }

    /// What a refusal with `status` and `body` (an API error, `{"error": code, ...}`) means. A
    /// `revoked` is believed only from a device this one trusts (anyone can answer a device that
    /// is still enrolling): it is this device's own revocation (issue #27).
    pub fn refusal(&self, session: &Session, status: u16, body: &[u8]) -> DialError {
        let code = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|answer| answer["error"].as_str().map(str::to_owned));
        if status != 403 || !self.book.is_trusted(&session.fingerprint) {
            return DialError::Refused(status);
        }
        match code.as_deref() {
            Some("revoked") => DialError::Revoked,
            _ => DialError::Refused(status),
        }
    }

    /// A WebSocket link to `url` (its `/api/v1/ws`), and who is on the other side.
    pub async fn websocket(
        &self,
        url: &str,
        expected: Option<DeviceId>,
    ) -> Result<(ClientSocket, Peer), DialError> {
        let dial = async {
            let dialed = self.connect(url, expected).await?;
            let target = format!("ws://{}/api/v1/ws", dialed.authority);
            let mut request = target.into_client_request().map_err(Box::new)?;
            let session = dialed.session;
            request.headers_mut().extend(self.headers(&session));
            let (socket, response) = tokio_tungstenite::client_async_with_config(
                request,
                dialed.stream,
                Some(wire::config()),
            )
            .await
            .map_err(|err| match err {
                tokio_tungstenite::tungstenite::Error::Http(response) => {
                    let body = response.body().as_deref().unwrap_or_default();
                    self.refusal(&session, response.status().as_u16(), body)
                }
                other => DialError::WebSocket(Box::new(other)),
            })?;
            let peer = self.check_answer(&session, response.headers())?;
            Ok((socket, peer))
        };
        tokio::time::timeout(DIAL_TIMEOUT, dial)
            .await
            .map_err(|_| DialError::TimedOut)?
    }
}

/// `host:port` of a device URL: `http://`, `https://`, `ws://`, `wss://` or none; any path is
/// dropped (device links always go to `/api/v1/ws`, over TLS whatever the scheme says).
pub fn authority(url: &str) -> Option<String> {
    let rest = ["https://", "http://", "wss://", "ws://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .unwrap_or(url);
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| authority.to_owned())
}

/// Whether `host:port` names this machine (a loopback address, or `localhost`).
pub(crate) fn is_loopback(authority: &str) -> bool {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::{authority, is_loopback};

    #[test]
    fn loopback_addresses_are_this_machine() {
        for local in ["127.0.0.1:7879", "[::1]:7879", "localhost:1", "127.9.9.9:2"] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in ["10.0.0.11:7879", "example.com:7879", "[2001:db8::1]:1"] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }

    #[test]
    fn device_addresses_are_host_and_port_whatever_the_scheme() {
        for url in [
            "https://127.0.0.1:7879",
            "http://127.0.0.1:7879/",
            "127.0.0.1:7879",
            "wss://127.0.0.1:7879/api/v1/ws",
        ] {
            assert_eq!(authority(url).as_deref(), Some("127.0.0.1:7879"), "{url}");
        }
        assert_eq!(
            authority("http://[::1]:7879").as_deref(),
            Some("[::1]:7879")
        );
        for bad in ["", "https://", "host", "host:port", ":80"] {
            assert_eq!(authority(bad), None, "{bad}");
        }
    }
}

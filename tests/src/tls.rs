//! TLS clients for tests that speak to a store port as a device would (or as an attacker with a
//! device's certificate would): rustls with the `ring` provider, TLS 1.3, a client certificate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rms_transport::identity::Identity;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Accepts whatever certificate the server shows (the test checks the server, not the client),
/// but verifies its handshake signatures as a real client would.
#[derive(Debug)]
pub struct AnyServer(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS 1.3 client configuration that shows `identity`'s certificate and accepts any server.
pub fn device_client(identity: &Identity) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![CertificateDer::from(identity.cert_der().to_vec())];
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem().as_bytes()).expect("a key");
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(chain, key)
        .expect("a certificate and its key");
    Arc::new(config)
}

/// A TLS stream to a store port.
pub type Stream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects to `address` with `config` and completes the handshake (reads time out after
/// `read_timeout`).
pub fn connect(
    address: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    read_timeout: Duration,
) -> std::io::Result<Stream> {
    let name = ServerName::try_from("rms-device").expect("a name");
    let connection =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(read_timeout))?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Reads what comes until the peer closes, the read times out, or the connection fails.
pub fn read_all(stream: &mut Stream) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return answer,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Sends `bytes` and flushes them; false if the connection is closed.
pub fn send(stream: &mut Stream, bytes: &[u8]) -> bool {
    stream
        .write_all(bytes)
        .and_then(|()| stream.flush())
        .is_ok()
}

/// Reads one HTTP/1.1 response with a `Content-Length` (a kept-alive connection's next answer):
/// its status and its body; `None` if the connection closed or failed first.
pub fn read_response(stream: &mut Stream) -> Option<(u16, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 8 * 1024];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buffer).ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let status = head.get(9..12)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())?;
    while data.len() < head_end + length {
        let n = stream.read(&mut buffer).ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buffer[..n]);
    }
    Some((status, data[head_end..head_end + length].to_vec()))
}

//! TLS between devices (issue #14): TLS 1.3 only, mutual, each side pinned to the fingerprints
//! it trusts (Syncthing's model: no CA, no names, no certificate dates).
//!
//! **Invariants:**
//! - A handshake completes only if the peer's certificate is one whose fingerprint is in the
//!   [`Trusted`] set at that moment, and the peer proved it holds the certificate's key (the
//!   handshake signature is always verified, through the `ring` provider).
//! - Only TLS 1.3: a client that offers only TLS 1.2 is refused.
//! - Both sides present a certificate: a client without one is refused.
//! - No session resumption: every connection checks the certificate against the trust list of
//!   that moment, so a revoked device cannot come back on a session ticket. (Closing the links
//!   already open to a revoked device is the links' job, when they use this.)
//! - Never this device itself on the other side (a connection reflected back to its sender).
//! - The dialing side names no server (no SNI): an observer learns nothing from the hello.
//!
//! A device that dials a known peer passes a [`Trusted`] of that peer alone, so that another
//! trusted device cannot answer in its place.
//!
//! This module makes the configurations ([`server_config`], [`client_config`]) and learns who
//! is on the other side ([`peer_fingerprint`]). The trust list they check is a shared
//! [`Trusted`], which the node will keep from its replicated list of devices.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use rms_domain::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error, ServerConfig,
    SignatureScheme,
};

use crate::identity::{Identity, fingerprint_of};

/// The name a dialing device asks for: peers do not check names, they pin fingerprints.
pub const SERVER_NAME: &str = "rms-device";

/// Why a TLS configuration cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// This device's private key (its PEM text) is not a key rcgen reads.
    #[error("this device's key does not parse: {0}")]
    Key(#[from] rcgen::Error),
    /// rustls refused the configuration: the key does not match the certificate, or the
    /// provider does not offer TLS 1.3.
    #[error("TLS configuration: {0}")]
    Config(#[from] Error),
}

/// The fingerprints this device accepts on the other side of a handshake. Cheap to clone; every
/// clone sees changes (a revocation takes effect for the next handshake).
#[derive(Debug, Clone, Default)]
pub struct Trusted {
    set: Arc<RwLock<BTreeSet<Fingerprint>>>,
    /// Any certificate but this device's own passes the handshake: the caller decides after it
    /// who the peer is (the store port admits devices by the store's trust list and answers an
    /// unknown one with a refusal it can audit; a device new to the store checks the server's
    /// proof of the store key).
    anyone: bool,
}

impl Trusted {
    /// A trust list of exactly `fingerprints` (duplicates are kept once). An empty one refuses
    /// every peer until [`Trusted::insert`] adds one.
    pub fn new(fingerprints: impl IntoIterator<Item = Fingerprint>) -> Trusted {
        Trusted {
            set: Arc::new(RwLock::new(fingerprints.into_iter().collect())),
            anyone: false,
        }
    }

    /// See the `anyone` field: the handshake still verifies that the peer holds its key.
    pub fn anyone() -> Trusted {
        Trusted {
            anyone: true,
            ..Trusted::default()
        }
    }

    /// Whether a peer with this certificate fingerprint passes the handshake: it is in the set,
    /// or the list is [`Trusted::anyone`]. Seen by every clone at once.
    // A writer that panicked left the set as it was before or after its one insert or remove:
    // still a set of fingerprints, so a poisoned lock is read through.
    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        if self.anyone {
            return true;
        }
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        set.contains(fingerprint)
    }

    /// Trusts `fingerprint` from the next handshake on, in every clone. Adding one already
    /// there does nothing.
    pub fn insert(&self, fingerprint: Fingerprint) {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        set.insert(fingerprint);
    }

    /// Stops trusting `fingerprint` from the next handshake on, in every clone (links already
    /// open are not closed here). Removing one that is absent does nothing; a
    /// [`Trusted::anyone`] list still accepts it.
    pub fn remove(&self, fingerprint: &Fingerprint) {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        set.remove(fingerprint);
    }
}

/// What both sides answer to a TLS 1.2 signature (never reached: both configurations offer TLS
/// 1.3 alone).
fn tls12_refused() -> Result<HandshakeSignatureValid, Error> {
    Err(Error::General("only TLS 1.3 is accepted".into()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks that the certificate presented is one of the trusted ones, and not this device's.
#[derive(Debug)]
struct Pinned {
    trusted: Trusted,
    me: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Pinned {
    fn new(trusted: Trusted, me: Fingerprint) -> Pinned {
        Pinned {
            trusted,
            me,
            algorithms: provider().signature_verification_algorithms,
        }
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), Error> {
        let presented = fingerprint_of(end_entity);
        if presented != self.me && self.trusted.contains(&presented) {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        }
    }

    fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// This device's certificate chain and key, as rustls takes them.
fn own(
    identity: &Identity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let key = rcgen::KeyPair::from_pem(identity.key_pem())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let chain = vec![CertificateDer::from(identity.cert_der().to_vec())];
    Ok((chain, key))
}

/// The store port's configuration: TLS 1.3, a client certificate required and pinned.
pub fn server_config(identity: &Identity, trusted: Trusted) -> Result<ServerConfig, TlsError> {
    let (chain, key) = own(identity)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(Pinned::new(trusted, identity.fingerprint())))
        .with_single_cert(chain, key)?;
    // No resumption: a resumed session skips the certificate check, so a device revoked since
    // could come back on its ticket. Links live long; a full handshake costs a millisecond.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The API's configuration on an address other than loopback: HTTPS with this device's
/// certificate, no client certificate (the apps authenticate with the bearer token).
pub fn api_server_config(identity: &Identity) -> Result<ServerConfig, TlsError> {
    let (chain, key) = own(identity)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(config)
}

/// A dialing device's configuration: TLS 1.3, its own certificate, the server's pinned.
pub fn client_config(identity: &Identity, trusted: Trusted) -> Result<ClientConfig, TlsError> {
    let (chain, key) = own(identity)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned::new(trusted, identity.fingerprint())))
        .with_client_auth_cert(chain, key)?;
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_sni = false;
    Ok(config)
}

/// How a store checks head office's certificate (issue #15).
#[derive(Debug, Clone)]
pub enum HeadOfficeTrust {
    /// Only this certificate (its SHA-256 fingerprint): a private CA or a self-signed one.
    Pinned(Fingerprint),
    /// A certificate for head office's host name, issued by one of these roots (the system's,
    /// or a CA file's).
    Roots(Arc<rustls::RootCertStore>),
}

/// A store's configuration for dialing head office: TLS 1.3, no client certificate (the store
/// authenticates with its token), head office's certificate checked as `trust` says.
pub fn head_office_config(trust: &HeadOfficeTrust) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    Ok(match trust {
        HeadOfficeTrust::Pinned(fingerprint) => {
            // `me` is no certificate anyone holds: only `fingerprint` passes.
            let pinned = Pinned::new(
                Trusted::new([*fingerprint]),
                Fingerprint::from_sha256([0; 32]),
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pinned))
                .with_no_client_auth()
        }
        HeadOfficeTrust::Roots(roots) => builder
            .with_root_certificates(Arc::clone(roots))
            .with_no_client_auth(),
    })
}

/// Who is on the other side of a completed handshake.
pub fn peer_fingerprint(certificates: Option<&[CertificateDer<'_>]>) -> Option<Fingerprint> {
    certificates
        .and_then(|chain| chain.first())
        .map(|cert| fingerprint_of(cert))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    /// Runs a handshake between a server and a client over an in-memory pipe; on success the
    /// client sends "sale" and the server answers with what it read. Returns what the client
    /// received, and the fingerprints each side saw, or the first error.
    async fn exchange(
        server: ServerConfig,
        client: ClientConfig,
    ) -> Result<(Vec<u8>, Option<Fingerprint>, Option<Fingerprint>), std::io::Error> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let connector = TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from(SERVER_NAME).expect("a valid name");
        let serving = tokio::spawn(async move {
            let mut stream = acceptor.accept(a).await?;
            let seen = peer_fingerprint(stream.get_ref().1.peer_certificates());
            let mut buffer = [0_u8; 4];
            stream.read_exact(&mut buffer).await?;
            stream.write_all(&buffer).await?;
            stream.flush().await?;
            Ok::<_, std::io::Error>(seen)
        });
        let mut stream = connector.connect(name, b).await?;
        let seen_by_client = peer_fingerprint(stream.get_ref().1.peer_certificates());
        stream.write_all(b"sale").await?;
        stream.flush().await?;
        let mut echoed = [0_u8; 4];
        stream.read_exact(&mut echoed).await?;
        let seen_by_server = serving.await.map_err(std::io::Error::other)??;
        Ok((echoed.to_vec(), seen_by_server, seen_by_client))
    }

    fn two_devices() -> (Identity, Identity) {
        (
            Identity::ephemeral().expect("device a"),
            Identity::ephemeral().expect("device b"),
        )
    }

    #[tokio::test]
    async fn two_devices_that_trust_each_other_talk_and_know_who_is_who() {
        let (a, b) = two_devices();
        let server = server_config(&a, Trusted::new([b.fingerprint()])).expect("server");
        let client = client_config(&b, Trusted::new([a.fingerprint()])).expect("client");
        let (echoed, seen_by_server, seen_by_client) = exchange(server, client)
            .await
            .expect("the handshake completes");
        assert_eq!(echoed, b"sale");
        assert_eq!(seen_by_server, Some(b.fingerprint()));
        assert_eq!(seen_by_client, Some(a.fingerprint()));
    }

    #[tokio::test]
    async fn a_server_refuses_a_device_it_does_not_trust() {
        let (a, b) = two_devices();
        let stranger = Identity::ephemeral().expect("a stranger");
        let server = server_config(&a, Trusted::new([b.fingerprint()])).expect("server");
        let client = client_config(&stranger, Trusted::new([a.fingerprint()])).expect("client");
        assert!(exchange(server, client).await.is_err(), "refused");
    }

    #[tokio::test]
    async fn a_client_refuses_a_server_it_does_not_trust_before_sending_anything() {
        // A rogue server: whatever key it holds, its certificate is not the pinned one.
        let (a, b) = two_devices();
        let rogue = Identity::ephemeral().expect("a rogue");
        let server = server_config(&rogue, Trusted::new([b.fingerprint()])).expect("server");
        let client = client_config(&b, Trusted::new([a.fingerprint()])).expect("client");
        assert!(exchange(server, client).await.is_err(), "refused");
    }

    #[tokio::test]
    async fn a_revoked_device_is_refused_at_its_next_handshake() {
        // Found by this test: with session resumption on, the second connection resumed the
        // first one's session and skipped the certificate check.
        let (a, b) = two_devices();
        let trusted = Trusted::new([b.fingerprint()]);
        let server = server_config(&a, trusted.clone()).expect("server");
        let client = client_config(&b, Trusted::new([a.fingerprint()])).expect("client");
        exchange(server.clone(), client.clone())
            .await
            .expect("trusted");
        trusted.remove(&b.fingerprint());
        assert!(exchange(server, client).await.is_err(), "revoked");
    }

    /// `b`'s client configuration, but with resumption as rustls has it by default.
    fn resuming_client(b: &Identity, a: &Identity) -> ClientConfig {
        let mut config = client_config(b, Trusted::new([a.fingerprint()])).expect("client");
        config.resumption = rustls::client::Resumption::default();
        config
    }

    #[tokio::test]
    async fn the_server_alone_refuses_a_resumed_session_of_a_revoked_device() {
        let (a, b) = two_devices();
        let trusted = Trusted::new([b.fingerprint()]);
        let server = server_config(&a, trusted.clone()).expect("server");
        let client = resuming_client(&b, &a);
        exchange(server.clone(), client.clone())
            .await
            .expect("trusted");
        trusted.remove(&b.fingerprint());
        assert!(exchange(server, client).await.is_err(), "revoked");
    }

    #[tokio::test]
    async fn anyone_admits_any_key_holder_but_this_device_itself() {
        let (a, b) = two_devices();
        let server = server_config(&a, Trusted::anyone()).expect("server");
        let client = client_config(&b, Trusted::new([a.fingerprint()])).expect("client");
        let (_, seen_by_server, _) = exchange(server, client).await.expect("admitted");
        assert_eq!(seen_by_server, Some(b.fingerprint()));
        let server = server_config(&a, Trusted::anyone()).expect("server");
        let reflected = client_config(&a, Trusted::anyone()).expect("client");
        assert!(exchange(server, reflected).await.is_err(), "itself refused");
    }

    #[tokio::test]
    async fn a_device_does_not_accept_itself() {
        // A connection reflected back to its sender: the same certificate on both ends.
        let a = Identity::ephemeral().expect("device a");
        let server = server_config(&a, Trusted::new([a.fingerprint()])).expect("server");
        let client = client_config(&a, Trusted::new([a.fingerprint()])).expect("client");
        assert!(exchange(server, client).await.is_err(), "refused");
    }

    #[tokio::test]
    async fn a_client_without_a_certificate_is_refused() {
        let (a, b) = two_devices();
        let server = server_config(&a, Trusted::new([b.fingerprint()])).expect("server");
        let anonymous = dialing(&rustls::version::TLS13, &a, &b).with_no_client_auth();
        assert!(exchange(server, anonymous).await.is_err(), "refused");
    }

    /// A configuration of device `b` dialing device `a` in `version`, before its own
    /// certificate is chosen (the tests choose it wrong).
    fn dialing(
        version: &'static rustls::SupportedProtocolVersion,
        a: &Identity,
        b: &Identity,
    ) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .expect("a protocol version")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::new(
                Trusted::new([a.fingerprint()]),
                b.fingerprint(),
            )))
    }

    /// Presents one device's certificate with another's key.
    #[derive(Debug)]
    struct Borrowed(Arc<rustls::sign::CertifiedKey>);

    impl rustls::client::ResolvesClientCert for Borrowed {
        fn resolve(
            &self,
            _root_hint_subjects: &[&[u8]],
            _sigschemes: &[SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }

        fn has_certs(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_certificate_presented_without_its_private_key_is_refused() {
        // A thief who copied b's certificate (it is public) but not its key.
        let (a, b) = two_devices();
        let thief = Identity::ephemeral().expect("a thief");
        let server = server_config(&a, Trusted::new([b.fingerprint()])).expect("server");
        let (b_chain, _) = own(&b).expect("b's certificate");
        let (_, thief_key) = own(&thief).expect("the thief's key");
        let key = provider()
            .key_provider
            .load_private_key(thief_key)
            .expect("a signing key");
        let stolen = Borrowed(Arc::new(rustls::sign::CertifiedKey::new(b_chain, key)));
        let client =
            dialing(&rustls::version::TLS13, &a, &b).with_client_cert_resolver(Arc::new(stolen));
        assert!(exchange(server, client).await.is_err(), "refused");
    }

    #[tokio::test]
    async fn a_tls_1_2_client_is_refused() {
        let (a, b) = two_devices();
        let server = server_config(&a, Trusted::new([b.fingerprint()])).expect("server");
        let (chain, key) = own(&b).expect("b's key");
        let old = dialing(&rustls::version::TLS12, &a, &b)
            .with_client_auth_cert(chain, key)
            .expect("b's certificate");
        assert!(exchange(server, old).await.is_err(), "refused");
    }
}

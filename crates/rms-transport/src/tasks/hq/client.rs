//! The store's HTTP client for head office: one request per connection (a batch a second at
//! most, a long poll every half minute), TLS 1.3 with head office's certificate checked as
//! configured, plain HTTP only to this machine.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use rms_security::tls::{self, HeadOfficeTrust};

/// The largest answer read from head office.
const ANSWER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// How long a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request to head office did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum HeadOfficeError {
    /// The configured URL is not `http(s)://host:port`.
    #[error("head office's URL {url:?} is not http(s)://host:port")]
    BadUrl {
        /// The URL (or host) as configured.
        url: String,
    },
    /// Plain HTTP to a head office on another machine is refused.
    #[error("plain HTTP to head office is for this machine only; use https:// ({url})")]
    PlainRemote {
        /// The URL as configured.
        url: String,
    },
    /// The configured CA file cannot be read, or is not PEM certificates.
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        /// The CA file's path, as configured.
        path: String,
        /// Why it could not be read or parsed.
        source: rustls::pki_types::pem::Error,
    },
    /// The CA file, or the system's store when no CA file is given, holds no certificate
    /// rustls can use as a root.
    #[error("no usable root certificate (system store or CA file)")]
    NoRoots,
    /// The TLS configuration for head office cannot be made.
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    /// The TCP connection or the TLS handshake failed (head office unreachable, or its
    /// certificate not the one configured).
    #[error("cannot reach head office: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP exchange failed after the connection was made.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// Connecting, or the answer, took longer than this.
    #[error("head office did not answer within {0:?}")]
    TimedOut(Duration),
    /// Head office's answer body is over 8 MiB, or broke off while it was read.
    #[error("head office's answer is too large")]
    TooLarge,
    /// The request cannot be built (the configured host does not make a valid URI).
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
}

/// Where head office is and how this store proves itself to it.
#[derive(Clone)]
pub struct HeadOffice {
    authority: String,
    host: String,
    tls: Option<tokio_rustls::TlsConnector>,
    token: String,
}

impl std::fmt::Debug for HeadOffice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadOffice")
            .field("authority", &self.authority)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl HeadOffice {
    /// Head office at `url` (`https://hq.example:7880`; `http://` only on loopback), the store's
    /// `token`, and how its certificate is checked: `pin` (a SHA-256 fingerprint), else the
    /// roots of `ca_file`, else the system's roots.
    pub fn new(
        url: &str,
        token: String,
        pin: Option<rms_domain::Fingerprint>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<HeadOffice, HeadOfficeError> {
        let bad = || HeadOfficeError::BadUrl {
            url: url.to_owned(),
        };
        let (https, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            _ => return Err(bad()),
        };
        let authority = rest.split('/').next().unwrap_or_default().to_owned();
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority
        } else if https {
            format!("{authority}:443")
        } else {
            format!("{authority}:80")
        };
        let host = crate::net::dial::authority(&authority)
            .and_then(|a| a.rsplit_once(':').map(|(h, _)| h.to_owned()))
            .filter(|h| !h.is_empty())
            .ok_or_else(bad)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = if https {
            let trust = match (pin, ca_file) {
                (Some(pin), _) => HeadOfficeTrust::Pinned(pin),
                (None, Some(path)) => HeadOfficeTrust::Roots(Arc::new(roots_from(path)?)),
                (None, None) => HeadOfficeTrust::Roots(Arc::new(system_roots()?)),
            };
            let config = tls::head_office_config(&trust)?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            if !crate::net::dial::is_loopback(&authority) {
                return Err(HeadOfficeError::PlainRemote {
                    url: url.to_owned(),
                });
            }
            None
        };
        Ok(HeadOffice {
            authority,
            host,
            tls,
            token,
        })
    }

    /// One request; the answer's status and body.
    pub async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), HeadOfficeError> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let connect = async {
            let stream = TcpStream::connect(&self.authority).await?;
            stream.set_nodelay(true)?;
            Ok::<_, HeadOfficeError>(stream)
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| HeadOfficeError::TimedOut(CONNECT_TIMEOUT))??;
        let exchange = async {
            match &self.tls {
                None => exchange(stream, request).await,
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(
                        |_| HeadOfficeError::BadUrl {
                            url: self.host.clone(),
                        },
                    )?;
                    let stream = connector.connect(name, stream).await?;
                    exchange(stream, request).await
                }
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HeadOfficeError::TimedOut(timeout))?
    }
}

async fn exchange<S>(
    io: S,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(u16, Bytes), HeadOfficeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(io);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await;
    let answer = async {
        let response = response?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|_| HeadOfficeError::TooLarge)?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    connection.abort();
    answer
}

fn roots_from(path: &std::path::Path) -> Result<rustls::RootCertStore, HeadOfficeError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| HeadOfficeError::CaFile {
            path: path.display().to_string(),
            source,
        })?;
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(HeadOfficeError::NoRoots);
    }
    Ok(roots)
}

fn system_roots() -> Result<rustls::RootCertStore, HeadOfficeError> {
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        log::warn!("a system root certificate cannot be read: {err}");
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(HeadOfficeError::NoRoots);
    }
    Ok(roots)
}

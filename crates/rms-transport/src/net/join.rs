//! Joining a store with a pairing code (issue #14, item 4): the new device's side, over the
//! store port. The code, its window and the proofs are `rms_security::pairing` and `proof`; the
//! sponsor's side is the store port's (`api::store_port`).

use rms_security::pairing::{CODE_CHARS, REFUSED_CODE, normalize};
use rms_security::proof::{self, DEVICE_HEADER, PROOF_HEADER, Side};

use crate::input::{Driver, NodeError};
use crate::net::dial::{self, DIAL_TIMEOUT, DialError, Dialer};

/// The sponsor a device joined.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Joined {
    /// The sponsor's device id, as its answer claimed it and its proof bound it.
    pub device_id: rms_domain::DeviceId,
    /// The SHA-256 fingerprint of the sponsor's certificate, now trusted by this device.
    pub fingerprint: rms_domain::Fingerprint,
    /// The sponsor's name as it gave it, or `device-<id>` if it gave none that is valid.
    pub name: String,
}

/// Why joining a store with a code failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// What was typed is not a pairing code (wrong length or characters); nothing was sent.
    #[error("{typed:?} is not a pairing code ({CODE_CHARS} letters and digits, dashes optional)")]
    BadCode {
        /// What was typed.
        typed: String,
    },
    /// The sponsor's store port could not be reached, or the request to it failed or timed
    /// out.
    #[error("cannot reach the sponsor: {0}")]
    Dial(#[from] DialError),
    /// The sponsor refused the code ([`REFUSED_CODE`]). It says no more, whatever the reason:
    /// a wrong code, no window open, the window expired or used, or this address waiting after
    /// wrong codes (`rms_security::pairing`).
    #[error(
        "the sponsor refused the code; it does not say why. Check the code; check that a \
         pairing window is open on the sponsor (`rms-node pair` there) and has not expired (10 \
         minutes unless --ttl) or been used by another device; after a wrong code, wait a few \
         seconds before trying again"
    )]
    CodeRefused,
    /// The sponsor answered with another error (a status other than 200): a request it could
    /// not read, or, after the code, a device id another certificate holds or a trust change
    /// its master refused.
    #[error("the sponsor refused: {message} ({code})")]
    Refused {
        /// The sponsor's error code (its body's `error`, e.g. `device_id_taken`), or
        /// `refused` if the body had none.
        code: String,
        /// The sponsor's error message, for a person (`refused` if the body had none).
        message: String,
    },
    /// The sponsor accepted, but its answer names no device id or does not prove the code for
    /// this session: whoever answered is not the sponsor (or a man in the middle). Nothing is
    /// trusted.
    #[error("the device at that address did not prove it holds the code: it is not the sponsor")]
    NotTheSponsor,
    /// The sponsor proved the code, but this device could not record its trust in it (the
    /// local write through the driver failed).
    #[error("cannot trust the sponsor's certificate: {0}")]
    Node(#[from] NodeError),
    /// This device was started without peers (see [`join`]): it is refused before it dials.
    #[error(
        "this device was started without --peer: it is a store of its own, and what it numbered \
         so far could collide with another device's events; restart it with --peer <a device's \
         store port> (and a fresh data directory if it replaces a device), then join"
    )]
    StoreOfItsOwn,
}

/// The store-port route a new device joins through.
pub const JOIN_PATH: &str = "/api/v1/pairing/join";
/// Largest answer to a join.
const JOIN_ANSWER_BYTES_MAX: usize = 64 * 1024;

/// Joins the store of the sponsor at `peer` with the code it showed (see the module doc): on
/// success the sponsor trusts this device's certificate and this device the sponsor's.
///
/// `alone`: this device was started without peers and has none in its roster. A device joins as
/// what it was started as: one given peers began an incarnation for it
/// (`rms_storage::incarnation`); one started alone numbered its events from 1 (issue #27), so it
/// is refused ([`JoinError::StoreOfItsOwn`]). The sponsor's certificate is trusted through
/// `driver`, as a local write.
pub async fn join(
    dialer: &Dialer,
    driver: &Driver,
    alone: bool,
    typed: &str,
    peer: &str,
) -> Result<Joined, JoinError> {
    let code = normalize(typed).ok_or_else(|| JoinError::BadCode {
        typed: typed.to_owned(),
    })?;
    if alone {
        return Err(JoinError::StoreOfItsOwn);
    }
    let dialed = tokio::time::timeout(DIAL_TIMEOUT, dialer.connect_any(peer))
        .await
        .map_err(|_| DialError::TimedOut)??;
    let session = dialed.session;
    let request = join_request(dialer, &dialed, &code);
    let (status, headers, body) =
        dial::request_once(dialed, request, JOIN_ANSWER_BYTES_MAX).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status != 200 {
        if answer["error"] == REFUSED_CODE {
            return Err(JoinError::CodeRefused);
        }
        let text = |key: &str| answer[key].as_str().unwrap_or("refused").to_owned();
        return Err(JoinError::Refused {
            code: text("error"),
            message: text("message"),
        });
    }
    let sponsor = proven_sponsor(&headers, &session, &code)?;
    let name = answer["name"]
        .as_str()
        .filter(|n| rms_domain::validate_text("name", n, rms_domain::NAME_CHARS_MAX).is_ok())
        .map_or_else(|| format!("device-{sponsor}"), str::to_owned);
    driver
        .local_write(rms_storage::local::Command::Trust {
            fingerprint: session.fingerprint,
            device_id: sponsor,
            name: name.clone(),
            state: rms_domain::TrustState::Trusted,
            how: "paired".into(),
        })
        .await?;
    Ok(Joined {
        device_id: sponsor,
        fingerprint: session.fingerprint,
        name,
    })
}

/// The join request on `dialed`: `POST` [`JOIN_PATH`] with this device's id and name, and its
/// proof of `code` bound to this session (the code itself is not sent).
fn join_request(
    dialer: &Dialer,
    dialed: &dial::Dialed,
    code: &str,
) -> hyper::Request<http_body_util::Full<hyper::body::Bytes>> {
    let session = dialed.session;
    let mut request = hyper::Request::new(http_body_util::Full::new(hyper::body::Bytes::new()));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = hyper::Uri::from_static(JOIN_PATH);
    let headers = request.headers_mut();
    headers.extend(dialer.identity_headers());
    let me = (dialer.fingerprint(), dialer.device());
    let mine = proof::prove(code, Side::Dialer, &session.exporter, &me.0, me.1);
    if let Ok(host) = hyper::header::HeaderValue::from_str(&dialed.authority) {
        headers.insert(hyper::header::HOST, host);
    }
    if let Ok(value) = hyper::header::HeaderValue::from_str(&mine) {
        headers.insert(PROOF_HEADER, value);
    }
    request
}

/// The sponsor's device id, from its accepting answer's headers: the id it claims, and its proof
/// of `code` for this session and that id. [`JoinError::NotTheSponsor`] if either is missing or
/// the proof does not verify.
fn proven_sponsor(
    headers: &hyper::HeaderMap,
    session: &dial::Session,
    code: &str,
) -> Result<rms_domain::DeviceId, JoinError> {
    let sponsor = headers
        .get(DEVICE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(rms_domain::DeviceId::new)
        .ok_or(JoinError::NotTheSponsor)?;
    let proven = headers
        .get(PROOF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| {
            let fingerprint = &session.fingerprint;
            proof::verify(
                code,
                Side::Acceptor,
                &session.exporter,
                fingerprint,
                sponsor,
                given,
            )
        });
    if !proven {
        return Err(JoinError::NotTheSponsor);
    }
    Ok(sponsor)
}

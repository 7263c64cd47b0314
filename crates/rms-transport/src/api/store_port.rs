//! The store port (issue #14): where devices reach each other. TLS 1.3 only, a client
//! certificate required, nothing in plaintext; it carries device links (`/api/v1/ws`) and the
//! REST sync fallback (`/api/v1/sync/exchange`), and nothing else. The API for the apps of this
//! machine is [`crate::serve`]'s, on another listener.
//!
//! **Invariants:**
//! - Every request is admitted by the trust list before it reaches a route ([`admit`]): a
//!   trusted certificate speaks for the device id the list binds it to and no other; a revoked
//!   one is refused; an unknown one is admitted only with a proof of the store key bound to this
//!   TLS session (`rms_security::proof`) while the upgrade window is open, and the trust it gets is an
//!   event of the master log like any other; else it is listed as pending and refused.
//! - Every refusal is audited (an alarm when a certificate claims a device id that is not its
//!   own, or a revoked one comes back), within the rate limits of [`crate::audit_gate`] per
//!   certificate and per source address.
//! - An unknown certificate never reads anything: the refusal comes before any route.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper_util::rt::TokioIo;
use rms_domain::{DeviceId, Fingerprint, TrustState};
use rms_storage::StorageError;
use rms_storage::local::Command;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use warp::http::{Request, StatusCode};
use warp::reply::{Reply, Response};

use super::error::ApiError;
use super::server;
use super::slots::Slots;
use crate::input::NodeError;
use crate::input::{DeviceRefusal, Input, Refused};
use crate::net::wire::Peer;
use crate::node::Node;
use rms_security::pairing::{self, PairingRefused};
use rms_security::proof::{self, DEVICE_HEADER, NAME_HEADER, PROOF_HEADER, Side};
use rms_security::tls::{self, Trusted};

/// A connection must complete its TLS handshake this soon (a device on the store's network
/// takes milliseconds; a bystander's idle connection holds its slot no longer).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// A request's headers must arrive this soon, also on a kept-alive connection between two
/// requests: a REST link (`--sync-transport rest`) polls at least every heartbeat interval, and
/// an operator may set that to several seconds.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Who connected: what the TLS handshake established.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connection {
    pub fingerprint: Fingerprint,
    pub exporter: [u8; 32],
    pub address: SocketAddr,
}

/// The store port on `listener`, served by the future this returns until `shutdown` completes.
/// Fails at once if this device's certificate cannot be used.
pub fn serve_store(
    listener: TcpListener,
    node: Node,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send + 'static, tls::TlsError> {
    let config = tls::server_config(node.identity(), Trusted::anyone())?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    Ok(serve_tls(listener, node, acceptor, shutdown))
}

async fn serve_tls(
    listener: TcpListener,
    node: Node,
    acceptor: TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let port = Arc::new(StorePort { node });
    let routes = warp::service(super::store_routes(port.node.clone()));
    let slots = Arc::new(Slots::default());
    let refused = port.node.status().metrics.refused.connections.clone();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = server::http_builder(HEADER_READ_TIMEOUT).http1_only();
    tokio::pin!(shutdown);
    loop {
        let (stream, address) = tokio::select! {
            () = &mut shutdown => break,
            accepted = server::accept_one(&listener) => match accepted {
                Some(accepted) => accepted,
                None => continue,
            },
        };
        // Never wait for a slot: a flood is turned away at once, and the accept loop keeps
        // taking the connections of the store's own devices.
        let Some(slot) = slots.take(address.ip()) else {
            refused.add();
            log::debug!("closed a connection from {address}: its source holds all its slots");
            continue;
        };
        let (acceptor, port, routes) = (acceptor.clone(), Arc::clone(&port), routes.clone());
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        // The handshake runs in the connection's task: a slow one cannot hold the accept loop.
        tokio::spawn(async move {
            let Some((stream, connection)) = handshake(&acceptor, stream, address).await else {
                return;
            };
            let mut slot = slot;
            let book = port.node.trust().clone();
            if book.is_trusted(&connection.fingerprint) {
                slot.prove();
            }
            let service = StorePort::service(port, connection, routes);
            let serving = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let serving = watcher.watch(serving.into_owned());
            // Revocation closes every door: the connection of a certificate that stops being
            // trusted is dropped with whatever request it has in flight (no answer is sent).
            tokio::select! {
                served = serving => {
                    if let Err(err) = served {
                        log::debug!("a store-port connection ended: {err}");
                    }
                }
                () = book.lost(connection.fingerprint) => log::warn!(
                    "closed a store-port connection of {} from {address}: its certificate is \
                     no longer trusted",
                    connection.fingerprint.short()
                ),
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(server::SHUTDOWN_WAIT, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("store-port connections still open after the stop; leaving them");
    }
}

/// The TLS handshake of a connection from `address`, within [`HANDSHAKE_TIMEOUT`], and what it
/// established; `None` if it failed, timed out, or showed no certificate.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: tokio::net::TcpStream,
    address: SocketAddr,
) -> Option<(
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    Connection,
)> {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            log::info!("a TLS handshake from {address} failed: {err}");
            return None;
        }
        Err(_) => {
            log::debug!("a TLS handshake from {address} timed out");
            return None;
        }
    };
    let (_, session) = stream.get_ref();
    let fingerprint = tls::peer_fingerprint(session.peer_certificates())?;
    let exporter = proof::exporter(session)?;
    let connection = Connection {
        fingerprint,
        exporter,
        address,
    };
    Some((stream, connection))
}

struct StorePort {
    node: Node,
}

impl StorePort {
    fn service<R>(
        port: Arc<Self>,
        connection: Connection,
        routes: R,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response,
        Error = Infallible,
        Future = impl Future<Output = Result<Response, Infallible>> + Send,
    > + Clone
    where
        R: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>
            + Clone
            + Send
            + 'static,
        R::Future: Send,
    {
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let (port, mut routes) = (Arc::clone(&port), routes.clone());
            async move {
                if request.uri().path() == crate::net::join::JOIN_PATH {
                    return Ok(port.pair(&connection, request.headers()).await);
                }
                let (device, answer_headers) =
                    match port.admit(&connection, request.headers()).await {
                        Ok(admitted) => admitted,
                        Err(refused) => return Ok(refused),
                    };
                let mut response = if request.uri().path() == "/api/v1/ws" {
                    port.upgrade_link(&mut request, connection, device)
                } else {
                    request.extensions_mut().insert(super::Admitted(device));
                    let answer = tower_service::Service::call(&mut routes, request)
                        .await
                        .unwrap_or_else(|never| match never {});
                    // An answer goes only to a certificate still trusted when it is ready.
                    if let Some(refused) = port.no_longer_admitted(&connection, device) {
                        return Ok(refused);
                    }
                    answer
                };
                response.headers_mut().extend(answer_headers);
                Ok(response)
            }
        })
    }

    /// Admits a request by its certificate (see the module's invariants): the device it speaks
    /// for, and the headers to answer with (this device's id, and its own proof of the store
    /// key while the window is open, for a device that is new to the store).
    async fn admit(
        &self,
        connection: &Connection,
        headers: &HeaderMap,
    ) -> Result<(DeviceId, HeaderMap), Response> {
        let node = &self.node;
        let book = node.trust();
        let now_ms = node.now_ms();
        let claimed = header(headers, DEVICE_HEADER)
            .and_then(|v| v.parse::<u16>().ok())
            .and_then(DeviceId::new);
        let fingerprint = connection.fingerprint;
        let device = match book.entry(&fingerprint) {
            Some(entry) if entry.state == TrustState::Revoked => {
                return Err(self.refuse(connection, claimed, Refused::Revoked, None));
            }
            Some(entry) => {
                if claimed.is_some_and(|c| c != entry.device_id) {
                    return Err(self.refuse(connection, claimed, Refused::DeviceIdMismatch, None));
                }
                entry.device_id
            }
            None => self.enroll(connection, claimed, headers, now_ms).await?,
        };
        let mut answer = HeaderMap::new();
        let me = node.config().device_id;
        answer.insert(DEVICE_HEADER, HeaderValue::from(me.get()));
        if let Some(key) = book.window_key(now_ms) {
            let proof = proof::prove(&key, Side::Acceptor, &connection.exporter, &book.me(), me);
            if let Ok(value) = HeaderValue::from_str(&proof) {
                answer.insert(PROOF_HEADER, value);
            }
        }
        Ok((device, answer))
    }

    /// `None` if the certificate admitted for `device` at a request's start still is, now that
    /// its answer is ready (not revoked meanwhile, nor bound to another id); else the refusal to
    /// send instead (the connection closes after it). A certificate the list dropped for
    /// another reason (a truncation undid its trust) is closed by [`crate::net::trust::TrustBook::lost`].
    fn no_longer_admitted(&self, connection: &Connection, device: DeviceId) -> Option<Response> {
        match self.node.trust().entry(&connection.fingerprint) {
            Some(entry) if entry.state == TrustState::Revoked => {
                Some(self.refuse(connection, Some(device), Refused::Revoked, None))
            }
            Some(entry) if entry.state == TrustState::Trusted && entry.device_id != device => {
                Some(self.refuse(connection, Some(device), Refused::DeviceIdMismatch, None))
            }
            _ => None,
        }
    }

    /// An unknown certificate: trusted on first use if it proves the store key for a device id
    /// that is free, else pending.
    async fn enroll(
        &self,
        connection: &Connection,
        claimed: Option<DeviceId>,
        headers: &HeaderMap,
        now_ms: u64,
    ) -> Result<DeviceId, Response> {
        let node = &self.node;
        let book = node.trust();
        let Some(device) = claimed else {
            return Err(ApiError::bad_request(
                "bad_request",
                format!("a device new to the store says who it is: the {DEVICE_HEADER} header"),
            )
            .into_response());
        };
        let name = header(headers, NAME_HEADER)
            .filter(|n| rms_domain::validate_text("name", n, rms_domain::NAME_CHARS_MAX).is_ok())
            .map_or_else(|| format!("device-{device}"), str::to_owned);
        let proven = book.window_key(now_ms).is_some_and(|key| {
            header(headers, PROOF_HEADER).is_some_and(|given| {
                let (exporter, fingerprint) = (&connection.exporter, &connection.fingerprint);
                proof::verify(&key, Side::Dialer, exporter, fingerprint, device, given)
            })
        });
        if !proven {
            return Err(self.refuse(connection, claimed, Refused::UnknownDevice, Some(name)));
        }
        // Only after the proof: an unknown device learns nothing of which ids are in use.
        if device == node.config().device_id || book.trusted_for(device).is_some() {
            return Err(self.refuse(connection, claimed, Refused::DeviceIdTaken, None));
        }
        let command = Command::Trust {
            fingerprint: connection.fingerprint,
            device_id: device,
            name,
            state: TrustState::Trusted,
            how: "store_key".into(),
        };
        match node.local_write(command).await {
            Ok(_) => {
                log::info!(
                    "trusted device {device} ({}) on its proof of the store key",
                    connection.fingerprint.short()
                );
                Ok(device)
            }
            Err(NodeError::Storage(StorageError::Refused { reason, .. })) => {
                Err(self.refuse(connection, claimed, Refused::Trust(reason), None))
            }
            Err(err) => Err(ApiError::from(err).into_response()),
        }
    }

    /// `POST /api/v1/pairing/join` from a device new to the store: it proves the code of this
    /// device's pairing window (`rms_security::pairing`); its certificate is trusted, and the answer
    /// carries this device's proof of the code.
    async fn pair(&self, connection: &Connection, headers: &HeaderMap) -> Response {
        let node = &self.node;
        let book = node.trust();
        let claimed = header(headers, DEVICE_HEADER)
            .and_then(|v| v.parse::<u16>().ok())
            .and_then(DeviceId::new);
        let (Some(device), Some(given)) = (claimed, header(headers, PROOF_HEADER)) else {
            let message = format!("a join says who it is ({DEVICE_HEADER}) and proves the code");
            return ApiError::bad_request("bad_request", message).into_response();
        };
        let fingerprint = connection.fingerprint;
        if book
            .entry(&fingerprint)
            .is_some_and(|e| e.state == TrustState::Revoked)
        {
            let revoked = Refused::Pairing(PairingRefused::Revoked);
            return self.refuse(connection, claimed, revoked, None);
        }
        let (exporter, source) = (connection.exporter, connection.address.ip());
        let attempt = node.pairing().attempt(node.now_ms(), source, |code| {
            proof::verify(code, Side::Dialer, &exporter, &fingerprint, device, given)
        });
        let code = match attempt {
            Ok(code) => code,
            Err(refused) => {
                return self.refuse(connection, claimed, Refused::Pairing(refused), None);
            }
        };
        // Only after the code: a device without it learns nothing of which ids are in use.
        let me = node.config().device_id;
        if device == me || book.trusted_for(device).is_some_and(|f| f != fingerprint) {
            return self.refuse(connection, claimed, Refused::DeviceIdTaken, None);
        }
        let name = header(headers, NAME_HEADER)
            .filter(|n| rms_domain::validate_text("name", n, rms_domain::NAME_CHARS_MAX).is_ok())
            .map_or_else(|| format!("device-{device}"), str::to_owned);
        let command = Command::Trust {
            fingerprint,
            device_id: device,
            name,
            state: TrustState::Trusted,
            how: "paired".into(),
        };
        if let Err(err) = node.local_write(command).await {
            return match err {
                NodeError::Storage(StorageError::Refused { reason, .. }) => {
                    self.refuse(connection, claimed, Refused::Trust(reason), None)
                }
                other => ApiError::from(other).into_response(),
            };
        }
        log::info!("paired device {device} ({})", fingerprint.short());
        let mine = proof::prove(&code, Side::Acceptor, &exporter, &book.me(), me);
        let body = serde_json::json!({
            "device_id": me,
            "fingerprint": book.me(),
            "name": node.config().name,
        });
        let mut response = warp::reply::json(&body).into_response();
        let answer = response.headers_mut();
        answer.insert(DEVICE_HEADER, HeaderValue::from(me.get()));
        if let Ok(value) = HeaderValue::from_str(&mine) {
            answer.insert(PROOF_HEADER, value);
        }
        response
    }

    /// Refuses a certificate: audited (within [`crate::audit_gate`]'s limits), and for an
    /// unknown one, listed as pending. A refused join reads [`pairing::REFUSED_CODE`] and
    /// [`pairing::REFUSED_MESSAGE`] whatever the reason: only the log and audit name it.
    fn refuse(
        &self,
        connection: &Connection,
        claimed: Option<DeviceId>,
        why: Refused,
        pending_name: Option<String>,
    ) -> Response {
        let message = match why {
            Refused::UnknownDevice => format!(
                "this device ({}) is not trusted by the store; approve it on a trusted device \
                 with `rms-node devices approve {}`, or pair it with a code",
                connection.fingerprint.short(),
                connection.fingerprint
            ),
            Refused::Revoked => "this device certificate was revoked".to_owned(),
            Refused::DeviceIdMismatch | Refused::DeviceIdTaken => {
                "this device id belongs to another certificate".to_owned()
            }
            Refused::Pairing(_) => {
                // The reason goes to the log and audit (`refuse_with`), not to the joiner.
                let mut response =
                    self.refuse_with(connection, claimed, why, pending_name, String::new());
                let (code, message) = (pairing::REFUSED_CODE, pairing::REFUSED_MESSAGE);
                let one_answer = ApiError::new(StatusCode::FORBIDDEN, code, message);
                *response.body_mut() = one_answer.into_response().into_body();
                return response;
            }
            Refused::Trust(reason) => format!("{} ({})", reason.describe(), reason.as_str()),
        };
        self.refuse_with(connection, claimed, why, pending_name, message)
    }

    fn refuse_with(
        &self,
        connection: &Connection,
        claimed: Option<DeviceId>,
        why: Refused,
        pending_name: Option<String>,
        message: String,
    ) -> Response {
        let audited = self
            .node
            .driver()
            .audit(Input::DeviceRefused(DeviceRefusal {
                fingerprint: connection.fingerprint,
                claimed,
                address: connection.address.to_string(),
                why,
                pending_name,
            }));
        let level = if audited {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "refused device {} ({claimed:?}) from {}: {}",
            connection.fingerprint.short(),
            connection.address,
            why.as_str()
        );
        let mut response =
            ApiError::new(StatusCode::FORBIDDEN, why.as_str(), message).into_response();
        // A refused device does not keep its connection (and a connection slot).
        response
            .headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// `GET /api/v1/ws` from an admitted device: a link bound to its certificate and device id.
    fn upgrade_link(
        &self,
        request: &mut Request<Incoming>,
        connection: Connection,
        device: DeviceId,
    ) -> Response {
        let peer = Peer {
            fingerprint: Some(connection.fingerprint),
            device: Some(device),
        };
        server::upgrade_link(request, &self.node, peer)
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

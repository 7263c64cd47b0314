//! The HTTP server: our own accept loop (hyper), so that the node can cap its connections, set
//! `TCP_NODELAY` on each, and upgrade `/api/v1/ws` itself with a WebSocket configuration warp
//! does not expose; every other request goes to the warp routes of [`super::routes`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use warp::http::{Request, StatusCode};
use warp::reply::{Reply, Response};

use super::auth;
use super::error::ApiError;
use crate::net::link;
use crate::net::wire::{self, Peer};
use crate::node::Node;
use rms_security::tls;

/// Most HTTP connections served at once (WebSocket links count until they are upgraded; links
/// have their own cap, [`link::LINKS_MAX`]). Beyond it the node stops accepting until one closes.
pub const CONNECTIONS_MAX: usize = 1024;

/// Connections waiting to be accepted before the kernel refuses new ones.
const LISTEN_BACKLOG: u32 = 1024;
/// A connection must send a request's headers this soon (also an idle keep-alive connection's
/// next request), or it is closed: idle or slow connections cannot hold the cap.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `serve` waits for in-flight requests after the shutdown signal.
pub(crate) const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Status pages open at once (each feed reads the products and the audit log on changes).
pub const STATUS_FEEDS_MAX: usize = 32;

/// Binds `addr` for [`serve`], with `TCP_NODELAY` (also set on every accepted connection): a
/// node sends small messages in quick succession (an ack, then a broadcast), and with Nagle's
/// algorithm the second waits for the peer's delayed ACK, about 40 ms on Linux.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The connection settings both listeners share: HTTP/1 headers must arrive within
/// `header_read_timeout` (also an idle keep-alive connection's next request).
pub(crate) fn http_builder(header_read_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        // What a connection may buffer (a reader that does not read: a change feed, a large
        // answer): it stalls there, and the change feed tells it to reset.
        .max_buf_size(CONNECTION_BUFFER_MAX);
    builder
}

/// The most a connection buffers in either direction (hyper's default is about 400 KiB; 8 KiB
/// is hyper's least). Request headers must fit in it (`431` beyond); bodies stream through it.
/// An idle connection, a change feed above all, holds its read buffer for its whole life: at
/// 64 KiB hyper grew it to 16 KiB on the first read, at 8 KiB it stays at 8 KiB (issue #16, F2).
pub const CONNECTION_BUFFER_MAX: usize = 8 * 1024;

/// Waits for a connection slot and accepts a connection on it, with `TCP_NODELAY`. `None`
/// when accepting failed (out of file descriptors, say): the caller tries again.
pub(crate) async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = Arc::clone(permits).acquire_owned().await.ok()?;
    let (stream, address) = accept_one(listener).await?;
    Some((stream, address, permit))
}

/// Accepts a connection, with `TCP_NODELAY`; `None` when accepting failed (out of file
/// descriptors, say), after a short wait: the caller tries again.
pub(crate) async fn accept_one(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok((stream, address)) => {
            if let Err(err) = stream.set_nodelay(true) {
                log::debug!("cannot set TCP_NODELAY: {err}");
            }
            Some((stream, address))
        }
        Err(err) => {
            // Wait a little rather than spin.
            log::warn!("cannot accept a connection: {err}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Serves the node's API on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish (their writes are committed before they answer), and returns.
///
/// On a loopback address the API is plain HTTP, for the apps of this machine. On any other it
/// is HTTPS with this device's certificate (the node refuses to start there without a store
/// key, the bearer token every request must then carry), and device links are refused: they go
/// to the store port ([`crate::serve_store`]).
///
/// Returns the future that serves; fails at once if HTTPS is due and this device's certificate
/// cannot be used.
pub fn serve(
    listener: TcpListener,
    node: Node,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send + 'static, tls::TlsError> {
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let acceptor = if loopback {
        None
    } else {
        let config = tls::api_server_config(node.identity())?;
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    };
    Ok(serve_api(listener, node, acceptor, shutdown))
}

async fn serve_api(
    listener: TcpListener,
    node: Node,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // Shared: every connection holds a pointer to the filter tree, not a copy of it (an idle
    // connection, a change feed above all, costs its buffers and little else).
    let routes = Arc::new(warp::service(super::routes(node.clone())));
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = api_http_builder();
    let feeds = Arc::new(Semaphore::new(STATUS_FEEDS_MAX));
    tokio::pin!(shutdown);
    loop {
        let (stream, address, permit) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &permits) => match accepted {
                Some(accepted) => accepted,
                None => continue,
            },
        };
        let (routes, node, feeds) = (Arc::clone(&routes), node.clone(), Arc::clone(&feeds));
        let local = address.ip().is_loopback();
        let loopback_listener = acceptor.is_none();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(super::RemoteAddr(address));
            let routes = (*routes).clone();
            let (node, feeds) = (node.clone(), Arc::clone(&feeds));
            let from = Origin {
                local,
                loopback_listener,
            };
            answer(routes, request, node, feeds, from)
        });
        let (builder, watcher, acceptor) = (builder.clone(), graceful.watcher(), acceptor.clone());
        tokio::spawn(async move {
            let served = match acceptor {
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
                Some(acceptor) => match tls_handshake(&acceptor, stream, address).await {
                    Some(stream) => {
                        let io = TokioIo::new(stream);
                        let connection = builder.serve_connection_with_upgrades(io, service);
                        watcher.watch(connection.into_owned()).await
                    }
                    None => Ok(()),
                },
            };
            if let Err(err) = served {
                log::debug!("a connection ended: {err}");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_WAIT, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("connections still open {SHUTDOWN_WAIT:?} after the stop; leaving them");
    }
}

/// The API's HTTP/1 and HTTP/2 settings: [`http_builder`]'s, and HTTP/2 pings every
/// [`link::PING_INTERVAL`], a connection that does not answer one within [`HEADER_READ_TIMEOUT`]
/// being closed.
fn api_http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = http_builder(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(link::PING_INTERVAL))
        .keep_alive_timeout(HEADER_READ_TIMEOUT);
    builder
}

/// Where a request to the API came from, as [`answer`] checks it.
#[derive(Debug, Clone, Copy)]
struct Origin {
    /// The peer's address is a loopback address (this machine).
    local: bool,
    /// The API listens without TLS, which it does on loopback only.
    loopback_listener: bool,
}

/// What the API answers one request: a refusal for a cross-site request, for a foreign `Host`
/// on the loopback listener and for a device route from another machine; then the local link
/// and the status feed, which it upgrades itself; then the warp routes.
async fn answer<S>(
    mut routes: S,
    request: Request<Incoming>,
    node: Node,
    feeds: Arc<Semaphore>,
    from: Origin,
) -> Result<Response, Infallible>
where
    S: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>,
{
    if let Some(refusal) = cross_site(request.headers()) {
        return Ok::<Response, Infallible>(refusal);
    }
    if from.loopback_listener
        && let Some(refusal) = foreign_host(request.headers())
    {
        return Ok(refusal);
    }
    let path = request.uri().path();
    if !from.local && (path == "/api/v1/ws" || path.starts_with("/api/v1/sync/")) {
        return Ok(device_route_refused());
    }
    match path {
        "/api/v1/ws" => return Ok(upgrade_local_link(request, &node)),
        STATUS_FEED_PATH => return Ok(upgrade_status_feed(request, &node, feeds)),
        _ => {}
    }
    tower_service::Service::call(&mut routes, request).await
}

/// The TLS handshake of a connection to the API, within [`HEADER_READ_TIMEOUT`]; `None` (logged
/// when it failed, silent when it timed out) if it did not complete.
async fn tls_handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    address: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let handshake = acceptor.accept(stream);
    match tokio::time::timeout(HEADER_READ_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            log::info!("a TLS handshake from {address} failed: {err}");
            None
        }
        Err(_) => None,
    }
}

/// A request to the loopback API that names this machine by another name than a loopback
/// address or `localhost`: a web page whose name an attacker pointed at 127.0.0.1 (DNS
/// rebinding) would pass the same-origin check, so it is refused here.
fn foreign_host(headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(header::HOST)?.to_str().unwrap_or("");
    let with_port = if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:0")
    };
    (!crate::net::dial::is_loopback(&with_port)).then(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "this API answers requests for 127.0.0.1, [::1] or localhost only",
        )
        .into_response()
    })
}

/// A device link or REST sync request that reached the API from another machine.
fn device_route_refused() -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "store_port",
        "devices sync over the store port (TLS with device certificates), not the API",
    )
    .into_response()
}

/// A request a web page on another site made (its `Origin` is not this node): refused, so that a
/// page open in a till's browser cannot sell, read or open a link on a node without a store key
/// (on loopback, a node without a key trusts whoever reaches it). Tools like curl send no
/// `Origin`; the status page is same-origin.
fn cross_site(headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|origin_host| !host.is_empty() && origin_host.eq_ignore_ascii_case(host));
    (!same).then(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "requests from web pages of other sites are refused",
        )
        .into_response()
    })
}

/// `GET /api/v1/ws` on the loopback API (a tool of this machine): checks the store key, then as
/// [`upgrade_link`].
fn upgrade_local_link(mut request: Request<Incoming>, node: &Node) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let how = "Authorization: Bearer <store key>";
    if let Err(refused) = auth::require_key(node, authorization, how) {
        return refused.into_response();
    }
    upgrade_link(&mut request, node, Peer::default())
}

/// `GET /api/v1/ws`: checks the link cap and the handshake headers, answers 101, and runs the
/// link (to `peer`) on the upgraded connection.
pub(crate) fn upgrade_link(request: &mut Request<Incoming>, node: &Node, peer: Peer) -> Response {
    let headers = request.headers();
    let Some(key) = websocket_key(request.method(), headers) else {
        return ApiError::bad_request(
            "bad_upgrade",
            "GET /api/v1/ws must be a WebSocket upgrade (version 13)",
        )
        .into_response();
    };
    let (links, driver) = (node.links().clone(), node.driver().clone());
    if links.len() >= link::LINKS_MAX {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_links",
            format!("this node holds {} links already", link::LINKS_MAX),
        )
        .into_response();
    }
    switch_to_websocket(request, &key, None, move |socket| {
        link::serve_socket(socket, links, driver, false, peer)
    })
}

/// The upgraded connection, as the server side of a WebSocket with the link settings.
type ServerSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Answers `101 Switching Protocols` to an upgrade request with `key`, choosing `protocol` when
/// the client offered one, and runs `serve` on the WebSocket once hyper hands the connection over.
fn switch_to_websocket<F, Fut>(
    request: &mut Request<Incoming>,
    key: &HeaderValue,
    protocol: Option<HeaderValue>,
    serve: F,
) -> Response
where
    F: FnOnce(ServerSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let socket =
                    WebSocketStream::from_raw_socket(io, Role::Server, Some(wire::config())).await;
                serve(socket).await;
            }
            Err(err) => log::info!("a WebSocket upgrade failed: {err}"),
        }
    });
    let mut response =
        warp::reply::with_status(warp::reply(), StatusCode::SWITCHING_PROTOCOLS).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    // A browser that offered subprotocols fails the handshake unless one is chosen.
    if let Some(protocol) = protocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// The `Sec-WebSocket-Key` of a well-formed upgrade request, if it is one.
fn websocket_key(method: &warp::http::Method, headers: &HeaderMap) -> Option<HeaderValue> {
    let has = |name: header::HeaderName, value: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(value))
    };
    let upgrade = method == warp::http::Method::GET
        && has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, "websocket")
        && has(header::SEC_WEBSOCKET_VERSION, "13");
    upgrade
        .then(|| headers.get(header::SEC_WEBSOCKET_KEY).cloned())
        .flatten()
}

/// The status page's live feed (a WebSocket of JSON snapshots).
pub const STATUS_FEED_PATH: &str = "/api/v1/status/ws";
/// WebSocket subprotocol prefix that carries the store key from a browser (which cannot set an
/// `Authorization` header on a WebSocket): `rms-key.<the key's UTF-8 bytes in hex>`.
const KEY_PROTOCOL_PREFIX: &str = "rms-key.";
/// Changes coming closer together than this are sent as one snapshot (the driver signals after
/// every input, heartbeats included; a page needs a few snapshots a second at most).
const STATUS_COALESCE: Duration = Duration::from_millis(200);
/// A snapshot goes out at least this often ("last seen" and pending ages move on their own).
const STATUS_REFRESH: Duration = Duration::from_secs(5);

/// `GET /api/v1/status/ws`: the key from `Authorization` or from the `rms-key.<hex>` subprotocol.
fn upgrade_status_feed(
    mut request: Request<Incoming>,
    node: &Node,
    feeds: Arc<Semaphore>,
) -> Response {
    let headers = request.headers();
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let key_protocol = offered
        .iter()
        .find(|p| p.starts_with(KEY_PROTOCOL_PREFIX))
        .cloned();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let hex = key_protocol.as_deref()?.strip_prefix(KEY_PROTOCOL_PREFIX)?;
            Some(format!("Bearer {}", from_hex(hex)?))
        });
    let how = "the store key (Authorization: Bearer, or the rms-key.<hex> subprotocol)";
    if let Err(refused) = auth::require_key(node, authorization.as_deref(), how) {
        return refused.into_response();
    }
    let Some(key) = websocket_key(request.method(), headers) else {
        return ApiError::bad_request("bad_upgrade", "this route is a WebSocket upgrade")
            .into_response();
    };
    let Ok(permit) = feeds.try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_feeds",
            format!("{STATUS_FEEDS_MAX} status pages are open already"),
        )
        .into_response();
    };
    let node = node.clone();
    let protocol = key_protocol.and_then(|p| HeaderValue::from_str(&p).ok());
    switch_to_websocket(&mut request, &key, protocol, move |socket| async move {
        status_feed(socket, node).await;
        drop(permit);
    })
}

fn from_hex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Sends a snapshot of the node's state now, after every change (coalesced), and every few
/// seconds, until the page goes away.
async fn status_feed<S>(socket: WebSocketStream<S>, node: Node)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;
    let (mut sink, mut stream) = socket.split();
    let mut changes = node.status().changes.subscribe();
    loop {
        let snapshot = match super::status_snapshot(&node).await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                log::warn!("cannot build a status snapshot: {}", err.message);
                break;
            }
        };
        if sink.send(Frame::text(snapshot.to_string())).await.is_err() {
            break;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep(STATUS_REFRESH) => {}
            frame = stream.next() => match frame {
                Some(Ok(Frame::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
        tokio::time::sleep(STATUS_COALESCE).await;
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_str(value).expect("a header"),
        );
        headers
    }

    #[test]
    fn the_loopback_api_answers_loopback_names_only() {
        for local in [
            "127.0.0.1:7878",
            "localhost:7878",
            "[::1]:7878",
            "127.0.0.1",
            "localhost",
        ] {
            assert!(foreign_host(&host(local)).is_none(), "{local}");
        }
        for rebound in ["evil.example:7878", "evil.example", "10.0.0.11:7878"] {
            let refused = foreign_host(&host(rebound)).expect("refused");
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{rebound}");
        }
        assert!(
            foreign_host(&HeaderMap::new()).is_none(),
            "HTTP/1.0 without Host"
        );
    }
}

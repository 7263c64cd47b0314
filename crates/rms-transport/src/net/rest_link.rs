//! The REST link (`--sync-transport rest`): a link to a peer for a device that cannot hold a
//! WebSocket, the same session (`link::Session`) as a WebSocket link over `POST /api/v1/sync/exchange`. It is
//! the one link that dials itself, so it sits above both the dialer and the links.

use std::sync::Arc;

use rms_domain::DeviceId;
use serde_json::Value;

use crate::input::Driver;
use crate::net::dial::{DIAL_TIMEOUT, DialError, Dialer};
use crate::net::link::{EXCHANGE_MESSAGES_MAX, Links, Session};
use crate::net::wire::MESSAGE_BYTES_MAX;

/// Largest answer to an exchange (64 messages of at most [`MESSAGE_BYTES_MAX`] would be more; a
/// peer answers with far less, and a larger answer ends the link).
const EXCHANGE_ANSWER_BYTES_MAX: usize = 8 * MESSAGE_BYTES_MAX;

/// A link over HTTP for a device that cannot hold a WebSocket (`--sync-transport rest`): what the
/// core sends to the peer is POSTed in batches to its `/api/v1/sync/exchange` (one TLS
/// connection, kept alive), and the peer's answers (with its heartbeat) come back in the
/// response. The core sends a heartbeat every interval, so the link polls at least that often.
pub struct RestLink<'a> {
    /// Dials the peer as this device.
    pub dialer: &'a Dialer,
    /// The peer's store port, `host:port` (or a URL of it).
    pub authority: &'a str,
    /// The device the address is known to be, if known: then only that device's certificate
    /// is accepted.
    pub expected: Option<DeviceId>,
    /// The node's table of open links, where this one is registered while it runs.
    pub links: &'a Links,
    /// Where the peer's answers go, as the driver's inputs.
    pub driver: &'a Driver,
}

impl RestLink<'_> {
    /// Runs the link until the connection fails or the link is dropped (slow, or refused).
    pub async fn run(self) -> Result<(), DialError> {
        let dialed = tokio::time::timeout(
            DIAL_TIMEOUT,
            self.dialer.connect(self.authority, self.expected),
        )
        .await
        .map_err(|_| DialError::TimedOut)??;
        let tls = dialed.session;
        let headers = self.dialer.headers(&tls);
        let io = hyper_util::rt::TokioIo::new(dialed.stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        let connection = tokio::spawn(connection);
        let (dialer, tls) = (self.dialer, &tls);
        let mut exchange = |batch: Vec<String>| {
            let request = exchange_request(self.authority, &headers, &batch);
            let response = sender.send_request(request);
            async move {
                let response = tokio::time::timeout(DIAL_TIMEOUT, response)
                    .await
                    .map_err(|_| DialError::TimedOut)??;
                let status = response.status();
                let answer_headers = response.headers().clone();
                let body =
                    http_body_util::Limited::new(response.into_body(), EXCHANGE_ANSWER_BYTES_MAX);
                let body = http_body_util::BodyExt::collect(body)
                    .await
                    .map_err(|_| DialError::Refused(status.as_u16()))?
                    .to_bytes();
                if status != 200 {
                    return Err(dialer.refusal(tls, status.as_u16(), &body));
                }
                let messages = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("messages").and_then(|m| m.as_array()).cloned())
                    .unwrap_or_default();
                Ok((answer_headers, messages))
            }
        };
        // An empty exchange first: the answer says who the peer is before anything is sent.
        let (answer_headers, _) = exchange(Vec::new()).await?;
        let peer = self.dialer.check_answer(tls, &answer_headers)?;
        let (mut session, mut rx) =
            Session::open(self.links.clone(), self.driver.clone(), true, true, peer);
        let close = Arc::clone(&session.close);
        let ended = loop {
            let first = tokio::select! {
                first = rx.recv() => first,
                () = close.notified() => break Ok(()),
            };
            let Some(first) = first else { break Ok(()) };
            let mut batch = vec![first];
            while batch.len() < EXCHANGE_MESSAGES_MAX {
                let Ok(more) = rx.try_recv() else { break };
                batch.push(more);
            }
            let messages = match exchange(batch).await {
                Ok((_, messages)) => messages,
                Err(err) => break Err(err),
            };
            if !messages.iter().all(|m| session.on_text(&m.to_string())) {
                break Ok(());
            }
        };
        connection.abort();
        ended
    }
}

/// `POST /api/v1/sync/exchange` with `batch` (JSON texts of messages).
fn exchange_request(
    authority: &str,
    headers: &tokio_tungstenite::tungstenite::http::HeaderMap,
    batch: &[String],
) -> hyper::Request<http_body_util::Full<hyper::body::Bytes>> {
    let body = format!(
        "{{\"device_id\":{},\"messages\":[{}]}}",
        device_of(headers),
        batch.join(",")
    );
    let mut request =
        hyper::Request::new(http_body_util::Full::new(hyper::body::Bytes::from(body)));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = hyper::Uri::from_static("/api/v1/sync/exchange");
    let request_headers = request.headers_mut();
    for (name, value) in headers {
        request_headers.insert(name.clone(), value.clone());
    }
    if let Ok(host) = hyper::header::HeaderValue::from_str(authority) {
        request_headers.insert(hyper::header::HOST, host);
    }
    request_headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    request
}

/// This device's id, from the headers the dialer made.
fn device_of(headers: &tokio_tungstenite::tungstenite::http::HeaderMap) -> &str {
    headers
        .get(rms_security::proof::DEVICE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
}

//! Links: the WebSocket connections between this node and its peers, in either direction.
//!
//! A link is identified by the first `register` or `heartbeat` it carries (the remote's device
//! id); until then it can only receive broadcasts (`To::AllPeers`). Each link has a bounded send
//! queue: a peer that does not keep up is dropped, it never stalls the node, and it catches up
//! from its cursor when it comes back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rms_domain::{DeviceId, Fingerprint};
use rms_sync::Message;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::input::{Driver, Input, LinkId};
use crate::net::wire::Peer;

/// Messages queued for one peer before it counts as too slow and is dropped.
pub const SEND_QUEUE_MAX: usize = 1024;
/// Most links open at once, both directions together; an upgrade beyond it is refused (503).
/// A store has tens of devices; the bound leaves room for a thousand and more (issue #7, S6).
pub const LINKS_MAX: usize = 2048;
/// A link dialed to this node must say who it is (`register` or `heartbeat`) this soon.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Every link sends a WebSocket ping this often, so that a live peer is never silent for long
/// even on a link that carries no messages (each pair of devices has a link in each direction,
/// and messages go out on the newer one).
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A link that brings nothing, not even a pong, for this long is closed: the peer is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Link {
    device: Option<DeviceId>,
    sender: mpsc::Sender<String>,
    /// Messages may go out on it. A link this node dialed is ready once our introduction (a
    /// heartbeat) is its first message, so the peer never sees anything before it.
    ready: bool,
    /// The certificate on the other side (None: a local tool on the loopback API).
    fingerprint: Option<Fingerprint>,
    /// Ends the link's tasks at once (its certificate was revoked).
    close: Arc<tokio::sync::Notify>,
}

/// Every open link, shared by the sessions (which add and remove themselves) and the driver
/// (which sends).
#[derive(Debug, Default, Clone)]
pub struct Links {
    inner: Arc<Mutex<BTreeMap<LinkId, Link>>>,
    next_id: Arc<AtomicU64>,
    /// Revoked certificates: a link of one is closed the moment it is added (it was admitted
    /// just before the revocation reached this device).
    revoked: Arc<Mutex<std::collections::BTreeSet<Fingerprint>>>,
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<LinkId, Link>> {
        crate::locks::lock(&self.inner)
    }

    fn add(
        &self,
        sender: mpsc::Sender<String>,
        ready: bool,
        fingerprint: Option<Fingerprint>,
        close: Arc<tokio::sync::Notify>,
    ) -> LinkId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let revoked = crate::locks::lock(&self.revoked);
        if fingerprint.is_some_and(|f| revoked.contains(&f)) {
            close.notify_one();
        }
        drop(revoked);
        self.lock().insert(
            id,
            Link {
                device: None,
                sender,
                ready,
                fingerprint,
                close,
            },
        );
        id
    }

    /// Remembers the revoked certificates (see `revoked`) and closes their links; returns how
    /// many it closed.
    pub fn revoke(&self, revoked: std::collections::BTreeSet<Fingerprint>) -> usize {
        let doomed: Vec<Fingerprint> = revoked.iter().copied().collect();
        *crate::locks::lock(&self.revoked) = revoked;
        self.close_certificates(&doomed)
    }

    /// Closes every link whose certificate is one of `fingerprints` (no longer trusted);
    /// returns how many it closed.
    pub fn close_certificates(&self, fingerprints: &[Fingerprint]) -> usize {
        let mut links = self.lock();
        let doomed: Vec<LinkId> = links
            .iter()
            .filter(|(_, l)| l.fingerprint.is_some_and(|f| fingerprints.contains(&f)))
            .map(|(id, _)| *id)
            .collect();
        for id in &doomed {
            if let Some(link) = links.remove(id) {
                link.close.notify_one();
            }
        }
        doomed.len()
    }

    /// Sends our introduction as the first message of a link we dialed, and opens it to
    /// everything else.
    pub fn introduce(&self, link: LinkId, introduction: &str) {
        if let Some(link) = self.lock().get_mut(&link)
            && link.sender.try_send(introduction.to_owned()).is_ok()
        {
            link.ready = true;
        }
    }

    fn identify(&self, link: LinkId, device: DeviceId) {
        if let Some(link) = self.lock().get_mut(&link) {
            link.device = Some(device);
        }
    }

    fn remove(&self, link: LinkId) {
        self.lock().remove(&link);
    }

    /// Sends to one device (its newest link). Returns false if no link could take it.
    pub fn send_to(&self, device: DeviceId, text: &str) -> bool {
        let mut links = self.lock();
        let Some((&id, link)) = links
            .iter()
            .rev()
            .find(|(_, l)| l.ready && l.device == Some(device))
        else {
            return false;
        };
        if link.sender.try_send(text.to_owned()).is_ok() {
            return true;
        }
        log::warn!("device {device} does not keep up with its send queue; dropping its link");
        links.remove(&id);
        false
    }

    /// Sends to every link, once per device.
    pub fn broadcast(&self, text: &str) {
        let mut links = self.lock();
        let mut seen = Vec::new();
        let mut slow = Vec::new();
        for (&id, link) in links.iter().rev().filter(|(_, l)| l.ready) {
            if let Some(device) = link.device {
                if seen.contains(&device) {
                    continue;
                }
                seen.push(device);
            }
            if link.sender.try_send(text.to_owned()).is_err() {
                slow.push(id);
            }
        }
        for id in slow {
            log::warn!("a peer does not keep up with its send queue; dropping its link");
            links.remove(&id);
        }
    }

    /// How many links are open (identified or not).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Links open now, both directions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Devices with an open, identified link.
    pub fn connected(&self) -> Vec<DeviceId> {
        let mut devices: Vec<DeviceId> = self.lock().values().filter_map(|l| l.device).collect();
        devices.sort_unstable();
        devices.dedup();
        devices
    }
}

/// What a session does with one text frame.
pub(crate) struct Session {
    link: LinkId,
    remote: Option<DeviceId>,
    /// This node opened the link (to a configured or roster address): the dialer introduces
    /// itself first, so only a link that was dialed to us must open with `register`/`heartbeat`.
    dialed: bool,
    peer: Peer,
    pub(crate) close: Arc<tokio::sync::Notify>,
    links: Links,
    driver: Driver,
}

impl Session {
    /// Registers a new link; the receiver yields what is to be sent on it.
    /// `ready`: messages may go out on it at once (see [`Links::introduce`]).
    pub(crate) fn open(
        links: Links,
        driver: Driver,
        dialed: bool,
        ready: bool,
        peer: Peer,
    ) -> (Session, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel::<String>(SEND_QUEUE_MAX);
        let close = Arc::new(tokio::sync::Notify::new());
        let session = Session {
            link: links.add(tx, ready, peer.fingerprint, Arc::clone(&close)),
            remote: None,
            dialed,
            peer,
            close,
            links,
            driver,
        };
        (session, rx)
    }

    /// Returns false to close the connection.
    pub(crate) fn on_text(&mut self, text: &str) -> bool {
        let message: Message = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(err) => return self.refuse("undecodable", json!({ "error": err.to_string() })),
        };
        let claimed = match &message {
            Message::Heartbeat { peer, .. } | Message::Register { peer, .. } => {
                Some(peer.device_id)
            }
            _ => None,
        };
        if let (Some(bound), Some(device)) = (self.peer.device, claimed)
            && bound != device
        {
            // Whatever it knows, this certificate is another device's: an alarm.
            let fingerprint = self.peer.fingerprint.map(|f| f.to_string());
            let details = json!({ "claimed": device, "bound": bound, "fingerprint": fingerprint });
            return self.refuse(rms_sync::DEVICE_ID_MISMATCH, details);
        }
        match (self.remote, claimed) {
            (None, Some(device)) => {
                self.remote = Some(device);
                self.links.identify(self.link, device);
            }
            (Some(_), Some(device)) if self.remote != Some(device) => {
                return self.refuse("identity_changed", json!({ "claimed": device }));
            }
            _ => {}
        }
        let Some(from) = self.remote else {
            if self.dialed {
                // A peer we dialed may answer before its first heartbeat reaches us.
                log::debug!("ignoring {} before the peer said who it is", message.kind());
                return true;
            }
            return self.refuse("not_introduced", json!({ "message": message.kind() }));
        };
        let prehashed = match &message {
            Message::Push { events, head, .. } if events.len() <= rms_sync::BATCH_EVENTS_MAX => {
                rms_storage::chain_check::Prehashed::of(from, events, head.as_ref())
                    .inspect_err(|err| {
                        log::debug!("a push's chain is checked by the driver: {err}")
                    })
                    .ok()
            }
            _ => None,
        };
        self.driver.send(Input::Net {
            from,
            message,
            prehashed,
        });
        true
    }

    /// Refuses what the link sent: logged, audited (through the driver), and the link closed.
    fn refuse(&self, why: &'static str, details: Value) -> bool {
        log::warn!("closing a link of {:?}: {why} {details}", self.remote);
        self.driver.send(Input::LinkRefused {
            from: self.remote,
            why,
            details,
        });
        false
    }

    /// How long the link may stay silent from now: on a link dialed to us, the handshake
    /// deadline until it said who it is; the idle timeout otherwise.
    fn silence_allowed(&self, opened: tokio::time::Instant) -> Duration {
        match self.remote {
            None if !self.dialed => HANDSHAKE_TIMEOUT.saturating_sub(opened.elapsed()),
            _ => IDLE_TIMEOUT,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.links.remove(self.link);
    }
}

/// Text messages longer than this go out as fragments of this size (RFC 6455 §5.4; every
/// WebSocket client reassembles them).
const FRAGMENT_BYTES: usize = 4 * 1024;

/// The frames of one text message. tungstenite keeps a link's write buffer at the size of the
/// largest frame it ever wrote: a `register_ack` carrying a roster of 1000 devices (100 KiB) or a
/// 768 KiB pull answer would otherwise cost its link that much memory for as long as it lives.
fn frames(text: String) -> Vec<tokio_tungstenite::tungstenite::Message> {
    use tokio_tungstenite::tungstenite::Message as Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::{self, coding};
    if text.len() <= FRAGMENT_BYTES {
        return vec![Frame::text(text)];
    }
    let bytes = tokio_tungstenite::tungstenite::Bytes::from(text.into_bytes());
    let count = bytes.len().div_ceil(FRAGMENT_BYTES);
    (0..count)
        .map(|i| {
            let chunk = bytes.slice(i * FRAGMENT_BYTES..bytes.len().min((i + 1) * FRAGMENT_BYTES));
            let opcode = coding::OpCode::Data(if i == 0 {
                coding::Data::Text
            } else {
                coding::Data::Continue
            });
            Frame::Frame(frame::Frame::message(chunk, opcode, i + 1 == count))
        })
        .collect()
}

/// Runs a link (a WebSocket) until either side closes it: `dialed` when this node opened it (our
/// heartbeat goes out first), else one a peer opened to us (it must introduce itself first).
pub async fn serve_socket<S>(
    socket: tokio_tungstenite::WebSocketStream<S>,
    links: Links,
    driver: Driver,
    dialed: bool,
    peer: Peer,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio_tungstenite::tungstenite::Message as Frame;
    let (mut sink, mut stream) = socket.split();
    let (mut session, mut rx) = Session::open(links, driver, dialed, !dialed, peer);
    let close = Arc::clone(&session.close);
    if dialed {
        session.driver.send(Input::LinkUp { link: session.link });
    }
    let opened = tokio::time::Instant::now();
    let writer = tokio::spawn(async move {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        loop {
            let frames = tokio::select! {
                text = rx.recv() => match text {
                    Some(text) => frames(text),
                    None => break,
                },
                _ = ping.tick() => vec![Frame::Ping(Vec::new().into())],
            };
            let mut frames = futures_util::stream::iter(frames.into_iter().map(Ok));
            if sink.send_all(&mut frames).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(session.silence_allowed(opened), stream.next()) => next,
            () = close.notified() => {
                log::info!("closing the link of {:?}: its certificate is no longer trusted", session.remote);
                break;
            }
        };
        let frame = match next {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => {
                // An oversized message ends here: the link is closed (SPEC §8).
                log::info!("a link of {:?} ended: {err}", session.remote);
                break;
            }
            Ok(None) => break,
            Err(_) => {
                log::info!("closing a silent link of {:?}", session.remote);
                break;
            }
        };
        match frame {
            Frame::Text(text) if !session.on_text(text.as_str()) => break,
            Frame::Close(_) => break,
            _ => {}
        }
    }
    drop(session);
    writer.abort();
}

/// Most messages sent in one REST exchange.
pub const EXCHANGE_MESSAGES_MAX: usize = 64;

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message as Frame;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::{FRAGMENT_BYTES, frames};
    use crate::net::wire::config;

    #[test]
    fn a_short_message_is_one_frame_and_a_long_one_is_fragmented() {
        assert!(matches!(&frames("hello".into())[..], [Frame::Text(t)] if t.as_str() == "hello"));
        let long = "é".repeat(FRAGMENT_BYTES); // 2 bytes each: fragments split characters
        let parts = frames(long);
        let finals: Vec<bool> = parts
            .iter()
            .map(|part| match part {
                Frame::Frame(frame) => frame.header().is_final,
                other => panic!("not a raw frame: {other:?}"),
            })
            .collect();
        assert_eq!(
            finals,
            [false, true],
            "a text frame, then its last continuation"
        );
    }

    #[tokio::test]
    async fn fragments_arrive_as_the_message_they_were_cut_from() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let mut sender = WebSocketStream::from_raw_socket(ours, Role::Server, Some(config())).await;
        let mut receiver = WebSocketStream::from_raw_socket(theirs, Role::Client, None).await;
        let message: String = (0..10 * FRAGMENT_BYTES)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .chain("€ end".chars())
            .collect();
        let expected = message.clone();
        let send = tokio::spawn(async move {
            let mut frames = futures_util::stream::iter(frames(message).into_iter().map(Ok));
            sender.send_all(&mut frames).await.expect("sent");
            sender
        });
        let received = receiver.next().await.expect("a message").expect("valid");
        assert_eq!(received.into_text().expect("text").as_str(), expected);
        drop(send.await.expect("the sender"));
    }
}

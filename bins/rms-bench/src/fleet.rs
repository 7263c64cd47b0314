//! Simulated devices: many WebSocket connections from this process, speaking the rms sync protocol
//! (or the plain broadcast protocol of the reference server), each reporting what it receives with
//! the time it arrived. One shared clock ([`now_us`]) stamps sends and receipts, so latencies are
//! measured on one timeline.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use rms_transport::signer::Signer;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Microseconds since the first call: the timeline of every send and receipt.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A device of its own (a fresh certificate) linked to the store port at `sync_url` as `id`,
/// with the key that signs its pushes.
async fn tls_socket(
    sync_url: &str,
    id: u16,
) -> anyhow::Result<(rms_transport::ClientSocket, Signer)> {
    use rms_transport::identity::Identity;
    use rms_transport::net::dial::Dialer;
    use rms_transport::net::trust::TrustBook;
    let device = rms_domain::DeviceId::new(id).context("a device id")?;
    let identity = std::sync::Arc::new(Identity::ephemeral()?);
    let signer = Signer::new(&identity)?;
    let book = TrustBook::new(
        rms_domain::TrustList::default(),
        identity.fingerprint(),
        device,
        None,
        0,
    );
    let dialer = Dialer::new(
        identity,
        book,
        device,
        format!("bench-{id}"),
        rms_transport::Clock::default(),
    );
    let (socket, _peer) = dialer.websocket(sync_url, None).await?;
    Ok((socket, signer))
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a simulated device received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub device: usize,
    pub kind: Kind,
    /// The send time carried by the message (`t<us>` in the event's user id, or `"t"` of a
    /// reference broadcast); 0 when it carried none.
    pub sent_us: u64,
    pub received_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RegisterAck,
    PushAck,
    Critical,
    Broadcast,
}

pub struct Fleet {
    senders: Vec<mpsc::UnboundedSender<String>>,
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
    delivered: mpsc::UnboundedSender<Delivery>,
    /// Device ids, by index.
    pub ids: Vec<u16>,
    /// Each device's key, by index, for a fleet linked over TLS (`rms_tls`).
    pub signers: Vec<Signer>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Fleet {
    /// `count` devices with ids from `first_id`, registered with the rms master at `base_url`
    /// (`http://...`) in its current epoch; each heartbeats every second like a real device.
    pub async fn rms(base_url: &str, count: usize, first_id: u16) -> anyhow::Result<Fleet> {
        let ws = format!("{}/api/v1/ws", base_url.replacen("http", "ws", 1));
        let ids: Vec<u16> = (0..count).map(|i| first_id + i as u16).collect();
        let fleet = Fleet::connect(&ws, &ids, false).await?;
        fleet.register(base_url, count).await
    }

    /// Registers every device with the master in its current epoch, and starts heartbeats.
    async fn register(mut self, base_url: &str, count: usize) -> anyhow::Result<Fleet> {
        let health: Value = reqwest_health(base_url).await?;
        let epoch =
            json!({"term": health["term"], "master_id": health["master_id"], "master_priority": 0});
        let ids = self.ids.clone();
        let fleet = &mut self;
        for (i, id) in ids.iter().enumerate() {
            let register =
                json!({"type": "register", "peer": peer(*id), "epoch": epoch, "log_head": 0});
            fleet.send(i, register.to_string())?;
        }
        let mut registered = 0;
        fleet
            .collect_until(Duration::from_secs(30), |d| {
                registered += usize::from(d.kind == Kind::RegisterAck);
                registered == count
            })
            .await
            .with_context(|| {
                format!("registering the simulated devices: {registered} of {count}")
            })?;
        let heartbeat = fleet.heartbeats(epoch);
        fleet.tasks.push(heartbeat);
        Ok(self)
    }

    /// The same devices, linked as real devices link: each with its own certificate, over TLS
    /// to the master's store port (`sync_url`), trusted on first use (the bench's master has no
    /// store key, so its devices are the machine's).
    pub async fn rms_tls(
        base_url: &str,
        sync_url: &str,
        count: usize,
        first_id: u16,
    ) -> anyhow::Result<Fleet> {
        let ids: Vec<u16> = (0..count).map(|i| first_id + i as u16).collect();
        let mut fleet = Fleet::empty(&ids);
        for (device, id) in ids.iter().enumerate() {
            let (socket, signer) = tls_socket(sync_url, *id)
                .await
                .with_context(|| format!("linking device {id} to {sync_url}"))?;
            fleet.attach(device, socket, false);
            fleet.signers.push(signer);
        }
        fleet.register(base_url, count).await
    }

    /// `count` plain WebSocket clients of a reference server at `ws_url`.
    pub async fn reference(ws_url: &str, count: usize) -> anyhow::Result<Fleet> {
        let ids: Vec<u16> = (0..count).map(|i| i as u16).collect();
        Fleet::connect(ws_url, &ids, true).await
    }

    fn empty(ids: &[u16]) -> Fleet {
        let (tx, deliveries) = mpsc::unbounded_channel();
        Fleet {
            senders: Vec::with_capacity(ids.len()),
            deliveries,
            delivered: tx,
            ids: ids.to_vec(),
            signers: Vec::new(),
            tasks: Vec::new(),
        }
    }

    async fn connect(url: &str, ids: &[u16], plain: bool) -> anyhow::Result<Fleet> {
        let mut fleet = Fleet::empty(ids);
        for device in 0..ids.len() {
            // Nagle off, as rms-node's own links have it; and a 4 KiB read buffer instead of
            // tungstenite's 128 KiB, which it zero-fills on every read: the devices share the
            // machine with the server they measure, and would spend more time clearing buffers
            // than the server spends serving them.
            let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
            let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                .await
                .with_context(|| format!("connecting device {device} to {url}"))?;
            fleet.attach(device, socket, plain);
        }
        Ok(fleet)
    }

    /// Runs device `device` on `socket`: a task that sends what [`Fleet::send`] queues, and one
    /// that reports what arrives.
    fn attach<S>(
        &mut self,
        device: usize,
        socket: tokio_tungstenite::WebSocketStream<S>,
        plain: bool,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let fleet = self;
        {
            let (mut sink, mut stream) = socket.split();
            let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
            fleet.tasks.push(tokio::spawn(async move {
                while let Some(text) = out_rx.recv().await {
                    if sink.send(Frame::text(text)).await.is_err() {
                        break;
                    }
                }
            }));
            let tx = fleet.delivered.clone();
            fleet.tasks.push(tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    let Frame::Text(text) = frame else { continue };
                    if let Some(delivery) = parse(device, text.as_str(), plain) {
                        let _ = tx.send(delivery);
                    }
                }
            }));
            fleet.senders.push(out_tx);
        }
    }

    pub fn send(&self, device: usize, text: String) -> anyhow::Result<()> {
        self.senders
            .get(device)
            .context("no such device")?
            .send(text)
            .map_err(|_| anyhow::anyhow!("device {device}'s link is closed"))
    }

    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Receives deliveries until `done` says so; fails after `deadline`.
    pub async fn collect_until(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&Delivery) -> bool,
    ) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match tokio::time::timeout_at(until, self.deliveries.recv()).await {
                Ok(Some(delivery)) => {
                    if done(&delivery) {
                        return Ok(());
                    }
                }
                Ok(None) => bail!("every simulated device is gone"),
                Err(_) => bail!("timed out after {deadline:?}"),
            }
        }
    }

    /// Drops deliveries that are already queued.
    pub fn drain(&mut self) {
        while self.deliveries.try_recv().is_ok() {}
    }

    fn heartbeats(&self, epoch: Value) -> tokio::task::JoinHandle<()> {
        let beats: Vec<(mpsc::UnboundedSender<String>, String)> = self
            .senders
            .iter()
            .zip(&self.ids)
            .map(|(tx, id)| {
                let beat = json!({"type": "heartbeat", "peer": peer(*id), "epoch": epoch, "role": "client", "log_head": 0});
                (tx.clone(), beat.to_string())
            })
            .collect();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                for (tx, beat) in &beats {
                    let _ = tx.send(beat.clone());
                }
            }
        })
    }
}

/// Only the type of most messages is read (an ack of 100 verdicts is not built into a tree):
/// the simulated devices share the machine with the node they measure.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// Of a `critical_event`, only the user id of its event (where the sale's send time is).
#[derive(serde::Deserialize)]
struct Critical<'a> {
    #[serde(borrow)]
    entry: CriticalEntry<'a>,
}

/// Of a `sync_update` (eager sync broadcasts what a decision logged this way, critical entries
/// too), only the user ids of its entries.
#[derive(serde::Deserialize)]
struct Update<'a> {
    #[serde(borrow)]
    entries: Vec<CriticalEntry<'a>>,
}

#[derive(serde::Deserialize)]
struct CriticalEntry<'a> {
    #[serde(borrow)]
    event: CriticalEvent<'a>,
}

#[derive(serde::Deserialize)]
struct CriticalEvent<'a> {
    user_id: &'a str,
}

fn parse(device: usize, text: &str, plain: bool) -> Option<Delivery> {
    let received_us = now_us();
    let delivery = |kind, sent_us| Delivery {
        device,
        kind,
        sent_us,
        received_us,
    };
    if plain {
        let message: Value = serde_json::from_str(text).ok()?;
        return Some(delivery(Kind::Broadcast, message["t"].as_u64()?));
    }
    let head: Head<'_> = serde_json::from_str(text).ok()?;
    match head.kind.as_ref() {
        "register_ack" => Some(delivery(Kind::RegisterAck, 0)),
        "push_ack" => Some(delivery(Kind::PushAck, 0)),
        "critical_event" => {
            let message: Critical<'_> = serde_json::from_str(text).ok()?;
            let user = message.entry.event.user_id;
            let sent_us = user.strip_prefix('t')?.parse().ok()?;
            Some(delivery(Kind::Critical, sent_us))
        }
        "sync_update" => {
            let message: Update<'_> = serde_json::from_str(text).ok()?;
            let sent_us = message
                .entries
                .iter()
                .find_map(|e| e.event.user_id.strip_prefix('t')?.parse().ok())?;
            Some(delivery(Kind::Critical, sent_us))
        }
        _ => None,
    }
}

/// All simulated devices advertise one unreachable address, so the master dials it once.
fn peer(id: u16) -> Value {
    json!({"device_id": id, "name": format!("sim-{id}"), "advertise": "http://127.0.0.1:9", "priority": -1})
}

/// A sale event of device `device` (its `seq`-th), of `qty` × `sku`, stamped with `sent_us`.
pub fn sale_event(device: u16, seq: u64, sku: &str, qty: i64, sent_us: u64) -> Value {
    let id = format!("{device}-{seq}");
    let now = wall_ms();
    json!({
        "event_id": id, "hlc": {"wall_ms": now, "counter": 0}, "user_id": format!("t{sent_us}"),
        "term": 1, "critical": false, "status": "pending", "created_at_ms": now,
        "payload": {"kind": "sale_recorded", "sale_id": id,
                    "lines": [{"sku": sku, "qty": qty, "price_cents": 100}]}
    })
}

/// A push message of `events` in the master's epoch (read from its health).
pub fn push(epoch: &Value, events: Vec<Value>) -> String {
    json!({"type": "push", "epoch": epoch, "events": events}).to_string()
}

/// The master's epoch as the wire carries it.
pub async fn epoch_of(base_url: &str) -> anyhow::Result<Value> {
    let health = reqwest_health(base_url).await?;
    Ok(json!({"term": health["term"], "master_id": health["master_id"], "master_priority": 0}))
}

async fn reqwest_health(base_url: &str) -> anyhow::Result<Value> {
    let url = format!("{base_url}/api/v1/health");
    tokio::task::spawn_blocking(move || crate::process::get(&crate::process::agent(), &url))
        .await
        .context("the health request panicked")?
}

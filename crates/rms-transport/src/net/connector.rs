//! Outbound links: one task per peer address keeps a link to it open (a WebSocket, or the REST
//! fallback), over TLS through [`Dialer`], reconnecting with capped exponential backoff and
//! jitter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rms_domain::DeviceId;
use tokio::sync::watch;

use crate::input::Driver;
use crate::net::dial::{self, Dialer};
use crate::net::link::{self, Links};
use crate::net::rest_link::RestLink;

/// First and longest wait between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most peers this node keeps outbound links to.
pub const PEERS_MAX: usize = 256;

/// Starts (once per address) the tasks that keep outbound links open.
#[derive(Clone, Debug)]
pub struct Connector {
    /// Every address linked to, and the device it is known to be (from the roster).
    started: Arc<Mutex<BTreeMap<String, Option<DeviceId>>>>,
    links: Links,
    driver: Driver,
    dialer: Dialer,
    shutdown: watch::Receiver<bool>,
    /// The runtime the link tasks run on (the driver thread that asks for links is not in it).
    runtime: tokio::runtime::Handle,
    /// Links over REST instead of WebSocket (`--sync-transport rest`).
    over_rest: bool,
}

impl Connector {
    /// Must be called inside the tokio runtime.
    pub fn new(
        links: Links,
        driver: Driver,
        dialer: Dialer,
        shutdown: watch::Receiver<bool>,
    ) -> Connector {
        Connector {
            started: Arc::default(),
            links,
            driver,
            dialer,
            shutdown,
            runtime: tokio::runtime::Handle::current(),
            over_rest: false,
        }
    }

    /// Makes every link of this connector a REST link (for a device that cannot hold a
    /// WebSocket).
    pub fn over_rest(mut self) -> Connector {
        self.over_rest = true;
        self
    }

    /// Keeps a link to `url` (e.g. `https://127.0.0.1:7879`) open from now on.
    pub fn ensure(&self, url: &str) {
        self.start(url, None);
    }

    /// The same, for the address of a known device: the dial accepts its certificate alone.
    pub fn ensure_device(&self, url: &str, device: DeviceId) {
        self.start(url, Some(device));
    }

    fn start(&self, url: &str, device: Option<DeviceId>) {
        let Some(key) = dial::authority(url) else {
            log::warn!("not linking to {url:?}: not a device address");
            return;
        };
        {
            let mut started = crate::locks::lock(&self.started);
            if let Some(known) = started.get_mut(&key) {
                if device.is_some() {
                    *known = device;
                }
                return;
            }
            if started.len() >= PEERS_MAX {
                return;
            }
            started.insert(key.clone(), device);
        }
        let this = self.clone();
        self.runtime.spawn(async move { this.run(key).await });
    }

    /// The device `authority` is known to be, if the roster said.
    fn expected(&self, authority: &str) -> Option<DeviceId> {
        let started = crate::locks::lock(&self.started);
        started.get(authority).copied().flatten()
    }

    /// Keeps a link to `authority` until the node stops: dial, serve the link until it closes,
    /// wait (backoff), again.
    async fn run(self, authority: String) {
        let mut backoff = Backoff::new(&authority);
        let mut shutdown = self.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                linked = self.link_once(&authority) => match linked {
                    Ok(()) => backoff.reset(),
                    Err(dial::DialError::Revoked) => self.learn_revoked(&authority).await,
                    Err(err) => log::debug!("cannot link to {authority}: {err}"),
                },
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(backoff.next()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// A trusted device at `authority` refused this one as revoked: it records its own
    /// revocation (once), so that it refuses its tills' writes from now on, across restarts
    /// (issue #27). **On crash:** one local write; the next refusal records it again.
    async fn learn_revoked(&self, authority: &str) {
        if self.dialer.knows_itself_revoked() {
            log::debug!("{authority} refuses this device: it is revoked");
            return;
        }
        log::error!(
            "{authority} says this device's certificate was revoked: it refuses sales from now on"
        );
        let (reply, answer) = tokio::sync::oneshot::channel();
        let command = self.dialer.own_revocation();
        if !self
            .driver
            .send(crate::input::Input::Local { command, reply })
        {
            return;
        }
        match answer.await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(err)) => log::error!("cannot record this device's revocation: {err}"),
        }
    }

    /// One link to `authority`, served until it closes (`Ok`), or why it could not be made.
    async fn link_once(&self, authority: &str) -> Result<(), dial::DialError> {
        let expected = self.expected(authority);
        if self.over_rest {
            let rest = RestLink {
                dialer: &self.dialer,
                authority,
                expected,
                links: &self.links,
                driver: &self.driver,
            };
            return rest.run().await;
        }
        let (socket, peer) = self.dialer.websocket(authority, expected).await?;
        log::info!("linked to {authority}");
        link::serve_socket(socket, self.links.clone(), self.driver.clone(), true, peer).await;
        log::info!("link to {authority} closed");
        Ok(())
    }
}

/// Capped exponential backoff with jitter (a fixed sequence per address, so that devices that
/// lost the same master do not all dial at the same instant).
struct Backoff {
    next: Duration,
    jitter_state: u64,
}

impl Backoff {
    fn new(authority: &str) -> Backoff {
        let jitter_state = authority
            .bytes()
            .fold(0x9E37_79B9_u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        Backoff {
            next: BACKOFF_MIN,
            jitter_state,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    fn next(&mut self) -> Duration {
        self.jitter_state = self
            .jitter_state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let jitter = Duration::from_millis(self.jitter_state >> 33 & 0x3F);
        let wait = self.next + jitter;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

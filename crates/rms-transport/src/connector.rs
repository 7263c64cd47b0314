//! Outbound links: one task per peer URL keeps a WebSocket to `<url>/api/v1/ws` open,
//! reconnecting with capped exponential backoff and jitter.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::input::Driver;
use crate::link::{self, Links};

/// First and longest wait between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most peers this node keeps outbound links to.
pub const PEERS_MAX: usize = 256;

/// Starts (once per URL) the tasks that keep outbound links open.
#[derive(Clone, Debug)]
pub struct Connector {
    started: Arc<Mutex<BTreeSet<String>>>,
    links: Links,
    driver: Driver,
    store_key: Option<String>,
    shutdown: watch::Receiver<bool>,
    /// The runtime the link tasks run on (the driver thread that asks for links is not in it).
    runtime: tokio::runtime::Handle,
    /// Links over REST instead of WebSocket (`--sync-transport rest`), as this device.
    rest_as: Option<rms_domain::DeviceId>,
}

impl Connector {
    /// Must be called inside the tokio runtime.
    pub fn new(
        links: Links,
        driver: Driver,
        store_key: Option<String>,
        shutdown: watch::Receiver<bool>,
    ) -> Connector {
        Connector {
            started: Arc::default(),
            links,
            driver,
            store_key,
            shutdown,
            runtime: tokio::runtime::Handle::current(),
            rest_as: None,
        }
    }

    /// Makes every link of this connector a REST link (for a device that cannot hold a
    /// WebSocket), as device `me`.
    pub fn over_rest(mut self, me: rms_domain::DeviceId) -> Connector {
        self.rest_as = Some(me);
        self
    }

    /// Keeps a link to `base_url` (e.g. `http://127.0.0.1:7001`) open from now on.
    pub fn ensure(&self, base_url: &str) {
        let url = ws_url(base_url);
        {
            let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
            if started.len() >= PEERS_MAX || !started.insert(url.clone()) {
                return;
            }
        }
        if let Some(me) = self.rest_as {
            let (links, driver, key) = (
                self.links.clone(),
                self.driver.clone(),
                self.store_key.clone(),
            );
            link::spawn_rest(
                base_url.to_owned(),
                me,
                links,
                driver,
                key,
                self.shutdown.clone(),
            );
            return;
        }
        let this = self.clone();
        self.runtime.spawn(async move { this.run(url).await });
    }

    async fn run(self, url: String) {
        let mut backoff = BACKOFF_MIN;
        let mut shutdown = self.shutdown.clone();
        let mut jitter_state = url
            .bytes()
            .fold(0x9E37_79B9_u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.connect(&url).await {
                Ok(socket) => {
                    log::info!("linked to {url}");
                    backoff = BACKOFF_MIN;
                    tokio::select! {
                        () = link::serve_socket(socket, self.links.clone(), self.driver.clone(), true) => {}
                        _ = shutdown.changed() => return,
                    }
                    log::info!("link to {url} closed");
                }
                Err(err) => log::debug!("cannot link to {url}: {err}"),
            }
            jitter_state = jitter_state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let jitter = Duration::from_millis(jitter_state >> 33 & 0x3F);
            tokio::select! {
                () = tokio::time::sleep(backoff + jitter) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn connect(
        &self,
        url: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::Error,
    > {
        let mut request = url.into_client_request()?;
        if let Some(key) = &self.store_key
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer {key}"))
        {
            request.headers_mut().insert("authorization", value);
        }
        let config = link::config();
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(result) => result.map(|(socket, _response)| socket),
            Err(_) => Err(tokio_tungstenite::tungstenite::Error::Io(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the WebSocket handshake took longer than 5 s",
                ),
            )),
        }
    }
}

/// `http://host:port[/]` → `ws://host:port/api/v1/ws`.
fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        format!("ws://{base}")
    };
    if base.ends_with("/api/v1/ws") {
        base
    } else {
        format!("{base}/api/v1/ws")
    }
}

#[cfg(test)]
mod tests {
    use super::ws_url;

    #[test]
    fn peer_urls_become_websocket_urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:7001"),
            "ws://127.0.0.1:7001/api/v1/ws"
        );
        assert_eq!(
            ws_url("http://127.0.0.1:7001/"),
            "ws://127.0.0.1:7001/api/v1/ws"
        );
        assert_eq!(ws_url("127.0.0.1:7001"), "ws://127.0.0.1:7001/api/v1/ws");
        assert_eq!(ws_url("ws://h:1/api/v1/ws"), "ws://h:1/api/v1/ws");
    }
}

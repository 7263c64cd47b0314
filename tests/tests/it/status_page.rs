//! The status page (issue #8): served at `/`, fed live over `/api/v1/status/ws`.

use std::time::{Duration, Instant};

use rms_tests::{FAST, NodeProcess, node_args, wait_for};
use serde_json::{Value, json};
use tungstenite::Message as Frame;

const DEADLINE: Duration = Duration::from_secs(20);

type Socket = rms_tests::WebSocket;

fn feed(node: &NodeProcess, protocol: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let headers: Vec<(&'static str, String)> = protocol
        .map(|p| ("sec-websocket-protocol", p.to_owned()))
        .into_iter()
        .collect();
    rms_tests::websocket(node, "/api/v1/status/ws", &headers)
}

/// Reads snapshots until one satisfies `wanted`.
fn snapshot_where(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + DEADLINE;
    while Instant::now() < until {
        match socket.read() {
            Ok(Frame::Text(text)) => {
                let snapshot: Value = serde_json::from_str(text.as_str()).unwrap();
                if wanted(&snapshot) {
                    return snapshot;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => panic!("the feed closed: {err}"),
        }
    }
    panic!("no such snapshot within {DEADLINE:?}");
}

fn stock_in(snapshot: &Value, sku: &str) -> Option<i64> {
    snapshot["products"]
        .as_array()?
        .iter()
        .find(|p| p["sku"] == sku)?["stock"]
        .as_i64()
}

#[test]
fn a_sale_on_one_device_reaches_the_other_devices_status_feed_live() {
    // One feed connection on the client sees the product appear, then run out when the master
    // sells the last unit: no reconnect, no reload.
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let master = NodeProcess::start(dirs[0].path(), &node_args("1", FAST, &[]));
    let peers = vec![master.sync_url.clone()];
    let client = NodeProcess::start(dirs[1].path(), &node_args("2", FAST, &peers));
    let page = client.get_text("/");
    assert!(page.contains("/api/v1/status/ws"), "the page uses the feed");
    let mut socket = feed(&client, None).expect("the feed");
    snapshot_where(&mut socket, |s| s["health"]["master_id"] == 1);
    let cake = json!({"sku":"cake","name":"Cake","price_cents":500,"stock":1});
    assert_eq!(master.post("/api/v1/products", &cake).0, 201);
    let snapshot = snapshot_where(&mut socket, |s| stock_in(s, "cake") == Some(1));
    assert_eq!(snapshot["health"]["role"], "client");
    let sale = json!({"user_id":"ann","lines":[{"sku":"cake","qty":1}]});
    assert_eq!(master.post("/api/v1/sales", &sale).0, 201);
    let snapshot = snapshot_where(&mut socket, |s| stock_in(s, "cake") == Some(0));
    let devices = snapshot["cluster"]["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{snapshot}");
    assert!(snapshot["log_heads"]["2"].is_u64(), "{snapshot}");
    wait_for("the audit shows the sale", DEADLINE, || {
        let s = snapshot_where(&mut socket, |_| true);
        s["audit"].as_array().is_some_and(|a| !a.is_empty())
    });
}

#[test]
fn the_status_feed_needs_the_store_key() {
    // Without the key the upgrade is refused; a browser passes it as the rms-key.<hex>
    // subprotocol, which the node echoes.
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &["--store-key", "s3cret"]);
    match feed(&node, None) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("refused without the key, got {:?}", other.map(|_| ())),
    }
    match feed(&node, Some("rms-key.77726f6e67")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("refused with a wrong key, got {:?}", other.map(|_| ())),
    }
    let hex: String = "s3cret".bytes().map(|b| format!("{b:02x}")).collect();
    let mut socket = feed(&node, Some(&format!("rms-key.{hex}"))).expect("the key opens it");
    let snapshot = snapshot_where(&mut socket, |_| true);
    assert_eq!(snapshot["health"]["role"], "master");
}

/// A headless Chromium driven over the DevTools protocol (Debian's `chromium`, which `make test`
/// installs when it is missing). Killed when dropped.
pub(crate) struct Browser {
    child: std::process::Child,
    socket: Socket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub(crate) fn start() -> Browser {
        use std::io::BufRead;
        let profile = tempfile::tempdir().unwrap();
        let binary = std::env::var("RMS_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let mut child = std::process::Command::new(&binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1024,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} (make test installs it): {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(DEADLINE)
            .expect("chromium did not print its DevTools address");
        let (socket, _) = tungstenite::connect(url.as_str()).expect("DevTools WebSocket");
        // A browser that stops talking fails the read (see `call`), not hangs it.
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(DEADLINE))
                .expect("a read timeout");
        }
        Browser {
            child,
            socket,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a DevTools command (to a page when `session` is given) and returns its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Frame::text(message.to_string()))
            .expect("DevTools takes a command");
        let until = Instant::now() + DEADLINE;
        loop {
            assert!(
                Instant::now() < until,
                "DevTools did not answer {method} within {DEADLINE:?}"
            );
            let Frame::Text(text) = self.socket.read().expect("DevTools answers") else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str()).unwrap();
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Opens `url` in a new tab; returns the tab's session.
    pub(crate) fn open(&mut self, url: &str) -> String {
        let target = self.call(None, "Target.createTarget", json!({"url": url}));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        attached["sessionId"].as_str().unwrap().to_owned()
    }

    pub(crate) fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    fn screenshot(&mut self, session: &str, path: &std::path::Path) {
        let shot = self.call(
            Some(session),
            "Page.captureScreenshot",
            json!({"format": "png"}),
        );
        let data = shot["data"].as_str().expect("a screenshot");
        std::fs::write(path, base64_decode(data)).unwrap();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |n, (i, c)| n | u32::from(value(*c)) << (18 - 6 * i));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

#[test]
fn in_a_browser_a_sale_on_one_node_shows_on_the_others_page_without_a_reload() {
    // Headless Chromium opens the status pages of a master and a client; a sale on the master
    // empties a product, and the client's page shows it out of stock without reloading.
    // Screenshots: target/browser-test/*.png.
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let master = NodeProcess::start(dirs[0].path(), &node_args("1", FAST, &[]));
    let peers = vec![master.sync_url.clone()];
    let client = NodeProcess::start(dirs[1].path(), &node_args("2", FAST, &peers));
    let cake = json!({"sku":"cake","name":"Cake","price_cents":500,"stock":1});
    assert_eq!(master.post("/api/v1/products", &cake).0, 201);

    let mut browser = Browser::start();
    let master_page = browser.open(&format!("{}/", master.url));
    let client_page = browser.open(&format!("{}/", client.url));
    let stock = "document.getElementById('stock-cake')?.firstChild?.textContent ?? null";
    for page in [&master_page, &client_page] {
        wait_for("the cake on the page", DEADLINE, || {
            browser.eval(page, stock) == json!("1")
        });
    }
    browser.eval(&client_page, "window.__sameDocument = true");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/browser-test");
    std::fs::create_dir_all(&out).unwrap();
    browser.screenshot(&client_page, &out.join("client-before.png"));

    let sale = json!({"user_id":"ann","lines":[{"sku":"cake","qty":1}]});
    assert_eq!(master.post("/api/v1/sales", &sale).0, 201);
    wait_for(
        "the client's page shows the cake out of stock",
        DEADLINE,
        || browser.eval(&client_page, stock) == json!("0"),
    );
    assert_eq!(
        browser.eval(&client_page, "window.__sameDocument === true"),
        json!(true),
        "the page was not reloaded"
    );
    assert_eq!(
        browser.eval(
            &client_page,
            "document.getElementById('product-cake').classList.contains('out')"
        ),
        json!(true),
        "the product is marked out of stock"
    );
    browser.screenshot(&client_page, &out.join("client-after.png"));
    browser.screenshot(&master_page, &out.join("master-after.png"));

    // The page's pairing button opens a window and shows its code.
    browser.eval(&master_page, "document.getElementById('pair').click()");
    let code = "document.getElementById('paircode').textContent";
    wait_for("the pairing code on the page", DEADLINE, || {
        browser
            .eval(&master_page, code)
            .as_str()
            .is_some_and(|t| t.starts_with("code ") && t.len() > 20)
    });
    let shown = browser.eval(&master_page, code);
    let shown = shown.as_str().unwrap();
    let typed = shown
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(',');
    assert!(
        rms_transport::pairing::normalize(typed).is_some(),
        "{shown}"
    );
}

//! Fixtures for multi-process tests: start real `rms-node` processes on 127.0.0.1 with port 0,
//! talk to them over HTTP, kill them, and clean up. Every wait polls with a deadline; nothing
//! sleeps a fixed time to "let things settle".

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod db;
pub mod hq;
pub mod tls;
/// A throwaway PostgreSQL cluster per test.
pub use rms_hq::cluster as pg;

/// How long a node gets to start and print its address.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// The `rms-node` binary, built once per test run so it is never stale.
///
/// `RMS_NODE_BIN` overrides it (to test a release build, say).
pub fn node_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| built("RMS_NODE_BIN", "rms-node", "rms-node"))
}

/// The debug build of `package`'s binary `name`, built now (or the path in `$override_var`).
pub(crate) fn built(override_var: &str, package: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package])
        .current_dir(workspace)
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {package}: {e}"));
    assert!(status.success(), "building {package} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    target.join("debug").join(name)
}

/// A running `rms-node`. Killed (SIGKILL) when dropped, so a failing test leaves no process.
pub struct NodeProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`: the API.
    pub url: String,
    /// `https://127.0.0.1:<port>`: the store port, where other devices link (`--peer`).
    pub sync_url: String,
    pub data_dir: PathBuf,
    /// The node's `--store-key`, sent with every request of [`NodeProcess::get`] and friends.
    pub store_key: Option<String>,
    agent: ureq::Agent,
}

impl NodeProcess {
    /// Starts a node with `args` (plus `--listen 127.0.0.1:0`, `--sync-listen 127.0.0.1:0` and
    /// `--data-dir`) and waits until it prints the addresses it listens on.
    pub fn start(data_dir: &Path, args: &[&str]) -> NodeProcess {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        NodeProcess::start_with_listen(data_dir, &all)
    }

    /// Like [`NodeProcess::start`], but `args` carry their own `--listen` (and `--sync-listen`
    /// if they want another than `127.0.0.1:0`).
    pub fn start_with_listen(data_dir: &Path, args: &[&str]) -> NodeProcess {
        let mut command = Command::new(node_binary());
        command.arg("--data-dir").arg(data_dir).args(args);
        if !args.contains(&"--sync-listen") {
            command.args(["--sync-listen", "127.0.0.1:0"]);
        }
        let mut child = command
            // RMS_TEST_LOG=info (or debug) shows the nodes' logs when a test needs a look.
            .env(
                "RMS_LOG",
                std::env::var("RMS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start rms-node");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut store_port = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("rms-node store port on ") {
                    url.trim().clone_into(&mut store_port);
                }
                if let Some(url) = line.strip_prefix("rms-node listening on ") {
                    let _ = tx.send((url.trim().to_owned(), store_port.clone()));
                }
            }
        });
        let (url, sync_url) = match rx.recv_timeout(START_DEADLINE) {
            Ok(urls) => urls,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "rms-node did not report its address within {START_DEADLINE:?} (exit: {status:?})"
                );
            }
        };
        NodeProcess {
            child: Some(child),
            url,
            sync_url,
            data_dir: data_dir.to_owned(),
            store_key: args
                .iter()
                .position(|a| *a == "--store-key")
                .and_then(|i| args.get(i + 1))
                .map(|key| (*key).to_owned()),
            agent: agent(),
        }
    }

    /// `Authorization: Bearer <key>` when the node has a store key.
    fn auth_headers(&self) -> Vec<(&str, String)> {
        self.store_key
            .iter()
            .map(|key| ("authorization", format!("Bearer {key}")))
            .collect()
    }

    /// A request with exactly these headers and this body (bytes as they are): for tests of
    /// what the node does with hostile input.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, String)],
    ) -> (u16, Value) {
        raw_request(
            &self.agent,
            method,
            &format!("{}{path}", self.url),
            body,
            headers,
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// The port of the node's API (from its reported address).
    pub fn port(&self) -> u16 {
        port_of(&self.url)
    }

    /// The node's store port, where other devices link.
    pub fn sync_port(&self) -> u16 {
        port_of(&self.sync_url)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (with a deadline) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the node is running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("cannot wait for rms-node") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rms-node did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A GET whose answer is text (e.g. `/metrics`); panics unless it answers 200.
    pub fn get_text(&self, path: &str) -> String {
        let mut request = self.agent.get(format!("{}{path}", self.url));
        for (name, value) in self.auth_headers() {
            request = request.header(name, value.as_str());
        }
        let mut response = request.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.raw("GET", path, None, &self.auth_headers())
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.try_send("POST", path, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Like [`NodeProcess::post`] but a transport failure (node gone) is an `Err`.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), ureq::Error> {
        raw_request(
            &self.agent,
            method,
            &format!("{}{path}", self.url),
            Some(body.to_string().as_bytes()),
            &self.auth_headers(),
        )
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTP client that reads error answers as answers (not as errors), with a deadline.
pub fn agent_with_timeout(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

pub(crate) fn agent() -> ureq::Agent {
    agent_with_timeout(Duration::from_secs(15))
}

/// The port of `http://host:port`.
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// Short intervals so that multi-node tests run in seconds.
pub const FAST: &[&str] = &[
    "--heartbeat-interval-ms",
    "100",
    "--master-timeout-ms",
    "600",
    "--sync-interval-ms",
    "500",
];

/// `--device-id <device>`, the `timing` flags, and a `--peer` per URL.
pub fn node_args<'a>(device: &'a str, timing: &[&'a str], peers: &'a [String]) -> Vec<&'a str> {
    let mut args = vec!["--device-id", device];
    args.extend_from_slice(timing);
    for peer in peers {
        args.extend(["--peer", peer.as_str()]);
    }
    args
}

/// Device 1 as master (a store of its own at first), devices 2 and 3 joining it; returns once
/// every device sees master 1 and all three online.
pub fn store_of_three(timing: &[&'static str]) -> (Vec<tempfile::TempDir>, Vec<NodeProcess>) {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("a temporary directory"))
        .collect();
    let master = NodeProcess::start(dirs[0].path(), &node_args("1", timing, &[]));
    let peers = vec![master.sync_url.clone()];
    let two = NodeProcess::start(dirs[1].path(), &node_args("2", timing, &peers));
    let three = NodeProcess::start(dirs[2].path(), &node_args("3", timing, &peers));
    let nodes = vec![master, two, three];
    wait_for(
        "three devices online under master 1",
        Duration::from_secs(30),
        || {
            nodes.iter().all(|n| {
                let (_, cluster) = n.get("/api/v1/cluster");
                let online = cluster["devices"]
                    .as_array()
                    .map_or(0, |d| d.iter().filter(|d| d["online"] == true).count());
                cluster["master_id"] == 1 && online == 3
            })
        },
    );
    (dirs, nodes)
}

/// Three devices that reach each other only through a proxy per direction, so that a test can
/// partition the store ([`Partitioned::isolate`]) and heal it.
pub struct Partitioned {
    /// `proxies[from][to]`, none from a device to itself.
    pub proxies: Vec<Vec<Option<Proxy>>>,
    pub dirs: Vec<tempfile::TempDir>,
    pub nodes: Vec<NodeProcess>,
}

impl Partitioned {
    /// Starts devices 1, 2 and 3 with `timing` and `extra` arguments, and waits until they agree
    /// on one master.
    pub fn start(timing: &[&str], extra: &[&str]) -> Partitioned {
        // The proxies start in front of nothing and are pointed at the nodes once those listen.
        let proxies: Vec<Vec<Option<Proxy>>> = (0..3)
            .map(|from| {
                (0..3)
                    .map(|to| (from != to).then(Proxy::in_front_of_nothing))
                    .collect()
            })
            .collect();
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("a temporary directory"))
            .collect();
        let peers: Vec<Vec<String>> = (0..3)
            .map(|from| {
                proxies[from]
                    .iter()
                    .flatten()
                    .map(|p| p.url.clone())
                    .collect()
            })
            .collect();
        let ids = ["1", "2", "3"];
        let nodes: Vec<NodeProcess> = (0..3)
            .map(|i| {
                let mut a = node_args(ids[i], timing, &peers[i]);
                // Advertise an address nobody listens on: links only run through the proxies.
                a.extend(["--advertise", "http://127.0.0.1:1"]);
                a.extend_from_slice(extra);
                NodeProcess::start(dirs[i].path(), &a)
            })
            .collect();
        for (to, node) in nodes.iter().enumerate() {
            for row in &proxies {
                if let Some(proxy) = &row[to] {
                    proxy.point_at(node.sync_port());
                }
            }
        }
        let store = Partitioned {
            proxies,
            dirs,
            nodes,
        };
        wait_for("one master for all three", Duration::from_secs(30), || {
            let masters: Vec<Value> = store
                .nodes
                .iter()
                .map(|n| n.get("/api/v1/health").1["master_id"].clone())
                .collect();
            !masters[0].is_null() && masters.iter().all(|m| *m == masters[0])
        });
        store
    }

    /// Cuts every proxy to and from device `index` (0-based).
    pub fn isolate(&self, index: usize) {
        for (from, row) in self.proxies.iter().enumerate() {
            for (to, proxy) in row.iter().enumerate() {
                if let Some(proxy) = proxy.as_ref().filter(|_| from == index || to == index) {
                    proxy.cut();
                }
            }
        }
    }

    pub fn heal(&self) {
        for proxy in self.proxies.iter().flatten().flatten() {
            proxy.heal();
        }
    }
}

/// One HTTP request; the answer's status and JSON body (`Null` when the body is not JSON).
pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), ureq::Error> {
    let body = body.map(Value::to_string);
    raw_request(agent, method, url, body.as_deref().map(str::as_bytes), &[])
}

/// One HTTP request with these headers and this body; the answer's status and JSON body.
pub fn raw_request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, String)],
) -> Result<(u16, Value), ureq::Error> {
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut request = agent.get(url);
            for (name, value) in headers {
                request = request.header(*name, value.as_str());
            }
            request.call()?
        }
        ("POST" | "PATCH" | "PUT", Some(body)) => {
            let mut request = match method {
                "POST" => agent.post(url),
                "PUT" => agent.put(url),
                _ => agent.patch(url),
            };
            request = request.header("content-type", "application/json");
            for (name, value) in headers {
                request = request.header(*name, value.as_str());
            }
            request.send(body)?
        }
        (method, _) => panic!("unsupported request {method} {url}"),
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Sends `kill -<name>` to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "kill -{name} {pid} failed"
    );
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes; panics with `what` then.
pub fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !condition() {
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Most items [`drain`] takes from one queue before it calls the queue endless.
pub const DRAIN_MAX: usize = 1_000_000;

/// Takes items from `next` until it has none; `None` if it still has some after [`DRAIN_MAX`]
/// (a queue that never empties would hang the test, not fail it).
pub fn drain_bounded<T>(mut next: impl FnMut() -> Option<T>) -> Option<Vec<T>> {
    let mut items = Vec::new();
    while let Some(item) = next() {
        if items.len() >= DRAIN_MAX {
            return None;
        }
        items.push(item);
    }
    Some(items)
}

/// [`drain_bounded`], panicking with `what` on a queue that never empties.
pub fn drain<T>(what: &str, next: impl FnMut() -> Option<T>) -> Vec<T> {
    drain_bounded(next).unwrap_or_else(|| {
        panic!("{what}: still more after {DRAIN_MAX}, a queue that never empties")
    })
}

/// Bytes a [`Proxy`] keeps of what went through it.
pub const RECORDED_MAX: usize = 64 * 1024 * 1024;

/// A TCP proxy on 127.0.0.1 in front of one address, that can cut the link: a fault injector for
/// partition tests. Cutting closes every open connection and refuses new ones until healed.
///
/// A proxy can also start in front of nothing and be pointed at a node later: the proxy holds its
/// port from the start, so a test can give a node's address to its peers before the node runs,
/// without the race of reserving a port, releasing it and hoping nobody takes it meanwhile.
pub struct Proxy {
    pub url: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The port connections are forwarded to; 0 while the proxy stands in front of nothing.
    target_port: std::sync::Arc<std::sync::atomic::AtomicU16>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    /// Every byte that went through, both directions (see [`Proxy::recording`]).
    pub recorded: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Connections refused (cut, or in front of nothing) so far.
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<its port>` to `127.0.0.1:<target_port>`.
    pub fn start(target_port: u16) -> Proxy {
        let proxy = Proxy::in_front_of_nothing();
        proxy.point_at(target_port);
        proxy
    }

    /// A proxy that refuses every connection until [`Proxy::point_at`] gives it a target.
    pub fn in_front_of_nothing() -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a proxy");
        let url = format!("https://{}", listener.local_addr().expect("proxy address"));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let target_port = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (cut2, target2, open2, recorded2, refused2) = (
            std::sync::Arc::clone(&cut),
            std::sync::Arc::clone(&target_port),
            std::sync::Arc::clone(&open),
            std::sync::Arc::clone(&recorded),
            std::sync::Arc::clone(&refused),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let target_port = target2.load(Ordering::SeqCst);
                if cut2.load(Ordering::SeqCst) || target_port == 0 {
                    refused2.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let mut guard = open2.lock().unwrap_or_else(|p| p.into_inner());
                for stream in [&client, &server] {
                    if let Ok(clone) = stream.try_clone() {
                        guard.push(clone);
                    }
                }
                drop(guard);
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    let recorded = std::sync::Arc::clone(&recorded2);
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buffer = [0_u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buffer) {
                            let Some(bytes) = buffer.get(..n).filter(|b| !b.is_empty()) else {
                                break;
                            };
                            let mut log = recorded.lock().unwrap_or_else(|p| p.into_inner());
                            if log.len() < RECORDED_MAX {
                                log.extend_from_slice(bytes);
                            }
                            drop(log);
                            if to.write_all(bytes).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            url,
            cut,
            target_port,
            open,
            recorded,
            refused,
        }
    }

    /// How many connections the proxy refused so far (cut, or in front of nothing).
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What went through so far, both directions interleaved (at most [`RECORDED_MAX`] bytes).
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forwards new connections to `127.0.0.1:<target_port>` from now on.
    pub fn point_at(&self, target_port: u16) {
        assert_ne!(target_port, 0, "a proxy forwards to a real port");
        self.target_port
            .store(target_port, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A blocking WebSocket client of a node, as tests speak to it by hand.
pub type WebSocket =
    tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Opens a WebSocket to `path` of `node` with these extra headers; reads time out after 200 ms
/// (callers poll with a deadline).
pub fn websocket(
    node: &NodeProcess,
    path: &str,
    headers: &[(&'static str, String)],
) -> Result<WebSocket, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", node.url.replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        let value = value.parse().map_err(|_| {
            tungstenite::Error::Url(tungstenite::error::UrlError::UnsupportedUrlScheme)
        })?;
        request.headers_mut().insert(*name, value);
    }
    let (socket, _) = tungstenite::connect(request)?;
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    Ok(socket)
}

/// The sales stored in a stopped node's database, after checking that the database is intact
/// (`PRAGMA integrity_check`).
pub fn stored_sales(data_dir: &Path) -> i64 {
    let conn = rms_storage::Connection::open(data_dir.join(rms_storage::db::DB_FILE_NAME))
        .expect("the database opens");
    assert_eq!(
        rms_storage::db::integrity_check(&conn).expect("integrity_check runs"),
        "ok"
    );
    conn.query_row(
        "SELECT COUNT(*) FROM sync_events WHERE kind = 'sale_recorded'",
        [],
        |r| r.get(0),
    )
    .expect("the sales are counted")
}

/// Issue #17: `rms-node journal verify` passes on `data_dir` (a running node's database is read
/// in one snapshot), and `node` raised no alarm about a pushed chain or its own journal. Panics
/// naming what failed.
pub fn assert_journal_verifies(data_dir: &Path, node: &NodeProcess) {
    let out = Command::new(node_binary())
        .args(["journal", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("rms-node journal verify runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the journal of {} verifies: {stdout}",
        data_dir.display()
    );
    let (_, alarms) = node.get("/api/v1/audit?operation=alarm&limit=1000");
    let chain_alarms: Vec<&Value> = alarms
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| {
                    let why = e["details"]["why"].as_str().unwrap_or_default();
                    why.contains("chain") || why.starts_with("journal")
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        chain_alarms.is_empty(),
        "no chain alarm on {}: {chain_alarms:?}",
        node.url
    );
}

//! The change feed (issue #16) on real nodes, and the reference till page in a browser: another
//! device's sale is a `product` event, a pending sale the master refuses is a `sale` event with
//! its reason, a reconnect misses and repeats nothing, a reader that never reads costs the node
//! nothing and is never given a gap,
//! bad positions are refused; on the till pages, a product sold out elsewhere shows without a
//! reload (how soon is `make bench`'s row F1), a lost race is announced, and a till cut off from
//! its master keeps selling.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rms_tests::{NodeProcess, Proxy, node_args, wait_for};
use serde_json::{Value, json};

use crate::status_page::Browser;

const DEADLINE: Duration = Duration::from_secs(30);
/// A long master timeout: a till cut off for a few seconds stays a client (no island of its own).
const PATIENT: &[&str] = &[
    "--heartbeat-interval-ms",
    "100",
    "--master-timeout-ms",
    "6000",
    "--sync-interval-ms",
    "300",
];

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) kind: String,
    id: Option<String>,
    pub(crate) data: Value,
}

/// Reads a node's feed on its own thread (HTTP/1.0, so the body is the bytes until close).
pub(crate) struct Feed {
    events: mpsc::Receiver<Event>,
}

fn open_feed(node: &NodeProcess, query: &str, last_event_id: Option<&str>) -> (u16, TcpStream) {
    let address = node.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("the node takes a connection");
    feed_request(&mut stream, address, query, last_event_id)
}

/// A connection whose receive buffer is a few KB: a reader that does not read stalls the node's
/// writes to it at once, as a stuck till on a real network does.
fn open_stuck_feed(node: &NodeProcess) -> (u16, TcpStream) {
    let address = node.url.trim_start_matches("http://");
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let to: std::net::SocketAddr = address.parse().expect("an address");
    socket
        .connect(&to.into())
        .expect("the node takes a connection");
    let mut stream: TcpStream = socket.into();
    feed_request(&mut stream, address, "", None)
}

fn feed_request(
    stream: &mut TcpStream,
    address: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> (u16, TcpStream) {
    let mut request = format!("GET /api/v1/changes{query} HTTP/1.0\r\nHost: {address}\r\n");
    if let Some(id) = last_event_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("the request goes out");
    // A node that does not answer, or answers without end, fails the read, not hangs it.
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("a read timeout");
    let mut status_line = Vec::new();
    let mut byte = [0u8; 1];
    while !status_line.ends_with(b"\r\n") {
        assert!(
            status_line.len() < 1024,
            "no status line in {status_line:?}"
        );
        std::io::Read::read_exact(stream, &mut byte).expect("a status line");
        status_line.push(byte[0]);
    }
    stream.set_read_timeout(None).expect("no read timeout");
    let status = String::from_utf8_lossy(&status_line)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, stream.try_clone().expect("the stream"))
}

impl Feed {
    pub(crate) fn open(node: &NodeProcess, last_event_id: Option<&str>) -> Feed {
        let (status, stream) = open_feed(node, "", last_event_id);
        assert_eq!(status, 200);
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut current = (String::new(), None, String::new());
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(kind) = line.strip_prefix("event:") {
                    current.0 = kind.trim().to_owned();
                } else if let Some(id) = line.strip_prefix("id:") {
                    current.1 = Some(id.trim().to_owned());
                } else if let Some(data) = line.strip_prefix("data:") {
                    current.2.push_str(data.trim());
                } else if line.is_empty() && !current.0.is_empty() {
                    let (kind, id, data) = std::mem::take(&mut current);
                    let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                    if tx.send(Event { kind, id, data }).is_err() {
                        break;
                    }
                }
            }
        });
        Feed { events }
    }

    /// The next event that passes `wanted` within the deadline; the ones before it are skipped.
    pub(crate) fn until(&self, what: &str, wanted: impl Fn(&Event) -> bool) -> Event {
        let mut read = self.read_until(what, wanted);
        read.pop().expect("the wanted event")
    }

    /// Every event up to and including the next one that passes `wanted`, within the deadline.
    fn read_until(&self, what: &str, wanted: impl Fn(&Event) -> bool) -> Vec<Event> {
        let end = Instant::now() + DEADLINE;
        let mut read = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    let done = wanted(&event);
                    read.push(event);
                    if done {
                        return read;
                    }
                }
                Err(_) => panic!(
                    "no {what} on the feed within {DEADLINE:?}; last: {:?}",
                    read.last()
                ),
            }
        }
    }
}

fn create(node: &NodeProcess, sku: &str, stock: i64) {
    let body =
        json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": 100, "stock": stock});
    assert_eq!(node.post("/api/v1/products", &body).0, 201);
}

fn sell(node: &NodeProcess, sku: &str) -> (u16, Value) {
    node.post(
        "/api/v1/sales",
        &json!({"user_id": "ann", "lines": [{"sku": sku, "qty": 1}]}),
    )
}

fn stock(node: &NodeProcess, sku: &str) -> Option<i64> {
    node.get(&format!("/api/v1/products/{sku}")).1["stock"].as_i64()
}

/// Device 1 (master) and device 2, which reaches it only through `proxy`.
fn master_and_till(timing: &[&str]) -> (Vec<tempfile::TempDir>, NodeProcess, NodeProcess, Proxy) {
    let dirs: Vec<_> = (0..2)
        .map(|_| tempfile::tempdir().expect("a dir"))
        .collect();
    // Both advertise an address nobody listens on: the only way between them is the proxy.
    let mut args = node_args("1", timing, &[]);
    args.extend(["--advertise", "http://127.0.0.1:1"]);
    let master = NodeProcess::start(dirs[0].path(), &args);
    let proxy = Proxy::start(master.sync_port());
    let peers = vec![proxy.url.clone()];
    let mut args = node_args("2", timing, &peers);
    args.extend(["--advertise", "http://127.0.0.1:1"]);
    let till = NodeProcess::start(dirs[1].path(), &args);
    wait_for("device 2 follows device 1", DEADLINE, || {
        till.get("/api/v1/health").1["master_id"] == 1
    });
    (dirs, master, till, proxy)
}

#[test]
fn another_devices_sale_and_a_late_refusal_reach_this_devices_feed() {
    let (_dirs, master, till, proxy) = master_and_till(PATIENT);
    create(&master, "tea", 1);
    wait_for("tea on device 2", DEADLINE, || {
        stock(&till, "tea") == Some(1)
    });
    let feed = Feed::open(&till, None);

    // Cut off, device 2 sells the last tea: pending. The master sells it meanwhile.
    proxy.cut();
    let (status, pending) = sell(&till, "tea");
    assert_eq!(status, 202, "{pending}");
    assert_eq!(sell(&master, "tea").0, 201);
    proxy.heal();
    let refused = feed.until("the refusal of the pending sale", |e| {
        e.kind == "sale" && e.data["sale_id"] == pending["sale_id"]
    });
    assert_eq!(refused.data["status"], "rejected");
    assert_eq!(refused.data["reason"], "out_of_stock");

    // Device 1's sale of a product reaches device 2's feed as the product's new state.
    create(&master, "jam", 3);
    feed.until("jam", |e| e.kind == "product" && e.data["sku"] == "jam");
    assert_eq!(sell(&master, "jam").0, 201);
    let jam = feed.until("jam sold elsewhere", |e| {
        e.kind == "product" && e.data["sku"] == "jam" && e.data["stock"] == 2
    });
    assert!(jam.id.is_some());
}

#[test]
fn each_verdict_on_a_sale_reaches_the_feed_once() {
    // Issue #27: every sale a till made came twice on its feed (the master's push_ack and the
    // log entry each told the till of the verdict), and the till page showed each note twice.
    let (_dirs, master, till, _proxy) = master_and_till(PATIENT);
    create(&master, "tea", 5);
    wait_for("tea on device 2", DEADLINE, || {
        stock(&till, "tea") == Some(5)
    });
    let feed = Feed::open(&till, None);
    let (status, first) = sell(&till, "tea");
    assert!(matches!(status, 201 | 202), "{first}");
    // Until device 2 holds the sale's log entry (its second telling of the verdict, before).
    let cursor = |node: &NodeProcess| node.get("/api/v1/sync/status").1["cursor"].as_u64();
    wait_for("the sale in device 2's log", DEADLINE, || {
        let status = till.get("/api/v1/sync/status").1;
        status["pending"] == 0 && cursor(&till).is_some() && cursor(&till) == cursor(&master)
    });
    // A second sale's verdict comes after anything the first one caused.
    let (status, second) = sell(&till, "tea");
    assert!(matches!(status, 201 | 202), "{second}");
    let read = feed.read_until("the second sale's verdict", |e| {
        e.kind == "sale" && e.data["sale_id"] == second["sale_id"] && e.data["status"] == "accepted"
    });
    let told = |sale: &Value| {
        read.iter()
            .filter(|e| e.kind == "sale" && e.data["sale_id"] == sale["sale_id"])
            .count()
    };
    assert_eq!(told(&first), 1, "the first sale's verdict once: {read:?}");
    assert_eq!(told(&second), 1, "the second sale's verdict once: {read:?}");
}

#[test]
fn a_reconnect_misses_nothing_and_repeats_nothing_and_bad_positions_are_refused() {
    let dir = tempfile::tempdir().expect("a dir");
    let node = NodeProcess::start(dir.path(), &["--device-id", "1"]);
    create(&node, "tea", 100);
    let first = Feed::open(&node, None);
    for _ in 0..3 {
        assert_eq!(sell(&node, "tea").0, 201);
    }
    let seen = first.until("the third sale", |e| e.data["stock"] == 97);
    drop(first);
    for _ in 0..4 {
        assert_eq!(sell(&node, "tea").0, 201);
    }
    let again = Feed::open(&node, seen.id.as_deref());
    let mut stocks = Vec::new();
    let mut ids = Vec::new();
    while stocks.last() != Some(&93) {
        assert!(stocks.len() < 4, "stock 93 never came: {stocks:?}");
        let event = again.until("the sales made while away", |e| e.kind == "product");
        stocks.push(event.data["stock"].as_i64().expect("a stock"));
        ids.push(event.id.expect("an id"));
    }
    assert_eq!(stocks, [96, 95, 94, 93], "nothing missed, nothing repeated");
    let seq = |id: &str| -> u64 {
        id.rsplit_once('-')
            .expect("boot-seq")
            .1
            .parse()
            .expect("a seq")
    };
    let boot = ids[0].split_once('-').expect("boot-seq").0.to_owned();
    assert!(ids.windows(2).all(|w| seq(&w[1]) == seq(&w[0]) + 1));

    assert_eq!(open_feed(&node, "?since=yesterday", None).0, 400);
    assert_eq!(open_feed(&node, "?since=1-", None).0, 400);
    assert_eq!(
        open_feed(&node, &format!("?since={boot}-999999"), None).0,
        422
    );
    let stale = Feed::open(&node, Some("1-5"));
    assert_eq!(stale.until("a reset", |_| true).kind, "reset");
}

#[test]
fn a_reader_that_never_reads_does_not_slow_the_node_and_misses_nothing() {
    let dir = tempfile::tempdir().expect("a dir");
    let node = NodeProcess::start(dir.path(), &["--device-id", "1"]);
    let (status, mut stuck) = open_stuck_feed(&node);
    assert_eq!(status, 200);
    let listener = Feed::open(&node, None);
    // Far more events than a reader may fall behind (rms_transport::changes::LAG_MAX, 1024)
    // beyond what its connection buffers: new products, which no look at the database folds.
    std::thread::scope(|s| {
        for half in 0..2 {
            let node = &node;
            s.spawn(move || {
                for i in 0..2_100 {
                    // Long names: about 400 bytes an event, so the buffers fill sooner.
                    let sku = format!("p{half}-{i}-{}", "x".repeat(48));
                    let body = json!({"sku": sku, "name": "n".repeat(200), "price_cents": 1});
                    assert_eq!(node.post("/api/v1/products", &body).0, 201);
                }
            });
        }
    });
    // Not held up by the reader that never reads: every write above was answered, and so is a
    // read now. The deadline is generous (two busy cores must not fail it); no `make bench` row
    // measures what a stuck reader costs, so it is this deadline that bounds it.
    let agent = rms_tests::agent_with_timeout(DEADLINE);
    let health = rms_tests::request(&agent, "GET", &format!("{}/api/v1/health", node.url), None);
    assert!(
        matches!(health, Ok((200, _))),
        "the node is not stalled by its stuck reader: {health:?}"
    );
    let last = |sku: &str| sku.starts_with("p0-2099-") || sku.starts_with("p1-2099-");
    listener.until("a last product on a reader that reads", |e| {
        e.data["sku"].as_str().is_some_and(last)
    });
    // The one that never read: every event in order with no gap (what its connection and the
    // feed's ring held), or a `reset` where it fell too far behind; never a silent gap.
    stuck
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    let end = Instant::now() + DEADLINE;
    let mut text = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let done = |t: &[u8]| {
        let t = String::from_utf8_lossy(t);
        t.contains("event:reset") || (t.contains("p0-2099-") && t.contains("p1-2099-"))
    };
    while !done(&text) {
        assert!(
            Instant::now() < end,
            "the stuck reader got neither everything nor a reset"
        );
        match std::io::Read::read(&mut stuck, &mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(err) => panic!("the stuck reader's stream stalled: {err}"),
        }
    }
    let text = String::from_utf8_lossy(&text);
    let seqs: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .filter_map(|id| id.rsplit_once('-')?.1.parse().ok())
        .collect();
    assert!(seqs.len() > 100, "{} events", seqs.len());
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no repeat"
    );
}

fn page_eval(browser: &mut Browser, page: &str, js: &str) -> Value {
    browser.eval(page, js)
}

fn open_till(browser: &mut Browser, node: &NodeProcess, sku: &str) -> String {
    let page = browser.open(&format!("{}/till", node.url));
    wait_for("the till shows the product", DEADLINE, || {
        page_eval(
            browser,
            &page,
            &format!("document.getElementById('p-{sku}') !== null"),
        ) == true
    });
    page
}

/// Adds one `sku` to the cart and presses Sell.
fn sell_on_page(browser: &mut Browser, page: &str, sku: &str) {
    let js = format!(
        "document.querySelector('#p-{sku} .add').click(); document.getElementById('sell').click(); true"
    );
    assert_eq!(page_eval(browser, page, &js), true);
}

fn notes(browser: &mut Browser, page: &str, class: &str) -> String {
    let js = format!(
        "[...document.querySelectorAll('#notes li.{class}')].map(li => li.textContent).join('\\n')"
    );
    page_eval(browser, page, &js)
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn in_a_browser_two_tills_hear_each_other_at_once_and_a_cut_off_till_keeps_selling() {
    let (_dirs, master, till, proxy) = master_and_till(PATIENT);
    create(&master, "tea", 1);
    create(&master, "jam", 1);
    create(&master, "milk", 5);
    wait_for("the products on device 2", DEADLINE, || {
        stock(&till, "milk") == Some(5)
    });
    let mut browser = Browser::start();
    let a = open_till(&mut browser, &master, "tea");
    let b = open_till(&mut browser, &till, "tea");

    // The last tea sold on A's page is out of stock on B's page: pushed to it, not found on a
    // reload. How soon is `make bench`'s row F1 (a sale on a device -> the product event on
    // another's feed, p99); here a generous deadline, which two busy cores do not race.
    sell_on_page(&mut browser, &a, "tea");
    wait_for("A's sale answered", DEADLINE, || {
        !notes(&mut browser, &a, "ok").is_empty()
    });
    wait_for("B shows tea out of stock", DEADLINE, || {
        page_eval(
            &mut browser,
            &b,
            "document.getElementById('p-tea').dataset.stock",
        ) == "0"
    });

    // Both pages sell the last jam at once: one sale, one conflict naming the product.
    let both = "document.querySelector('#p-jam .add').click(); document.getElementById('sell').click(); true";
    page_eval(&mut browser, &b, both);
    page_eval(&mut browser, &a, both);
    wait_for("one success and one conflict", DEADLINE, || {
        let errors = format!(
            "{}{}",
            notes(&mut browser, &a, "error"),
            notes(&mut browser, &b, "error")
        );
        errors.contains("Product jam") && errors.contains("out of stock")
    });
    assert_eq!(stock(&master, "jam"), Some(0), "exactly one jam sold");

    // B cut off from the master: its page says offline, still sells, and counts what is pending.
    proxy.cut();
    wait_for("B's page shows offline", DEADLINE, || {
        page_eval(
            &mut browser,
            &b,
            "document.getElementById('online').textContent",
        ) == "offline"
    });
    sell_on_page(&mut browser, &b, "milk");
    wait_for("B's sale is pending", DEADLINE, || {
        !notes(&mut browser, &b, "pending").is_empty()
            && page_eval(
                &mut browser,
                &b,
                "document.getElementById('pending').textContent",
            ) == "1"
    });
    proxy.heal();
    wait_for("back online, nothing pending", DEADLINE, || {
        page_eval(
            &mut browser,
            &b,
            "document.getElementById('pending').textContent",
        ) == "0"
    });
    assert_eq!(stock(&master, "milk"), Some(4));
}

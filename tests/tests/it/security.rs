//! Hostile input (issue #6, SPEC §8): one test per attack against a real node with a store key.
//! After each, the node still answers and its products and sales are what they were.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use rms_tests::{NodeProcess, wait_for};
use serde_json::{Value, json};
use tungstenite::Message as Frame;

const KEY: &str = "store-key-for-tests";
const DEADLINE: Duration = Duration::from_secs(10);

type Socket = rms_tests::WebSocket;

/// A lone master with a store key, a product and a sale.
fn store() -> (tempfile::TempDir, NodeProcess) {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &["--device-id", "1", "--store-key", KEY]);
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    assert_eq!(node.post("/api/v1/products", &soap).0, 201);
    let sale = json!({"user_id":"ann","lines":[{"sku":"soap","qty":1}]});
    assert_eq!(node.post("/api/v1/sales", &sale).0, 201);
    (dir, node)
}

/// What a user can read back of the store's data, and whether the node still serves.
fn data(node: &NodeProcess) -> (Value, Value, Value) {
    let (status, health) = node.get("/api/v1/health");
    assert_eq!(status, 200, "the node is healthy: {health}");
    let health =
        json!({"role": health["role"], "term": health["term"], "master_id": health["master_id"]});
    (
        node.get("/api/v1/products").1,
        node.get("/api/v1/sales").1,
        health,
    )
}

fn audit(node: &NodeProcess, operation: &str) -> Vec<Value> {
    let (_, entries) = node.get(&format!("/api/v1/audit?operation={operation}&limit=1000"));
    entries.as_array().cloned().unwrap_or_default()
}

/// Waits until an audit entry of `operation` matches `what`.
fn wait_for_audit(node: &NodeProcess, operation: &str, what: impl Fn(&Value) -> bool) {
    wait_for(&format!("an audit entry of {operation}"), DEADLINE, || {
        audit(node, operation).iter().any(&what)
    });
}

fn connect(node: &NodeProcess, authorization: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let headers: Vec<(&'static str, String)> = authorization
        .map(|value| ("authorization", value.to_owned()))
        .into_iter()
        .collect();
    rms_tests::websocket(node, "/api/v1/ws", &headers)
}

fn peer(node: &NodeProcess) -> Socket {
    connect(node, Some(&format!("Bearer {KEY}"))).expect("a WebSocket with the store key")
}

fn send(socket: &mut Socket, message: &Value) {
    socket
        .send(Frame::text(message.to_string()))
        .expect("the link takes a message");
}

/// What one read of a link gave: a message, nothing yet (the 200 ms read timeout), or the end.
enum Read {
    Text(Value),
    Nothing,
    Closed,
}

fn read(socket: &mut Socket) -> Read {
    match socket.read() {
        Ok(Frame::Text(text)) => Read::Text(serde_json::from_str(text.as_str()).unwrap()),
        Ok(Frame::Close(_)) => Read::Closed,
        Ok(_) => Read::Nothing,
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Read::Nothing
        }
        Err(_) => Read::Closed,
    }
}

/// The next message of `kind`, skipping heartbeats and others; `None` if the link closed first.
fn next_of(socket: &mut Socket, kind: &str) -> Option<Value> {
    let until = Instant::now() + DEADLINE;
    while Instant::now() < until {
        match read(socket) {
            Read::Text(message) if message["type"] == kind => return Some(message),
            Read::Closed => return None,
            Read::Text(_) | Read::Nothing => {}
        }
    }
    panic!("no {kind} message within {DEADLINE:?}");
}

/// True once the node has closed the link.
fn closed(socket: &mut Socket) -> bool {
    let until = Instant::now() + DEADLINE;
    while Instant::now() < until {
        if matches!(read(socket), Read::Closed) {
            return true;
        }
    }
    false
}

/// The node's epoch as the wire carries it.
fn epoch(node: &NodeProcess) -> Value {
    let (_, health) = node.get("/api/v1/health");
    json!({"term": health["term"], "master_id": health["master_id"], "master_priority": 0})
}

fn peer_info(device: u16) -> Value {
    json!({"device_id": device, "name": format!("till {device}"), "advertise": "http://127.0.0.1:1", "priority": 0})
}

/// A device that registered with the master as `device`.
fn registered(node: &NodeProcess, device: u16) -> Socket {
    let mut socket = peer(node);
    send(
        &mut socket,
        &json!({"type":"register","peer": peer_info(device),"epoch": epoch(node),"log_head":0}),
    );
    assert!(next_of(&mut socket, "register_ack").is_some());
    socket
}

/// A product-created event of `origin`, as a device would push it.
fn event(origin: u16, seq: u64, sku: &str) -> Value {
    json!({
        "event_id": format!("{origin}-{seq}"),
        "hlc": {"wall_ms": 1_700_000_000_000_u64, "counter": 0},
        "user_id": "mallory",
        "term": 1,
        "critical": false,
        "payload": {"kind":"product_created","sku": sku,"name":"Forged","price_cents":1,"stock":1},
        "status": "pending",
        "created_at_ms": 1_700_000_000_000_u64,
    })
}

#[test]
fn no_key_and_a_wrong_key_get_401_on_rest_and_websocket() {
    let (_dir, node) = store();
    let before = data(&node);
    for authorization in [
        None,
        Some("Bearer wrong-key".to_owned()),
        Some(KEY.to_owned()),
    ] {
        let headers: Vec<(&str, String)> = authorization
            .iter()
            .map(|a| ("authorization", a.clone()))
            .collect();
        let (status, body) = node.raw("GET", "/api/v1/sales", None, &headers);
        assert_eq!(status, 401, "{authorization:?}: {body}");
        assert_eq!(body["error"], "unauthorized");
        let sale = br#"{"user_id":"eve","lines":[{"sku":"soap","qty":9}]}"#;
        let (status, _) = node.raw("POST", "/api/v1/sales", Some(sale), &headers);
        assert_eq!(status, 401);
        match connect(&node, authorization.as_deref()) {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("the upgrade must be refused, got {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(data(&node), before);
}

#[test]
fn oversized_malformed_and_wrongly_typed_bodies_are_refused() {
    let (_dir, node) = store();
    let before = data(&node);
    let auth = [("authorization", format!("Bearer {KEY}"))];
    // Over 1 MiB: refused on the announced length, before the body is read (a client still
    // writing would see its pipe closed, so the request is written by hand and only announced).
    let mut stream = TcpStream::connect(node.url.trim_start_matches("http://")).unwrap();
    let head = format!(
        "POST /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024 + 1
    );
    std::io::Write::write_all(&mut stream, head.as_bytes()).unwrap();
    let mut answer = [0_u8; 12];
    std::io::Read::read_exact(&mut stream, &mut answer).unwrap();
    assert_eq!(
        &answer,
        b"HTTP/1.1 413",
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let cases: [(&[u8], u16); 4] = [
        (br#"{"sku":"tea","name":"Tea""#, 400),
        (
            br#"{"sku":"tea","name":"Tea","price_cents":"12","stock":1}"#,
            400,
        ),
        (
            br#"{"sku":"tea","name":"Tea","price_cents":12,"stock":1,"admin":true}"#,
            400,
        ),
        (
            br#"{"sku":"tea","name":"Tea","price_cents":-5,"stock":1}"#,
            422,
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = node.raw("POST", "/api/v1/products", Some(body), &auth);
        assert_eq!(status, expected, "{answer}");
        assert!(
            answer["error"].is_string(),
            "the JSON error shape: {answer}"
        );
    }
    assert_eq!(data(&node), before);
}

#[test]
fn oversized_and_malformed_websocket_messages_close_the_link() {
    let (_dir, node) = store();
    let before = data(&node);
    let mut socket = registered(&node, 5);
    let big = format!(
        r#"{{"type":"push","epoch":null,"events":[],"pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let _ = socket.send(Frame::text(big));
    assert!(closed(&mut socket), "a message over 1 MiB closes the link");

    let mut socket = registered(&node, 5);
    send(&mut socket, &json!({"type":"push","epoch": 7}));
    assert!(
        closed(&mut socket),
        "a wrongly typed message closes the link"
    );
    wait_for_audit(&node, "error", |e| e["details"]["why"] == "undecodable");

    let mut socket = peer(&node);
    socket.send(Frame::text("{not json")).unwrap();
    assert!(closed(&mut socket), "malformed JSON closes the link");
    assert_eq!(data(&node), before);
}

#[test]
fn a_device_cannot_push_events_of_another_device() {
    let (_dir, node) = store();
    let before = data(&node);
    let mut socket = registered(&node, 5);
    send(
        &mut socket,
        &json!({"type":"push","epoch": epoch(&node),"events":[event(7, 1, "forged")]}),
    );
    let refusal = next_of(&mut socket, "error").expect("an error answer");
    assert_eq!(refusal["code"], "refused", "{refusal}");
    wait_for_audit(&node, "alarm", |e| {
        e["details"]["why"] == "pushed events of another device"
    });
    assert_eq!(node.get("/api/v1/products/forged").0, 404);
    assert_eq!(data(&node), before);
}

#[test]
fn a_replayed_push_changes_nothing_and_is_audited_as_a_replay() {
    let (_dir, node) = store();
    let mut socket = registered(&node, 5);
    let push = json!({"type":"push","epoch": epoch(&node),"events":[event(5, 1, "tea")]});
    send(&mut socket, &push);
    let first = next_of(&mut socket, "push_ack").expect("an ack");
    assert_eq!(first["verdicts"][0]["status"], "synced", "{first}");
    let before = data(&node);
    send(&mut socket, &push);
    let again = next_of(&mut socket, "push_ack").expect("an ack of the replay");
    assert_eq!(again["verdicts"], first["verdicts"], "the same verdict");
    wait_for_audit(&node, "push_received", |e| {
        e["details"]["replayed"] == json!(["5-1"])
    });
    assert_eq!(data(&node), before);
}

#[test]
fn a_stale_epoch_is_refused() {
    let (_dir, node) = store();
    let before = data(&node);
    let mut socket = registered(&node, 5);
    let old = json!({"term": 0, "master_id": 1, "master_priority": 0});
    send(
        &mut socket,
        &json!({"type":"push","epoch": old,"events":[event(5, 1, "tea")]}),
    );
    let refusal = next_of(&mut socket, "error").expect("an error answer");
    assert_eq!(refusal["code"], "stale_term", "{refusal}");
    wait_for_audit(&node, "error", |e| e["details"]["refused"] == "push");
    assert_eq!(node.get("/api/v1/products/tea").0, 404);
    assert_eq!(data(&node), before);
}

#[test]
fn an_announce_from_an_unknown_device_or_for_another_is_refused() {
    let (_dir, node) = store();
    let before = data(&node);
    let phantom = json!({"term": 99, "master_id": 43, "master_priority": 0});
    let announce = json!({"type":"master_announce","epoch": phantom,"url":"http://127.0.0.1:1"});

    // From a link that never said which device it is: closed and audited.
    let mut socket = peer(&node);
    send(&mut socket, &announce);
    assert!(closed(&mut socket));
    wait_for_audit(&node, "error", |e| e["details"]["why"] == "not_introduced");

    // From device 42, announcing device 43 (a master only ever announces itself): refused.
    let mut socket = peer(&node);
    send(
        &mut socket,
        &json!({"type":"heartbeat","peer": peer_info(42),"epoch": epoch(&node),"role":"client","log_head":0}),
    );
    send(&mut socket, &announce);
    let refusal = next_of(&mut socket, "error").expect("an error answer");
    assert_eq!(refusal["code"], "refused", "{refusal}");
    wait_for_audit(&node, "error", |e| {
        e["details"]["why"] == "announce_for_another_device"
    });
    assert_eq!(data(&node), before, "still master in the same term");
}

#[test]
fn a_pushed_event_that_breaks_a_data_rule_is_refused_and_never_logged() {
    let (_dir, node) = store();
    let before = data(&node);
    let mut socket = registered(&node, 5);
    let mut sale = event(5, 1, "soap");
    // A negative quantity would put stock back on the shelf.
    sale["payload"] = json!({"kind":"sale_recorded","sale_id":"5-1","lines":[{"sku":"soap","qty":-5,"price_cents":120}]});
    let mut huge = event(5, 2, "tea");
    huge["created_at_ms"] = json!(u64::MAX);
    send(
        &mut socket,
        &json!({"type":"push","epoch": epoch(&node),"events":[sale, huge]}),
    );
    let ack = next_of(&mut socket, "push_ack").expect("verdicts");
    for verdict in ack["verdicts"].as_array().unwrap() {
        assert_eq!(verdict["status"], "rejected", "{ack}");
        assert_eq!(verdict["reason"], "invalid", "{ack}");
        assert!(verdict["master_seq"].is_null(), "not logged: {ack}");
    }
    wait_for_audit(&node, "alarm", |e| {
        e["details"]["field"] == "payload.lines[0].qty"
    });
    assert_eq!(data(&node), before);
}

#[test]
fn devices_with_the_key_form_a_store_and_one_with_another_key_stays_out() {
    // Nodes send the key to each other: two with it sync, one with another key cannot join.
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let with_key = |device: &'static str, key: &'static str, peers: &[String]| {
        let mut args = rms_tests::node_args(device, rms_tests::FAST, peers);
        // The store-key window open: devices with the key are trusted on first use.
        args.extend(["--store-key", key, "--store-key-window-hours", "1"]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let start = |i: usize, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        NodeProcess::start(dirs[i].path(), &args)
    };
    let master = start(0, with_key("1", KEY, &[]));
    let peers = vec![master.sync_url.clone()];
    let member = start(1, with_key("2", KEY, &peers));
    let intruder = start(2, with_key("3", "some-other-key", &peers));
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    assert_eq!(master.post("/api/v1/products", &soap).0, 201);
    wait_for("the member has the product", DEADLINE, || {
        member.get("/api/v1/products/soap").0 == 200
    });
    // It stays out, joining, for five master timeouts: no island of its own, and it records
    // nothing (issue #27).
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        let health = intruder.get("/api/v1/health").1;
        assert_eq!(
            (health["joining"].clone(), health["master_id"].clone()),
            (json!(true), Value::Null),
            "{health}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(intruder.post("/api/v1/products", &soap).0, 503);
    let (_, cluster) = master.get("/api/v1/cluster");
    let ids: Vec<&Value> = cluster["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["device_id"])
        .collect();
    assert_eq!(ids, [&json!(1), &json!(2)], "{cluster}");
    assert_eq!(intruder.get("/api/v1/products/soap").0, 404);
}

#[test]
fn a_web_page_of_another_site_cannot_use_a_node() {
    // A page open in a till's browser could otherwise sell or read on a node without a key
    // (loopback): a request whose Origin is another site is refused and writes nothing.
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &["--device-id", "1"]);
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    assert_eq!(node.post("/api/v1/products", &soap).0, 201);
    let before = data(&node);
    let sale = br#"{"user_id":"eve","lines":[{"sku":"soap","qty":9}]}"#;
    let evil = [("origin", "http://evil.example".to_owned())];
    let (status, body) = node.raw("POST", "/api/v1/sales", Some(sale), &evil);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "cross_site");
    assert_eq!(node.raw("GET", "/api/v1/sales", None, &evil).0, 403);
    assert_eq!(data(&node), before);
    // The node's own status page is same-origin.
    let own = [("origin", node.url.clone())];
    assert_eq!(node.raw("GET", "/api/v1/health", None, &own).0, 200);
}

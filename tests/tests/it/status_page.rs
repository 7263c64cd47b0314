//! The status page (issue #8): served at `/`, fed live over `/api/v1/status/ws`.

use std::time::{Duration, Instant};

use rms_tests::{FAST, NodeProcess, node_args, wait_for};
use serde_json::{Value, json};
use tungstenite::Message as Frame;

const DEADLINE: Duration = Duration::from_secs(20);

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn feed(node: &NodeProcess, protocol: Option<&str>) -> Result<Socket, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/v1/status/ws", node.url.replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
    }
    let (socket, _) = tungstenite::connect(request)?;
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    Ok(socket)
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
    let peers = vec![master.url.clone()];
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

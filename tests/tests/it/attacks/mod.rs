//! An insider and a bystander against a real store (issue #29): each finding of the attack on a
//! paired store as a test, run the way the attacker ran it, through real processes on loopback.
//! Each test failed on the code before the issue and passes after.

mod audit_spam;
mod doors;
mod exchange;
mod flood;
mod hq_epoch;
mod pairing;

use std::time::Duration;

use rms_tests::tls::{self, Stream};
use rms_tests::{NodeProcess, wait_for};
use rms_transport::identity::Identity;
use serde_json::json;

/// How long a test waits for what the node does on its own.
const DEADLINE: Duration = Duration::from_secs(20);
const KEY: &str = "store-key-for-attacks";

/// The attacker's own device: a certificate made here and approved on the master as device
/// `id`, the way an owner approves a till (and then loses it to a thief).
struct Insider {
    id: u16,
    config: std::sync::Arc<rustls::ClientConfig>,
}

impl Insider {
    fn approved(master: &NodeProcess, id: u16) -> Insider {
        let identity = Identity::ephemeral().unwrap();
        let fingerprint = identity.fingerprint().to_string();
        let body =
            json!({"fingerprint": fingerprint, "device_id": id, "name": format!("till-{id}")});
        let (status, answer) = master.post("/api/v1/devices/approve", &body);
        assert!((200..300).contains(&status), "{status} {answer}");
        wait_for("the approval in the trust list", DEADLINE, || {
            master.get("/api/v1/devices/trust").1["devices"]
                .as_array()
                .is_some_and(|list| {
                    list.iter().any(|e| {
                        e["fingerprint"] == fingerprint.as_str() && e["state"] == "trusted"
                    })
                })
        });
        let config = tls::device_client(&identity);
        Insider { id, config }
    }

    /// A TLS connection to `node`'s store port with this device's certificate.
    fn connect(&self, node: &NodeProcess, read_timeout: Duration) -> Stream {
        let address = ([127, 0, 0, 1], node.sync_port()).into();
        tls::connect(address, &self.config, read_timeout).unwrap()
    }

    /// The head of a `POST /api/v1/sync/exchange` of `body_len` bytes.
    fn exchange_head(body_len: usize) -> String {
        format!(
            "POST /api/v1/sync/exchange HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
        )
    }

    /// An exchange body of this device with `messages` (JSON texts).
    fn exchange_body(&self, messages: &[String]) -> String {
        format!(
            "{{\"device_id\":{},\"messages\":[{}]}}",
            self.id,
            messages.join(",")
        )
    }

    /// Sends one exchange on a new connection; the status and the whole answer.
    fn exchange(&self, node: &NodeProcess, messages: &[String]) -> (u16, Vec<u8>) {
        let mut stream = self.connect(node, Duration::from_secs(30));
        let body = self.exchange_body(messages);
        let request = format!(
            "{}{body}",
            Self::exchange_head(body.len()).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
        );
        assert!(tls::send(&mut stream, request.as_bytes()));
        let answer = tls::read_all(&mut stream);
        let status = std::str::from_utf8(answer.get(9..12).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }
}

/// A pull of `master`'s whole log in its epoch, as a device that lost its copy sends it.
fn pull_all(master: &NodeProcess) -> String {
    let (_, health) = master.get("/api/v1/health");
    let epoch =
        json!({"term": health["term"], "master_id": health["master_id"], "master_priority": 0});
    json!({"type": "pull", "epoch": epoch, "since": 0, "since_epoch": null}).to_string()
}

/// A lone master with a store key and a product of plenty.
fn master(dir: &std::path::Path) -> NodeProcess {
    let node = NodeProcess::start(dir, &["--device-id", "1", "--store-key", KEY]);
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":1_000_000});
    assert_eq!(node.post("/api/v1/products", &soap).0, 201);
    node
}

/// Sells one soap; the status.
fn sell(node: &NodeProcess) -> u16 {
    let sale = json!({"user_id":"ann","lines":[{"sku":"soap","qty":1}]});
    node.post("/api/v1/sales", &sale).0
}

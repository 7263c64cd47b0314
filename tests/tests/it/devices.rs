//! Devices prove who they are (issue #14), with real processes: the store port speaks TLS only,
//! an unknown certificate is refused and listed as pending, a rogue server gets no HTTP byte, a
//! device cannot claim another's id, the wire carries no plaintext, a revoked device is cut off
//! at once, and a store made by the store-key release upgrades without losing a sale.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rms_tests::{FAST, NodeProcess, Proxy, node_args, wait_for};
use serde_json::{Value, json};

const KEY: &str = "store-key-for-device-tests";
const DEADLINE: Duration = Duration::from_secs(20);

/// `node_args` plus the store key and any `extra` flags, as owned strings. The store-key window
/// is open (an hour) unless `extra` says otherwise: a new device's is closed by default.
fn args(device: &str, peers: &[String], extra: &[&str]) -> Vec<String> {
    let mut all = node_args(device, FAST, peers);
    all.extend(["--store-key", KEY]);
    if !extra.contains(&"--store-key-window-hours") {
        all.extend(["--store-key-window-hours", "1"]);
    }
    all.extend_from_slice(extra);
    all.into_iter().map(str::to_owned).collect()
}

fn start(dir: &Path, args: &[String]) -> NodeProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NodeProcess::start(dir, &args)
}

fn fingerprint(node: &NodeProcess) -> String {
    let (_, health) = node.get("/api/v1/health");
    health["fingerprint"].as_str().unwrap().to_owned()
}

fn trust(node: &NodeProcess) -> Value {
    let (status, trust) = node.get("/api/v1/devices/trust");
    assert_eq!(status, 200, "{trust}");
    trust
}

/// The state of `fingerprint` in `node`'s trust list: trusted, revoked, pending, or none.
fn state_of(node: &NodeProcess, fingerprint: &str) -> String {
    let trust = trust(node);
    let listed = |key: &str| {
        trust[key]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["fingerprint"] == fingerprint)
            .cloned()
    };
    match (listed("devices"), listed("pending")) {
        (Some(entry), _) => entry["state"].as_str().unwrap().to_owned(),
        (None, Some(_)) => "pending".into(),
        (None, None) => "none".into(),
    }
}

fn audit(node: &NodeProcess, operation: &str) -> Vec<Value> {
    let (_, entries) = node.get(&format!("/api/v1/audit?operation={operation}&limit=1000"));
    entries.as_array().cloned().unwrap_or_default()
}

fn connected(node: &NodeProcess) -> Vec<Value> {
    let (_, status) = node.get("/api/v1/sync/status");
    status["connected"].as_array().cloned().unwrap_or_default()
}

fn rms_node(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(rms_tests::node_binary())
        .args(args)
        .output()
        .expect("run rms-node");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn an_unknown_certificate_with_the_key_after_the_window_waits_until_both_sides_approve() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let closed = ["--store-key-window-hours", "0"];
    let one = start(dirs[0].path(), &args("1", &[], &closed));
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    assert_eq!(one.post("/api/v1/products", &soap).0, 201);
    let two = start(
        dirs[1].path(),
        &args("2", std::slice::from_ref(&one.sync_url), &closed),
    );
    let (one_id, two_id) = (fingerprint(&one), fingerprint(&two));

    wait_for("device 2 pending on device 1", DEADLINE, || {
        state_of(&one, &two_id) == "pending"
    });
    let refusals = audit(&one, "rejection");
    assert!(
        refusals
            .iter()
            .any(|e| e["details"]["why"] == "unknown_device"
                && e["details"]["fingerprint"] == two_id),
        "{refusals:?}"
    );
    // It received nothing: no product, no master.
    assert_eq!(two.get("/api/v1/products/soap").0, 404);
    assert_ne!(two.get("/api/v1/health").1["master_id"], 1);

    // The owner compares the IDs and approves on both sides, with the CLI.
    let (ok, out) = rms_node(&[
        "devices",
        "approve",
        &two_id,
        "--url",
        &one.url,
        "--store-key",
        KEY,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = rms_node(&[
        "devices",
        "approve",
        &one_id,
        "--device-id",
        "1",
        "--url",
        &two.url,
        "--store-key",
        KEY,
    ]);
    assert!(ok, "{out}");
    wait_for("device 2 syncs the catalogue", DEADLINE, || {
        two.get("/api/v1/products/soap").0 == 200
    });
    assert_eq!(state_of(&one, &two_id), "trusted");
    let (ok, listing) = rms_node(&["devices", "--url", &one.url, "--store-key", KEY]);
    assert!(
        ok && listing.contains(&two_id) && listing.contains("approved"),
        "{listing}"
    );
    assert!(listing.contains("store-key window: closed"), "{listing}");
}

#[test]
fn a_rogue_server_with_the_store_key_gets_no_http_byte() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = start(dirs[0].path(), &args("1", &[], &[]));
    let mut two = start(
        dirs[1].path(),
        &args("2", std::slice::from_ref(&one.sync_url), &[]),
    );
    let two_id = fingerprint(&two);
    wait_for("device 1 trusts device 2", DEADLINE, || {
        state_of(&one, &two_id) == "trusted"
    });
    wait_for("device 2 knows device 1", DEADLINE, || {
        state_of(&two, &fingerprint(&one)) == "trusted"
    });
    // A rogue device with the store key (and its window open), behind a recording relay.
    let rogue = start(dirs[2].path(), &args("9", &[], &[]));
    let relay = Proxy::start(rogue.sync_port());
    two.terminate();
    let two = start(
        dirs[1].path(),
        &args("2", std::slice::from_ref(&relay.url), &[]),
    );
    // Device 2 dials the rogue again and again (with backoff): three handshakes at least.
    wait_for("device 2 tried the rogue", DEADLINE, || {
        relay
            .recorded()
            .windows(3)
            .filter(|w| w == &[0x16, 0x03, 0x01])
            .count()
            >= 3
    });
    assert_eq!(
        state_of(&rogue, &two_id),
        "none",
        "the rogue never heard a request"
    );
    assert!(audit(&rogue, "rejection").is_empty());
    assert!(audit(&rogue, "trust").iter().all(|e| e["device_id"] == 9));
    let bytes = relay.recorded();
    for secret in [KEY.as_bytes(), b"GET ", b"HTTP/1.1", b"rms-device"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{:?} crossed the wire",
            String::from_utf8_lossy(secret)
        );
    }
    // Device 2 still works with its real store.
    assert_eq!(two.get("/api/v1/health").0, 200);
}

#[test]
fn the_store_port_refuses_plain_http_and_the_api_of_another_machine_refuses_links() {
    let dir = tempfile::tempdir().unwrap();
    let one = start(dir.path(), &args("1", &[], &[]));
    let mut stream = TcpStream::connect(("127.0.0.1", one.sync_port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn a_device_claiming_another_devices_id_is_refused_with_an_alarm_and_cannot_lead() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = start(dirs[0].path(), &args("1", &[], &[]));
    let two = start(
        dirs[1].path(),
        &args("2", std::slice::from_ref(&one.sync_url), &[]),
    );
    wait_for("device 2 follows device 1", DEADLINE, || {
        two.get("/api/v1/health").1["master_id"] == 1
    });
    let term = one.get("/api/v1/health").1["term"].clone();
    // Another certificate that claims device 2 and would win every election.
    let imposter = start(
        dirs[2].path(),
        &args(
            "2",
            std::slice::from_ref(&one.sync_url),
            &["--priority", "100"],
        ),
    );
    let imposter_id = fingerprint(&imposter);
    wait_for("an alarm on device 1", DEADLINE, || {
        audit(&one, "alarm").iter().any(|e| {
            e["details"]["why"] == "device_id_taken" && e["details"]["fingerprint"] == imposter_id
        })
    });
    for node in [&one, &two] {
        let (_, health) = node.get("/api/v1/health");
        assert_eq!(
            (health["master_id"].clone(), health["term"].clone()),
            (json!(1), term.clone())
        );
    }
    assert_ne!(state_of(&one, &imposter_id), "trusted");
    assert_eq!(imposter.get("/api/v1/products").1, json!([]));
}

#[test]
fn the_wire_between_two_devices_carries_tls_records_only() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = start(dirs[0].path(), &args("1", &[], &[]));
    let relay = Proxy::start(one.sync_port());
    // Device 1 cannot dial device 2 (its advertised address is dead): every byte between them
    // crosses the relay.
    let dead = ["--advertise", "https://127.0.0.1:1"];
    let two = start(
        dirs[1].path(),
        &args("2", std::slice::from_ref(&relay.url), &dead),
    );
    let canary = json!({"sku":"canary-sku-7f3a","name":"Canary","price_cents":120,"stock":10});
    assert_eq!(one.post("/api/v1/products", &canary).0, 201);
    wait_for("device 2 has the canary", DEADLINE, || {
        two.get("/api/v1/products/canary-sku-7f3a").0 == 200
    });
    let sale = json!({"user_id":"cashier-canary-42","lines":[{"sku":"canary-sku-7f3a","qty":2}]});
    let (status, sold) = two.post("/api/v1/sales", &sale);
    assert!(status == 201 || status == 202, "{status} {sold}");
    let sale_id = sold["sale_id"].as_str().unwrap().to_owned();
    wait_for("device 1 has the sale", DEADLINE, || {
        one.get(&format!("/api/v1/sales/{sale_id}")).0 == 200
    });
    let bytes = relay.recorded();
    assert_eq!(bytes.first(), Some(&0x16), "a TLS handshake record first");
    for secret in [
        KEY.as_bytes(),
        b"canary-sku-7f3a",
        b"cashier-canary-42",
        b"Canary",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{:?} crossed the wire in plaintext",
            String::from_utf8_lossy(secret)
        );
    }
}

#[test]
fn a_revoked_device_is_cut_off_from_every_device_within_two_seconds_and_stays_out() {
    let (dirs, mut nodes) = rms_tests::store_of_three(FAST);
    wait_for("device 3 linked to 1 and 2", DEADLINE, || {
        nodes[..2].iter().all(|n| connected(n).contains(&json!(3)))
    });
    let three_id = fingerprint(&nodes[2]);
    // Revoked from a client, with the CLI: the client cuts it at once, the master's log
    // carries it to every device. The spec allows two seconds; the test prints how long it
    // took but asserts a generous deadline only: no `make bench` row measures it, and two busy
    // cores must not fail the test by a few milliseconds.
    let (ok, out) = rms_node(&["devices", "revoke", "3", "--url", &nodes[1].url]);
    assert!(ok, "{out}");
    let revoked_at = Instant::now();
    wait_for("device 3 cut off everywhere", DEADLINE, || {
        nodes[..2].iter().all(|n| !connected(n).contains(&json!(3)))
            && connected(&nodes[2]).is_empty()
    });
    eprintln!(
        "device 3 was cut off everywhere {:?} after its revocation (the spec: within 2 s)",
        revoked_at.elapsed()
    );
    wait_for("the revocation in the master's list", DEADLINE, || {
        state_of(&nodes[0], &three_id) == "revoked"
    });
    // It stays out, across its restart, while the others keep selling.
    nodes[2].terminate();
    let three = NodeProcess::start(
        dirs[2].path(),
        &node_args("3", FAST, std::slice::from_ref(&nodes[0].sync_url)),
    );
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    assert_eq!(nodes[0].post("/api/v1/products", &soap).0, 201);
    wait_for("device 2 has the product", DEADLINE, || {
        nodes[1].get("/api/v1/products/soap").0 == 200
    });
    let sale = json!({"user_id":"ann","lines":[{"sku":"soap","qty":1}]});
    let (status, sold) = nodes[1].post("/api/v1/sales", &sale);
    assert!(status == 201 || status == 202, "{status} {sold}");
    wait_for(
        "device 1 refused the revoked device again",
        DEADLINE,
        || {
            audit(&nodes[0], "alarm").iter().any(|e| {
                e["details"]["why"] == "revoked" && e["details"]["fingerprint"] == three_id
            })
        },
    );
    assert_eq!(three.get("/api/v1/products/soap").0, 404);
    assert!(!connected(&nodes[0]).contains(&json!(3)));
    // Pairing does not bring it back, and tells it no more than it tells anyone.
    let code = open_pairing(&nodes[0], 600);
    assert_eq!(join(&three, &code, &nodes[0].sync_url), refused());
    wait_for("device 1 audited why", DEADLINE, || {
        pairing_reasons(&nodes[0]) == ["pairing_revoked"]
    });
}

/// Copies a data directory made by the release before device certificates (`tests/fixtures`).
fn fixture(device: u16) -> tempfile::TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/store-key-release")
        .join(format!("device-{device}"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(from.join("rms.db"), dir.path().join("rms.db")).unwrap();
    dir
}

#[test]
fn a_store_made_by_the_store_key_release_upgrades_without_losing_a_sale() {
    // Made by the release before device certificates: device 1 master, then stopped; device 2
    // took over and sold once more. Key `upgrade-store-key-0123456789`; see the fixture's README.
    const OLD_KEY: &str = "upgrade-store-key-0123456789";
    let dirs = [fixture(1), fixture(2)];
    let with_key = |device: &str, peers: &[String]| {
        let mut all = node_args(device, FAST, peers);
        all.extend(["--store-key", OLD_KEY]);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let one = start(dirs[0].path(), &with_key("1", &[]));
    let two = start(
        dirs[1].path(),
        &with_key("2", std::slice::from_ref(&one.sync_url)),
    );
    let nodes = [&one, &two];
    wait_for("one master for both", DEADLINE, || {
        let masters: Vec<Value> = nodes
            .iter()
            .map(|n| n.get("/api/v1/health").1["master_id"].clone())
            .collect();
        !masters[0].is_null() && masters[0] == masters[1]
    });
    for sale in ["1-2", "2-1", "2-2"] {
        for node in nodes {
            wait_for(
                &format!("sale {sale} accepted on {}", node.url),
                DEADLINE,
                || {
                    let (status, body) = node.get(&format!("/api/v1/sales/{sale}"));
                    status == 200 && body["status"] == "accepted"
                },
            );
        }
    }
    for node in nodes {
        wait_for("stock 20 - 2 - 3 - 1", DEADLINE, || {
            node.get("/api/v1/products/tea").1["stock"] == 14
        });
    }
    let sale = json!({"user_id":"cy","lines":[{"sku":"tea","qty":1}]});
    let (status, sold) = two.post("/api/v1/sales", &sale);
    assert!(status == 201 || status == 202, "{status} {sold}");
    let sale_id = sold["sale_id"].as_str().unwrap().to_owned();
    wait_for("the new sale accepted on both", DEADLINE, || {
        nodes
            .iter()
            .all(|n| n.get(&format!("/api/v1/sales/{sale_id}")).1["status"] == "accepted")
    });
    // Each device made its certificate, and the store trusts both by the key.
    let ids = [fingerprint(&one), fingerprint(&two)];
    for node in nodes {
        for id in &ids {
            wait_for("both certificates trusted", DEADLINE, || {
                state_of(node, id) == "trusted"
            });
        }
        assert_eq!(trust(node)["store_key_window"]["open"], true);
    }
    assert!(dirs[0].path().join("device-key.pem").exists());
}

/// Asks `joiner` (through its API) to join the store of the device at `peer` with `code`:
/// `joined`, or the joiner's error code and message.
fn join(joiner: &NodeProcess, code: &str, peer: &str) -> String {
    let (status, answer) =
        joiner.post("/api/v1/pairing/join", &json!({"code": code, "peer": peer}));
    match status {
        200 => "joined".into(),
        403 => format!("{}: {}", answer["error"], answer["message"]),
        other => panic!("join answered {other}: {answer}"),
    }
}

/// What every refused join reads on the joiner, whatever the sponsor's reason.
fn refused() -> String {
    let message = rms_transport::net::join::JoinError::CodeRefused.to_string();
    format!("\"pairing_refused\": {}", json!(message))
}

/// The reasons `sponsor` audited for refusing joins (`why` of its `alarm` rows).
fn pairing_reasons(sponsor: &NodeProcess) -> Vec<String> {
    audit(sponsor, "alarm")
        .iter()
        .filter_map(|entry| entry["details"]["why"].as_str())
        .filter(|why| why.starts_with("pairing_"))
        .map(str::to_owned)
        .collect()
}

fn open_pairing(sponsor: &NodeProcess, ttl_seconds: u64) -> String {
    open_pairing_until(sponsor, ttl_seconds).0
}

/// A pairing window's code, and when it closes (ms since the epoch, by the sponsor's clock).
fn open_pairing_until(sponsor: &NodeProcess, ttl_seconds: u64) -> (String, u64) {
    let (status, answer) = sponsor.post("/api/v1/pairing", &json!({"ttl_seconds": ttl_seconds}));
    assert_eq!(status, 200, "{answer}");
    let closes_at = answer["expires_at"].as_str().unwrap();
    let closes_at_ms = rms_domain::ms_from_rfc3339(closes_at).unwrap();
    (answer["code"].as_str().unwrap().to_owned(), closes_at_ms)
}

#[test]
fn pairing_refuses_expired_foreign_and_used_codes_alike_and_a_right_one_syncs() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = start(dirs[0].path(), &args("1", &[], &[]));
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    assert_eq!(one.post("/api/v1/products", &soap).0, 201);
    // Device 2 is in the store (by the key); device 3 has no key: it must pair.
    let two = start(
        dirs[1].path(),
        &args("2", std::slice::from_ref(&one.sync_url), &[]),
    );
    wait_for("device 2 in the store", DEADLINE, || {
        two.get("/api/v1/products/soap").0 == 200
    });
    let new = NodeProcess::start(
        dirs[2].path(),
        &node_args("3", FAST, std::slice::from_ref(&one.sync_url)),
    );
    let peer = one.sync_url.clone();

    // Expired: a window of one second; the right code after it is refused, and only the
    // sponsor's audit says why.
    let (expiring, closes_at_ms) = open_pairing_until(&one, 1);
    wait_for("the window's time to run out", DEADLINE, || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.unwrap().as_millis() > u128::from(closes_at_ms)
    });
    assert_eq!(join(&new, &expiring, &peer), refused());
    wait_for("the audited reason", DEADLINE, || {
        pairing_reasons(&one) == ["pairing_expired"]
    });

    // Another sponsor's code, then wrong codes: refused alike, and the source waits.
    let code = open_pairing(&one, 600);
    let foreign = open_pairing(&two, 600);
    assert_eq!(join(&new, &foreign, &peer), refused());
    wait_for("the source waits", DEADLINE, || {
        assert_eq!(join(&new, "BBBB-CCCC-DDDD", &peer), refused());
        pairing_reasons(&one).contains(&"pairing_backoff".to_owned())
    });
    assert_eq!(new.get("/api/v1/products/soap").0, 404);

    // The window survived: once the wait is over the right code, with the CLI, gets in, and
    // the new device syncs.
    wait_for("the right code gets in", DEADLINE, || {
        let (joined, text) = rms_node(&["join", &code, "--peer", &peer, "--url", &new.url]);
        assert!(joined || text.contains("rms-node pair"), "{text}");
        joined
    });
    wait_for("the new device syncs the catalogue", DEADLINE, || {
        new.get("/api/v1/products/soap").0 == 200
    });
    assert_eq!(state_of(&one, &fingerprint(&new)), "trusted");
    assert_eq!(state_of(&new, &fingerprint(&one)), "trusted");

    // The code is used up: another device cannot join with it, and is told no more.
    let late = NodeProcess::start(
        dirs[3].path(),
        &node_args("4", FAST, std::slice::from_ref(&peer)),
    );
    assert_eq!(join(&late, &code, &peer), refused());
    let reasons = pairing_reasons(&one);
    for why in [
        "pairing_expired",
        "pairing_wrong_code",
        "pairing_backoff",
        "pairing_used",
    ] {
        assert!(reasons.contains(&why.to_owned()), "{why} in {reasons:?}");
    }
}

/// Connects to `port` with `config`, asks for `/api/v1/health` and returns what came back
/// before the connection ended or failed (empty: refused before any HTTP).
fn http_over_tls(port: u16, config: rustls::ClientConfig) -> Vec<u8> {
    use rustls::pki_types::ServerName;
    let name = ServerName::try_from("rms-device").unwrap();
    let Ok(connection) = rustls::ClientConnection::new(Arc::new(config), name) else {
        return Vec::new();
    };
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    let request = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .is_err()
    {
        return Vec::new();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

#[test]
fn the_store_port_refuses_tls_1_2_clients_without_a_certificate_and_borrowed_certificates() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &node_args("1", FAST, &[]));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let me = rms_transport::identity::Identity::ephemeral().unwrap();
    let other = rms_transport::identity::Identity::ephemeral().unwrap();
    let chain = || vec![CertificateDer::from(me.cert_der().to_vec())];
    let key = |identity: &rms_transport::identity::Identity| {
        PrivateKeyDer::from_pem_slice(identity.key_pem().as_bytes()).unwrap()
    };
    let builder = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(rms_tests::tls::AnyServer(Arc::clone(
                &provider,
            ))))
    };
    // The control: TLS 1.3 with a certificate and its key is answered (403: nobody trusts it).
    let control = builder(&[&rustls::version::TLS13])
        .with_client_auth_cert(chain(), key(&me))
        .unwrap();
    let answer = http_over_tls(node.sync_port(), control);
    assert!(
        answer.starts_with(b"HTTP/1.1 40"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let tls12 = builder(&[&rustls::version::TLS12])
        .with_client_auth_cert(chain(), key(&me))
        .unwrap();
    let anonymous = builder(&[&rustls::version::TLS13]).with_no_client_auth();
    // Another device's certificate with this key: rustls refuses to build it, so the config is
    // made with the key the certificate does not belong to through a resolver.
    let borrowed = builder(&[&rustls::version::TLS13]).with_client_cert_resolver(Arc::new(
        Borrowed(Arc::new(rustls::sign::CertifiedKey::new(
            chain(),
            provider.key_provider.load_private_key(key(&other)).unwrap(),
        ))),
    ));
    for (what, config) in [
        ("TLS 1.2", tls12),
        ("no client certificate", anonymous),
        ("a certificate without its key", borrowed),
    ] {
        let answer = http_over_tls(node.sync_port(), config);
        assert!(
            !answer.windows(5).any(|w| w == b"HTTP/"),
            "{what} got an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(node.get("/api/v1/health").0, 200, "the node still serves");
}

/// Presents one certificate with another key.
#[derive(Debug)]
struct Borrowed(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Borrowed {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

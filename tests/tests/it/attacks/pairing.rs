//! Finding 5: a bystander could lock a pairing window and read its state. A script on the LAN
//! (here 127.0.0.2) sends wrong codes as fast as the sponsor answers, before, during and after
//! the window `rms-node pair` opens; the real `rms-node join` from 127.0.0.1 still gets in, and
//! every answer the script reads is the same refusal, whatever the window's state.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rms_security::identity::Identity;
use rms_security::proof::{self, DEVICE_HEADER, PROOF_HEADER, Side};
use rms_security::tls::{self, Trusted};
use rms_tests::{FAST, NodeProcess, node_args, wait_for};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);
/// The sponsor's store key: with one, a device of the machine is not trusted on first use; the
/// joiner has none, so it must pair.
const KEY: &str = "store-key-for-the-pairing-attack";
/// Where the flood comes from: loopback, but not the real joiner's 127.0.0.1.
const FLOOD_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Wrong codes sent before the real join starts (the window used to lock at ten).
const FLOOD_BEFORE_JOIN: usize = 40;
/// Attempts before the window opens, and after it was used.
const ATTEMPTS_OUTSIDE_THE_WINDOW: usize = 3;
/// The device id the flooder claims.
const FLOODER_DEVICE: u16 = 9;

/// One join with a wrong code, sent from [`FLOOD_FROM`] to the store port at `port` as a script
/// would send it: a new TLS session with `identity`'s certificate, and a well-formed proof of
/// `code` bound to that session. The sponsor's HTTP status and JSON body.
fn wrong_join(port: u16, identity: &Identity, code: &str) -> (u16, Value) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((FLOOD_FROM, 0)).into())
        .unwrap();
    let sponsor = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    socket
        .connect_timeout(&sponsor.into(), Duration::from_secs(5))
        .unwrap();
    let mut tcp: TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let config = tls::client_config(identity, Trusted::anyone()).unwrap();
    let name = rustls::pki_types::ServerName::try_from("rms-device").unwrap();
    let mut session = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    while session.is_handshaking() {
        session.complete_io(&mut tcp).unwrap();
    }
    let exporter = proof::exporter(&session).unwrap();
    let device = rms_domain::DeviceId::new(FLOODER_DEVICE).unwrap();
    let proof = proof::prove(
        code,
        Side::Dialer,
        &exporter,
        &identity.fingerprint(),
        device,
    );
    let request = format!(
        "POST /api/v1/pairing/join HTTP/1.1\r\nHost: 127.0.0.1\r\n{DEVICE_HEADER}: \
         {FLOODER_DEVICE}\r\n{PROOF_HEADER}: {proof}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    let mut stream = rustls::StreamOwned::new(session, tcp);
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .find('{')
        .zip(answer.rfind('}'))
        .and_then(|(start, end)| serde_json::from_str(&answer[start..=end]).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

/// A script sending wrong codes to one store port from [`FLOOD_FROM`] until it is stopped.
struct Flood {
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u16, Value)>>,
}

impl Flood {
    fn start(port: u16) -> Flood {
        let (sent, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (counter, stopped) = (Arc::clone(&sent), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let identity = Identity::ephemeral().unwrap();
            let mut answers = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                answers.push(wrong_join(port, &identity, "BBBB-CCCC-DDDD"));
                counter.fetch_add(1, Ordering::SeqCst);
            }
            answers
        });
        Flood { sent, stop, thread }
    }

    /// Waits until the flood sent `more` attempts beyond what it had sent.
    fn wait_for_more(&self, more: usize) {
        let until = self.sent.load(Ordering::SeqCst) + more;
        wait_for("the flood's attempts", DEADLINE, || {
            self.sent.load(Ordering::SeqCst) >= until
        });
    }

    /// Stops the flood; every answer it read.
    fn stop(self) -> Vec<(u16, Value)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

fn rms_node(args: &[&str]) -> std::process::Output {
    std::process::Command::new(rms_tests::node_binary())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_flood_of_wrong_codes_from_one_address_neither_locks_pairing_nor_learns_its_state() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut args = node_args("1", FAST, &[]);
    args.extend(["--store-key", KEY]);
    let sponsor = NodeProcess::start(dirs[0].path(), &args);
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    assert_eq!(sponsor.post("/api/v1/products", &soap).0, 201);
    let peers = [sponsor.sync_url.clone()];
    let joiner = NodeProcess::start(dirs[1].path(), &node_args("2", FAST, &peers));

    let flood = Flood::start(sponsor.sync_port());
    flood.wait_for_more(ATTEMPTS_OUTSIDE_THE_WINDOW);
    let paired = rms_node(&["pair", "--url", &sponsor.url, "--store-key", KEY]);
    assert!(paired.status.success(), "{paired:?}");
    let code = String::from_utf8_lossy(&paired.stdout).trim().to_owned();
    flood.wait_for_more(FLOOD_BEFORE_JOIN);
    let joined = rms_node(&[
        "join",
        &code,
        "--peer",
        &sponsor.sync_url,
        "--url",
        &joiner.url,
    ]);
    assert!(joined.status.success(), "the real join: {joined:?}");
    flood.wait_for_more(ATTEMPTS_OUTSIDE_THE_WINDOW);
    let answers = flood.stop();

    // No window, a wrong code, a source waiting, a used window: one answer to the script.
    let first = &answers[0];
    assert_eq!(first.0, 403, "{first:?}");
    assert_eq!(first.1["error"], "pairing_refused", "{first:?}");
    for answer in &answers {
        assert_eq!(answer, first, "every refusal reads the same");
    }
    // The sponsor's audit keeps the reasons (each audited once a minute per certificate).
    let (_, alarms) = sponsor.get("/api/v1/audit?operation=alarm&limit=1000");
    let reasons: Vec<&str> = alarms
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| {
            entry["details"]["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.2:"))
        })
        .filter_map(|entry| entry["details"]["why"].as_str())
        .collect();
    for why in [
        "pairing_closed",
        "pairing_wrong_code",
        "pairing_backoff",
        "pairing_used",
    ] {
        assert!(reasons.contains(&why), "{why} in {reasons:?}");
    }
    wait_for("the joined device syncs the catalogue", DEADLINE, || {
        joiner.get("/api/v1/products/soap").0 == 200
    });
}

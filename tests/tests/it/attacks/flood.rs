//! Finding 6: 1 100 idle connections from one source, refilled every 50 ms, held the store
//! port's connection slots, and trusted devices could not complete a handshake. A source that
//! no trusted certificate came from now gets a few slots, a handshake has a short deadline, and
//! a till restarted in the middle of the flood links at once.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rms_tests::{FAST, NodeProcess, node_args, wait_for};
use serde_json::json;

use super::{DEADLINE, KEY};

/// Connections the flood keeps open, as in the finding.
const FLOOD: usize = 1100;
/// The flood's source: another loopback address than the store's devices'.
const FLOOD_SOURCE: [u8; 4] = [127, 0, 0, 2];

/// An idle TCP connection from [`FLOOD_SOURCE`] (no TLS byte is ever sent).
fn idle_connection(target: SocketAddr) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let source = SocketAddr::from((FLOOD_SOURCE, 0));
    socket.bind(&source.into()).ok()?;
    socket
        .connect_timeout(&target.into(), Duration::from_millis(200))
        .ok()?;
    let stream = TcpStream::from(socket);
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

/// Whether the server closed `stream` (a read of 0 bytes, or a reset).
fn closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Keeps up to [`FLOOD`] idle connections to `target` open until `stop`, refilling every 50 ms;
/// `open` says how many the server kept open since the last refill, `rounds` how many refills
/// were made.
fn flood(target: SocketAddr, stop: &AtomicBool, open: &AtomicUsize, rounds: &AtomicUsize) {
    let mut held: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        held.retain(|s| !closed(s));
        open.store(held.len(), Ordering::Relaxed);
        // At most 200 new connections a round: the flood refills, it does not spin.
        for _ in 0..200.min(FLOOD - held.len()) {
            match idle_connection(target) {
                Some(stream) => held.push(stream),
                None => break,
            }
        }
        rounds.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn connected(node: &NodeProcess) -> Vec<serde_json::Value> {
    let (_, status) = node.get("/api/v1/sync/status");
    status["connected"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_connection_flood_from_one_source_does_not_keep_a_restarted_till_from_linking() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let keyed = |device: &'static str, peers: &[String]| {
        let mut args = node_args(device, FAST, peers);
        args.extend(["--store-key", KEY, "--store-key-window-hours", "1"]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let start = |dir: &std::path::Path, args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        NodeProcess::start(dir, &args)
    };
    let master = start(dirs[0].path(), &keyed("1", &[]));
    let till_args = keyed("2", std::slice::from_ref(&master.sync_url));
    let mut till = start(dirs[1].path(), &till_args);
    wait_for("the till linked to the master", DEADLINE, || {
        connected(&master).contains(&json!(2))
    });

    let target = SocketAddr::from(([127, 0, 0, 1], master.sync_port()));
    let stop = Arc::new(AtomicBool::new(false));
    let (open, rounds) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flooder = {
        let (stop, open, rounds) = (Arc::clone(&stop), Arc::clone(&open), Arc::clone(&rounds));
        std::thread::spawn(move || flood(target, &stop, &open, &rounds))
    };
    // The flood is on: ten refills, enough to fill every slot a node without per-source limits
    // has (1 024) and its listen queue.
    wait_for("the flood's first half second", DEADLINE, || {
        rounds.load(Ordering::Relaxed) >= 10
    });

    till.terminate();
    wait_for("the master saw the till go", DEADLINE, || {
        !connected(&master).contains(&json!(2))
    });
    let till = start(dirs[1].path(), &till_args);
    let restarted = Instant::now();
    wait_for("the restarted till linked", DEADLINE, || {
        connected(&master).contains(&json!(2))
    });
    let linked_after = restarted.elapsed();
    let held = open.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    eprintln!("with {held} flood connections open, the restarted till linked in {linked_after:?}");
    assert!(
        linked_after < Duration::from_secs(2),
        "the till linked {linked_after:?} after its restart"
    );
    assert!(
        held <= 2 * rms_transport::api::UNPROVEN_PER_SOURCE_MAX,
        "one source held {held} connections"
    );
    assert_eq!(till.get("/api/v1/health").0, 200);
}

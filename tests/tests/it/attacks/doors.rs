//! Finding 1: a revoked device kept reading through a request it opened before. Revocation now
//! closes every door: the connection of a certificate that stops being trusted is closed with
//! its request in flight, and a slow body is cut.

use std::time::{Duration, Instant};

use rms_tests::{NodeProcess, tls, wait_for};

use super::{DEADLINE, Insider, KEY, master, pull_all, sell};

/// `rms-node devices revoke ID --url URL`, as the owner runs it.
fn revoke(node: &NodeProcess, id: u16) {
    let output = std::process::Command::new(rms_tests::node_binary())
        .args(["devices", "revoke", &id.to_string(), "--url", &node.url])
        .args(["--store-key", KEY])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn a_request_parked_across_a_revocation_gets_no_byte_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = master(dir.path());
    for _ in 0..5 {
        assert_eq!(sell(&node), 201);
    }
    let thief = Insider::approved(&node, 6);
    let (status, _) = thief.exchange(&node, &[pull_all(&node)]);
    assert_eq!(status, 200, "the control: a trusted device pulls");

    // The headers and one byte of the body, then the revocation, then a sale the thief must
    // never read, then the rest of the body.
    let body = thief.exchange_body(&[pull_all(&node)]);
    let mut parked = thief.connect(&node, Duration::from_secs(15));
    let head = Insider::exchange_head(body.len());
    assert!(tls::send(&mut parked, head.as_bytes()));
    assert!(tls::send(&mut parked, &body.as_bytes()[..1]));
    revoke(&node, thief.id);
    let after = node.post(
        "/api/v1/sales",
        &serde_json::json!({"user_id":"bob","lines":[{"sku":"soap","qty":2}]}),
    );
    assert_eq!(after.0, 201, "{after:?}");
    let _ = tls::send(&mut parked, &body.as_bytes()[1..]);
    let answer = tls::read_all(&mut parked);
    assert!(
        answer.is_empty(),
        "the parked request got an answer: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(300)])
    );

    // A new connection is refused before any route.
    let (status, answer) = thief.exchange(&node, &[pull_all(&node)]);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("revoked"));
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_cut_and_its_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let node = master(dir.path());
    let device = Insider::approved(&node, 6);
    let body = device.exchange_body(&[pull_all(&node)]);
    let mut slow = device.connect(&node, DEADLINE);
    let started = Instant::now();
    assert!(tls::send(
        &mut slow,
        Insider::exchange_head(body.len()).as_bytes()
    ));
    assert!(tls::send(&mut slow, &body.as_bytes()[..1]));
    let answer = String::from_utf8_lossy(&tls::read_all(&mut slow)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    let cut_after = started.elapsed();
    eprintln!("the slow body was cut after {cut_after:?}");
    assert!(cut_after < DEADLINE, "{cut_after:?}");
    // The node still serves the device.
    wait_for("an exchange after the cut", DEADLINE, || {
        device.exchange(&node, &[pull_all(&node)]).0 == 200
    });
}

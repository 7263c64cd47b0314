//! Device identity (issue #14, item 1), through the binary a user runs: a device makes its key
//! pair and certificate on first start, keeps them across restarts, shows its fingerprint in
//! `rms-node id`, `/health` and `/cluster`, and refuses to start with a key others may read.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use rms_tests::{NodeProcess, node_binary};

/// What `rms-node id --data-dir DIR` prints on stdout.
fn id_of(data_dir: &std::path::Path) -> String {
    let output = Command::new(node_binary())
        .args(["id", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("rms-node id runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[test]
fn a_device_keeps_one_identity_and_shows_it_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(dir.path(), &[]);
    let (status, health) = node.get("/api/v1/health");
    assert_eq!(status, 200, "{health}");
    let fingerprint = health["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(
        fingerprint.len(),
        63,
        "8 groups of 7 with dashes: {fingerprint}"
    );
    assert_eq!(node.get("/api/v1/cluster").1["fingerprint"], fingerprint);
    let key = dir.path().join("device-key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is the owner's alone");
    assert!(node.terminate().success());

    assert_eq!(
        id_of(dir.path()),
        fingerprint,
        "rms-node id prints the same ID"
    );
    let mut node = NodeProcess::start(dir.path(), &[]);
    assert_eq!(
        node.get("/api/v1/health").1["fingerprint"],
        fingerprint,
        "a restart keeps the identity"
    );
    assert!(node.terminate().success());

    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        id_of(other.path()),
        fingerprint,
        "another device, another ID"
    );
}

#[test]
fn a_key_that_others_may_read_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    id_of(dir.path());
    let key = dir.path().join("device-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = Command::new(node_binary())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("rms-node runs");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("chmod 600"),
        "the error says what to do: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "it never listened"
    );
}

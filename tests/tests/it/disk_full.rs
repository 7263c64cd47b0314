//! A full disk, on a real file system (issue #13): a write is refused with `507
//! insufficient_storage` and changes nothing, `/health` says `degraded` while writes fail, and
//! writes resume by themselves once space returns, with nothing answered lost and the database
//! intact.
//!
//! The data directory is a small tmpfs mounted for the test, which needs root (or
//! `CAP_SYS_ADMIN`). Without it the test says so and passes, except under CI (`CI` set), where
//! it fails: CI runs as root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rms_tests::{NodeProcess, wait_for};
use serde_json::json;

/// The size of the tmpfs the test mounts, in MiB.
const TMPFS_MB: u64 = 16;

/// A tmpfs mounted on a directory until dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status();
        match status {
            Ok(status) if status.success() => Some(Tmpfs {
                path: path.to_owned(),
            }),
            other => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must be able to mount a tmpfs (run as root): {other:?}"
                );
                eprintln!("skipped: cannot mount a tmpfs here ({other:?}); run as root");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes `path` until the file system has no room left; panics once it wrote `most` bytes (the
/// file system is not the small one the test mounted, and filling it would take forever).
fn fill(path: &Path, most: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5_u8; 64 * 1024];
    let mut written = 0_u64;
    let mut wrote = |bytes: usize| {
        written += bytes as u64;
        assert!(
            written <= most,
            "{} still takes writes after {most} bytes",
            path.display()
        );
    };
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_all())
        .is_ok()
    {
        wrote(chunk.len());
    }
    // The last partial chunk may have used the final bytes; smaller writes take what is left.
    while file.write_all(&[0_u8; 512]).is_ok() && file.sync_all().is_ok() {
        wrote(512);
    }
}

fn sell(node: &NodeProcess) -> (u16, serde_json::Value) {
    node.post(
        "/api/v1/sales",
        &json!({"user_id":"bo","lines":[{"sku":"tea","qty":1}]}),
    )
}

#[test]
fn a_full_disk_refuses_writes_with_507_and_they_resume_when_space_returns() {
    const STOCK: i64 = 1_000_000;
    const SALES_MAX: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(dir.path(), &format!("{TMPFS_MB}m")) else {
        return;
    };
    let data = dir.path().join("data");
    let mut node = NodeProcess::start(&data, &[]);
    let (status, _) = node.post(
        "/api/v1/products",
        &json!({"sku":"tea","name":"Tea","price_cents":300,"stock":STOCK}),
    );
    assert_eq!(status, 201);
    assert_eq!(node.get("/api/v1/health").1["status"], "ok");

    let filler = dir.path().join("filler");
    fill(&filler, TMPFS_MB << 20);
    let mut answered = 0_i64;
    let mut refused = None;
    for _ in 0..SALES_MAX {
        match sell(&node) {
            (201, _) => answered += 1,
            (507, body) => {
                refused = Some(body);
                break;
            }
            (status, body) => panic!("a sale on a full disk answered {status}: {body}"),
        }
    }
    let refused = refused.expect("a write on a full disk is refused");
    assert_eq!(refused["error"], "insufficient_storage", "{refused}");
    let (_, health) = node.get("/api/v1/health");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["storage"], "full", "{health}");
    let (status, tea) = node.get("/api/v1/products/tea");
    assert_eq!(status, 200, "reads still work: {tea}");
    assert_eq!(
        tea["stock"],
        STOCK - answered,
        "the refused sale changed nothing"
    );

    std::fs::remove_file(&filler).unwrap();
    let mut resumed = false;
    wait_for("writes to resume", Duration::from_secs(10), || {
        resumed = sell(&node).0 == 201;
        resumed
    });
    answered += 1;
    assert_eq!(node.get("/api/v1/health").1["status"], "ok");
    assert_eq!(
        node.get("/api/v1/products/tea").1["stock"],
        STOCK - answered,
        "every answered sale, and only those"
    );
    assert!(node.terminate().success());

    let stored = rms_tests::stored_sales(&data);
    assert_eq!(
        stored, answered,
        "every answered sale is stored, and no other"
    );
}

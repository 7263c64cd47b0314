//! One device as a complete store, through the binary a user runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rms_tests::{NodeProcess, node_binary, wait_for};
use serde_json::json;

#[test]
fn a_restart_keeps_products_sales_and_audit() {
    // Proves: create, sell, stop with SIGTERM (exit 0), start again: everything is still there.
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(dir.path(), &[]);
    let (status, _) = node.post(
        "/api/v1/products",
        &json!({"sku":"tea","name":"Tea","price_cents":300,"stock":4}),
    );
    assert_eq!(status, 201);
    let (status, sale) = node.post(
        "/api/v1/sales",
        &json!({"user_id":"bo","lines":[{"sku":"tea","qty":3}]}),
    );
    assert_eq!(status, 201, "{sale}");
    let exit = node.terminate();
    assert!(exit.success(), "SIGTERM must exit 0, got {exit}");

    let node = NodeProcess::start(dir.path(), &[]);
    assert_eq!(node.get("/api/v1/products/tea").1["stock"], 1);
    let sale_id = sale["sale_id"].as_str().unwrap();
    let (status, again) = node.get(&format!("/api/v1/sales/{sale_id}"));
    assert_eq!((status, again), (200, sale));
    let (_, entries) = node.get("/api/v1/audit?limit=1000");
    let operations: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .filter(|op| ["startup", "shutdown", "sale", "product_create"].contains(op))
        .collect();
    assert_eq!(
        operations,
        ["startup", "shutdown", "sale", "product_create", "startup"]
    );
    let (_, roles) = node.get("/api/v1/audit?operation=role_change");
    assert_eq!(
        roles.as_array().map(Vec::len),
        Some(2),
        "master at first start and at restart: {roles}"
    );
}

#[test]
fn kill_9_during_a_burst_of_sales_loses_no_answered_sale() {
    // Proves SPEC §5: every sale answered 201 survives kill -9, and the database is intact.
    const INITIAL_STOCK: i64 = 1_000_000;
    const TILLS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(dir.path(), &[]);
    let product = json!({"sku":"bread","name":"Bread","price_cents":250,"stock":INITIAL_STOCK});
    assert_eq!(node.post("/api/v1/products", &product).0, 201);

    let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tills: Vec<_> = (0..TILLS)
        .map(|till| {
            let url = node.url.clone();
            let (answered, count, stop) =
                (Arc::clone(&answered), Arc::clone(&count), Arc::clone(&stop));
            std::thread::spawn(move || {
                let agent = rms_tests::agent_with_timeout(Duration::from_secs(5));
                let sale =
                    json!({"user_id": format!("till-{till}"), "lines":[{"sku":"bread","qty":1}]});
                while !stop.load(Ordering::Relaxed) {
                    match rms_tests::request(
                        &agent,
                        "POST",
                        &format!("{url}/api/v1/sales"),
                        Some(&sale),
                    ) {
                        Ok((201, body)) => {
                            answered
                                .lock()
                                .unwrap()
                                .push(body["sale_id"].as_str().unwrap().to_owned());
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, body)) => panic!("unexpected answer {status}: {body}"),
                        Err(_) => break, // the node is gone
                    }
                }
            })
        })
        .collect();
    wait_for("200 answered sales", Duration::from_secs(60), || {
        count.load(Ordering::Relaxed) >= 200
    });
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    for till in tills {
        till.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();

    let mut node = NodeProcess::start(dir.path(), &[]);
    for sale_id in &answered {
        let (status, sale) = node.get(&format!("/api/v1/sales/{sale_id}"));
        assert_eq!(
            (status, sale["status"].as_str()),
            (200, Some("accepted")),
            "sale {sale_id} was answered 201"
        );
    }
    let stock = node.get("/api/v1/products/bread").1["stock"]
        .as_i64()
        .unwrap();
    assert!(node.terminate().success());

    let stored = rms_tests::stored_sales(dir.path());
    assert!(
        stored >= answered.len() as i64,
        "{stored} stored < {} answered",
        answered.len()
    );
    assert_eq!(
        stock,
        INITIAL_STOCK - stored,
        "stock and sales agree after the crash"
    );
}

#[test]
fn without_a_store_key_a_public_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(node_binary())
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("RMS_STORE_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("store key") && stderr.contains("RMS_STORE_KEY"),
        "{stderr}"
    );
}

#[test]
fn a_data_directory_belongs_to_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(dir.path(), &["--device-id", "3"]);
    assert!(node.terminate().success());
    let output = std::process::Command::new(node_binary())
        .args(["--listen", "127.0.0.1:0", "--device-id", "4", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("belongs to device 3"), "{stderr}");
}

#[test]
fn init_writes_a_config_a_node_runs_with_and_status_reads_it_back() {
    // Proves: `rms-node init` makes a private config with a fresh store key that a node starts
    // with (the key enforced), and `rms-node status` prints that node's view of the store.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rms.toml");
    let init = std::process::Command::new(node_binary())
        .args(["init", "--device-id", "4", "--out"])
        .arg(&config)
        .env_remove("RMS_STORE_KEY")
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let text = std::fs::read_to_string(&config).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("store_key = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("a store key line")
        .to_owned();
    assert_eq!(key.len(), 64, "32 random bytes in hex: {key}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
    let again = std::process::Command::new(node_binary())
        .args(["init", "--out"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing config is never overwritten"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);

    let config_arg = config.display().to_string();
    let node = NodeProcess::start(
        &dir.path().join("data"),
        &["--config", &config_arg, "--store-key", &key],
    );
    let (status, _) = node.raw("GET", "/api/v1/health", None, &[]);
    assert_eq!(status, 401, "the key from init is enforced");
    assert_eq!(node.get("/api/v1/health").1["device_id"], 4);

    let status = std::process::Command::new(node_binary())
        .args(["status", "--url", &node.url, "--store-key", &key])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    assert!(
        printed.contains("device 4") && printed.contains("master"),
        "{printed}"
    );
    let refused = std::process::Command::new(node_binary())
        .args(["status", "--url", &node.url])
        .env_remove("RMS_STORE_KEY")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("store key"));
}

#[test]
fn an_online_backup_restores_into_a_working_store() {
    // Proves: `rms-node backup` copies a running node's database; a node started on a data
    // directory holding only that copy has the same products, sales and audit, and is healthy.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = NodeProcess::start(&data, &["--device-id", "1"]);
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    assert_eq!(node.post("/api/v1/products", &soap).0, 201);
    let sale = json!({"user_id":"ann","lines":[{"sku":"soap","qty":3}]});
    assert_eq!(node.post("/api/v1/sales", &sale).0, 201);
    let backup = dir.path().join("backup.db");
    let out = std::process::Command::new(node_binary())
        .args(["backup", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let again = std::process::Command::new(node_binary())
        .args(["backup", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "a backup file is never overwritten"
    );
    let before = (node.get("/api/v1/products").1, node.get("/api/v1/sales").1);
    drop(node);

    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&backup, restored.join("rms.db")).unwrap();
    let node = NodeProcess::start(&restored, &["--device-id", "1"]);
    assert_eq!(
        (node.get("/api/v1/products").1, node.get("/api/v1/sales").1),
        before
    );
    assert_eq!(node.post("/api/v1/sales", &sale).0, 201, "it keeps selling");
}

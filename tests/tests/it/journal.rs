//! The tamper-evident journal (issue #17): a database changed behind the node's back, the way
//! anyone with the file can (Python's `sqlite3`, as the `sqlite3` shell would), is named by
//! `rms-node journal verify` at the exact entry; an untouched one verifies; an export verifies
//! with the independent Python verifier, and fails it with one byte changed.

use std::path::Path;
use std::process::Command;

use rms_tests::{NodeProcess, node_binary};
use serde_json::json;

/// A stopped node's database with a product and three sales by two cashiers.
fn store_with_sales() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a dir");
    let mut node = NodeProcess::start(dir.path(), &["--device-id", "1"]);
    let tea = json!({"sku": "tea", "name": "Tea", "price_cents": 250, "stock": 10});
    assert_eq!(node.post("/api/v1/products", &tea).0, 201);
    for user in ["ann", "ann", "bob"] {
        let sale = json!({"user_id": user, "lines": [{"sku": "tea", "qty": 1}]});
        assert_eq!(node.post("/api/v1/sales", &sale).0, 201);
    }
    assert!(node.terminate().success());
    dir
}

/// `rms-node journal verify`: (success, its last line).
fn verify(dir: &Path) -> (bool, String) {
    let out = Command::new(node_binary())
        .args(["journal", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .expect("rms-node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default().to_owned();
    (out.status.success(), last)
}

/// A copy of `dir` changed by `sql`, run by Python's sqlite3 module.
fn tampered(dir: &Path, sql: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("a dir");
    let db = rms_storage::db::DB_FILE_NAME;
    std::fs::copy(dir.join(db), copy.path().join(db)).expect("copy the database");
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(copy.path().join(db))
        .arg(sql)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "{sql}");
    copy
}

/// The seq of the sale `n` (1-based, in the order made) of device 1: its event seq.
fn sale_seq(dir: &Path, n: usize) -> i64 {
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nrows = c.execute(\"SELECT seq FROM sync_events WHERE device_id = 1 AND kind = 'sale_recorded' ORDER BY seq\").fetchall()\nprint(rows[int(sys.argv[2]) - 1][0])\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.join(rms_storage::db::DB_FILE_NAME))
        .arg(n.to_string())
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a seq")
}

#[test]
fn journal_verify_names_the_entry_every_change_made_behind_the_nodes_back() {
    let dir = store_with_sales();
    let (ok, last) = verify(dir.path());
    assert!(ok, "an untouched database verifies: {last}");

    let second = sale_seq(dir.path(), 2);
    let third = sale_seq(dir.path(), 3);
    let id = |seq: i64| format!("1-{seq}");
    let cases: Vec<(String, String)> = vec![
        (
            format!("UPDATE sync_events SET payload = replace(payload, '\"qty\":1', '\"qty\":3') WHERE device_id = 1 AND seq = {second}"),
            format!("event {} was changed", id(second)),
        ),
        (
            format!("UPDATE sync_events SET payload = replace(payload, '\"price_cents\":250', '\"price_cents\":25') WHERE device_id = 1 AND seq = {second}"),
            format!("event {} was changed", id(second)),
        ),
        (
            format!("UPDATE sync_events SET user_id = 'eve' WHERE device_id = 1 AND seq = {third}"),
            format!("event {} was changed", id(third)),
        ),
        (
            format!("DELETE FROM sync_events WHERE device_id = 1 AND seq = {second}"),
            format!("event {} is missing", id(second)),
        ),
        (
            // Two sales' contents swapped: the first of them no longer matches its record.
            format!(
                "UPDATE sync_events SET user_id = CASE seq WHEN {second} THEN 'bob' ELSE 'ann' END \
                 WHERE device_id = 1 AND seq IN ({second}, {third})"
            ),
            format!("event {} was changed", id(second)),
        ),
        (
            "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id = 3".into(),
            "audit row 3 is missing".into(),
        ),
        (
            "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET details = '{}' WHERE id = (SELECT max(id) FROM audit_log)".into(),
            "was changed in the database".into(),
        ),
        (
            "DROP TRIGGER journal_no_delete; DELETE FROM journal WHERE chain = 'events' AND seq = 2".into(),
            "entry #2 is missing".into(),
        ),
        (
            "DROP TRIGGER journal_no_update; UPDATE journal SET record = replace(record, 'ann', 'eve') WHERE chain = 'events'".into(),
            "its hash does not match its record".into(),
        ),
    ];
    for (sql, named) in cases {
        let copy = tampered(dir.path(), &sql);
        let (ok, last) = verify(copy.path());
        assert!(!ok, "{sql}: verified");
        assert!(last.contains(&named), "{sql}: {last}");
    }

    // The whole chain rebuilt from a changed sale on (the hash is public): every link holds, but
    // the head the device signed at shutdown is no longer in it.
    let rewrite =
        format!("UPDATE sync_events SET user_id = 'eve' WHERE device_id = 1 AND seq = {third}");
    let copy = tampered(dir.path(), &rewrite);
    let script = "import hashlib, sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1])\n\
        c.execute('DROP TRIGGER journal_no_update')\n\
        prev = bytes(32)\n\
        for seq, record in c.execute(\"SELECT seq, record FROM journal WHERE chain = 'events' ORDER BY seq\").fetchall():\n\
        \x20   if record.find('\"event_id\":\"' + sys.argv[2] + '\"') >= 0:\n\
        \x20       record = record.replace('\"user_id\":\"bob\"', '\"user_id\":\"eve\"')\n\
        \x20   h = hashlib.sha256(prev + record.encode()).hexdigest()\n\
        \x20   c.execute(\"UPDATE journal SET record = ?, hash = ? WHERE chain = 'events' AND seq = ?\", (record, h, seq))\n\
        \x20   prev = bytes.fromhex(h)\n\
        c.commit()\n";
    let db = copy.path().join(rms_storage::db::DB_FILE_NAME);
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&db)
        .arg(id(third))
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let (ok, last) = verify(copy.path());
    assert!(!ok, "a rebuilt chain verified: {last}");
    assert!(
        last.contains("signed head") && last.contains("rewritten"),
        "{last}"
    );
}

#[test]
fn an_export_verifies_with_the_python_verifier_and_one_byte_changed_does_not() {
    let dir = store_with_sales();
    let export = dir.path().join("export.jsonl");
    let status = Command::new(node_binary())
        .args(["journal", "export", "--from", "2000-01-01", "--data-dir"])
        .arg(dir.path())
        .arg("--out")
        .arg(&export)
        .status()
        .expect("rms-node runs");
    assert!(status.success());
    let verifier = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/journal_verify.py");
    let run = |path: &Path| {
        let out = Command::new("python3")
            .arg(&verifier)
            .arg(path)
            .output()
            .expect("python3 runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, said) = run(&export);
    assert!(ok, "{said}");
    assert!(
        said.contains("events: ") && said.ends_with("OK\n"),
        "{said}"
    );
    assert!(
        said.contains("signed head events") && said.contains("signature verifies"),
        "the device's signed heads are in the export and verify: {said}"
    );

    // A signed head's signature with one hex digit changed.
    let text = std::fs::read_to_string(&export).expect("the export");
    let forged: Vec<String> = text
        .lines()
        .map(|line| {
            let Ok(mut value) = serde_json::from_str::<serde_json::Value>(line) else {
                return line.to_owned();
            };
            if let Some(signature) = value["signed_head"]["signature"].as_str() {
                let flipped = if signature.starts_with('0') { "1" } else { "0" };
                let changed = format!("{flipped}{}", signature.get(1..).unwrap_or_default());
                value["signed_head"]["signature"] = changed.into();
            }
            value.to_string()
        })
        .collect();
    let forged_path = dir.path().join("forged.jsonl");
    std::fs::write(&forged_path, forged.join("\n")).expect("write");
    let (ok, said) = run(&forged_path);
    assert!(
        !ok && said.contains("its signature does not verify"),
        "{said}"
    );

    // One byte of one sale's record: 1 unit becomes 2.
    let text = std::fs::read_to_string(&export).expect("the export");
    let at = text
        .find(r#"\"qty\":1"#)
        .expect("a sale line in the export");
    let mut bytes = text.into_bytes();
    let digit = at + r#"\"qty\":"#.len();
    bytes[digit] = b'2';
    let changed = dir.path().join("changed.jsonl");
    std::fs::write(&changed, bytes).expect("write");
    let (ok, said) = run(&changed);
    assert!(!ok, "{said}");
    assert!(
        said.contains("BROKEN") && said.contains("the record was changed"),
        "{said}"
    );
}

#[test]
fn a_node_started_on_a_changed_database_raises_an_alarm_naming_the_entry() {
    let dir = store_with_sales();
    let second = sale_seq(dir.path(), 2);
    let sql = format!(
        "UPDATE sync_events SET payload = replace(payload, '\"qty\":1', '\"qty\":3') \
         WHERE device_id = 1 AND seq = {second}"
    );
    let copy = tampered(dir.path(), &sql);
    let node = NodeProcess::start(copy.path(), &["--device-id", "1"]);
    let mut alarm = serde_json::Value::Null;
    rms_tests::wait_for(
        "the journal alarm",
        std::time::Duration::from_secs(20),
        || {
            let (_, audit) = node.get("/api/v1/audit?operation=alarm");
            let found = audit.as_array().and_then(|entries| {
                entries
                    .iter()
                    .find(|e| e["details"]["why"] == "journal_broken")
                    .cloned()
            });
            found.map(|a| alarm = a).is_some()
        },
    );
    assert_eq!(
        alarm["details"]["details"]["ref"],
        format!("1-{second}"),
        "{alarm}"
    );
    assert_eq!(alarm["details"]["details"]["chain"], "events");
}

/// The master's alarms of `why`.
fn alarms(node: &NodeProcess, why: &str) -> Vec<serde_json::Value> {
    let (_, audit) = node.get("/api/v1/audit?operation=alarm&limit=1000");
    audit
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["details"]["why"] == why)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_pushed_event_changed_behind_its_devices_back_is_refused_by_the_master_and_audited() {
    use rms_tests::{FAST, node_args, wait_for};
    use std::time::Duration;
    const REFUSED: &str = "pushed events whose chain does not verify";
    let deadline = Duration::from_secs(30);
    let (master_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut master = NodeProcess::start(master_dir.path(), &node_args("1", FAST, &[]));
    let tea = json!({"sku": "tea", "name": "Tea", "price_cents": 250, "stock": 10});
    assert_eq!(master.post("/api/v1/products", &tea).0, 201);
    let peers = vec![master.sync_url.clone()];
    let mut client = NodeProcess::start(client_dir.path(), &node_args("2", FAST, &peers));
    wait_for("the tea on the client", deadline, || {
        client.get("/api/v1/products/tea").0 == 200
    });

    // An honest sale: its chain link and the push's signature verify, and the master logs it.
    let sale = json!({"user_id": "ann", "lines": [{"sku": "tea", "qty": 1}]});
    let (status, first) = client.post("/api/v1/sales", &sale);
    assert!(status == 201 || status == 202, "{status} {first}");
    let first_id = first["sale_id"].as_str().unwrap().to_owned();
    wait_for("the honest sale at the master", deadline, || {
        master.get(&format!("/api/v1/sales/{first_id}")).0 == 200
    });

    // With the master away, a sale stays pending; then its quantity is changed in the file.
    assert!(master.terminate().success());
    let (status, second) = client.post("/api/v1/sales", &sale);
    assert_eq!(status, 202, "pending while the master is away: {second}");
    let second_id = second["sale_id"].as_str().unwrap().to_owned();
    assert!(client.terminate().success());
    let seq = second_id.split('-').nth(1).unwrap();
    let sql = format!(
        "UPDATE sync_events SET payload = replace(payload, '\"qty\":1', '\"qty\":9') \
         WHERE device_id = 2 AND seq = {seq}"
    );
    let changed = tampered(client_dir.path(), &sql);
    let db = rms_storage::db::DB_FILE_NAME;
    std::fs::copy(changed.path().join(db), client_dir.path().join(db)).unwrap();
    for stale in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(client_dir.path().join(format!("{db}{stale}")));
    }

    let master = NodeProcess::start(master_dir.path(), &node_args("1", FAST, &[]));
    let peers = vec![master.sync_url.clone()];
    let client = NodeProcess::start(client_dir.path(), &node_args("2", FAST, &peers));
    wait_for("the master's alarm", deadline, || {
        !alarms(&master, REFUSED).is_empty()
    });
    let alarm = &alarms(&master, REFUSED)[0];
    assert_eq!(alarm["details"]["from"], 2, "{alarm}");
    let problem = alarm["details"]["details"]["problem"]
        .as_str()
        .unwrap_or("");
    assert!(
        problem.contains("head"),
        "the push's signed head no longer matches the changed event: {alarm}"
    );
    // The changed sale is never decided: not at the master, still pending on its device.
    assert_eq!(master.get(&format!("/api/v1/sales/{second_id}")).0, 404);
    assert_eq!(
        client.get(&format!("/api/v1/sales/{second_id}")).1["status"],
        "pending"
    );
    // The device's own check at start names the change too.
    wait_for("the device's own alarm", deadline, || {
        !alarms(&client, "journal_broken").is_empty()
    });
    // The honest sale stays in the master's log.
    assert_eq!(master.get(&format!("/api/v1/sales/{first_id}")).0, 200);
}

#[test]
fn a_node_closes_the_days_it_sold_on_once_they_are_over() {
    use rms_domain::{NewSale, NewSaleLine, Role};
    use rms_storage::local::{self, Command};
    let dir = tempfile::tempdir().expect("a dir");
    let mut node = NodeProcess::start(dir.path(), &["--device-id", "1"]);
    let tea = json!({"sku": "tea", "name": "Tea", "price_cents": 250, "stock": 10});
    assert_eq!(node.post("/api/v1/products", &tea).0, 201);
    assert!(node.terminate().success());
    // Two sales yesterday, made through the storage layer with yesterday's time.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let yesterday = now_ms - rms_domain::DAY_MS;
    let store = rms_storage::Store::open(dir.path(), rms_domain::DeviceId::new(1).expect("1"))
        .expect("the store opens");
    for qty in [1, 3] {
        let sale = Command::Sell(NewSale {
            user_id: "ann".into(),
            lines: vec![NewSaleLine {
                sku: "tea".into(),
                qty,
            }],
        });
        store
            .write(|tx| local::record(tx, Role::Master, yesterday, sale))
            .expect("a sale yesterday");
    }
    drop(store);

    let node = NodeProcess::start(dir.path(), &["--device-id", "1"]);
    let day = rms_domain::day_of_ms(yesterday);
    rms_tests::wait_for("the closing", std::time::Duration::from_secs(30), || {
        let (_, rows) = node.get("/api/v1/audit?operation=closing");
        rows.as_array().is_some_and(|r| !r.is_empty())
    });
    let (_, pulled) = node.get("/api/v1/sync/pull?since=0&limit=1000");
    let closings: Vec<&serde_json::Value> = pulled["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["event"]["payload"]["kind"] == "day_closed")
        .collect();
    assert_eq!(closings.len(), 1, "one closing: {closings:?}");
    let payload = &closings[0]["event"]["payload"];
    assert_eq!(payload["day"], day);
    assert_eq!(payload["sales"], 2);
    assert_eq!(payload["total_cents"], 4 * 250);
    assert!(
        closings[0]["event"]["chain"]["seq"].as_u64().is_some(),
        "chained: {payload}"
    );
    let (ok, last) = verify(dir.path());
    assert!(ok, "the journal verifies with its closing: {last}");
}

/// A sale of one tea by ann.
fn tea_sale() -> serde_json::Value {
    json!({"user_id": "ann", "lines": [{"sku": "tea", "qty": 1}]})
}

/// Device 1, master of its own store (with `extra` arguments), that sold one tea: it and the
/// sale's id.
fn master_with_a_sale(dir: &Path, extra: &[&'static str]) -> (NodeProcess, String) {
    let mut args = rms_tests::node_args("1", rms_tests::FAST, &[]);
    args.extend_from_slice(extra);
    let master = NodeProcess::start(dir, &args);
    let tea = json!({"sku": "tea", "name": "Tea", "price_cents": 250, "stock": 10});
    assert_eq!(master.post("/api/v1/products", &tea).0, 201);
    let (status, sold) = master.post("/api/v1/sales", &tea_sale());
    assert_eq!(status, 201, "{sold}");
    let sale_id = sold["sale_id"].as_str().unwrap().to_owned();
    (master, sale_id)
}

/// Device 2 (with `extra` arguments) in `master`'s store.
fn client_of(dir: &Path, master: &NodeProcess, extra: &[&'static str]) -> NodeProcess {
    let peers = vec![master.sync_url.clone()];
    let mut args = rms_tests::node_args("2", rms_tests::FAST, &peers);
    args.extend_from_slice(extra);
    NodeProcess::start(dir, &args)
}

/// The last position where `node`'s copy of the log had its master's signed hash (0: none).
fn checked_seq(node: &NodeProcess) -> u64 {
    node.get("/api/v1/health").1["log_chain"]["checked"]["seq"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_copy_of_the_master_log_changed_on_a_client_differs_from_the_masters_signed_head() {
    use rms_tests::wait_for;
    use std::time::Duration;
    let deadline = Duration::from_secs(30);
    let (master_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (master, sale_id) = master_with_a_sale(master_dir.path(), &[]);
    let sale = tea_sale();
    let mut client = client_of(client_dir.path(), &master, &[]);

    // The client's copy is checked against the master's signed head, and agrees with it.
    wait_for("the client's copy checked up to the sale", deadline, || {
        client.get(&format!("/api/v1/sales/{sale_id}")).0 == 200 && checked_seq(&client) >= 3
    });
    assert!(alarms(&client, "log_chain_differs").is_empty());

    // The master's sale changed in the client's copy while the client is down.
    assert!(client.terminate().success());
    let seq = sale_id.split('-').nth(1).unwrap();
    let sql = format!("UPDATE sync_events SET user_id = 'eve' WHERE device_id = 1 AND seq = {seq}");
    let changed = tampered(client_dir.path(), &sql);
    let db = rms_storage::db::DB_FILE_NAME;
    std::fs::copy(changed.path().join(db), client_dir.path().join(db)).unwrap();
    for stale in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(client_dir.path().join(format!("{db}{stale}")));
    }
    let client = client_of(client_dir.path(), &master, &[]);
    wait_for("the client's alarm", deadline, || {
        !alarms(&client, "log_chain_differs").is_empty()
    });
    let alarm = &alarms(&client, "log_chain_differs")[0];
    let details = &alarm["details"]["details"];
    assert_eq!(details["master_id"], 1, "{alarm}");
    assert_ne!(details["master_hash"], details["own_hash"], "{alarm}");
    assert_eq!(details["epoch"]["master_id"], 1, "{alarm}");
    assert!(details["head"]["signature"].is_string(), "{alarm}");
    // Once, not at every head: the master's head after a later sale differs too (`/health`
    // `log_chain.differs` moves there), and there is still one alarm.
    let (status, later) = master.post("/api/v1/sales", &sale);
    assert_eq!(status, 201, "{later}");
    let log_head = master.get("/api/v1/sync/status").1["cursor"]
        .as_u64()
        .unwrap();
    wait_for("a later head compared, and differing", deadline, || {
        let chain = &client.get("/api/v1/health").1["log_chain"];
        chain["differs"]["seq"]
            .as_u64()
            .is_some_and(|seq| seq >= log_head)
    });
    assert_eq!(alarms(&client, "log_chain_differs").len(), 1);
    // The master's own copy is not in question.
    assert!(alarms(&master, "log_chain_differs").is_empty());
    assert!(alarms(&client, "log_head_refused").is_empty());
}

#[test]
fn a_running_nodes_copy_of_the_log_changed_in_its_file_is_noticed_by_its_next_recheck() {
    use rms_tests::wait_for;
    use std::time::Duration;
    let deadline = Duration::from_secs(30);
    let (master_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both recheck every second: the master, logging sales meanwhile, raises nothing.
    const RECHECK: &[&str] = &["--log-recheck-interval-ms", "1000"];
    let (master, sale_id) = master_with_a_sale(master_dir.path(), RECHECK);
    let sale = tea_sale();
    let client = client_of(client_dir.path(), &master, RECHECK);
    wait_for("the client's copy checked up to the sale", deadline, || {
        checked_seq(&client) >= 3
    });

    // The master's sale changed in the running client's file (another process, as the
    // `sqlite3` shell would).
    let seq = sale_id.split('-').nth(1).unwrap();
    let sql = format!("UPDATE sync_events SET user_id = 'eve' WHERE device_id = 1 AND seq = {seq}");
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=10)\nc.executescript(sys.argv[2])\nc.commit()\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(client_dir.path().join(rms_storage::db::DB_FILE_NAME))
        .arg(&sql)
        .status()
        .expect("python3 runs");
    assert!(status.success());

    // Its next recheck names the change; its copy, hashed again, then differs from the master's.
    wait_for("the client's recheck alarm", deadline, || {
        !alarms(&client, "log_chain_changed").is_empty()
    });
    let alarm = &alarms(&client, "log_chain_changed")[0];
    let details = &alarm["details"]["details"];
    assert_ne!(details["hash_was"], details["file_hash"], "{alarm}");
    assert_eq!(details["seq"], details["file_seq"], "{alarm}");
    for _ in 0..3 {
        assert_eq!(master.post("/api/v1/sales", &sale).0, 201);
    }
    wait_for(
        "the client's copy differs from the master's",
        deadline,
        || !alarms(&client, "log_chain_differs").is_empty(),
    );
    assert_eq!(alarms(&client, "log_chain_changed").len(), 1);
    assert!(alarms(&master, "log_chain_changed").is_empty());
}

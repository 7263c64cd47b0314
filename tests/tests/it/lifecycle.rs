//! A device's life (issue #27), with real processes, through the CLI and REST as an operator
//! follows `docs/OPERATIONS.md`: a device given a peer before it is paired waits and then joins;
//! a broken till is replaced by a fresh one with the same id; a till is restored from a backup
//! and sells before it reaches the master. Each case ends with one store: the same master as
//! before, the same log on every device, no forced entry, no event id used twice, every journal
//! verifying, and every sale in the master's log.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rms_tests::{FAST, NodeProcess, Proxy, node_args, wait_for};
use serde_json::{Value, json};

const KEY: &str = "store-key-for-lifecycle-tests";
const DEADLINE: Duration = Duration::from_secs(30);

/// The first device of a store with a key (a store of its own, master), with a product.
fn first_device(dir: &Path) -> NodeProcess {
    first_device_with(dir, &[])
}

/// [`first_device`] with `extra` flags (head office's).
fn first_device_with(dir: &Path, extra: &[&str]) -> NodeProcess {
    let mut args = node_args("1", FAST, &[]);
    args.extend(["--store-key", KEY]);
    args.extend_from_slice(extra);
    let one = NodeProcess::start(dir, &args);
    let tea = json!({"sku":"tea","name":"Tea","price_cents":250,"stock":1000});
    assert_eq!(one.post("/api/v1/products", &tea).0, 201);
    one
}

/// A device without the key, given `peer`: it must be paired.
fn unpaired(dir: &Path, device: &str, peer: &str) -> NodeProcess {
    let peers = [peer.to_owned()];
    NodeProcess::start(dir, &node_args(device, FAST, &peers))
}

/// `rms-node ARGS`, as an operator types it: whether it succeeded, and what it printed.
fn rms_node(args: &[&str]) -> (bool, String) {
    let output = Command::new(rms_tests::node_binary())
        .args(args)
        .output()
        .expect("rms-node runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// `rms-node devices revoke ID` on `node`, as OPERATIONS says.
fn revoke(node: &NodeProcess, id: &str) {
    let (ok, out) = rms_node(&[
        "devices",
        "revoke",
        id,
        "--url",
        &node.url,
        "--store-key",
        KEY,
    ]);
    assert!(ok, "{out}");
}

/// Device 1 and a paired client 2 that made three sales, all logged, then broke (killed) and was
/// revoked. The sales' ids.
fn a_client_that_broke(dirs: &[tempfile::TempDir]) -> (NodeProcess, Vec<String>) {
    let one = first_device(dirs[0].path());
    let mut two = paired(dirs[1].path(), "2", &one);
    let sales: Vec<String> = (0..3).map(|_| sale_id(&sell(&two, "ann"))).collect();
    wait_for("device 2's sales reach the master", DEADLINE, || {
        logged_sales(dirs[0].path()) == 3
    });
    two.kill9();
    revoke(&one, "2");
    (one, sales)
}

/// `rms-node pair` on `sponsor`, then `rms-node join CODE --peer` on `joiner`, both with the CLI.
fn pair(sponsor: &NodeProcess, joiner: &NodeProcess) {
    let (ok, out) = rms_node(&["pair", "--url", &sponsor.url, "--store-key", KEY]);
    assert!(ok, "rms-node pair: {out}");
    let code = out
        .split_whitespace()
        .find(|w| w.len() == 14 && w.matches('-').count() == 2)
        .unwrap_or_else(|| panic!("a code in {out:?}"))
        .to_owned();
    let (ok, out) = rms_node(&[
        "join",
        &code,
        "--peer",
        &sponsor.sync_url,
        "--url",
        &joiner.url,
    ]);
    assert!(ok, "rms-node join: {out}");
}

/// Device `device` with the store's peer, paired with `sponsor`, holding the catalogue.
fn paired(dir: &Path, device: &str, sponsor: &NodeProcess) -> NodeProcess {
    let node = unpaired(dir, device, &sponsor.sync_url);
    pair(sponsor, &node);
    wait_for(
        &format!("device {device} has the catalogue"),
        DEADLINE,
        || node.get("/api/v1/products/tea").0 == 200,
    );
    node
}

/// The sales in the master log's copy at `dir` (accepted or refused).
fn logged_sales(dir: &Path) -> i64 {
    query(
        dir,
        "SELECT count(*) FROM sync_events WHERE kind = 'sale_recorded' AND master_seq IS NOT NULL",
    )
}

fn sell(node: &NodeProcess, user: &str) -> Value {
    let sale = json!({"user_id": user, "lines":[{"sku":"tea","qty":1}]});
    let (status, sold) = node.post("/api/v1/sales", &sale);
    assert!(status == 201 || status == 202, "{status} {sold}");
    sold
}

fn health(node: &NodeProcess) -> Value {
    node.get("/api/v1/health").1
}

/// A node's database (read while it runs: WAL readers never block it).
fn database(dir: &Path) -> rms_storage::Connection {
    rms_storage::Connection::open(dir.join(rms_storage::db::DB_FILE_NAME))
        .expect("the database opens")
}

/// A count from a node's database.
fn query(dir: &Path, sql: &str) -> i64 {
    database(dir).query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// The end of every case: `master` leads every node in `term`, nothing waits to be pushed,
/// every log has the same chain head, every sale in `sales` is in the master's log, no node
/// holds a forced entry or audited an event id used twice or a corrupt row, and every journal
/// verifies.
fn assert_one_store(nodes: &[&NodeProcess], (master, term): (u16, u64), sales: &[String]) {
    wait_for("one store, one log, nothing pending", DEADLINE, || {
        let healths: Vec<Value> = nodes.iter().map(|n| health(n)).collect();
        let pending = |n: &NodeProcess| n.get("/api/v1/sync/status").1["pending"] == 0;
        nodes.iter().all(|n| pending(n))
            && healths
                .iter()
                .all(|h| h["master_id"] == master && h["term"] == term && h["joining"] == false)
            && healths
                .windows(2)
                .all(|w| w[0]["log_chain"]["hash"] == w[1]["log_chain"]["hash"])
    });
    let master_dir = &nodes
        .iter()
        .find(|n| health(n)["role"] == "master")
        .expect("a master")
        .data_dir;
    for sale in sales {
        let logged = query(
            master_dir,
            &format!(
                "SELECT count(*) FROM sync_events WHERE kind = 'sale_recorded' \
                 AND master_seq IS NOT NULL AND status = 'synced' AND payload LIKE '%\"{sale}\"%'"
            ),
        );
        let verdicts = format!(
            "SELECT group_concat(status || ' ' || coalesce(reason, '-') || ' #' || \
             coalesce(master_seq, 0), '; ') FROM sync_events WHERE payload LIKE '%\"{sale}\"%'"
        );
        let verdicts: Option<String> = database(master_dir)
            .query_row(&verdicts, [], |r| r.get(0))
            .expect("the verdicts");
        assert_eq!(
            logged, 1,
            "sale {sale} is in the master's log once: {verdicts:?}"
        );
    }
    for node in nodes {
        let dir = &node.data_dir;
        assert_eq!(
            query(dir, "SELECT count(*) FROM sync_events WHERE forced = 1"),
            0,
            "no forced entry on {}",
            node.url
        );
        let reused = query(
            dir,
            "SELECT count(*) FROM audit_log WHERE details LIKE '%event_id_reused%' \
             OR details LIKE '%reused with other content%' OR details LIKE '%corrupt row%'",
        );
        assert_eq!(reused, 0, "no event id used twice on {}", node.url);
        rms_tests::assert_journal_verifies(dir, node);
    }
}

fn sale_id(sold: &Value) -> String {
    sold["sale_id"].as_str().expect("a sale id").to_owned()
}

#[test]
fn a_device_given_a_peer_before_it_is_paired_waits_then_joins_without_disruption() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = first_device(dirs[0].path());
    let new = unpaired(dirs[1].path(), "2", &one.sync_url);

    // Unpaired, it is joining: writes refused with a clear 503, and for ten master timeouts it
    // never makes itself master of an island.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(6) {
        let h = health(&new);
        assert_eq!(h["joining"], true, "{h}");
        assert_eq!(h["role"], "client", "{h}");
        assert_eq!(h["term"], 0, "{h}");
        let (status, refused) = new.post(
            "/api/v1/sales",
            &json!({"user_id":"ann","lines":[{"sku":"tea","qty":1}]}),
        );
        assert_eq!(status, 503, "{refused}");
        assert_eq!(refused["error"], "joining");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("rms-node join"),
            "{refused}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Paired: it follows device 1, receives the catalogue and sells; nothing else moved.
    pair(&one, &new);
    wait_for("the new device has the catalogue", DEADLINE, || {
        new.get("/api/v1/products/tea").0 == 200
    });
    let sold = sell(&new, "ann");
    assert_one_store(&[&one, &new], (1, 1), &[sale_id(&sold)]);
}

#[test]
fn a_broken_client_replaced_by_a_fresh_one_with_its_id_rejoins_and_loses_nothing() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Its disk breaks. As OPERATIONS says: revoke it, then a new device, paired.
    let (one, mut sales) = a_client_that_broke(&dirs);
    let new = unpaired(dirs[2].path(), "2", &one.sync_url);
    pair(&one, &new);
    wait_for(
        "the replacement has its predecessor's sales",
        DEADLINE,
        || {
            query(
                dirs[2].path(),
                "SELECT count(*) FROM sync_events WHERE kind = 'sale_recorded' AND device_id = 2",
            ) == 3
        },
    );
    let sold = sell(&new, "bob");
    let id = sold["event_id"].as_str().unwrap_or_default().to_owned();
    assert!(
        !["2-1", "2-2", "2-3", "2-4", "2-5", "2-6"].contains(&id.as_str()),
        "a new number: {sold}"
    );
    sales.push(sale_id(&sold));
    assert_one_store(&[&one, &new], (1, 1), &sales);
}

#[test]
fn a_client_restored_from_a_backup_sells_before_it_reaches_the_master_and_loses_nothing() {
    // Head office too: it must receive every sale once, and no event under a taken key.
    let pg = rms_tests::pg::Postgres::start();
    let hq_url = pg.create_database("hq");
    let (store_id, token) = rms_tests::hq::add_store(&hq_url, "Store A");
    let hq = rms_tests::hq::HqProcess::start(&hq_url, 0);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = first_device_with(
        dirs[0].path(),
        &["--hq-url", hq.url.as_str(), "--hq-token", token.as_str()],
    );
    let mut two = paired(dirs[1].path(), "2", &one);
    let mut sales = vec![sale_id(&sell(&two, "ann"))];
    let copy = dirs[2].path().join("rms-backup.db");
    let (ok, out) = rms_node(&[
        "backup",
        "--data-dir",
        dirs[1].path().to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    // After the backup it sells on; those sales reach the master, then its disk breaks.
    sales.extend((0..5).map(|_| sale_id(&sell(&two, "ann"))));
    wait_for("device 2's sales reach the master", DEADLINE, || {
        logged_sales(dirs[0].path()) == 6
    });
    two.kill9();

    // Restored as OPERATIONS says (the copy, the identity files), behind a cut link: it sells
    // before it reaches the master.
    let restored = dirs[2].path().join("data");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(&copy, restored.join("rms.db")).unwrap();
    for file in ["device-key.pem", "device-cert.der"] {
        std::fs::copy(dirs[1].path().join(file), restored.join(file)).unwrap();
    }
    let link = Proxy::in_front_of_nothing();
    let two = NodeProcess::start(
        &restored,
        &node_args("2", FAST, std::slice::from_ref(&link.url)),
    );
    let sold = sell(&two, "cy");
    let first = sold["event_id"].as_str().unwrap_or_default().to_owned();
    let seq: u64 = first.trim_start_matches("2-").parse().unwrap_or(0);
    assert!(seq > 1 << 20, "a new incarnation's number: {sold}");
    sales.push(sale_id(&sold));

    link.point_at(one.sync_port());
    assert_one_store(&[&one, &two], (1, 1), &sales);
    wait_for("head office holds the master's whole log", DEADLINE, || {
        let (_, status) = one.get("/api/v1/sync/status");
        let office = &status["head_office"];
        office["active"] == true
            && office["lag_entries"] == 0
            && office["cursor"] == status["cursor"]
    });
    let count = |sql: &str| pg.number("hq", sql);
    let received = count(&format!(
        "SELECT count(DISTINCT sale_id) FROM hq_sales WHERE store_id = {store_id} AND status = 'accepted'"
    ));
    assert_eq!(
        received,
        i64::try_from(sales.len()).unwrap(),
        "every sale, once"
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM hq_sales WHERE store_id = {store_id}"
        )),
        received
    );
    assert_eq!(
        count("SELECT count(*) FROM hq_ingest_errors"),
        0,
        "no key_taken"
    );
}

#[test]
fn a_revoked_device_refuses_sales_running_or_restarted_and_its_journal_still_verifies() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = first_device(dirs[0].path());
    let mut two = paired(dirs[1].path(), "2", &one);
    // Device 3 is paired too, then stopped: it will hear of its revocation only from the
    // refusal of the device it dials (its links are refused, so the log cannot bring it).
    let mut three = paired(dirs[2].path(), "3", &one);
    three.terminate();
    let sales: Vec<String> = (0..3).map(|_| sale_id(&sell(&two, "ann"))).collect();
    wait_for("device 2's sales reach the master", DEADLINE, || {
        logged_sales(dirs[0].path()) == 3
    });
    // Its journal has signed heads by now (they are what a revoked device once took for
    // tampering).
    wait_for("device 2 signed its journal's heads", DEADLINE, || {
        query(dirs[1].path(), "SELECT count(*) FROM journal_heads") > 0
    });

    let feed = crate::changes::Feed::open(&two, None);
    // Revoked while it runs: cut off, it learns it from the refusal of the device it dials,
    // and refuses its tills' writes (403 device_revoked) within two seconds of that.
    for id in ["2", "3"] {
        revoke(&one, id);
    }
    let refusing = |node: &NodeProcess| {
        let sale = json!({"user_id":"eve","lines":[{"sku":"tea","qty":1}]});
        let (status, refused) = node.post("/api/v1/sales", &sale);
        status == 403 && refused["error"] == "device_revoked"
    };
    wait_for("device 2 holds its revocation", DEADLINE, || {
        health(&two)["revoked"] == true
    });
    wait_for("device 2 refuses sales", Duration::from_secs(2), || {
        refusing(&two)
    });
    // Its till hears it on the change feed, with the pending sales that will never reach the
    // store (none here: every sale had reached the master).
    let told = feed.until("the revocation on the feed", |e| e.kind == "revoked");
    assert_eq!(told.data["pending_sales"], json!([]));

    // Restarted, it still refuses, and its own journal verifies: heads signed while its key was
    // trusted stay its own.
    two.terminate();
    rms_tests::assert_journal_verifies(dirs[1].path(), &one);
    let two = unpaired(dirs[1].path(), "2", &one.sync_url);
    assert_eq!(health(&two)["revoked"], true);
    assert!(refusing(&two));
    let (ok, out) = rms_node(&[
        "journal",
        "verify",
        "--data-dir",
        dirs[1].path().to_str().unwrap(),
    ]);
    assert!(ok, "{out}");

    // Device 3, started after its revocation, learns it from the refusal and refuses too.
    let three = unpaired(dirs[2].path(), "3", &one.sync_url);
    wait_for("device 3 holds its revocation", DEADLINE, || {
        health(&three)["revoked"] == true
    });
    assert!(refusing(&three));
    assert_eq!(
        query(
            dirs[2].path(),
            "SELECT count(*) FROM sync_events WHERE kind = 'device_trust' AND status = 'pending' \
             AND payload LIKE '%\"revoked\"%'"
        ),
        1,
        "it recorded its own revocation once"
    );
    // The store lost nothing it had accepted, and the revoked device's last attempts are nowhere.
    for sale in &sales {
        let logged = query(
            dirs[0].path(),
            &format!(
                "SELECT count(*) FROM sync_events WHERE payload LIKE '%\"{sale}\"%' AND status = 'synced'"
            ),
        );
        assert_eq!(logged, 1, "{sale}");
    }
    assert_eq!(
        query(
            dirs[1].path(),
            "SELECT count(*) FROM sync_events WHERE user_id = 'eve'"
        ),
        0
    );
}

#[test]
fn a_broken_master_replaced_by_a_fresh_one_with_its_id_rejoins_as_a_client() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut one = first_device(dirs[0].path());
    let two = paired(dirs[1].path(), "2", &one);
    let mut sales: Vec<String> = (0..2).map(|_| sale_id(&sell(&one, "ann"))).collect();
    sales.push(sale_id(&sell(&two, "bob")));
    wait_for("every sale in device 2's copy of the log", DEADLINE, || {
        logged_sales(dirs[1].path()) == 3
    });

    // The master's disk breaks: device 2 takes over; device 1 is revoked there and replaced by
    // a fresh device 1, paired with device 2.
    one.kill9();
    wait_for("device 2 takes over", DEADLINE, || {
        health(&two)["role"] == "master"
    });
    let term = health(&two)["term"].as_u64().unwrap();
    revoke(&two, "1");
    let new = unpaired(dirs[2].path(), "1", &two.sync_url);
    pair(&two, &new);
    wait_for(
        "the replacement has its predecessor's sales",
        DEADLINE,
        || {
            query(
                dirs[2].path(),
                "SELECT count(*) FROM sync_events WHERE kind = 'sale_recorded' AND device_id = 1",
            ) == 2
        },
    );
    sales.push(sale_id(&sell(&new, "cy")));
    assert_one_store(&[&two, &new], (2, term), &sales);
}

#[test]
fn a_broken_client_replaced_under_a_new_id_keeps_its_predecessors_sales_in_the_store() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Its disk breaks. As OPERATIONS says: revoke it, then a new device, paired.
    let (one, mut sales) = a_client_that_broke(&dirs);
    let three = unpaired(dirs[2].path(), "3", &one.sync_url);
    pair(&one, &three);
    wait_for("device 3 has device 2's sales", DEADLINE, || {
        query(
            dirs[2].path(),
            "SELECT count(*) FROM sync_events WHERE kind = 'sale_recorded' AND device_id = 2",
        ) == 3
    });
    sales.push(sale_id(&sell(&three, "bob")));
    assert_one_store(&[&one, &three], (1, 1), &sales);
}

#[test]
fn a_client_restored_without_its_identity_waits_to_be_paired_and_never_leads_an_island() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = first_device(dirs[0].path());
    let mut two = paired(dirs[1].path(), "2", &one);
    let mut sales = vec![sale_id(&sell(&two, "ann"))];
    let copy = dirs[2].path().join("rms-backup.db");
    let (ok, out) = rms_node(&[
        "backup",
        "--data-dir",
        dirs[1].path().to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    sales.extend((0..2).map(|_| sale_id(&sell(&two, "ann"))));
    wait_for("device 2's sales reach the master", DEADLINE, || {
        logged_sales(dirs[0].path()) == 3
    });
    two.kill9();

    // Restored from the copy, its identity files lost: a new certificate, a new device to its
    // store (OPERATIONS: revoke the old one, pair the new one).
    revoke(&one, "2");
    let restored = dirs[2].path().join("data");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(&copy, restored.join("rms.db")).unwrap();
    let two = unpaired(&restored, "2", &one.sync_url);
    // Its database binds the old certificate to its id: not admitted, it is joining. For ten
    // master timeouts it neither sells nor makes itself the master of an island (whose newer
    // term would win over the store).
    wait_for(
        "the restored device knows it is not admitted",
        DEADLINE,
        || health(&two)["joining"] == true,
    );
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(6) {
        let h = health(&two);
        assert_eq!(
            (h["joining"].clone(), h["role"].clone()),
            (json!(true), json!("client")),
            "{h}"
        );
        assert_eq!(h["term"], 1, "{h}");
        let (status, _) = two.post(
            "/api/v1/sales",
            &json!({"user_id":"cy","lines":[{"sku":"tea","qty":1}]}),
        );
        assert_eq!(status, 503);
        std::thread::sleep(Duration::from_millis(200));
    }
    pair(&one, &two);
    wait_for(
        "the restored device follows the store again",
        DEADLINE,
        || health(&two)["master_id"] == 1,
    );
    sales.push(sale_id(&sell(&two, "cy")));
    assert_one_store(&[&one, &two], (1, 1), &sales);
}

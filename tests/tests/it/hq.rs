//! Head office (issue #15), with real PostgreSQL, rms-hq and rms-node processes: every sale
//! reaches head office exactly once through crashes of head office and of its database, a lost
//! answer's re-sent batch changes nothing, bad tokens and batches write nothing, the catalogue
//! reaches every till of several stores, and a failover in the middle of an upload leaves no gap
//! and no duplicate.

use std::time::Duration;

use rms_domain::{NewSale, NewSaleLine, Role};
use rms_storage::local::{self, Command};
use rms_tests::hq::{ADMIN_TOKEN, HqProcess, add_store, hq_command};
use rms_tests::pg::Postgres;
use rms_tests::{NodeProcess, node_args, wait_for};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
/// Short intervals for the stores of several devices.
const TIMING: &[&str] = rms_tests::FAST;

/// A PostgreSQL cluster with head office's database, one store registered in it, and rms-hq.
pub(crate) fn head_office() -> (Postgres, String, (i64, String), HqProcess) {
    let pg = Postgres::start();
    let url = pg.create_database("hq");
    let store = add_store(&url, "Store A");
    let hq = HqProcess::start(&url, 0);
    (pg, url, store, hq)
}

/// The store's view of its uplink (`/sync/status`).
fn uplink(node: &NodeProcess) -> Value {
    node.get("/api/v1/sync/status").1["head_office"].clone()
}

/// Head office holds the node's whole log.
pub(crate) fn caught_up(node: &NodeProcess) -> bool {
    let (_, status) = node.get("/api/v1/sync/status");
    let hq = &status["head_office"];
    hq["active"] == true && hq["lag_entries"] == 0 && hq["cursor"] == status["cursor"]
}

pub(crate) fn hq_args<'a>(hq: &'a HqProcess, token: &'a str) -> [&'a str; 4] {
    ["--hq-url", hq.url.as_str(), "--hq-token", token]
}

pub(crate) fn create_product(node: &NodeProcess, sku: &str, price_cents: i64, stock: i64) {
    let body = json!({"sku": sku, "name": sku, "price_cents": price_cents, "stock": stock});
    let (status, answer) = node.post("/api/v1/products", &body);
    assert_eq!(status, 201, "{answer}");
}

pub(crate) fn sell(node: &NodeProcess, sku: &str, qty: i64) -> Value {
    let body = json!({"user_id": "cashier", "lines": [{"sku": sku, "qty": qty}]});
    let (status, answer) = node.post("/api/v1/sales", &body);
    assert!(status == 201 || status == 202, "{status} {answer}");
    answer
}

#[test]
fn every_sale_reaches_head_office_once_through_kill_9_and_a_database_crash() {
    const SALES: i64 = 50_000;
    let (mut pg, _url, (store_id, token), mut hq) = head_office();

    // The store sells while head office is not configured: 50 000 sales wait in its log.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut node = NodeProcess::start(dir.path(), &["--device-id", "1"]);
    create_product(&node, "milk", 150, 1_000_000);
    node.terminate();
    let store = rms_storage::Store::open(dir.path(), rms_domain::DeviceId::new(1).expect("1"))
        .expect("the store opens");
    let mut expected_cents = 0;
    for batch in 0..SALES / 1000 {
        store
            .write(|tx| {
                for i in 0..1000 {
                    let qty = 1 + (batch * 1000 + i) % 3;
                    let sale = NewSale {
                        user_id: format!("cashier-{}", i % 4),
                        lines: vec![NewSaleLine {
                            sku: "milk".into(),
                            qty,
                        }],
                    };
                    local::record(tx, Role::Master, 1_800_000_000_000, Command::Sell(sale))?;
                }
                Ok(())
            })
            .expect("the sales are recorded");
        expected_cents += (0..1000)
            .map(|i| (1 + (batch * 1000 + i) % 3) * 150)
            .sum::<i64>();
    }
    drop(store);

    let args = [&["--device-id", "1"][..], &hq_args(&hq, &token)].concat();
    let node = NodeProcess::start(dir.path(), &args);
    // Kill head office whenever the upload moved on, and crash PostgreSQL once.
    let mut kills = 0;
    let mut last = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !caught_up(&node) {
        assert!(
            std::time::Instant::now() < deadline,
            "no catch-up: {}",
            uplink(&node)
        );
        let cursor = uplink(&node)["cursor"].as_u64().unwrap_or(0);
        if cursor >= last + 4000 && kills < 12 {
            last = cursor;
            kills += 1;
            if kills == 4 {
                pg.stop_immediate();
                pg.start_server();
            } else {
                hq.kill9();
                hq.restart();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(kills >= 5, "the upload ended before the crashes ({kills})");

    let count = |sql: &str| pg.number("hq", sql);
    let sales = count(&format!(
        "SELECT count(*) FROM hq_sales WHERE store_id = {store_id} AND status = 'accepted'"
    ));
    assert_eq!(sales, SALES, "every sale once");
    let distinct = count(&format!(
        "SELECT count(DISTINCT sale_id) FROM hq_sales WHERE store_id = {store_id}"
    ));
    assert_eq!(distinct, SALES);
    let cents = count(&format!(
        "SELECT sum(total_cents) FROM hq_sales WHERE store_id = {store_id}"
    ));
    assert_eq!(cents, expected_cents, "head office's total is the store's");
    let lines = count("SELECT sum(qty * price_cents) FROM hq_sale_lines");
    assert_eq!(lines, expected_cents);
    assert_eq!(count("SELECT count(*) FROM hq_ingest_errors"), 0);
    let (_, milk) = node.get("/api/v1/products/milk");
    let stock = count(&format!(
        "SELECT stock FROM hq_stock WHERE store_id = {store_id} AND sku = 'milk'"
    ));
    assert_eq!(
        Some(stock),
        milk["stock"].as_i64(),
        "stock per store and SKU"
    );
    let (status, stores) = hq.call("GET", "/hq/v1/stores", ADMIN_TOKEN, None);
    assert_eq!(status, 200);
    assert_eq!(stores[0]["lag_entries"], 0, "{stores}");
    assert_eq!(
        stores[0]["log_head"],
        node.get("/api/v1/sync/status").1["cursor"]
    );
    let metrics = node.get_text("/metrics");
    assert!(
        metrics.lines().any(|l| l == "rms_hq_uplink_lag_entries 0"),
        "{metrics}"
    );
}

/// The entries head office holds for a store, as a batch from `since` (what a master whose
/// answer was lost sends again).
pub(crate) fn resend_batch(pg: &Postgres, store_id: i64, since: i64) -> Vec<u8> {
    let rows = pg.psql(
        "hq",
        &format!(
            "SELECT entry FROM hq_log WHERE store_id = {store_id} AND master_seq > {since}
             ORDER BY master_seq"
        ),
    );
    let entries: Vec<Value> = rows
        .lines()
        .map(|l| serde_json::from_str(l).expect("an entry"))
        .collect();
    let epoch: Value = serde_json::from_str(&pg.psql(
        "hq",
        &format!("SELECT max_epoch FROM hq_stores WHERE store_id = {store_id}"),
    ))
    .expect("an epoch");
    let since_epoch = if since == 0 {
        Value::Null
    } else {
        serde_json::from_str(&pg.psql(
            "hq",
            &format!(
                "SELECT epoch FROM hq_log WHERE store_id = {store_id} AND master_seq = {since}"
            ),
        ))
        .expect("an epoch")
    };
    let head = since + entries.len() as i64;
    json!({
        "epoch": epoch, "since": since, "since_epoch": since_epoch, "head": head,
        "catalog_version": 0, "entries": entries,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn a_resent_batch_and_bad_tokens_and_batches_change_nothing() {
    let (pg, url, (store_id, token), hq) = head_office();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = [&["--device-id", "1"][..], &hq_args(&hq, &token)].concat();
    let node = NodeProcess::start(dir.path(), &args);
    create_product(&node, "tea", 300, 50);
    for qty in 1..=3 {
        sell(&node, "tea", qty);
    }
    wait_for("head office holds the log", DEADLINE, || caught_up(&node));
    let rows = || {
        pg.psql(
            "hq",
            "SELECT (SELECT count(*) FROM hq_log), (SELECT count(*) FROM hq_sale_rows),
                    (SELECT count(*) FROM hq_sale_line_rows), (SELECT count(*) FROM hq_ingest_errors),
                    (SELECT cursor_seq FROM hq_stores)",
        )
    };
    let before = rows();

    // The answer to a batch was lost: the master sends it again from where it was.
    for since in [0, 2] {
        let batch = resend_batch(&pg, store_id, since);
        let (status, answer) = hq.call("POST", "/hq/v1/uplink/batch", &token, Some(&batch));
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"], "cursor_moved");
        assert_eq!(rows(), before, "a re-sent batch changes nothing");
    }
    // A batch with a gap, or not JSON: refused, nothing written.
    let mut gap: Value = serde_json::from_slice(&resend_batch(&pg, store_id, 0)).expect("a batch");
    gap["entries"].as_array_mut().expect("entries").remove(1);
    let cursor = pg.number("hq", "SELECT cursor_seq FROM hq_stores");
    gap["since"] = json!(0);
    let (status, answer) = hq.call(
        "POST",
        "/hq/v1/uplink/batch",
        &token,
        Some(gap.to_string().as_bytes()),
    );
    assert_eq!(status, 422, "{answer}");
    let (status, _) = hq.call("POST", "/hq/v1/uplink/batch", &token, Some(b"{\"epoch\":"));
    assert_eq!(status, 400);
    assert_eq!(rows(), before);
    assert!(cursor > 0);

    // A wrong token, or the admin's on a store's route: refused.
    let batch = resend_batch(&pg, store_id, 0);
    let (status, _) = hq.call("POST", "/hq/v1/uplink/batch", "rmshq_wrong", Some(&batch));
    assert_eq!(status, 401);
    let (status, _) = hq.call("POST", "/hq/v1/uplink/batch", ADMIN_TOKEN, Some(&batch));
    assert_eq!(status, 403);
    let (status, _) = hq.call("GET", "/hq/v1/stores", &token, None);
    assert_eq!(status, 403, "a store's token does not list the stores");
    let (status, _) = hq.call(
        "PUT",
        "/hq/v1/catalog/tea",
        &token,
        Some(br#"{"name":"Tea","price_cents":1}"#),
    );
    assert_eq!(status, 403, "a store's token does not set prices");
    let (status, answer) = hq.call(
        "PUT",
        "/hq/v1/catalog/tea",
        ADMIN_TOKEN,
        Some(br#"{"name":"Tea","price_cents":-1}"#),
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(rows(), before);

    // A revoked store: its token is refused, and its next sales are not written.
    hq_command(&url, &["stores", "revoke", &store_id.to_string()]).expect("stores revoke");
    sell(&node, "tea", 1);
    wait_for("the store sees the refusal", DEADLINE, || {
        uplink(&node)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("401"))
    });
    assert_eq!(rows(), before, "a revoked store writes nothing");
    let (status, _) = hq.call("GET", "/hq/v1/uplink/cursor", &token, None);
    assert_eq!(status, 401);
}

fn product(node: &NodeProcess, sku: &str) -> Value {
    node.get(&format!("/api/v1/products/{sku}")).1
}

#[test]
fn a_price_set_at_head_office_reaches_every_till_of_every_store_once() {
    let pg = Postgres::start();
    let url = pg.create_database("hq");
    let (_, token_a) = add_store(&url, "Store A");
    let (_, token_b) = add_store(&url, "Store B");
    let hq = HqProcess::start(&url, 0);
    hq.set_price("tea", "Green tea", 200);

    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("a dir"))
        .collect();
    let a_args = [&node_args("1", TIMING, &[])[..], &hq_args(&hq, &token_a)].concat();
    let a1 = NodeProcess::start(dirs[0].path(), &a_args);
    let peers = vec![a1.sync_url.clone()];
    let a2_args = [&node_args("2", TIMING, &peers)[..], &hq_args(&hq, &token_a)].concat();
    let a2 = NodeProcess::start(dirs[1].path(), &a2_args);
    let b_args = [&node_args("1", TIMING, &[])[..], &hq_args(&hq, &token_b)].concat();
    let mut b1 = NodeProcess::start(dirs[2].path(), &b_args);
    let tills = [&a1, &a2, &b1];
    wait_for("the snapshot reaches every till", DEADLINE, || {
        tills
            .iter()
            .all(|n| product(n, "tea")["price_cents"] == 200)
    });

    // Store B is off; the store's own edit on A's master is overwritten by head office, and an
    // edit made on the version before head office's change loses.
    b1.terminate();
    let (status, edited) = a1.raw(
        "PATCH",
        "/api/v1/products/tea",
        Some(br#"{"name":"Local tea"}"#),
        &[("content-type", "application/json".to_owned())],
    );
    assert_eq!(status, 200, "{edited}");
    let stale_version = edited["version"].clone();
    hq.set_price("tea", "Green tea", 250);
    wait_for("the change reaches store A", DEADLINE, || {
        [&a1, &a2].iter().all(|n| {
            let tea = product(n, "tea");
            tea["price_cents"] == 250 && tea["name"] == "Green tea"
        })
    });
    let (_, audit) = a1.get("/api/v1/audit?operation=product_update&limit=500");
    let overwritten = audit
        .as_array()
        .expect("entries")
        .iter()
        .find_map(|e| e["details"].get("overwritten").cloned())
        .expect("the overwritten value is audited");
    assert_eq!(overwritten["name"], "Local tea");
    let late = json!({"name": "Late tea", "version": stale_version});
    let (status, answer) = a2.raw(
        "PATCH",
        "/api/v1/products/tea",
        Some(late.to_string().as_bytes()),
        &[("content-type", "application/json".to_owned())],
    );
    assert!(status == 409 || status == 202, "{status} {answer}");
    wait_for("the late local edit loses", DEADLINE, || {
        [&a1, &a2]
            .iter()
            .all(|n| product(n, "tea")["name"] == "Green tea")
    });

    // Store B gets the change when it comes back, once.
    let b1 = NodeProcess::start(dirs[2].path(), &b_args);
    wait_for("the change reaches store B", DEADLINE, || {
        product(&b1, "tea")["price_cents"] == 250
    });
    wait_for("store B reports the catalogue version", DEADLINE, || {
        uplink(&b1)["catalog_version"] == 2 && caught_up(&b1)
    });
    let logged = pg.number(
        "hq",
        "SELECT count(*) FROM hq_log WHERE kind = 'catalog_set' AND NOT undone",
    );
    assert_eq!(
        logged, 4,
        "two versions, each logged once in each of two stores"
    );
}

#[test]
fn a_failover_in_the_middle_of_an_upload_leaves_no_gap_and_no_duplicate() {
    let (pg, _url, (store_id, token), mut hq) = head_office();
    let hq_url = hq.url.clone();
    let timing: Vec<&str> = [TIMING, &["--hq-url", &hq_url, "--hq-token", &token][..]].concat();
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("a dir"))
        .collect();
    let mut master = NodeProcess::start(dirs[0].path(), &node_args("1", &timing, &[]));
    let peers = vec![master.sync_url.clone()];
    let two = NodeProcess::start(dirs[1].path(), &node_args("2", &timing, &peers));
    let three = NodeProcess::start(dirs[2].path(), &node_args("3", &timing, &peers));
    create_product(&master, "jam", 100, 1_000_000);
    wait_for("every till has the product", DEADLINE, || {
        [&master, &two, &three]
            .iter()
            .all(|n| product(n, "jam")["stock"] == 1_000_000)
    });
    hq.kill9();
    // Sales from every till while head office is down.
    std::thread::scope(|s| {
        for node in [&master, &two, &three] {
            s.spawn(move || {
                for _ in 0..700 {
                    sell(node, "jam", 1);
                }
            });
        }
    });
    wait_for("the master holds every sale", DEADLINE, || {
        master.get("/api/v1/sync/status").1["cursor"].as_u64() >= Some(2100)
    });
    hq.restart();
    wait_for("the upload starts", DEADLINE, || {
        uplink(&master)["cursor"].as_u64().is_some_and(|c| c > 0)
    });
    master.kill9();
    wait_for("a new master uplinks", DEADLINE, || {
        [&two, &three].iter().any(|n| uplink(n)["active"] == true)
    });
    for _ in 0..50 {
        sell(&two, "jam", 1);
    }
    let new_master = if uplink(&two)["active"] == true {
        &two
    } else {
        &three
    };
    wait_for("head office holds the new master's log", DEADLINE, || {
        caught_up(new_master)
    });
    let (_, sales) = new_master.get("/api/v1/sync/status");
    let head = sales["cursor"].as_i64().expect("a head");
    let count = |sql: &str| pg.number("hq", sql);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM hq_log WHERE store_id = {store_id} AND NOT undone"
        )),
        head,
        "no gap: one row per entry of the master log"
    );
    assert_eq!(
        count(&format!(
            "SELECT count(DISTINCT master_seq) FROM hq_log WHERE store_id = {store_id} AND NOT undone"
        )),
        head,
        "no duplicate"
    );
    let accepted = count("SELECT count(*) FROM hq_sales WHERE status = 'accepted'");
    let jam = product(new_master, "jam");
    assert_eq!(
        1_000_000 - jam["stock"].as_i64().expect("stock"),
        accepted,
        "head office's sales are the store's"
    );
    drop(master);
}

#[test]
fn a_split_brain_with_both_masters_uplinking_ends_with_the_merged_stores_sales_once() {
    let (pg, _url, (store_id, token), hq) = head_office();
    let store = rms_tests::Partitioned::start(TIMING, &hq_args(&hq, &token));
    let nodes = &store.nodes;
    let master = nodes
        .iter()
        .find(|n| uplink(n)["active"] == true || n.get("/api/v1/health").1["role"] == "master")
        .expect("a master");
    create_product(master, "bread", 250, 100);
    wait_for("bread everywhere", DEADLINE, || {
        nodes.iter().all(|n| product(n, "bread")["stock"] == 100)
    });

    store.isolate(0);
    wait_for("a master on each side, each uplinking", DEADLINE, || {
        let masters: Vec<&NodeProcess> = nodes
            .iter()
            .filter(|n| n.get("/api/v1/health").1["role"] == "master")
            .collect();
        masters.len() == 2 && masters.iter().all(|m| uplink(m)["active"] == true)
    });
    let mut sold = Vec::new();
    for node in nodes {
        for _ in 0..3 {
            sold.push(
                sell(node, "bread", 2)["sale_id"]
                    .as_str()
                    .expect("an id")
                    .to_owned(),
            );
        }
    }
    // Head office hears both islands' masters while they are apart.
    wait_for("both islands' sales reach head office", DEADLINE, || {
        pg.number("hq", "SELECT count(DISTINCT device_id) FROM hq_sale_rows") >= 2
    });

    store.heal();
    wait_for(
        "one master, everything settled, head office caught up",
        DEADLINE,
        || {
            let masters: Vec<&NodeProcess> = nodes
                .iter()
                .filter(|n| n.get("/api/v1/health").1["role"] == "master")
                .collect();
            masters.len() == 1
                && nodes
                    .iter()
                    .all(|n| product(n, "bread")["stock"] == 100 - 2 * 9)
                && caught_up(masters[0])
        },
    );
    let accepted = pg.psql(
        "hq",
        &format!(
            "SELECT sale_id FROM hq_sales WHERE store_id = {store_id} AND status = 'accepted'
             ORDER BY sale_id"
        ),
    );
    let mut want = sold.clone();
    want.sort();
    assert_eq!(
        accepted.lines().collect::<Vec<_>>(),
        want,
        "head office has exactly the merged store's sales, each once"
    );
}

#[test]
fn in_a_browser_head_offices_status_page_lists_the_silent_stores() {
    let (_pg, url, (_, token), hq) = head_office();
    add_store(&url, "Store B");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = [&["--device-id", "1"][..], &hq_args(&hq, &token)].concat();
    let node = NodeProcess::start(dir.path(), &args);
    wait_for("store A reports to head office", DEADLINE, || {
        caught_up(&node)
    });

    let mut browser = crate::status_page::Browser::start();
    let page = browser.open(&format!("{}/hq/", hq.url));
    wait_for("the page's form", DEADLINE, || {
        browser.eval(&page, "document.getElementById('login') !== null") == true
    });
    let login = format!(
        "document.getElementById('token').value = '{ADMIN_TOKEN}';
         document.getElementById('login').requestSubmit(); true"
    );
    assert_eq!(browser.eval(&page, &login), true);
    wait_for("both stores listed, store B as silent", DEADLINE, || {
        let rows = browser.eval(&page, "document.querySelectorAll('#stores tr').length");
        let silent = browser.eval(&page, "document.getElementById('silent').textContent");
        rows == 2
            && silent
                .as_str()
                .is_some_and(|s| s.contains("Store B") && !s.contains("Store A"))
    });
}

/// Issue #17: a sale changed in the master's database file after the master decided it (with
/// the `sqlite3` shell, as anyone with the file can) reaches head office as changed, but no
/// longer continues its device's chain: head office flags the store (`chain_breaks`) and keeps
/// the entry as sent. An unchanged store is not flagged.
#[test]
fn head_office_flags_a_store_whose_log_was_changed_after_its_master_decided_it() {
    let (_pg, _url, (store_id, token), hq) = head_office();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut node = NodeProcess::start(dir.path(), &["--device-id", "1"]);
    create_product(&node, "tea", 250, 100);
    for _ in 0..3 {
        sell(&node, "tea", 1);
    }
    node.terminate();
    let sql = "UPDATE sync_events SET payload = replace(payload, '\"qty\":1', '\"qty\":5') \
               WHERE device_id = 1 AND seq = (SELECT seq FROM sync_events WHERE device_id = 1 \
               AND kind = 'sale_recorded' ORDER BY seq LIMIT 1 OFFSET 1)";
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()\n";
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir.path().join(rms_storage::db::DB_FILE_NAME))
        .arg(sql)
        .status()
        .expect("python3 runs");
    assert!(status.success());

    let args = [&["--device-id", "1"][..], &hq_args(&hq, &token)].concat();
    let node = NodeProcess::start(dir.path(), &args);
    wait_for("head office caught up", DEADLINE, || caught_up(&node));
    let (status, stores) = hq.call("GET", "/hq/v1/stores", ADMIN_TOKEN, None);
    assert_eq!(status, 200, "{stores}");
    let store = stores
        .as_array()
        .and_then(|s| s.iter().find(|s| s["store_id"] == store_id))
        .cloned()
        .expect("the store is listed");
    assert_eq!(store["chain_breaks"], 1, "{store}");
    // The store heard of it too: the batch had an ingest error.
    wait_for("the store's alarm", DEADLINE, || {
        let (_, alarms) = node.get("/api/v1/audit?operation=alarm&limit=1000");
        alarms.as_array().is_some_and(|a| {
            a.iter().any(|e| {
                e["details"]["why"]
                    .as_str()
                    .is_some_and(|w| w.contains("ingest"))
            })
        })
    });
}

//! Pauses are not failures (issue #12): real `rms-node` processes stopped with SIGSTOP while the
//! master is healthy must not depose it, and the last unit is never sold twice.

use std::time::Duration;

use rms_tests::{NodeProcess, node_args, signal, store_of_three, wait_for};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

/// The timing: a pause of a little more than the master timeout is enough.
const TIMING: &[&str] = &[
    "--sync-interval-ms",
    "500",
    "--heartbeat-interval-ms",
    "100",
    "--master-timeout-ms",
    "800",
];

fn health(node: &NodeProcess) -> Value {
    node.get("/api/v1/health").1
}

fn online(observer: &NodeProcess, device: u64) -> bool {
    observer.get("/api/v1/cluster").1["devices"]
        .as_array()
        .is_some_and(|devices| {
            devices
                .iter()
                .any(|d| d["device_id"] == device && d["online"] == true)
        })
}

fn stock(node: &NodeProcess, sku: &str) -> Value {
    node.get(&format!("/api/v1/products/{sku}")).1["stock"].clone()
}

/// The verdict on `sale` (a `POST /sales` answer) once `node` knows it: `accepted` or
/// `rejected`. A device that already knows the stock is gone refuses at once (409, no sale).
fn verdict(node: &NodeProcess, status: u16, sale: &Value) -> String {
    assert!(
        matches!(status, 201 | 202 | 409),
        "a sale is answered 201, 202 or 409: {status} {sale}"
    );
    let Some(sale_id) = sale["sale_id"].as_str() else {
        assert_eq!((status, &sale["error"]), (409, &json!("out_of_stock")));
        return "rejected".into();
    };
    let mut found = String::new();
    wait_for("the sale's verdict", DEADLINE, || {
        let (_, now) = node.get(&format!("/api/v1/sales/{sale_id}"));
        found = now["status"].as_str().unwrap_or_default().to_owned();
        assert!(!found.is_empty(), "no sale {sale_id}: {now}");
        found != "pending"
    });
    found
}

/// Pauses the clients at `paused` (indexes into `nodes`) while master 1 sells the last unit of
/// a product, posts a sale of the same unit to each paused client, and resumes them once the
/// master has taken them for gone. Returns each paused client's verdict.
fn sell_the_last_unit_while_paused(nodes: &[NodeProcess], paused: &[usize]) -> Vec<String> {
    let product = json!({"sku":"last","name":"The last one","price_cents":999,"stock":1});
    assert_eq!(nodes[0].post("/api/v1/products", &product).0, 201);
    wait_for("the product on every device", DEADLINE, || {
        nodes.iter().all(|n| stock(n, "last") == 1)
    });
    for &i in paused {
        signal(nodes[i].pid(), "STOP");
    }
    let sale = json!({"user_id":"ann","lines":[{"sku":"last","qty":1}]});
    let (status, body) = nodes[0].post("/api/v1/sales", &sale);
    assert_eq!(status, 201, "the master sells the unit at once: {body}");
    assert_eq!(stock(&nodes[0], "last"), 0);
    // Each paused device gets the same sale; the request waits in its socket until it resumes.
    let posted: Vec<_> = paused
        .iter()
        .map(|&i| {
            let url = nodes[i].url.clone();
            std::thread::spawn(move || {
                let agent = rms_tests::agent_with_timeout(DEADLINE);
                let sale = json!({"user_id":"bob","lines":[{"sku":"last","qty":1}]});
                rms_tests::request(&agent, "POST", &format!("{url}/api/v1/sales"), Some(&sale))
            })
        })
        .collect();
    wait_for(
        "the master takes the paused devices for gone",
        DEADLINE,
        || {
            paused
                .iter()
                .all(|&i| !online(&nodes[0], u64::try_from(i + 1).unwrap()))
        },
    );
    for &i in paused {
        signal(nodes[i].pid(), "CONT");
    }
    let verdicts: Vec<String> = posted
        .into_iter()
        .zip(paused)
        .map(|(thread, &i)| {
            let (status, body) = thread.join().unwrap().expect("the paused device answers");
            verdict(&nodes[i], status, &body)
        })
        .collect();
    wait_for("stock 0 on every device", DEADLINE, || {
        nodes.iter().all(|n| stock(n, "last") == 0)
    });
    wait_for(
        "the resumed devices heartbeat again: online for the master",
        DEADLINE,
        || {
            paused
                .iter()
                .all(|&i| online(&nodes[0], u64::try_from(i + 1).unwrap()))
        },
    );
    verdicts
}

/// Master 1 still leads in term 1 on every device: nobody was deposed.
fn assert_master_one_in_term_one(nodes: &[NodeProcess]) {
    wait_for("every device follows master 1 again", DEADLINE, || {
        nodes.iter().all(|n| health(n)["master_id"] == 1)
    });
    for node in nodes {
        let h = health(node);
        assert_eq!(h["term"], 1, "no election won: {h}");
    }
    assert_eq!(health(&nodes[0])["role"], "master");
}

#[test]
fn a_paused_client_neither_deposes_the_master_nor_sells_the_last_unit_again() {
    // The reproduction: a client stopped past the master timeout wakes up to a healthy
    // master; the sale of the unit the master already sold is refused, stock stays 0.
    let (_dirs, nodes) = store_of_three(TIMING);
    let verdicts = sell_the_last_unit_while_paused(&nodes, &[2]);
    assert_eq!(verdicts, ["rejected"]);
    assert_master_one_in_term_one(&nodes);
}

#[test]
fn two_clients_paused_at_once_do_not_depose_the_master() {
    // Both clients stop together: on resume neither may take the role from the live master.
    let (_dirs, nodes) = store_of_three(TIMING);
    let verdicts = sell_the_last_unit_while_paused(&nodes, &[1, 2]);
    assert_eq!(verdicts, ["rejected", "rejected"]);
    assert_master_one_in_term_one(&nodes);
}

#[test]
fn a_store_of_two_fails_over_when_one_device_dies() {
    // The island rule survives the pre-vote: with nobody left to ask, the lone device leads and
    // sells.
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut one = NodeProcess::start(dirs[0].path(), &node_args("1", TIMING, &[]));
    let peers = vec![one.sync_url.clone()];
    let two = NodeProcess::start(dirs[1].path(), &node_args("2", TIMING, &peers));
    wait_for("device 2 follows master 1", DEADLINE, || {
        health(&two)["master_id"] == 1
    });
    one.kill9();
    wait_for("device 2 becomes master", DEADLINE, || {
        health(&two)["role"] == "master"
    });
    let product = json!({"sku":"tea","name":"Tea","price_cents":150,"stock":3});
    assert_eq!(two.post("/api/v1/products", &product).0, 201);
    let sale = json!({"user_id":"ann","lines":[{"sku":"tea","qty":1}]});
    assert_eq!(two.post("/api/v1/sales", &sale).0, 201);
}

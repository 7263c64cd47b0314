//! A store of several real `rms-node` processes syncing over WebSocket on 127.0.0.1.

use std::time::Duration;

use rms_tests::{FAST, NodeProcess, Proxy, node_args, store_of_three, wait_for};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);

fn stock(node: &NodeProcess, sku: &str) -> Option<i64> {
    let (status, product) = node.get(&format!("/api/v1/products/{sku}"));
    (status == 200).then(|| product["stock"].as_i64()).flatten()
}

fn pending(node: &NodeProcess) -> i64 {
    node.get("/api/v1/sync/status").1["pending"]
        .as_i64()
        .unwrap_or(-1)
}

#[test]
fn three_nodes_agree_on_the_master_and_share_products() {
    // Proves: one master seen by all; a product made anywhere reaches every device.
    let (_dirs, nodes) = store_of_three(FAST);
    for node in &nodes {
        let (_, health) = node.get("/api/v1/health");
        assert_eq!(health["master_id"], 1, "{health}");
    }
    assert_eq!(nodes[0].get("/api/v1/health").1["role"], "master");
    assert_eq!(nodes[1].get("/api/v1/health").1["role"], "client");

    let made_on_master = json!({"sku":"tea","name":"Tea","price_cents":300,"stock":5});
    assert_eq!(nodes[0].post("/api/v1/products", &made_on_master).0, 201);
    let made_on_client = json!({"sku":"jam","name":"Jam","price_cents":450,"stock":2});
    let (status, _) = nodes[1].post("/api/v1/products", &made_on_client);
    assert_eq!(status, 201);
    wait_for("both products on every device", DEADLINE, || {
        nodes
            .iter()
            .all(|n| stock(n, "tea") == Some(5) && stock(n, "jam") == Some(2))
    });
    wait_for("nothing pending", DEADLINE, || {
        nodes.iter().all(|n| pending(n) == 0)
    });
}

#[test]
fn a_sale_that_empties_a_product_reaches_the_third_device_long_before_the_sync_interval() {
    // Proves: a critical sale goes through the immediate path (push, decide, broadcast), not
    // the periodic sync. The periodic sync is 10 min here, far beyond the test's generous
    // deadline: only the immediate path can make it in time. How soon it is, is `make bench`'s
    // row S2 (a critical sale -> received by all clients, p99).
    const SLOW_SYNC: &[&str] = &[
        "--heartbeat-interval-ms",
        "100",
        "--master-timeout-ms",
        "600",
        "--sync-interval-ms",
        "600000",
    ];
    let (_dirs, nodes) = store_of_three(SLOW_SYNC);
    assert_eq!(
        nodes[0]
            .post(
                "/api/v1/products",
                &json!({"sku":"milk","name":"Milk","price_cents":99,"stock":1})
            )
            .0,
        201
    );
    wait_for("the product on both clients", DEADLINE, || {
        stock(&nodes[1], "milk") == Some(1) && stock(&nodes[2], "milk") == Some(1)
    });
    let (status, sale) = nodes[1].post(
        "/api/v1/sales",
        &json!({"user_id":"ann","lines":[{"sku":"milk","qty":1}]}),
    );
    assert_eq!(
        status, 201,
        "a critical sale on a connected client gets the master's verdict: {sale}"
    );
    wait_for("stock 0 on the third device", DEADLINE, || {
        stock(&nodes[2], "milk") == Some(0)
    });
    // The seller timed its push until the ack; the third device timed applying the entry.
    let count = |node: &NodeProcess, name: &str| -> u64 {
        let text = node.get_text("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_count ")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name}_count in\n{text}"))
    };
    assert!(count(&nodes[1], "rms_push_latency_seconds") >= 1);
    assert!(count(&nodes[2], "rms_apply_seconds") >= 1);
}

#[test]
fn two_clients_selling_the_last_unit_at_once_one_wins() {
    let (_dirs, nodes) = store_of_three(FAST);
    assert_eq!(
        nodes[0]
            .post(
                "/api/v1/products",
                &json!({"sku":"cake","name":"Cake","price_cents":500,"stock":1})
            )
            .0,
        201
    );
    wait_for("the cake on both clients", DEADLINE, || {
        stock(&nodes[1], "cake") == Some(1) && stock(&nodes[2], "cake") == Some(1)
    });
    let sale = json!({"user_id":"till","lines":[{"sku":"cake","qty":1}]});
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| nodes[1].post("/api/v1/sales", &sale));
        let b = s.spawn(|| nodes[2].post("/api/v1/sales", &sale));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "exactly one accepted: {a:?} {b:?}");
    let rejected = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"], "out_of_stock");
    wait_for("stock 0 everywhere", DEADLINE, || {
        nodes.iter().all(|n| stock(n, "cake") == Some(0))
    });
    let (_, conflicts) = nodes[0].get("/api/v1/audit?operation=conflict");
    let rejected_id = rejected["sale_id"].as_str().unwrap();
    assert!(
        conflicts
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["event_id"] == rejected_id),
        "the master audited the conflict: {conflicts}"
    );
    let sale_id = rejected_id.to_owned();
    wait_for("the rejected sale on every device", DEADLINE, || {
        nodes
            .iter()
            .all(|n| n.get(&format!("/api/v1/sales/{sale_id}")).1["status"] == "rejected")
    });
}

#[test]
fn a_device_that_started_alone_waits_for_its_store_then_sells_and_nothing_is_doubled() {
    // Device 2 starts while its peer is not there. Never part of a store, it is joining: it
    // refuses writes and never makes itself the master of an island (issue #27). Then the store
    // forms, and it sells. Its peer address is a proxy that holds the port and refuses until
    // device 1 runs.
    let to_one = Proxy::in_front_of_nothing();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let peers = vec![to_one.url.clone()];
    let lone = NodeProcess::start(dirs[1].path(), &node_args("2", FAST, &peers));
    let soap = json!({"sku":"soap","name":"Soap","price_cents":120,"stock":10});
    let (status, refused) = lone.post("/api/v1/products", &soap);
    assert_eq!((status, refused["error"].clone()), (503, json!("joining")));
    assert_eq!(lone.get("/api/v1/health").1["joining"], true);

    let lone_peer = vec![lone.sync_url.clone()];
    let one = NodeProcess::start(dirs[0].path(), &node_args("1", FAST, &lone_peer));
    to_one.point_at(one.sync_port());
    let nodes = [one, lone];
    wait_for("one master for both", DEADLINE, || {
        let ids: Vec<Value> = nodes
            .iter()
            .map(|n| n.get("/api/v1/health").1["master_id"].clone())
            .collect();
        !ids[0].is_null() && ids[0] == ids[1]
    });
    let lone = &nodes[1];
    assert_eq!(lone.post("/api/v1/products", &soap).0, 201);
    let (status, sale) = lone.post(
        "/api/v1/sales",
        &json!({"user_id":"bo","lines":[{"sku":"soap","qty":3}]}),
    );
    assert!(status == 201 || status == 202, "{status} {sale}");
    let sale_id = sale["sale_id"].as_str().unwrap().to_owned();
    wait_for("the sale on both devices, settled", DEADLINE, || {
        nodes.iter().all(|n| {
            let (_, sale) = n.get(&format!("/api/v1/sales/{sale_id}"));
            sale["status"] == "accepted" && pending(n) == 0 && stock(n, "soap") == Some(7)
        })
    });
    for node in &nodes {
        let (_, sales) = node.get("/api/v1/sales");
        assert_eq!(
            sales.as_array().map(Vec::len),
            Some(1),
            "exactly one sale, none doubled: {sales}"
        );
    }
}

#[test]
fn a_restarted_client_resumes_from_its_cursor() {
    // Proves: a client that was down catches up from where it was, and what it sold meanwhile
    // (nothing, here) and what the store did meanwhile both end up everywhere once.
    let (dirs, mut nodes) = store_of_three(FAST);
    assert_eq!(
        nodes[0]
            .post(
                "/api/v1/products",
                &json!({"sku":"rice","name":"Rice","price_cents":210,"stock":50})
            )
            .0,
        201
    );
    // Device 2 sells rice below: it must have it too (broadcasts reach devices one after another).
    wait_for("rice on devices 2 and 3", DEADLINE, || {
        nodes[1..].iter().all(|n| stock(n, "rice") == Some(50))
    });
    let cursor_before = nodes[2].get("/api/v1/sync/status").1["cursor"]
        .as_u64()
        .unwrap();
    assert!(nodes[2].terminate().success());
    for _ in 0..5 {
        let (status, body) = nodes[1].post(
            "/api/v1/sales",
            &json!({"user_id":"cy","lines":[{"sku":"rice","qty":2}]}),
        );
        assert!(status == 201 || status == 202, "{status} {body}");
    }
    wait_for("the master at 40", DEADLINE, || {
        stock(&nodes[0], "rice") == Some(40)
    });
    let peers = vec![nodes[0].sync_url.clone()];
    nodes[2] = NodeProcess::start(dirs[2].path(), &node_args("3", FAST, &peers));
    wait_for("the restarted client caught up", DEADLINE, || {
        stock(&nodes[2], "rice") == Some(40)
    });
    let (_, status) = nodes[2].get("/api/v1/sync/status");
    assert!(
        status["cursor"].as_u64().unwrap() >= cursor_before + 5,
        "{status}"
    );
    let (_, sales) = nodes[2].get("/api/v1/sales");
    assert_eq!(
        sales.as_array().map(Vec::len),
        Some(5),
        "each sale once: {sales}"
    );
}

#[test]
fn a_rest_only_client_syncs_as_well() {
    // Proves the REST fallback end to end: a client that holds no WebSocket. A device that
    // cannot hold one cannot be reached by one either, so the address it advertises refuses
    // every connection (the master dials every device of its roster, and would otherwise link
    // to this one over WebSocket: the node does not tell a REST-only device from the others).
    // No WebSocket link is ever open: at every look, from the start to the end, the master (the
    // only device this client talks to) counts no linked device. A REST exchange makes no link
    // on the master (it answers each request), so a link there would be a WebSocket.
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let master = NodeProcess::start(dirs[0].path(), &node_args("1", FAST, &[]));
    let peers = vec![master.sync_url.clone()];
    let unreachable = Proxy::in_front_of_nothing();
    let mut rest_args = node_args("2", FAST, &peers);
    rest_args.extend(["--sync-transport", "rest", "--advertise", &unreachable.url]);
    let client = NodeProcess::start(dirs[1].path(), &rest_args);
    let no_websocket = || {
        let (_, status) = master.get("/api/v1/sync/status");
        assert_eq!(
            status["connected"],
            json!([]),
            "the master holds a WebSocket link: {status}"
        );
        true
    };
    wait_for("the REST client follows master 1", DEADLINE, || {
        no_websocket() && client.get("/api/v1/health").1["master_id"] == 1
    });
    assert_eq!(
        master
            .post(
                "/api/v1/products",
                &json!({"sku":"salt","name":"Salt","price_cents":80,"stock":9})
            )
            .0,
        201
    );
    wait_for("the product on the REST client", DEADLINE, || {
        no_websocket() && stock(&client, "salt") == Some(9)
    });
    let (status, sale) = client.post(
        "/api/v1/sales",
        &json!({"user_id":"di","lines":[{"sku":"salt","qty":4}]}),
    );
    assert!(status == 201 || status == 202, "{status} {sale}");
    wait_for("the sale on the master", DEADLINE, || {
        no_websocket() && stock(&master, "salt") == Some(5)
    });
    wait_for("settled on the REST client", DEADLINE, || {
        no_websocket() && pending(&client) == 0 && stock(&client, "salt") == Some(5)
    });
    let sale_id = sale["sale_id"].as_str().unwrap();
    assert_eq!(
        master.get(&format!("/api/v1/sales/{sale_id}")).1["status"],
        "accepted"
    );
    // The master knows the client and tried its address: it is refused, not forgotten.
    let (_, cluster) = master.get("/api/v1/cluster");
    let two = cluster["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["device_id"] == 2).cloned());
    assert_eq!(
        two.as_ref().map(|d| d["online"].clone()),
        Some(json!(true)),
        "{cluster}"
    );
    wait_for("the master dialed the client's address", DEADLINE, || {
        unreachable.refused() > 0
    });
    no_websocket();
}

#[test]
fn a_client_restarted_without_peers_finds_the_store_from_its_roster() {
    // The roster is persisted: a device that knew the store rejoins it (and does not form a store
    // of its own) even when started without --peer.
    let (dirs, mut nodes) = store_of_three(FAST);
    assert!(nodes[2].terminate().success());
    nodes[2] = NodeProcess::start(dirs[2].path(), &node_args("3", FAST, &[]));
    wait_for("device 3 follows master 1 again", DEADLINE, || {
        let (_, health) = nodes[2].get("/api/v1/health");
        health["role"] == "client" && health["master_id"] == 1
    });
    assert_eq!(
        nodes[0].get("/api/v1/health").1["role"],
        "master",
        "the master was not deposed"
    );
}

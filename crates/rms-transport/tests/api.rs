//! The REST API of one node, in process: every route through the same warp filter a user reaches,
//! on an in-memory database.

#![allow(clippy::unwrap_used)]

use rms_domain::DeviceId;
use rms_transport::{Node, NodeConfig, api};
use serde_json::Value;

async fn node(store_key: Option<&str>) -> Node {
    let mut config = NodeConfig::lone(DeviceId::new(1).unwrap(), "till 1");
    config.store_key = store_key.map(str::to_owned);
    Node::start(config).await.unwrap()
}

async fn call(node: &Node, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut request = warp::test::request().method(method).path(path);
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.reply(&api::routes(node.clone())).await;
    let value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status().as_u16(), value)
}

/// Everything a user can read back: products, sales and audit entries.
async fn snapshot(node: &Node) -> (Value, Value, Value) {
    (
        call(node, "GET", "/api/v1/products", None).await.1,
        call(node, "GET", "/api/v1/sales", None).await.1,
        call(node, "GET", "/api/v1/audit?limit=1000", None).await.1,
    )
}

#[tokio::test]
async fn a_product_is_created_sold_and_audited() {
    // The single-device store: create, sell, stock falls, the sale and audit entries read back.
    let node = node(None).await;
    let (status, product) = call(
        &node,
        "POST",
        "/api/v1/products",
        Some(r#"{"sku":"milk-1l","name":"Milk 1 L","price_cents":129,"stock":5}"#),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    assert_eq!(product["version"], 1);

    let (status, sale) = call(
        &node,
        "POST",
        "/api/v1/sales",
        Some(r#"{"user_id":"ann","lines":[{"sku":"milk-1l","qty":2}]}"#),
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    assert_eq!(sale["status"], "accepted");
    assert_eq!(sale["total_cents"], 258);

    let (_, product) = call(&node, "GET", "/api/v1/products/milk-1l", None).await;
    assert_eq!(product["stock"], 3);
    let sale_id = sale["sale_id"].as_str().unwrap();
    let (status, read) = call(&node, "GET", &format!("/api/v1/sales/{sale_id}"), None).await;
    assert_eq!((status, &read), (200, &sale));

    let (_, entries) = call(&node, "GET", "/api/v1/audit?operation=sale", None).await;
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["event_id"], sale_id);
    assert_eq!(entries[0]["outcome"], "ok");

    let (_, health) = call(&node, "GET", "/api/v1/health", None).await;
    assert_eq!(health["role"], "master");
    assert_eq!(health["term"], 1);
    assert_eq!(health["master_id"], 1);
    let (_, status) = call(&node, "GET", "/api/v1/sync/status", None).await;
    assert_eq!(status["pending"], 0);
    // The log: this device's certificate (trusted at its first start), the product, the sale.
    assert_eq!(status["cursor"], 3);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_right_status_and_writes_nothing() {
    let node = node(None).await;
    call(
        &node,
        "POST",
        "/api/v1/products",
        Some(r#"{"sku":"milk","name":"Milk","price_cents":99,"stock":1}"#),
    )
    .await;
    let before = snapshot(&node).await;
    let long_name = "n".repeat(201);
    // (method, path, body, status, error code, field named)
    type Case<'a> = (&'a str, String, String, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "POST",
            "/api/v1/sales".into(),
            "{not json".into(),
            400,
            "bad_json",
            None,
        ),
        (
            "POST",
            "/api/v1/sales".into(),
            r#"{"user_id":"a","lines":[],"tip":1}"#.into(),
            400,
            "unknown_field",
            Some("tip"),
        ),
        (
            "POST",
            "/api/v1/sales".into(),
            r#"{"user_id":"a","lines":[{"sku":"milk","qty":-1}]}"#.into(),
            422,
            "invalid_value",
            Some("lines[0].qty"),
        ),
        (
            "POST",
            "/api/v1/sales".into(),
            r#"{"user_id":"a","lines":[]}"#.into(),
            422,
            "invalid_value",
            Some("lines"),
        ),
        (
            "POST",
            "/api/v1/sales".into(),
            r#"{"lines":[{"sku":"milk","qty":1}]}"#.into(),
            400,
            "bad_json",
            Some("user_id"),
        ),
        (
            "POST",
            "/api/v1/sales".into(),
            r#"{"user_id":"a","lines":[{"sku":"milk","qty":2}]}"#.into(),
            409,
            "out_of_stock",
            None,
        ),
        (
            "POST",
            "/api/v1/sales".into(),
            r#"{"user_id":"a","lines":[{"sku":"bread","qty":1}]}"#.into(),
            404,
            "unknown_product",
            None,
        ),
        (
            "POST",
            "/api/v1/products".into(),
            r#"{"sku":"a b","name":"x","price_cents":1}"#.into(),
            422,
            "invalid_value",
            Some("sku"),
        ),
        (
            "POST",
            "/api/v1/products".into(),
            r#"{"sku":"ab","name":"x","price_cents":-1}"#.into(),
            422,
            "invalid_value",
            Some("price_cents"),
        ),
        (
            "POST",
            "/api/v1/products".into(),
            format!(r#"{{"sku":"ab","name":"{long_name}","price_cents":1}}"#),
            422,
            "invalid_value",
            Some("name"),
        ),
        (
            "POST",
            "/api/v1/products".into(),
            r#"{"sku":"milk","name":"Milk","price_cents":1}"#.into(),
            409,
            "already_exists",
            None,
        ),
        (
            "POST",
            "/api/v1/products".into(),
            r#"{"sku":"ab","name":"x","price_cents":"1"}"#.into(),
            400,
            "bad_json",
            Some("price_cents"),
        ),
        (
            "PATCH",
            "/api/v1/products/milk".into(),
            r#"{"price_cents":5,"version":7}"#.into(),
            409,
            "stale_version",
            None,
        ),
        (
            "PATCH",
            "/api/v1/products/bread".into(),
            r#"{"price_cents":5}"#.into(),
            404,
            "unknown_product",
            None,
        ),
        (
            "PATCH",
            "/api/v1/products/milk".into(),
            "{}".into(),
            422,
            "invalid_value",
            Some("name"),
        ),
        (
            "POST",
            "/api/v1/products/milk/stock".into(),
            r#"{"delta":-5,"reason":"broken"}"#.into(),
            409,
            "out_of_stock",
            None,
        ),
        (
            "POST",
            "/api/v1/products/milk/stock".into(),
            r#"{"delta":0,"reason":"count"}"#.into(),
            422,
            "invalid_value",
            Some("delta"),
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let (got, answer) = call(&node, method, &path, Some(&body)).await;
        assert_eq!(got, status, "{method} {path} {body} -> {answer}");
        assert_eq!(answer["error"], code, "{method} {path} {body} -> {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{method} {path} {body} -> {answer}");
        }
    }
    assert_eq!(
        snapshot(&node).await,
        before,
        "refused requests wrote nothing"
    );
}

#[tokio::test]
async fn reads_that_miss_and_bad_queries_answer_json_errors() {
    let node = node(None).await;
    for (path, status, code) in [
        ("/api/v1/products/nope", 404, "not_found"),
        ("/api/v1/sales/1-99", 404, "not_found"),
        ("/api/v1/nothing-here", 404, "not_found"),
        ("/api/v1/audit?operation=dance", 422, "invalid_value"),
        ("/api/v1/audit?limit=0", 422, "invalid_value"),
        ("/api/v1/audit?since=yesterday", 422, "invalid_value"),
        ("/api/v1/sales?limit=abc", 400, "bad_query"),
    ] {
        let (got, answer) = call(&node, "GET", path, None).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{path} -> {answer}"
        );
    }
    let (status, entries) = call(
        &node,
        "GET",
        "/api/v1/audit?since=2000-01-01T00:00:00Z&operation=startup",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(entries.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_refused_with_413() {
    let node = node(None).await;
    let big = format!(
        r#"{{"sku":"a","name":"{}","price_cents":1}}"#,
        "x".repeat(1024 * 1024)
    );
    let (status, answer) = call(&node, "POST", "/api/v1/products", Some(&big)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (413, Some("payload_too_large"))
    );
}

#[tokio::test]
async fn with_a_store_key_every_call_needs_it() {
    let node = node(Some("s3cret")).await;
    let routes = api::routes(node.clone());
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Bearer s3cret2"),
    ] {
        let mut request = warp::test::request().path("/api/v1/health");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.reply(&routes).await;
        assert_eq!(response.status(), 401, "{auth:?}");
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    for auth in ["Bearer s3cret", "bearer s3cret"] {
        let response = warp::test::request()
            .path("/api/v1/health")
            .header("authorization", auth)
            .reply(&routes)
            .await;
        assert_eq!(response.status(), 200, "{auth}");
    }
}

/// The (method, path) pairs `docs/openapi.yaml` documents, read from its `paths:` block.
fn documented_operations() -> Vec<(String, String)> {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.yaml"
    ))
    .unwrap();
    let mut operations = Vec::new();
    let mut path = None;
    for line in spec.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            path = None;
            if line.starts_with("paths:") {
                path = Some(String::new());
            }
            continue;
        }
        let Some(current) = path.as_mut() else {
            continue;
        };
        if let Some(p) = line.strip_prefix("  /") {
            *current = format!("/{}", p.trim_end_matches(':'));
        } else if let Some(method) = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':'))
            && ["get", "post", "patch", "put", "delete"].contains(&method)
            && !current.is_empty()
        {
            operations.push((method.to_uppercase(), current.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    // Keeps docs/openapi.yaml true: each documented method and path reaches a handler, not the
    // router's 404/405.
    let node = node(None).await;
    let operations = documented_operations();
    assert!(
        operations.len() >= 12,
        "the spec lists too few operations: {operations:?}"
    );
    for (method, path) in operations {
        // The change feed never ends by itself: a position it refuses shows the route is served.
        let path = if path == "/changes" {
            "/changes?since=x".to_owned()
        } else {
            path
        };
        let concrete = path
            .replace("{sku}", "milk")
            .replace("{sale_id}", "1-1")
            .replace("{id}", "7");
        let body = (method != "GET").then_some("{}");
        let (status, answer) = call(&node, &method, &format!("/api/v1{concrete}"), body).await;
        let unrouted = answer["message"] == "no such route" || status == 405;
        assert!(
            !unrouted,
            "{method} {path} is documented but not served: {status} {answer}"
        );
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_behind_the_store_key() {
    // GET /metrics: role, term, the log by verdict and reason, pending, the histograms; 401
    // without the key.
    let node = node(Some("k")).await;
    let response = warp::test::request()
        .method("GET")
        .path("/metrics")
        .reply(&api::routes(node.clone()))
        .await;
    assert_eq!(response.status().as_u16(), 401);
    let authorized = |method: &str, path: &str, body: &str| {
        warp::test::request()
            .method(method)
            .path(path)
            .header("authorization", "Bearer k")
            .body(body)
    };
    let routes = api::routes(node.clone());
    let create = r#"{"sku":"tea","name":"Tea","price_cents":200,"stock":1}"#;
    assert_eq!(
        authorized("POST", "/api/v1/products", create)
            .reply(&routes)
            .await
            .status(),
        201
    );
    let sale = r#"{"user_id":"ann","lines":[{"sku":"tea","qty":5}]}"#;
    assert_eq!(
        authorized("POST", "/api/v1/sales", sale)
            .reply(&routes)
            .await
            .status(),
        409
    );
    let response = authorized("GET", "/metrics", "").reply(&routes).await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = String::from_utf8(response.body().to_vec()).unwrap();
    for line in [
        "rms_role{role=\"master\"} 1",
        "rms_role{role=\"client\"} 0",
        "rms_term 1",
        // This device's certificate (trusted at its first start) and the product.
        "rms_log_events{verdict=\"accepted\"} 2",
        "rms_pending_events 0",
        "rms_connected_devices 0",
        "# TYPE rms_push_latency_seconds histogram",
        "rms_apply_seconds_bucket{le=\"+Inf\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
}

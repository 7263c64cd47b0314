//! The change feed of issue #16 (`GET /api/v1/changes`), read as a till app reads it: F1, a
//! sale on one device until another device's feed announces the product's new stock; F2, the
//! memory of idle feed subscribers. (The issue calls them T1 and T2; T1 was already the TLS
//! handshake of issue #14.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::process::{self, Server, agent, get, post, start_node};
use crate::report::{Row, Target, median, percentile};
use crate::scenarios::{Bench, blocking};

/// How long a feed event may take before the scenario gives up.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// `host:port` of a node's loopback API URL (`http://127.0.0.1:port`).
fn address(url: &str) -> anyhow::Result<&str> {
    url.strip_prefix("http://")
        .with_context(|| format!("{url} is not a plain loopback URL"))
}

/// An open feed: the request sent and the response's headers read.
fn open_feed(url: &str) -> anyhow::Result<BufReader<TcpStream>> {
    let mut stream = TcpStream::connect(address(url)?)?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET /api/v1/changes HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200") {
        bail!("the feed answered {status:?}");
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("the feed closed before its headers ended");
        }
        if line == "\r\n" {
            return Ok(reader);
        }
    }
}

/// Reads `product` events of `sku` from the feed at `url` on a thread of its own; sends the
/// stock each one announces and when it was read, until the receiver is dropped.
fn watch_product(url: &str, sku: &str) -> anyhow::Result<mpsc::Receiver<(Instant, i64)>> {
    let mut reader = open_feed(url)?;
    let (tx, rx) = mpsc::channel();
    let sku = sku.to_owned();
    std::thread::spawn(move || {
        let mut kind = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if let Some(event) = line.strip_prefix("event:") {
                event.trim().clone_into(&mut kind);
            } else if let Some(data) = line.strip_prefix("data:")
                && kind == "product"
                && let Ok(product) = serde_json::from_str::<Value>(data.trim())
                && product["sku"] == sku.as_str()
                && let Some(stock) = product["stock"].as_i64()
                && tx.send((Instant::now(), stock)).is_err()
            {
                return;
            }
        }
    });
    Ok(rx)
}

/// A store of `devices` rms-nodes on loopback: device 1 master, the others its clients.
fn store(bench: &Bench, devices: u16) -> anyhow::Result<Vec<Server>> {
    let master = start_node(&bench.node, None, &["--device-id", "1", "--priority", "10"])?;
    let peer = master.sync_url.clone();
    let mut nodes = vec![master];
    for id in 2..=devices {
        let id = id.to_string();
        nodes.push(start_node(
            &bench.node,
            None,
            &["--device-id", &id, "--peer", &peer],
        )?);
    }
    Ok(nodes)
}

/// F1: a sale through REST on one client until the `product` event with the new stock is read
/// on another client's feed, in a store of `devices` devices (the sale is pushed to the master,
/// decided, broadcast, applied, and announced); p50 and p99 against the WebSocket echo round trip
/// of the same round. The target is for 10 devices; all of them share this machine's
/// cores, as no store's devices do.
pub async fn f1_feed_latency(bench: &Bench, devices: u16) -> anyhow::Result<Row> {
    let samples = if bench.large { 1000 } else { 300 };
    let mut row = Row::new(
        "F1",
        format!("sale on a device -> product event on another's feed, {devices} devices, p99"),
        "ms",
    );
    if devices == 10 {
        row = row.target(Target::AtMost(5.0));
    }
    let (mut p50s, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..bench.rounds {
        let mut echo = crate::scenarios::echo_rtts(samples).await?;
        let echo_p99 = percentile(&mut echo, 99.0) / 1000.0;
        let (mut times, cpu_ms) = blocking(|| feed_latencies(bench, devices, samples))?;
        cpu.push(cpu_ms);
        p50s.push(percentile(&mut times, 50.0));
        row.round(percentile(&mut times, 99.0), echo_p99);
    }
    row.extra = json!({"samples": samples, "devices": devices, "p50_ms": median(&p50s),
                       "cpu_ms_per_sale_all_devices": median(&cpu),
                       "reference": "WebSocket echo round trip on loopback, p99"});
    Ok(row)
}

/// The latencies (ms) of `samples` sales on device 2, read on device 3's feed, and the CPU time
/// (ms) all the devices spent per sale.
fn feed_latencies(bench: &Bench, devices: u16, samples: usize) -> anyhow::Result<(Vec<f64>, f64)> {
    let nodes = store(bench, devices)?;
    let agent = agent();
    let stock = 1_000_000;
    let product = json!({"sku": "f1", "name": "F1", "price_cents": 100, "stock": stock});
    post(
        &agent,
        &format!("{}/api/v1/products", nodes[0].url),
        &product,
    )?;
    process::wait_until(Duration::from_secs(60), Duration::from_millis(10), || {
        for node in &nodes {
            let found = get(&agent, &format!("{}/api/v1/products/f1", node.url));
            if found.ok().and_then(|p| p["stock"].as_i64()) != Some(stock) {
                return Ok(false);
            }
            if get(&agent, &format!("{}/api/v1/health", node.url))?["master_id"] != 1 {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    let (seller, reader) = (&nodes[1], &nodes[2]);
    let events = watch_product(&reader.url, "f1")?;
    let sale = json!({"user_id": "bench", "lines": [{"sku": "f1", "qty": 1}]});
    let cpu =
        |nodes: &[Server]| -> anyhow::Result<f64> { nodes.iter().map(Server::cpu_seconds).sum() };
    let cpu_before = cpu(&nodes)?;
    let mut times = Vec::with_capacity(samples);
    for sold in 1..=samples as i64 {
        let started = Instant::now();
        let (status, body) = post(&agent, &format!("{}/api/v1/sales", seller.url), &sale)?;
        if !(200..300).contains(&status) {
            bail!("the sale was refused: {status} {body}");
        }
        loop {
            let (at, seen) = events
                .recv_timeout(EVENT_WAIT)
                .context("no product event on the other device's feed")?;
            if seen == stock - sold {
                times.push(at.duration_since(started).as_secs_f64() * 1000.0);
                break;
            }
        }
    }
    let cpu_ms = (cpu(&nodes)? - cpu_before) / samples as f64 * 1000.0;
    Ok((times, cpu_ms))
}

/// F2: resident memory per idle feed subscriber, 500 of them on one node, against as many idle
/// keep-alive HTTP connections to another node started the same way (what any client costs),
/// in the same round.
pub async fn f2_feed_memory(bench: &Bench) -> anyhow::Result<Row> {
    const SUBSCRIBERS: usize = 500;
    let mut row = Row::new(
        "F2",
        format!("memory per idle feed subscriber, {SUBSCRIBERS} subscribers"),
        "KB",
    )
    .target(Target::AtMost(16.0));
    for _ in 0..bench.rounds {
        let (reference, _) = per_client_kb(bench, SUBSCRIBERS, idle_connection).await?;
        let (value, feeds) = per_client_kb(bench, SUBSCRIBERS, |url| {
            open_feed(url).map(BufReader::into_inner)
        })
        .await?;
        if feeds <= SUBSCRIBERS as i64 {
            bail!("only {feeds} feeds were open at the node");
        }
        row.round(value, reference);
    }
    row.extra = json!({"subscribers": SUBSCRIBERS,
                       "reference": "an idle keep-alive HTTP connection to a node"});
    Ok(row)
}

/// The growth of a fresh node's resident memory per client (KB) when `count` clients connect
/// with `connect`, after one of each kind warmed it up; and the feeds the node counted open.
async fn per_client_kb(
    bench: &Bench,
    count: usize,
    connect: impl Fn(&str) -> anyhow::Result<TcpStream>,
) -> anyhow::Result<(f64, i64)> {
    let settle = Duration::from_millis(1500);
    let node = blocking(|| start_node(&bench.node, None, &["--device-id", "1"]))?;
    let warm = blocking(|| -> anyhow::Result<_> {
        Ok((open_feed(&node.url)?, idle_connection(&node.url)?))
    })?;
    tokio::time::sleep(settle).await;
    let before = node.rss_bytes()? as f64;
    let clients = blocking(|| {
        (0..count)
            .map(|_| connect(&node.url))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    tokio::time::sleep(settle).await;
    let after = node.rss_bytes()? as f64;
    let feeds = blocking(|| -> anyhow::Result<i64> {
        let metrics = agent()
            .get(format!("{}/metrics", node.url))
            .call()?
            .body_mut()
            .read_to_string()?;
        Ok(feed_subscribers(&metrics))
    })?;
    drop((clients, warm));
    Ok(((after - before) / count as f64 / 1024.0, feeds))
}

/// An HTTP/1.1 connection that asked for `/api/v1/health` once, read the answer, and stays
/// open.
fn idle_connection(url: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(address(url)?)?;
    write!(
        stream,
        "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )?;
    let mut answer = [0u8; 4096];
    let read = stream.read(&mut answer)?;
    if !answer[..read].starts_with(b"HTTP/1.1 200") {
        bail!(
            "health answered {:?}",
            String::from_utf8_lossy(&answer[..read])
        );
    }
    Ok(stream)
}

/// `rms_feed_subscribers` from the node's metrics (-1 when absent).
fn feed_subscribers(metrics: &str) -> i64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("rms_feed_subscribers "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(-1)
}

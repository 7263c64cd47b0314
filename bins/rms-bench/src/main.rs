//! rms-bench: measures a real `rms-node` (release build) from the outside, as tills see it.
//!
//! Scenario `rest-sales`: single-node sales through REST, by 1 sequential till and by N
//! concurrent tills; sales/s and p50/p99 latency. Results go to `target/bench/summary.json` and
//! are printed as a table.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(name = "rms-bench", about = "Benchmarks a real rms-node over loopback")]
struct Args {
    /// The rms-node binary to measure.
    #[arg(long, default_value = "target/release/rms-node")]
    node: PathBuf,
    /// Sales per till.
    #[arg(long, default_value_t = 2000)]
    sales_per_till: usize,
    /// Concurrent tills in the concurrent run.
    #[arg(long, default_value_t = 8)]
    concurrent_tills: usize,
    /// Where the summary goes.
    #[arg(long, default_value = "target/bench/summary.json")]
    out: PathBuf,
}

struct Node {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(binary: &Path) -> anyhow::Result<Node> {
    start_node_with(binary, &[])
}

fn start_node_with(binary: &Path, args: &[&str]) -> anyhow::Result<Node> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("RMS_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("rms-node listening on ")
        .context("no address line")?
        .to_owned();
    Ok(Node {
        child,
        url,
        _dir: dir,
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> anyhow::Result<u16> {
    let mut response = agent.post(url).send_json(body)?;
    response.body_mut().read_to_string()?;
    Ok(response.status().as_u16())
}

/// Runs `tills` threads each selling `sales` times; returns (wall time, every latency).
fn run_tills(url: &str, tills: usize, sales: usize) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let started = Instant::now();
    let handles: Vec<_> = (0..tills)
        .map(|till| {
            let url = format!("{url}/api/v1/sales");
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let agent = agent();
                let sale = json!({"user_id": format!("till-{till}"), "lines": [{"sku": "bench", "qty": 1}]});
                let mut latencies = Vec::with_capacity(sales);
                for _ in 0..sales {
                    let t = Instant::now();
                    let status = post(&agent, &url, &sale)?;
                    latencies.push(t.elapsed());
                    if status != 201 {
                        bail!("sale answered {status}");
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(tills * sales);
    for handle in handles {
        all.extend(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a till panicked"))??,
        );
    }
    Ok((started.elapsed(), all))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn scenario(id: &str, name: &str, tills: usize, args: &Args) -> anyhow::Result<Value> {
    let node = start_node(&args.node)?;
    let agent = agent();
    let product =
        json!({"sku": "bench", "name": "Bench", "price_cents": 100, "stock": 1_000_000_000});
    let status = post(&agent, &format!("{}/api/v1/products", node.url), &product)?;
    if status != 201 {
        bail!("creating the product answered {status}");
    }
    // Warm-up: connections, statement caches, WAL file growth.
    run_tills(&node.url, tills, 50)?;
    let (wall, mut latencies) = run_tills(&node.url, tills, args.sales_per_till)?;
    latencies.sort_unstable();
    let rate = latencies.len() as f64 / wall.as_secs_f64();
    Ok(json!({
        "id": id,
        "name": name,
        "value": (rate * 10.0).round() / 10.0,
        "unit": "sales/s",
        "p50_ms": (percentile(&latencies, 50.0) * 1000.0).round() / 1000.0,
        "p99_ms": (percentile(&latencies, 99.0) * 1000.0).round() / 1000.0,
        "sales": latencies.len(),
        "tills": tills,
    }))
}

fn get(agent: &ureq::Agent, url: &str) -> anyhow::Result<Value> {
    let mut response = agent.get(url).call()?;
    Ok(serde_json::from_str(
        &response.body_mut().read_to_string()?,
    )?)
}

/// Polls `check` until it holds, at most `deadline`.
fn wait_until(
    deadline: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    while !check()? {
        if Instant::now() > until {
            bail!("timed out after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

const CLUSTER_ARGS: &[&str] = &[
    "--heartbeat-interval-ms",
    "200",
    "--master-timeout-ms",
    "1000",
];

/// A master and `clients` clients joined to it, all online.
fn start_store(binary: &Path, clients: usize) -> anyhow::Result<Vec<Node>> {
    start_store_with(binary, clients, CLUSTER_ARGS)
}

fn start_store_with(binary: &Path, clients: usize, timing: &[&str]) -> anyhow::Result<Vec<Node>> {
    let master = start_node_with(binary, &[&["--device-id", "1"], timing].concat())?;
    let mut nodes = vec![];
    let master_url = master.url.clone();
    nodes.push(master);
    for i in 0..clients {
        let id = (i + 2).to_string();
        let args = [
            &["--device-id", id.as_str(), "--peer", master_url.as_str()],
            timing,
        ]
        .concat();
        nodes.push(start_node_with(binary, &args)?);
    }
    let agent = agent();
    wait_until(Duration::from_secs(30), || {
        for node in &nodes {
            if get(&agent, &format!("{}/api/v1/health", node.url))?["master_id"] != 1 {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    Ok(nodes)
}

/// P1: a sale that empties a product on client A, until client B shows stock 0.
fn critical_propagation(args: &Args) -> anyhow::Result<Value> {
    const SAMPLES: usize = 200;
    let nodes = start_store(&args.node, 2)?;
    let agent = agent();
    let (master, a, b) = (&nodes[0].url, &nodes[1].url, &nodes[2].url);
    for i in 0..SAMPLES {
        let product = json!({"sku": format!("p{i}"), "name": "P", "price_cents": 100, "stock": 1});
        post(&agent, &format!("{master}/api/v1/products"), &product)?;
    }
    let last = format!("{b}/api/v1/products/p{}", SAMPLES - 1);
    wait_until(Duration::from_secs(30), || {
        Ok(get(&agent, &last).map(|p| p["stock"] == 1).unwrap_or(false))
    })?;
    let mut latencies = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let sale = json!({"user_id": "a", "lines": [{"sku": format!("p{i}"), "qty": 1}]});
        let url = format!("{b}/api/v1/products/p{i}");
        let started = Instant::now();
        post(&agent, &format!("{a}/api/v1/sales"), &sale)?;
        wait_until(Duration::from_secs(10), || {
            Ok(get(&agent, &url)?["stock"] == 0)
        })?;
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    Ok(json!({
        "id": "P1",
        "name": "critical sale on client A -> client B sees it",
        "value": (percentile(&latencies, 50.0) * 1000.0).round() / 1000.0,
        "unit": "ms p50",
        "p50_ms": (percentile(&latencies, 50.0) * 1000.0).round() / 1000.0,
        "p99_ms": (percentile(&latencies, 99.0) * 1000.0).round() / 1000.0,
        "samples": SAMPLES,
    }))
}

/// I1: the master's ingest of batched pushes (REST fallback) from `clients` devices at once.
fn master_ingest(
    args: &Args,
    clients: usize,
    batch: usize,
    batches: usize,
) -> anyhow::Result<Value> {
    let master = start_node_with(&args.node, &["--device-id", "1"])?;
    let setup = agent();
    let product =
        json!({"sku": "bench", "name": "Bench", "price_cents": 100, "stock": 1_000_000_000});
    post(&setup, &format!("{}/api/v1/products", master.url), &product)?;
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let url = format!("{}/api/v1/sync/push", master.url);
            std::thread::spawn(move || -> anyhow::Result<usize> {
                let agent = agent();
                let device = c + 2;
                let mut seq = 0;
                for _ in 0..batches {
                    let events: Vec<Value> = (0..batch)
                        .map(|_| {
                            seq += 1;
                            let id = format!("{device}-{seq}");
                            json!({
                                "event_id": id, "hlc": {"wall_ms": wall_ms, "counter": seq}, "user_id": "bench",
                                "term": 1, "critical": false, "status": "pending", "created_at_ms": wall_ms,
                                "payload": {"kind": "sale_recorded", "sale_id": id,
                                            "lines": [{"sku": "bench", "qty": 1, "price_cents": 100}]}
                            })
                        })
                        .collect();
                    let status = post(&agent, &url, &json!({"device_id": device, "events": events}))?;
                    if status != 200 {
                        bail!("push answered {status}");
                    }
                }
                Ok(batch * batches)
            })
        })
        .collect();
    let mut events = 0;
    for handle in handles {
        events += handle
            .join()
            .map_err(|_| anyhow::anyhow!("a client panicked"))??;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    Ok(json!({
        "id": "I1",
        "name": format!("master ingest, {clients} clients, batches of {batch}"),
        "value": rate.round(),
        "unit": "events/s",
        "events": events,
    }))
}

/// F1/F2: kill -9 of the master of a 3-device store → first write accepted by the new master, and
/// → the other client follows it. Median (min, max) of `runs` runs.
fn failover(
    args: &Args,
    heartbeat_ms: u64,
    timeout_ms: u64,
    runs: usize,
) -> anyhow::Result<Vec<Value>> {
    let (heartbeat, timeout) = (heartbeat_ms.to_string(), timeout_ms.to_string());
    let timing = [
        "--heartbeat-interval-ms",
        heartbeat.as_str(),
        "--master-timeout-ms",
        timeout.as_str(),
    ];
    let agent = agent();
    let (mut writes, mut follows) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut nodes = start_store_with(&args.node, 2, &timing)?;
        let product = json!({"sku": "f", "name": "F", "price_cents": 1, "stock": 1_000_000});
        post(
            &agent,
            &format!("{}/api/v1/products", nodes[0].url),
            &product,
        )?;
        let sale = json!({"user_id": "f", "lines": [{"sku": "f", "qty": 1}]});
        let (two, three) = (nodes[1].url.clone(), nodes[2].url.clone());
        wait_until(Duration::from_secs(30), || {
            Ok(get(&agent, &format!("{two}/api/v1/products/f"))?["stock"] == 1_000_000)
        })?;
        let _ = nodes[0].child.kill();
        let _ = nodes[0].child.wait();
        let killed = Instant::now();
        let (mut write, mut follow) = (None, None);
        while write.is_none() || follow.is_none() {
            if killed.elapsed() > Duration::from_secs(60) {
                bail!("no failover within 60 s");
            }
            if write.is_none() && get(&agent, &format!("{two}/api/v1/health"))?["role"] == "master"
            {
                let status = post(&agent, &format!("{two}/api/v1/sales"), &sale)?;
                if status == 201 {
                    write = Some(killed.elapsed());
                }
            }
            if follow.is_none() && get(&agent, &format!("{three}/api/v1/health"))?["master_id"] == 2
            {
                follow = Some(killed.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        writes.extend(write);
        follows.extend(follow);
        nodes.clear();
    }
    let summary = |id: &str, what: &str, mut samples: Vec<Duration>| {
        samples.sort_unstable();
        let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        json!({
            "id": id,
            "name": format!("{what}, timeout {timeout_ms} ms, heartbeat {heartbeat_ms} ms"),
            "value": ms(samples[samples.len() / 2]),
            "unit": "ms median",
            "min_ms": ms(samples[0]),
            "max_ms": ms(samples[samples.len() - 1]),
            "runs": samples.len(),
            "target": timeout_ms + 500,
        })
    };
    Ok(vec![
        summary("F1", "kill -9 master -> first write on new master", writes),
        summary("F2", "kill -9 master -> other client follows it", follows),
    ])
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.node.exists() {
        bail!(
            "{} does not exist; build it with cargo build --release -p rms-node",
            args.node.display()
        );
    }
    let scenarios = vec![
        scenario("R1", "REST sales, 1 sequential till", 1, &args)?,
        scenario(
            "R2",
            &format!("REST sales, {} concurrent tills", args.concurrent_tills),
            args.concurrent_tills,
            &args,
        )?,
        critical_propagation(&args)?,
        master_ingest(&args, 10, 100, 20)?,
    ];
    let mut scenarios = scenarios;
    scenarios.extend(failover(&args, 1_000, 3_000, 5)?);
    scenarios.extend(failover(&args, 100, 600, 5)?);
    println!(
        "{:<4} {:<48} {:>10} {:>10} {:>10} {:>10}",
        "id", "scenario", "value", "unit", "p50/min", "p99/max"
    );
    for s in &scenarios {
        println!(
            "{:<4} {:<48} {:>10} {:>10} {:>10} {:>10}",
            s["id"].as_str().unwrap_or(""),
            s["name"].as_str().unwrap_or(""),
            s["value"],
            s["unit"].as_str().unwrap_or(""),
            s.get("p50_ms").or(s.get("min_ms")).unwrap_or(&Value::Null),
            s.get("p99_ms").or(s.get("max_ms")).unwrap_or(&Value::Null)
        );
    }
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH
    );
    let summary = json!({ "scenarios": scenarios, "machine": machine, "date": date() });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&summary)?)?;
    println!("summary written to {}", args.out.display());
    Ok(())
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(String::new, |s| s.trim().to_owned())
}

//! The scenarios of issue #7 (S1-S7) and the till-facing REST write path (R1), each against its
//! reference in the same run, interleaved round by round.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::fleet::{self, Fleet, Kind, now_us};
use crate::process::{self, Server, agent, get, post, start_node, wait_until};
use crate::pushes::push_all;
use crate::reference;
use crate::report::{Row, Target, median, percentile};

/// What every scenario needs to know.
pub struct Bench {
    pub node: std::path::PathBuf,
    /// The rms-hq binary (H1-H4).
    pub hq: std::path::PathBuf,
    pub rounds: usize,
    pub large: bool,
    pub scratch: tempfile::TempDir,
}

/// Runs blocking work (process control, HTTP setup calls) without stalling the runtime's other
/// tasks (the simulated devices).
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// How the simulated devices link to the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// WebSocket on the master's loopback API (a tool of the machine): the floor without TLS.
    Plain,
    /// As devices link: TLS 1.3 with a certificate each, on the master's store port.
    Tls,
}

impl Link {
    fn suffix(self) -> &'static str {
        match self {
            Link::Plain => "",
            Link::Tls => ", TLS",
        }
    }
}

/// `count` simulated devices (ids from `first_id`) registered with `server`, linked by `link`.
pub(crate) async fn fleet_of(
    server: &Server,
    count: usize,
    first_id: u16,
    link: Link,
) -> anyhow::Result<Fleet> {
    match link {
        Link::Plain => Fleet::rms(&server.url, count, first_id).await,
        Link::Tls => Fleet::rms_tls(&server.url, &server.sync_url, count, first_id).await,
    }
}

/// A fresh master (device 1) with `products`, each `(sku, stock)`.
pub(crate) fn master(
    bench: &Bench,
    products: &[(String, i64)],
    args: &[&str],
) -> anyhow::Result<Server> {
    blocking(|| {
        let server = start_node(&bench.node, None, &[&["--device-id", "1"], args].concat())?;
        let agent = agent();
        for (sku, stock) in products {
            let product = json!({"sku": sku, "name": "Bench", "price_cents": 100, "stock": stock});
            let (status, body) =
                post(&agent, &format!("{}/api/v1/products", server.url), &product)?;
            if status != 201 {
                bail!("creating {sku} answered {status}: {body}");
            }
        }
        Ok(server)
    })
}

pub(crate) fn bench_product() -> Vec<(String, i64)> {
    vec![("bench".to_owned(), 1_000_000_000)]
}

/// S1: master ingest, batched pushes from `clients` devices, vs the rusqlite loop. The master
/// runs with `--eager-sync false` (issue #7's ingest path: decisions, no fan-out), unless
/// `eager`: then every decided entry is also broadcast to every client at once (the default
/// since issue #16), and the row has no target (the fan-out is S3's).
pub async fn s1_ingest(
    bench: &Bench,
    clients: usize,
    link: Link,
    eager: bool,
) -> anyhow::Result<Row> {
    const BATCH: usize = 100;
    let events = if bench.large { 200_000 } else { 60_000 };
    let batches = events / BATCH / clients;
    let total = (batches * BATCH * clients) as f64;
    let mut row = Row::new(
        "S1",
        format!(
            "master ingest, {clients} clients, batches of {BATCH}{}{}",
            link.suffix(),
            if eager { ", eager sync" } else { "" }
        ),
        "events/s",
    );
    if !eager {
        row = row.target(Target::RatioAtLeast(match link {
            Link::Plain => 0.5,
            Link::Tls => 0.6,
        }));
    }
    let (mut cpu, mut ref_cpu) = (Vec::new(), Vec::new());
    for _ in 0..bench.rounds {
        let before = process::self_cpu_seconds()?;
        let reference =
            blocking(|| reference::sqlite_loop(bench.scratch.path(), total as usize, BATCH))?;
        ref_cpu.push((process::self_cpu_seconds()? - before) / total * 1000.0);
        let eager_sync = if eager { "true" } else { "false" };
        let server = master(bench, &bench_product(), &["--eager-sync", eager_sync])?;
        let mut fleet = fleet_of(&server, clients, 100, link).await?;
        let epoch = fleet::epoch_of(&server.url).await?;
        let cpu_before = server.cpu_seconds()?;
        let wall = push_all(&mut fleet, &epoch, BATCH, batches).await?;
        cpu.push((server.cpu_seconds()? - cpu_before) / total * 1000.0);
        row.round(total / wall.as_secs_f64(), total / reference.as_secs_f64());
    }
    row.cpu_s_per_1000 = Some(median(&cpu));
    row.reference_cpu_s_per_1000 = Some(median(&ref_cpu));
    row.extra = json!({"events": total, "batch": BATCH, "synchronous": "FULL"});
    Ok(row)
}

/// Round-trip times (µs) of `samples` messages through the echo reference server.
pub(crate) async fn echo_rtts(samples: usize) -> anyhow::Result<Vec<f64>> {
    let server = blocking(|| process::start_reference("echo"))?;
    let mut fleet = Fleet::reference(&server.url, 1).await?;
    let mut rtts = Vec::with_capacity(samples);
    for _ in 0..samples {
        let sent = now_us();
        fleet.send(0, json!({"t": sent}).to_string())?;
        fleet
            .collect_until(Duration::from_secs(5), |d| d.sent_us == sent)
            .await?;
        rtts.push((now_us() - sent) as f64);
    }
    Ok(rtts)
}

/// S2: a critical sale on one client (device 0 of the fleet) until every one of `clients`
/// received its `critical_event`; p99 vs the WebSocket round-trip floor.
pub async fn s2_fanout_latency(bench: &Bench, clients: usize) -> anyhow::Result<Row> {
    let samples = if bench.large { 500 } else { 100 };
    let mut row = Row::new(
        "S2",
        format!("critical sale -> received by all {clients} clients, p99"),
        "ms",
    );
    if clients == 50 {
        row = row.target(Target::AtMost(2.0));
    }
    let (mut p50s, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..bench.rounds {
        let mut rtts = echo_rtts(samples).await?;
        let reference_p99 = percentile(&mut rtts, 99.0) / 1000.0;
        let (mut latencies, cpu_per_1000) =
            s2_samples(bench, clients, samples, Link::Plain).await?;
        cpu.push(cpu_per_1000);
        p50s.push(percentile(&mut latencies.clone(), 50.0));
        row.round(percentile(&mut latencies, 99.0), reference_p99);
    }
    row.cpu_s_per_1000 = Some(median(&cpu));
    row.extra = json!({"p50_ms": median(&p50s), "samples_per_round": samples,
                       "reference": "WebSocket echo round trip on loopback, p99"});
    Ok(row)
}

/// S2 over TLS: the same fan-out with every device linked as devices link (TLS, a certificate
/// each, on the store port), against the plaintext figure measured in the same round.
pub async fn s2_fanout_latency_tls(bench: &Bench, clients: usize) -> anyhow::Result<Row> {
    let samples = if bench.large { 500 } else { 100 };
    let mut row = Row::new(
        "S2",
        format!("critical sale -> received by all {clients} clients, p99, TLS"),
        "ms",
    )
    .target(Target::RatioAtMost(1.25));
    let (mut p50s, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..bench.rounds {
        let (mut plain, _) = s2_samples(bench, clients, samples, Link::Plain).await?;
        let (mut tls, cpu_per_1000) = s2_samples(bench, clients, samples, Link::Tls).await?;
        cpu.push(cpu_per_1000);
        p50s.push(percentile(&mut tls.clone(), 50.0));
        row.round(percentile(&mut tls, 99.0), percentile(&mut plain, 99.0));
    }
    row.cpu_s_per_1000 = Some(median(&cpu));
    row.extra = json!({"p50_ms": median(&p50s), "samples_per_round": samples,
                       "reference": "the same fan-out in plaintext (loopback API), p99"});
    Ok(row)
}

/// `samples` critical sales through a fresh master to `clients` devices linked by `link`: the
/// latency (ms) of each until the last device received it, and the master's CPU seconds per 1000.
async fn s2_samples(
    bench: &Bench,
    clients: usize,
    samples: usize,
    link: Link,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let products: Vec<(String, i64)> = (0..samples).map(|i| (format!("p{i}"), 1)).collect();
    let server = master(bench, &products, &[])?;
    let mut fleet = fleet_of(&server, clients, 100, link).await?;
    let epoch = fleet::epoch_of(&server.url).await?;
    let seller = fleet.ids[0];
    let cpu_before = server.cpu_seconds()?;
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let sent = now_us();
        let sale = fleet::sale_event(seller, i as u64 + 1, &format!("p{i}"), 1, sent);
        fleet.send(0, fleet::push(&epoch, vec![sale]))?;
        let (mut reached, mut last) = (vec![false; clients], 0);
        let mut count = 0;
        fleet
            .collect_until(Duration::from_secs(10), |d| {
                if d.kind == Kind::Critical && d.sent_us == sent && !reached[d.device] {
                    reached[d.device] = true;
                    count += 1;
                    last = d.received_us;
                }
                count == clients
            })
            .await
            .with_context(|| format!("sample {i}: {count} of {clients} clients reached"))?;
        latencies.push((last - sent) as f64 / 1000.0);
    }
    let cpu = (server.cpu_seconds()? - cpu_before) / samples as f64 * 1000.0;
    Ok((latencies, cpu))
}

/// One step of the S3 ramp: `rate` messages per second for `step`, each to be delivered to every
/// one of `clients`; returns (deliveries/s achieved, p99 latency ms, share delivered).
async fn ramp_step(
    fleet: &mut Fleet,
    clients: usize,
    rate: usize,
    step: Duration,
    send_tick: &mut dyn FnMut(&Fleet, usize, u64) -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64, f64)> {
    const TICK: Duration = Duration::from_millis(10);
    let per_tick = (rate as f64 * TICK.as_secs_f64()).ceil() as usize;
    let ticks = (step.as_secs_f64() / TICK.as_secs_f64()) as usize;
    fleet.drain();
    let started = now_us();
    let mut interval = tokio::time::interval(TICK);
    let mut latencies: Vec<f64> = Vec::with_capacity(per_tick * ticks * clients);
    let mut last = started;
    for _ in 0..ticks {
        interval.tick().await;
        send_tick(fleet, per_tick, now_us())?;
        while let Ok(d) = fleet.deliveries.try_recv() {
            if matches!(d.kind, Kind::Critical | Kind::Broadcast) && d.sent_us >= started {
                latencies.push((d.received_us - d.sent_us) as f64 / 1000.0);
                last = last.max(d.received_us);
            }
        }
    }
    let expected = per_tick * ticks * clients;
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(3);
    while latencies.len() < expected {
        match tokio::time::timeout_at(drain_until, fleet.deliveries.recv()).await {
            Ok(Some(d)) if matches!(d.kind, Kind::Critical | Kind::Broadcast) => {
                if d.sent_us >= started {
                    latencies.push((d.received_us - d.sent_us) as f64 / 1000.0);
                    last = last.max(d.received_us);
                }
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let delivered = latencies.len() as f64 / expected as f64;
    // Missing deliveries count as late: they push the p99 past any bound.
    latencies.resize(expected.max(latencies.len()), f64::INFINITY);
    let p99 = percentile(&mut latencies, 99.0);
    let seconds = (last.saturating_sub(started)) as f64 / 1e6;
    let per_second = (delivered * expected as f64) / seconds.max(step.as_secs_f64());
    Ok((per_second, p99, delivered))
}

/// The best deliveries/s of a rate ramp whose p99 stays within 100 ms: the rate grows by half
/// each step until a step fails (p99 over 100 ms, or a link dropped by the server for not keeping
/// up, which also ends the ramp: the links are gone).
async fn ramp(
    fleet: &mut Fleet,
    clients: usize,
    step: Duration,
    mut send_tick: impl FnMut(&Fleet, usize, u64) -> anyhow::Result<()>,
) -> anyhow::Result<(f64, Vec<Value>)> {
    const RATE_MAX: usize = 64_000;
    let (mut best, mut steps) = (0.0_f64, Vec::new());
    let mut rate = 250;
    while rate <= RATE_MAX {
        match ramp_step(fleet, clients, rate, step, &mut send_tick).await {
            Ok((per_second, p99, delivered)) => {
                steps.push(json!({"rate": rate, "deliveries_per_s": per_second.round(), "p99_ms": p99, "delivered": delivered}));
                if !(p99.is_finite() && p99 <= 100.0) {
                    break;
                }
                best = best.max(per_second);
            }
            Err(err) => {
                steps.push(json!({"rate": rate, "failed": err.to_string()}));
                break;
            }
        }
        rate = rate * 3 / 2;
    }
    Ok((best, steps))
}

/// S3: fan-out throughput to 50 clients: deliveries/s before p99 passes 100 ms, vs a bare
/// tokio-tungstenite broadcast server. rms's events are sales of a product at stock 0: each is
/// rejected, and a rejection is critical, so each is broadcast at once.
pub async fn s3_fanout_throughput(bench: &Bench) -> anyhow::Result<Row> {
    const CLIENTS: usize = 50;
    let step = Duration::from_millis(if bench.large { 2000 } else { 500 });
    let mut row = Row::new(
        "S3",
        format!("fan-out throughput to {CLIENTS} clients, p99 <= 100 ms"),
        "deliveries/s",
    )
    .target(Target::RatioAtLeast(0.3));
    let mut ramps = Vec::new();
    for _ in 0..bench.rounds {
        let server = blocking(|| process::start_reference("broadcast"))?;
        let mut fleet = Fleet::reference(&server.url, CLIENTS).await?;
        let (reference, ref_steps) = ramp(&mut fleet, CLIENTS, step, |fleet, count, t| {
            for _ in 0..count {
                fleet.send(0, json!({"t": t}).to_string())?;
            }
            Ok(())
        })
        .await?;
        drop(fleet);
        drop(server);

        let server = master(bench, &[("gone".to_owned(), 0)], &[])?;
        let mut fleet = Fleet::rms(&server.url, CLIENTS, 100).await?;
        let epoch = fleet::epoch_of(&server.url).await?;
        let seller = fleet.ids[0];
        let mut seq = 0_u64;
        let (value, steps) = ramp(&mut fleet, CLIENTS, step, |fleet, count, t| {
            let events = (0..count)
                .map(|_| {
                    seq += 1;
                    fleet::sale_event(seller, seq, "gone", 1, t)
                })
                .collect();
            fleet.send(0, fleet::push(&epoch, events))
        })
        .await?;
        ramps.push(json!({"reference": ref_steps, "rms": steps}));
        row.round(value, reference);
    }
    row.extra = json!({"ramps": ramps, "step_ms": step.as_millis()});
    Ok(row)
}

/// S4: catch-up of a 10 000-event backlog: push + ack from one device (one push of 1000 in
/// flight), then a fresh client node pulls and applies it; each vs the rusqlite loop on 10 000.
pub async fn s4_catch_up(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    const EVENTS: usize = 10_000;
    const BATCH: usize = 1000;
    let mut push_row =
        Row::new("S4", "catch-up of 10 000 events: push + ack", "ms").target(Target::AtMost(250.0));
    let mut pull_row = Row::new("S4", "catch-up of 10 000 events: pull + apply", "ms")
        .target(Target::AtMost(250.0));
    for _ in 0..bench.rounds {
        let reference = blocking(|| reference::sqlite_loop(bench.scratch.path(), EVENTS, BATCH))?;
        let reference_ms = reference.as_secs_f64() * 1000.0;
        let server = master(bench, &bench_product(), &[])?;
        let mut fleet = Fleet::rms(&server.url, 1, 100).await?;
        let epoch = fleet::epoch_of(&server.url).await?;
        let pushed = push_all(&mut fleet, &epoch, BATCH, EVENTS / BATCH).await?;
        push_row.round(pushed.as_secs_f64() * 1000.0, reference_ms);
        let pulled = blocking(|| pull_and_apply(bench, &server, EVENTS as u64))?;
        pull_row.round(pulled.as_secs_f64() * 1000.0, reference_ms);
    }
    Ok(vec![push_row, pull_row])
}

/// Starts a fresh client of `master` and times it from following the master to a cursor of
/// `log_head` (polled every millisecond).
fn pull_and_apply(bench: &Bench, master: &Server, log_head: u64) -> anyhow::Result<Duration> {
    let client = start_node(
        &bench.node,
        None,
        &["--device-id", "2", "--peer", &master.sync_url],
    )?;
    let agent = agent();
    let (health, status) = (
        format!("{}/api/v1/health", client.url),
        format!("{}/api/v1/sync/status", client.url),
    );
    let mut following: Option<Instant> = None;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if following.is_none() && get(&agent, &health)?["master_id"] == 1 {
            following = Some(Instant::now());
        }
        if let Some(since) = following
            && get(&agent, &status)?["cursor"].as_u64() >= Some(log_head)
        {
            return Ok(since.elapsed());
        }
        if Instant::now() > until {
            bail!("the client did not catch up within 60 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// S5: `kill -9` of the master of a three-device store until the new master accepts a write,
/// vs the configured master timeout.
pub fn s5_failover(bench: &Bench, heartbeat_ms: u64, timeout_ms: u64) -> anyhow::Result<Row> {
    let runs = if bench.large { 5 } else { 3 };
    let mut row = Row::new(
        "S5",
        format!(
            "failover: kill -9 -> first write, timeout {timeout_ms} ms, heartbeat {heartbeat_ms} ms"
        ),
        "ms",
    )
    .target(Target::AtMost(timeout_ms as f64 + 500.0));
    for _ in 0..runs {
        let taken = failover_once(bench, heartbeat_ms, timeout_ms, 3, None)?;
        row.round(taken.as_secs_f64() * 1000.0, timeout_ms as f64);
    }
    Ok(row)
}

/// S8 (issue #12): `kill -9` of the master of a four-device store, and of one client half a
/// master timeout later. When the survivors lose the master they still count that client as
/// alive, so their pre-vote waits for its answer until the round's deadline
/// (`min(4 heartbeats, timeout)`): the slowest failover the pre-vote allows, vs the configured
/// master timeout.
pub fn s8_failover_two_dead(
    bench: &Bench,
    heartbeat_ms: u64,
    timeout_ms: u64,
) -> anyhow::Result<Row> {
    let runs = if bench.large { 5 } else { 3 };
    let pre_vote_ms = (4 * heartbeat_ms).min(timeout_ms);
    let mut row = Row::new(
        "S8",
        format!("failover, a client dies too: kill -9 -> first write, timeout {timeout_ms} ms"),
        "ms",
    )
    .target(Target::AtMost((timeout_ms + pre_vote_ms) as f64 + 500.0));
    for _ in 0..runs {
        let taken = failover_once(bench, heartbeat_ms, timeout_ms, 4, Some(timeout_ms / 2))?;
        row.round(taken.as_secs_f64() * 1000.0, timeout_ms as f64);
    }
    Ok(row)
}

/// A store of `devices` (device 1 master), then `kill -9` of the master, and of the last device
/// `then_kill_last_after_ms` later; the time from the first kill until device 2 leads and
/// accepts a sale.
fn failover_once(
    bench: &Bench,
    heartbeat_ms: u64,
    timeout_ms: u64,
    devices: usize,
    then_kill_last_after_ms: Option<u64>,
) -> anyhow::Result<Duration> {
    let (heartbeat, timeout) = (heartbeat_ms.to_string(), timeout_ms.to_string());
    let timing = [
        "--heartbeat-interval-ms",
        &heartbeat,
        "--master-timeout-ms",
        &timeout,
    ];
    let mut one = start_node(
        &bench.node,
        None,
        &[&["--device-id", "1"], &timing[..]].concat(),
    )?;
    let peer = one.sync_url.clone();
    let mut others: Vec<Server> = (2..=devices)
        .map(|id| {
            let id = id.to_string();
            start_node(
                &bench.node,
                None,
                &[&["--device-id", id.as_str(), "--peer", &peer], &timing[..]].concat(),
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let agent = agent();
    let product = json!({"sku": "f", "name": "F", "price_cents": 1, "stock": 1_000_000});
    post(&agent, &format!("{}/api/v1/products", one.url), &product)?;
    let two = others[0].url.clone();
    wait_until(Duration::from_secs(30), Duration::from_millis(5), || {
        let on_two = get(&agent, &format!("{two}/api/v1/products/f"))?["stock"] == 1_000_000;
        let mut followed = true;
        for other in &others {
            followed &= get(&agent, &format!("{}/api/v1/health", other.url))?["master_id"] == 1;
        }
        Ok(on_two && followed)
    })?;
    let sale = json!({"user_id": "f", "lines": [{"sku": "f", "qty": 1}]});
    let _ = one.child.kill();
    let killed = Instant::now();
    let _ = one.child.wait();
    let mut last = then_kill_last_after_ms.and_then(|after| {
        let last = others.pop()?;
        Some((last, killed + Duration::from_millis(after)))
    });
    loop {
        if last.as_ref().is_some_and(|(_, at)| Instant::now() >= *at)
            && let Some((mut server, _)) = last.take()
        {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("no failover within 60 s");
        }
        if get(&agent, &format!("{two}/api/v1/health"))?["role"] == "master"
            && post(&agent, &format!("{two}/api/v1/sales"), &sale)?.0 == 201
        {
            return Ok(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// S6: resident memory of an idle master, and per idle connected client (registered, heartbeating
/// every second), vs a bare tokio-tungstenite server holding the same connections.
pub async fn s6_memory(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    const COUNTS: [usize; 2] = [100, 1000];
    let mut idle = Row::new("S6", "memory: RSS of an idle node, no clients", "MB");
    let mut per: BTreeMap<usize, Row> = COUNTS
        .iter()
        .map(|n| {
            let row = Row::new(
                "S6",
                format!("memory per idle connected client, {n} clients"),
                "KB",
            )
            .target(Target::AtMost(20.0));
            (*n, row)
        })
        .collect();
    let settle = Duration::from_millis(1500);
    for _ in 0..bench.rounds {
        let reference = blocking(|| process::start_reference("broadcast"))?;
        tokio::time::sleep(settle).await;
        let ref_idle = reference.rss_bytes()? as f64;
        let mut ref_per = BTreeMap::new();
        let mut fleets = Vec::new();
        let mut connected = 0;
        for n in COUNTS {
            fleets.push(Fleet::reference(&reference.url, n - connected).await?);
            connected = n;
            tokio::time::sleep(settle).await;
            ref_per.insert(
                n,
                (reference.rss_bytes()? as f64 - ref_idle) / n as f64 / 1024.0,
            );
        }
        drop(fleets);
        drop(reference);

        let server = master(bench, &bench_product(), &[])?;
        tokio::time::sleep(settle).await;
        let rms_idle = server.rss_bytes()? as f64;
        idle.round(rms_idle / 1e6, ref_idle / 1e6);
        let mut fleets = Vec::new();
        let mut connected = 0;
        for n in COUNTS {
            fleets.push(Fleet::rms(&server.url, n - connected, 100 + connected as u16).await?);
            connected = n;
            tokio::time::sleep(settle).await;
            let value = (server.rss_bytes()? as f64 - rms_idle) / n as f64 / 1024.0;
            if let Some(row) = per.get_mut(&n) {
                row.round(value, ref_per[&n]);
            }
        }
    }
    let mut rows = vec![idle];
    rows.extend(per.into_values());
    Ok(rows)
}

/// S6 over TLS: memory per idle client linked as devices link (TLS, a certificate each, on
/// the store port), against the same count linked in plaintext, in the same round.
pub async fn s6_memory_tls(bench: &Bench) -> anyhow::Result<Row> {
    const CLIENTS: usize = 1000;
    let mut row = Row::new(
        "S6",
        format!("memory per idle connected client, {CLIENTS} clients, TLS"),
        "KB",
    )
    .target(Target::AtMost(40.0));
    let settle = Duration::from_millis(1500);
    for _ in 0..bench.rounds {
        let mut per = BTreeMap::new();
        for link in [Link::Plain, Link::Tls] {
            let server = master(bench, &bench_product(), &[])?;
            tokio::time::sleep(settle).await;
            let idle = server.rss_bytes()? as f64;
            let fleet = fleet_of(&server, CLIENTS, 100, link).await?;
            tokio::time::sleep(settle).await;
            let value = (server.rss_bytes()? as f64 - idle) / CLIENTS as f64 / 1024.0;
            per.insert(link == Link::Tls, value);
            drop(fleet);
        }
        row.round(per[&true], per[&false]);
    }
    row.extra = json!({"reference": "the same clients in plaintext (loopback API)"});
    Ok(row)
}

/// S7: cold start of a node whose database holds 100 000 events, until it answers a request, vs
/// opening that database and `PRAGMA quick_check`.
pub async fn s7_cold_start(bench: &Bench) -> anyhow::Result<Row> {
    const EVENTS: usize = 100_000;
    let mut row = Row::new(
        "S7",
        "cold start with 100 000 events -> first request served",
        "ms",
    )
    .target(Target::AtMost(150.0));
    let mut server = master(bench, &bench_product(), &[])?;
    let mut fleet = Fleet::rms(&server.url, 1, 100).await?;
    let epoch = fleet::epoch_of(&server.url).await?;
    push_all(&mut fleet, &epoch, 1000, EVENTS / 1000).await?;
    drop(fleet);
    blocking(|| server.terminate())?;
    let dir = server
        .data_dir
        .take()
        .context("the master's data directory")?;
    drop(server);
    let db = dir.path().join("rms.db");
    let mut dir = Some(dir);
    for _ in 0..bench.rounds {
        let reference = blocking(|| reference::open_and_check(&db))?;
        let (taken, back) = blocking(|| cold_start(&bench.node, dir.take()))?;
        dir = Some(back);
        row.round(
            taken.as_secs_f64() * 1000.0,
            reference.as_secs_f64() * 1000.0,
        );
    }
    row.extra =
        json!({"events": EVENTS, "database_bytes": std::fs::metadata(&db).map(|m| m.len()).ok()});
    Ok(row)
}

/// Starts a node on `dir` and times spawn → first `GET /health` answered; stops it cleanly and
/// hands the directory back.
fn cold_start(
    binary: &Path,
    dir: Option<tempfile::TempDir>,
) -> anyhow::Result<(Duration, tempfile::TempDir)> {
    let started = Instant::now();
    let mut server = start_node(binary, dir, &["--device-id", "1"])?;
    let status = get(&agent(), &format!("{}/api/v1/health", server.url))?;
    let taken = started.elapsed();
    if status["status"] != "ok" {
        bail!("health answered {status}");
    }
    server.terminate()?;
    let dir = server.data_dir.take().context("the data directory")?;
    Ok((taken, dir))
}

/// R1: sales through REST on one node from `tills` concurrent tills, vs the rusqlite loop writing
/// one transaction per event (what a sale must cost at least: one synchronous commit).
pub fn r1_rest_sales(bench: &Bench, tills: usize) -> anyhow::Result<Row> {
    let sales = if bench.large { 5000 } else { 1000 };
    let mut row = Row::new(
        "R1",
        format!("REST sales on the master, {tills} concurrent tills"),
        "sales/s",
    );
    let mut cpu = Vec::new();
    for _ in 0..bench.rounds {
        let reference = reference::sqlite_loop(bench.scratch.path(), sales * tills, 1)?;
        let server = start_node(&bench.node, None, &["--device-id", "1"])?;
        let agent = agent();
        let product =
            json!({"sku": "bench", "name": "Bench", "price_cents": 100, "stock": 1_000_000_000});
        post(&agent, &format!("{}/api/v1/products", server.url), &product)?;
        let cpu_before = server.cpu_seconds()?;
        let wall = run_tills(&server.url, tills, sales)?;
        let total = (sales * tills) as f64;
        cpu.push((server.cpu_seconds()? - cpu_before) / total * 1000.0);
        row.round(total / wall.as_secs_f64(), total / reference.as_secs_f64());
    }
    row.cpu_s_per_1000 = Some(median(&cpu));
    Ok(row)
}

fn run_tills(url: &str, tills: usize, sales: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let handles: Vec<_> = (0..tills)
        .map(|till| {
            let url = format!("{url}/api/v1/sales");
            std::thread::spawn(move || -> anyhow::Result<()> {
                let agent = agent();
                let sale = json!({"user_id": format!("till-{till}"), "lines": [{"sku": "bench", "qty": 1}]});
                for _ in 0..sales {
                    let (status, body) = post(&agent, &url, &sale)?;
                    if status != 201 {
                        bail!("a sale answered {status}: {body}");
                    }
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("a till panicked"))??;
    }
    Ok(started.elapsed())
}

//! rms-bench: measures real `rms-node` processes (release build) over loopback against references
//! measured in the same run, interleaved round by round (issue #7). Simulated devices speak the
//! sync protocol over WebSocket from this process; tills use REST. The summary goes to
//! `target/bench/summary.json` and is printed as a table.
//!
//! `rms-bench reference-server broadcast|echo` is the bare tokio-tungstenite server the fan-out
//! and memory scenarios compare with; the harness starts it as a process of its own.

mod feed;
mod fleet;
mod hq;
mod journal;
mod process;
mod pushes;
mod reference;
mod report;
mod scenarios;
mod tls;

use std::path::PathBuf;

use anyhow::bail;
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::report::Row;
use crate::scenarios::{Bench, Link};

#[derive(Debug, Parser)]
#[command(
    name = "rms-bench",
    about = "Benchmarks real rms-node processes over loopback"
)]
struct Args {
    /// The rms-node binary to measure.
    #[arg(long, default_value = "target/release/rms-node")]
    node: PathBuf,
    /// The rms-hq binary to measure (H1-H4; PostgreSQL's server must be installed).
    #[arg(long, default_value = "target/release/rms-hq")]
    hq: PathBuf,
    /// Rounds of (reference, rms) per scenario.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Larger runs: more events, samples and failover runs, the default failover timing too.
    #[arg(long)]
    large: bool,
    /// Only the scenarios whose id is one of these (S1, S2, ..., S8, R1, T1, H1, ..., H4, F1, F2, J1, J2); all
    /// by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the summary goes.
    #[arg(long, default_value = "target/bench/summary.json")]
    out: PathBuf,
    #[command(subcommand)]
    command: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// A bare tokio-tungstenite server (`broadcast` or `echo`) until killed.
    ReferenceServer { mode: String },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Mode::ReferenceServer { mode }) = &args.command {
        return reference::serve(mode);
    }
    if !args.node.exists() {
        bail!(
            "{} does not exist; build it with cargo build --release -p rms-node",
            args.node.display()
        );
    }
    let bench = Bench {
        node: args.node.clone(),
        hq: args.hq.clone(),
        rounds: args.rounds.max(1),
        large: args.large,
        scratch: tempfile::tempdir()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rows = runtime.block_on(run(&bench, &args.only))?;
    report::print_table(&rows);
    let machine = format!(
        "{} cores, {}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH,
        cpu_model()
    );
    let summary = json!({
        "scenarios": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "machine": machine,
        "date": date(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&summary)?)?;
    println!("summary written to {}", args.out.display());
    Ok(())
}

async fn run(bench: &Bench, only: &[String]) -> anyhow::Result<Vec<Row>> {
    let wanted = |id: &str| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(id));
    let mut rows = Vec::new();
    if wanted("T1") {
        rows.push(tls::t1_handshake(bench).await?);
    }
    if wanted("S1") {
        for clients in [10, 50] {
            rows.push(scenarios::s1_ingest(bench, clients, Link::Plain, false).await?);
        }
        rows.push(scenarios::s1_ingest(bench, 50, Link::Tls, false).await?);
        rows.push(scenarios::s1_ingest(bench, 50, Link::Plain, true).await?);
    }
    // Also alone, as `--only S1-signed`.
    if wanted("S1") || wanted("S1-signed") {
        rows.push(journal::s1_signed(bench).await?);
    }
    if wanted("S2") {
        for clients in [10, 50, 200] {
            rows.push(scenarios::s2_fanout_latency(bench, clients).await?);
        }
        rows.push(scenarios::s2_fanout_latency_tls(bench, 50).await?);
    }
    if wanted("S3") {
        rows.push(scenarios::s3_fanout_throughput(bench).await?);
    }
    if wanted("S4") {
        rows.extend(scenarios::s4_catch_up(bench).await?);
    }
    if wanted("S5") {
        let timing = if bench.large {
            vec![(100, 600), (1000, 3000)]
        } else {
            vec![(100, 600)]
        };
        for (heartbeat_ms, timeout_ms) in timing {
            rows.push(tokio::task::block_in_place(|| {
                scenarios::s5_failover(bench, heartbeat_ms, timeout_ms)
            })?);
        }
    }
    if wanted("S8") {
        rows.push(tokio::task::block_in_place(|| {
            scenarios::s8_failover_two_dead(bench, 100, 600)
        })?);
    }
    if wanted("S6") {
        rows.extend(scenarios::s6_memory(bench).await?);
        rows.push(scenarios::s6_memory_tls(bench).await?);
    }
    if wanted("S7") {
        rows.push(scenarios::s7_cold_start(bench).await?);
    }
    if wanted("H1") {
        rows.push(hq::h1_ingest(bench).await?);
    }
    if wanted("H2") {
        rows.push(hq::h2_backlog(bench).await?);
    }
    if wanted("H3") {
        rows.push(hq::h3_visible(bench).await?);
    }
    if wanted("H4") {
        rows.push(hq::h4_price(bench).await?);
    }
    if wanted("F1") {
        for devices in [3, 10] {
            rows.push(feed::f1_feed_latency(bench, devices).await?);
        }
    }
    if wanted("F2") {
        rows.push(feed::f2_feed_memory(bench).await?);
    }
    if wanted("J1") {
        rows.push(journal::j1_verify(bench)?);
    }
    if wanted("J2") {
        rows.push(journal::j2_log_chain(bench)?);
    }
    if wanted("R1") {
        rows.push(tokio::task::block_in_place(|| {
            scenarios::r1_rest_sales(bench, 8)
        })?);
    }
    Ok(rows)
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%MZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(String::new, |s| s.trim().to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_default()
}

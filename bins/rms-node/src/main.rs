//! rms-node: glue. Reads the configuration, sets up logging, opens the node, serves until SIGINT or
//! SIGTERM, then stops accepting, lets in-flight writes finish and exits 0.

mod commands;
mod config;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rms_transport::{Clock, Node, NodeConfig};

use crate::config::{Cli, Config};

/// How long in-flight requests get to finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    init_logging();
    let mut cli = Cli::parse();
    if let Some(command) = cli.command.take() {
        return match commands::run(command) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("rms-node: {err:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let result = Config::load(cli).and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(run(config))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err:#}");
            eprintln!("rms-node: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `RMS_LOG` wins over `RUST_LOG`; the default is `info`.
fn init_logging() {
    let filter = std::env::var("RMS_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    env_logger::Builder::new()
        .parse_filters(&filter)
        .format_timestamp_millis()
        .init();
}

async fn run(config: Config) -> anyhow::Result<()> {
    // Watch the stop signals before anything else: a SIGTERM that comes the moment the address is
    // printed (or while the store opens) must stop the node cleanly, not kill it.
    let stop = StopSignals::watch()?;
    let listener = rms_transport::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{local_addr}"));
    let node = Node::start(NodeConfig {
        device_id: config.device_id,
        name: config.name.clone(),
        advertise,
        priority: config.priority,
        data_dir: Some(config.data_dir.clone()),
        peers: config.peers.clone(),
        store_key: config.store_key.clone(),
        sync_interval_ms: config.sync_interval_ms,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
        master_timeout_ms: config.master_timeout_ms,
        reclaim: config.reclaim,
        sync_over_rest: config.sync_transport == config::SyncTransport::Rest,
        clock: Clock {
            offset_ms: clock_offset_ms()?,
        },
    })
    .await
    .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;

    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("rms-node listening on http://{local_addr}");
    log::info!(
        "device {} listening on http://{local_addr}, data in {}",
        config.device_id,
        config.data_dir.display()
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rms_transport::serve(listener, node.clone(), async move {
        let _ = stop_rx.await;
    }));
    let signal = stop.next().await;
    log::info!("{signal} received: no new connections; finishing in-flight requests");
    let _ = stop_tx.send(());
    if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
        log::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    node.shutdown()
        .await
        .context("cannot record the shutdown")?;
    log::info!("stopped cleanly");
    Ok(())
}

/// `RMS_CLOCK_OFFSET_MS` shifts this node's wall clock (clock skew tests).
fn clock_offset_ms() -> anyhow::Result<i64> {
    match std::env::var("RMS_CLOCK_OFFSET_MS") {
        Ok(text) => text
            .trim()
            .parse()
            .with_context(|| format!("RMS_CLOCK_OFFSET_MS={text:?} is not an integer")),
        Err(_) => Ok(0),
    }
}

/// SIGTERM and SIGINT, watched from the moment of [`StopSignals::watch`] (a signal that comes
/// before [`StopSignals::next`] is awaited is not lost).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn watch() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn next(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

//! rms-node: glue. Reads the configuration, sets up logging, opens the node, serves until SIGINT or
//! SIGTERM, then stops accepting, lets in-flight writes finish and exits 0.

mod commands;
mod config;
mod journal;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rms_transport::hq::{HeadOffice, UplinkLimits};
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
        // Once, on stderr (where the log goes too: under systemd, the journal).
        Err(err) => {
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
    let store_listener = rms_transport::bind(config.sync_listen)
        .with_context(|| format!("cannot open the store port on {}", config.sync_listen))?;
    let store_addr = store_listener
        .local_addr()
        .context("cannot read the store port's address")?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| format!("https://{store_addr}"));
    let node = Node::start(NodeConfig {
        device_id: config.device_id,
        name: config.name.clone(),
        advertise,
        priority: config.priority,
        data_dir: Some(config.data_dir.clone()),
        peers: config.peers.clone(),
        store_key: config.store_key.clone(),
        store_key_window_ms: config
            .store_key_window_hours
            .map(|hours| hours.saturating_mul(3_600_000)),
        sync_interval_ms: config.sync_interval_ms,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
        master_timeout_ms: config.master_timeout_ms,
        reclaim: config.reclaim,
        log_recheck_interval_ms: config.log_recheck_interval_ms,
        eager_sync: config.eager_sync,
        sync_over_rest: config.sync_transport == config::SyncTransport::Rest,
        clock: Clock {
            offset_ms: clock_offset_ms()?,
        },
        head_office: match &config.head_office {
            Some(hq) => Some(
                HeadOffice::new(&hq.url, hq.token.clone(), hq.fingerprint, hq.ca.as_deref())
                    .context("head office")?,
            ),
            None => None,
        },
        uplink_limits: UplinkLimits::default(),
    })
    .await
    .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;

    // Tests and scripts read these lines to learn the ports when listening on port 0; the
    // store port's first, so that "listening on" means both are open.
    let scheme = if local_addr.ip().is_loopback() {
        "http"
    } else {
        "https"
    };
    println!("rms-node store port on https://{store_addr}");
    println!("rms-node listening on {scheme}://{local_addr}");
    log::info!(
        "device {} ({}) listening on {scheme}://{local_addr}, store port https://{store_addr}, \
         data in {}",
        config.device_id,
        node.identity().fingerprint(),
        config.data_dir.display()
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let api = rms_transport::serve(listener, node.clone(), stopped(stop_rx.clone()))
        .context("cannot serve the API over HTTPS")?;
    let store_port = rms_transport::serve_store(store_listener, node.clone(), stopped(stop_rx))
        .context("cannot serve the store port")?;
    let servers = tokio::spawn(async move {
        tokio::join!(api, store_port);
    });
    let signal = stop.next().await;
    log::info!("{signal} received: no new connections; finishing in-flight requests");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, servers).await.is_err() {
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

//! Configuration: flags, `RMS_*` environment variables and a TOML file, merged with the precedence
//! flag > environment > file > default (clap applies flag > environment; this module adds the file
//! and the defaults).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;
use rms_domain::DeviceId;
use serde::Deserialize;

/// rms-node: one device of an rms store. With no arguments it is a complete single-device store:
/// device 1, master, listening on 127.0.0.1:7878, data in ./rms-data/.
#[derive(Debug, Parser)]
#[command(
    name = "rms-node",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Every setting is also an RMS_* environment variable (shown with each flag) and a \
                  key of the --config file. Precedence: flag > environment > file > default."
)]
pub struct Cli {
    /// Without a command, rms-node runs a node.
    #[command(subcommand)]
    pub command: Option<crate::commands::Command>,
    /// TOML file with any of the settings below (keys in snake_case, e.g. device_id = 2).
    #[arg(long, env = "RMS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This device's id, 1..=65534, unique in the store [default: 1] (65535 is head office's).
    #[arg(long, env = "RMS_DEVICE_ID", value_parser = clap::value_parser!(u16).range(1..65535))]
    pub device_id: Option<u16>,
    /// A name for people [default: device-<id>].
    #[arg(long, env = "RMS_NAME")]
    pub name: Option<String>,
    /// Address of the API for the apps of this machine [default: 127.0.0.1:7878]. Plain HTTP on
    /// loopback; HTTPS (and a store key) on any other address. Port 0 picks a free port.
    #[arg(long, env = "RMS_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of the store port, where devices link to each other over TLS with their
    /// certificates [default: the --listen address with port 7879, or port 0 when --listen has
    /// port 0].
    #[arg(long, env = "RMS_SYNC_LISTEN", value_name = "ADDR")]
    pub sync_listen: Option<SocketAddr>,
    /// URL other devices use to reach this device's store port [default: https://<store port
    /// address>].
    #[arg(long, env = "RMS_ADVERTISE", value_name = "URL")]
    pub advertise: Option<String>,
    /// Where the database lives [default: ./rms-data].
    #[arg(long, env = "RMS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Another node of the store (repeatable; in the environment, comma-separated).
    #[arg(
        long = "peer",
        env = "RMS_PEERS",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,
    /// Election priority: higher wins, then the lower device id [default: 0].
    #[arg(long, env = "RMS_PRIORITY", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Shared secret of the store: every API request must carry `Authorization: Bearer <key>`,
    /// and during the upgrade window a device that proves it is trusted on first use.
    #[arg(long, env = "RMS_STORE_KEY", hide_env_values = true)]
    pub store_key: Option<String>,
    /// Open the store-key window for this many hours from this start (0 closes it). Without it,
    /// a database made by the store-key release opens the window for 24 hours (the upgrade)
    /// and a new device keeps it closed.
    #[arg(long, env = "RMS_STORE_KEY_WINDOW_HOURS", value_name = "HOURS")]
    pub store_key_window_hours: Option<u64>,
    /// Periodic sync interval [default: 30000].
    #[arg(long, env = "RMS_SYNC_INTERVAL_MS", value_name = "MS")]
    pub sync_interval_ms: Option<u64>,
    /// Heartbeat interval [default: 1000].
    #[arg(long, env = "RMS_HEARTBEAT_INTERVAL_MS", value_name = "MS")]
    pub heartbeat_interval_ms: Option<u64>,
    /// The master counts as failed after this long without a heartbeat [default: 3000].
    #[arg(long, env = "RMS_MASTER_TIMEOUT_MS", value_name = "MS")]
    pub master_timeout_ms: Option<u64>,
    /// Take the master role back after catching up, when this device outranks the master.
    #[arg(long, env = "RMS_RECLAIM", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub reclaim: Option<bool>,
    /// How often a running node hashes its copy of the master log again from the start, to
    /// notice a change made to its file while it runs [default: 3600000].
    #[arg(long, env = "RMS_LOG_RECHECK_INTERVAL_MS", value_name = "MS")]
    pub log_recheck_interval_ms: Option<u64>,
    /// Push each sale to the master as it is made, and broadcast each decided entry at once;
    /// `false` syncs every sync interval, and only critical events at once [default: true].
    #[arg(long, env = "RMS_EAGER_SYNC", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub eager_sync: Option<bool>,
    /// How this device syncs with its peers: `websocket`, or `rest` for a device that cannot hold
    /// a WebSocket [default: websocket].
    #[arg(long, env = "RMS_SYNC_TRANSPORT", value_name = "websocket|rest")]
    pub sync_transport: Option<SyncTransport>,
    /// Head office (`rms-hq`): while this device is master, it sends the store's log there and
    /// logs the catalogue changes it gets (`https://`; `http://` only on this machine).
    #[arg(long, env = "RMS_HQ_URL", value_name = "URL")]
    pub hq_url: Option<String>,
    /// The store's token, from `rms-hq stores add`.
    #[arg(long, env = "RMS_HQ_TOKEN", hide_env_values = true)]
    pub hq_token: Option<String>,
    /// Head office's certificate, pinned by its SHA-256 fingerprint (a private CA or a
    /// self-signed certificate) instead of the system's roots.
    #[arg(long, env = "RMS_HQ_FINGERPRINT", value_name = "SHA256")]
    pub hq_fingerprint: Option<String>,
    /// Root certificates (PEM) to check head office's certificate with, instead of the system's.
    #[arg(long, env = "RMS_HQ_CA", value_name = "FILE")]
    pub hq_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SyncTransport {
    Websocket,
    Rest,
}

/// The same settings in a TOML file. Unknown keys are refused, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub device_id: Option<u16>,
    pub name: Option<String>,
    pub listen: Option<SocketAddr>,
    pub sync_listen: Option<SocketAddr>,
    pub advertise: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub peers: Option<Vec<String>>,
    pub priority: Option<i32>,
    pub store_key: Option<String>,
    pub store_key_window_hours: Option<u64>,
    pub sync_interval_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub master_timeout_ms: Option<u64>,
    pub reclaim: Option<bool>,
    pub log_recheck_interval_ms: Option<u64>,
    pub eager_sync: Option<bool>,
    pub sync_transport: Option<SyncTransport>,
    pub hq_url: Option<String>,
    pub hq_token: Option<String>,
    pub hq_fingerprint: Option<String>,
    pub hq_ca: Option<PathBuf>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The store port's default port (with the API's address).
pub const DEFAULT_SYNC_PORT: u16 = 7879;

pub const DEFAULT_DATA_DIR: &str = "rms-data";
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 30_000;
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_MASTER_TIMEOUT_MS: u64 = 3_000;
pub const DEFAULT_LOG_RECHECK_INTERVAL_MS: u64 = 3_600_000;
/// Rechecks closer than this would hash a large log back to back.
pub const LOG_RECHECK_INTERVAL_MS_MIN: u64 = 1_000;

/// The settings in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub device_id: DeviceId,
    pub name: String,
    pub listen: SocketAddr,
    pub sync_listen: SocketAddr,
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    pub peers: Vec<String>,
    pub priority: i32,
    pub store_key: Option<String>,
    pub store_key_window_hours: Option<u64>,
    pub sync_interval_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub master_timeout_ms: u64,
    pub reclaim: bool,
    pub log_recheck_interval_ms: u64,
    pub eager_sync: bool,
    pub sync_transport: SyncTransport,
    pub head_office: Option<HeadOfficeConfig>,
}

/// Where head office is, and how this store proves itself and checks head office.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadOfficeConfig {
    pub url: String,
    pub token: String,
    pub fingerprint: Option<rms_domain::Fingerprint>,
    pub ca: Option<PathBuf>,
}

fn head_office(
    url: Option<String>,
    token: Option<String>,
    fingerprint: Option<String>,
    ca: Option<PathBuf>,
) -> anyhow::Result<Option<HeadOfficeConfig>> {
    let url = url.filter(|u| !u.is_empty());
    let token = token.filter(|t| !t.is_empty());
    match (url, token) {
        (None, None) => {
            if fingerprint.is_some() || ca.is_some() {
                bail!("hq_fingerprint and hq_ca need hq_url");
            }
            Ok(None)
        }
        (Some(url), Some(token)) => Ok(Some(HeadOfficeConfig {
            url,
            token,
            fingerprint: fingerprint
                .map(|f| {
                    f.parse()
                        .context("hq_fingerprint is not a SHA-256 fingerprint")
                })
                .transpose()?,
            ca,
        })),
        (Some(_), None) => bail!("hq_url needs hq_token (from `rms-hq stores add`)"),
        (None, Some(_)) => bail!("hq_token needs hq_url"),
    }
}

impl Config {
    pub fn load(cli: Cli) -> anyhow::Result<Config> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::merge(cli, file)
    }

    fn merge(cli: Cli, file: FileConfig) -> anyhow::Result<Config> {
        let device_id = cli.device_id.or(file.device_id).unwrap_or(1);
        let device_id = DeviceId::new(device_id)
            .filter(|id| !id.is_head_office())
            .context("device_id must be in 1..=65534 (65535 is head office's)")?;
        let default_listen: SocketAddr =
            DEFAULT_LISTEN.parse().context("default listen address")?;
        let peers = if cli.peers.is_empty() {
            file.peers.unwrap_or_default()
        } else {
            cli.peers
        };
        let listen = cli.listen.or(file.listen).unwrap_or(default_listen);
        let default_sync = SocketAddr::new(
            listen.ip(),
            if listen.port() == 0 {
                0
            } else {
                DEFAULT_SYNC_PORT
            },
        );
        let config = Config {
            device_id,
            name: cli
                .name
                .or(file.name)
                .unwrap_or_else(|| format!("device-{device_id}")),
            listen,
            sync_listen: cli.sync_listen.or(file.sync_listen).unwrap_or(default_sync),
            advertise: cli.advertise.or(file.advertise),
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            peers: peers.into_iter().filter(|p| !p.trim().is_empty()).collect(),
            priority: cli.priority.or(file.priority).unwrap_or(0),
            store_key: cli.store_key.or(file.store_key).filter(|k| !k.is_empty()),
            store_key_window_hours: cli.store_key_window_hours.or(file.store_key_window_hours),
            sync_interval_ms: cli
                .sync_interval_ms
                .or(file.sync_interval_ms)
                .unwrap_or(DEFAULT_SYNC_INTERVAL_MS),
            heartbeat_interval_ms: cli
                .heartbeat_interval_ms
                .or(file.heartbeat_interval_ms)
                .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_MS),
            master_timeout_ms: cli
                .master_timeout_ms
                .or(file.master_timeout_ms)
                .unwrap_or(DEFAULT_MASTER_TIMEOUT_MS),
            reclaim: cli.reclaim.or(file.reclaim).unwrap_or(false),
            log_recheck_interval_ms: cli
                .log_recheck_interval_ms
                .or(file.log_recheck_interval_ms)
                .unwrap_or(DEFAULT_LOG_RECHECK_INTERVAL_MS),
            eager_sync: cli.eager_sync.or(file.eager_sync).unwrap_or(true),
            sync_transport: cli
                .sync_transport
                .or(file.sync_transport)
                .unwrap_or(SyncTransport::Websocket),
            head_office: head_office(
                cli.hq_url.or(file.hq_url),
                cli.hq_token.or(file.hq_token),
                cli.hq_fingerprint.or(file.hq_fingerprint),
                cli.hq_ca.or(file.hq_ca),
            )?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.name.trim().is_empty() || self.name.chars().count() > rms_domain::NAME_CHARS_MAX {
            bail!(
                "name must be 1 to {} characters",
                rms_domain::NAME_CHARS_MAX
            );
        }
        for (key, value) in [
            ("sync_interval_ms", self.sync_interval_ms),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("master_timeout_ms", self.master_timeout_ms),
        ] {
            if value == 0 {
                bail!("{key} must be at least 1");
            }
        }
        if self.log_recheck_interval_ms < LOG_RECHECK_INTERVAL_MS_MIN {
            bail!("log_recheck_interval_ms must be at least {LOG_RECHECK_INTERVAL_MS_MIN}");
        }
        if self.master_timeout_ms <= self.heartbeat_interval_ms {
            bail!(
                "master_timeout_ms ({}) must be longer than heartbeat_interval_ms ({}), or every \
                 missed beat would start an election",
                self.master_timeout_ms,
                self.heartbeat_interval_ms
            );
        }
        if self.store_key.is_none() && !self.listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {} without a store key: anyone on the network could read and \
                 write this store. Set the same key on every device with --store-key or RMS_STORE_KEY \
                 (or store_key in the config file), or listen on 127.0.0.1",
                self.listen
            );
        }
        if self.store_key.is_none() && !self.sync_listen.ip().is_loopback() {
            bail!(
                "refusing to open the store port on {} without a store key: a store without a key \
                 trusts every device of this machine, so its devices stay on loopback. Set the same \
                 key on every device with --store-key, or use --sync-listen 127.0.0.1:PORT",
                self.sync_listen
            );
        }
        if self.sync_listen.port() != 0 && self.sync_listen.port() == self.listen.port() {
            bail!(
                "the store port ({}) and the API (--listen {}) need two ports",
                self.sync_listen,
                self.listen
            );
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("the config file {} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("rms-node").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn no_arguments_is_the_single_device_store() {
        let config = Config::merge(cli(&[]), FileConfig::default()).unwrap();
        assert_eq!(config.device_id.get(), 1);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.data_dir, PathBuf::from("rms-data"));
        assert_eq!(
            (config.sync_interval_ms, config.heartbeat_interval_ms),
            (30_000, 1_000)
        );
        assert!(!config.reclaim);
    }

    #[test]
    fn a_flag_beats_the_file_and_the_file_beats_the_default() {
        let file: FileConfig = toml::from_str(
            "device_id = 4\nname = \"till 4\"\npriority = 2\npeers = [\"http://a\"]",
        )
        .unwrap();
        let config = Config::merge(cli(&["--device-id", "9", "--reclaim"]), file).unwrap();
        assert_eq!(config.device_id.get(), 9);
        assert_eq!(config.name, "till 4");
        assert_eq!(config.priority, 2);
        assert_eq!(config.peers, ["http://a"]);
        assert!(config.reclaim);
    }

    #[test]
    fn bad_settings_are_refused_clearly() {
        assert!(
            toml::from_str::<FileConfig>("device = 3").is_err(),
            "unknown keys are refused"
        );
        assert!(Cli::try_parse_from(["rms-node", "--device-id", "0"]).is_err());
        let err =
            Config::merge(cli(&["--listen", "0.0.0.0:7878"]), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("store key"), "{err}");
        let ok = Config::merge(
            cli(&["--listen", "0.0.0.0:7878", "--store-key", "k"]),
            FileConfig::default(),
        );
        assert!(ok.is_ok());
        let err =
            Config::merge(cli(&["--master-timeout-ms", "500"]), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("master_timeout_ms"), "{err}");
    }
}

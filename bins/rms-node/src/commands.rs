//! The commands beside running a node: `init` writes a config file with a fresh store key,
//! `status` prints the store as a running node sees it, `backup` copies the database online,
//! `id` prints this device's identity (made on first use), `devices` lists, approves and revokes
//! the store's device certificates through the running node on this machine.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a commented config file with a freshly generated store key (never overwrites).
    Init {
        /// Where to write it.
        #[arg(long, default_value = "rms.toml", value_name = "FILE")]
        out: PathBuf,
        /// This device's id, 1..=65534 (every device of a store needs its own; 65535 is head
        /// office's).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..65535))]
        device_id: u16,
        /// Use this store key instead of a new one (the other devices' key, when adding one).
        /// Only from this flag: a key in the environment is not taken by accident.
        #[arg(long)]
        store_key: Option<String>,
    },
    /// Copy this device's database into a new file, online (the node may keep running).
    Backup {
        /// The node's data directory.
        #[command(flatten)]
        data: DataDir,
        /// The backup file to create (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print this device's ID (the fingerprint of its certificate), making its key pair and
    /// certificate in the data directory on first use.
    Id {
        /// The node's data directory.
        #[command(flatten)]
        data: DataDir,
    },
    /// List the store's device certificates (trusted, revoked, waiting), or approve or revoke
    /// one, through the node running on this machine.
    Devices {
        #[command(subcommand)]
        action: Option<DevicesAction>,
        #[command(flatten)]
        node: LocalNode,
    },
    /// Open a pairing window on this (trusted) device and print its one-time code, for a new
    /// device to join with `rms-node join CODE --peer URL`.
    Pair {
        /// How long the code is valid: 90s, 10m, 1h [default: 10m, at most 24h].
        #[arg(long, value_parser = parse_ttl, value_name = "DURATION")]
        ttl: Option<u64>,
        #[command(flatten)]
        node: LocalNode,
    },
    /// Join a store: the node running on this machine proves the code to the sponsor at --peer,
    /// and each trusts the other.
    Join {
        /// The code the sponsor printed (dashes optional).
        code: String,
        /// The sponsor's store port, e.g. https://10.0.0.11:7879.
        #[arg(long, value_name = "URL")]
        peer: String,
        #[command(flatten)]
        node: LocalNode,
    },
    /// Print the store as a running node sees it: this device, the master, the roster, sync.
    Status {
        #[command(flatten)]
        node: LocalNode,
    },
    /// The tamper-evident journal (docs/JOURNAL.md): verify a database, export for an auditor.
    Journal {
        #[command(subcommand)]
        action: crate::journal::JournalAction,
    },
}

/// The node running on this machine, as the commands that talk to it reach it.
/// The data directory of a node on this machine, read offline.
#[derive(Debug, clap::Args)]
pub struct DataDir {
    #[arg(
        long,
        env = "RMS_DATA_DIR",
        default_value = "rms-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct LocalNode {
    /// The node's API on this machine.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7878",
        value_name = "URL",
        global = true
    )]
    url: String,
    /// The store key, if the node has one.
    #[arg(long, env = "RMS_STORE_KEY", hide_env_values = true, global = true)]
    store_key: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum DevicesAction {
    /// Trusted, revoked and waiting devices (the default).
    List,
    /// Trust a device, after comparing its ID (`rms-node id` on it) with the one listed here.
    Approve {
        /// Its ID (the long form, as `rms-node id` prints it).
        fingerprint: String,
        /// Its device id, when it is not waiting for approval.
        #[arg(long)]
        device_id: Option<u16>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a device for good: every device closes its links, and its key never comes back.
    Revoke {
        /// Its device id.
        device_id: u16,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init {
            out,
            device_id,
            store_key,
        } => {
            let key = match store_key {
                Some(key) => key,
                None => new_store_key()?,
            };
            init(&out, device_id, &key)?;
            println!("wrote {} for device {device_id}", out.display());
            println!("start the node with: rms-node --config {}", out.display());
            Ok(())
        }
        Command::Backup {
            data: DataDir { data_dir },
            out,
        } => {
            rms_storage::db::backup_into(&data_dir, &out).with_context(|| {
                format!(
                    "cannot back {} up into {}",
                    data_dir.display(),
                    out.display()
                )
            })?;
            println!(
                "backed {} up into {} (integrity checked)",
                data_dir.display(),
                out.display()
            );
            Ok(())
        }
        Command::Id {
            data: DataDir { data_dir },
        } => {
            let identity = rms_transport::identity::Identity::load_or_create(&data_dir)
                .with_context(|| format!("no identity in {}", data_dir.display()))?;
            let fingerprint = identity.fingerprint();
            println!("{fingerprint}");
            eprintln!(
                "(short form {}; key in {})",
                fingerprint.short(),
                data_dir.join(rms_transport::identity::KEY_FILE).display()
            );
            Ok(())
        }
        Command::Journal { action } => {
            if !crate::journal::run(action)? {
                bail!("the journal does not verify");
            }
            Ok(())
        }
        Command::Status { node } => {
            print!("{}", status(&node.url, node.store_key.as_deref())?);
            Ok(())
        }
        Command::Devices { action, node } => devices(
            &node.url,
            node.store_key.as_deref(),
            action.unwrap_or(DevicesAction::List),
        ),
        Command::Pair { ttl, node } => {
            let body = serde_json::json!({ "ttl_seconds": ttl });
            let answer = post(
                &node.url,
                "/api/v1/pairing",
                node.store_key.as_deref(),
                &body,
            )?;
            println!("{}", answer["code"].as_str().unwrap_or_default());
            eprintln!(
                "one device may join with this code until {} (sponsor: device {}, {})",
                answer["expires_at"].as_str().unwrap_or_default(),
                answer["sponsor"]["device_id"],
                answer["sponsor"]["fingerprint"]
                    .as_str()
                    .unwrap_or_default(),
            );
            Ok(())
        }
        Command::Join { code, peer, node } => {
            let body = serde_json::json!({ "code": code, "peer": peer });
            let path = "/api/v1/pairing/join";
            let answer = post(&node.url, path, node.store_key.as_deref(), &body)?;
            let sponsor = &answer["sponsor"];
            println!(
                "joined the store of device {} ({}, {}); syncing now",
                sponsor["device_id"],
                sponsor["name"].as_str().unwrap_or_default(),
                sponsor["fingerprint"].as_str().unwrap_or_default(),
            );
            Ok(())
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

/// `rms-node devices ...`.
fn devices(base: &str, store_key: Option<&str>, action: DevicesAction) -> anyhow::Result<()> {
    let agent = agent();
    let base = base.trim_end_matches('/');
    let (path, body) = match action {
        DevicesAction::List => {
            let trust = get(&agent, &format!("{base}/api/v1/devices/trust"), store_key)?;
            print!("{}", devices_text(&trust));
            return Ok(());
        }
        DevicesAction::Approve {
            fingerprint,
            device_id,
            name,
        } => (
            "/api/v1/devices/approve".to_owned(),
            serde_json::json!({ "fingerprint": fingerprint, "device_id": device_id, "name": name }),
        ),
        DevicesAction::Revoke { device_id } => (
            format!("/api/v1/devices/{device_id}/revoke"),
            serde_json::json!({}),
        ),
    };
    let answer = post(base, &path, store_key, &body)?;
    let field = |name: &str| answer[name].as_str().unwrap_or_default().to_owned();
    println!(
        "device {} ({}) is now {} (event {}, {})",
        answer["device_id"],
        field("fingerprint"),
        field("state"),
        field("event_id"),
        field("status"),
    );
    Ok(())
}

/// POSTs `body` to `base` + `path`; the answer, or an error naming the refusal.
fn post(base: &str, path: &str, store_key: Option<&str>, body: &Value) -> anyhow::Result<Value> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut request = agent()
        .post(&url)
        .header("content-type", "application/json");
    if let Some(key) = store_key {
        request = request.header("authorization", &format!("Bearer {key}"));
    }
    let mut response = request
        .send(body.to_string().as_str())
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let answer: Value = serde_json::from_str(&response.body_mut().read_to_string()?)
        .with_context(|| format!("{url} did not answer JSON"))?;
    if status != 200 {
        bail!(
            "{url}: {status} {}",
            answer["message"].as_str().unwrap_or_default()
        );
    }
    Ok(answer)
}

/// `90s`, `10m`, `1h` or a number of seconds, as seconds.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 10m or 1h"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    if seconds == 0 || seconds > 24 * 3600 {
        return Err(format!("{text:?}: a pairing window lasts 1 s to 24 h"));
    }
    Ok(seconds)
}

/// The trust list as text.
fn devices_text(trust: &Value) -> String {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "this device: {} ({})\n",
        text(&trust["me"]["device_id"]),
        text(&trust["me"]["fingerprint"])
    );
    let window = &trust["store_key_window"];
    let open = window["open"] == true;
    // A window never opened has no time (issue #27: it showed 1970).
    let closes = window["closes_at"]
        .as_str()
        .map(|at| format!(" ({} {at})", if open { "closes" } else { "closed" }))
        .unwrap_or_default();
    let open = if open { "open" } else { "closed" };
    out += &format!("store-key window: {open}{closes}\n");
    let row = |id: &Value, state: &str, name: &Value, how: &str, id_text: &Value| {
        format!(
            "{:>6}  {:<8} {:<20} {:<10} {}",
            text(id),
            state,
            text(name),
            how,
            text(id_text)
        )
    };
    out += &format!(
        "{:>6}  {:<8} {:<20} {:<10} {}\n",
        "device", "state", "name", "how", "ID"
    );
    for device in trust["devices"].as_array().into_iter().flatten() {
        let (state, how) = (text(&device["state"]), text(&device["how"]));
        out += &row(
            &device["device_id"],
            &state,
            &device["name"],
            &how,
            &device["fingerprint"],
        );
        out += "\n";
    }
    for device in trust["pending"].as_array().into_iter().flatten() {
        out += &row(
            &device["device_id"],
            "pending",
            &device["name"],
            "-",
            &device["fingerprint"],
        );
        out += &format!(
            "  (from {}, {} attempts)\n",
            text(&device["address"]),
            text(&device["attempts"])
        );
    }
    out
}

/// Bytes of randomness in a generated store key (printed as hex: 64 characters).
const STORE_KEY_BYTES: usize = 32;

/// A new store key from the operating system's random source.
fn new_store_key() -> anyhow::Result<String> {
    let mut bytes = [0_u8; STORE_KEY_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a store key")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes the config file, readable by its owner only; refuses to overwrite one.
fn init(out: &Path, device_id: u16, store_key: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = format!(
        r#"# rms-node configuration (rms-node --config {file}).
# Every key is also a flag (--device-id) and an environment variable (RMS_DEVICE_ID);
# a flag wins over the environment, the environment over this file.

# This device's id, unique in the store (1..=65535).
device_id = {device_id}

# A name for people.
# name = "till {device_id}"

# The shared secret of the store: the same on every device. Every API request must carry
# "Authorization: Bearer <key>". Keep this file readable by the service user only. Devices are
# added by pairing (rms-node pair / rms-node join); while a store-key window is open (opened by
# hand for some hours, or for 24 hours after an upgrade from the store-key release), a device
# that proves it has the key is trusted on first use.
store_key = {store_key}
# store_key_window_hours = 2

# The API for the apps of this machine (plain HTTP on loopback).
listen = "127.0.0.1:7878"

# The store port: where the devices link to each other (TLS with device certificates).
sync_listen = "0.0.0.0:7879"

# How the other devices reach this one (this device's address on the store network).
# advertise = "https://192.0.2.10:7879"

# Where the database lives.
# data_dir = "/var/lib/rms"

# At least one other device of the store; the others are learned from it.
# peers = ["https://192.0.2.11:7879"]

# Election rank: the highest priority wins, then the lowest device id.
# priority = 0

# Take the master role back after a restart, when this device outranks the master.
# reclaim = false

# Push each sale to the master as it is made and broadcast each decided entry at once;
# false syncs every sync_interval_ms (critical events still go at once).
# eager_sync = true

# Timing (milliseconds).
# sync_interval_ms = 30000
# heartbeat_interval_ms = 1000
# master_timeout_ms = 3000
# How often a running node hashes its copy of the master log again from the start.
# log_recheck_interval_ms = 3600000

# "rest" for a device that cannot hold a WebSocket.
# sync_transport = "websocket"

# Head office (docs/HQ.md): while this device is master, it sends the store's log there and
# logs the catalogue changes it gets. The token comes from `rms-hq stores add` (this file is
# mode 0600); pin head office's certificate, or name a CA file, instead of the system's roots.
# hq_url = "https://hq.example.com:7880"
# hq_token = "rmshq_..."
# hq_fingerprint = "..."
# hq_ca = "/etc/rms/hq-ca.pem"
"#,
        file = out.display(),
        // Quoted and escaped as TOML wants it, whatever the key holds.
        store_key = toml::Value::String(store_key.to_owned()),
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {} (it is never overwritten)", out.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

fn get(agent: &ureq::Agent, url: &str, store_key: Option<&str>) -> anyhow::Result<Value> {
    let mut request = agent.get(url);
    if let Some(key) = store_key {
        request = request.header("authorization", &format!("Bearer {key}"));
    }
    let mut response = request
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string()?)
        .with_context(|| format!("{url} did not answer JSON"))?;
    match status {
        200 => Ok(body),
        401 => bail!("{url}: 401, the node wants the store key (--store-key or RMS_STORE_KEY)"),
        other => bail!("{url}: {other} {body}"),
    }
}

/// The cluster as the node at `base` sees it, as text.
fn status(base: &str, store_key: Option<&str>) -> anyhow::Result<String> {
    let agent = agent();
    let base = base.trim_end_matches('/');
    let health = get(&agent, &format!("{base}/api/v1/health"), store_key)?;
    let cluster = get(&agent, &format!("{base}/api/v1/cluster"), store_key)?;
    let sync = get(&agent, &format!("{base}/api/v1/sync/status"), store_key)?;
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "device {} ({}): {}, term {}, master {}\n",
        text(&health["device_id"]),
        base,
        text(&health["role"]),
        text(&health["term"]),
        text(&health["master_id"]),
    );
    out += &format!(
        "sync: {} pending (oldest {} ms), cursor {}, last sync {}, {} devices connected\n",
        text(&sync["pending"]),
        text(&sync["oldest_pending_ms"]),
        text(&sync["cursor"]),
        text(&sync["last_sync_at"]),
        text(&sync["connected_devices"]),
    );
    out += &format!(
        "{:>6}  {:<20} {:<7} {:<7} {:<25} {}\n",
        "device", "name", "role", "online", "last seen", "advertise"
    );
    for device in cluster["devices"].as_array().into_iter().flatten() {
        out += &format!(
            "{:>6}  {:<20} {:<7} {:<7} {:<25} {}\n",
            text(&device["device_id"]),
            text(&device["name"]),
            text(&device["role"]),
            text(&device["online"]),
            text(&device["last_seen"]),
            text(&device["advertise"]),
        );
    }
    Ok(out)
}

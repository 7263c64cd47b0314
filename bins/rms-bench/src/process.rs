//! Server processes under measurement (rms-node and the reference servers), and what the kernel
//! says about them: CPU seconds and resident memory, from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// A child process that printed the URL it serves. Killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// An rms-node's store port (`https://...`), where other devices link; empty otherwise.
    pub sync_url: String,
    /// The data directory, kept until the server is dropped (none for reference servers).
    pub data_dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) the process has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.pid())
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_bytes(self.pid())
    }

    /// SIGTERM, then waits up to 20 s for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the server exited with {status}");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        bail!("the server did not stop within 20 s of SIGTERM")
    }
}

/// Starts `binary args...` and waits for its line `<prefix><url>` on stdout; also returns the
/// store port an rms-node printed before it (empty if none).
fn spawn(binary: &Path, args: &[String], prefix: &str) -> anyhow::Result<(Child, String, String)> {
    let mut child = Command::new(binary)
        .args(args)
        .env("RMS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut reader = BufReader::new(stdout);
    let mut store_port = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if let Some(url) = line.trim().strip_prefix("rms-node store port on ") {
            url.clone_into(&mut store_port);
            continue;
        }
        let Some(url) = line.trim().strip_prefix(prefix) else {
            let _ = child.kill();
            bail!("{} printed {line:?}, not its address", binary.display());
        };
        return Ok((child, url.to_owned(), store_port));
    }
}

/// An rms-node on 127.0.0.1:0 with a fresh data directory (or `data_dir`), and `args`.
pub fn start_node(
    binary: &Path,
    data_dir: Option<tempfile::TempDir>,
    args: &[&str],
) -> anyhow::Result<Server> {
    let dir = match data_dir {
        Some(dir) => dir,
        None => tempfile::tempdir()?,
    };
    let mut all: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--sync-listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let (child, url, sync_url) = spawn(binary, &all, "rms-node listening on ")?;
    Ok(Server {
        child,
        url,
        sync_url,
        data_dir: Some(dir),
    })
}

/// Any server that prints `<prefix><url>` when it listens (rms-hq).
pub fn start_named(binary: &Path, args: &[String], prefix: &str) -> anyhow::Result<Server> {
    let (child, url, sync_url) = spawn(binary, args, prefix)?;
    Ok(Server {
        child,
        url,
        sync_url,
        data_dir: None,
    })
}

/// A reference server: this very binary in `reference-server` mode.
pub fn start_reference(mode: &str) -> anyhow::Result<Server> {
    let me: PathBuf = std::env::current_exe().context("cannot find rms-bench itself")?;
    let args = vec!["reference-server".to_owned(), mode.to_owned()];
    let (child, url, sync_url) = spawn(&me, &args, "reference listening on ")?;
    Ok(Server {
        child,
        url,
        sync_url,
        data_dir: None,
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` times (Linux: 100 on every platform rms runs on).
const CLOCK_TICKS_PER_S: f64 = 100.0;

pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let ticks: f64 = fields
        .get(11..13)
        .context("short stat")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    Ok(ticks / CLOCK_TICKS_PER_S)
}

pub fn self_cpu_seconds() -> anyhow::Result<f64> {
    cpu_seconds(std::process::id())
}

pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("no VmRSS value")?
        .parse()?;
    Ok(kib * 1024)
}

/// A blocking HTTP client that reads error answers as answers.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub fn post(agent: &ureq::Agent, url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let mut response = agent.post(url).send_json(body)?;
    let text = response.body_mut().read_to_string()?;
    Ok((
        response.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    ))
}

pub fn get(agent: &ureq::Agent, url: &str) -> anyhow::Result<Value> {
    let mut response = agent.get(url).call()?;
    Ok(serde_json::from_str(
        &response.body_mut().read_to_string()?,
    )?)
}

/// Polls `check` every `every` until it holds, at most `deadline`.
pub fn wait_until(
    deadline: Duration,
    every: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    while !check()? {
        if Instant::now() > until {
            bail!("timed out after {deadline:?}");
        }
        std::thread::sleep(every);
    }
    Ok(())
}

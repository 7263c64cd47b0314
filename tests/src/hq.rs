//! `rms-hq` processes for head-office tests: built once per run, started on loopback, killed
//! (SIGKILL) when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;

use serde_json::Value;

use crate::START_DEADLINE;

/// The admin token the tests' head offices use.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The `rms-hq` binary, built once per test run (`RMS_HQ_BIN` overrides it).
pub fn hq_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| crate::built("RMS_HQ_BIN", "rms-hq-bin", "rms-hq"))
}

/// Runs an `rms-hq` command to its end (`stores add`, ...); its standard output.
pub fn hq_command(database_url: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(hq_binary())
        .args(["--database-url", database_url])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Registers a store; its id and token.
pub fn add_store(database_url: &str, name: &str) -> (i64, String) {
    let out = hq_command(database_url, &["stores", "add", "--name", name]).expect("stores add");
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {key:?} in {out:?}"))
    };
    let id = field("store_id ").parse().expect("a store id");
    (id, field("token "))
}

/// A running `rms-hq`.
pub struct HqProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub port: u16,
    database_url: String,
    agent: ureq::Agent,
}

impl HqProcess {
    /// Starts head office on `port` (0: a free one) and waits until it listens.
    pub fn start(database_url: &str, port: u16) -> HqProcess {
        let mut child = Command::new(hq_binary())
            .args(["--database-url", database_url])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-token", ADMIN_TOKEN])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start rms-hq");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("rms-hq listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let Ok(url) = rx.recv_timeout(START_DEADLINE) else {
            let _ = child.kill();
            let status = child.wait().ok();
            panic!(
                "rms-hq did not report its address within {START_DEADLINE:?} (exit: {status:?})"
            );
        };
        let port = url
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("a port");
        HqProcess {
            child: Some(child),
            url,
            port,
            database_url: database_url.to_owned(),
            agent: crate::agent(),
        }
    }

    /// Starts it again on the same port (after [`HqProcess::kill9`]).
    pub fn restart(&mut self) {
        let again = HqProcess::start(&self.database_url, self.port);
        self.kill9();
        *self = again;
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A request with `token` as the bearer; status and JSON body (`Null` if none).
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<&[u8]>) -> (u16, Value) {
        crate::raw_request(
            &self.agent,
            method,
            &format!("{}{path}", self.url),
            body,
            &[("authorization", format!("Bearer {token}"))],
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `PUT /hq/v1/catalog/{sku}` as admin.
    pub fn set_price(&self, sku: &str, name: &str, price_cents: i64) -> Value {
        let body = serde_json::json!({ "name": name, "price_cents": price_cents }).to_string();
        let (status, answer) = self.call(
            "PUT",
            &format!("/hq/v1/catalog/{sku}"),
            ADMIN_TOKEN,
            Some(body.as_bytes()),
        );
        assert_eq!(status, 200, "PUT catalog: {answer}");
        answer
    }
}

impl Drop for HqProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

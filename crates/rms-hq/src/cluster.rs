//! A throwaway PostgreSQL cluster for head-office tests and benchmarks (feature `cluster`):
//! `initdb` into a temporary directory, the server on a Unix socket in that directory only (no
//! TCP at all), stopped (`-m immediate`) and removed when dropped. Debian's `postgresql` package
//! provides the binaries (`make test` installs it when missing); as root, the cluster runs as the
//! `postgres` user, as PostgreSQL requires.
//!
//! A test fixture: it panics, naming what failed, when PostgreSQL cannot be set up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where the server binaries are: the newest `/usr/lib/postgresql/<version>/bin`, else `PATH`.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin).unwrap_or_default()
    })
}

fn tool(name: &str) -> PathBuf {
    let dir = bin_dir();
    if dir.as_os_str().is_empty() {
        PathBuf::from(name)
    } else {
        dir.join(name)
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A PostgreSQL server of its own, for one test.
pub struct Postgres {
    dir: tempfile::TempDir,
    as_postgres: bool,
    running: bool,
}

impl Postgres {
    /// Makes and starts a cluster; panics (naming the missing package) if PostgreSQL is absent.
    pub fn start() -> Postgres {
        assert!(
            tool("initdb").exists() || which("initdb"),
            "PostgreSQL's server is not installed: `make test` installs Debian's postgresql"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let as_postgres = running_as_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give the cluster's directory to postgres"
            );
        }
        let pg = Postgres {
            dir,
            as_postgres,
            running: false,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let mut pg = pg;
        pg.start_server();
        pg
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The socket's directory.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, name: &str, args: &[&str]) -> String {
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool(name));
            c
        } else {
            Command::new(tool(name))
        };
        let out = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the server (again), waiting until it takes connections.
    pub fn start_server(&mut self) {
        let options = format!(
            "-k {} -c listen_addresses= -p 5432 -c fsync=off -c max_connections=200",
            self.socket_dir().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
        self.running = true;
    }

    /// `pg_ctl stop -m immediate`: the server stops without a checkpoint, as in a crash.
    pub fn stop_immediate(&mut self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        );
        self.running = false;
    }

    /// Creates database `name` and returns its URL for `rms-hq --database-url`.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// The connection string of `database` on this cluster (its Unix socket, user `postgres`).
    pub fn url(&self, database: &str) -> String {
        format!(
            "host={} port=5432 user=postgres dbname={database}",
            self.socket_dir().display()
        )
    }

    /// Runs `sql` with psql; the rows, `|`-separated, one per line.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let socket = self.socket_dir().display().to_string();
        let out = Command::new(tool("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &socket,
            ])
            .args(["-p", "5432", "-U", "postgres", "-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// One number from a query.
    pub fn number(&self, database: &str, sql: &str) -> i64 {
        let text = self.psql(database, sql);
        text.parse()
            .unwrap_or_else(|_| panic!("{sql:?} gave {text:?}, not a number"))
    }
}

fn which(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let mut command = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(tool("pg_ctl"));
                c
            } else {
                Command::new(tool("pg_ctl"))
            };
            let _ = command
                .args(["-D", &data, "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

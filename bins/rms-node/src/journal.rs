//! `rms-node journal verify|export` (issue #17, `docs/JOURNAL.md`): the journal of a database,
//! read offline (read-only; a running node may keep writing meanwhile).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rms_storage::journal;
use rusqlite::{Connection, OpenFlags};

use crate::commands::DataDir;

#[derive(Debug, clap::Subcommand)]
pub enum JournalAction {
    /// Checks the journal: every chain links, and the events, sales and audit rows agree with
    /// it. Names the first entry that does not verify (exit status 1).
    Verify {
        #[command(flatten)]
        data: DataDir,
    },
    /// Writes the journal entries made in [--from, --to) (UTC dates, YYYY-MM-DD; --to exclusive)
    /// as JSON lines, for an auditor (`scripts/journal_verify.py` checks them without rms).
    Export {
        #[command(flatten)]
        data: DataDir,
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// Where to write (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

fn open(data_dir: &Path) -> anyhow::Result<Connection> {
    let path = data_dir.join(rms_storage::db::DB_FILE_NAME);
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Milliseconds since the epoch of a UTC date `YYYY-MM-DD`.
fn date_ms(date: &str) -> anyhow::Result<u64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format)
        .with_context(|| format!("{date:?} is not a date (YYYY-MM-DD)"))?;
    let at = day.midnight().assume_utc().unix_timestamp();
    u64::try_from(at)
        .map(|s| s * 1000)
        .context("a date before 1970")
}

/// Runs `action`; `Ok(false)` when the journal does not verify.
pub fn run(action: JournalAction) -> anyhow::Result<bool> {
    match action {
        JournalAction::Verify {
            data: DataDir { data_dir },
        } => {
            let conn = open(&data_dir)?;
            let verified = journal::verify(&conn).context("cannot read the journal")?;
            for (chain, seq, hash) in &verified.heads {
                println!("{chain}: {seq} entries verify, head {}", hash.to_hex());
            }
            match verified.broken {
                None => {
                    println!(
                        "{} signed heads verify (signed by this device's key)",
                        verified.signed_heads
                    );
                    println!("OK: {} verifies", data_dir.display());
                    Ok(true)
                }
                Some(broken) => {
                    println!("BROKEN at {broken}");
                    Ok(false)
                }
            }
        }
        JournalAction::Export {
            data: DataDir { data_dir },
            from,
            to,
            out,
        } => {
            let from_ms = from.as_deref().map(date_ms).transpose()?.unwrap_or(0);
            let to_ms = to.as_deref().map(date_ms).transpose()?.unwrap_or(u64::MAX);
            if from_ms >= to_ms {
                bail!("--from must come before --to");
            }
            let conn = open(&data_dir)?;
            let written = match out {
                Some(path) => {
                    let mut file = std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    journal::export(&conn, from_ms, to_ms, &mut file)?
                }
                None => journal::export(&conn, from_ms, to_ms, &mut std::io::stdout().lock())?,
            };
            eprintln!("exported {written} journal entries");
            Ok(true)
        }
    }
}

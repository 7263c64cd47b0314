//! J1 (issue #17): `rms-node journal verify` of a database of sales, in seconds per million
//! events, against reading the same rows back with rusqlite (what any check must cost at least),
//! in the same round.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rms_domain::{DeviceId, NewProduct, NewSale, NewSaleLine, Role};
use rms_storage::local::Command;

use crate::report::{Row, Target};
use crate::scenarios::{Bench, blocking};

/// Sales written per transaction while making the database.
const PER_TRANSACTION: usize = 1000;

/// A device's database with `sales` sales made on it (as a client would: pending; each
/// journaled, with its audit row), written straight through rms-storage.
fn make_database(dir: &Path, sales: usize) -> anyhow::Result<()> {
    let device = DeviceId::new(1).context("device 1")?;
    let store = rms_storage::Store::open(dir, device)?;
    store.write(|tx| {
        let product = NewProduct {
            sku: "j1".into(),
            name: "J1".into(),
            price_cents: 100,
            stock: 1_000_000_000,
            user_id: None,
        };
        rms_storage::local::record(tx, Role::Client, 1, Command::CreateProduct(product))?;
        Ok(())
    })?;
    let mut made = 0;
    while made < sales {
        let batch = PER_TRANSACTION.min(sales - made);
        store.write(|tx| {
            for i in 0..batch {
                let sale = NewSale {
                    user_id: format!("cashier-{}", (made + i) % 7),
                    lines: vec![NewSaleLine {
                        sku: "j1".into(),
                        qty: 1,
                    }],
                };
                rms_storage::local::record(tx, Role::Client, 2, Command::Sell(sale))?;
            }
            Ok(())
        })?;
        made += batch;
    }
    Ok(())
}

/// Reads every journal entry, event and audit row back (the floor of any check).
fn read_back(db: &Path) -> anyhow::Result<Duration> {
    let conn = rusqlite::Connection::open(db)?;
    let started = Instant::now();
    let mut bytes = 0usize;
    for sql in [
        "SELECT record, hash FROM journal ORDER BY chain, seq",
        "SELECT payload, user_id FROM sync_events ORDER BY device_id, seq",
        "SELECT details, at FROM audit_log ORDER BY id",
    ] {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            bytes += row.get_ref(0)?.as_str()?.len() + row.get_ref(1)?.as_str()?.len();
        }
    }
    if bytes == 0 {
        bail!("nothing was read back");
    }
    Ok(started.elapsed())
}

/// J1: `rms-node journal verify` (the command an auditor runs), per million events.
pub fn j1_verify(bench: &Bench) -> anyhow::Result<Row> {
    let sales = if bench.large { 1_000_000 } else { 200_000 };
    let mut row = Row::new(
        "J1",
        format!("journal verify, per 1 000 000 events (measured on {sales})"),
        "s",
    )
    .target(Target::AtMost(10.0));
    let dir = tempfile::tempdir()?;
    blocking(|| make_database(dir.path(), sales))?;
    let db = dir.path().join(rms_storage::db::DB_FILE_NAME);
    let scale = 1_000_000.0 / sales as f64;
    for _ in 0..bench.rounds {
        let reference = blocking(|| read_back(&db))?;
        let started = Instant::now();
        let out = std::process::Command::new(&bench.node)
            .args(["journal", "verify", "--data-dir"])
            .arg(dir.path())
            .output()?;
        let took = started.elapsed();
        if !out.status.success() {
            bail!(
                "journal verify failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        row.round(took.as_secs_f64() * scale, reference.as_secs_f64() * scale);
    }
    row.extra = serde_json::json!({"events": sales + 1,
        "reference": "reading every journal entry, event and audit row back with rusqlite"});
    Ok(row)
}

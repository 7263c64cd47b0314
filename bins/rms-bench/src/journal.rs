//! J1 (issue #17): `rms-node journal verify` of a database of sales, in seconds per million
//! events, against reading the same rows back with rusqlite (what any check must cost at least),
//! in the same round.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rms_domain::{DeviceId, NewProduct, NewSale, NewSaleLine, Role};
use rms_storage::local::Command;

use crate::fleet::{self, Fleet};
use crate::report::{Row, Target};
use crate::scenarios::{self, Bench, Link, blocking};

/// Sales written per transaction while making the database.
const PER_TRANSACTION: usize = 1000;

/// A device's database with `sales` sales made on it as `role` (a client's are pending; a
/// master's are decided and logged; each journaled, with its audit row), written straight
/// through rms-storage.
fn make_database(dir: &Path, sales: usize, role: Role) -> anyhow::Result<()> {
    let device = DeviceId::new(1).context("device 1")?;
    let store = rms_storage::Store::open(dir, device)?;
    if role == Role::Master {
        // A store of its own (term 1, itself master), as the sync core persists it.
        store.write(|tx| {
            let mut state = rms_storage::node_state::load(tx)?;
            state.epoch = Some(rms_domain::Epoch {
                term: rms_domain::Term(1),
                master_id: device,
                master_priority: 0,
            });
            rms_storage::node_state::save(tx, &state)
        })?;
    }
    store.write(|tx| {
        let product = NewProduct {
            sku: "j1".into(),
            name: "J1".into(),
            price_cents: 100,
            stock: 1_000_000_000,
            user_id: None,
        };
        rms_storage::local::record(tx, role, 1, Command::CreateProduct(product))?;
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
                rms_storage::local::record(tx, role, 2, Command::Sell(sale))?;
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
    blocking(|| make_database(dir.path(), sales, Role::Client))?;
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

/// J2: the master log's chain hashed from the start of a device's copy (what a node does at
/// start, after a truncation, and at every recheck, `log_recheck_interval_ms`), per million
/// entries, against reading the same rows back with rusqlite, in the same round.
pub fn j2_log_chain(bench: &Bench) -> anyhow::Result<Row> {
    let sales = if bench.large { 1_000_000 } else { 200_000 };
    let mut row = Row::new(
        "J2",
        format!("log chain hashed from the start, per 1 000 000 entries (measured on {sales})"),
        "s",
    );
    let dir = tempfile::tempdir()?;
    blocking(|| make_database(dir.path(), sales, Role::Master))?;
    let db = dir.path().join(rms_storage::db::DB_FILE_NAME);
    let scale = 1_000_000.0 / sales as f64;
    let device = DeviceId::new(1).context("device 1")?;
    let store = rms_storage::Store::open(dir.path(), device)?;
    for _ in 0..bench.rounds {
        let reference = blocking(|| {
            let conn = rusqlite::Connection::open(&db)?;
            let started = Instant::now();
            let mut stmt = conn.prepare(
                "SELECT payload, user_id, event_id FROM sync_events \
                 WHERE master_seq IS NOT NULL ORDER BY master_seq",
            )?;
            let mut rows = stmt.query([])?;
            let mut bytes = 0usize;
            while let Some(row) = rows.next()? {
                bytes += row.get_ref(0)?.as_str()?.len() + row.get_ref(1)?.as_str()?.len();
            }
            if bytes == 0 {
                bail!("nothing was read back");
            }
            Ok(started.elapsed())
        })?;
        let started = Instant::now();
        let chain = store.read(|c| rms_storage::log_chain::LogChain::default().extend(c))?;
        let took = started.elapsed();
        if chain.seq < sales as u64 {
            bail!("the chain covers {} entries of {}", chain.seq, sales + 1);
        }
        row.round(took.as_secs_f64() * scale, reference.as_secs_f64() * scale);
    }
    row.extra = serde_json::json!({"entries": sales + 1,
        "reference": "reading every logged event's row back with rusqlite"});
    Ok(row)
}

/// Each device's pushes of chained, signed sale events (issue #17), as a real device pushes
/// them: every event carries its link in the device's `events` chain, and every push the
/// device's signature over the hash of its last event. Built before the clock starts, like the
/// unsigned pushes (the signing is the devices' cost, not the master's).
fn chained_pushes(
    fleet: &Fleet,
    epoch: &serde_json::Value,
    batch: usize,
    batches: usize,
) -> anyhow::Result<Vec<Vec<String>>> {
    use rms_storage::journal::{Hash, event_hash};
    let mut all = Vec::with_capacity(fleet.ids.len());
    for (id, signer) in fleet.ids.iter().zip(&fleet.signers) {
        let device = DeviceId::new(*id).context("a device id")?;
        let mut prev = Hash::GENESIS;
        let mut pushes = Vec::with_capacity(batches);
        for b in 0..batches as u64 {
            let mut events = Vec::with_capacity(batch);
            let mut last = 0;
            for i in 1..=batch as u64 {
                let seq = b * batch as u64 + i;
                let sale = fleet::sale_event(*id, seq, "bench", 1, 0);
                let mut event: rms_domain::SyncEvent = serde_json::from_value(sale)?;
                event.chain = Some(rms_domain::ChainLink {
                    seq,
                    prev: prev.to_hex(),
                });
                prev = event_hash(&event)?.context("a linked event has a hash")?;
                events.push(event);
                last = seq;
            }
            let head = rms_storage::journal_heads::signed_head(device, signer, last, &prev, 0)?;
            let push = serde_json::json!({"type": "push", "epoch": epoch, "events": events,
                                          "head": head});
            pushes.push(push.to_string());
        }
        all.push(pushes);
    }
    Ok(all)
}

/// S1 with chained, signed events (issue #17): master ingest from 50 devices over TLS, each
/// event linked and each push signed and checked by the master, against the same ingest of
/// unlinked events measured in the same round.
pub async fn s1_signed(bench: &Bench) -> anyhow::Result<Row> {
    const BATCH: usize = 100;
    const CLIENTS: usize = 50;
    let events = if bench.large { 200_000 } else { 60_000 };
    let batches = events / BATCH / CLIENTS;
    let total = (batches * BATCH * CLIENTS) as f64;
    let mut row = Row::new(
        "S1",
        format!("master ingest, {CLIENTS} clients, batches of {BATCH}, TLS, chained and signed"),
        "events/s",
    )
    .target(Target::RatioAtLeast(0.9));
    // CPU per 1000 events of the master, `[unsigned, signed]`, each round.
    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..bench.rounds {
        let mut measured = [0.0; 2];
        // The two alternate which goes first, so that a drift of the machine cancels out.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let signed = which == 1;
            let args = ["--eager-sync", "false"];
            let server = scenarios::master(bench, &scenarios::bench_product(), &args)?;
            let mut fleet = scenarios::fleet_of(&server, CLIENTS, 100, Link::Tls).await?;
            let epoch = fleet::epoch_of(&server.url).await?;
            let pushes = if signed {
                chained_pushes(&fleet, &epoch, BATCH, batches)?
            } else {
                crate::pushes::sale_pushes(&fleet.ids, &epoch, BATCH, batches)
            };
            let cpu_before = server.cpu_seconds()?;
            let wall = crate::pushes::push_texts(&mut fleet, pushes).await?;
            cpu[which].push((server.cpu_seconds()? - cpu_before) / total * 1000.0);
            measured[which] = total / wall.as_secs_f64();
        }
        row.round(measured[1], measured[0]);
    }
    row.cpu_s_per_1000 = Some(crate::report::median(&cpu[1]));
    row.reference_cpu_s_per_1000 = Some(crate::report::median(&cpu[0]));
    row.extra = serde_json::json!({"events": total, "batch": BATCH,
        "reference": "the same ingest of unlinked, unsigned events, TLS, same round"});
    Ok(row)
}

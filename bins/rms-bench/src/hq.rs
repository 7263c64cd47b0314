//! H1-H4: head office (issue #15) on a PostgreSQL cluster of the bench's own, against references
//! measured on the same cluster in the same run.
//!
//! - H1: ingest through rms-hq from 20 simulated stores, against a batched `INSERT … ON CONFLICT`
//!   of the same log rows straight into PostgreSQL, 20 connections;
//! - H2: a store that sold 30 000 sales while head office was down, until head office holds them,
//!   counted from head office's return; reference: the same rows inserted straight;
//! - H3: a sale answered by a till until it is in `hq_sales`, p99; reference: a row committed on
//!   one connection until another sees it, with the same poll;
//! - H4: a price set at head office until every till of 3 stores × 2 devices sells at it, p99;
//!   reference: a critical stock change on a store's master until its other device has it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rms_hq::cluster::Postgres;
use serde_json::{Value, json};

use crate::process::{self, Server, agent, get, post, start_node};
use crate::pushes::push_all;
use crate::report::{Row, Target, percentile};
use crate::scenarios::{Bench, Link, bench_product, blocking, fleet_of, master};

/// A cluster, its `hq` database migrated, and an `rms-hq` process in front of it.
/// Fields drop in order: head office stops before its database.
struct Office {
    server: Option<Server>,
    url: String,
    db: rms_hq::Db,
    port: u16,
    /// Kept for its lifetime: the cluster stops when the office is dropped.
    _pg: Postgres,
}

const ADMIN: &str = "bench-admin-token-0123456789";

impl Office {
    async fn start(bench: &Bench) -> anyhow::Result<Office> {
        let pg = blocking(Postgres::start);
        let url = blocking(|| pg.create_database("hq"));
        let db = rms_hq::Db::connect(&url)?;
        db.migrate().await?;
        let port = free_port()?;
        let mut office = Office {
            server: None,
            url,
            db,
            port,
            _pg: pg,
        };
        office.up(bench)?;
        Ok(office)
    }

    fn up(&mut self, bench: &Bench) -> anyhow::Result<()> {
        let args = [
            "--database-url".to_owned(),
            self.url.clone(),
            "--listen".to_owned(),
            format!("127.0.0.1:{}", self.port),
            "--admin-token".to_owned(),
            ADMIN.to_owned(),
        ];
        self.server = Some(blocking(|| {
            process::start_named(&bench.hq, &args, "rms-hq listening on ")
        })?);
        Ok(())
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn store(&self, name: &str) -> anyhow::Result<(i64, String)> {
        let store = rms_hq::stores::add(&self.db, name).await?;
        Ok((store.store_id, store.token))
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

const EPOCH: &str = r#"{"term": 1, "master_id": 1, "master_priority": 0}"#;

/// The master-log entries `1..=count` of device 2's one-line sales, as a store's master holds
/// them: each event linked in the device's chain (issue #17), which head office checks.
fn entries(count: u64) -> Vec<Value> {
    let mut prev = rms_storage::journal::Hash::GENESIS;
    (1..=count)
        .map(|seq| {
            let mut entry = entry(seq);
            let link = rms_domain::ChainLink {
                seq,
                prev: prev.to_hex(),
            };
            if let Ok(mut event) =
                serde_json::from_value::<rms_domain::SyncEvent>(entry["event"].clone())
            {
                event.chain = Some(link.clone());
                if let Ok(Some(hash)) = rms_storage::journal::event_hash(&event) {
                    prev = hash;
                }
            }
            entry["event"]["chain"] = json!(link);
            entry
        })
        .collect()
}

/// A master-log entry of a one-line sale, as a store's master holds it (without its link).
fn entry(seq: u64) -> Value {
    let epoch: Value = serde_json::from_str(EPOCH).unwrap_or(Value::Null);
    let id = format!("2-{seq}");
    let at = 1_800_000_000_000_u64 + seq;
    json!({
        "event": {"event_id": id, "hlc": {"wall_ms": at, "counter": 0}, "user_id": "bench",
                  "term": 1, "critical": false, "status": "synced", "master_seq": seq,
                  "created_at_ms": at,
                  "payload": {"kind": "sale_recorded", "sale_id": id,
                              "lines": [{"sku": "bench", "qty": 1, "price_cents": 100}]}},
        "epoch": epoch,
        "products": [{"sku": "bench", "name": "Bench", "price_cents": 100,
                      "stock": 1_000_000 - seq as i64, "version": 1,
                      "updated_at": "2027-01-15T08:00:00.000Z"}],
        "forced": false,
    })
}

/// The uplink batches of one store: `batches` × `size` entries from the start of its log.
fn batches(batches: u64, size: u64) -> Vec<Vec<u8>> {
    let epoch: Value = serde_json::from_str(EPOCH).unwrap_or(Value::Null);
    let all = entries(batches * size);
    (0..batches)
        .map(|b| {
            let since = b * size;
            let entries = &all[since as usize..(since + size) as usize];
            let body = json!({
                "epoch": epoch, "since": since,
                "since_epoch": if since == 0 { Value::Null } else { epoch.clone() },
                "head": batches * size, "catalog_version": 0, "entries": entries,
            });
            body.to_string().into_bytes()
        })
        .collect()
}

/// Inserts the log rows of `entries` for `store_id` straight, batch by batch, each its own
/// transaction (the reference of H1 and H2).
async fn insert_straight(
    db: &rms_hq::Db,
    store_id: i64,
    rows: u64,
    size: u64,
) -> anyhow::Result<()> {
    let mut client = db.client().await?;
    let all = entries(rows);
    for batch in 0..rows / size {
        let seqs: Vec<i64> = ((batch * size + 1)..=(batch + 1) * size)
            .map(|s| s as i64)
            .collect();
        let entries = &all[(batch * size) as usize..((batch + 1) * size) as usize];
        let epochs: Vec<Value> = entries.iter().map(|e| e["epoch"].clone()).collect();
        let devices = vec![2_i32; seqs.len()];
        let kinds = vec!["sale_recorded"; seqs.len()];
        let statuses = vec!["synced"; seqs.len()];
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO hq_log (store_id, device_id, seq, master_seq, epoch, kind, status, entry)
             SELECT $1, d, s, s, e, k, st, en
             FROM unnest($2::int4[], $3::int8[], $4::jsonb[], $5::text[], $6::text[], $7::jsonb[])
                  AS x(d, s, e, k, st, en)
             ON CONFLICT (store_id, device_id, seq) DO NOTHING",
            &[
                &store_id, &devices, &seqs, &epochs, &kinds, &statuses, &entries,
            ],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

fn post_batches(base: &str, token: &str, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    let agent = agent();
    for body in bodies {
        let mut answer = agent
            .post(format!("{base}/hq/v1/uplink/batch"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .send(&body[..])?;
        if answer.status() != 200 {
            let text = answer.body_mut().read_to_string().unwrap_or_default();
            bail!("a batch answered {}: {text}", answer.status());
        }
    }
    Ok(())
}

/// H1: 20 stores × 5 000 entries through rms-hq, against the same rows inserted straight.
pub async fn h1_ingest(bench: &Bench) -> anyhow::Result<Row> {
    const STORES: usize = 20;
    let (per_store, size) = if bench.large {
        (20_000, 1000)
    } else {
        (5_000, 1000)
    };
    let total = (STORES as u64 * per_store) as f64;
    let office = Office::start(bench).await?;
    let bodies = batches(per_store / size, size);
    let mut row = Row::new(
        "H1",
        format!("head-office ingest, {STORES} stores, batches of {size}"),
        "entries/s",
    )
    .target(Target::RatioAtLeast(0.5));
    for round in 0..bench.rounds {
        let mut stores = Vec::new();
        for i in 0..STORES * 2 {
            stores.push(office.store(&format!("bench {round}-{i}")).await?);
        }
        let started = Instant::now();
        let tasks: Vec<_> = stores[STORES..]
            .iter()
            .map(|(id, _)| {
                let db = office.db.clone();
                let id = *id;
                tokio::spawn(async move { insert_straight(&db, id, per_store, size).await })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let reference = started.elapsed();
        let base = office.base();
        let started = Instant::now();
        blocking(|| {
            std::thread::scope(|s| {
                let runs: Vec<_> = stores[..STORES]
                    .iter()
                    .map(|(_, token)| s.spawn(|| post_batches(&base, token, &bodies)))
                    .collect();
                runs.into_iter()
                    .try_for_each(|r| r.join().map_err(|_| anyhow::anyhow!("a store panicked"))?)
            })
        })?;
        let rms = started.elapsed();
        row.round(total / rms.as_secs_f64(), total / reference.as_secs_f64());
    }
    row.extra = json!({"stores": STORES, "entries_per_store": per_store, "batch": size,
                       "reference": "INSERT … SELECT unnest … ON CONFLICT DO NOTHING of the hq_log rows, one transaction per batch, 20 connections"});
    Ok(row)
}

fn uplink_status(node: &Server) -> anyhow::Result<Value> {
    get(&agent(), &format!("{}/api/v1/sync/status", node.url))
}

/// H2: 30 000 sales made while head office was down, until head office holds them all.
pub async fn h2_backlog(bench: &Bench) -> anyhow::Result<Row> {
    const CLIENTS: usize = 10;
    const BATCH: usize = 100;
    const SALES: usize = 30_000;
    let mut row = Row::new(
        "H2",
        "30 000 offline sales reach head office after its return",
        "s",
    )
    .target(Target::AtMost(5.0));
    for round in 0..bench.rounds {
        let mut office = Office::start(bench).await?;
        let (_, token) = office.store(&format!("bench {round}")).await?;
        let (ref_id, _) = office.store(&format!("reference {round}")).await?;
        let base = office.base();
        let args = ["--hq-url", base.as_str(), "--hq-token", token.as_str()];
        let node = master(bench, &bench_product(), &args)?;
        office.server = None; // head office goes down
        let mut fleet = fleet_of(&node, CLIENTS, 100, Link::Plain).await?;
        let epoch = crate::fleet::epoch_of(&node.url).await?;
        push_all(&mut fleet, &epoch, BATCH, SALES / BATCH / CLIENTS).await?;
        // Long enough down for the uplink's backoff to reach its cap.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let started = Instant::now();
        office.up(bench)?;
        blocking(|| {
            process::wait_until(Duration::from_secs(120), Duration::from_millis(10), || {
                let status = uplink_status(&node)?;
                let hq = &status["head_office"];
                Ok(hq["lag_entries"] == 0
                    && hq["cursor"] == status["cursor"]
                    && hq["batches"].as_u64() > Some(0))
            })
        })?;
        let rms = started.elapsed();
        let started = Instant::now();
        insert_straight(&office.db, ref_id, SALES as u64, 1000).await?;
        row.round(rms.as_secs_f64(), started.elapsed().as_secs_f64());
    }
    row.extra = json!({"sales": SALES, "reference": "the same number of log rows inserted straight, batches of 1000"});
    Ok(row)
}

/// H3: a sale answered by a till until it is in `hq_sales`, p99 (ms).
pub async fn h3_visible(bench: &Bench) -> anyhow::Result<Row> {
    let samples = if bench.large { 500 } else { 200 };
    let mut row = Row::new(
        "H3",
        "a sale answered by its till -> in hq_sales, p99",
        "ms",
    )
    .target(Target::AtMost(1000.0));
    let office = Office::start(bench).await?;
    let mut p50s = Vec::new();
    for round in 0..bench.rounds {
        let (store_id, token) = office.store(&format!("bench {round}")).await?;
        let base = office.base();
        let args = ["--hq-url", base.as_str(), "--hq-token", token.as_str()];
        let node = master(bench, &bench_product(), &args)?;
        let client = office.db.client().await?;
        let mut rms = Vec::new();
        for _ in 0..samples {
            let sale = json!({"user_id": "bench", "lines": [{"sku": "bench", "qty": 1}]});
            let (status, answer) =
                blocking(|| post(&agent(), &format!("{}/api/v1/sales", node.url), &sale))?;
            let answered = Instant::now();
            if status != 201 {
                bail!("a sale answered {status}: {answer}");
            }
            let sale_id = answer["sale_id"].as_str().context("a sale id")?.to_owned();
            loop {
                let found = client
                    .query_opt(
                        "SELECT 1 FROM hq_sales WHERE store_id = $1 AND sale_id = $2",
                        &[&store_id, &sale_id],
                    )
                    .await?;
                if found.is_some() {
                    break;
                }
                if answered.elapsed() > Duration::from_secs(30) {
                    bail!("sale {sale_id} never reached head office");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            rms.push(answered.elapsed().as_secs_f64() * 1000.0);
        }
        let reference = visibility_floor(&office.db, samples).await?;
        p50s.push(percentile(&mut rms.clone(), 50.0));
        row.round(percentile(&mut rms, 99.0), reference);
    }
    row.extra = json!({"samples": samples, "p50_ms": crate::report::median(&p50s),
                       "reference": "a row committed on one connection until another sees it, same poll"});
    Ok(row)
}

/// p99 (ms) of a row committed on one connection until another connection's poll sees it.
async fn visibility_floor(db: &rms_hq::Db, samples: usize) -> anyhow::Result<f64> {
    let writer = db.client().await?;
    let reader = db.client().await?;
    writer
        .batch_execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigint PRIMARY KEY)")
        .await?;
    let mut times = Vec::new();
    for _ in 0..samples {
        let started = Instant::now();
        let id: i64 = writer
            .query_one("INSERT INTO bench_floor SELECT COALESCE(max(id), 0) + 1 FROM bench_floor RETURNING id", &[])
            .await?
            .get(0);
        while reader
            .query_opt("SELECT 1 FROM bench_floor WHERE id = $1", &[&id])
            .await?
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(percentile(&mut times, 99.0))
}

fn price_on(node: &Server, sku: &str) -> anyhow::Result<Option<i64>> {
    let product = get(&agent(), &format!("{}/api/v1/products/{sku}", node.url))?;
    Ok(product["price_cents"].as_i64())
}

/// H4: a price set at head office until every till of 3 stores × 2 devices has it, p99 (ms).
pub async fn h4_price(bench: &Bench) -> anyhow::Result<Row> {
    let samples = if bench.large { 100 } else { 30 };
    let mut row = Row::new(
        "H4",
        "a head-office price on every till of 3 stores x 2 devices, p99",
        "ms",
    )
    .target(Target::AtMost(2000.0));
    let office = Office::start(bench).await?;
    let base = office.base();
    let mut tills = Vec::new();
    for store in 0..3 {
        let (_, token) = office.store(&format!("bench {store}")).await?;
        let args = ["--hq-url", base.as_str(), "--hq-token", token.as_str()];
        let first = master(bench, &[], &args)?;
        let peer = first.sync_url.clone();
        let second = blocking(|| {
            start_node(
                &bench.node,
                None,
                &[&["--device-id", "2", "--peer", &peer][..], &args].concat(),
            )
        })?;
        tills.push(first);
        tills.push(second);
    }
    let admin = agent();
    let set_price = |price: i64| -> anyhow::Result<()> {
        let mut answer = admin
            .put(format!("{base}/hq/v1/catalog/bench"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .send(json!({"name": "Bench", "price_cents": price}).to_string())?;
        if answer.status() != 200 {
            bail!(
                "PUT catalog answered {}: {}",
                answer.status(),
                answer.body_mut().read_to_string()?
            );
        }
        Ok(())
    };
    blocking(|| -> anyhow::Result<()> {
        set_price(100)?;
        process::wait_until(Duration::from_secs(60), Duration::from_millis(20), || {
            Ok(tills
                .iter()
                .all(|t| price_on(t, "bench").ok().flatten() == Some(100)))
        })
    })?;
    for _ in 0..bench.rounds {
        let mut times = Vec::new();
        for i in 0..samples {
            let price = 200 + i as i64;
            let started = Instant::now();
            blocking(|| -> anyhow::Result<()> {
                set_price(price)?;
                process::wait_until(Duration::from_secs(30), Duration::from_millis(2), || {
                    Ok(tills
                        .iter()
                        .all(|t| price_on(t, "bench").ok().flatten() == Some(price)))
                })
            })?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let reference = critical_in_store(&tills[0], &tills[1], samples)?;
        row.round(percentile(&mut times, 99.0), reference);
    }
    row.extra = json!({"samples": samples, "tills": tills.len(),
                       "reference": "a critical stock change on a store's master until its other device has it, p99"});
    Ok(row)
}

/// p99 (ms) of a stock adjustment to 0 and back on `master` until `other` shows it.
fn critical_in_store(master: &Server, other: &Server, samples: usize) -> anyhow::Result<f64> {
    let agent = agent();
    let create = json!({"sku": "floor", "name": "Floor", "price_cents": 1, "stock": 1});
    post(&agent, &format!("{}/api/v1/products", master.url), &create)?;
    let stock = |node: &Server| -> anyhow::Result<Option<i64>> {
        Ok(get(&agent, &format!("{}/api/v1/products/floor", node.url))?["stock"].as_i64())
    };
    blocking(|| {
        process::wait_until(Duration::from_secs(60), Duration::from_millis(5), || {
            Ok(stock(other)? == Some(1))
        })
    })?;
    let mut times = Vec::new();
    let adjust = |delta: i64| -> anyhow::Result<()> {
        let body = json!({"delta": delta, "reason": "bench"});
        post(
            &agent,
            &format!("{}/api/v1/products/floor/stock", master.url),
            &body,
        )?;
        Ok(())
    };
    let until = |want: i64, poll_ms: u64| {
        blocking(|| {
            process::wait_until(
                Duration::from_secs(60),
                Duration::from_millis(poll_ms),
                || Ok(stock(other)? == Some(want)),
            )
        })
    };
    for _ in 0..samples {
        // Only the change to 0 is critical (broadcast at once); the way back is not timed.
        let started = Instant::now();
        adjust(-1)?;
        until(0, 2)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        adjust(1)?;
        until(1, 5)?;
    }
    Ok(percentile(&mut times, 99.0))
}

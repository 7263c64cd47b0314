//! Ingest: a store master's batch of master-log entries, committed in one transaction with the
//! store's cursor.
//!
//! Each entry is keyed by `(store_id, device_id, seq)` (UNIQUE): a re-sent batch, or a later
//! master logging the same event again after a split brain, updates the one row (its verdict and
//! position) and never makes a second one. A key already taken by an event with other content (a
//! device restored from a backup reuses its sequence) is kept raw as an ingest error. Entries are
//! then projected into sales, sale lines and stock; an entry that cannot be projected is kept raw
//! in the log, recorded as an ingest error, and never blocks the entries after it.
//!
//! **On crash:** nothing of a batch exists before its commit, all of it after; the store's
//! master learns which by reading the cursor again.

use std::collections::{BTreeMap, HashSet};

use rms_domain::Epoch;
use rms_domain::hq::{Cursor, IngestAnswer, IngestBatch};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_postgres::Transaction;
use tokio_postgres::types::Json;

use crate::batch::{Row, key_rows, to_i64};
use crate::db::Db;
use crate::error::HqError;
use crate::ingest_errors::record_error;

/// What a sale's projection reads; unknown fields are ignored.
#[derive(Deserialize)]
struct SaleEntry {
    event: SaleEvent,
}

#[derive(Deserialize)]
struct SaleEvent {
    user_id: String,
    status: String,
    created_at_ms: i64,
    payload: SalePayload,
}

#[derive(Deserialize)]
struct SalePayload {
    sale_id: String,
    lines: Vec<SaleLineView>,
}

#[derive(Deserialize)]
struct SaleLineView {
    sku: String,
    qty: i64,
    price_cents: i64,
}

#[derive(Deserialize)]
struct Snapshots {
    #[serde(default)]
    products: Vec<ProductView>,
}

#[derive(Deserialize)]
struct ProductView {
    sku: String,
    name: String,
    price_cents: i64,
    stock: i64,
    version: i64,
}

fn epoch_of(value: Option<Value>) -> Result<Option<Epoch>, HqError> {
    Ok(value.map(serde_json::from_value).transpose()?)
}

/// Head office's cursor for a store.
pub async fn cursor(db: &Db, store_id: i64) -> Result<Cursor, HqError> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            "SELECT cursor_seq, cursor_epoch, max_epoch, cursor_event FROM hq_stores
             WHERE store_id = $1",
            &[&store_id],
        )
        .await?
        .ok_or(HqError::NotFound("store"))?;
    read_cursor(&row)
}

fn read_cursor(row: &tokio_postgres::Row) -> Result<Cursor, HqError> {
    let since: i64 = row.get(0);
    let event: Option<String> = row.get(3);
    Ok(Cursor {
        since: u64::try_from(since).unwrap_or(0),
        since_epoch: epoch_of(row.get(1))?,
        since_event: event.and_then(|e| e.parse().ok()),
        max_epoch: epoch_of(row.get(2))?,
    })
}

/// Commits `batch` from `store_id`'s master, or writes nothing and says why.
pub async fn ingest(
    db: &Db,
    store_id: i64,
    batch: &IngestBatch<Box<RawValue>>,
) -> Result<IngestAnswer, HqError> {
    let rows = key_rows(batch)?;
    let head = to_i64(batch.head, "head")?;
    let catalog_version = to_i64(batch.catalog_version, "catalog_version")?;
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT cursor_seq, cursor_epoch, max_epoch, cursor_event FROM hq_stores
             WHERE store_id = $1 AND revoked_at IS NULL FOR UPDATE",
            &[&store_id],
        )
        .await?
        .ok_or(HqError::NotFound("store"))?;
    let cursor = read_cursor(&row)?;
    if cursor.max_epoch.is_some_and(|max| batch.epoch < max) {
        return Err(HqError::StaleEpoch(cursor));
    }
    let since = to_i64(batch.since, "since")?;
    let at_cursor = batch.since == cursor.since
        && batch.since_epoch == cursor.since_epoch
        && (batch.since_event.is_none() || batch.since_event == cursor.since_event);
    if batch.truncate && batch.since <= cursor.since && !at_cursor {
        // Only back to a position head office holds as the store says (a late copy of an old
        // truncating batch finds the cursor moved, and changes nothing).
        if !holds(&tx, store_id, since, batch.since_epoch).await? {
            return Err(HqError::CursorMoved(cursor));
        }
        undo_after(&tx, store_id, since, batch.since_epoch).await?;
    } else if !at_cursor {
        return Err(HqError::CursorMoved(cursor));
    }
    let stored = store_rows(&tx, store_id, &rows).await?;
    let mut errors = (rows.len() - stored.len()) as u64;
    for row in rows.iter().filter(|r| !stored.contains(&r.key)) {
        let message = "the key is taken by another event with other content";
        record_error(&tx, store_id, "key_taken", Some(row), message).await?;
    }
    errors += project(&tx, store_id, &rows, &stored).await?;
    errors += crate::chains::check(&tx, store_id, &rows, &stored).await?;

    let (new_since, new_epoch, new_event) = match rows.last() {
        Some(last) => (
            last.master_seq,
            Some(last.epoch),
            Some(format!("{}-{}", last.key.0, last.key.1)),
        ),
        None => (
            since,
            batch.since_epoch,
            batch.since_event.map(|e| e.to_string()),
        ),
    };
    let max_epoch = cursor.max_epoch.map_or(batch.epoch, |m| m.max(batch.epoch));
    tx.execute(
        "UPDATE hq_stores SET cursor_seq = $2::int8, cursor_epoch = $3, max_epoch = $4,
                store_head = $5::int8, catalog_version = $6, last_contact = now(),
                behind_since = CASE WHEN $2::int8 < $5::int8
                                    THEN COALESCE(behind_since, now()) END,
                batches = batches + 1, cursor_event = $7
         WHERE store_id = $1",
        &[
            &store_id,
            &new_since,
            &new_epoch.map(serde_json::to_value).transpose()?,
            &serde_json::to_value(max_epoch)?,
            &head,
            &catalog_version,
            &new_event,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(IngestAnswer {
        cursor: Cursor {
            since: u64::try_from(new_since).unwrap_or(0),
            since_epoch: new_epoch,
            since_event: new_event.and_then(|e| e.parse().ok()),
            max_epoch: Some(max_epoch),
        },
        stored: stored.len() as u64,
        errors,
    })
}

/// Whether head office holds the store's entry at `since` in `epoch` (position 0 always).
async fn holds(
    tx: &Transaction<'_>,
    store_id: i64,
    since: i64,
    epoch: Option<Epoch>,
) -> Result<bool, HqError> {
    let Some(epoch) = epoch.filter(|_| since > 0) else {
        return Ok(since == 0);
    };
    let row = tx
        .query_opt(
            "SELECT 1 FROM hq_log
             WHERE store_id = $1 AND master_seq = $2 AND epoch = $3 AND NOT undone",
            &[&store_id, &since, &serde_json::to_value(epoch)?],
        )
        .await?;
    Ok(row.is_some())
}

/// The store's master log no longer agrees with head office after `since`: flags what head
/// office holds after it as undone (kept; a master that logs the same event again clears it),
/// and records the truncation.
async fn undo_after(
    tx: &Transaction<'_>,
    store_id: i64,
    since: i64,
    since_epoch: Option<Epoch>,
) -> Result<(), HqError> {
    let undone = tx
        .execute(
            "UPDATE hq_log SET undone = true
             WHERE store_id = $1 AND master_seq > $2 AND NOT undone",
            &[&store_id, &since],
        )
        .await?;
    let message = format!(
        "the store's log does not agree after master_seq {since} (epoch {}): {undone} entries \
         flagged undone (a split brain's losing island, or a store restored from a backup)",
        since_epoch.map_or_else(|| "none".to_owned(), |e| e.to_string())
    );
    log::warn!("store {store_id}: {message}");
    record_error(tx, store_id, "truncated", None, &message).await
}

/// Inserts the entries, or updates the row of an event logged before with the same content (a
/// later master's verdict and position); returns the keys stored. One statement for the batch.
async fn store_rows(
    tx: &Transaction<'_>,
    store_id: i64,
    rows: &[Row<'_>],
) -> Result<HashSet<(i32, i64)>, HqError> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let devices: Vec<i32> = rows.iter().map(|r| r.key.0).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.key.1).collect();
    let master_seqs: Vec<i64> = rows.iter().map(|r| r.master_seq).collect();
    let epochs = rows
        .iter()
        .map(|r| serde_json::to_value(r.epoch))
        .collect::<Result<Vec<Value>, _>>()?;
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let entries: Vec<Json<&RawValue>> = rows.iter().map(|r| Json(r.raw)).collect();
    let stored = tx
        .query(
            "INSERT INTO hq_log (store_id, device_id, seq, master_seq, epoch, kind, status, entry)
             SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::int8[], $5::jsonb[],
                                      $6::text[], $7::text[], $8::jsonb[])
             ON CONFLICT (store_id, device_id, seq) DO UPDATE
                SET master_seq = excluded.master_seq, epoch = excluded.epoch,
                    status = excluded.status, entry = excluded.entry, undone = false,
                    ingested_at = now()
                WHERE hq_log.entry->'event'->'payload' = excluded.entry->'event'->'payload'
                  AND hq_log.entry->'event'->'user_id' = excluded.entry->'event'->'user_id'
                  -- Head office's catalogue change is logged by whichever master fetched it,
                  -- each with its own clock: its content is its payload.
                  AND (hq_log.device_id = 65535
                       OR hq_log.entry->'event'->'hlc' = excluded.entry->'event'->'hlc')
             RETURNING device_id, seq",
            &[
                &store_id,
                &devices,
                &seqs,
                &master_seqs,
                &epochs,
                &kinds,
                &statuses,
                &entries,
            ],
        )
        .await?;
    Ok(stored.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A sale's row and lines, projected from its entry.
struct ProjectedSale {
    key: (i32, i64),
    sale_id: String,
    user_id: String,
    status: &'static str,
    total_cents: i64,
    created_at_ms: i64,
    lines: Vec<SaleLineView>,
}

/// Why a logged sale cannot be projected into `hq_sale_rows`: the text of its ingest error.
#[derive(Debug, thiserror::Error)]
enum Unprojectable {
    /// The entry does not read as a sale.
    #[error(transparent)]
    Unreadable(#[from] serde_json::Error),
    /// A master logs a sale as accepted or rejected, never with another status.
    #[error("a logged sale with status {status:?}")]
    Status { status: String },
    /// Not a time PostgreSQL's `timestamptz` holds.
    #[error("created_at_ms is out of range")]
    CreatedAtOutOfRange,
    /// The sum of `qty × price_cents` overflows an `i64`.
    #[error("the sale's total does not fit in 64 bits")]
    TotalOverflow,
}

fn project_sale(row: &Row<'_>) -> Result<ProjectedSale, Unprojectable> {
    let entry: SaleEntry = serde_json::from_str(row.raw.get())?;
    let status = match entry.event.status.as_str() {
        "synced" => "accepted",
        "rejected" => "rejected",
        other => {
            let status = other.to_owned();
            return Err(Unprojectable::Status { status });
        }
    };
    // What PostgreSQL's timestamptz holds (the year 9999 at most), as the stores validate it.
    if !(0..=253_402_300_799_999).contains(&entry.event.created_at_ms) {
        return Err(Unprojectable::CreatedAtOutOfRange);
    }
    let mut total: i64 = 0;
    for line in &entry.event.payload.lines {
        total = line
            .qty
            .checked_mul(line.price_cents)
            .and_then(|line_total| total.checked_add(line_total))
            .ok_or(Unprojectable::TotalOverflow)?;
    }
    Ok(ProjectedSale {
        key: row.key,
        sale_id: entry.event.payload.sale_id,
        user_id: entry.event.user_id,
        status,
        total_cents: total,
        created_at_ms: entry.event.created_at_ms,
        lines: entry.event.payload.lines,
    })
}

/// Projects the stored entries into sales and their lines, and every entry's product snapshots
/// into stock. Returns how many entries could not be projected (each recorded).
async fn project(
    tx: &Transaction<'_>,
    store_id: i64,
    rows: &[Row<'_>],
    stored: &HashSet<(i32, i64)>,
) -> Result<u64, HqError> {
    let mut sales = Vec::new();
    let mut stock: BTreeMap<String, (ProductView, i64)> = BTreeMap::new();
    let mut errors = 0;
    for row in rows {
        if !stored.contains(&row.key) {
            continue;
        }
        match serde_json::from_str::<Snapshots>(row.raw.get()) {
            Ok(snapshots) => {
                for product in snapshots.products {
                    stock.insert(product.sku.clone(), (product, row.master_seq));
                }
            }
            Err(err) => {
                errors += 1;
                let message = format!("product snapshots that cannot be read: {err}");
                record_error(tx, store_id, "unprojectable", Some(row), &message).await?;
            }
        }
        if row.kind != "sale_recorded" {
            continue;
        }
        match project_sale(row) {
            Ok(sale) => sales.push(sale),
            Err(why) => {
                errors += 1;
                let message = format!("a sale that cannot be projected: {why}");
                record_error(tx, store_id, "unprojectable", Some(row), &message).await?;
            }
        }
    }
    write_sales(tx, store_id, &sales).await?;
    write_stock(tx, store_id, stock.into_values().collect()).await?;
    Ok(errors)
}

async fn write_sales(
    tx: &Transaction<'_>,
    store_id: i64,
    sales: &[ProjectedSale],
) -> Result<(), HqError> {
    if sales.is_empty() {
        return Ok(());
    }
    let devices: Vec<i32> = sales.iter().map(|s| s.key.0).collect();
    let seqs: Vec<i64> = sales.iter().map(|s| s.key.1).collect();
    let ids: Vec<&str> = sales.iter().map(|s| s.sale_id.as_str()).collect();
    let users: Vec<&str> = sales.iter().map(|s| s.user_id.as_str()).collect();
    let statuses: Vec<&str> = sales.iter().map(|s| s.status).collect();
    let totals: Vec<i64> = sales.iter().map(|s| s.total_cents).collect();
    let created: Vec<i64> = sales.iter().map(|s| s.created_at_ms).collect();
    tx.execute(
        "INSERT INTO hq_sale_rows
            (store_id, device_id, seq, sale_id, user_id, status, total_cents, created_at)
         SELECT $1, d, s, i, u, st, t, to_timestamp(ms / 1000.0)
         FROM unnest($2::int4[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[],
                     $8::int8[]) AS x(d, s, i, u, st, t, ms)
         ON CONFLICT (store_id, device_id, seq) DO UPDATE SET status = excluded.status",
        &[
            &store_id, &devices, &seqs, &ids, &users, &statuses, &totals, &created,
        ],
    )
    .await?;
    let mut line_devices = Vec::new();
    let mut line_seqs = Vec::new();
    let mut line_nos = Vec::new();
    let mut skus = Vec::new();
    let mut qtys = Vec::new();
    let mut prices = Vec::new();
    for sale in sales {
        for (no, line) in (1..).zip(&sale.lines) {
            line_devices.push(sale.key.0);
            line_seqs.push(sale.key.1);
            line_nos.push(no);
            skus.push(line.sku.as_str());
            qtys.push(line.qty);
            prices.push(line.price_cents);
        }
    }
    let line_nos: Vec<i32> = line_nos;
    tx.execute(
        "INSERT INTO hq_sale_line_rows (store_id, device_id, seq, line_no, sku, qty, price_cents)
         SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::int4[], $5::text[], $6::int8[],
                                  $7::int8[])
         ON CONFLICT DO NOTHING",
        &[
            &store_id,
            &line_devices,
            &line_seqs,
            &line_nos,
            &skus,
            &qtys,
            &prices,
        ],
    )
    .await?;
    Ok(())
}

async fn write_stock(
    tx: &Transaction<'_>,
    store_id: i64,
    products: Vec<(ProductView, i64)>,
) -> Result<(), HqError> {
    if products.is_empty() {
        return Ok(());
    }
    let skus: Vec<&str> = products.iter().map(|(p, _)| p.sku.as_str()).collect();
    let names: Vec<&str> = products.iter().map(|(p, _)| p.name.as_str()).collect();
    let prices: Vec<i64> = products.iter().map(|(p, _)| p.price_cents).collect();
    let stocks: Vec<i64> = products.iter().map(|(p, _)| p.stock).collect();
    let versions: Vec<i64> = products.iter().map(|(p, _)| p.version).collect();
    let seqs: Vec<i64> = products.iter().map(|(_, seq)| *seq).collect();
    tx.execute(
        "INSERT INTO hq_stock (store_id, sku, name, price_cents, stock, version, master_seq)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
                                  $7::int8[])
         ON CONFLICT (store_id, sku) DO UPDATE
            SET name = excluded.name, price_cents = excluded.price_cents,
                stock = excluded.stock, version = excluded.version,
                master_seq = excluded.master_seq, updated_at = now()",
        &[&store_id, &skus, &names, &prices, &stocks, &versions, &seqs],
    )
    .await?;
    Ok(())
}

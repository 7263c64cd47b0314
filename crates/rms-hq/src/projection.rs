//! Projection: the stored entries of a batch turned into the tables people query, in the
//! batch's transaction: sales and their lines (`hq_sale_rows`, `hq_sale_line_rows`) from
//! `sale_recorded` entries, and each product's stock (`hq_stock`) from the product snapshots
//! every entry carries. An entry that cannot be projected is recorded as an ingest error of kind
//! `unprojectable` and never blocks the entries after it.
//!
//! It points down at `batch` and `ingest_errors`; `ingest` calls it.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use tokio_postgres::Transaction;

use crate::batch::Row;
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
pub(crate) async fn project(
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

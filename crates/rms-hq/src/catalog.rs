//! The catalogue head office owns: products' names and prices, each change with a gapless
//! version, and the changes a store follows (the latest per SKU after a version, so a new store's
//! first read is the snapshot of the whole catalogue).
//!
//! **On crash:** a change and its version commit together; a change that did not commit took no
//! version (the next one takes it), so a follower never skips one.

use rms_domain::hq::{CatalogChange, CatalogChanges, CatalogEntry};

use crate::db::Db;
use crate::error::HqError;

/// Sets `sku`'s name and price under the next catalogue version.
pub async fn put(db: &Db, sku: &str, entry: &CatalogEntry) -> Result<CatalogChange, HqError> {
    entry.validate(sku)?;
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    // The row lock on the head is held until commit: versions commit in order, without gaps.
    tx.execute("SELECT 1 FROM hq_catalog_head WHERE id = 1 FOR UPDATE", &[])
        .await?;
    // A retried PUT (its answer lost) is not a new change: stores would otherwise overwrite
    // their own edits made since with the same value again.
    let current = tx
        .query_opt(
            "SELECT version FROM hq_catalog WHERE sku = $1 AND name = $2 AND price_cents = $3",
            &[&sku, &entry.name, &entry.price_cents],
        )
        .await?;
    if let Some(current) = current {
        let version: i64 = current.get(0);
        return Ok(CatalogChange {
            version: u64::try_from(version).unwrap_or(0),
            sku: sku.to_owned(),
            name: entry.name.clone(),
            price_cents: entry.price_cents,
        });
    }
    let version: i64 = tx
        .query_one(
            "UPDATE hq_catalog_head SET version = version + 1 WHERE id = 1 RETURNING version",
            &[],
        )
        .await?
        .get(0);
    tx.execute(
        "INSERT INTO hq_catalog_changes (version, sku, name, price_cents) VALUES ($1, $2, $3, $4)",
        &[&version, &sku, &entry.name, &entry.price_cents],
    )
    .await?;
    tx.execute(
        "INSERT INTO hq_catalog (sku, name, price_cents, version) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sku) DO UPDATE
            SET name = excluded.name, price_cents = excluded.price_cents,
                version = excluded.version",
        &[&sku, &entry.name, &entry.price_cents, &version],
    )
    .await?;
    tx.commit().await?;
    Ok(CatalogChange {
        version: u64::try_from(version).unwrap_or(0),
        sku: sku.to_owned(),
        name: entry.name.clone(),
        price_cents: entry.price_cents,
    })
}

/// The changes after `since`, the latest per SKU only, in version order, at most `limit`: every
/// change left out is superseded by a later one of its SKU, so a follower that goes on from the
/// last version it got misses nothing.
pub async fn changes(db: &Db, since: u64, limit: usize) -> Result<CatalogChanges, HqError> {
    let since = i64::try_from(since).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let client = db.client().await?;
    let version: i64 = client
        .query_one("SELECT version FROM hq_catalog_head WHERE id = 1", &[])
        .await?
        .get(0);
    let rows = client
        .query(
            "SELECT version, sku, name, price_cents FROM (
                SELECT DISTINCT ON (sku) version, sku, name, price_cents
                FROM hq_catalog_changes WHERE version > $1 AND version <= $2
                ORDER BY sku, version DESC) latest
             ORDER BY version LIMIT $3",
            &[&since, &version, &limit],
        )
        .await?;
    Ok(CatalogChanges {
        version: u64::try_from(version).unwrap_or(0),
        changes: rows
            .iter()
            .map(|r| {
                let version: i64 = r.get(0);
                CatalogChange {
                    version: u64::try_from(version).unwrap_or(0),
                    sku: r.get(1),
                    name: r.get(2),
                    price_cents: r.get(3),
                }
            })
            .collect(),
    })
}

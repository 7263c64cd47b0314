//! The `products` table (what this device shows) and `products_base` (the master's state as of
//! this device's log head). Same columns; [`Table`] picks one.

use rms_domain::Product;
use rms_domain::rules::Products;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{StorageError, from_sql_u64, sql_u64};

/// Which of the two product tables a call reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// What tills see: the master's state with this device's own unlogged events on top.
    Visible,
    /// The master's state as of this device's log head.
    Base,
}

impl Table {
    const fn name(self) -> &'static str {
        match self {
            Table::Visible => "products",
            Table::Base => "products_base",
        }
    }
}

const COLUMNS: &str = "sku, name, price_cents, stock, version, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, i64, i64, i64, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_product(raw: (String, String, i64, i64, i64, String)) -> Result<Product, StorageError> {
    let (sku, name, price_cents, stock, version, updated_at) = raw;
    Ok(Product {
        sku,
        name,
        price_cents,
        stock,
        version: from_sql_u64(version, "products")?,
        updated_at,
    })
}

/// A product as tills see it.
pub fn get(conn: &Connection, sku: &str) -> Result<Option<Product>, StorageError> {
    get_in(conn, Table::Visible, sku)
}

/// The product `sku` as `table` holds it, if it is there.
pub fn get_in(conn: &Connection, table: Table, sku: &str) -> Result<Option<Product>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM {} WHERE sku = ?1", table.name());
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_row([sku], from_row)
        .optional()?
        .map(to_product)
        .transpose()
}

/// Every product tills see, by SKU.
pub fn list(conn: &Connection) -> Result<Vec<Product>, StorageError> {
    list_in(conn, Table::Visible)
}

/// Every product `table` holds, by SKU.
pub fn list_in(conn: &Connection, table: Table) -> Result<Vec<Product>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM {} ORDER BY sku",
        table.name()
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.map(|raw| to_product(raw?)).collect()
}

/// The products among `skus` that exist in `table`.
pub fn load_many(conn: &Connection, table: Table, skus: &[&str]) -> Result<Products, StorageError> {
    let mut products = Products::new();
    for sku in skus {
        if let Some(product) = get_in(conn, table, sku)? {
            products.insert(product.sku.clone(), product);
        }
    }
    Ok(products)
}

/// The products (as this device shows them) changed after `feed_seq`, in change order, with the
/// last `feed_seq` read (the change feed's look, migration 6), at most `limit`.
pub fn changed_since(
    conn: &Connection,
    feed_seq: i64,
    limit: usize,
) -> Result<(Vec<Product>, i64), StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, feed_seq FROM products WHERE feed_seq > ?1 ORDER BY feed_seq LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut last = feed_seq;
    let mut changed = Vec::new();
    let mut rows = stmt.query(params![feed_seq, limit])?;
    while let Some(row) = rows.next()? {
        changed.push(to_product(from_row(row)?)?);
        last = last.max(row.get(6)?);
    }
    Ok((changed, last))
}

/// Where the change feed starts: the newest `feed_seq`.
pub fn feed_head(conn: &Connection) -> Result<i64, StorageError> {
    Ok(
        conn.query_row("SELECT value FROM feed_counter WHERE id = 1", [], |r| {
            r.get(0)
        })?,
    )
}

/// Inserts or replaces `product` in `table` (in the caller's transaction). In `products`, a
/// trigger gives a new row, or one whose values changed, the next `feed_seq`, so the change feed
/// sees it.
pub fn put(conn: &Connection, table: Table, product: &Product) -> Result<(), StorageError> {
    conn.prepare_cached(&format!(
        "INSERT INTO {} ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (sku) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents,
         stock = excluded.stock, version = excluded.version, updated_at = excluded.updated_at",
        table.name()
    ))?
    .execute(params![
        product.sku,
        product.name,
        product.price_cents,
        product.stock,
        sql_u64(product.version, "products")?,
        product.updated_at,
    ])?;
    Ok(())
}

/// Removes the product `sku` from `table`, if it is there (a truncation undid its creation).
pub fn delete(conn: &Connection, table: Table, sku: &str) -> Result<(), StorageError> {
    conn.prepare_cached(&format!("DELETE FROM {} WHERE sku = ?1", table.name()))?
        .execute([sku])?;
    Ok(())
}

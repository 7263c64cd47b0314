//! The `products` table.

use rms_domain::Product;
use rms_domain::rules::Products;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::StorageError;
use crate::error::{from_sql_u64, sql_u64};

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

pub fn get(conn: &Connection, sku: &str) -> Result<Option<Product>, StorageError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM products WHERE sku = ?1"))?;
    stmt.query_row([sku], from_row)
        .optional()?
        .map(to_product)
        .transpose()
}

/// Every product, by SKU.
pub fn list(conn: &Connection) -> Result<Vec<Product>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM products ORDER BY sku"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.map(|raw| to_product(raw?)).collect()
}

/// The products among `skus` that exist.
pub fn load_many(conn: &Connection, skus: &[&str]) -> Result<Products, StorageError> {
    let mut products = Products::new();
    for sku in skus {
        if let Some(product) = get(conn, sku)? {
            products.insert(product.sku.clone(), product);
        }
    }
    Ok(products)
}

/// Inserts or replaces `product`.
pub fn put(conn: &Connection, product: &Product) -> Result<(), StorageError> {
    conn.prepare_cached(&format!(
        "INSERT INTO products ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (sku) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents,
         stock = excluded.stock, version = excluded.version, updated_at = excluded.updated_at"
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

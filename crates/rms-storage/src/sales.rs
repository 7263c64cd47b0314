//! The `sales` and `sale_lines` tables. A sale's status is read from its event, never stored twice.

use rms_domain::{DeviceId, EventId, EventStatus, RejectReason, Sale, SaleLine};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::StorageError;

const TABLE: &str = "sales";

/// Stores a sale and its lines. Its event must be stored first.
pub fn insert(conn: &Connection, sale: &Sale) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO sales (sale_id, event_id, device_id, user_id, total_cents, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        sale.sale_id,
        sale.event_id.to_string(),
        sale.device_id.get(),
        sale.user_id,
        sale.total_cents,
        sale.created_at,
    ])?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO sale_lines (sale_id, line_no, sku, qty, price_cents) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (line_no, line) in (0_i64..).zip(&sale.lines) {
        stmt.execute(params![
            sale.sale_id,
            line_no,
            line.sku,
            line.qty,
            line.price_cents
        ])?;
    }
    Ok(())
}

const SELECT: &str =
    "SELECT s.sale_id, s.event_id, s.device_id, s.user_id, s.total_cents, s.created_at,
                      e.status, e.reason
                      FROM sales s JOIN sync_events e ON e.event_id = s.event_id";

struct Raw {
    sale_id: String,
    event_id: String,
    device_id: u16,
    user_id: String,
    total_cents: i64,
    created_at: String,
    status: String,
    reason: Option<String>,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        sale_id: row.get(0)?,
        event_id: row.get(1)?,
        device_id: row.get(2)?,
        user_id: row.get(3)?,
        total_cents: row.get(4)?,
        created_at: row.get(5)?,
        status: row.get(6)?,
        reason: row.get(7)?,
    })
}

fn decode(conn: &Connection, raw: Raw) -> Result<Sale, StorageError> {
    let bad = |e: String| StorageError::corrupt(TABLE, e);
    let mut stmt = conn.prepare_cached(
        "SELECT sku, qty, price_cents FROM sale_lines WHERE sale_id = ?1 ORDER BY line_no",
    )?;
    let lines = stmt
        .query_map([&raw.sale_id], |row| {
            Ok(SaleLine {
                sku: row.get(0)?,
                qty: row.get(1)?,
                price_cents: row.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Sale {
        sale_id: raw.sale_id,
        event_id: raw
            .event_id
            .parse::<EventId>()
            .map_err(|e| bad(e.to_string()))?,
        device_id: DeviceId::new(raw.device_id).ok_or_else(|| bad("device_id 0".into()))?,
        user_id: raw.user_id,
        status: raw.status.parse::<EventStatus>().map_err(bad)?.into(),
        reason: raw
            .reason
            .map(|r| r.parse::<RejectReason>())
            .transpose()
            .map_err(bad)?,
        lines,
        total_cents: raw.total_cents,
        created_at: raw.created_at,
    })
}

pub fn get(conn: &Connection, sale_id: &str) -> Result<Option<Sale>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE s.sale_id = ?1"))?;
    let raw = stmt.query_row([sale_id], from_row).optional()?;
    raw.map(|raw| decode(conn, raw)).transpose()
}

/// The newest sales first, at most `limit`.
pub fn list(conn: &Connection, limit: usize) -> Result<Vec<Sale>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} ORDER BY s.rowid DESC LIMIT ?1"))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let raws = stmt
        .query_map([limit], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(|raw| decode(conn, raw)).collect()
}

/// Stores a stock adjustment's row. Its event must be stored first.
#[allow(clippy::too_many_arguments)]
pub fn insert_adjustment(
    conn: &Connection,
    event_id: &EventId,
    sku: &str,
    delta: i64,
    reason: &str,
    user_id: &str,
    created_at: &str,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO stock_adjustments (event_id, sku, delta, reason, device_id, user_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event_id.to_string(),
        sku,
        delta,
        reason,
        event_id.device_id.get(),
        user_id,
        created_at
    ])?;
    Ok(())
}

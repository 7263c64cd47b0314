//! Daily closings (issue #17, as France's NF525 asks; `docs/JOURNAL.md`): once a UTC day is over,
//! each device records the count and total of the sales it made that day as an event
//! (`EventPayload::DayClosed`), journaled, chained and signed like every event it makes.
//!
//! A sale counts on the day its device made it (`created_at_ms`), unless the master rejected it:
//! the cashier was told it did not go through. A day is closed once per device (`already_exists`
//! for a second time), and only days with sales are closed.
//!
//! **On crash:** a closing is one local write (`local::record`); a day not closed yet is closed at
//! the next check.

use rms_domain::{DAY_MS, DeviceId, EventPayload, day_of_ms, day_start_ms};
use rusqlite::{Connection, params};

use crate::error::{StorageError, sql_u64};

/// Most days closed in one check (a device that was off for longer closes the rest next time).
pub const DAYS_PER_CHECK_MAX: usize = 31;

/// The count and total (cents) of `device`'s sales on `day`, rejected ones left out.
pub fn totals(conn: &Connection, device: DeviceId, day: &str) -> Result<(u64, i64), StorageError> {
    let start = day_start_ms(day).ok_or_else(|| {
        StorageError::Invalid(rms_domain::ValidationError::new(
            "day",
            "must be a date, YYYY-MM-DD",
        ))
    })?;
    let mut stmt = conn.prepare_cached(
        "SELECT payload FROM sync_events WHERE device_id = ?1 AND kind = 'sale_recorded'
         AND status != 'rejected' AND created_at_ms >= ?2 AND created_at_ms < ?3",
    )?;
    let rows = stmt.query_map(
        params![
            device.get(),
            sql_u64(start, "sync_events")?,
            sql_u64(start + DAY_MS, "sync_events")?
        ],
        |r| r.get::<_, String>(0),
    )?;
    let (mut sales, mut total) = (0u64, 0i64);
    for payload in rows {
        let payload: EventPayload =
            serde_json::from_str(&payload?).map_err(|e| StorageError::corrupt("sync_events", e))?;
        if let EventPayload::SaleRecorded { lines, .. } = payload {
            sales += 1;
            for line in lines {
                total = total.saturating_add(line.qty.saturating_mul(line.price_cents));
            }
        }
    }
    Ok((sales, total))
}

/// Whether `device` has closed `day`.
pub fn closed(conn: &Connection, device: DeviceId, day: &str) -> Result<bool, StorageError> {
    let found: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM sync_events WHERE device_id = ?1 AND kind = 'day_closed'
             AND entity_key = ?2 AND status != 'rejected'",
        )?
        .query_row(params![device.get(), format!("closing:{day}")], |r| {
            r.get(0)
        })?;
    Ok(found > 0)
}

/// The days before the one of `now_ms` on which `device` sold and that it has not closed, oldest
/// first, at most [`DAYS_PER_CHECK_MAX`]. Reads the device's sales once (a check runs at start
/// and when the day changes).
pub fn due(conn: &Connection, device: DeviceId, now_ms: u64) -> Result<Vec<String>, StorageError> {
    let today = now_ms - now_ms % DAY_MS;
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT created_at_ms / 86400000 FROM sync_events WHERE device_id = ?1
         AND kind = 'sale_recorded' AND status != 'rejected' AND created_at_ms < ?2 ORDER BY 1",
    )?;
    let days: Vec<i64> = stmt
        .query_map(params![device.get(), sql_u64(today, "sync_events")?], |r| {
            r.get(0)
        })?
        .collect::<Result<_, _>>()?;
    let mut due = Vec::new();
    for day in days {
        let day = day_of_ms(u64::try_from(day).unwrap_or(0) * DAY_MS);
        if !closed(conn, device, &day)? {
            due.push(day);
            if due.len() == DAYS_PER_CHECK_MAX {
                break;
            }
        }
    }
    Ok(due)
}

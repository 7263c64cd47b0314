//! The `sync_events` table: this device's outbox (its own pending events) and its copy of the
//! master log (events with a `master_seq`).

use rms_domain::{EventId, Hlc, RejectReason, SyncEvent, Term};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::StorageError;
use crate::error::{from_sql_u64, sql_u64};

const TABLE: &str = "sync_events";
const COLUMNS: &str = "event_id, hlc_wall_ms, hlc_counter, user_id, term, payload, critical, status, \
                       reason, master_seq, created_at_ms";

struct Raw {
    event_id: String,
    hlc_wall_ms: i64,
    hlc_counter: u32,
    user_id: String,
    term: i64,
    payload: String,
    critical: bool,
    status: String,
    reason: Option<String>,
    master_seq: Option<i64>,
    created_at_ms: i64,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        event_id: row.get(0)?,
        hlc_wall_ms: row.get(1)?,
        hlc_counter: row.get(2)?,
        user_id: row.get(3)?,
        term: row.get(4)?,
        payload: row.get(5)?,
        critical: row.get(6)?,
        status: row.get(7)?,
        reason: row.get(8)?,
        master_seq: row.get(9)?,
        created_at_ms: row.get(10)?,
    })
}

fn decode(raw: Raw) -> Result<SyncEvent, StorageError> {
    let bad = |e: String| StorageError::corrupt(TABLE, e);
    Ok(SyncEvent {
        event_id: raw
            .event_id
            .parse::<EventId>()
            .map_err(|e| bad(e.to_string()))?,
        hlc: Hlc::new(from_sql_u64(raw.hlc_wall_ms, TABLE)?, raw.hlc_counter),
        user_id: raw.user_id,
        term: Term(from_sql_u64(raw.term, TABLE)?),
        critical: raw.critical,
        payload: serde_json::from_str(&raw.payload).map_err(|e| bad(e.to_string()))?,
        status: raw.status.parse().map_err(bad)?,
        reason: raw
            .reason
            .map(|r| r.parse::<RejectReason>())
            .transpose()
            .map_err(bad)?,
        master_seq: raw.master_seq.map(|s| from_sql_u64(s, TABLE)).transpose()?,
        created_at_ms: from_sql_u64(raw.created_at_ms, TABLE)?,
    })
}

pub fn insert(conn: &Connection, event: &SyncEvent) -> Result<(), StorageError> {
    let payload = serde_json::to_string(&event.payload)
        .map_err(|e| StorageError::corrupt(TABLE, e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO sync_events (event_id, device_id, seq, hlc_wall_ms, hlc_counter, user_id, term,
         kind, entity_key, payload, critical, status, reason, master_seq, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        event.event_id.to_string(),
        event.event_id.device_id.get(),
        sql_u64(event.event_id.seq, TABLE)?,
        sql_u64(event.hlc.wall_ms, TABLE)?,
        event.hlc.counter,
        event.user_id,
        sql_u64(event.term.0, TABLE)?,
        event.payload.kind(),
        event.payload.entity_key(),
        payload,
        event.critical,
        event.status.as_str(),
        event.reason.map(RejectReason::as_str),
        event.master_seq.map(|s| sql_u64(s, TABLE)).transpose()?,
        sql_u64(event.created_at_ms, TABLE)?,
    ])?;
    Ok(())
}

pub fn get(conn: &Connection, event_id: &EventId) -> Result<Option<SyncEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE event_id = ?1"
    ))?;
    stmt.query_row([event_id.to_string()], from_row)
        .optional()?
        .map(decode)
        .transpose()
}

/// This device's own events still waiting for the master's verdict, oldest first, at most `limit`.
pub fn pending(conn: &Connection, limit: usize) -> Result<Vec<SyncEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE status = 'pending' ORDER BY device_id, seq LIMIT ?1"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map([limit], from_row)?;
    rows.map(|raw| decode(raw?)).collect()
}

/// How many events are pending, and when the oldest was made (wall ms at its origin).
pub fn pending_summary(conn: &Connection) -> Result<(u64, Option<u64>), StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT COUNT(*), MIN(created_at_ms) FROM sync_events WHERE status = 'pending'",
    )?;
    let (count, oldest): (i64, Option<i64>) =
        stmt.query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok((
        from_sql_u64(count, TABLE)?,
        oldest.map(|o| from_sql_u64(o, TABLE)).transpose()?,
    ))
}

/// Master-log entries after `since`, in `master_seq` order, at most `limit`.
pub fn log_after(
    conn: &Connection,
    since: u64,
    limit: usize,
) -> Result<Vec<SyncEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE master_seq > ?1 ORDER BY master_seq LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![sql_u64(since, TABLE)?, limit], from_row)?;
    rows.map(|raw| decode(raw?)).collect()
}

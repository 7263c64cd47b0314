//! The `audit_log` table (SyncAuditLog). Append-only: the schema's triggers refuse updates and
//! deletes, so this module only appends and reads.
//!
//! **Dependencies:** every audit row is journaled as it is appended, so this module calls
//! `crate::journal::chain` (which knows nothing of it); the journal's check reads audit rows
//! back through [`page`] from above.

use rms_domain::{AuditEntry, DeviceId, EventId, Operation, Outcome};
use rusqlite::{Connection, Row, params};

use crate::error::StorageError;

const TABLE: &str = "audit_log";

/// Most entries one query returns.
pub const QUERY_LIMIT_MAX: usize = 1000;

/// Appends `entry` (its `id` is ignored) and its journal entry, and returns the id it was given.
pub fn append(conn: &Connection, entry: &AuditEntry) -> Result<i64, StorageError> {
    let details =
        serde_json::to_string(&entry.details).map_err(|e| StorageError::corrupt(TABLE, e))?;
    conn.prepare_cached(
        "INSERT INTO audit_log (at, operation, device_id, user_id, event_id, outcome, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        entry.at,
        entry.operation.as_str(),
        entry.device_id.map(DeviceId::get),
        entry.user_id,
        entry.event_id.map(|e| e.to_string()),
        entry.outcome.as_str(),
        details,
    ])?;
    let id = conn.last_insert_rowid();
    let stored = AuditEntry {
        id,
        ..entry.clone()
    };
    crate::journal::chain::append_audit(conn, &stored)?;
    Ok(id)
}

/// Which entries to read. Newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries of this operation (`None`: every operation).
    pub operation: Option<Operation>,
    /// Only entries about this device (`None`: any device, and entries about none).
    pub device_id: Option<DeviceId>,
    /// Only entries after this id.
    pub after_id: Option<i64>,
    /// Only entries at or after this time (RFC 3339, compared as UTC text).
    pub since_at: Option<String>,
    /// Most entries returned, capped at [`QUERY_LIMIT_MAX`]; 0 (the default) returns none.
    pub limit: usize,
}

/// Entries matching `q`, newest first. With a `since` bound the page is the *oldest* `limit`
/// entries after it (still returned newest first), so a reader can page forward without gaps.
pub fn query(conn: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>, StorageError> {
    let paging = q.after_id.is_some() || q.since_at.is_some();
    let order = if paging { "ASC" } else { "DESC" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT * FROM (SELECT id, at, operation, device_id, user_id, event_id, outcome, details
         FROM audit_log
         WHERE (?1 IS NULL OR operation = ?1) AND (?2 IS NULL OR device_id = ?2)
           AND (?3 IS NULL OR id > ?3) AND (?4 IS NULL OR at >= ?4)
         ORDER BY id {order} LIMIT ?5) ORDER BY id DESC"
    ))?;
    let limit = q.limit.min(QUERY_LIMIT_MAX);
    let rows = stmt.query_map(
        params![
            q.operation.map(Operation::as_str),
            q.device_id.map(DeviceId::get),
            q.after_id,
            q.since_at,
            i64::try_from(limit).unwrap_or(0),
        ],
        from_row,
    )?;
    rows.map(|raw| decode(raw?)).collect()
}

/// The entries of one operation after `after_id`, oldest first, at most `limit`: a range of the
/// index on `(operation, id)`, so a reader that follows one operation (the change feed follows
/// alarms after every input) reads only what is new, however long the log.
pub fn after(
    conn: &Connection,
    operation: Operation,
    after_id: i64,
    limit: usize,
) -> Result<Vec<AuditEntry>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, operation, device_id, user_id, event_id, outcome, details
         FROM audit_log WHERE operation = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let limit = i64::try_from(limit.min(QUERY_LIMIT_MAX)).unwrap_or(0);
    let rows = stmt.query_map(params![operation.as_str(), after_id, limit], from_row)?;
    rows.map(|raw| decode(raw?)).collect()
}

/// The entries after `after_id`, oldest first, at most `limit` (a range of the rowid: the
/// journal's check reads the whole log this way).
pub fn page(
    conn: &Connection,
    after_id: i64,
    limit: usize,
) -> Result<Vec<AuditEntry>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, operation, device_id, user_id, event_id, outcome, details
         FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![after_id, limit], from_row)?;
    rows.map(|raw| decode(raw?)).collect()
}

type Raw = (
    i64,
    String,
    String,
    Option<u16>,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn from_row(row: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn decode(raw: Raw) -> Result<AuditEntry, StorageError> {
    let (id, at, operation, device_id, user_id, event_id, outcome, details) = raw;
    let bad = |e: String| StorageError::corrupt(TABLE, e);
    Ok(AuditEntry {
        id,
        at,
        operation: operation
            .parse::<Operation>()
            .map_err(|e| bad(e.to_string()))?,
        device_id: device_id.and_then(DeviceId::new),
        user_id,
        event_id: event_id
            .map(|e| e.parse::<EventId>())
            .transpose()
            .map_err(|e| bad(e.to_string()))?,
        outcome: outcome.parse::<Outcome>().map_err(|e| bad(e.to_string()))?,
        details: serde_json::from_str(&details).map_err(|e| bad(e.to_string()))?,
    })
}

/// Elections this device won and role changes it made, as its audit log records them
/// (`GET /metrics`). Uses the index on `operation`.
pub fn election_counts(conn: &Connection) -> Result<(u64, u64), StorageError> {
    let won: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM audit_log WHERE operation = 'election'
             AND json_extract(details, '$.won') IS NOT NULL",
        )?
        .query_row([], |row| row.get(0))?;
    let role_changes: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM audit_log WHERE operation = 'role_change'")?
        .query_row([], |row| row.get(0))?;
    Ok((
        u64::try_from(won).unwrap_or(0),
        u64::try_from(role_changes).unwrap_or(0),
    ))
}

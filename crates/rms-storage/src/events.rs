//! The `sync_events` table: this device's outbox (its own pending events) and its copy of the
//! master log (events with a `master_seq`, with the epoch that decided them and the products
//! right after them).
//!
//! **Dependencies:** imports only `crate::error`; the trust list, the journal's check, the
//! master's check of a push, the log chain, local writes and the replica read it from above.

use std::collections::{BTreeMap, BTreeSet};

use rms_domain::{
    ChainLink, DeviceId, Epoch, EventId, Hlc, LogEntry, Product, RejectReason, SyncEvent, Term,
};
use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, params};

use crate::error::{StorageError, from_sql_u64, sql_u64};

const TABLE: &str = "sync_events";
const COLUMNS: &str = "event_id, hlc_wall_ms, hlc_counter, user_id, term, payload, critical, status, \
                       reason, master_seq, created_at_ms, accepted_before, epoch_term, epoch_master, \
                       epoch_priority, products_after, forced, chain_seq, chain_prev";

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
    accepted_before: bool,
    epoch_term: Option<i64>,
    epoch_master: Option<u16>,
    epoch_priority: Option<i32>,
    products_after: Option<String>,
    forced: bool,
    chain_seq: Option<i64>,
    chain_prev: Option<String>,
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
        accepted_before: row.get(11)?,
        epoch_term: row.get(12)?,
        epoch_master: row.get(13)?,
        epoch_priority: row.get(14)?,
        products_after: row.get(15)?,
        forced: row.get(16)?,
        chain_seq: row.get(17)?,
        chain_prev: row.get(18)?,
    })
}

fn bad(message: impl ToString) -> StorageError {
    StorageError::corrupt(TABLE, message)
}

fn decode_event(raw: &Raw) -> Result<SyncEvent, StorageError> {
    Ok(SyncEvent {
        event_id: raw.event_id.parse::<EventId>().map_err(bad)?,
        hlc: Hlc::new(from_sql_u64(raw.hlc_wall_ms, TABLE)?, raw.hlc_counter),
        user_id: raw.user_id.clone(),
        term: Term(from_sql_u64(raw.term, TABLE)?),
        critical: raw.critical,
        payload: serde_json::from_str(&raw.payload).map_err(bad)?,
        status: raw.status.parse().map_err(bad)?,
        reason: raw
            .reason
            .as_deref()
            .map(str::parse::<RejectReason>)
            .transpose()
            .map_err(bad)?,
        master_seq: raw.master_seq.map(|s| from_sql_u64(s, TABLE)).transpose()?,
        created_at_ms: from_sql_u64(raw.created_at_ms, TABLE)?,
        accepted_before: raw.accepted_before,
        chain: match (raw.chain_seq, &raw.chain_prev) {
            (Some(seq), Some(prev)) => Some(ChainLink {
                seq: from_sql_u64(seq, TABLE)?,
                prev: prev.clone(),
            }),
            _ => None,
        },
    })
}

fn decode_entry(raw: &Raw) -> Result<Option<LogEntry>, StorageError> {
    let (Some(term), Some(master), Some(priority)) =
        (raw.epoch_term, raw.epoch_master, raw.epoch_priority)
    else {
        return Ok(None);
    };
    let epoch = Epoch {
        term: Term(from_sql_u64(term, TABLE)?),
        master_id: DeviceId::new(master).ok_or_else(|| bad("epoch master 0"))?,
        master_priority: priority,
    };
    let products: Vec<Product> = match &raw.products_after {
        Some(json) => serde_json::from_str(json).map_err(bad)?,
        None => Vec::new(),
    };
    Ok(Some(LogEntry {
        event: decode_event(raw)?,
        epoch,
        products,
        forced: raw.forced,
    }))
}

/// Inserts an event this device has not stored before (its own new event, or another device's
/// from the master log, with `entry`'s verdict columns). An event id stored already is an error.
pub fn insert(
    conn: &Connection,
    event: &SyncEvent,
    entry: Option<(&Epoch, &[Product], bool)>,
) -> Result<(), StorageError> {
    if Inserter::new(conn)?.insert(event, entry)? {
        Ok(())
    } else {
        Err(bad(format!("event {} is stored already", event.event_id)))
    }
}

/// Inserts events with one prepared statement (a batch of log entries looks it up once, not per
/// event). An event whose id is stored already is left as it is.
pub struct Inserter<'c> {
    stmt: CachedStatement<'c>,
}

impl<'c> Inserter<'c> {
    /// Prepares the insert on `conn` (cached: a second inserter on one connection reuses it).
    pub fn new(conn: &'c Connection) -> Result<Inserter<'c>, StorageError> {
        let stmt = conn.prepare_cached(
            "INSERT INTO sync_events (event_id, device_id, seq, hlc_wall_ms, hlc_counter, user_id, term,
             kind, entity_key, payload, critical, status, reason, master_seq, created_at_ms, accepted_before,
             epoch_term, epoch_master, epoch_priority, products_after, forced, chain_seq, chain_prev)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
             ?21, ?22, ?23)
             ON CONFLICT (device_id, seq) DO NOTHING",
        )?;
        Ok(Inserter { stmt })
    }

    /// Inserts a master-log entry if its event is not stored yet (no read first); false if it
    /// is (the caller compares and records the verdict on the stored one).
    pub fn entry_if_new(&mut self, entry: &LogEntry) -> Result<bool, StorageError> {
        self.insert(
            &entry.event,
            Some((&entry.epoch, &entry.products, entry.forced)),
        )
    }

    /// False, writing nothing, if the event id is stored already. Any other constraint (a taken
    /// `master_seq`) fails as usual.
    fn insert(
        &mut self,
        event: &SyncEvent,
        entry: Option<(&Epoch, &[Product], bool)>,
    ) -> Result<bool, StorageError> {
        let payload = serde_json::to_string(&event.payload).map_err(bad)?;
        let products_after = entry
            .map(|(_, products, _)| serde_json::to_string(products))
            .transpose()
            .map_err(bad)?;
        let inserted = self.stmt.execute(params![
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
            event.accepted_before,
            entry
                .map(|(e, _, _)| sql_u64(e.term.0, TABLE))
                .transpose()?,
            entry.map(|(e, _, _)| e.master_id.get()),
            entry.map(|(e, _, _)| e.master_priority),
            products_after,
            entry.is_some_and(|(_, _, forced)| forced),
            event
                .chain
                .as_ref()
                .map(|l| sql_u64(l.seq, TABLE))
                .transpose()?,
            event.chain.as_ref().map(|l| l.prev.as_str()),
        ])?;
        Ok(inserted == 1)
    }
}

/// Records a verdict (and, for a log entry, its epoch and snapshot) on an event already stored.
pub fn set_decision(
    conn: &Connection,
    event: &SyncEvent,
    entry: Option<&LogEntry>,
) -> Result<(), StorageError> {
    let products_after = entry
        .map(|e| serde_json::to_string(&e.products))
        .transpose()
        .map_err(bad)?;
    let changed = conn
        .prepare_cached(
            "UPDATE sync_events SET status = ?2, reason = ?3, master_seq = ?4, accepted_before = ?5,
             epoch_term = ?6, epoch_master = ?7, epoch_priority = ?8, products_after = ?9, forced = ?10
             WHERE device_id = ?1 AND seq = ?11",
        )?
        .execute(params![
            event.event_id.device_id.get(),
            event.status.as_str(),
            event.reason.map(RejectReason::as_str),
            event.master_seq.map(|s| sql_u64(s, TABLE)).transpose()?,
            event.accepted_before,
            entry.map(|e| sql_u64(e.epoch.term.0, TABLE)).transpose()?,
            entry.map(|e| e.epoch.master_id.get()),
            entry.map(|e| e.epoch.master_priority),
            products_after,
            entry.is_some_and(|e| e.forced),
            sql_u64(event.event_id.seq, TABLE)?,
        ])?;
    if changed == 0 {
        return Err(StorageError::NotFound {
            what: format!("event {}", event.event_id),
        });
    }
    Ok(())
}

/// The event `event_id`, if this device stores it (its own, or one from the master log).
pub fn get(conn: &Connection, event_id: &EventId) -> Result<Option<SyncEvent>, StorageError> {
    row(conn, event_id)?
        .map(|raw| decode_event(&raw))
        .transpose()
}

/// The greatest sequence number of `device`'s events stored here.
pub fn newest_seq(conn: &Connection, device: DeviceId) -> Result<Option<u64>, StorageError> {
    let newest: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM sync_events WHERE device_id = ?1")?
        .query_row([device.get()], |r| r.get(0))?;
    newest.map(|n| from_sql_u64(n, TABLE)).transpose()
}

/// The newest event of `event_id`'s origin stored before it (by sequence number).
pub fn latest_before(
    conn: &Connection,
    event_id: &EventId,
) -> Result<Option<SyncEvent>, StorageError> {
    let seq = i64::try_from(event_id.seq).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE device_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT 1"
    ))?;
    stmt.query_row(params![event_id.device_id.get(), seq], from_row)
        .optional()?
        .map(|raw| decode_event(&raw))
        .transpose()
}

/// The row of an event, found by its key `(device_id, seq)`. An id whose sequence number SQLite
/// cannot hold (any `u64` parses as an id) is not stored: not found, not an error.
fn row(conn: &Connection, event_id: &EventId) -> Result<Option<Raw>, StorageError> {
    let Ok(seq) = i64::try_from(event_id.seq) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE device_id = ?1 AND seq = ?2"
    ))?;
    let key = params![event_id.device_id.get(), seq];
    Ok(stmt.query_row(key, from_row).optional()?)
}

/// `device`'s events after its `seq`, in seq order, at most `limit` (the journal's check).
pub fn own_after(
    conn: &Connection,
    device: DeviceId,
    seq: u64,
    limit: usize,
) -> Result<Vec<SyncEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE device_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![device.get(), seq, limit], from_row)?;
    rows.map(|raw| decode_event(&raw?)).collect()
}

/// The newest events of `kind` (in the order this device stored them), at most `limit`.
pub fn newest_of_kind(
    conn: &Connection,
    kind: &str,
    limit: usize,
) -> Result<Vec<SyncEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE kind = ?1 ORDER BY rowid DESC LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![kind, limit], from_row)?;
    rows.map(|raw| decode_event(&raw?)).collect()
}

/// An event with its log entry, if it is in the log.
pub fn get_entry(conn: &Connection, event_id: &EventId) -> Result<Option<LogEntry>, StorageError> {
    match row(conn, event_id)? {
        Some(raw) => decode_entry(&raw),
        None => Ok(None),
    }
}

/// The log entries of those of `event_ids` that are in the log. A push holds one device's events,
/// mostly with consecutive sequence numbers: each device's are read with one range scan of the
/// `(device_id, seq)` index (one probe when none is logged, the usual case), unless the ids are
/// too sparse for that, when they are read one by one.
pub fn entries_of(conn: &Connection, event_ids: &[EventId]) -> Result<Vec<LogEntry>, StorageError> {
    let mut by_device: BTreeMap<DeviceId, BTreeSet<u64>> = BTreeMap::new();
    // A sequence number SQLite cannot hold is in no row (a hostile push may name one).
    for id in event_ids.iter().filter(|id| i64::try_from(id.seq).is_ok()) {
        by_device.entry(id.device_id).or_default().insert(id.seq);
    }
    let mut found = Vec::new();
    for (device, seqs) in by_device {
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            continue;
        };
        if last - first >= 4 * seqs.len() as u64 {
            for seq in seqs {
                let id = EventId {
                    device_id: device,
                    seq,
                };
                found.extend(get_entry(conn, &id)?);
            }
            continue;
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM sync_events
             WHERE device_id = ?1 AND seq BETWEEN ?2 AND ?3 AND master_seq IS NOT NULL"
        ))?;
        let rows = stmt.query_map(
            params![device.get(), sql_u64(first, TABLE)?, sql_u64(last, TABLE)?],
            from_row,
        )?;
        for raw in rows {
            if let Some(entry) = decode_entry(&raw?)?
                && seqs.contains(&entry.event.event_id.seq)
            {
                found.push(entry);
            }
        }
    }
    Ok(found)
}

/// The log entry at `master_seq`.
pub fn entry_at(conn: &Connection, master_seq: u64) -> Result<Option<LogEntry>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE master_seq = ?1"
    ))?;
    match stmt
        .query_row([sql_u64(master_seq, TABLE)?], from_row)
        .optional()?
    {
        Some(raw) => decode_entry(&raw),
        None => Ok(None),
    }
}

/// This device's own events still waiting for the master's verdict, oldest first, at most `limit`.
pub fn pending(conn: &Connection, limit: usize) -> Result<Vec<SyncEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE status = 'pending' ORDER BY device_id, seq LIMIT ?1"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map([limit], from_row)?;
    rows.map(|raw| decode_event(&raw?)).collect()
}

/// The sale ids of `device`'s sales the store may never hold, oldest first, at most `limit`: those
/// still pending (no verdict), and those it accepted itself as master after the last entry its
/// log holds from another master (an island it led, say, before it learned it was revoked: no
/// later master's log vouches for them). What a revoked device tells its till (issue #27).
pub fn unconfirmed_sale_ids(
    conn: &Connection,
    device: DeviceId,
    limit: usize,
) -> Result<Vec<String>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT json_extract(payload, '$.sale_id') FROM sync_events \
         WHERE device_id = ?1 AND kind = 'sale_recorded' AND (status = 'pending' \
           OR (status = 'synced' AND epoch_master = ?1 AND master_seq > coalesce(( \
               SELECT max(master_seq) FROM sync_events \
               WHERE master_seq IS NOT NULL AND epoch_master != ?1), 0))) \
         ORDER BY seq LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![device.get(), limit], |r| {
        r.get::<_, Option<String>>(0)
    })?;
    let mut ids = Vec::new();
    for id in rows {
        ids.extend(id?);
    }
    Ok(ids)
}

/// Events of `device` whose effect is not yet in this device's copy of the master state: pending,
/// or accepted (by a push answer) but not yet in the log. In sequence order.
pub fn unlogged_own(conn: &Connection, device: DeviceId) -> Result<Vec<SyncEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE device_id = ?1
         AND ((status = 'pending' AND reason IS NULL) OR (status = 'synced' AND epoch_term IS NULL))
         ORDER BY seq"
    ))?;
    let rows = stmt.query_map([device.get()], from_row)?;
    rows.map(|raw| decode_event(&raw?)).collect()
}

/// Events of `device` that a master accepted but that have no entry in this device's copy of the
/// log (acknowledged and not yet pulled, or put back to pending by a new epoch), at most `limit`,
/// in the order that master decided them: what a pre-vote answer hands to the next master. Each
/// carries the place that master gave it as `master_seq` (`accepted_seq`, when known).
pub fn accepted_unlogged(
    conn: &Connection,
    device: DeviceId,
    limit: usize,
) -> Result<Vec<SyncEvent>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, accepted_seq FROM sync_events WHERE device_id = ?1
         AND epoch_term IS NULL
         AND (status = 'synced' OR (status = 'pending' AND accepted_before = 1))
         ORDER BY accepted_seq IS NULL, accepted_seq, seq LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![device.get(), limit], |row| {
        Ok((from_row(row)?, row.get::<_, Option<i64>>(19)?))
    })?;
    rows.map(|row| {
        let (raw, accepted_seq) = row?;
        let mut event = decode_event(&raw)?;
        event.master_seq = accepted_seq.map(|s| from_sql_u64(s, TABLE)).transpose()?;
        Ok(event)
    })
    .collect()
}

/// Keeps the place a master gave an event of this device (see [`accepted_unlogged`]).
pub fn set_accepted_seq(
    conn: &Connection,
    event_id: &EventId,
    accepted_seq: u64,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "UPDATE sync_events SET accepted_seq = ?3 WHERE device_id = ?1 AND seq = ?2",
    )?
    .execute(params![
        event_id.device_id.get(),
        sql_u64(event_id.seq, TABLE)?,
        sql_u64(accepted_seq, TABLE)?
    ])?;
    Ok(())
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

/// Entries of this device's copy of the master log by status and reason (`GET /metrics`):
/// `(status, reason, count)`. Reads the whole log once.
pub fn log_counts(conn: &Connection) -> Result<Vec<(String, Option<String>, u64)>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, reason, COUNT(*) FROM sync_events WHERE master_seq IS NOT NULL
         GROUP BY status, reason ORDER BY status, reason",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (status, reason, count) = row?;
        Ok((status, reason, from_sql_u64(count, TABLE)?))
    })
    .collect()
}

/// The greatest `seq` of `origin`'s events in this device's copy of the master log (0: none).
pub fn last_seq_logged(conn: &Connection, origin: DeviceId) -> Result<u64, StorageError> {
    let seq: Option<i64> = conn
        .prepare_cached(
            "SELECT MAX(seq) FROM sync_events WHERE device_id = ?1 AND master_seq IS NOT NULL",
        )?
        .query_row(params![origin.get()], |row| row.get(0))?;
    seq.map_or(Ok(0), |seq| from_sql_u64(seq, TABLE))
}

/// Master-log entries after `since`, in `master_seq` order, at most `limit`.
pub fn log_after(
    conn: &Connection,
    since: u64,
    limit: usize,
) -> Result<Vec<LogEntry>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE master_seq > ?1 ORDER BY master_seq LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![sql_u64(since, TABLE)?, limit], from_row)?;
    rows.map(|raw| decode_entry(&raw?)?.ok_or_else(|| bad("a logged event has no epoch")))
        .collect()
}

/// Master-log entries from `from` down, newest first, at most `limit` (for rebuilding state).
pub fn log_before(
    conn: &Connection,
    from: u64,
    limit: usize,
) -> Result<Vec<LogEntry>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sync_events WHERE master_seq <= ?1 ORDER BY master_seq DESC LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![sql_u64(from, TABLE)?, limit], from_row)?;
    rows.map(|raw| decode_entry(&raw?)?.ok_or_else(|| bad("a logged event has no epoch")))
        .collect()
}

/// The last `master_seq` of this log that belongs to an epoch at or before `epoch` (Kafka's
/// "end offset for leader epoch"): where a device whose last entry is of `epoch` stops agreeing
/// with this log, at the latest.
pub fn epoch_end(conn: &Connection, epoch: &Epoch, log_head: u64) -> Result<u64, StorageError> {
    let first_after: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(master_seq) FROM sync_events WHERE master_seq IS NOT NULL AND (
                epoch_term > ?1 OR (epoch_term = ?1 AND (epoch_priority > ?2
                OR (epoch_priority = ?2 AND epoch_master < ?3))))",
        )?
        .query_row(
            params![
                sql_u64(epoch.term.0, TABLE)?,
                epoch.master_priority,
                epoch.master_id.get()
            ],
            |row| row.get(0),
        )?;
    match first_after {
        Some(seq) => Ok(from_sql_u64(seq, TABLE)?.saturating_sub(1)),
        None => Ok(log_head),
    }
}

/// Deletes an event row (another device's, undone by a log truncation).
pub fn delete_foreign(conn: &Connection, event_id: &EventId) -> Result<(), StorageError> {
    conn.prepare_cached("DELETE FROM sync_events WHERE device_id = ?1 AND seq = ?2")?
        .execute(params![
            event_id.device_id.get(),
            sql_u64(event_id.seq, TABLE)?
        ])?;
    Ok(())
}

/// Puts `device`'s events that have a verdict but no log entry back to pending; those that were
/// accepted are marked `accepted_before`, those that were rejected keep their reason (the next
/// master logs them as rejected again, and tills never count them). Returns how many.
pub fn repend_unlogged(conn: &Connection, device: DeviceId) -> Result<usize, StorageError> {
    Ok(conn
        .prepare_cached(
            "UPDATE sync_events SET accepted_before = (accepted_before OR status = 'synced'),
             status = 'pending'
             WHERE device_id = ?1 AND status != 'pending' AND epoch_term IS NULL",
        )?
        .execute([device.get()])?)
}

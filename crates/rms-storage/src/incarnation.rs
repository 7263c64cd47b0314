//! A data directory's incarnations (issue #27, `docs/SYNC.md` "Incarnations").
//!
//! A device id lives on across data directories: a broken till is replaced by a fresh one with
//! the same id, a till is restored from last week's backup. Each such new start is an
//! *incarnation*. Event ids are `(device_id, seq)`, so two incarnations must never number two
//! different events alike, and a new incarnation cannot always ask the master how far the old one
//! went (a restored till sells before it reaches the store). So an incarnation after the first
//! numbers its events from a *floor* no earlier incarnation of its id can have reached: the time it
//! began, in milliseconds, times 2^[`SEQ_SHIFT`]. A device makes far fewer than 1 024 events a
//! millisecond, so every event an earlier incarnation made, whenever it began, has a smaller
//! number, as long as the clocks are right and two incarnations of one id never begin in the same
//! millisecond (a replacement is revoked and paired first); numbers stay below 2^53 (a JSON number
//! a till's JavaScript reads exactly) until the year 2248.
//!
//! A store's first device, and every database made before this release, is incarnation one and
//! numbers from 1, so nothing of an existing store changes. The journal's `events` chain jumps
//! at the floor by as many positions as numbers (a master checks that positions follow numbers,
//! `crate::chain_check`), and own events numbered below the floor that the master log brings back
//! are an earlier incarnation's: they are stored, never journaled here ([`skipped`]).
//!
//! **Dependencies:** beginning an incarnation writes the `node_state` row and a `startup` audit
//! row (so this module calls `crate::node_state`, `crate::audit` and, for [`start`],
//! `crate::db`); the journal's check and export and the replica read the skipped ranges from
//! above. Nothing here calls the journal.

use rms_domain::{AuditEntry, Operation, Outcome};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;

use crate::error::{StorageError, from_sql_u64, sql_u64};
use crate::{audit, node_state};

const TABLE: &str = "incarnations";

/// An incarnation's floor is `milliseconds << SEQ_SHIFT`: room for 1 024 events a millisecond.
pub const SEQ_SHIFT: u32 = 10;

/// Why an incarnation began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// A fresh data directory joining a store (its id may be a replaced device's).
    Joined,
    /// A database restored from a copy `rms-node backup` wrote.
    Restored,
}

impl Why {
    /// The reason as the `incarnations` table and the `startup` audit entry spell it
    /// (`joined`, `restored`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Why::Joined => "joined",
            Why::Restored => "restored",
        }
    }

    fn parse(text: &str) -> Result<Why, StorageError> {
        match text {
            "joined" => Ok(Why::Joined),
            "restored" => Ok(Why::Restored),
            other => Err(StorageError::corrupt(TABLE, format!("why {other:?}"))),
        }
    }
}

/// One incarnation after the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Incarnation {
    /// The number of its first event.
    pub first_seq: u64,
    /// The last number the database had used when it began: own events numbered between the two
    /// are an earlier incarnation's.
    pub after_seq: u64,
    /// When it began, by the device's wall clock (ms since the Unix epoch): its floor is this
    /// times 2^[`SEQ_SHIFT`], and the device may lead no term below it ([`term_floor`]).
    pub began_at_ms: u64,
    /// Why it began.
    pub why: Why,
}

/// No clock that was set reads earlier than this (2025-01-01T00:00:00Z, before this release): a
/// new incarnation refuses to begin from an earlier one ([`StorageError::ClockUnset`]).
pub const CLOCK_SET_AFTER_MS: u64 = 1_735_689_600_000;

/// The first number an incarnation that begins at `now_ms` (wall clock) may use.
pub fn floor(now_ms: u64) -> u64 {
    now_ms.saturating_mul(1 << SEQ_SHIFT).max(1)
}

/// What a node starting on a database should do before it makes any event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Nothing: the database is this incarnation's.
    Go,
    /// Begin an incarnation for this reason.
    Begin(Why),
}

/// Whether the database `conn` reads begins an incarnation at start: a copy `rms-node backup`
/// wrote does; a database that never made or received an event does when the node joins a store
/// (`joining`: it was given peers), since its id may have been a replaced device's.
pub fn at_start(conn: &Connection, joining: bool) -> Result<Start, StorageError> {
    let backup_copy: bool =
        conn.query_row("SELECT backup_copy FROM node_state WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    if backup_copy {
        return Ok(Start::Begin(Why::Restored));
    }
    let state = node_state::load(conn)?;
    let untouched = state.last_seq == 0
        && state.log_head == 0
        && conn
            .query_row("SELECT 1 FROM sync_events LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_none();
    Ok(if joining && untouched {
        Start::Begin(Why::Joined)
    } else {
        Start::Go
    })
}

/// At a node's start, before it makes any event: begins an incarnation when [`at_start`] says
/// so. Returns the one begun.
pub fn start(
    store: &crate::db::Store,
    now_ms: u64,
    joining: bool,
) -> Result<Option<Incarnation>, StorageError> {
    store.write(|tx| match at_start(tx, joining)? {
        Start::Go => Ok(None),
        Start::Begin(why) => begin(tx, now_ms, why).map(Some),
    })
}

/// Begins an incarnation at `now_ms`: the next event is numbered from [`floor`] (or right after
/// the last one, if that is higher: numbers never go back), the copy mark is cleared, and a
/// `startup` audit row says so. Refused ([`StorageError::ClockBehind`]) when `now_ms` is behind
/// the newest event the database holds, and ([`StorageError::ClockUnset`]) when the clock was never
/// set. **On crash:** one transaction; a node that crashed before the
/// commit begins it at its next start.
pub fn begin(tx: &Transaction<'_>, now_ms: u64, why: Why) -> Result<Incarnation, StorageError> {
    if now_ms < CLOCK_SET_AFTER_MS {
        return Err(StorageError::ClockUnset {
            now_ms,
            set_after_ms: CLOCK_SET_AFTER_MS,
        });
    }
    // A clock behind the newest event the database holds is wrong (a till that booted before
    // its clock was set): a floor from it could fall among an earlier incarnation's numbers.
    // The start of the latest incarnation counts too: a copy taken after it began, before it
    // made an event, holds none of its numbers but must not begin before it.
    let newest: Option<i64> = tx
        .prepare_cached(
            "SELECT max(m) FROM (SELECT max(created_at_ms) AS m FROM sync_events \
             UNION ALL SELECT max(began_at_ms) FROM incarnations)",
        )?
        .query_row([], |r| r.get(0))?;
    if let Some(newest_ms) = newest.map(|ms| from_sql_u64(ms, TABLE)).transpose()?
        && now_ms < newest_ms
    {
        return Err(StorageError::ClockBehind { now_ms, newest_ms });
    }
    let mut state = node_state::load(tx)?;
    let incarnation = Incarnation {
        first_seq: floor(now_ms).max(state.last_seq + 1),
        after_seq: state.last_seq,
        began_at_ms: now_ms,
        why,
    };
    tx.prepare_cached(
        "INSERT INTO incarnations (first_seq, after_seq, began_at_ms, why) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        sql_u64(incarnation.first_seq, TABLE)?,
        sql_u64(incarnation.after_seq, TABLE)?,
        sql_u64(now_ms, TABLE)?,
        why.as_str()
    ])?;
    tx.execute("UPDATE node_state SET backup_copy = 0 WHERE id = 1", [])?;
    state.last_seq = incarnation.first_seq - 1;
    node_state::save(tx, &state)?;
    audit::append(
        tx,
        &AuditEntry {
            id: 0,
            at: rms_domain::rfc3339_from_ms(now_ms),
            operation: Operation::Startup,
            device_id: Some(state.device_id),
            user_id: None,
            event_id: None,
            outcome: Outcome::Ok,
            details: json!({
                "incarnation": incarnation,
                "message": format!(
                    "a new incarnation ({}): this device numbers its events from {}-{}",
                    why.as_str(),
                    state.device_id,
                    incarnation.first_seq
                ),
            }),
        },
    )?;
    Ok(incarnation)
}

// Marking a copy writes the `node_state` row, so it lives there (the database opener marks its
// copies without depending on incarnations); kept here too, where `at_start` reads the mark.
pub use crate::node_state::mark_backup_copy;

/// The lowest term this device may lead: the millisecond its current incarnation began (zero for
/// a first incarnation). An earlier incarnation of its id may have led any term up to about then,
/// since a store's terms grow by one an election, far slower than a clock's milliseconds, from
/// at most the start of the newest incarnation of any of its devices: a restored device that led
/// a term again would put a second log under one epoch.
pub fn term_floor(conn: &Connection) -> Result<u64, StorageError> {
    let began: Option<i64> = conn
        .prepare_cached("SELECT max(began_at_ms) FROM incarnations")?
        .query_row([], |r| r.get(0))?;
    began.map_or(Ok(0), |ms| from_sql_u64(ms, TABLE))
}

/// Every incarnation after the first, oldest first.
pub fn all(conn: &Connection) -> Result<Vec<Incarnation>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_seq, after_seq, began_at_ms, why FROM incarnations ORDER BY first_seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut all = Vec::new();
    for row in rows {
        let (first, after, at, why) = row?;
        all.push(Incarnation {
            first_seq: from_sql_u64(first, TABLE)?,
            after_seq: from_sql_u64(after, TABLE)?,
            began_at_ms: from_sql_u64(at, TABLE)?,
            why: Why::parse(&why)?,
        });
    }
    Ok(all)
}

/// The ranges of own event numbers, `(after_seq, first_seq)` exclusive, that are an earlier
/// incarnation's: not in this database's journal.
pub fn skipped(conn: &Connection) -> Result<Vec<(u64, u64)>, StorageError> {
    Ok(all(conn)?
        .into_iter()
        .map(|i| (i.after_seq, i.first_seq))
        .collect())
}

/// The first number of the current incarnation (1 for a database that never began one).
pub fn current_first_seq(conn: &Connection) -> Result<u64, StorageError> {
    let first: Option<i64> = conn
        .prepare_cached("SELECT max(first_seq) FROM incarnations")?
        .query_row([], |r| r.get(0))?;
    first.map_or(Ok(1), |f| from_sql_u64(f, TABLE))
}

/// An incarnation the audit log (which the journal chains) does not record as begun, if any:
/// the `incarnations` table was changed behind the node's back (a row added there would let
/// `journal verify` skip own events and accept a jump of the chain).
pub fn unaudited(conn: &Connection) -> Result<Option<String>, StorageError> {
    for incarnation in all(conn)? {
        let audited: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM audit_log WHERE operation = 'startup' \
                 AND json_extract(details, '$.incarnation.first_seq') = ?1 \
                 AND json_extract(details, '$.incarnation.after_seq') = ?2)",
            )?
            .query_row(
                params![
                    sql_u64(incarnation.first_seq, TABLE)?,
                    sql_u64(incarnation.after_seq, TABLE)?
                ],
                |r| r.get(0),
            )?;
        if !audited {
            return Ok(Some(format!(
                "the incarnation from event {} is not in the audit log: the incarnations table \
                 was changed",
                incarnation.first_seq
            )));
        }
    }
    Ok(None)
}

/// Whether own event number `seq` lies in one of `skipped`'s ranges.
pub fn is_skipped(skipped: &[(u64, u64)], seq: u64) -> bool {
    skipped
        .iter()
        .any(|&(after, first)| seq > after && seq < first)
}

//! The one-row `node_state` table: this device's identity and the counters it never reuses.
//!
//! **Dependencies:** imports only `crate::error`; the database opener (`crate::db`), the
//! incarnations, the journal's checks and every write read or move the row through it.

use rms_domain::{DeviceId, Epoch, Hlc, Term};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{StorageError, from_sql_u64, sql_u64};

/// This device's row: who it is, the last numbers it issued, and how far its copy of the master
/// log goes. [`save`] refuses (by assertion) to move the sequence, the clock or the epoch back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeState {
    /// This device's id in its store, fixed when the database was created: the first half of
    /// every event id it makes.
    pub device_id: DeviceId,
    /// The last sequence number this device's own events used (0 before the first): the next
    /// event is `last_seq + 1`. It moves with each committed event, jumps when an incarnation
    /// begins (`crate::incarnation`), and moves past own events the master log brings back.
    pub last_seq: u64,
    /// Last clock value issued or merged.
    pub hlc: Hlc,
    /// The newest epoch known (`None` before this device joined or formed a store).
    pub epoch: Option<Epoch>,
    /// The highest `master_seq` in this device's copy of the master log (0: empty). It moves back
    /// only when a diverged log is truncated.
    pub log_head: u64,
}

impl NodeState {
    /// The highest term known (0 before any).
    pub fn term(&self) -> Term {
        self.epoch.map_or(Term(0), |e| e.term)
    }

    /// The master of the newest epoch known (`None` before this device joined or formed a
    /// store).
    pub fn master_id(&self) -> Option<DeviceId> {
        self.epoch.map(|e| e.master_id)
    }
}

/// Creates the row for `device_id` on a fresh database, or checks that the database is this
/// device's.
pub(crate) fn init(conn: &mut Connection, device_id: DeviceId) -> Result<(), StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored: Option<u16> = tx
        .query_row("SELECT device_id FROM node_state WHERE id = 1", [], |row| {
            row.get(0)
        })
        .optional()?;
    match stored {
        Some(stored) if stored != device_id.get() => {
            return Err(StorageError::WrongDevice {
                stored,
                requested: device_id.get(),
            });
        }
        Some(_) => {}
        None => {
            tx.execute(
                "INSERT INTO node_state (id, device_id, last_seq, hlc_wall_ms, hlc_counter, term, log_head)
                 VALUES (1, ?1, 0, 0, 0, 0, 0)",
                params![device_id.get()],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// This device's row. Fails with [`StorageError::Corrupt`] when a stored number is negative or
/// the device id is 0 (the database was changed outside rms).
pub fn load(conn: &Connection) -> Result<NodeState, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT device_id, last_seq, hlc_wall_ms, hlc_counter, term, master_id, master_priority, log_head
         FROM node_state WHERE id = 1",
    )?;
    let raw = stmt.query_row([], |row| {
        Ok((
            row.get::<_, u16>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, u32>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<u16>>(5)?,
            row.get::<_, Option<i32>>(6)?,
            row.get::<_, i64>(7)?,
        ))
    })?;
    let (device_id, last_seq, wall_ms, counter, term, master_id, master_priority, log_head) = raw;
    let table = "node_state";
    let term = Term(from_sql_u64(term, table)?);
    let epoch = match (master_id.and_then(DeviceId::new), master_priority) {
        (Some(master_id), Some(master_priority)) => Some(Epoch {
            term,
            master_id,
            master_priority,
        }),
        _ => None,
    };
    Ok(NodeState {
        device_id: DeviceId::new(device_id)
            .ok_or_else(|| StorageError::corrupt(table, "device_id 0"))?,
        last_seq: from_sql_u64(last_seq, table)?,
        hlc: Hlc::new(from_sql_u64(wall_ms, table)?, counter),
        epoch,
        log_head: from_sql_u64(log_head, table)?,
    })
}

/// Stores `state`. The sequence, the clock and the epoch must not go backwards: that is asserted,
/// as it would be a bug. (The log head may: a diverged log is truncated.)
pub fn save(conn: &Connection, state: &NodeState) -> Result<(), StorageError> {
    let before = load(conn)?;
    assert!(
        state.last_seq >= before.last_seq,
        "event sequence went backwards"
    );
    assert!(
        state.hlc >= before.hlc,
        "hybrid logical clock went backwards"
    );
    assert!(state.epoch >= before.epoch, "epoch went backwards");
    let table = "node_state";
    conn.prepare_cached(
        "UPDATE node_state SET last_seq = ?1, hlc_wall_ms = ?2, hlc_counter = ?3, term = ?4,
         master_id = ?5, master_priority = ?6, log_head = ?7 WHERE id = 1",
    )?
    .execute(params![
        sql_u64(state.last_seq, table)?,
        sql_u64(state.hlc.wall_ms, table)?,
        state.hlc.counter,
        sql_u64(state.term().0, table)?,
        state.epoch.map(|e| e.master_id.get()),
        state.epoch.map(|e| e.master_priority),
        sql_u64(state.log_head, table)?,
    ])?;
    Ok(())
}

/// Marks the database `conn` writes as a copy `rms-node backup` made: a node started on it
/// begins a new incarnation (`crate::incarnation::at_start` reads the mark, and
/// `crate::incarnation::begin` clears it). **On crash:** one statement, in the caller's
/// transaction if it has one.
pub fn mark_backup_copy(conn: &Connection) -> Result<(), StorageError> {
    conn.execute("UPDATE node_state SET backup_copy = 1 WHERE id = 1", [])?;
    Ok(())
}

//! The store's trust list as this device knows it, and the devices waiting for approval.
//!
//! The list is not a table: it is the fold ([`rms_domain::TrustList::fold`]) of the
//! `device_trust` events of this device's copy of the master log, in log order, so a truncation
//! (split brain) that undoes an entry undoes its trust change too. This device's own trust
//! changes count at once, before the master logs them (the owner's approval or revocation on
//! this device, which may be cut off from the master): the same rules apply to them, and one
//! the master rejects drops out of the list with its verdict.
//!
//! Pending devices (a certificate nobody trusts, seen by this device) are kept in
//! `pending_devices`, at most [`PENDING_MAX`] of them; the oldest is forgotten for a new one.
//!
//! **On crash:** every write here is one statement in the caller's transaction.
//!
//! **Dependencies:** the list is read from the events (`crate::events`) as this device's row
//! (`crate::node_state`) names it; signed heads, the master's check of a push and local writes
//! read the list from above.

use rms_domain::{DeviceId, EventStatus, Fingerprint, TrustChange, TrustList};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::error::{StorageError, from_sql_u64, sql_u64};
use crate::events;

/// Most devices kept waiting for approval.
pub const PENDING_MAX: usize = 64;

/// Changes to the trust list so far: a different stamp means the list may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    logged: i64,
    positions: i64,
    synced: i64,
    rejected: i64,
    /// This device's own changes not decided yet (they count in [`load`]).
    pending: i64,
}

/// Cheap (the partial index `sync_events_trust`, over the few trust events): read after every
/// input that moved the log or decided one of this device's events. Sums of which events sit
/// where and in which status, so that a truncation that puts another trust change at the same
/// position, a new change of this device's own, or a verdict on one, changes it. Numbers are
/// taken modulo a prime: a new incarnation's are near 2^51, and the sums must stay exact.
pub fn stamp(conn: &Connection) -> Result<Stamp, StorageError> {
    let stamp = conn.query_row(
        "SELECT count(master_seq), \
                total((master_seq % 1000003) * 1000003 + (seq % 1000003) * 65537 + device_id), \
                total((status = 'synced') * ((seq % 1000003) * 65537 + device_id)), \
                total((status = 'rejected') * ((seq % 1000003) * 65537 + device_id)), \
                total((status = 'pending') * ((seq % 1000003) * 65537 + device_id)) \
         FROM sync_events WHERE kind = 'device_trust'",
        [],
        |row| {
            Ok(Stamp {
                logged: row.get(0)?,
                positions: row.get::<_, f64>(1)? as i64,
                synced: row.get::<_, f64>(2)? as i64,
                rejected: row.get::<_, f64>(3)? as i64,
                pending: row.get::<_, f64>(4)? as i64,
            })
        },
    )?;
    Ok(stamp)
}

/// The trust list: the logged, accepted trust changes in log order, then this device's own
/// changes that the master has not logged yet (what this device's links admit).
pub fn load(conn: &Connection) -> Result<TrustList, StorageError> {
    load_with(conn, true)
}

/// The trust list as the log leaves it: the logged, accepted trust changes in log order, and
/// nothing of this device's pending ones. What a master decides a trust change against: its own
/// pending changes are decided later, in their place (issue #26, seed 18797: a master's own
/// pending revocation let it accept, before that revocation was logged, a second certificate
/// for the device id the revoked one still held in the log).
pub fn load_logged(conn: &Connection) -> Result<TrustList, StorageError> {
    load_with(conn, false)
}

fn load_with(conn: &Connection, own_pending: bool) -> Result<TrustList, StorageError> {
    let me = crate::node_state::load(conn)?.device_id;
    let mut logged = conn.prepare_cached(
        "SELECT device_id, seq FROM sync_events \
         WHERE kind = 'device_trust' AND master_seq IS NOT NULL ORDER BY master_seq",
    )?;
    let ids: Vec<(i64, i64)> = logged
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let own: Vec<(i64, i64)> = if own_pending {
        conn.prepare_cached(
            "SELECT device_id, seq FROM sync_events \
             WHERE kind = 'device_trust' AND master_seq IS NULL AND device_id = ?1 \
               AND status = 'pending' ORDER BY seq",
        )?
        .query_map([me.get()], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let mut changes = Vec::with_capacity(ids.len() + own.len());
    for (index, (device, seq)) in ids.iter().chain(&own).enumerate() {
        let event_id = rms_domain::EventId {
            device_id: u16::try_from(*device)
                .ok()
                .and_then(DeviceId::new)
                .ok_or_else(|| StorageError::corrupt("sync_events", "bad device id"))?,
            seq: from_sql_u64(*seq, "sync_events")?,
        };
        let Some(event) = events::get(conn, &event_id)? else {
            continue;
        };
        let is_own_pending = index >= ids.len();
        if event.status != EventStatus::Synced && !is_own_pending {
            continue;
        }
        let Some(change) = event
            .payload
            .trust_change(event.event_id.device_id, event.created_at_ms)
        else {
            continue;
        };
        changes.push(change);
    }
    Ok(TrustList::fold(changes))
}

/// A device that connected with a certificate nobody trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// The SHA-256 fingerprint of its certificate: what the owner approves.
    pub fingerprint: Fingerprint,
    /// The device id it claimed (the latest, if it connected more than once).
    pub device_id: DeviceId,
    /// The name it gave when it was first seen.
    pub name: String,
    /// Where it connected from (the latest).
    pub address: String,
    /// When this device first saw it (ms since the Unix epoch).
    pub first_seen_ms: u64,
    /// When this device last saw it (ms since the Unix epoch): the oldest is forgotten first.
    pub last_seen_ms: u64,
    /// How many times it connected (from 1).
    pub attempts: u64,
}

/// Notes a connection from an unknown certificate (once per fingerprint, counting attempts).
/// Returns whether it is new.
pub fn note_pending(tx: &Transaction<'_>, pending: &Pending) -> Result<bool, StorageError> {
    let fingerprint = pending.fingerprint.to_string();
    let updated = tx.execute(
        "UPDATE pending_devices SET last_seen_ms = ?2, attempts = attempts + 1, device_id = ?3, \
                address = ?4 WHERE fingerprint = ?1",
        params![
            fingerprint,
            sql_u64(pending.last_seen_ms, "pending_devices")?,
            pending.device_id.get(),
            pending.address,
        ],
    )?;
    if updated > 0 {
        return Ok(false);
    }
    tx.execute(
        "DELETE FROM pending_devices WHERE fingerprint IN (SELECT fingerprint FROM \
         pending_devices ORDER BY last_seen_ms DESC LIMIT -1 OFFSET ?1)",
        [i64::try_from(PENDING_MAX - 1).unwrap_or(i64::MAX)],
    )?;
    tx.execute(
        "INSERT INTO pending_devices (fingerprint, device_id, name, address, first_seen_ms, \
         last_seen_ms, attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1)",
        params![
            fingerprint,
            pending.device_id.get(),
            pending.name,
            pending.address,
            sql_u64(pending.first_seen_ms, "pending_devices")?,
        ],
    )?;
    Ok(true)
}

/// The devices waiting, most recent first.
pub fn pending(conn: &Connection) -> Result<Vec<Pending>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT fingerprint, device_id, name, address, first_seen_ms, last_seen_ms, attempts \
         FROM pending_devices ORDER BY last_seen_ms DESC",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, i64>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (fingerprint, device, name, address, first, last, attempts) = row?;
        out.push(Pending {
            fingerprint: fingerprint
                .parse()
                .map_err(|e| StorageError::corrupt("pending_devices", e))?,
            device_id: u16::try_from(device)
                .ok()
                .and_then(DeviceId::new)
                .ok_or_else(|| StorageError::corrupt("pending_devices", "bad device id"))?,
            name,
            address,
            first_seen_ms: from_sql_u64(first, "pending_devices")?,
            last_seen_ms: from_sql_u64(last, "pending_devices")?,
            attempts: from_sql_u64(attempts, "pending_devices")?,
        });
    }
    Ok(out)
}

/// The pending device with this fingerprint, if it is waiting.
pub fn pending_one(
    conn: &Connection,
    fingerprint: &Fingerprint,
) -> Result<Option<Pending>, StorageError> {
    Ok(pending(conn)?
        .into_iter()
        .find(|p| p.fingerprint == *fingerprint))
}

/// Forgets a pending device (approved, or trusted through the log).
pub fn forget_pending(tx: &Transaction<'_>, fingerprint: &Fingerprint) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM pending_devices WHERE fingerprint = ?1",
        [fingerprint.to_string()],
    )?;
    Ok(())
}

/// What the owner asked of the store-key window at this start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAsked {
    /// Nothing: a database made by the store-key release (the upgrade) opens it for
    /// `upgrade_ms`; any other stays as it is (a new device's stays closed).
    Default {
        /// How long the upgrade opens the window for (ms).
        upgrade_ms: u64,
    },
    /// Open it for this long from now (0: close it).
    OpenFor(u64),
}

/// When the store-key window closes (ms since the epoch; 0 when closed), decided at a node's
/// start and kept in `trust_window`:
/// - a database made by the store-key release (it has events but no window yet) opens it for
///   the upgrade; a new database keeps it closed: later devices join by pairing, so a stolen key
///   cannot enrol a certificate on the next device set up;
/// - the owner opens (or closes) it explicitly with [`WindowAsked::OpenFor`];
/// - a window found past its time is recorded closed (0), so a clock set back later (a till
///   booting in 1970) cannot reopen it.
pub fn window_at_start(
    tx: &Transaction<'_>,
    now_ms: u64,
    asked: WindowAsked,
) -> Result<u64, StorageError> {
    let stored: Option<i64> = tx
        .query_row(
            "SELECT closes_at_ms FROM trust_window WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    let stored = stored
        .map(|at| from_sql_u64(at, "trust_window"))
        .transpose()?;
    let upgraded = || -> Result<bool, StorageError> {
        let events: i64 = tx.query_row("SELECT count(*) FROM sync_events", [], |r| r.get(0))?;
        Ok(events > 0)
    };
    let at = match (asked, stored) {
        (WindowAsked::OpenFor(ms), _) => now_ms.saturating_add(ms),
        (WindowAsked::Default { .. }, Some(at)) => at,
        (WindowAsked::Default { upgrade_ms }, None) if upgraded()? => {
            now_ms.saturating_add(upgrade_ms)
        }
        (WindowAsked::Default { .. }, None) => 0,
    };
    let at = if at <= now_ms { 0 } else { at };
    tx.execute(
        "INSERT INTO trust_window (id, closes_at_ms) VALUES (1, ?1) \
         ON CONFLICT (id) DO UPDATE SET closes_at_ms = excluded.closes_at_ms",
        [sql_u64(at, "trust_window")?],
    )?;
    Ok(at)
}

/// A trust change this device makes, as the payload of its local write.
pub fn payload(change: &TrustChange) -> rms_domain::EventPayload {
    rms_domain::EventPayload::DeviceTrust {
        fingerprint: change.fingerprint,
        device_id: change.device_id,
        name: change.name.clone(),
        trust: change.state,
        how: change.how.clone(),
    }
}

//! The journal's chains themselves: their entries, hashes and records, and the appends every
//! local write makes (an event this device originates, an audit row).
//!
//! **Dependencies:** the bottom of the journal: it knows the `journal` and `journal_start` tables
//! and `crate::error`, nothing else of the crate. The audit log appends through it
//! (`crate::audit` -> here), and the checks above it (`journal::verify`, `journal::export`,
//! `crate::journal_heads`) read it; it never calls them.

use std::fmt;

use rms_domain::chain::hex_digit;
use rms_domain::{AuditEntry, ChainLink, EventId, SyncEvent};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::StorageError;

const TABLE: &str = "journal";

/// A journal's chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Chain {
    /// The events this device originated.
    Events,
    /// This device's audit log.
    Audit,
}

impl Chain {
    /// Every chain, in the order the journal's check and export walk them.
    pub const ALL: [Chain; 2] = [Chain::Events, Chain::Audit];

    /// The chain's name as the `journal` table, the records and the export spell it (`events`,
    /// `audit`).
    pub fn as_str(self) -> &'static str {
        match self {
            Chain::Events => "events",
            Chain::Audit => "audit",
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SHA-256 hash, written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The predecessor of a chain's first entry.
    pub const GENESIS: Hash = Hash([0; 32]);

    /// The hash of the entry whose predecessor hashed to `prev` and whose record is `record`.
    pub fn link(prev: &Hash, record: &str) -> Hash {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(&prev.0);
        context.update(record.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
        Hash(out)
    }

    /// The hash as 64 lowercase hex digits (how the journal stores it and records name it).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The hash written as 64 hex digits; `None` for any other text.
    pub fn from_hex(text: &str) -> Option<Hash> {
        rms_domain::chain::hash_from_hex(text).map(Hash)
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Bytes as lowercase hex digits (the journal's hashes, keys and signatures). By table: a master
/// writes one per event it checks.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The bytes of an even number of hex digits; `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
        .collect()
}

#[derive(Serialize)]
struct AuditRecord<'a> {
    chain: Chain,
    seq: u64,
    entry: &'a AuditEntry,
}

/// The record of an event this device originated (`rms_domain::chain::event_record`).
pub(crate) fn event_record(seq: u64, event: &SyncEvent) -> Result<String, StorageError> {
    rms_domain::chain::event_record(seq, event).map_err(|e| StorageError::corrupt(TABLE, e))
}

pub(crate) fn audit_record(seq: u64, entry: &AuditEntry) -> Result<String, StorageError> {
    let record = AuditRecord {
        chain: Chain::Audit,
        seq,
        entry,
    };
    serde_json::to_string(&record).map_err(|e| StorageError::corrupt(TABLE, e))
}

/// The last entry of `chain`: its position and hash (0 and the genesis when empty).
pub fn head(conn: &Connection, chain: Chain) -> Result<(u64, Hash), StorageError> {
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM journal WHERE chain = ?1 ORDER BY seq DESC LIMIT 1")?
        .query_row([chain.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match last {
        None => Ok((0, Hash::GENESIS)),
        Some((seq, hash)) => {
            let hash = Hash::from_hex(&hash)
                .ok_or_else(|| StorageError::corrupt(TABLE, format!("{chain} #{seq}: bad hash")))?;
            Ok((u64::try_from(seq).unwrap_or(0), hash))
        }
    }
}

fn append(
    conn: &Connection,
    chain: Chain,
    reference: &str,
    record: impl FnOnce(u64) -> Result<String, StorageError>,
) -> Result<(), StorageError> {
    let (last, _) = head(conn, chain)?;
    append_at(conn, chain, last + 1, reference, record)
}

/// Appends at position `seq` (after the head: the next one, or a jump an incarnation declares).
fn append_at(
    conn: &Connection,
    chain: Chain,
    seq: u64,
    reference: &str,
    record: impl FnOnce(u64) -> Result<String, StorageError>,
) -> Result<(), StorageError> {
    let (_, prev) = head(conn, chain)?;
    let record = record(seq)?;
    let hash = Hash::link(&prev, &record);
    conn.prepare_cached(
        "INSERT INTO journal (chain, seq, ref, record, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        chain.as_str(),
        i64::try_from(seq).unwrap_or(i64::MAX),
        reference,
        record,
        hash.to_hex()
    ])?;
    Ok(())
}

/// The link this device's event number `seq` gets: the head's hash, and a position that moves
/// with the number (one position per number after the head: the next one, or a jump as long as
/// the numbers' when an incarnation began, `crate::incarnation`). With an empty chain, the
/// position is the number past the journal's start.
pub fn next_event_link(conn: &Connection, seq: u64) -> Result<ChainLink, StorageError> {
    let head: Option<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT seq, ref, hash FROM journal WHERE chain = 'events' ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((at, reference, hash)) = head else {
        let (events_after, _) = start(conn)?;
        return Ok(ChainLink {
            seq: seq.saturating_sub(events_after).max(1),
            prev: Hash::GENESIS.to_hex(),
        });
    };
    let at = u64::try_from(at).unwrap_or(0);
    let number = reference
        .parse::<EventId>()
        .map_err(|_| StorageError::corrupt(TABLE, format!("events #{at} names {reference:?}")))?
        .seq;
    Ok(ChainLink {
        seq: at + seq.saturating_sub(number).max(1),
        prev: hash,
    })
}

/// Journals an event this device originated (in the transaction that stores it), at the
/// position its link names ([`next_event_link`]).
pub fn append_event(conn: &Connection, event: &SyncEvent) -> Result<(), StorageError> {
    let expected = next_event_link(conn, event.event_id.seq)?;
    let Some(link) = event.chain.as_ref().filter(|link| **link == expected) else {
        let message = format!(
            "event {} is not linked to the head of the events chain",
            event.event_id
        );
        return Err(StorageError::corrupt(TABLE, message));
    };
    append_at(
        conn,
        Chain::Events,
        link.seq,
        &event.event_id.to_string(),
        |seq| event_record(seq, event),
    )
}

/// The hash an event has in its origin's `events` chain, from its link and its content (the
/// record is rebuilt as the origin wrote it); `None` for an event without a link or whose link's
/// `prev` is not a hash.
pub fn event_hash(event: &SyncEvent) -> Result<Option<Hash>, StorageError> {
    let Some(link) = &event.chain else {
        return Ok(None);
    };
    let Some(prev) = Hash::from_hex(&link.prev) else {
        return Ok(None);
    };
    Ok(Some(Hash::link(&prev, &event_record(link.seq, event)?)))
}

/// Journals an audit row, `entry.id` set (in the transaction that stores it).
pub fn append_audit(conn: &Connection, entry: &AuditEntry) -> Result<(), StorageError> {
    append(conn, Chain::Audit, &entry.id.to_string(), |seq| {
        audit_record(seq, entry)
    })
}

/// Entries and rows read at once while verifying or exporting.
pub(crate) const PAGE: usize = 5000;

/// One stored journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The chain it belongs to.
    pub chain: Chain,
    /// Its position in the chain, from 1 (the events chain may jump where an incarnation began).
    pub seq: u64,
    /// What it records: the event id (`3-17`) on the events chain, the audit row id on the
    /// audit chain.
    pub reference: String,
    /// The JSON text hashed, which begins with its chain and position.
    pub record: String,
    /// `SHA-256(hash of the entry before ‖ record)`, as 64 lowercase hex digits.
    pub hash: String,
}

/// The entries of `chain` after `seq`, in order, at most `limit`.
pub fn entries_after(
    conn: &Connection,
    chain: Chain,
    seq: u64,
    limit: usize,
) -> Result<Vec<Entry>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, ref, record, hash FROM journal WHERE chain = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![chain.as_str(), seq, limit], |r| {
        Ok(Entry {
            chain,
            seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            reference: r.get(1)?,
            record: r.get(2)?,
            hash: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Where the journal starts: this device's events after this seq, audit rows after this id.
pub(crate) fn start(conn: &Connection) -> Result<(u64, i64), StorageError> {
    Ok(conn.query_row(
        "SELECT events_after, audit_after FROM journal_start WHERE id = 1",
        [],
        |r| Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?)),
    )?)
}

//! The journal (issue #17, `docs/JOURNAL.md`): what this device originates (chain `events`) and
//! every row of its audit log (chain `audit`), hash-chained. Entry `n` of a chain holds a
//! `record` (JSON naming its chain and position, and what it records) and
//! `hash = SHA-256(hash of n-1 ‖ record)`, the first entry's predecessor being 32 zero bytes. An
//! entry is appended in the transaction that writes what it records, so a crash keeps both or
//! neither.
//!
//! [`verify`] checks a database: each chain links, and the rows agree with their records (the
//! events, of which sales are read, and the audit rows), so a sale changed, deleted or swapped with
//! the `sqlite3` shell is named, whether or not the append-only triggers were dropped first.
//! [`export`] writes a range as JSON lines that `scripts/journal_verify.py` checks without rms.

use std::fmt;

use rms_domain::chain::hex_digit;
use rms_domain::{AuditEntry, ChainLink, EventId, SyncEvent};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::{StorageError, audit, events};

const TABLE: &str = "journal";

/// The export format's name (the first line's `format`).
pub const EXPORT_FORMAT: &str = "rms-journal-1";

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
    pub const ALL: [Chain; 2] = [Chain::Events, Chain::Audit];

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

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

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
fn event_record(seq: u64, event: &SyncEvent) -> Result<String, StorageError> {
    rms_domain::chain::event_record(seq, event).map_err(|e| StorageError::corrupt(TABLE, e))
}

fn audit_record(seq: u64, entry: &AuditEntry) -> Result<String, StorageError> {
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
const PAGE: usize = 5000;

/// The first entry or row that does not verify, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub chain: Chain,
    /// The journal position concerned.
    pub seq: u64,
    /// The event id or audit row id concerned.
    pub reference: String,
    pub why: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} #{} ({}): {}",
            self.chain, self.seq, self.reference, self.why
        )
    }
}

/// What [`verify`] found: each chain's length and head, or the first break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub heads: Vec<(Chain, u64, Hash)>,
    /// The signed heads that verified (`crate::journal_heads`).
    pub signed_heads: usize,
    pub broken: Option<Break>,
}

/// One stored journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub chain: Chain,
    pub seq: u64,
    pub reference: String,
    pub record: String,
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
fn start(conn: &Connection) -> Result<(u64, i64), StorageError> {
    Ok(conn.query_row(
        "SELECT events_after, audit_after FROM journal_start WHERE id = 1",
        [],
        |r| Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?)),
    )?)
}

/// Checks the journal of the database `conn` reads: every chain links from its first entry, each
/// record names its place, and the rows agree with the records in order: this device's events
/// (none missing, changed or added; sales are read from them) and the audit log. Returns at the
/// first entry that fails.
///
/// It reads one snapshot (a read transaction): a node writing meanwhile (the check at start, the
/// CLI on a running node) adds rows and entries together, never one without the other.
pub fn verify(conn: &Connection) -> Result<Verified, StorageError> {
    let snapshot = conn.unchecked_transaction()?;
    let verified = verify_snapshot(&snapshot)?;
    snapshot.rollback()?;
    Ok(verified)
}

fn verify_snapshot(conn: &Connection) -> Result<Verified, StorageError> {
    let me = crate::node_state::load(conn)?.device_id;
    let (events_after, audit_after) = start(conn)?;
    let skipped = crate::incarnation::skipped(conn)?;
    if let Some(why) = crate::incarnation::unaudited(conn)? {
        let broken = Break {
            chain: Chain::Audit,
            seq: 0,
            reference: "incarnations".into(),
            why,
        };
        return Ok(Verified::broken(Vec::new(), broken));
    }
    let mut heads = Vec::new();
    for chain in Chain::ALL {
        let mut rows = Rows::new(conn, chain, me, events_after, audit_after);
        rows.skipped.clone_from(&skipped);
        let (mut seq, mut prev) = (0, Hash::GENESIS);
        // The event number of the entry before (events chain): a jump moves by as many
        // positions as numbers.
        let mut number = events_after;
        loop {
            let page = entries_after(conn, chain, seq, PAGE)?;
            if page.is_empty() {
                break;
            }
            for entry in page {
                let broken = |why: String| Break {
                    chain,
                    seq: entry.seq,
                    reference: entry.reference.clone(),
                    why,
                };
                let numbered = entry.reference.parse::<EventId>().ok().map(|id| id.seq);
                let jumps = chain == Chain::Events
                    && numbered.is_some_and(|n| {
                        skipped.iter().any(|&(_, first)| first == n)
                            && n.checked_sub(number) == entry.seq.checked_sub(seq)
                    });
                if let Some(why) = check_link(&entry, seq, &prev, jumps) {
                    return Ok(Verified::broken(heads, broken(why)));
                }
                if let Some(why) = rows.check(&entry)? {
                    return Ok(Verified::broken(heads, broken(why)));
                }
                seq = entry.seq;
                number = numbered.unwrap_or(number);
                prev = Hash::from_hex(&entry.hash).unwrap_or(Hash::GENESIS);
            }
        }
        if let Some((reference, why)) = rows.unjournaled()? {
            let broken = Break {
                chain,
                seq: seq + 1,
                reference,
                why,
            };
            return Ok(Verified::broken(heads, broken));
        }
        heads.push((chain, seq, prev));
    }
    let mut hash_at = |chain: Chain, seq: u64| -> Result<Option<Hash>, StorageError> {
        let hash: Option<String> = conn
            .prepare_cached("SELECT hash FROM journal WHERE chain = ?1 AND seq = ?2")?
            .query_row(
                params![chain.as_str(), i64::try_from(seq).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(hash.as_deref().and_then(Hash::from_hex))
    };
    match crate::journal_heads::verify(conn, me, &mut hash_at)? {
        Ok(signed_heads) => Ok(Verified {
            heads,
            signed_heads,
            broken: None,
        }),
        Err((chain, seq, why)) => {
            let reference = "signed head".to_owned();
            let broken = Break {
                chain,
                seq,
                reference,
                why,
            };
            Ok(Verified::broken(heads, broken))
        }
    }
}

impl Verified {
    fn broken(heads: Vec<(Chain, u64, Hash)>, broken: Break) -> Verified {
        Verified {
            heads,
            signed_heads: 0,
            broken: Some(broken),
        }
    }
}

/// Why `entry` does not follow the entry `seq` whose hash is `prev`, if it does not. `jumps`:
/// it may come more than one position after it (it records the first event of an incarnation,
/// `crate::incarnation`, and moves by as many positions as event numbers).
fn check_link(entry: &Entry, seq: u64, prev: &Hash, jumps: bool) -> Option<String> {
    if entry.seq != seq + 1 && !(jumps && entry.seq > seq) {
        return Some(format!(
            "entry #{} is missing: the chain jumps from #{seq}",
            seq + 1
        ));
    }
    let Some(hash) = Hash::from_hex(&entry.hash) else {
        return Some("its hash is not 64 hex digits".into());
    };
    if Hash::link(prev, &entry.record) != hash {
        return Some(
            "its hash does not match its record and the entry before it: the record was \
             changed, or an entry before it was removed or replaced"
                .into(),
        );
    }
    // Records begin with their chain and position, in this order (`EventRecord`, `AuditRecord`).
    let named = format!("{{\"chain\":\"{}\",\"seq\":{},", entry.chain, entry.seq);
    if !entry.record.starts_with(&named) {
        return Some("its record names another chain or position: entries were moved".into());
    }
    None
}

/// The rows a chain records, read in the chain's order alongside it.
struct Rows<'c> {
    conn: &'c Connection,
    chain: Chain,
    me: rms_domain::DeviceId,
    events: std::collections::VecDeque<SyncEvent>,
    audit: std::collections::VecDeque<AuditEntry>,
    /// The position read up to: an event seq or an audit id.
    read_to: i64,
    /// Own event numbers that are an earlier incarnation's, not journaled here
    /// (`crate::incarnation::skipped`).
    skipped: Vec<(u64, u64)>,
}

impl<'c> Rows<'c> {
    fn new(
        conn: &'c Connection,
        chain: Chain,
        me: rms_domain::DeviceId,
        events_after: u64,
        audit_after: i64,
    ) -> Rows<'c> {
        let read_to = match chain {
            Chain::Events => i64::try_from(events_after).unwrap_or(i64::MAX),
            Chain::Audit => audit_after,
        };
        Rows {
            conn,
            chain,
            me,
            events: Default::default(),
            audit: Default::default(),
            read_to,
            skipped: Vec::new(),
        }
    }

    /// Reads the next page of rows when none is left; false when there are no more.
    fn fill(&mut self) -> Result<bool, StorageError> {
        match self.chain {
            Chain::Events if self.events.is_empty() => {
                while self.events.is_empty() {
                    let after = u64::try_from(self.read_to).unwrap_or(0);
                    let page = events::own_after(self.conn, self.me, after, PAGE)?;
                    let Some(last) = page.last() else {
                        return Ok(false);
                    };
                    self.read_to = i64::try_from(last.event_id.seq).unwrap_or(i64::MAX);
                    let skipped = &self.skipped;
                    self.events = page
                        .into_iter()
                        .filter(|e| !crate::incarnation::is_skipped(skipped, e.event_id.seq))
                        .collect();
                }
                Ok(true)
            }
            Chain::Audit if self.audit.is_empty() => {
                self.audit = audit::page(self.conn, self.read_to, PAGE)?.into();
                if let Some(last) = self.audit.back() {
                    self.read_to = last.id;
                }
                Ok(!self.audit.is_empty())
            }
            _ => Ok(true),
        }
    }

    /// Why the next row does not agree with `entry`, if it does not.
    fn check(&mut self, entry: &Entry) -> Result<Option<String>, StorageError> {
        if !self.fill()? {
            return Ok(Some(format!(
                "{} is missing from the database",
                self.what(entry)
            )));
        }
        match self.chain {
            Chain::Events => {
                let Some(event) = self.events.front() else {
                    return Ok(None);
                };
                let id = event.event_id.to_string();
                if id != entry.reference {
                    let why = match entry.reference.parse::<EventId>() {
                        Ok(rec) if rec.seq < event.event_id.seq => {
                            format!("event {} is missing from the database", entry.reference)
                        }
                        _ => format!("event {id} is in the database but not in the journal"),
                    };
                    return Ok(Some(why));
                }
                let event = self.events.pop_front().expect("checked above");
                // A sale is read from its event (`crate::sales`): this covers its lines too.
                if event_record(entry.seq, &event)? != entry.record {
                    return Ok(Some(format!("event {id} was changed in the database")));
                }
                Ok(None)
            }
            Chain::Audit => {
                let Some(row) = self.audit.front() else {
                    return Ok(None);
                };
                if row.id.to_string() != entry.reference {
                    let why = match entry.reference.parse::<i64>() {
                        Ok(rec) if rec < row.id => {
                            format!("audit row {} is missing from the database", entry.reference)
                        }
                        _ => format!("audit row {} is not in the journal", row.id),
                    };
                    return Ok(Some(why));
                }
                let row = self.audit.pop_front().expect("checked above");
                if audit_record(entry.seq, &row)? != entry.record {
                    return Ok(Some(format!(
                        "audit row {} was changed in the database",
                        row.id
                    )));
                }
                Ok(None)
            }
        }
    }

    fn what(&self, entry: &Entry) -> String {
        match self.chain {
            Chain::Events => format!("event {}", entry.reference),
            Chain::Audit => format!("audit row {}", entry.reference),
        }
    }

    /// A row after the chain's last entry: it was added without the journal.
    fn unjournaled(&mut self) -> Result<Option<(String, String)>, StorageError> {
        if !self.fill()? {
            return Ok(None);
        }
        let found = match self.chain {
            Chain::Events => self.events.front().map(|e| format!("event {}", e.event_id)),
            Chain::Audit => self.audit.front().map(|a| format!("audit row {}", a.id)),
        };
        Ok(found.map(|what| {
            (
                what.clone(),
                format!("{what} is in the database but not in the journal"),
            )
        }))
    }
}

/// Writes the entries of every chain whose record time falls in `[from_ms, to_ms)` as export
/// lines (`docs/JOURNAL.md`): a header naming, per chain, the entry before the first exported
/// (its seq and hash), then one line per entry. Returns the entries written.
pub fn export(
    conn: &Connection,
    from_ms: u64,
    to_ms: u64,
    out: &mut dyn std::io::Write,
) -> Result<u64, ExportError> {
    let me = crate::node_state::load(conn)?.device_id;
    let mut chosen = Vec::new();
    let mut prev = serde_json::Map::new();
    for chain in Chain::ALL {
        let mut entries = Vec::new();
        let mut seq = 0;
        loop {
            let page = entries_after(conn, chain, seq, PAGE)?;
            let Some(last) = page.last() else { break };
            seq = last.seq;
            entries.extend(page);
        }
        let inside = |e: &Entry| record_ms(e).is_some_and(|ms| ms >= from_ms && ms < to_ms);
        let (Some(first), Some(last)) = (
            entries.iter().position(inside),
            entries.iter().rposition(inside),
        ) else {
            continue;
        };
        let before = first.checked_sub(1).and_then(|i| entries.get(i));
        let (seq, hash) = before.map_or((0, Hash::GENESIS.to_hex()), |e| (e.seq, e.hash.clone()));
        prev.insert(
            chain.as_str().into(),
            serde_json::json!({"seq": seq, "hash": hash}),
        );
        chosen.push(entries.drain(first..=last).collect::<Vec<_>>());
    }
    // Where the events chain may jump: the first event of each incarnation (`crate::incarnation`).
    let incarnations: Vec<String> = crate::incarnation::all(conn)?
        .iter()
        .map(|i| format!("{me}-{}", i.first_seq))
        .collect();
    let header = serde_json::json!({
        "format": EXPORT_FORMAT, "device_id": me, "from_ms": from_ms, "to_ms": to_ms, "prev": prev,
        "incarnations": incarnations,
    });
    writeln!(out, "{header}")?;
    let mut written = 0;
    let mut ranges = Vec::new();
    for entries in chosen {
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            ranges.push((first.chain, first.seq, last.seq));
        }
        let mut last_hash = None::<String>;
        for entry in entries {
            let prev = last_hash.take().unwrap_or_else(|| {
                header["prev"][entry.chain.as_str()]["hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            });
            let line = serde_json::json!({
                "chain": entry.chain, "seq": entry.seq, "prev": prev,
                "record": entry.record, "hash": entry.hash,
            });
            writeln!(out, "{line}")?;
            last_hash = Some(entry.hash);
            written += 1;
        }
    }
    // The heads the device signed inside the exported ranges, after the entries they sign.
    for (chain, from, to) in ranges {
        for head in crate::journal_heads::between(conn, chain, from, to)? {
            writeln!(out, "{}", serde_json::json!({ "signed_head": head }))?;
        }
    }
    Ok(written)
}

/// When an entry's record says it was made (ms since the epoch).
fn record_ms(entry: &Entry) -> Option<u64> {
    let record: serde_json::Value = serde_json::from_str(&entry.record).ok()?;
    match entry.chain {
        Chain::Events => record["created_at_ms"].as_u64(),
        Chain::Audit => {
            let at = record["entry"]["at"].as_str()?;
            let at =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .ok()?;
            u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
        }
    }
}

/// An export that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

impl From<rusqlite::Error> for ExportError {
    fn from(err: rusqlite::Error) -> ExportError {
        ExportError::Storage(err.into())
    }
}

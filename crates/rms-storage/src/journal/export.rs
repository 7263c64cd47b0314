//! `journal export`: a range of the journal as JSON lines that `scripts/journal_verify.py`
//! checks without rms (`docs/JOURNAL.md` gives the format).
//!
//! **Dependencies:** the top of the journal, beside `journal::verify`: it reads the chains
//! (`journal::chain`), the incarnations where the events chain jumps (`crate::incarnation`) and
//! the signed heads (`crate::journal_heads`); none of them calls it.

use std::io::Write;

use rusqlite::Connection;
use serde_json::json;

use crate::error::StorageError;
use crate::journal::chain::{Chain, Entry, Hash, PAGE, entries_after};
use crate::{incarnation, journal_heads, node_state};

/// The export format's name (the first line's `format`).
pub const EXPORT_FORMAT: &str = "rms-journal-1";

/// The part of one chain an export holds: the entry before it (its position and hash: 0 and the
/// genesis when the part starts the chain), and its entries.
struct Part {
    prev_seq: u64,
    prev_hash: String,
    entries: Vec<Entry>,
}

/// Writes the entries of every chain whose record time falls in `[from_ms, to_ms)` as export
/// lines (`docs/JOURNAL.md`): a header naming, per chain, the entry before the first exported
/// (its seq and hash), then one line per entry. Returns the entries written.
pub fn export(
    conn: &Connection,
    from_ms: u64,
    to_ms: u64,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let me = node_state::load(conn)?.device_id;
    let mut parts = Vec::new();
    let mut prev = serde_json::Map::new();
    for chain in Chain::ALL {
        if let Some(part) = part_of(conn, chain, from_ms, to_ms)? {
            let (seq, hash) = (part.prev_seq, &part.prev_hash);
            prev.insert(chain.as_str().into(), json!({"seq": seq, "hash": hash}));
            parts.push(part);
        }
    }
    // Where the events chain may jump: the first event of each incarnation (`crate::incarnation`).
    let incarnations: Vec<String> = incarnation::all(conn)?
        .iter()
        .map(|i| format!("{me}-{}", i.first_seq))
        .collect();
    let header = json!({
        "format": EXPORT_FORMAT, "device_id": me, "from_ms": from_ms, "to_ms": to_ms, "prev": prev,
        "incarnations": incarnations,
    });
    writeln!(out, "{header}")?;
    let mut written = 0;
    let mut ranges = Vec::new();
    for part in parts {
        if let (Some(first), Some(last)) = (part.entries.first(), part.entries.last()) {
            ranges.push((first.chain, first.seq, last.seq));
        }
        written += write_entries(out, part)?;
    }
    // The heads the device signed inside the exported ranges, after the entries they sign.
    for (chain, from, to) in ranges {
        for head in journal_heads::between(conn, chain, from, to)? {
            writeln!(out, "{}", json!({ "signed_head": head }))?;
        }
    }
    Ok(written)
}

/// The entries of `chain` from the first to the last whose record time falls in
/// `[from_ms, to_ms)`, with the entry before them; `None` when no entry falls inside.
fn part_of(
    conn: &Connection,
    chain: Chain,
    from_ms: u64,
    to_ms: u64,
) -> Result<Option<Part>, StorageError> {
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
        return Ok(None);
    };
    let before = first.checked_sub(1).and_then(|i| entries.get(i));
    let (prev_seq, prev_hash) =
        before.map_or((0, Hash::GENESIS.to_hex()), |e| (e.seq, e.hash.clone()));
    Ok(Some(Part {
        prev_seq,
        prev_hash,
        entries: entries.drain(first..=last).collect(),
    }))
}

/// Writes one line per entry of `part`, each naming the hash of the entry before it. Returns
/// how many.
fn write_entries(out: &mut dyn Write, part: Part) -> Result<u64, std::io::Error> {
    let mut prev = part.prev_hash;
    let mut written = 0;
    for entry in part.entries {
        let line = json!({
            "chain": entry.chain, "seq": entry.seq, "prev": prev,
            "record": entry.record, "hash": entry.hash,
        });
        writeln!(out, "{line}")?;
        prev = entry.hash;
        written += 1;
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
    /// The journal could not be read: the database failed, or a row does not decode.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The export could not be written to its output (a full disk, a closed pipe); what was
    /// written before is an incomplete export.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

impl From<rusqlite::Error> for ExportError {
    fn from(err: rusqlite::Error) -> ExportError {
        ExportError::Storage(err.into())
    }
}

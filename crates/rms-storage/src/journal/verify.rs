//! `journal verify`: the check of a database's journal against its rows (the events of which
//! sales are read, and the audit log), and of the heads the device signed.
//!
//! **Dependencies:** the top of the journal. It reads the chains (`journal::chain`), the rows they
//! record (`crate::events`, `crate::audit`), the incarnations whose numbers the events chain skips
//! (`crate::incarnation`) and the signed heads (`crate::journal_heads`); none of them calls it.

use std::collections::VecDeque;
use std::fmt;

use rms_domain::{AuditEntry, DeviceId, EventId, SyncEvent};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StorageError;
use crate::journal::chain::{
    Chain, Entry, Hash, PAGE, audit_record, entries_after, event_record, start,
};
use crate::{audit, events, incarnation, journal_heads, node_state};

/// The first entry or row that does not verify, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The chain the failing entry belongs to.
    pub chain: Chain,
    /// The journal position concerned (0 when the break is not an entry's: the `incarnations`
    /// table disagrees with the audit log; one past the head when a row has no entry).
    pub seq: u64,
    /// The event id or audit row id concerned (or `incarnations`, or `signed head`).
    pub reference: String,
    /// What is wrong, in words for the operator (`rms-node journal verify` prints it).
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
    /// Each chain that verified, in [`Chain::ALL`] order: its last position (its length, 0 when
    /// empty) and the hash there ([`Hash::GENESIS`] when empty). A chain after the break is
    /// missing.
    pub heads: Vec<(Chain, u64, Hash)>,
    /// The signed heads that verified (`crate::journal_heads`); 0 when a chain broke first.
    pub signed_heads: usize,
    /// The first entry, row or signed head that fails, if any: `None` means the journal is whole.
    pub broken: Option<Break>,
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
    let me = node_state::load(conn)?.device_id;
    if let Some(why) = incarnation::unaudited(conn)? {
        let broken = Break {
            chain: Chain::Audit,
            seq: 0,
            reference: "incarnations".into(),
            why,
        };
        return Ok(Verified::broken(Vec::new(), broken));
    }
    let skipped = incarnation::skipped(conn)?;
    let mut heads = Vec::new();
    for chain in Chain::ALL {
        match verify_chain(conn, chain, me, &skipped)? {
            Ok((seq, hash)) => heads.push((chain, seq, hash)),
            Err(broken) => return Ok(Verified::broken(heads, broken)),
        }
    }
    let mut hash_at = |chain: Chain, seq: u64| hash_at(conn, chain, seq);
    match journal_heads::verify(conn, me, &mut hash_at)? {
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

/// Walks `chain` from its first entry, checking each link and the row it records. Its head
/// (position and hash), or the first break. `skipped`: own event numbers an earlier
/// incarnation used (`incarnation::skipped`), where the events chain jumps.
fn verify_chain(
    conn: &Connection,
    chain: Chain,
    me: DeviceId,
    skipped: &[(u64, u64)],
) -> Result<Result<(u64, Hash), Break>, StorageError> {
    let (events_after, audit_after) = start(conn)?;
    let mut rows = Rows::new(conn, chain, me, (events_after, audit_after), skipped);
    let (mut seq, mut prev) = (0, Hash::GENESIS);
    // The event number of the entry before (events chain): a jump moves by as many positions as
    // numbers.
    let mut number = events_after;
    loop {
        let page = entries_after(conn, chain, seq, PAGE)?;
        if page.is_empty() {
            break;
        }
        for entry in page {
            let numbered = entry.reference.parse::<EventId>().ok().map(|id| id.seq);
            let jumps = chain == Chain::Events
                && numbered.is_some_and(|n| {
                    skipped.iter().any(|&(_, first)| first == n)
                        && n.checked_sub(number) == entry.seq.checked_sub(seq)
                });
            let why = match check_link(&entry, seq, &prev, jumps) {
                Some(why) => Some(why),
                None => rows.check(&entry)?,
            };
            if let Some(why) = why {
                return Ok(Err(Break {
                    chain,
                    seq: entry.seq,
                    reference: entry.reference,
                    why,
                }));
            }
            seq = entry.seq;
            number = numbered.unwrap_or(number);
            prev = Hash::from_hex(&entry.hash).unwrap_or(Hash::GENESIS);
        }
    }
    if let Some((reference, why)) = rows.unjournaled()? {
        let seq = seq + 1;
        return Ok(Err(Break {
            chain,
            seq,
            reference,
            why,
        }));
    }
    Ok(Ok((seq, prev)))
}

/// The hash the journal holds at position `seq` of `chain`, if it has that entry and its hash is
/// a hash (what a signed head is compared with).
fn hash_at(conn: &Connection, chain: Chain, seq: u64) -> Result<Option<Hash>, StorageError> {
    let hash: Option<String> = conn
        .prepare_cached("SELECT hash FROM journal WHERE chain = ?1 AND seq = ?2")?
        .query_row(
            params![chain.as_str(), i64::try_from(seq).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(hash.as_deref().and_then(Hash::from_hex))
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
    me: DeviceId,
    events: VecDeque<SyncEvent>,
    audit: VecDeque<AuditEntry>,
    /// The position read up to: an event seq or an audit id.
    read_to: i64,
    /// Own event numbers that are an earlier incarnation's, not journaled here
    /// (`crate::incarnation::skipped`).
    skipped: &'c [(u64, u64)],
}

impl<'c> Rows<'c> {
    /// The rows `chain` records, from the journal's start: `(events_after, audit_after)`.
    fn new(
        conn: &'c Connection,
        chain: Chain,
        me: DeviceId,
        (events_after, audit_after): (u64, i64),
        skipped: &'c [(u64, u64)],
    ) -> Rows<'c> {
        let read_to = match chain {
            Chain::Events => i64::try_from(events_after).unwrap_or(i64::MAX),
            Chain::Audit => audit_after,
        };
        Rows {
            conn,
            chain,
            me,
            events: VecDeque::new(),
            audit: VecDeque::new(),
            read_to,
            skipped,
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
                    let skipped = self.skipped;
                    self.events = page
                        .into_iter()
                        .filter(|e| !incarnation::is_skipped(skipped, e.event_id.seq))
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

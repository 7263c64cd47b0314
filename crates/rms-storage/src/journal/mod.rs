//! The journal (issue #17, `docs/JOURNAL.md`): what this device originates (chain `events`) and
//! every row of its audit log (chain `audit`), hash-chained. Entry `n` of a chain holds a
//! `record` (JSON naming its chain and position, and what it records) and
//! `hash = SHA-256(hash of n-1 ‖ record)`, the first entry's predecessor being 32 zero bytes. An
//! entry is appended in the transaction that writes what it records, so a crash keeps both or
//! neither.
//!
//! [`verify()`] checks a database: each chain links, and the rows agree with their records (the
//! events, of which sales are read, and the audit rows), so a sale changed, deleted or swapped with
//! the `sqlite3` shell is named, whether or not the append-only triggers were dropped first.
//! [`export()`] writes a range as JSON lines that `scripts/journal_verify.py` checks without rms.
//!
//! **Dependencies point one way:** `journal::chain` (the chains and their appends) is the bottom,
//! importing nothing of the crate but the error type; the audit log appends through it, and
//! `journal_heads` reads it. `journal::verify` and `journal::export` are the top: they read the chains, the
//! events and audit rows, the incarnations and the signed heads, and nothing below calls them.
//! This module only names the three parts' public items, so that they keep their
//! `rms_storage::journal::...` paths.

pub(crate) mod chain;
mod export;
mod verify;

pub use chain::{
    Chain, Entry, Hash, append_audit, append_event, entries_after, event_hash, head,
    next_event_link,
};
pub use export::{EXPORT_FORMAT, ExportError, export};
pub use verify::{Break, Verified, verify};

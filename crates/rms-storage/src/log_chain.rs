//! The master log's hash chain (issue #17, `docs/JOURNAL.md`): position `n` of this device's copy
//! of the master log has `hash(n) = SHA-256(hash(n-1) ‖ record(n))`, the record naming the
//! position, the epoch that decided it, the event as made and the verdict. Two devices whose logs
//! agree up to `n` have the same hash there, whatever path the entries took to them; a device
//! whose log was truncated (split brain) has the hash of the log it now holds. The master signs
//! its head (`rms_transport::journal_sign`), shown in `/health`.
//!
//! Computed, not stored: [`LogChain::extend`] reads the entries after the head it had, and starts
//! again from the beginning when the entry at its head is no longer the one it hashed (the log
//! was truncated and went on differently).

use rms_domain::{Epoch, EventPayload, EventStatus, Hlc, LogEntry, RejectReason};
use rusqlite::Connection;
use serde::Serialize;

use crate::journal::Hash;
use crate::{StorageError, events};

/// Entries read at once.
const PAGE: usize = 5000;

/// The record of a log entry (the text hashed; `docs/JOURNAL.md` gives its form).
#[derive(Serialize)]
struct LogRecord<'a> {
    chain: &'static str,
    seq: u64,
    epoch: &'a Epoch,
    event_id: String,
    user_id: &'a str,
    created_at_ms: u64,
    hlc: Hlc,
    payload: &'a EventPayload,
    status: EventStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<RejectReason>,
}

/// The record of `entry` at its position.
pub fn record(entry: &LogEntry) -> Result<String, StorageError> {
    let event = &entry.event;
    serde_json::to_string(&LogRecord {
        chain: "log",
        seq: entry.seq(),
        epoch: &entry.epoch,
        event_id: event.event_id.to_string(),
        user_id: &event.user_id,
        created_at_ms: event.created_at_ms,
        hlc: event.hlc,
        payload: &event.payload,
        status: event.status,
        reason: event.reason,
    })
    .map_err(|e| StorageError::corrupt("sync_events", e))
}

/// A head of the log chain: its position, hash, and the entry there — its event and the epoch
/// that decided it — to notice a truncation (a later master may log the same event at the same
/// position in its own epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChain {
    pub seq: u64,
    pub hash: Hash,
    at: Option<(rms_domain::EventId, Epoch)>,
}

impl Default for LogChain {
    fn default() -> LogChain {
        LogChain {
            seq: 0,
            hash: Hash::GENESIS,
            at: None,
        }
    }
}

impl LogChain {
    /// The head after the entries this device's log holds now: from this one when the log still
    /// holds the entry it ended on, else from the beginning. Reads one snapshot, so a truncation
    /// committed meanwhile is seen whole or not at all.
    pub fn extend(&self, conn: &Connection) -> Result<LogChain, StorageError> {
        let snapshot = conn.unchecked_transaction()?;
        let still = match &self.at {
            None => true,
            Some((id, epoch)) => events::entry_at(&snapshot, self.seq)?
                .is_some_and(|e| e.event.event_id == *id && e.epoch == *epoch),
        };
        let mut head = if still {
            self.clone()
        } else {
            LogChain::default()
        };
        loop {
            let entries = events::log_after(&snapshot, head.seq, PAGE)?;
            if entries.is_empty() {
                return Ok(head);
            }
            for entry in &entries {
                if entry.seq() != head.seq + 1 {
                    // A hole in this device's copy (not pulled yet): the chain stops before it.
                    return Ok(head);
                }
                head.hash = Hash::link(&head.hash, &record(entry)?);
                head.seq = entry.seq();
                head.at = Some((entry.event.event_id, entry.epoch));
            }
        }
    }
}

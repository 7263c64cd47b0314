//! The master log's hash chain (issue #17, `docs/JOURNAL.md`): position `n` of this device's copy
//! of the master log has `hash(n) = SHA-256(hash(n-1) ‖ record(n))`, the record naming the
//! position, the epoch that decided it, the event as made and the verdict. Two devices whose logs
//! agree up to `n` have the same hash there, whatever path the entries took to them; a device
//! whose log was truncated (split brain) has the hash of the log it now holds. The master signs
//! its head (`rms_transport::tasks::log_watch`), shown in `/health`.
//!
//! Computed, not stored: [`LogChain::extend`] reads the entries after the head it had, and starts
//! again from the beginning when the entry at its head is no longer the one it hashed (the log
//! was truncated and went on differently). [`LogChain::follow`] also compares the copy with the
//! master's signed head ([`MasterHead`]) as it passes the head's position.
//!
//! **Dependencies:** it reads the master log (`crate::events`), hashes with the journal's
//! [`Hash`](struct@Hash) (`crate::journal::chain`) and checks a master's signature with
//! `crate::journal_heads`; nothing in this crate calls it (the transport's log watch does).

use std::collections::VecDeque;

use rms_domain::{
    DeviceId, Epoch, EventPayload, EventStatus, Hlc, LogEntry, PushHead, RejectReason, TrustList,
};
use rusqlite::Connection;
use serde::Serialize;

use crate::error::StorageError;
use crate::events;
use crate::journal::chain::Hash;
use crate::journal_heads::{self, LogHeadStatement};

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
    /// The position of the last entry hashed (0: none, the default).
    pub seq: u64,
    /// The chain's hash at `seq` ([`Hash::GENESIS`] at 0).
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
        Ok(self.follow(conn, None, &mut Recent::default())?.chain)
    }

    /// Like [`LogChain::extend`], and compares this copy with `master`'s signed head at its
    /// position: on the way when the chain reaches it, or from `recent` (the hashes of the
    /// latest positions, kept up to date here) when the chain had passed it. `compared` is
    /// `None` when the copy does not reach the position yet, or passed it too long ago.
    pub fn follow(
        &self,
        conn: &Connection,
        master: Option<&MasterHead>,
        recent: &mut Recent,
    ) -> Result<Followed, StorageError> {
        let snapshot = conn.unchecked_transaction()?;
        let still = match &self.at {
            None => true,
            Some((id, epoch)) => events::entry_at(&snapshot, self.seq)?
                .is_some_and(|e| e.event.event_id == *id && e.epoch == *epoch),
        };
        let mut head = if still {
            self.clone()
        } else {
            recent.0.clear();
            LogChain::default()
        };
        let mut compared = None;
        if let Some(master) = master {
            let at = master.statement.seq;
            if at >= head.seq {
                head.extend_within(&snapshot, at, recent)?;
                if head.seq == at {
                    compared = Some(master.compare(head.epoch(), &head.hash));
                }
            } else if let Some((_, epoch, hash)) = recent.0.iter().find(|(seq, _, _)| *seq == at) {
                compared = Some(master.compare(Some(epoch), hash));
            }
        }
        head.extend_within(&snapshot, u64::MAX, recent)?;
        Ok(Followed {
            chain: head,
            compared,
            restarted: !still,
        })
    }

    /// This head computed again from the beginning of the log, in one read snapshot: `Some`
    /// with the chain as the file gives it now when that differs here — an entry at or before
    /// this position was changed, deleted or inserted in the file since it was hashed; `None`
    /// when it is the same, or when the entry at this position is no longer the one hashed (a
    /// truncation: [`LogChain::follow`] starts again).
    pub fn recheck(&self, conn: &Connection) -> Result<Option<LogChain>, StorageError> {
        let Some((id, epoch)) = &self.at else {
            return Ok(None);
        };
        let snapshot = conn.unchecked_transaction()?;
        let still = events::entry_at(&snapshot, self.seq)?
            .is_some_and(|e| e.event.event_id == *id && e.epoch == *epoch);
        if !still {
            return Ok(None);
        }
        let mut again = LogChain::default();
        again.extend_within(&snapshot, self.seq, &mut Recent::default())?;
        Ok((again.seq != self.seq || again.hash != self.hash).then_some(again))
    }

    /// The epoch that decided the entry at the head (`None`: the chain is empty).
    pub fn epoch(&self) -> Option<&Epoch> {
        self.at.as_ref().map(|(_, epoch)| epoch)
    }

    /// Extends over the entries `snapshot` holds, up to position `until`, keeping the hashes of
    /// the latest positions in `recent`.
    fn extend_within(
        &mut self,
        snapshot: &Connection,
        until: u64,
        recent: &mut Recent,
    ) -> Result<(), StorageError> {
        while self.seq < until {
            let page = PAGE.min(usize::try_from(until - self.seq).unwrap_or(PAGE));
            let entries = events::log_after(snapshot, self.seq, page)?;
            if entries.is_empty() {
                return Ok(());
            }
            for entry in &entries {
                if entry.seq() != self.seq + 1 {
                    // A hole in this device's copy (not pulled yet): the chain stops before it.
                    return Ok(());
                }
                self.hash = Hash::link(&self.hash, &record(entry)?);
                self.seq = entry.seq();
                self.at = Some((entry.event.event_id, entry.epoch));
                recent.keep(self.seq, entry.epoch, self.hash);
            }
        }
        Ok(())
    }
}

/// Most positions whose hashes a device keeps ([`Recent`]): a master's head that arrives after
/// the chain passed its position is compared if it is among them (at 5 s between heads, a store
/// logging up to 200 entries a second).
pub const RECENT_MAX: usize = 1024;

/// The hashes of the chain's latest positions, at most [`RECENT_MAX`].
#[derive(Debug, Clone, Default)]
pub struct Recent(VecDeque<(u64, Epoch, Hash)>);

impl Recent {
    fn keep(&mut self, seq: u64, epoch: Epoch, hash: Hash) {
        if self.0.len() == RECENT_MAX {
            self.0.pop_front();
        }
        self.0.push_back((seq, epoch, hash));
    }
}

/// What [`LogChain::follow`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    /// The head after every entry the log holds now (up to the first hole).
    pub chain: LogChain,
    /// This copy against the master's head, when the chain passed its position.
    pub compared: Option<Compared>,
    /// The entry at the old head was gone (a truncation): the chain started again.
    pub restarted: bool,
}

/// A master's signed log head (`journal_heads::LogHeadStatement`), verified: what a device
/// checks its own copy of the log against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterHead {
    /// What the master signed: its id, the position, the epoch that decided it, the hash.
    pub statement: LogHeadStatement,
    /// The statement's hash, decoded: the master's log chain at `statement.seq`.
    pub hash: Hash,
    /// The signed head as it came (statement, key, certificate, signature), to pass on.
    pub signed: PushHead,
}

/// Why a master's signed log head was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogHeadRefused {
    /// Its fields are not bounded hex, its statement is not a log head, or its hash is not 64
    /// hex digits.
    #[error("it is not a signed log head of bounded hex fields")]
    Malformed,
    /// Its statement names another device than the master of the epoch this device follows.
    #[error("it is device {said}'s head, not the master's (device {master})")]
    NotTheMaster {
        /// The device the statement names.
        said: DeviceId,
        /// The master this device follows.
        master: DeviceId,
    },
    /// The signature does not verify with its key, the key is not its certificate's, or the
    /// trust list does not bind the certificate to the master.
    #[error("{why}")]
    Signature {
        /// Which of these, in words.
        why: &'static str,
    },
}

impl MasterHead {
    /// `signed` as `master`'s log head: its statement names `master`, and its signature verifies
    /// with the key of a certificate `trust` binds to `master`.
    pub fn verify(
        signed: PushHead,
        master: DeviceId,
        trust: &TrustList,
    ) -> Result<MasterHead, LogHeadRefused> {
        signed.validate().map_err(|_| LogHeadRefused::Malformed)?;
        let statement = journal_heads::parse_log_statement(&signed.statement)
            .ok_or(LogHeadRefused::Malformed)?;
        let hash = Hash::from_hex(&statement.hash).ok_or(LogHeadRefused::Malformed)?;
        if statement.device_id != master {
            let said = statement.device_id;
            return Err(LogHeadRefused::NotTheMaster { said, master });
        }
        journal_heads::check_signature(
            &signed.statement,
            &signed.key,
            &signed.certificate,
            &signed.signature,
            master,
            trust,
        )
        .map_err(|why| LogHeadRefused::Signature { why })?;
        Ok(MasterHead {
            statement,
            hash,
            signed,
        })
    }

    /// This head against a copy's `epoch` and `hash` at the same position.
    fn compare(&self, epoch: Option<&Epoch>, hash: &Hash) -> Compared {
        if epoch != Some(&self.statement.epoch) {
            Compared::Diverged
        } else if *hash == self.hash {
            Compared::Same
        } else {
            Compared::Differs { own: *hash }
        }
    }
}

/// How this device's copy of the log compares with the master's signed head at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compared {
    /// The same hash: this copy, up to that position, is the master's.
    Same,
    /// Another epoch decided that position here: this copy went another way (the split brain's
    /// truncation is yet to come). No verdict.
    Diverged,
    /// The same epoch, another hash: this copy or the master's was changed at or before that
    /// position.
    Differs {
        /// This copy's hash at that position.
        own: Hash,
    },
}

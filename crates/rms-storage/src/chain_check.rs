//! The master's check of a pushed chain (issue #17, `docs/JOURNAL.md`): before it decides a
//! push, each event's [`ChainLink`] must continue its origin's chain — the event before it in the
//! push, or the one the master already holds — and the push's [`PushHead`] must sign the hash of
//! the last linked event with a key the trust list binds to the pushing device. A push that fails
//! is refused whole (nothing decided) and alarmed by the core.
//!
//! Cost: one SHA-256 of each event's record, one read of the predecessor of the first event (and
//! its record rebuilt), one signature check and one read of the trust list per push (not per
//! event): a signature over the head covers every event before it by the chain.

use std::sync::{Arc, Mutex, PoisonError};

use rms_domain::{ChainBreak, DeviceId, EventId, PushHead, SyncEvent, TrustList};
use rusqlite::Connection;

use crate::journal::{Chain, Hash, event_hash};
use crate::journal_heads::{check_signature, parse_statement};
use crate::trust::{self, Stamp};
use crate::{StorageError, events};

/// What the master knows of the event before a pushed one.
enum Before {
    /// Not stored here (a master that never saw it: the link cannot be checked against it).
    Unknown,
    /// Made before its origin kept a journal.
    Unlinked,
    /// Linked: its position and hash.
    Linked(u64, Hash),
}

/// Whether a push's head is checked: always in a node; the simulator, which models no device
/// keys, checks the links alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heads {
    Required,
    NotModelled,
}

/// A master's checker of pushes: whether heads are checked, and the trust list they are checked
/// against, read again only when it changed (`trust::stamp`): loading it reads every trust event,
/// too much for every push.
#[derive(Debug)]
pub struct Checker {
    heads: Heads,
    trust: Mutex<Option<(Stamp, Arc<TrustList>)>>,
}

impl Checker {
    pub fn new(heads: Heads) -> Checker {
        Checker {
            heads,
            trust: Mutex::new(None),
        }
    }

    /// Checks `events`, pushed by `from`, and the push's `head`. `Ok(Err(_))` names the first
    /// break.
    pub fn check(
        &self,
        conn: &Connection,
        from: DeviceId,
        events: &[SyncEvent],
        head: Option<&PushHead>,
    ) -> Result<Result<(), ChainBreak>, StorageError> {
        check_push(conn, from, events, head, self.heads, &|| {
            self.trust_list(conn)
        })
    }

    fn trust_list(&self, conn: &Connection) -> Result<Arc<TrustList>, StorageError> {
        let stamp = trust::stamp(conn)?;
        let mut cached = self.trust.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, list)) = cached.as_ref()
            && *at == stamp
        {
            return Ok(Arc::clone(list));
        }
        let list = Arc::new(trust::load(conn)?);
        *cached = Some((stamp, Arc::clone(&list)));
        Ok(list)
    }
}

/// Checks `events`, pushed by `from`, and the push's `head` against the trust list `trust`
/// gives. `Ok(Err(_))` names the first break.
fn check_push(
    conn: &Connection,
    from: DeviceId,
    events: &[SyncEvent],
    head: Option<&PushHead>,
    heads: Heads,
    trust: &dyn Fn() -> Result<Arc<TrustList>, StorageError>,
) -> Result<Result<(), ChainBreak>, StorageError> {
    // The event before the next one, when it is in this push.
    let mut previous: Option<(u64, Before)> = None;
    let mut last: Option<(u64, Hash)> = None;
    for event in events {
        let id = event.event_id;
        let before = match previous.take() {
            Some((seq, before)) if seq + 1 == id.seq => before,
            _ => stored_before(conn, id)?,
        };
        let Some(link) = &event.chain else {
            if matches!(before, Before::Linked(..)) {
                return Ok(Err(ChainBreak::Unlinked { event_id: id }));
            }
            previous = Some((id.seq, Before::Unlinked));
            continue;
        };
        let broken = |why| Ok(Err(ChainBreak::Link { event_id: id, why }));
        if last.is_some_and(|(seq, _)| link.seq <= seq) {
            return broken("it comes after an event that follows it in the chain");
        }
        let Some(hash) = event_hash(event)? else {
            return broken("its link's previous hash is not a hash");
        };
        let follows = match &before {
            Before::Linked(seq, prev) => {
                if seq + 1 != link.seq {
                    return broken("its chain position does not follow the event before it");
                }
                Hash::from_hex(&link.prev) == Some(*prev)
            }
            Before::Unlinked if link.seq != 1 => {
                return broken("the first linked event of a device must be at position 1");
            }
            Before::Unlinked | Before::Unknown => {
                link.seq != 1 || Hash::from_hex(&link.prev) == Some(Hash::GENESIS)
            }
        };
        if !follows {
            return broken("its link does not continue the hash of the entry before it");
        }
        last = Some((link.seq, hash));
        previous = Some((id.seq, Before::Linked(link.seq, hash)));
    }
    let Some((seq, hash)) = last.filter(|_| heads == Heads::Required) else {
        return Ok(Ok(()));
    };
    let Some(head) = head else {
        return Ok(Err(ChainBreak::Unsigned));
    };
    if head.validate().is_err() {
        let why = "it is malformed (its fields are not bounded hex)";
        return Ok(Err(ChainBreak::Signature { why }));
    }
    let Some((device, chain, at, said)) = parse_statement(&head.statement) else {
        return Ok(Err(ChainBreak::Unsigned));
    };
    if device != from || chain != Chain::Events.as_str() || at != seq {
        return Ok(Err(ChainBreak::Unsigned));
    }
    if Hash::from_hex(&said) != Some(hash) {
        let why = "it signs another hash than the last event's: an event differs from its \
                   origin's journal";
        return Ok(Err(ChainBreak::Signature { why }));
    }
    let trust = trust()?;
    let signed = check_signature(
        &head.statement,
        &head.key,
        &head.certificate,
        &head.signature,
        from,
        &trust,
    );
    Ok(signed.map_err(|why| ChainBreak::Signature { why }))
}

/// The event before `id` of the same origin, as stored here (its hash follows from its link
/// and content: one record rebuilt per push, not per event).
fn stored_before(conn: &Connection, id: EventId) -> Result<Before, StorageError> {
    if id.seq <= 1 {
        return Ok(Before::Unlinked);
    }
    let before = EventId {
        device_id: id.device_id,
        seq: id.seq - 1,
    };
    let Some(event) = events::get(conn, &before)? else {
        return Ok(Before::Unknown);
    };
    match (&event.chain, event_hash(&event)?) {
        (Some(link), Some(hash)) => Ok(Before::Linked(link.seq, hash)),
        (Some(_), None) => Err(StorageError::corrupt("sync_events", "a bad chain_prev")),
        (None, _) => Ok(Before::Unlinked),
    }
}

//! The master's check of a pushed chain (issue #17, `docs/JOURNAL.md`): before it decides a
//! push, each event's [`ChainLink`](rms_domain::ChainLink) must continue its origin's chain —
//! the event before it in the push, or the one the master already holds — and the push's
//! [`PushHead`] must sign the hash of the last linked event with a key the trust list binds to
//! the pushing device. A push that fails is refused whole (nothing decided) and alarmed by the
//! core.
//!
//! Cost: one SHA-256 of each event's record; per push, one index lookup for the events the
//! master holds already (usually none), one read of the newest event before the first one (and its
//! record rebuilt), one signature check, and the trust list's stamp (`Checker` reads the list
//! again only when it changed): a signature over the head covers every event before it by the
//! chain.
//!
//! **Dependencies:** it reads the events the master holds (`crate::events`), rebuilds hashes with
//! `crate::journal::chain`, checks signatures with `crate::journal_heads` against the trust list
//! (`crate::trust`); nothing in this crate calls it (the sync core's driver does).

use std::sync::{Arc, Mutex, PoisonError};

use rms_domain::{ChainBreak, DeviceId, EventId, Fingerprint, PushHead, SyncEvent, TrustList};
use rusqlite::Connection;

use crate::error::StorageError;
use crate::events;
use crate::journal::chain::{Chain, Hash, event_hash};
use crate::journal_heads::{check_bound, parse_statement, verify_signature};
use crate::trust::{self, Stamp};

/// What the master knows of the newest event of a device before a pushed one.
#[derive(Clone, Copy)]
enum Before {
    /// Nothing of that device before it (a first event, or a master that never saw the ones
    /// before: the link cannot be checked against them).
    Unknown,
    /// Made before its origin kept a journal (or stored before links were kept).
    Unlinked,
    /// Linked: its event number, chain position and hash. A device's event numbers and chain
    /// positions move together (one journal entry per event it makes), so the next number's
    /// position is the next one, and it must continue this hash.
    Linked(u64, u64, Hash),
}

/// What a push says of itself, worked out without the database as it arrives (in the
/// connection's task, off the driver thread that decides): each event's hash in its origin's
/// chain, and whether the head's signature verifies with its key and certificate (the trust
/// list, which changes, is the checker's). The checker uses it only for the very events, in the
/// same order, and the very head it was worked out from.
#[derive(Clone)]
pub struct Prehashed {
    from: DeviceId,
    /// The events and head it was worked out from (a copy): it is used only for equal ones, so
    /// that it cannot vouch for other content under the same ids.
    events: Vec<SyncEvent>,
    head: Option<PushHead>,
    hashes: Vec<Option<Hash>>,
    signature: Result<Fingerprint, &'static str>,
}

impl Prehashed {
    /// The hashes and the signature of the push `from` sent, as they arrive.
    pub fn of(
        from: DeviceId,
        events: &[SyncEvent],
        head: Option<&PushHead>,
    ) -> Result<Prehashed, StorageError> {
        let hashes = events
            .iter()
            .map(event_hash)
            .collect::<Result<Vec<_>, _>>()?;
        let signature = match head {
            Some(head) if head.validate().is_ok() => verify_signature(
                &head.statement,
                &head.key,
                &head.certificate,
                &head.signature,
            ),
            _ => Err("no head"),
        };
        Ok(Prehashed {
            from,
            events: events.to_vec(),
            head: head.cloned(),
            hashes,
            signature,
        })
    }

    /// Worked out from events and a head equal to these, in this order, pushed by `from`.
    pub fn is_of(&self, from: DeviceId, events: &[SyncEvent], head: Option<&PushHead>) -> bool {
        self.from == from && self.events == events && self.head.as_ref() == head
    }
}

impl std::fmt::Debug for Prehashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prehashed")
            .field("from", &self.from)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// A push as the checker sees it.
#[derive(Clone, Copy)]
struct Pushed<'a> {
    from: DeviceId,
    events: &'a [SyncEvent],
    head: Option<&'a PushHead>,
    prehashed: Option<&'a Prehashed>,
}

impl Pushed<'_> {
    /// The hash of the event at `index` in its origin's chain.
    fn hash(&self, index: usize) -> Result<Option<Hash>, StorageError> {
        match self.prehashed.and_then(|p| p.hashes.get(index)) {
            Some(hash) => Ok(*hash),
            None => self.events.get(index).map_or(Ok(None), event_hash),
        }
    }
}

/// Whether a push's head is checked: always in a node; the simulator, which models no device
/// keys, checks the links alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heads {
    /// A push with linked events must carry a head that signs the last of them, with a key the
    /// trust list binds to the pushing device (every node).
    Required,
    /// Heads are not checked, only the links (the simulator, whose devices have no keys).
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
    /// A checker that checks heads as `heads` says, with no trust list read yet (the first
    /// check reads it).
    pub fn new(heads: Heads) -> Checker {
        Checker {
            heads,
            trust: Mutex::new(None),
        }
    }

    /// Checks `events`, pushed by `from`, and the push's `head`. `Ok(Err(_))` names the first
    /// break.
    /// `prehashed`: what [`Prehashed::of`] worked out for this push as it arrived, used when it
    /// is of these very events.
    pub fn check(
        &self,
        conn: &Connection,
        from: DeviceId,
        events: &[SyncEvent],
        head: Option<&PushHead>,
        prehashed: Option<&Prehashed>,
    ) -> Result<Result<(), ChainBreak>, StorageError> {
        let pushed = Pushed {
            from,
            events,
            head,
            prehashed: prehashed.filter(|p| p.is_of(from, events, head)),
        };
        check_push(conn, &pushed, self.heads, &|| self.trust_list(conn))
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
    pushed: &Pushed<'_>,
    heads: Heads,
    trust: &dyn Fn() -> Result<Arc<TrustList>, StorageError>,
) -> Result<Result<(), ChainBreak>, StorageError> {
    let Pushed { from, events, .. } = *pushed;
    let held = held_copies(conn, from, events)?;
    // The event before the next one, when it is in this push: `(event seq, what it was)`.
    let mut previous: Option<(u64, Before)> = None;
    let mut last: Option<(u64, Hash)> = None;
    for (index, event) in events.iter().enumerate() {
        let id = event.event_id;
        let before = match previous.take() {
            Some((seq, before)) if seq.checked_add(1) == Some(id.seq) => before,
            _ => stored_before(conn, id)?,
        };
        let broken = |why| Ok(Err(ChainBreak::Link { event_id: id, why }));
        // An event the master holds already: the chain goes on from the master's copy (a device
        // that rebuilt its chain from a changed event it had pushed cannot re-push it to move
        // the anchor). Other content under its id is `event_id_reused`, the core's verdict for
        // that one event; the same content with another link is a rebuilt chain.
        if let Some(copy) = held.iter().find(|e| e.event_id == id)
            && let Some(copy_link) = &copy.chain
        {
            if !copy.same_content(event) {
                let hash = event_hash(copy)?
                    .ok_or_else(|| StorageError::corrupt("sync_events", "a bad chain_prev"))?;
                previous = Some((id.seq, Before::Linked(id.seq, copy_link.seq, hash)));
                // The head signs what the device holds at that position.
                if let (Some(link), Some(own)) = (&event.chain, pushed.hash(index)?) {
                    last = Some((link.seq, own));
                }
                continue;
            }
            if copy.chain != event.chain {
                return broken("it differs from the master's copy of it");
            }
        }
        let Some(link) = &event.chain else {
            if matches!(before, Before::Linked(..)) || last.is_some() {
                return Ok(Err(ChainBreak::Unlinked { event_id: id }));
            }
            previous = Some((id.seq, Before::Unlinked));
            continue;
        };
        if last.is_some_and(|(seq, _)| link.seq <= seq) {
            return broken("it comes after an event that follows it in the chain");
        }
        let (Some(prev), Some(hash)) = (Hash::from_hex(&link.prev), pushed.hash(index)?) else {
            return broken("its link's previous hash is not a hash");
        };
        if let Some(why) = link_break(before, id.seq, link.seq, prev) {
            return broken(why);
        }
        last = Some((link.seq, hash));
        previous = Some((id.seq, Before::Linked(id.seq, link.seq, hash)));
    }
    match last.filter(|_| heads == Heads::Required) {
        Some((seq, hash)) => check_head(pushed, seq, hash, trust),
        None => Ok(Ok(())),
    }
}

/// Why a link at chain position `link_seq` whose previous hash is `prev`, on the event numbered
/// `number_seq`, does not continue `before` (what the master knows of the event before it), if it
/// does not.
fn link_break(before: Before, number_seq: u64, link_seq: u64, prev: Hash) -> Option<&'static str> {
    match before {
        // Positions keep their offset from numbers, so that no position holds two numbers. A
        // fresh incarnation of the device (`crate::incarnation`: an empty journal) may start a
        // new chain at offset zero, after a gap of numbers: its position its number, its
        // predecessor the genesis. It cannot know how its predecessor's positions were offset (a
        // device upgraded to the journal numbered events before it had one).
        Before::Linked(number, seq, _)
            if i128::from(link_seq) - i128::from(seq)
                != i128::from(number_seq) - i128::from(number)
                && !(link_seq == number_seq
                    && prev == Hash::GENESIS
                    && number.saturating_add(1) < number_seq) =>
        {
            Some("its chain position does not follow the event before it")
        }
        Before::Linked(_, seq, hash) if seq.checked_add(1) == Some(link_seq) && prev != hash => {
            Some("its link does not continue the hash of the entry before it")
        }
        _ if link_seq == 1 && prev != Hash::GENESIS => {
            Some("the first entry of a chain follows zero")
        }
        // A gap of positions (the master never held the events between), an unlinked predecessor
        // (made before the journal), or nothing before: the head still signs it.
        _ => None,
    }
}

/// Whether `head` signs `hash`, the hash of the last linked event of the push, at `seq`, with a
/// key the trust list binds to `from`.
fn check_head(
    pushed: &Pushed<'_>,
    seq: u64,
    hash: Hash,
    trust: &dyn Fn() -> Result<Arc<TrustList>, StorageError>,
) -> Result<Result<(), ChainBreak>, StorageError> {
    let Pushed {
        from, events, head, ..
    } = *pushed;
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
    let mut trust = trust()?;
    // A device's first binding may travel in this very push (its own `self` trust event, when
    // it was admitted on a link the master dialed): counted as the master's rules would count it.
    for event in events {
        if let Some(change) = event
            .payload
            .trust_change(event.event_id.device_id, event.created_at_ms)
            && change.device_id == from
            && change.state == rms_domain::TrustState::Trusted
            && trust.check(&change).is_ok()
        {
            Arc::make_mut(&mut trust).apply(change);
        }
    }
    let verified = match pushed.prehashed {
        Some(prehashed) => prehashed.signature,
        None => verify_signature(
            &head.statement,
            &head.key,
            &head.certificate,
            &head.signature,
        ),
    };
    let signed = verified.and_then(|fingerprint| check_bound(&fingerprint, from, &trust));
    Ok(signed.map_err(|why| ChainBreak::Signature { why }))
}

/// The newest event of `id`'s origin before it that the master holds (its hash follows from its
/// link and content).
fn stored_before(conn: &Connection, id: EventId) -> Result<Before, StorageError> {
    let Some(event) = events::latest_before(conn, &id)? else {
        return Ok(Before::Unknown);
    };
    match (&event.chain, event_hash(&event)?) {
        (Some(link), Some(hash)) => Ok(Before::Linked(event.event_id.seq, link.seq, hash)),
        (Some(_), None) => Err(StorageError::corrupt("sync_events", "a bad chain_prev")),
        (None, _) => Ok(Before::Unlinked),
    }
}

/// The events of the push that the master holds already (usually none).
fn held_copies(
    conn: &Connection,
    from: DeviceId,
    events: &[SyncEvent],
) -> Result<Vec<SyncEvent>, StorageError> {
    let Some(low) = events.iter().map(|e| e.event_id.seq).min() else {
        return Ok(Vec::new());
    };
    // New events (what a push usually holds) come after the newest the master holds: one index
    // lookup says so.
    if events::newest_seq(conn, from)?.is_none_or(|newest| newest < low) {
        return Ok(Vec::new());
    }
    let mut held = Vec::new();
    for event in events {
        held.extend(events::get(conn, &event.event_id)?);
    }
    Ok(held)
}

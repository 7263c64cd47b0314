//! The master's check of a pushed chain (issue #17, `docs/JOURNAL.md`): before it decides a
//! push, each event's [`ChainLink`] must continue its origin's chain — the event before it in the
//! push, or the one the master already holds — and the push's [`PushHead`] must sign the hash of
//! the last linked event with a key the trust list binds to the pushing device. A push that fails
//! is refused whole (nothing decided) and alarmed by the core.
//!
//! Cost: one SHA-256 of each event's record, one read of the predecessor of the first event, one
//! signature check and one read of the trust list per push (not per event): a signature over the
//! head covers every event before it by the chain.

use rms_domain::{ChainBreak, DeviceId, EventId, PushHead, SyncEvent};
use rusqlite::{Connection, OptionalExtension, params};

use crate::StorageError;
use crate::journal::{Chain, Hash, event_hash};
use crate::journal_heads::{check_signature, parse_statement};

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

/// Checks `events`, pushed by `from`, and the push's `head`. `Ok(Err(_))` names the first break.
pub fn check_push(
    conn: &Connection,
    from: DeviceId,
    events: &[SyncEvent],
    head: Option<&PushHead>,
    heads: Heads,
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
                prev.to_hex() == link.prev
            }
            Before::Unlinked if link.seq != 1 => {
                return broken("the first linked event of a device must be at position 1");
            }
            Before::Unlinked | Before::Unknown => {
                link.seq != 1 || link.prev == Hash::GENESIS.to_hex()
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
    if said != hash.to_hex() {
        let why = "it signs another hash than the last event's: an event differs from its \
                   origin's journal";
        return Ok(Err(ChainBreak::Signature { why }));
    }
    let trust = crate::trust::load(conn)?;
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

/// The event before `id` of the same origin, as stored here.
fn stored_before(conn: &Connection, id: EventId) -> Result<Before, StorageError> {
    if id.seq <= 1 {
        return Ok(Before::Unlinked);
    }
    // A position SQLite cannot hold is not stored (the event is refused as invalid later).
    let Ok(before) = i64::try_from(id.seq - 1) else {
        return Ok(Before::Unknown);
    };
    let row: Option<(Option<i64>, Option<String>)> = conn
        .prepare_cached(
            "SELECT chain_seq, chain_hash FROM sync_events WHERE device_id = ?1 AND seq = ?2",
        )?
        .query_row(params![id.device_id.get(), before], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(match row {
        None => Before::Unknown,
        Some((Some(seq), Some(hash))) => match (u64::try_from(seq), Hash::from_hex(&hash)) {
            (Ok(seq), Some(hash)) => Before::Linked(seq, hash),
            _ => return Err(StorageError::corrupt("sync_events", "a bad chain_hash")),
        },
        Some(_) => Before::Unlinked,
    })
}

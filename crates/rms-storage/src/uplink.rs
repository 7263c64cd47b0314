//! The head-office uplink's read side (issue #15): the next batch of the master log after head
//! office's cursor, found as a device finds its pull — by `since` and `since_epoch`, with Kafka's
//! end offset for an epoch when the two logs disagree.

use rms_domain::hq::{Cursor, IngestBatch};
use rms_domain::{Epoch, LogEntry};
use rusqlite::Connection;

use crate::error::StorageError;
use crate::{events, local, node_state};

/// The next batch for head office, and what the master should know about it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The batch to send: the entries after where the two logs agree, with the cursor they
    /// continue, this master's log head and its catalogue version.
    pub batch: IngestBatch<LogEntry>,
    /// Head office holds more of the log than this master has: a store restored from an old
    /// backup, or entries of a split brain's other island. An alarm, not a stop: head office
    /// flags its entries after `since` as undone and deletes nothing.
    pub behind: bool,
}

/// The master log after head office's `cursor`: at most `entries_max` entries and about
/// `bytes_max` bytes of JSON (always at least one entry when there is one). If this log does
/// not hold head office's last entry with its epoch, the batch starts where the two logs agree,
/// flagged `truncate`.
pub fn batch_after(
    conn: &Connection,
    cursor: &Cursor,
    epoch: Epoch,
    entries_max: usize,
    bytes_max: usize,
) -> Result<Planned, StorageError> {
    let head = node_state::load(conn)?.log_head;
    let (since, since_epoch, truncate) = agreement(conn, cursor, head)?;
    let since_event = match since {
        0 => None,
        seq => events::entry_at(conn, seq)?.map(|e| e.event.event_id),
    };
    let mut entries = Vec::new();
    let mut bytes = 0;
    for entry in events::log_after(conn, since, entries_max)? {
        let size = serde_json::to_vec(&entry)
            .map(|j| j.len())
            .unwrap_or(bytes_max);
        if !entries.is_empty() && bytes + size > bytes_max {
            break;
        }
        bytes += size;
        entries.push(entry);
    }
    Ok(Planned {
        batch: IngestBatch {
            epoch,
            since,
            since_epoch,
            since_event,
            truncate,
            head,
            catalog_version: local::catalog_version(conn)?,
            entries,
        },
        behind: cursor.since > head,
    })
}

/// Where this log and head office's agree: the cursor itself if this log holds its entry with
/// its epoch; otherwise the last entry of this log in an epoch at or before the cursor's (and
/// not past the cursor), to be sent with `truncate`.
fn agreement(
    conn: &Connection,
    cursor: &Cursor,
    head: u64,
) -> Result<(u64, Option<Epoch>, bool), StorageError> {
    let Some(cursor_epoch) = cursor.since_epoch.filter(|_| cursor.since > 0) else {
        return Ok((0, None, false));
    };
    let at_cursor = events::entry_at(conn, cursor.since)?;
    if let Some(entry) = &at_cursor
        && entry.epoch == cursor_epoch
    {
        if cursor
            .since_event
            .is_none_or(|id| id == entry.event.event_id)
        {
            return Ok((cursor.since, Some(cursor_epoch), false));
        }
        // The same position and epoch with another event: this log was restored from a backup
        // and went on differently. Where the two part is unknown: send everything again (head
        // office revives the rows that are the same and keeps the others, undone).
        return Ok((0, None, true));
    }
    // The entry at the cursor itself differs: agreement is before it at the latest.
    let keep = events::epoch_end(conn, &cursor_epoch, head)?
        .min(cursor.since - 1)
        .min(head);
    let keep_epoch = match keep {
        0 => None,
        seq => events::entry_at(conn, seq)?.map(|e| e.epoch),
    };
    Ok((keep, keep_epoch, true))
}

//! Sales, read from their `sale_recorded` events: the event is a sale's only copy, so its status
//! and its lines can never disagree with the log.

use rms_domain::{EventId, Sale};
use rusqlite::Connection;

use crate::error::StorageError;
use crate::events;

/// The sale `sale_id`, if this device has it.
pub fn get(conn: &Connection, sale_id: &str) -> Result<Option<Sale>, StorageError> {
    // A sale's id is its event's id (`SyncEvent::validate`).
    let Ok(event_id) = sale_id.parse::<EventId>() else {
        return Ok(None);
    };
    Ok(events::get(conn, &event_id)?
        .as_ref()
        .and_then(Sale::of_event)
        .filter(|sale| sale.sale_id == sale_id))
}

/// The newest sales first (in the order this device stored them), at most `limit`.
pub fn list(conn: &Connection, limit: usize) -> Result<Vec<Sale>, StorageError> {
    Ok(events::newest_of_kind(conn, "sale_recorded", limit)?
        .iter()
        .filter_map(Sale::of_event)
        .collect())
}

//! An uplink batch as head office first reads it: each entry keyed by its event's id, its
//! position and its epoch ([`Row`]), and the checks that the batch is a piece of a master log.
//!
//! Dependencies point down from here to `error` only: `ingest`, `chains` and `projection` read
//! rows, and this module names none of them.

use std::collections::HashSet;

use rms_domain::hq::{IngestBatch, UPLINK_ENTRIES_MAX};
use rms_domain::{Epoch, EventId};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{HqError, MalformedBatch};

/// What keys an entry: its event's id, its position, and the epoch that decided it.
#[derive(Deserialize)]
struct Keyed {
    event: KeyedEvent,
    epoch: Epoch,
}

#[derive(Deserialize)]
struct KeyedEvent {
    event_id: EventId,
    master_seq: u64,
    status: String,
    payload: KindOnly,
}

#[derive(Deserialize)]
struct KindOnly {
    kind: String,
}

/// An entry of the batch, read far enough to key it.
pub(crate) struct Row<'a> {
    pub(crate) key: (i32, i64),
    pub(crate) master_seq: i64,
    pub(crate) epoch: Epoch,
    pub(crate) kind: String,
    pub(crate) status: String,
    /// The entry as the store sent it, never re-encoded.
    pub(crate) raw: &'a RawValue,
}

pub(crate) fn to_i64(value: u64, field: &'static str) -> Result<i64, HqError> {
    i64::try_from(value).map_err(|_| MalformedBatch::TooLarge { field }.into())
}

/// Keys every entry and checks the batch is a piece of a master log: at most
/// [`UPLINK_ENTRIES_MAX`] entries, each an event once, at `since + 1`, `since + 2`, ...
pub(crate) fn key_rows(batch: &IngestBatch<Box<RawValue>>) -> Result<Vec<Row<'_>>, HqError> {
    if batch.entries.len() > UPLINK_ENTRIES_MAX {
        return Err(MalformedBatch::TooManyEntries.into());
    }
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(batch.entries.len());
    for (index, raw) in batch.entries.iter().enumerate() {
        let keyed = serde_json::from_str::<Keyed>(raw.get())
            .map_err(|source| MalformedBatch::Unreadable { index, source })?;
        let due = batch
            .since
            .checked_add(1 + index as u64)
            .ok_or(MalformedBatch::SinceOutOfRange)?;
        if keyed.event.master_seq != due {
            let found = keyed.event.master_seq;
            return Err(MalformedBatch::OutOfPlace { index, found, due }.into());
        }
        let event_id = keyed.event.event_id;
        let key = (
            i32::from(event_id.device_id.get()),
            to_i64(event_id.seq, "event_id")?,
        );
        if event_id.seq == 0 || !seen.insert(key) {
            return Err(MalformedBatch::NotOnce { index, event_id }.into());
        }
        rows.push(Row {
            key,
            master_seq: to_i64(keyed.event.master_seq, "master_seq")?,
            epoch: keyed.epoch,
            kind: keyed.event.payload.kind,
            status: keyed.event.status,
            raw: raw.as_ref(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn batch(since: u64, seqs: &[u64]) -> IngestBatch<Box<RawValue>> {
        let entries: Vec<Value> = seqs
            .iter()
            .map(|s| {
                serde_json::json!({
                    "event": {"event_id": format!("2-{s}"), "master_seq": s, "status": "synced",
                              "payload": {"kind": "sale_recorded"}},
                    "epoch": {"term": 1, "master_id": 1, "master_priority": 0},
                })
            })
            .collect();
        let text = serde_json::json!({
            "epoch": {"term": 1, "master_id": 1, "master_priority": 0},
            "since": since, "since_epoch": null, "head": 9, "catalog_version": 0,
            "entries": entries, "a_field_of_a_newer_store": true,
        })
        .to_string();
        serde_json::from_str(&text).expect("a batch")
    }

    #[test]
    fn a_batch_is_a_piece_of_a_master_log_or_malformed() {
        assert_eq!(
            key_rows(&batch(4, &[5, 6, 7])).map(|r| r.len()).ok(),
            Some(3)
        );
        for (since, seqs) in [(4, &[5, 7][..]), (4, &[6][..]), (u64::MAX, &[1][..])] {
            let bad = batch(since, seqs);
            let refused = key_rows(&bad);
            assert!(
                matches!(
                    refused,
                    Err(HqError::Malformed(
                        MalformedBatch::OutOfPlace { .. } | MalformedBatch::SinceOutOfRange
                    ))
                ),
                "{since} {seqs:?}"
            );
        }
        // An entry repeated is out of place; one event at two places is not once.
        let mut repeated = batch(0, &[1, 2]);
        repeated.entries[1] = repeated.entries[0].clone();
        assert!(matches!(
            key_rows(&repeated),
            Err(HqError::Malformed(MalformedBatch::OutOfPlace {
                index: 1,
                ..
            }))
        ));
        let mut twice = batch(0, &[1, 2]);
        let again = twice.entries[1].get().replace("\"2-2\"", "\"2-1\"");
        twice.entries[1] = RawValue::from_string(again).expect("JSON");
        assert!(matches!(
            key_rows(&twice),
            Err(HqError::Malformed(MalformedBatch::NotOnce { index: 1, .. }))
        ));
        let long: Vec<u64> = (1..=UPLINK_ENTRIES_MAX as u64 + 1).collect();
        let long = batch(0, &long);
        assert!(matches!(
            key_rows(&long),
            Err(HqError::Malformed(MalformedBatch::TooManyEntries))
        ));
    }
}

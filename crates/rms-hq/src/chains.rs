//! Head office's check of each store device's chain (issue #17, `docs/JOURNAL.md`): every event
//! a device originates carries its place in the device's journal (`chain`), which the store's
//! master checked before deciding it. Head office checks again, on ingest, that each linked event
//! continues the last one it holds of that device (`hq_chains`), so an event changed in the
//! master's database file after the master decided it, before the uplink read it, is flagged
//! when the device's next event arrives: an ingest error of kind `chain_broken` per break, counted in
//! `/hq/v1/stores` as `chain_breaks`. The entry is kept as sent, like every entry.
//!
//! Not checked: an event whose predecessor head office never received (a gap: a verdict given
//! without a log entry, or a log that starts after the journal did); its link then becomes what
//! the next one must continue. Signatures are the master's to check, not head office's.
//!
//! **On crash:** the chain heads move in the batch's transaction.
//!
//! It points down at `batch` (the rows it checks) and `ingest_errors` (where a break is
//! recorded); `ingest` calls it, and it never names `ingest`.

use std::collections::{BTreeMap, HashSet};

use rms_domain::SyncEvent;
use serde::Deserialize;
use tokio_postgres::Transaction;

use crate::batch::Row;
use crate::error::HqError;
use crate::ingest_errors::record_error;

/// What the check reads of an entry.
#[derive(Deserialize)]
struct Linked {
    event: SyncEvent,
}

/// A chain's head: position and hash.
type Head = (i64, [u8; 32]);

/// `SHA-256(prev ‖ record)`: the hash of the event at its link's position.
fn event_hash(prev: &[u8; 32], seq: u64, event: &SyncEvent) -> Result<[u8; 32], HqError> {
    let record = rms_domain::chain::event_record(seq, event)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(prev);
    context.update(record.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    Ok(out)
}

/// Checks the linked events among `rows` (those `stored`, in log order) against the chain heads
/// head office holds, records a `chain_broken` error per break, and moves the heads. Returns the
/// breaks.
pub(crate) async fn check(
    tx: &Transaction<'_>,
    store_id: i64,
    rows: &[Row<'_>],
    stored: &HashSet<(i32, i64)>,
) -> Result<u64, HqError> {
    // Entries without a link (head office's own, or made before the journal) are skipped
    // without being decoded.
    // An entry this build cannot read as an event (a newer store's field or kind) is not
    // checked: like every unknown, it never blocks ingest.
    let linked: Vec<(&Row<'_>, SyncEvent)> = rows
        .iter()
        .filter(|r| stored.contains(&r.key) && r.raw.get().contains("\"chain\":"))
        .filter_map(|r| Some((r, serde_json::from_str::<Linked>(r.raw.get()).ok()?.event)))
        .collect();
    if linked.is_empty() {
        return Ok(0);
    }
    let devices: Vec<i32> = linked.iter().map(|(r, _)| r.key.0).collect();
    let mut heads = load_heads(tx, store_id, &devices).await?;
    let mut breaks = 0;
    let mut moved = BTreeMap::new();
    for (row, event) in &linked {
        let Some(link) = &event.chain else { continue };
        let Some(prev) = rms_domain::chain::hash_from_hex(&link.prev) else {
            continue;
        };
        let seq = i64::try_from(link.seq).unwrap_or(i64::MAX);
        let head = heads.get(&row.key.0).copied();
        if head.is_some_and(|(at, _)| seq <= at) {
            // Logged again (a re-sent batch, or a later master after a split brain).
            continue;
        }
        let why = match head {
            Some((at, hash)) if at + 1 == seq && hash != prev => {
                Some("its link does not continue the hash of the device's event before it")
            }
            None if seq == 1 && prev != [0; 32] => Some("the first entry of a chain follows zero"),
            _ => None,
        };
        if let Some(why) = why {
            let message = format!("device {} chain #{seq}: {why}", row.key.0);
            log::warn!("store {store_id}: {message}");
            record_error(tx, store_id, "chain_broken", Some(row), &message).await?;
            breaks += 1;
        }
        let hash = event_hash(&prev, link.seq, event)?;
        heads.insert(row.key.0, (seq, hash));
        moved.insert(row.key.0, (seq, hash));
    }
    save_heads(tx, store_id, moved).await?;
    Ok(breaks)
}

/// The chain heads head office holds for `devices` of `store_id`, by device id.
async fn load_heads(
    tx: &Transaction<'_>,
    store_id: i64,
    devices: &[i32],
) -> Result<BTreeMap<i32, Head>, HqError> {
    let mut heads = BTreeMap::new();
    for row in tx
        .query(
            "SELECT device_id, chain_seq, chain_hash FROM hq_chains
             WHERE store_id = $1 AND device_id = ANY($2)",
            &[&store_id, &devices],
        )
        .await?
    {
        let device_id: i32 = row.get(0);
        let hash: Vec<u8> = row.get(2);
        let hash: [u8; 32] =
            hash.try_into()
                .map_err(|hash: Vec<u8>| HqError::CorruptChainHead {
                    store_id,
                    device_id,
                    bytes: hash.len(),
                })?;
        heads.insert(device_id, (row.get(1), hash));
    }
    Ok(heads)
}

/// Writes the heads that moved, by device id.
async fn save_heads(
    tx: &Transaction<'_>,
    store_id: i64,
    moved: BTreeMap<i32, Head>,
) -> Result<(), HqError> {
    for (device, (seq, hash)) in moved {
        tx.execute(
            "INSERT INTO hq_chains (store_id, device_id, chain_seq, chain_hash)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (store_id, device_id) DO UPDATE
                SET chain_seq = excluded.chain_seq, chain_hash = excluded.chain_hash",
            &[&store_id, &device, &seq, &hash.as_slice()],
        )
        .await?;
    }
    Ok(())
}

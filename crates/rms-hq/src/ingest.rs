//! Ingest: a store master's batch of master-log entries, committed in one transaction with the
//! store's cursor.
//!
//! Each entry is keyed by `(store_id, device_id, seq)` (UNIQUE): a re-sent batch, or a later
//! master logging the same event again after a split brain, updates the one row (its verdict and
//! position) and never makes a second one. A key already taken by an event with other content (a
//! device restored from a backup reuses its sequence) is kept raw as an ingest error. Entries are
//! then projected into sales, sale lines and stock; an entry that cannot be projected is kept raw
//! in the log, recorded as an ingest error, and never blocks the entries after it.
//!
//! **On crash:** nothing of a batch exists before its commit, all of it after; the store's
//! master learns which by reading the cursor again.
//!
//! It drives the steps, which point down and never back at it: `batch` keys the entries,
//! `fence` bounds the epoch a batch may bring, `projection` and `chains` work on the stored
//! rows, `ingest_errors` records what they refuse.

use std::collections::HashSet;

use rms_domain::Epoch;
use rms_domain::hq::{Cursor, IngestAnswer, IngestBatch};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_postgres::Transaction;
use tokio_postgres::types::Json;

use crate::batch::{Row, key_rows, to_i64};
use crate::db::Db;
use crate::error::HqError;
use crate::ingest_errors::{record_error, record_refusal};

/// An epoch as `hq_stores` holds it (jsonb), if any.
fn epoch_of(value: Option<Value>) -> Result<Option<Epoch>, HqError> {
    Ok(value.map(serde_json::from_value).transpose()?)
}

/// Head office's cursor for a store.
pub async fn cursor(db: &Db, store_id: i64) -> Result<Cursor, HqError> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            "SELECT cursor_seq, cursor_epoch, max_epoch, cursor_event FROM hq_stores
             WHERE store_id = $1",
            &[&store_id],
        )
        .await?
        .ok_or(HqError::NotFound("store"))?;
    read_cursor(&row)
}

fn read_cursor(row: &tokio_postgres::Row) -> Result<Cursor, HqError> {
    let since: i64 = row.get(0);
    let event: Option<String> = row.get(3);
    Ok(Cursor {
        since: u64::try_from(since).unwrap_or(0),
        since_epoch: epoch_of(row.get(1))?,
        since_event: event.and_then(|e| e.parse().ok()),
        max_epoch: epoch_of(row.get(2))?,
    })
}

/// Commits `batch` from `store_id`'s master, or writes nothing and says why. A batch whose epoch
/// is out of range (`crate::fence`) is recorded as an ingest error of kind
/// `epoch_out_of_range` (at most once per
/// [`crate::ingest_errors::REFUSALS_RECORDED_INTERVAL_MS`] and store; every
/// one is logged).
pub async fn ingest(
    db: &Db,
    store_id: i64,
    batch: &IngestBatch<Box<RawValue>>,
) -> Result<IngestAnswer, HqError> {
    let result = commit_batch(db, store_id, batch).await;
    if let Err(HqError::EpochOutOfRange(refused)) = &result {
        log::warn!("store {store_id}: refused a batch: {refused}");
        let message = refused.to_string();
        if let Err(err) = record_refusal(db, store_id, "epoch_out_of_range", &message).await {
            log::error!("store {store_id}: cannot record the refusal: {err}");
        }
    }
    result
}

async fn commit_batch(
    db: &Db,
    store_id: i64,
    batch: &IngestBatch<Box<RawValue>>,
) -> Result<IngestAnswer, HqError> {
    let rows = key_rows(batch)?;
    let head = to_i64(batch.head, "head")?;
    let catalog_version = to_i64(batch.catalog_version, "catalog_version")?;
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    let (cursor, since, truncated) = start_at_cursor(&tx, store_id, batch).await?;
    let stored = store_rows(&tx, store_id, &rows).await?;
    let mut errors = (rows.len() - stored.len()) as u64;
    for row in rows.iter().filter(|r| !stored.contains(&r.key)) {
        let message = "the key is taken by another event with other content";
        record_error(&tx, store_id, "key_taken", Some(row), message).await?;
    }
    errors += crate::projection::project(&tx, store_id, &rows, &stored).await?;
    errors += crate::chains::check(&tx, store_id, &rows, &stored).await?;

    let (new_since, new_epoch, new_event) = position_after(&rows, &cursor, since, batch, truncated);
    let changes_log = !rows.is_empty() || truncated;
    let max_epoch = crate::fence::after_batch(cursor.max_epoch, batch.epoch, changes_log);
    tx.execute(
        "UPDATE hq_stores SET cursor_seq = $2::int8, cursor_epoch = $3, max_epoch = $4,
                store_head = $5::int8, catalog_version = $6, last_contact = now(),
                behind_since = CASE WHEN $2::int8 < $5::int8
                                    THEN COALESCE(behind_since, now()) END,
                batches = batches + 1, cursor_event = $7
         WHERE store_id = $1",
        &[
            &store_id,
            &new_since,
            &new_epoch.map(serde_json::to_value).transpose()?,
            &max_epoch.map(serde_json::to_value).transpose()?,
            &head,
            &catalog_version,
            &new_event,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(IngestAnswer {
        cursor: Cursor {
            since: u64::try_from(new_since).unwrap_or(0),
            since_epoch: new_epoch,
            since_event: new_event.and_then(|e| e.parse().ok()),
            max_epoch,
        },
        stored: stored.len() as u64,
        errors,
    })
}

/// Where head office stands after `batch` (taken from `since`): its last entry, or where a
/// truncation left it, or the cursor as it was.
fn position_after(
    rows: &[Row<'_>],
    cursor: &Cursor,
    since: i64,
    batch: &IngestBatch<Box<RawValue>>,
    truncated: bool,
) -> (i64, Option<Epoch>, Option<String>) {
    match rows.last() {
        Some(last) => (
            last.master_seq,
            Some(last.epoch),
            Some(format!("{}-{}", last.key.0, last.key.1)),
        ),
        // A truncation with nothing after it: head office now stands where the store says.
        None if truncated => (
            since,
            batch.since_epoch,
            batch.since_event.map(|e| e.to_string()),
        ),
        // A heartbeat, at the cursor: the cursor stays as it is (one that left out
        // `since_event` would otherwise erase it, and the master's next batch, which names it,
        // would never be at the cursor again).
        None => (
            since,
            cursor.since_epoch,
            cursor.since_event.map(|e| e.to_string()),
        ),
    }
}

/// Locks the store's row and checks that `batch` comes from a master head office may take (not
/// older than its fence, and within `crate::fence`'s bound) and starts where head office
/// stands: at its cursor, or (a truncating batch) at a position it holds, after which it undoes
/// what it holds. Returns the cursor as it was, the batch's `since`, and whether it undid.
async fn start_at_cursor(
    tx: &Transaction<'_>,
    store_id: i64,
    batch: &IngestBatch<Box<RawValue>>,
) -> Result<(Cursor, i64, bool), HqError> {
    // Head office's clock is its database's, the same for every replica.
    let row = tx
        .query_opt(
            "SELECT cursor_seq, cursor_epoch, max_epoch, cursor_event,
                    (EXTRACT(EPOCH FROM now()) * 1000)::int8 FROM hq_stores
             WHERE store_id = $1 AND revoked_at IS NULL FOR UPDATE",
            &[&store_id],
        )
        .await?
        .ok_or(HqError::NotFound("store"))?;
    let cursor = read_cursor(&row)?;
    if cursor.max_epoch.is_some_and(|max| batch.epoch < max) {
        return Err(HqError::StaleEpoch(cursor));
    }
    let now_ms: i64 = row.get(4);
    crate::fence::check(
        cursor.max_epoch,
        batch.epoch,
        u64::try_from(now_ms).unwrap_or(0),
    )?;
    let since = to_i64(batch.since, "since")?;
    let at_cursor = batch.since == cursor.since
        && batch.since_epoch == cursor.since_epoch
        && (batch.since_event.is_none() || batch.since_event == cursor.since_event);
    if batch.truncate && batch.since <= cursor.since && !at_cursor {
        // Only back to a position head office holds as the store says (a late copy of an old
        // truncating batch finds the cursor moved, and changes nothing).
        if !holds(tx, store_id, since, batch.since_epoch).await? {
            return Err(HqError::CursorMoved(cursor));
        }
        undo_after(tx, store_id, since, batch.since_epoch).await?;
        return Ok((cursor, since, true));
    } else if !at_cursor {
        return Err(HqError::CursorMoved(cursor));
    }
    Ok((cursor, since, false))
}

/// Whether head office holds the store's entry at `since` in `epoch` (position 0 always).
async fn holds(
    tx: &Transaction<'_>,
    store_id: i64,
    since: i64,
    epoch: Option<Epoch>,
) -> Result<bool, HqError> {
    let Some(epoch) = epoch.filter(|_| since > 0) else {
        return Ok(since == 0);
    };
    let row = tx
        .query_opt(
            "SELECT 1 FROM hq_log
             WHERE store_id = $1 AND master_seq = $2 AND epoch = $3 AND NOT undone",
            &[&store_id, &since, &serde_json::to_value(epoch)?],
        )
        .await?;
    Ok(row.is_some())
}

/// The store's master log no longer agrees with head office after `since`: flags what head
/// office holds after it as undone (kept; a master that logs the same event again clears it),
/// and records the truncation.
async fn undo_after(
    tx: &Transaction<'_>,
    store_id: i64,
    since: i64,
    since_epoch: Option<Epoch>,
) -> Result<(), HqError> {
    let undone = tx
        .execute(
            "UPDATE hq_log SET undone = true
             WHERE store_id = $1 AND master_seq > $2 AND NOT undone",
            &[&store_id, &since],
        )
        .await?;
    let message = format!(
        "the store's log does not agree after master_seq {since} (epoch {}): {undone} entries \
         flagged undone (a split brain's losing island, or a store restored from a backup)",
        since_epoch.map_or_else(|| "none".to_owned(), |e| e.to_string())
    );
    log::warn!("store {store_id}: {message}");
    record_error(tx, store_id, "truncated", None, &message).await
}

/// Inserts the entries, or updates the row of an event logged before with the same content (a
/// later master's verdict and position); returns the keys stored. One statement for the batch.
async fn store_rows(
    tx: &Transaction<'_>,
    store_id: i64,
    rows: &[Row<'_>],
) -> Result<HashSet<(i32, i64)>, HqError> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let devices: Vec<i32> = rows.iter().map(|r| r.key.0).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.key.1).collect();
    let master_seqs: Vec<i64> = rows.iter().map(|r| r.master_seq).collect();
    let epochs = rows
        .iter()
        .map(|r| serde_json::to_value(r.epoch))
        .collect::<Result<Vec<Value>, _>>()?;
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let entries: Vec<Json<&RawValue>> = rows.iter().map(|r| Json(r.raw)).collect();
    let stored = tx
        .query(
            "INSERT INTO hq_log (store_id, device_id, seq, master_seq, epoch, kind, status, entry)
             SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::int8[], $5::jsonb[],
                                      $6::text[], $7::text[], $8::jsonb[])
             ON CONFLICT (store_id, device_id, seq) DO UPDATE
                SET master_seq = excluded.master_seq, epoch = excluded.epoch,
                    status = excluded.status, entry = excluded.entry, undone = false,
                    ingested_at = now()
                WHERE hq_log.entry->'event'->'payload' = excluded.entry->'event'->'payload'
                  AND hq_log.entry->'event'->'user_id' = excluded.entry->'event'->'user_id'
                  -- Head office's catalogue change is logged by whichever master fetched it,
                  -- each with its own clock: its content is its payload.
                  AND (hq_log.device_id = 65535
                       OR hq_log.entry->'event'->'hlc' = excluded.entry->'event'->'hlc')
             RETURNING device_id, seq",
            &[
                &store_id,
                &devices,
                &seqs,
                &master_seqs,
                &epochs,
                &kinds,
                &statuses,
                &entries,
            ],
        )
        .await?;
    Ok(stored.iter().map(|r| (r.get(0), r.get(1))).collect())
}

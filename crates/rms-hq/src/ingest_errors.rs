//! The ingest errors head office keeps (`hq_ingest_errors`): an entry it could not take in
//! full (its key taken, not projectable, a broken chain) or a truncation, recorded in the batch's
//! transaction and counted per store in `/hq/v1/stores`.
//!
//! It points down at `batch` (the row an error is about) and `error` only; `ingest` and
//! `chains` record through it.

use tokio_postgres::Transaction;
use tokio_postgres::types::Json;

use crate::batch::Row;
use crate::error::HqError;

/// Records an ingest error of `kind` (`key_taken`, `unprojectable`, `chain_broken`,
/// `truncated`) for `store_id`, about `row` when it concerns one entry (whose raw JSON is kept
/// with it).
pub(crate) async fn record_error(
    tx: &Transaction<'_>,
    store_id: i64,
    kind: &str,
    row: Option<&Row<'_>>,
    message: &str,
) -> Result<(), HqError> {
    tx.execute(
        "INSERT INTO hq_ingest_errors (store_id, kind, master_seq, device_id, seq, message, entry)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &store_id,
            &kind,
            &row.map(|r| r.master_seq),
            &row.map(|r| r.key.0),
            &row.map(|r| r.key.1),
            &message,
            &row.map(|r| Json(r.raw)),
        ],
    )
    .await?;
    Ok(())
}

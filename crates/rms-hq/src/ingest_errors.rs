//! The ingest errors head office keeps (`hq_ingest_errors`): an entry it could not take in
//! full (its key taken, not projectable, a broken chain) or a truncation, recorded in the batch's
//! transaction and counted per store in `/hq/v1/stores`; a batch refused for its epoch
//! (`epoch_out_of_range`), recorded after its transaction is rolled back; and an operator's
//! reset of a store's epoch fence (`epoch_reset`).
//!
//! It points down at `batch` (the row an error is about), `db` and `error` only; `ingest`,
//! `chains` and `stores` record through it.

use tokio_postgres::Transaction;
use tokio_postgres::types::Json;

use crate::batch::Row;
use crate::db::Db;
use crate::error::HqError;

/// A store's refusals of one kind are recorded at most once per this interval, in milliseconds;
/// the others are logged only (`warn`), so a token's holder cannot fill the table with them.
pub const REFUSALS_RECORDED_INTERVAL_MS: i64 = 60_000;

/// Records an ingest error of `kind` (`key_taken`, `unprojectable`, `chain_broken`,
/// `truncated`, `epoch_reset`) for `store_id`, about `row` when it concerns one entry (whose raw
/// JSON is kept with it).
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

/// Records a refused batch of `store_id` as an ingest error of `kind`, in a transaction of its
/// own (the batch's was rolled back), unless one of that kind was recorded for the store within
/// [`REFUSALS_RECORDED_INTERVAL_MS`]. Returns whether it was recorded.
pub(crate) async fn record_refusal(
    db: &Db,
    store_id: i64,
    kind: &str,
    message: &str,
) -> Result<bool, HqError> {
    let client = db.client().await?;
    let recorded = client
        .execute(
            "INSERT INTO hq_ingest_errors (store_id, kind, message)
             SELECT $1, $2, $3 WHERE NOT EXISTS (
                SELECT 1 FROM hq_ingest_errors
                WHERE store_id = $1 AND kind = $2
                  AND at > now() - $4::int8 * interval '1 millisecond')",
            &[&store_id, &kind, &message, &REFUSALS_RECORDED_INTERVAL_MS],
        )
        .await?;
    Ok(recorded > 0)
}

//! Stores: registered with a secret token (only its SHA-256 is stored), revoked by people, their
//! epoch fence cleared by people, and the state of each store's uplink as head office sees it.

use ring::rand::SecureRandom;
use rms_domain::Epoch;
use serde::Serialize;

use crate::db::Db;
use crate::error::HqError;
use crate::ingest_errors::record_error;

/// Longest store name.
pub const STORE_NAME_CHARS_MAX: usize = 100;

/// A store registered: its id, and the token its master presents (shown once).
#[derive(Debug, Clone)]
pub struct NewStore {
    /// The store's id at head office, given by PostgreSQL.
    pub store_id: i64,
    /// The secret the store's master presents as `Authorization: Bearer <token>`: `rmshq_` and
    /// 64 hex digits. Head office keeps only its SHA-256, so this is the only time it is shown.
    pub token: String,
}

/// One store as `GET /hq/v1/stores` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    /// The store's id at head office.
    pub store_id: i64,
    /// The name it was registered with.
    pub name: String,
    /// Its token was revoked: head office refuses it, and keeps the store's rows.
    pub revoked: bool,
    /// The last `master_seq` head office holds.
    pub log_head: i64,
    /// The store master's log head, as its last batch said.
    pub store_head: i64,
    /// Entries the store holds that head office does not: `store_head - log_head`, at least 0.
    pub lag_entries: i64,
    /// How long head office has been behind the store's head (0 when caught up).
    pub lag_seconds: f64,
    /// Last batch (or heartbeat) from the store, RFC 3339; `None`: never.
    pub last_contact: Option<String>,
    /// Seconds since `last_contact`; `None`: never.
    pub seconds_since_contact: Option<f64>,
    /// The last head-office catalogue version the store has logged, as its last batch said.
    pub catalog_version: i64,
    /// Ingest errors recorded for the store, of every kind (`key_taken`, `unprojectable`,
    /// `chain_broken`, `truncated`, `epoch_out_of_range`, `epoch_reset`).
    pub ingest_errors: i64,
    /// Ingest errors of kind `chain_broken` (issue #17): the store's log was changed after its
    /// master decided it.
    pub chain_breaks: i64,
    /// Head office's epoch fence for the store (`crate::fence`): the greatest master epoch it
    /// took a batch from; a master of a smaller one is refused (`stale_epoch`). `None`: none
    /// yet, or cleared by `rms-hq stores reset-epoch`.
    pub max_epoch: Option<Epoch>,
}

pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// Registers a store named `name`; its token is 32 random bytes from the system's generator.
pub async fn add(db: &Db, name: &str) -> Result<NewStore, HqError> {
    rms_domain::validate_text("name", name, STORE_NAME_CHARS_MAX)?;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|ring::error::Unspecified| HqError::Random)?;
    let token: String = std::iter::once("rmshq_".to_owned())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    let client = db.client().await?;
    let row = client
        .query_one(
            "INSERT INTO hq_stores (name, token_sha256) VALUES ($1, $2) RETURNING store_id",
            &[&name, &token_hash(&token)],
        )
        .await?;
    Ok(NewStore {
        store_id: row.get(0),
        token,
    })
}

/// Cuts a store off: its token is refused from now on. Its rows stay.
pub async fn revoke(db: &Db, store_id: i64) -> Result<(), HqError> {
    let client = db.client().await?;
    let changed = client
        .execute(
            "UPDATE hq_stores SET revoked_at = COALESCE(revoked_at, now()) WHERE store_id = $1",
            &[&store_id],
        )
        .await?;
    if changed == 0 {
        return Err(HqError::NotFound("store"));
    }
    Ok(())
}

/// Clears a store's epoch fence (`crate::fence`) for the operator, so its real master's next
/// batch is taken whatever its epoch within the bound: after a stolen token raised the fence
/// within the bound, or a store was rebuilt with lower terms. The master's next batch that
/// carries entries sets the fence again. Recorded as an ingest error of kind `epoch_reset`
/// with the fence it cleared, which it returns (`None`: there was none).
pub async fn reset_epoch(db: &Db, store_id: i64) -> Result<Option<Epoch>, HqError> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT max_epoch FROM hq_stores WHERE store_id = $1 FOR UPDATE",
            &[&store_id],
        )
        .await?
        .ok_or(HqError::NotFound("store"))?;
    let cleared: Option<serde_json::Value> = row.get(0);
    let cleared: Option<Epoch> = cleared.map(serde_json::from_value).transpose()?;
    tx.execute(
        "UPDATE hq_stores SET max_epoch = NULL WHERE store_id = $1",
        &[&store_id],
    )
    .await?;
    let message = format!(
        "an operator cleared the epoch fence (it was {}): the store's next batch with entries \
         sets it",
        cleared.map_or_else(
            || "none".to_owned(),
            |e| format!("term {}, master {}", e.term, e.master_id)
        )
    );
    record_error(&tx, store_id, "epoch_reset", None, &message).await?;
    tx.commit().await?;
    log::warn!("store {store_id}: {message}");
    Ok(cleared)
}

/// The store whose token this is, if it is not revoked.
pub async fn authenticate(db: &Db, token: &str) -> Result<Option<i64>, HqError> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            "SELECT store_id FROM hq_stores WHERE token_sha256 = $1 AND revoked_at IS NULL",
            &[&token_hash(token)],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Every store, with its uplink's state.
pub async fn list(db: &Db) -> Result<Vec<StoreStatus>, HqError> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT s.store_id, s.name, s.revoked_at IS NOT NULL, s.cursor_seq, s.store_head,
                    COALESCE(EXTRACT(EPOCH FROM now() - s.behind_since)::float8, 0),
                    to_char(s.last_contact AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    EXTRACT(EPOCH FROM now() - s.last_contact)::float8,
                    s.catalog_version,
                    (SELECT count(*) FROM hq_ingest_errors e WHERE e.store_id = s.store_id),
                    (SELECT count(*) FROM hq_ingest_errors e
                     WHERE e.store_id = s.store_id AND e.kind = 'chain_broken'),
                    s.max_epoch
             FROM hq_stores s ORDER BY s.store_id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let (log_head, store_head): (i64, i64) = (r.get(3), r.get(4));
            let max_epoch: Option<serde_json::Value> = r.get(11);
            Ok(StoreStatus {
                store_id: r.get(0),
                name: r.get(1),
                revoked: r.get(2),
                log_head,
                store_head,
                lag_entries: (store_head - log_head).max(0),
                lag_seconds: r.get(5),
                last_contact: r.get(6),
                seconds_since_contact: r.get(7),
                catalog_version: r.get(8),
                ingest_errors: r.get(9),
                chain_breaks: r.get(10),
                max_epoch: max_epoch.map(serde_json::from_value).transpose()?,
            })
        })
        .collect()
}

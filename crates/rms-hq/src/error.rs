//! [`HqError`]: what a head-office call can fail with, [`MalformedBatch`], why a batch is
//! refused as malformed, and [`EpochOutOfRange`], why a batch's epoch is refused. It names
//! nothing of this crate: every other module points down at it.

use rms_domain::hq::{Cursor, UPLINK_ENTRIES_MAX};
use rms_domain::{Epoch, EventId, ValidationError};

/// What a head-office call can fail with. The API answers the first kinds (the caller's fault or
/// a race it can resolve) with their own status, and every database fault `503 unavailable`, so
/// the store retries: `Invalid` and `Malformed` are `422`, `CursorMoved` and `StaleEpoch` `409`
/// with head office's cursor, `EpochOutOfRange` `409 epoch_out_of_range`, `NotFound` `404`. A call that fails writes nothing: its
/// transaction is not committed.
#[derive(Debug, thiserror::Error)]
pub enum HqError {
    /// PostgreSQL refused a statement or the connection broke; the text is the server's message
    /// and SQLSTATE when it gave one.
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection within [`crate::db::POOL_WAIT_MAX`], or one could not be made (PostgreSQL
    /// down or unreachable).
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The pool could not be built from the configuration (at start).
    #[error("cannot build the connection pool: {0}")]
    PoolBuild(#[from] deadpool_postgres::BuildError),
    /// The database was migrated by a newer build of head office: this one refuses to run on it.
    #[error("the database schema is at version {found}, newer than this build ({supported})")]
    NewerSchema {
        /// The newest migration the database has applied.
        found: i32,
        /// The newest migration this build knows.
        supported: i32,
    },
    /// The input broke a data rule; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// A batch that cannot be read as the master log it claims to be; nothing was written.
    #[error("malformed batch: {0}")]
    Malformed(#[from] MalformedBatch),
    /// The batch does not start at head office's cursor (a lost answer's retry, or another
    /// replica took a batch meanwhile); nothing was written. Carries the cursor.
    #[error("the batch does not start at head office's cursor")]
    CursorMoved(Cursor),
    /// A master of a greater epoch uplinks for this store; nothing was written.
    #[error("a newer master of this store uplinks to head office")]
    StaleEpoch(Cursor),
    /// The batch claims an epoch above head office's fence by more than a real master can have
    /// (`crate::fence`); nothing was written, and the refusal is recorded.
    #[error(transparent)]
    EpochOutOfRange(#[from] EpochOutOfRange),
    /// There is no such thing (`"store"`: an unknown store id, or for ingest a revoked store).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A row head office wrote does not read back (an epoch or cursor in `hq_stores`), or a value
    /// did not encode as JSON.
    #[error("a stored row does not decode: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// `hq_chains` holds a chain hash that is not 32 bytes: head office's own row is damaged
    /// (the schema's check forbids it).
    #[error(
        "hq_chains holds a hash of {bytes} bytes for device {device_id} of store {store_id}, not 32"
    )]
    CorruptChainHead {
        /// The store whose chain head it is.
        store_id: i64,
        /// The store device whose chain it is.
        device_id: i32,
        /// The length of the hash found, in bytes.
        bytes: usize,
    },
    /// The operating system's random generator failed while making a store's token.
    #[error("the system's random generator failed")]
    Random,
}

/// Why an uplink batch is not a piece of a master log. Its text is the `message` of the API's
/// `422 malformed` answer.
#[derive(Debug, thiserror::Error)]
pub enum MalformedBatch {
    /// More than [`UPLINK_ENTRIES_MAX`] entries.
    #[error("a batch has at most {UPLINK_ENTRIES_MAX} entries")]
    TooManyEntries,
    /// An entry does not read as a master-log entry (its event id, `master_seq`, status,
    /// payload kind and epoch).
    #[error("entries[{index}]: {source}")]
    Unreadable {
        /// The entry's position in the batch, from 0.
        index: usize,
        /// What JSON decoding said.
        #[source]
        source: serde_json::Error,
    },
    /// `since` plus the entries overflows a `u64`.
    #[error("since is out of range")]
    SinceOutOfRange,
    /// The entries do not follow `since` one by one.
    #[error("entries[{index}]: master_seq {found} where {due} was due")]
    OutOfPlace {
        /// The entry's position in the batch, from 0.
        index: usize,
        /// The `master_seq` it has.
        found: u64,
        /// The `master_seq` it should have: `since + index + 1`.
        due: u64,
    },
    /// One event at two places of the batch (or an event id with sequence 0).
    #[error("entries[{index}]: event {event_id} is not once")]
    NotOnce {
        /// The position of its second appearance, from 0.
        index: usize,
        /// The event.
        event_id: EventId,
    },
    /// A number that PostgreSQL's `bigint` cannot hold.
    #[error("{field} is too large")]
    TooLarge {
        /// Which: `head`, `catalog_version`, `since`, `event_id` or `master_seq`.
        field: &'static str,
    },
}

/// A batch's epoch that head office refuses to raise its fence to (`crate::fence`): its term is
/// more than one above the greatest head office has seen for the store and more than
/// `EPOCH_AHEAD_MAX_MS` ahead of head office's clock. Its text is the `message` of the API's
/// `409 epoch_out_of_range` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "epoch {epoch} is out of range: a batch's term may be at most {term_max} (one above the \
     greatest term head office has seen for this store, {}, or head office's clock in \
     milliseconds plus the lead allowed)",
    greatest.map_or_else(|| "none".to_owned(), |g| g.term.to_string())
)]
pub struct EpochOutOfRange {
    /// The epoch the batch claimed.
    pub epoch: Epoch,
    /// Head office's fence: the greatest epoch it took a batch from (`None`: none yet).
    pub greatest: Option<Epoch>,
    /// The greatest term it would have taken.
    pub term_max: u64,
}

/// tokio-postgres shows a server's error as "db error": show what the server said.
fn postgres_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

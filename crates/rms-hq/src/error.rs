//! [`HqError`]: what a head-office call can fail with.

use rms_domain::hq::{Cursor, UPLINK_ENTRIES_MAX};
use rms_domain::{EventId, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum HqError {
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot build the connection pool: {0}")]
    PoolBuild(#[from] deadpool_postgres::BuildError),
    #[error("the database schema is at version {found}, newer than this build ({supported})")]
    NewerSchema { found: i32, supported: i32 },
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
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("a stored row does not decode: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error(
        "hq_chains holds a hash of {bytes} bytes for device {device_id} of store {store_id}, not 32"
    )]
    CorruptChainHead {
        store_id: i64,
        device_id: i32,
        bytes: usize,
    },
    #[error("the system's random generator failed")]
    Random,
}

/// Why an uplink batch is not a piece of a master log. Its text is the `message` of the API's
/// `422 malformed` answer.
#[derive(Debug, thiserror::Error)]
pub enum MalformedBatch {
    #[error("a batch has at most {UPLINK_ENTRIES_MAX} entries")]
    TooManyEntries,
    #[error("entries[{index}]: {source}")]
    Unreadable {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("since is out of range")]
    SinceOutOfRange,
    #[error("entries[{index}]: master_seq {found} where {due} was due")]
    OutOfPlace { index: usize, found: u64, due: u64 },
    #[error("entries[{index}]: event {event_id} is not once")]
    NotOnce { index: usize, event_id: EventId },
    #[error("{field} is too large")]
    TooLarge { field: &'static str },
}

/// tokio-postgres shows a server's error as "db error": show what the server said.
fn postgres_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

//! [`HqError`]: what a head-office call can fail with.

use rms_domain::ValidationError;
use rms_domain::hq::Cursor;

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
    Malformed(String),
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
}

/// tokio-postgres shows a server's error as "db error": show what the server said.
fn postgres_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

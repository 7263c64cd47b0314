//! [`StorageError`]: what a repository call can fail with (SQLite, a refused or invalid write,
//! a row that does not decode, a database newer than the code), and the checked conversions
//! between `u64` and SQLite's `i64`.
//!
//! **Dependencies:** a leaf: it imports nothing of the crate, and every other module imports it.

use rms_domain::{RejectReason, ValidationError};

/// Everything that can go wrong in rms-storage. A write that fails with any of them wrote
/// nothing: [`crate::Store::write`] rolls its transaction back.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite failed: a constraint broken, the file locked past the busy timeout (5 s) or
    /// unreadable, the disk full ([`StorageError::is_disk_full`]).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No reader connection could be had from the pool in time (10 s), or one could not be
    /// opened.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// A file or directory of the data directory, or a backup's destination, cannot be used:
    /// it cannot be created, it exists already, its directory is missing, or it is not UTF-8.
    #[error("cannot use {path}")]
    DataDir {
        /// The path concerned, as the operator gave it.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The database was written by a newer build ([`crate::db::migrate`] refuses it and leaves
    /// it untouched).
    #[error(
        "the database is at schema version {found}, newer than this build understands ({supported}); \
         run a newer rms-node or restore a backup"
    )]
    NewerSchema {
        /// The database's schema version (`PRAGMA user_version`).
        found: i64,
        /// The newest schema version this build knows ([`crate::SCHEMA_VERSION`]).
        supported: i64,
    },
    /// The data directory holds another device's database: a device id is set once per
    /// database, at its creation.
    #[error(
        "the database belongs to device {stored}, not device {requested}; use its own data directory"
    )]
    WrongDevice {
        /// The device id the database was created for.
        stored: u16,
        /// The device id it was opened as.
        requested: u16,
    },
    /// A business rule refused the write; nothing was written.
    #[error("{reason}: {message}")]
    Refused {
        /// The rule that refused it, as the wire and the REST API name it.
        reason: RejectReason,
        /// What was refused, for a person (it names the SKU, the device or the day).
        message: String,
    },
    /// The input broke a data rule; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// A write that only the master may make, on a device that is not master of its epoch.
    #[error("this device is not the master of the store")]
    NotMaster,
    /// A new incarnation would number its events from a clock behind the database it starts on
    /// (`crate::incarnation`): its numbers could meet those of the incarnation before it.
    #[error(
        "this device's clock ({now}) is behind the newest event of its database ({newest}): set \
         the clock, then start the node again",
        now = rms_domain::rfc3339_from_ms(*now_ms),
        newest = rms_domain::rfc3339_from_ms(*newest_ms)
    )]
    ClockBehind {
        /// The device's wall clock when the incarnation was asked for (ms since the Unix epoch).
        now_ms: u64,
        /// The newest time the database holds: its newest event's making, or the latest
        /// incarnation's start (ms since the Unix epoch).
        newest_ms: u64,
    },
    /// A new incarnation would number its events from a clock that was never set (before
    /// `set_after_ms`, which is `incarnation::CLOCK_SET_AFTER_MS`: a till that lost its clock
    /// battery): its floor would fall among the numbers of a first incarnation, which numbers
    /// from 1.
    #[error(
        "this device's clock ({now}) is not set: it is before {after}; set the clock, then start \
         the node again",
        now = rms_domain::rfc3339_from_ms(*now_ms),
        after = rms_domain::rfc3339_from_ms(*set_after_ms)
    )]
    ClockUnset {
        /// The device's wall clock when the incarnation was asked for (ms since the Unix epoch).
        now_ms: u64,
        /// The earliest time a set clock reads (ms since the Unix epoch); `now_ms` is before it.
        set_after_ms: u64,
    },
    /// Master-log entries must continue the log without a gap.
    #[error("master log entry {got} does not follow this device's head (expected {expected})")]
    LogGap {
        /// The position the next entry must have: this device's log head plus one.
        expected: u64,
        /// The position of the entry that came.
        got: u64,
    },
    /// Something a write names is not stored: an event whose verdict is recorded, or the
    /// database a backup copies.
    #[error("{what} not found")]
    NotFound {
        /// What is missing (`event 3-17`, `database /var/lib/rms/rms.db`).
        what: String,
    },
    /// A stored value does not decode (the database was changed outside rms, or by a newer
    /// build), or a write would break the database's own invariants (an event stored twice, an
    /// event not linked to the journal's head, a backup copy that fails `integrity_check`).
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// The table (or the copy, `backup`) where the bad value is.
        table: &'static str,
        /// What does not decode, and why.
        message: String,
    },
}

impl StorageError {
    /// The disk (or the file system's quota) is full: nothing was written, and writes succeed
    /// again once space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StorageError::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DiskFull
        )
    }

    pub(crate) fn refused(reason: RejectReason, message: impl Into<String>) -> StorageError {
        StorageError::Refused {
            reason,
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(table: &'static str, message: impl ToString) -> StorageError {
        StorageError::Corrupt {
            table,
            message: message.to_string(),
        }
    }
}

/// Converts a u64 for SQLite, which stores signed 64-bit integers.
pub(crate) fn sql_u64(value: u64, what: &'static str) -> Result<i64, StorageError> {
    i64::try_from(value)
        .map_err(|_| StorageError::corrupt(what, format!("{value} does not fit in 63 bits")))
}

pub(crate) fn from_sql_u64(value: i64, what: &'static str) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| StorageError::corrupt(what, format!("negative value {value}")))
}

//! What runs beside the driver, each a task on the runtime that holds narrow [`Handles`], never
//! the `Node`: the change feed's producer ([`changes`]), the journal's signing ([`journal`]) and
//! the watch of the log chain ([`log_watch`]), and head office's uplink ([`hq`]).
//!
//! **Invariant:** a task writes only through the driver ([`Driver`]), reads only through [`Db`],
//! and sees the sync state only through the driver's [`StatusCell`]. Tasks import the leaves
//! (`input`, `status`, `db`, `clock`, `log_head`), `net::trust`, and head office's client
//! `net::dial`'s address checks; nothing below imports a task, and no task imports another except
//! the journal's signing, which starts the log watch with its signer.

use std::time::Duration;

use rms_domain::DeviceId;

use crate::clock::Clock;
use crate::db::Db;
use crate::input::Driver;
use crate::net::trust::TrustBook;
use crate::status::{StatusCell, Stopping};

pub mod changes;
pub mod hq;
pub mod journal;
pub mod log_watch;

/// How often the journal's heads that moved are signed and the log chain is followed: what a
/// crash can leave unsigned (still hash-chained, and signed at the next start).
pub const SIGN_INTERVAL: Duration = Duration::from_secs(5);

/// The node's parts a background task may use. Every one is a cheap clone of a shared handle.
#[derive(Debug, Clone)]
pub struct Handles {
    /// Reads of the database, on the blocking pool.
    pub db: Db,
    /// Writes and alarms, through the driver thread.
    pub driver: Driver,
    /// The sync state as of the driver's last input.
    pub status: StatusCell,
    /// Raised when the node stops: a task ends at its next step.
    pub stopping: Stopping,
    /// The store's trust list (whose heads verify; whether this device is revoked).
    pub trust: TrustBook,
    /// Wall time.
    pub clock: Clock,
    /// This device.
    pub device_id: DeviceId,
}

impl Handles {
    /// Whether this device knows it is revoked (issue #27).
    pub fn is_revoked(&self) -> bool {
        self.trust.is_revoked(&self.trust.me())
    }
}

//! rms-storage: the device's SQLite database.
//!
//! **Architecture invariant:** every local write is one `BEGIN IMMEDIATE` transaction that changes
//! the state, appends its `SyncEvent` and appends its audit entry ([`local::record`]); a refusal or
//! an error rolls all of it back. Writes go through one writer connection (`synchronous=FULL`), so
//! a write that returned `Ok` is on disk; reads use an r2d2 pool of WAL readers.
//!
//! **API boundary:** repositories are plain synchronous functions over `&Connection` /
//! `&Transaction`. This crate knows nothing of HTTP, sockets, async or sync decisions; the async
//! adapter that runs it off the runtime's threads lives in rms-transport.
//!
//! **On crash:** SQLite's WAL makes each transaction all-or-nothing; after a crash the database
//! holds exactly the committed writes. [`db::Store::open`] checks and migrates on start.

pub mod audit;
pub mod chain_check;
pub mod closing;
pub mod db;
pub mod devices;
mod error;
pub mod events;
pub mod incarnation;
pub mod journal;
pub mod journal_heads;
pub mod local;
pub mod log_chain;
pub mod node_state;
pub mod products;
pub mod replica;
pub mod sales;
pub mod trust;
pub mod uplink;

pub use db::{SCHEMA_VERSION, Store};
pub use error::StorageError;
/// The rusqlite types repositories take, so callers need not depend on rusqlite themselves.
pub use rusqlite::{Connection, Transaction};

//! rms-hq: head office for a chain of rms stores (issue #15), a stateless service in front of
//! PostgreSQL. Every state it has is in PostgreSQL, so several replicas can run behind a load
//! balancer.
//!
//! - [`db`]: the connection pool and the versioned migrations applied at start;
//! - [`stores`]: stores, their tokens (stored hashed) and their uplink's state;
//! - [`ingest`]: a store master's batch of master-log entries, exactly once, in one transaction
//!   with the store's cursor;
//! - [`catalog`]: the catalogue head office owns, with a gapless version, and the changes each
//!   store follows;
//! - [`server`]: the `/hq/v1` API and the status page.
//!
//! **Invariants:**
//! - An entry is keyed by `(store_id, device_id, seq)`, UNIQUE in PostgreSQL: a retry, a
//!   re-sent batch or a later master re-logging the same event never makes a second row.
//! - A store's cursor moves in the same transaction as the rows it covers; a batch that does not
//!   start at the cursor, or comes from a master older than one already heard, writes nothing.
//! - Nothing is deleted: entries a store's later master undid are flagged `undone`.
//! - Catalogue versions are gapless and commit in version order.

mod batch;
pub mod catalog;
mod chains;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod db;
mod error;
pub mod ingest;
mod ingest_errors;
mod projection;
pub mod server;
mod status_page;
pub mod stores;

pub use db::Db;
pub use error::{HqError, MalformedBatch};

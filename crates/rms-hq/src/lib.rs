//! rms-hq: head office for a chain of rms stores (issue #15), a stateless service in front of
//! PostgreSQL. Every state it has is in PostgreSQL, so several replicas can run behind a load
//! balancer.
//!
//! - [`db`]: the connection pool and the versioned migrations applied at start;
//! - [`stores`]: stores, their tokens (stored hashed) and their uplink's state;
//! - [`ingest`]: a store master's batch of master-log entries, exactly once, in one transaction
//!   with the store's cursor;
//! - [`fence`]: the greatest epoch head office took a batch from, and how far a batch may raise
//!   it (a store's token is a claim, not a proof);
//! - [`catalog`]: the catalogue head office owns, with a gapless version, and the changes each
//!   store follows;
//! - [`server`]: the `/hq/v1` API and the status page.
//!
//! **Invariants:**
//! - An entry is keyed by `(store_id, device_id, seq)`, UNIQUE in PostgreSQL: a retry, a
//!   re-sent batch or a later master re-logging the same event never makes a second row.
//! - A store's cursor moves in the same transaction as the rows it covers; a batch that does not
//!   start at the cursor, comes from a master older than one already heard, or claims an epoch
//!   beyond [`fence`]'s bound, writes nothing.
//! - Nothing is deleted: entries a store's later master undid are flagged `undone`.
//! - Catalogue versions are gapless and commit in version order.
//!
//! **Module layers** (dependencies point down only): `error` names nothing of the crate; `db`,
//! `fence` (the epoch bound) and `batch` (a batch's entries keyed, and its shape checks) sit on
//! it; `ingest_errors` on `batch` and `db`; `chains` (the journal check) and `projection` (sales
//! and stock) on `batch` and `ingest_errors`; `ingest` on all of those; `stores` on `db` and
//! `ingest_errors`; `catalog` on `db`; `server` at the top.
//!
//! # Example
//!
//! Running head office: a pool over PostgreSQL, the schema brought up to date, the API served on
//! a bound listener until a shutdown future completes. The pool connects lazily, so this example
//! runs without a database: there, the first call that needs a connection fails with
//! [`HqError::Pool`] and writes nothing (the API answers such a failure `503`, and stores retry).
//! With PostgreSQL reachable, `migrate` applies the missing migrations and
//! [`stores::add`] registers a store and returns the token its master presents.
//!
//! ```rust
//! use rms_hq::server::{self, Hq};
//! use rms_hq::{Db, HqError};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let runtime = tokio::runtime::Runtime::new()?;
//!     runtime.block_on(async {
//!         // A deployment gives its own PostgreSQL, e.g. `host=/run/postgresql dbname=hq`.
//!         let db = Db::connect("host=/nonexistent/rms-hq-example dbname=hq")?;
//!         let migrated = db.migrate().await;
//!         assert!(matches!(migrated, Err(HqError::Pool(_))), "no database here");
//!
//!         // The admin token guards the people's routes; a short one is refused.
//!         let short = Hq::new(db.clone(), "too short");
//!         assert!(matches!(short, Err(HqError::Invalid(_))));
//!         let hq = Hq::new(db, "an admin token of 32 characters!")?;
//!
//!         // Serve until the shutdown future completes (for TLS, pass a TlsAcceptor).
//!         let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!         let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!         let shutdown = async move {
//!             let _ = stopped.await;
//!         };
//!         let serving = tokio::spawn(server::serve(listener, hq, None, shutdown));
//!         let _ = stop.send(());
//!         serving.await?;
//!         Ok(())
//!     })
//! }
//! ```

#![deny(missing_docs)]

mod batch;
pub mod catalog;
mod chains;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod db;
mod error;
pub mod fence;
pub mod ingest;
pub mod ingest_errors;
mod projection;
pub mod server;
mod status_page;
pub mod stores;

pub use db::Db;
pub use error::{EpochOutOfRange, HqError, MalformedBatch};

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
//!
//! # Example
//!
//! A till opens its database (here in memory; [`Store::open`] takes a data directory), records
//! a product and a sale through [`local::record`] inside one [`Store::write`] each, and reads
//! them back. A client's events stay `pending` until the master's verdict; every write is in
//! the journal, which [`journal::verify`] checks.
//!
//! ```rust
//! use rms_domain::{DeviceId, EventStatus, NewProduct, NewSale, NewSaleLine, Role};
//! use rms_storage::local::{self, Command};
//! use rms_storage::{StorageError, Store, journal, products, sales};
//!
//! # fn main() -> Result<(), StorageError> {
//! let device = DeviceId::new(2).expect("device ids start at 1");
//! let store = Store::open_in_memory(device)?;
//! // Time is the caller's: the wall clock in ms since the Unix epoch (2025-11-25T17:30:00Z).
//! let now_ms = 1_764_091_800_000;
//! let milk = NewProduct {
//!     sku: "milk-1l".into(),
//!     name: "Milk, 1 l".into(),
//!     price_cents: 250,
//!     stock: 3,
//!     user_id: None,
//! };
//! store.write(|tx| local::record(tx, Role::Client, now_ms, Command::CreateProduct(milk)))?;
//! let sale = NewSale {
//!     user_id: "cashier-7".into(),
//!     lines: vec![NewSaleLine { sku: "milk-1l".into(), qty: 2 }],
//! };
//! let sold = store.write(|tx| local::record(tx, Role::Client, now_ms + 1, Command::Sell(sale)))?;
//! assert_eq!(sold.event.status, EventStatus::Pending);
//! let sale = sold.sale.expect("a sale records its sale");
//! assert_eq!(sale.total_cents, 500);
//!
//! store.read(|conn| {
//!     assert_eq!(products::get(conn, "milk-1l")?.map(|p| p.stock), Some(1));
//!     assert_eq!(sales::get(conn, &sale.sale_id)?.as_ref(), Some(&sale));
//!     assert_eq!(journal::verify(conn)?.broken, None);
//!     Ok(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! # Modules, and which way they point
//!
//! Each module is one table or one job, and imports only modules listed before it here:
//!
//! - `error` ([`StorageError`]) is a leaf: it imports nothing of the crate.
//! - [`node_state`], [`events`], [`products`], [`devices`] and [`closing`] are repositories of
//!   their tables, over the error type alone.
//! - [`journal`]'s `chain` part holds the journal's chains and the appends every write makes;
//!   it imports only the error type. [`audit`] appends through it.
//! - [`db`] opens the database ([`Store`]) over [`node_state`]; [`incarnation`] begins a new
//!   numbering on a [`Store`], writing [`node_state`] and [`audit`].
//! - [`trust`] folds the trust list from [`events`]; [`journal_heads`] signs and checks the
//!   chains' heads against it.
//! - The journal's `verify` and `export` parts read all of the above; [`chain_check`] (the
//!   master's check of a push) and [`log_chain`] (the master log's hash chain) read the events,
//!   the journal and the signed heads.
//! - [`local`] (local writes), [`replica`] (the master log applied here), [`sales`] and
//!   [`uplink`] (head office's batches) are the top: nothing in the crate calls them but
//!   [`uplink`], which reads [`local`]'s catalogue version.
//!
//! No module imports one after it, so the modules have no circle.

#![deny(missing_docs)]

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

//! rms-transport: a store device as a running node — the driver around the pure sync core, the
//! links between devices, the local REST API, and the tasks beside them.
//!
//! # Layers
//!
//! Dependencies point down this list, never up (`tests/it/tidy.rs` fails on any module circle):
//!
//! - **leaves**: [`clock`] (wall time), [`input`] (what the driver and its helpers exchange: the
//!   driver's inputs, the [`Driver`] handle, [`NodeError`]), [`status`] (what the driver shows),
//!   [`db`] (reads on the blocking pool), [`log_head`] (the log chain's head the driver and the log
//!   watch share), [`sync_store`] and [`step`] (the core's store and one step without I/O);
//! - [`net`]: the dialer, the links, the connector, the trust list as the links check it;
//! - the driver thread (`driver.rs`): owns the sync core and every write;
//! - [`tasks`]: the change feed, the journal's signing and the log watch, head office's uplink,
//!   each with narrow handles ([`tasks::Handles`]), never the node;
//! - [`node`]: builds all of the above in one step ([`Node::start`]);
//! - [`api`]: the warp routes, the HTTP servers (the local API and the store port), auth, bodies,
//!   errors, the status page and `/metrics`.
//!
//! Who a device is (its key, TLS, proofs, pairing codes, the journal's signer) is the
//! `rms-security` crate's, re-exported here as [`identity`], [`tls`], [`proof`], [`pairing`] and
//! [`signer`].
//!
//! **Architecture invariant:** SQLite never runs on the runtime's worker threads. Every write of
//! a running node goes through the driver thread; [`Db`] only reads, on tokio's blocking pool,
//! bounded by a semaphore.
//!
//! **API boundary:** [`serve`] takes a bound listener and a shutdown future (as mini-redis does),
//! so tests bind `127.0.0.1:0` and bind errors are errors, not panics. [`api::routes`] is the whole
//! REST surface as one warp filter; business errors are [`ApiError`] replies, and one `recover`
//! turns warp's rejections into the same JSON error shape.
//!
//! # Embedding
//!
//! This crate is the one dependency an app needs to run a device in-process: it re-exports the
//! commands ([`Command`]), the core's notifications ([`Notification`]), the errors and the domain
//! types ([`domain`]) an app sells with. A lone device, one product, one sale:
//!
//! ```
//! use rms_transport::domain::{DeviceId, NewProduct, NewSale, NewSaleLine};
//! use rms_transport::{Command, Node, NodeConfig, Role};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = DeviceId::new(1).expect("a device id");
//! // No data directory: the database is in memory. No peers: the device is its own store.
//! let node = Node::start(NodeConfig::lone(device, "till-1")).await?;
//! assert_eq!(node.role(), Role::Master);
//!
//! let tea = NewProduct {
//!     sku: "tea".into(),
//!     name: "Green tea".into(),
//!     price_cents: 350,
//!     stock: 3,
//!     user_id: Some("manager".into()),
//! };
//! node.till_write(Command::CreateProduct(tea)).await?;
//! let sale = NewSale {
//!     user_id: "cashier-1".into(),
//!     lines: vec![NewSaleLine { sku: "tea".into(), qty: 1 }],
//! };
//! // On the master a sale is decided in the same transaction that records it.
//! let done = node.till_write(Command::Sell(sale)).await?;
//! assert!(done.recorded.event.master_seq.is_some());
//! assert_eq!(done.recorded.products[0].stock, 2);
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/embedded-till` runs two devices that sync, and follows [`Node::subscribe`].

#![deny(missing_docs)]

pub mod api;
pub mod audit_gate;
pub mod clock;
pub mod db;
mod driver;
pub mod input;
mod locks;
pub mod log_head;
pub mod net;
pub mod node;
pub mod status;
pub mod step;
pub mod sync_store;
pub mod tasks;

pub use rms_security::{identity, pairing, proof, signer, tls};
pub use tasks::{changes, hq, log_watch};

pub use api::{ApiError, BODY_BYTES_MAX, bind, serve, serve_store};
pub use clock::Clock;
pub use db::{Db, DbError};
pub use driver::DriverError;
pub use input::{Driver, LocalDone, NodeError};
pub use net::wire::ClientSocket;
pub use node::{Node, NodeConfig, STORE_KEY_WINDOW_MS, StartError, VERDICT_WAIT};
pub use status::Status;
pub use sync_store::StoreAdapter;

/// The domain types a till sells with: devices, products, sales, events, roles.
pub use rms_domain as domain;
pub use rms_domain::Role;
pub use rms_storage::StorageError;
pub use rms_storage::local::{Command, Recorded};
pub use rms_sync::{Notification, Verdict};

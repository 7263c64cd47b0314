//! rms-transport: the node's network face and the async driver around the pure crates.
//!
//! **Architecture invariant:** SQLite never runs on the runtime's worker threads. Every repository
//! call goes through [`Db`], which runs it on tokio's blocking pool, bounded by a semaphore.
//!
//! **API boundary:** [`serve`] takes a bound listener and a shutdown future (as mini-redis does),
//! so tests bind `127.0.0.1:0` and bind errors are errors, not panics. [`api::routes`] is the whole
//! REST surface as one warp filter; business errors are [`ApiError`] replies, and one `recover`
//! turns warp's rejections into the same JSON error shape.
//!
//! **Architecture invariant:** every write of a running node goes through the driver thread
//! (`driver.rs`, its step without I/O in [`step`]); [`Db`] only reads. `input.rs` is the leaf the
//! driver, the links and the connector share, so none of them imports another.
//!
//! **Embedding:** [`Node::start`] runs a device in-process; [`Node::subscribe`] hands the app the
//! sync core's notifications (see `examples/embedded-till`).

pub mod api;
mod auth;
mod body;
pub mod changes;
mod clock;
mod connector;
mod db;
pub mod dial;
mod driver;
mod error;
pub mod hq;
pub mod identity;
mod input;
pub mod journal_sign;
mod link;
pub mod log_watch;
mod metrics;
mod node;
pub mod pairing;
pub mod proof;
mod server;
pub mod step;
mod store_port;
mod sync_store;
pub mod tls;
pub mod trust;

pub use clock::Clock;
pub use db::{Db, DbError};
pub use driver::Status;
pub use error::ApiError;
pub use input::LocalDone;
pub use link::ClientSocket;
pub use node::{Node, NodeConfig, NodeError, STORE_KEY_WINDOW_MS, StartError, VERDICT_WAIT};
pub use server::{bind, serve};
pub use store_port::serve_store;
pub use sync_store::StoreAdapter;

/// Largest JSON request body, in bytes (SPEC §8). Larger bodies are refused with 413.
pub const BODY_BYTES_MAX: u64 = 1024 * 1024;

//! The ConflictResolver, as the sync core uses it: how the master decides one event, first come,
//! first served.
//!
//! It is defined in `rms_domain::resolver` (a pure type over a products map), below rms-storage
//! and this crate, so that the master's own local writes (decided in their write transaction by
//! `rms_storage::local::record`) and the events this crate decides (pushed, relayed, carried by a
//! pre-vote) go through one and the same code. The SyncTasks that feed it are `node/master.rs`.

pub use rms_domain::resolver::{ConflictResolver, Decision, decision_order};

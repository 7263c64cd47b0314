//! rms-sync: the store's sync brain, as a state machine with no I/O.
//!
//! **Architecture invariant:** no sockets, no tokio, no threads, no clock or RNG reads. Every input
//! carries [`Now`]; randomness (timer jitter) comes from [`SyncConfig::rng_seed`]. The same code
//! runs in `rms-node` and in the deterministic simulator (`tests/it/sim`). Enforced by
//! `clippy.toml` (`disallowed-methods`) and by a test that reads this crate's dependency list.
//!
//! **API boundary:** storage is reached only through [`SyncStore`], a trait this crate defines.
//! Rows to persist leave the core as a [`Batch`] handed to [`SyncStore::commit`] (one
//! transaction), and the core sends nothing that depends on a batch until the commit returned.
//!
//! # Calling order (as quinn-proto's `Connection`)
//!
//! 1. [`SyncNode::new`] with the persisted state.
//! 2. Feed inputs, each with `now`: [`SyncNode::handle_message`] for every message from a peer
//!    (or [`SyncNode::handle_messages`] for messages that arrived together: the pushes among them
//!    are decided in one commit),
//!    [`SyncNode::handle_local_write`] after every committed local write, and
//!    [`SyncNode::handle_timeout`] when [`SyncNode::poll_timeout`] is due.
//! 3. After each input, drain [`SyncNode::poll_transmit`] (messages to send) and
//!    [`SyncNode::poll_notification`] (verdicts and role changes for the application), then ask
//!    [`SyncNode::poll_timeout`] again.
//!
//! The core decides: who is master (heartbeats, rank, epoch), what to push and pull and when, the
//! order in which the master applies events (arrival order; a batch by `(hlc, device, seq)`),
//! verdicts (`rms_domain::rules`), idempotency, fencing (`stale_term`), and what goes to the audit
//! log. The driver executes: sockets, timers, SQLite.
//!
//! # Where each part of the design lives
//!
//! | design name | file |
//! |---|---|
//! | SyncNode (inputs, outputs, getters) | `node/mod.rs` |
//! | ConflictResolver | `resolver.rs` (defined in `rms_domain::resolver`, shared with local writes) |
//! | SyncManager of a client: push, pull, truncate, apply, relay | `node/client.rs` |
//! | SyncManager of a master and the SyncTasks: registration, pulls, group commit, broadcasts | `node/master.rs` |
//! | the phases and what each knows: leading, following, masterless | `node/phase.rs` |
//! | election: phase changes, fencing, losing a master, pre-vote, becoming master | `node/election.rs`, `pre_vote.rs` |
//! | handover and `--reclaim` | `node/handover.rs` |
//! | SyncAuditLog: every audited fact, typed | `node/audit.rs` |
//! | timers and pauses | `node/timer.rs` |
//! | one input, one commit: staged messages and audit rows | `node/outbox.rs` |
//! | peers: liveness, roster, rank | `node/peers.rs` |
//! | the wire protocol | `message.rs` |
//! | what the core needs from a database | `store.rs` |

#![deny(missing_docs)]

mod message;
mod node;
mod pre_vote;
mod resolver;
mod rng;
mod store;

/// Why a link was refused when its certificate is bound to another device id than the one it
/// claims: audited as an alarm.
pub const DEVICE_ID_MISMATCH: &str = "device_id_mismatch";

pub use message::{BATCH_BYTES_MAX, BATCH_EVENTS_MAX, ErrorCode, Message, PeerInfo, Verdict};
pub use node::{
    EAGER_BROADCAST_GAP_MS, HandoverError, Notification, Now, REASON_ALONE, REASON_ELECTED,
    REASON_HANDOVER, REASON_LONE_RESTART, REASON_NEWER_EPOCH, REASON_PAUSED, REASON_REVOKED,
    SyncConfig, SyncError, SyncNode, Timer, To, Transmit, WHY_INPUT_GAP,
};
pub use pre_vote::LogPosition;
pub use resolver::{ConflictResolver, Decision, decision_order};
pub use rng::Rng;
pub use store::{Batch, Persisted, SyncStore};

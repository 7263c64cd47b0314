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
//! # Example: input in, outputs out
//!
//! A till (device 2) of a store whose master is device 1. The core reads no clock and opens no
//! socket: the caller hands it each input with the time, and reads back what to send, what to
//! tell the application, and when to call again. `MemoryStore` is a toy [`SyncStore`] over a
//! few `Vec`s, hidden here (it keeps no verdicts and no products; `rms_transport::StoreAdapter`
//! is the real one, over SQLite).
//!
//! ```rust
//! # use std::convert::Infallible;
//! # use rms_domain::rules::Products;
//! # use rms_domain::{AuditEntry, ChainBreak, DeviceId, Epoch, EventId, Hlc, LogEntry};
//! # use rms_domain::{PushHead, Role, SyncEvent, Term, TrustList};
//! # use rms_sync::{Batch, Message, Now, PeerInfo, Persisted, SyncConfig, SyncNode, SyncStore};
//! # use rms_sync::{Timer, To, Transmit};
//! # #[derive(Default)]
//! # struct MemoryStore {
//! #     epoch: Option<Epoch>,
//! #     hlc: Hlc,
//! #     log: Vec<LogEntry>,
//! #     pending: Vec<SyncEvent>,
//! #     audit: Vec<AuditEntry>,
//! # }
//! # impl SyncStore for MemoryStore {
//! #     type Error = Infallible;
//! #     fn persisted(&self) -> Result<Persisted, Infallible> {
//! #         let log_head = self.log.len() as u64;
//! #         let (epoch, hlc, term_floor) = (self.epoch, self.hlc, Term(0));
//! #         Ok(Persisted { epoch, log_head, hlc, roster: Vec::new(), term_floor })
//! #     }
//! #     fn pending(&self, limit: usize) -> Result<Vec<SyncEvent>, Infallible> {
//! #         Ok(self.pending.iter().take(limit).cloned().collect())
//! #     }
//! #     fn accepted_unlogged(&self, _limit: usize) -> Result<Vec<SyncEvent>, Infallible> {
//! #         Ok(Vec::new())
//! #     }
//! #     fn pending_count(&self) -> Result<u64, Infallible> {
//! #         Ok(self.pending.len() as u64)
//! #     }
//! #     fn entry(&self, event_id: &EventId) -> Result<Option<LogEntry>, Infallible> {
//! #         Ok(self.log.iter().find(|e| e.event.event_id == *event_id).cloned())
//! #     }
//! #     fn entry_at(&self, master_seq: u64) -> Result<Option<LogEntry>, Infallible> {
//! #         let index = usize::try_from(master_seq).ok().and_then(|s| s.checked_sub(1));
//! #         Ok(index.and_then(|i| self.log.get(i)).cloned())
//! #     }
//! #     fn log_after(&self, since: u64, limit: usize) -> Result<Vec<LogEntry>, Infallible> {
//! #         let skip = usize::try_from(since).unwrap_or(usize::MAX);
//! #         Ok(self.log.iter().skip(skip).take(limit).cloned().collect())
//! #     }
//! #     fn epoch_end(&self, epoch: &Epoch) -> Result<u64, Infallible> {
//! #         Ok(self.log.iter().take_while(|e| e.epoch <= *epoch).count() as u64)
//! #     }
//! #     fn base_products(&self, _skus: &[&str]) -> Result<Products, Infallible> {
//! #         Ok(Products::new())
//! #     }
//! #     fn trust_list(&self) -> Result<TrustList, Infallible> {
//! #         Ok(TrustList::default())
//! #     }
//! #     fn check_push(
//! #         &self,
//! #         _from: DeviceId,
//! #         _events: &[SyncEvent],
//! #         _head: Option<&PushHead>,
//! #     ) -> Result<Result<(), ChainBreak>, Infallible> {
//! #         Ok(Ok(()))
//! #     }
//! #     fn commit(&mut self, batch: Batch) -> Result<Vec<LogEntry>, Infallible> {
//! #         let keep = batch.truncate_after.and_then(|k| usize::try_from(k).ok());
//! #         let undone = keep.map_or_else(Vec::new, |keep| self.log.split_off(keep.min(self.log.len())));
//! #         self.epoch = self.epoch.max(batch.epoch);
//! #         self.log.extend(batch.entries);
//! #         self.hlc = self.hlc.max(batch.hlc.unwrap_or_default());
//! #         self.audit.extend(batch.audit);
//! #         Ok(undone)
//! #     }
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let peer = |id: u16, name: &str| -> Result<PeerInfo, &'static str> {
//!     Ok(PeerInfo {
//!         device_id: DeviceId::new(id).ok_or("a device id is never 0")?,
//!         name: name.into(),
//!         advertise: format!("http://10.0.0.{id}:7878"),
//!         priority: 0,
//!     })
//! };
//! let config = SyncConfig {
//!     me: peer(2, "till 2")?,
//!     has_peers: true,
//!     sync_interval_ms: 30_000,
//!     heartbeat_interval_ms: 1_000,
//!     master_timeout_ms: 3_000,
//!     reclaim: false,
//!     rng_seed: 7,
//!     clock_drift_max_ms: 60_000,
//!     eager_sync: true,
//! };
//! let start = Now { mono_ms: 0, wall_ms: 1_764_091_800_000 };
//! let mut node = SyncNode::new(config, MemoryStore::default(), start)?;
//! assert_eq!(node.role(), Role::Client); // it has peers: it looks for the master
//!
//! // Input 1: the timer it asked for. Output: its heartbeat, to every peer.
//! assert_eq!(node.poll_timer(), (Timer::Heartbeat, 0));
//! node.handle_timeout(start)?;
//! let sent: Vec<Transmit> = std::iter::from_fn(|| node.poll_transmit()).collect();
//! assert!(matches!(&sent[..], [Transmit { to: To::AllPeers, message: Message::Heartbeat { .. } }]));
//!
//! // Input 2: the master's heartbeat, in term 1. The node persists the epoch (one commit),
//! // then registers with the master and asks for the log it lacks.
//! let master = peer(1, "back office")?;
//! let epoch = Epoch { term: Term(1), master_id: master.device_id, master_priority: 0 };
//! let heartbeat = Message::Heartbeat {
//!     peer: master.clone(),
//!     epoch: Some(epoch),
//!     role: Role::Master,
//!     log_head: 0,
//!     handing_over_to: None,
//!     log_chain: None,
//! };
//! let now = Now { mono_ms: 10, wall_ms: start.wall_ms + 10 };
//! node.handle_message(master.device_id, heartbeat, now)?;
//! assert_eq!(node.epoch(), Some(epoch));
//! assert_eq!(node.store().epoch, Some(epoch), "persisted before anything depends on it");
//! let to_master = To::Device(master.device_id);
//! let sent: Vec<Transmit> = std::iter::from_fn(|| node.poll_transmit()).collect();
//! assert!(matches!(&sent[..], [
//!     Transmit { to: t1, message: Message::Register { .. } },
//!     Transmit { to: t2, message: Message::Pull { since: 0, .. } },
//! ] if *t1 == to_master && *t2 == to_master));
//! assert_eq!(node.poll_notification(), None); // following a master is no change of role
//!
//! // The driver sends those, and calls `handle_timeout` again at:
//! assert!(node.poll_timeout() > now.mono_ms);
//! # Ok(())
//! # }
//! ```
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
//!
//! **Dependencies point one way:** `node` uses the leaves `store`, `message`, `pre_vote`,
//! `resolver` and `rng`; `store` uses `message`, which uses `pre_vote`; no leaf uses `node`.
//! Inside `node`, the role modules use `phase`, `audit`, `outbox` and `peers`, never each other
//! (`node/mod.rs` says more).

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

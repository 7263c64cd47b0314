//! What the core needs from a database, as a trait it defines (SPEC §1: rms-sync knows storage
//! only through this). The node implements it over rms-storage; tests may implement it in memory.

use rms_domain::rules::Products;
use rms_domain::{
    AuditEntry, ChainBreak, DeviceId, Epoch, EventId, Hlc, LogEntry, PushHead, SyncEvent, Term,
};

use crate::message::{PeerInfo, Verdict};

/// What a device has persisted that the core starts from ([`SyncStore::persisted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    /// The newest epoch this device persisted ([`Batch::epoch`]); `None` before it knew any.
    pub epoch: Option<Epoch>,
    /// The position of the last entry of this device's copy of the master log (0: empty); the
    /// entries `1..=log_head` are all there.
    pub log_head: u64,
    /// This device's hybrid logical clock as last persisted (by [`Batch::hlc`] or a local
    /// write).
    pub hlc: Hlc,
    /// The devices of the store this device knew before it stopped (the roster).
    pub roster: Vec<PeerInfo>,
    /// The lowest term this device may lead: an earlier incarnation of its id (a replaced or
    /// restored device, `rms_storage::incarnation`) may have led any term below it, with a log
    /// that a device still holds. Two logs under one epoch would look alike to log matching.
    /// Zero for a device's first incarnation.
    pub term_floor: Term,
}

/// Rows to persist, in one transaction, in this order: truncation, epoch, re-pending, entries,
/// verdicts, clock, audit. The core sends nothing that depends on a batch before `commit` returned `Ok`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Undo the log after this position (it diverged from the master's): this device's own
    /// undone events go back to pending (marked `accepted_before` if a master had accepted
    /// them, keeping their reason if it had rejected them), other devices' are removed, and the
    /// log head becomes this position. [`SyncStore::commit`] returns the undone entries.
    pub truncate_after: Option<u64>,
    /// The newest epoch, to persist before it is announced or acted on. An epoch older than
    /// the one persisted is not written (epochs never go back).
    pub epoch: Option<Epoch>,
    /// Put this device's own events that an older master accepted, but that are not in this
    /// device's log, back to pending (`accepted_before`): a new master may not have them.
    pub repend_unlogged: bool,
    /// Master-log entries continuing the log, in order: the first is at the log head (after
    /// the truncation, if any) plus one, and the log head moves to the last. A gap is a
    /// programmer error the store refuses with an error.
    pub entries: Vec<LogEntry>,
    /// The master's verdicts on this device's own events. A verdict on an event the store
    /// does not hold, or on one that is no longer pending, changes nothing.
    pub verdicts: Vec<Verdict>,
    /// The clock after merging what was received; the persisted clock never goes back (keep
    /// the greater).
    pub hlc: Option<Hlc>,
    /// Rows to append to this device's audit log, in order (their `id` is 0: the store assigns
    /// it).
    pub audit: Vec<AuditEntry>,
}

/// What the sync core needs from a device's database: reads of its copy of the master log and
/// of its own events, and one transactional write, [`SyncStore::commit`]. The node implements
/// it over SQLite (`rms_transport::StoreAdapter`); a test may implement it over a few `Vec`s.
///
/// **Contract:**
/// - Reads see every batch whose commit returned `Ok`, and also what the application wrote
///   outside the core: a local write (a pending event on a client, a decided log entry on the
///   master) is committed by the application, then reported with
///   [`crate::SyncNode::handle_local_write`]. Reads change nothing.
/// - [`SyncStore::commit`] is atomic and durable: a batch is persisted whole or not at all,
///   also across a crash, and once it returned `Ok` it survives a crash of the process (the
///   core sends what depends on it, such as verdicts and announcements, right after).
/// - On restart the core rebuilds from [`SyncStore::persisted`] and these reads: nothing of
///   the core's memory has to survive a crash.
/// - `Err` from any method is an operating error (a full disk, a broken database), not an
///   answer: the core gives up the input, drops what it staged, and returns
///   [`crate::SyncError::Store`] with it. A commit that returns `Err` must have persisted
///   nothing of its batch.
pub trait SyncStore {
    /// The store's error: what went wrong with the database (see the trait's contract).
    type Error: std::error::Error + Send + Sync + 'static;

    /// What this device has persisted, read once by [`crate::SyncNode::new`].
    fn persisted(&self) -> Result<Persisted, Self::Error>;
    /// This device's own pending events (no verdict yet, or put back to pending), oldest first
    /// (by their sequence number), at most `limit`.
    fn pending(&self, limit: usize) -> Result<Vec<SyncEvent>, Self::Error>;
    /// This device's own events that a master accepted but whose log entries this device does
    /// not have (acknowledged, not yet pulled; or put back to pending by a new epoch), at most
    /// `limit`, in the order that master decided them (each with the position it gave as
    /// `master_seq`, when known): a pre-vote answer hands them to the next master, and a new
    /// master decides its own first.
    fn accepted_unlogged(&self, limit: usize) -> Result<Vec<SyncEvent>, Self::Error>;
    /// How many of this device's own events are pending.
    fn pending_count(&self) -> Result<u64, Self::Error>;
    /// The log entry of an event, if the event is in this device's copy of the master log.
    fn entry(&self, event_id: &EventId) -> Result<Option<LogEntry>, Self::Error>;
    /// The log entries of those of `event_ids` that are in the log, in any order (one read for
    /// a whole push; implementations should override the default, which reads them one by one).
    fn entries(&self, event_ids: &[EventId]) -> Result<Vec<LogEntry>, Self::Error> {
        let mut found = Vec::new();
        for event_id in event_ids {
            found.extend(self.entry(event_id)?);
        }
        Ok(found)
    }
    /// The log entry at position `master_seq` (`None` past the log head, and at 0).
    fn entry_at(&self, master_seq: u64) -> Result<Option<LogEntry>, Self::Error>;
    /// The log entries after position `since`, in log order, at most `limit`.
    fn log_after(&self, since: u64, limit: usize) -> Result<Vec<LogEntry>, Self::Error>;
    /// The last position of this log in an epoch at or before `epoch`: the position before the
    /// first entry of a newer epoch, or the log head if there is none (Kafka's "end offset for
    /// leader epoch"). A device whose last entry is of `epoch` agrees with this log at most up
    /// to there.
    fn epoch_end(&self, epoch: &Epoch) -> Result<u64, Self::Error>;
    /// The master's state (this device's copy, as its log leaves it: no pending overlay) of the
    /// products among `skus` that exist, by SKU.
    fn base_products(&self, skus: &[&str]) -> Result<Products, Self::Error>;
    /// The store's trust list as this device's log leaves it (read only when a trust change is
    /// to be decided).
    fn trust_list(&self) -> Result<rms_domain::TrustList, Self::Error>;
    /// Whether pushed `events` continue `from`'s chain and `head` signs the last linked one
    /// with a key the trust list binds to `from` (issue #17); `Ok(Err(_))` names the first break,
    /// and the core then refuses the whole push. `Err` is a failure to read, as elsewhere.
    fn check_push(
        &self,
        from: DeviceId,
        events: &[SyncEvent],
        head: Option<&PushHead>,
    ) -> Result<Result<(), ChainBreak>, Self::Error>;
    /// Persists `batch` in one transaction, in the order [`Batch`] lists, together with its
    /// audit rows; returns the entries a truncation undid (empty without one), in log order.
    /// On `Err` nothing of the batch is persisted.
    fn commit(&mut self, batch: Batch) -> Result<Vec<LogEntry>, Self::Error>;
}

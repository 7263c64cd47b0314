//! What the core needs from a database, as a trait it defines (SPEC §1: rms-sync knows storage
//! only through this). The node implements it over rms-storage; tests may implement it in memory.

use rms_domain::rules::Products;
use rms_domain::{
    AuditEntry, ChainBreak, DeviceId, Epoch, EventId, Hlc, LogEntry, PushHead, SyncEvent, Term,
};

use crate::message::{PeerInfo, Verdict};

/// What a device has persisted that the core starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    pub epoch: Option<Epoch>,
    pub log_head: u64,
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
    /// Undo the log after this position (it diverged from the master's).
    pub truncate_after: Option<u64>,
    /// The newest epoch, to persist before it is announced or acted on.
    pub epoch: Option<Epoch>,
    /// Put this device's own events that an older master accepted, but that are not in this
    /// device's log, back to pending (`accepted_before`): a new master may not have them.
    pub repend_unlogged: bool,
    /// Master-log entries continuing the log, in order.
    pub entries: Vec<LogEntry>,
    /// The master's verdicts on this device's own events.
    pub verdicts: Vec<Verdict>,
    /// The clock after merging what was received.
    pub hlc: Option<Hlc>,
    pub audit: Vec<AuditEntry>,
}

pub trait SyncStore {
    type Error: std::error::Error + Send + Sync + 'static;

    fn persisted(&self) -> Result<Persisted, Self::Error>;
    /// This device's own pending events, oldest first.
    fn pending(&self, limit: usize) -> Result<Vec<SyncEvent>, Self::Error>;
    /// This device's own events that a master accepted but whose log entries this device does
    /// not have (acknowledged, not yet pulled; or put back to pending by a new epoch), at most
    /// `limit`, oldest first: a pre-vote answer hands them to the next master.
    fn accepted_unlogged(&self, limit: usize) -> Result<Vec<SyncEvent>, Self::Error>;
    /// How many of this device's own events are pending.
    fn pending_count(&self) -> Result<u64, Self::Error>;
    /// The log entry of an event, if the event is in the log.
    fn entry(&self, event_id: &EventId) -> Result<Option<LogEntry>, Self::Error>;
    /// The log entries of those of `event_ids` that are in the log (one read for a whole push;
    /// implementations should override the default, which reads them one by one).
    fn entries(&self, event_ids: &[EventId]) -> Result<Vec<LogEntry>, Self::Error> {
        let mut found = Vec::new();
        for event_id in event_ids {
            found.extend(self.entry(event_id)?);
        }
        Ok(found)
    }
    fn entry_at(&self, master_seq: u64) -> Result<Option<LogEntry>, Self::Error>;
    fn log_after(&self, since: u64, limit: usize) -> Result<Vec<LogEntry>, Self::Error>;
    /// The last position of this log in an epoch at or before `epoch`.
    fn epoch_end(&self, epoch: &Epoch) -> Result<u64, Self::Error>;
    /// The master's state (this device's copy) of the products among `skus` that exist.
    fn base_products(&self, skus: &[&str]) -> Result<Products, Self::Error>;
    /// The store's trust list as this device's log leaves it (read only when a trust change is
    /// to be decided).
    fn trust_list(&self) -> Result<rms_domain::TrustList, Self::Error>;
    /// Whether pushed `events` continue `from`'s chain and `head` signs the last linked one
    /// with a key the trust list binds to `from` (issue #17); `Ok(Err(_))` names the first break.
    fn check_push(
        &self,
        from: DeviceId,
        events: &[SyncEvent],
        head: Option<&PushHead>,
    ) -> Result<Result<(), ChainBreak>, Self::Error>;
    /// Persists `batch` in one transaction; returns the entries a truncation undid.
    fn commit(&mut self, batch: Batch) -> Result<Vec<LogEntry>, Self::Error>;
}

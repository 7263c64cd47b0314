//! [`StoreAdapter`]: rms-sync's [`SyncStore`] over rms-storage. The node's driver and the
//! simulator both use it, so the simulator exercises the real repositories.

use std::sync::{Arc, Mutex};

use rms_domain::rules::Products;
use rms_domain::{ChainBreak, DeviceId, Epoch, EventId, LogEntry, PushHead, SyncEvent, Term};
use rms_storage::chain_check::{Checker, Heads, Prehashed};
use rms_storage::products::Table;
use rms_storage::{StorageError, Store, audit, devices, events, node_state, products, replica};
use rms_sync::{Batch, PeerInfo, Persisted, SyncStore};

/// Cheap to clone; all clones share one database.
#[derive(Debug, Clone)]
pub struct StoreAdapter {
    store: Arc<Store>,
    pushes: Arc<Checker>,
    /// The hashes and signatures of the pushes being decided, worked out as they arrived.
    prehashed: Arc<Mutex<Vec<Prehashed>>>,
}

impl StoreAdapter {
    /// The core's store over `store`, requiring every push to carry its signed journal heads
    /// (as a running node always does).
    pub fn new(store: Arc<Store>) -> StoreAdapter {
        StoreAdapter {
            store,
            pushes: Arc::new(Checker::new(Heads::Required)),
            prehashed: Arc::default(),
        }
    }

    /// For the simulator, whose devices have no keys: a push's chain links are checked, its
    /// signature is not (a node always requires it).
    pub fn without_keys(store: Arc<Store>) -> StoreAdapter {
        StoreAdapter {
            store,
            pushes: Arc::new(Checker::new(Heads::NotModelled)),
            prehashed: Arc::default(),
        }
    }

    /// The database underneath.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The pushes about to be decided were worked out as they arrived (`Prehashed::of`): the
    /// checker uses each for the push it is of (and checks any other push itself).
    pub fn expect_pushes(&self, prehashed: Vec<Prehashed>) {
        *crate::locks::lock(&self.prehashed) = prehashed;
    }
}

impl SyncStore for StoreAdapter {
    type Error = StorageError;

    fn persisted(&self) -> Result<Persisted, StorageError> {
        let state = self.store.read(node_state::load)?;
        let roster = self
            .store
            .read(devices::list)?
            .into_iter()
            .map(|device| PeerInfo {
                device_id: device.device_id,
                name: device.name,
                advertise: device.advertise,
                priority: device.priority,
            })
            .collect();
        Ok(Persisted {
            epoch: state.epoch,
            log_head: state.log_head,
            hlc: state.hlc,
            roster,
            term_floor: Term(self.store.read(rms_storage::incarnation::term_floor)?),
        })
    }

    fn pending(&self, limit: usize) -> Result<Vec<SyncEvent>, StorageError> {
        self.store.read(|c| events::pending(c, limit))
    }

    fn accepted_unlogged(&self, limit: usize) -> Result<Vec<SyncEvent>, StorageError> {
        self.store.read(|c| {
            let device = node_state::load(c)?.device_id;
            events::accepted_unlogged(c, device, limit)
        })
    }

    fn pending_count(&self) -> Result<u64, StorageError> {
        Ok(self.store.read(events::pending_summary)?.0)
    }

    fn entry(&self, event_id: &EventId) -> Result<Option<LogEntry>, StorageError> {
        self.store.read(|c| events::get_entry(c, event_id))
    }

    fn entries(&self, event_ids: &[EventId]) -> Result<Vec<LogEntry>, StorageError> {
        self.store.read(|c| events::entries_of(c, event_ids))
    }

    fn check_push(
        &self,
        from: DeviceId,
        events: &[SyncEvent],
        head: Option<&PushHead>,
    ) -> Result<Result<(), ChainBreak>, StorageError> {
        let worked_out = {
            let mut prehashed = crate::locks::lock(&self.prehashed);
            let at = prehashed.iter().position(|p| p.is_of(from, events, head));
            at.map(|at| prehashed.swap_remove(at))
        };
        self.store.read(|c| {
            self.pushes
                .check(c, from, events, head, worked_out.as_ref())
        })
    }

    fn entry_at(&self, master_seq: u64) -> Result<Option<LogEntry>, StorageError> {
        self.store.read(|c| events::entry_at(c, master_seq))
    }

    fn log_after(&self, since: u64, limit: usize) -> Result<Vec<LogEntry>, StorageError> {
        self.store.read(|c| events::log_after(c, since, limit))
    }

    fn epoch_end(&self, epoch: &Epoch) -> Result<u64, StorageError> {
        self.store
            .read(|c| events::epoch_end(c, epoch, node_state::load(c)?.log_head))
    }

    fn base_products(&self, skus: &[&str]) -> Result<Products, StorageError> {
        self.store
            .read(|c| products::load_many(c, Table::Base, skus))
    }

    fn trust_list(&self) -> Result<rms_domain::TrustList, StorageError> {
        self.store.read(rms_storage::trust::load_logged)
    }

    fn commit(&mut self, batch: Batch) -> Result<Vec<LogEntry>, StorageError> {
        self.store.write(|tx| {
            let undone = match batch.truncate_after {
                Some(keep) => replica::truncate_after(tx, keep)?,
                None => Vec::new(),
            };
            let mut state = node_state::load(tx)?;
            if batch.epoch > state.epoch {
                state.epoch = batch.epoch;
            }
            if let Some(hlc) = batch.hlc {
                state.hlc = state.hlc.max(hlc);
            }
            node_state::save(tx, &state)?;
            if batch.repend_unlogged {
                replica::repend_unlogged(tx)?;
            }
            if !batch.entries.is_empty() {
                replica::apply_entries(tx, &batch.entries)?;
            }
            for verdict in &batch.verdicts {
                replica::set_verdict(
                    tx,
                    &verdict.event_id,
                    verdict.status,
                    verdict.reason,
                    verdict.master_seq,
                )?;
            }
            for entry in &batch.audit {
                audit::append(tx, entry)?;
            }
            Ok(undone)
        })
    }
}

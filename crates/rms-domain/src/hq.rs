//! What a store's master and head office (`rms-hq`) say to each other (issue #15): the uplink's
//! batches of master-log entries and head office's answers, and the catalogue changes that flow
//! down. Both sides serialize these types, so they cannot drift apart.
//!
//! Head office keys every entry by `(store_id, device_id, seq)` (the event's origin and its own
//! sequence, which a split brain never reuses) and keeps each store's cursor — the last
//! `master_seq` it holds and that entry's epoch — in the same transaction as the rows it covers.

use serde::{Deserialize, Serialize};

use crate::epoch::Epoch;
use crate::ids::EventId;
use crate::validate::{self, NAME_CHARS_MAX, ValidationError};

/// Most entries in one uplink batch.
pub const UPLINK_ENTRIES_MAX: usize = 1000;
/// Most bytes of JSON in one uplink batch (head office refuses a larger body).
pub const UPLINK_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most catalogue changes in one answer.
pub const CATALOG_CHANGES_MAX: usize = 500;
/// Longest wait of a catalogue long poll.
pub const CATALOG_WAIT_MS_MAX: u64 = 30_000;

/// Where head office stands in a store's master log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last `master_seq` head office holds (0: none).
    pub since: u64,
    /// The epoch of that entry (`None` when `since` is 0).
    pub since_epoch: Option<Epoch>,
    /// The event of that entry: with the epoch, what a store compares to know its log agrees
    /// (a store restored from a backup can log other events at the same positions in the same
    /// epoch).
    #[serde(default)]
    pub since_event: Option<EventId>,
    /// The greatest master epoch head office has taken a batch from: a master of a smaller
    /// epoch (the losing island of a split brain) is refused, as devices refuse it.
    pub max_epoch: Option<Epoch>,
}

/// One uplink batch: the master log after `since`, as the master holds it. `E` is a
/// [`crate::LogEntry`] on the store and raw JSON at head office (a field head office does not
/// know never blocks ingest; a batch field it does not know is ignored, so a newer store can talk
/// to an older head office).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestBatch<E> {
    /// The master's epoch now.
    pub epoch: Epoch,
    /// Where the entries start: head office's cursor as the master last read it.
    pub since: u64,
    /// The epoch of the master's entry at `since` (`None` when `since` is 0).
    pub since_epoch: Option<Epoch>,
    /// The event of the master's entry at `since` (`None` when `since` is 0): head office takes
    /// the batch as following its cursor only if it holds that event there too.
    #[serde(default)]
    pub since_event: Option<EventId>,
    /// The master's log does not agree with head office after `since` (a split brain's undone
    /// entries, or a store restored from a backup): head office marks what it holds after
    /// `since` as undone (kept, never deleted) before it takes `entries`.
    #[serde(default)]
    pub truncate: bool,
    /// The master's log head, for the lag head office reports.
    pub head: u64,
    /// The last head-office catalogue version this store has logged.
    pub catalog_version: u64,
    /// The master-log entries after `since`, in `master_seq` order, at most
    /// [`UPLINK_ENTRIES_MAX`] (and [`UPLINK_BYTES_MAX`] bytes of JSON in all).
    pub entries: Vec<E>,
}

/// Head office's answer to a batch it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestAnswer {
    /// The cursor after the batch.
    pub cursor: Cursor,
    /// Entries stored (new or re-logged by a later master).
    pub stored: u64,
    /// Entries kept raw only: they could not be projected, or their key was already taken by
    /// another event (recorded as ingest errors; they never block the entries after them).
    pub errors: u64,
}

/// One change of head office's catalogue: a product's name and price at `version` (gapless,
/// one change per version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogChange {
    /// The catalogue version this change made: the `seq` of the `catalog_set` event a store
    /// logs for it.
    pub version: u64,
    /// The product changed.
    pub sku: String,
    /// Its name from this version on.
    pub name: String,
    /// Its unit price from this version on, in minor units (cents).
    pub price_cents: i64,
}

/// The catalogue changes after a version, the latest per SKU only, in version order: from
/// version 0 this is the snapshot of the whole catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogChanges {
    /// Head office's catalogue version now.
    pub version: u64,
    /// The changes, oldest version first, at most [`CATALOG_CHANGES_MAX`]; a store that asks
    /// again after the last one's version misses nothing.
    pub changes: Vec<CatalogChange>,
}

/// A product's name and price as head office sets them (`PUT /hq/v1/catalog/{sku}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// The product's name (1 to [`NAME_CHARS_MAX`] characters).
    pub name: String,
    /// The product's unit price, in minor units (cents).
    pub price_cents: i64,
}

impl CatalogEntry {
    /// The rules a store applies to a product's name and price (SPEC §3), checked at head office
    /// before a change gets a version.
    pub fn validate(&self, sku: &str) -> Result<(), ValidationError> {
        validate::sku("sku", sku)?;
        validate::text("name", &self.name, NAME_CHARS_MAX)?;
        validate::price("price_cents", self.price_cents)
    }
}

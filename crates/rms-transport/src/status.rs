//! What the driver shows of the sync state, and the handles that read it: the leaf between the
//! driver thread (which writes a [`Status`] after every input) and everything that only looks
//! (the REST API, the change feed, the journal tasks, head office's uplink).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use rms_domain::{DeviceId, Epoch, Role};
use rms_sync::PeerInfo;
use tokio::sync::watch;

use crate::locks;

/// Bucket upper bounds of the latency histograms, in seconds.
const BOUNDS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram (cheap to clone: clones share the counts).
#[derive(Debug, Clone)]
pub struct Latency(Histogram);

impl Default for Latency {
    fn default() -> Latency {
        Latency(Histogram::new(BOUNDS_S))
    }
}

impl Latency {
    /// Counts one measurement of `took`.
    pub fn observe(&self, took: Duration) {
        self.0.observe(took.as_secs_f64());
    }

    /// The histogram, to register in a scrape (clones share the counts).
    pub fn histogram(&self) -> &Histogram {
        &self.0
    }
}

/// The node's latency histograms, filled by the driver.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// On a client: a push sent until its `push_ack`.
    pub push_latency: Latency,
    /// On any device: deciding or applying one batch that arrived (a push or relay on the master,
    /// or the pushes that arrived together and share one commit; log entries on a client), commit
    /// included.
    pub apply: Latency,
    /// Work refused to keep the node within its limits (issue #29).
    pub refused: Refusals,
}

/// Work a node refused to stay within its limits, counted since it started (cheap to clone:
/// clones share the counts).
#[derive(Debug, Default, Clone)]
pub struct Refusals {
    /// Store-port connections closed as they were accepted: their source, or every source
    /// together, held all the slots it may (`api::slots`).
    pub connections: Count,
    /// REST exchanges refused because their device had as many in flight as it may.
    pub exchanges: Count,
}

/// A counter shared by its clones.
#[derive(Debug, Default, Clone)]
pub struct Count(Arc<std::sync::atomic::AtomicU64>);

impl Count {
    /// Counts one more.
    pub fn add(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What the REST handlers show of the sync state, refreshed after every input.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// This device's role; `None` only in a default `Status`: the driver fills it before
    /// `Node::start` returns.
    pub role: Option<Role>,
    /// Given peers and not admitted by its store: never part of one and not paired yet, or
    /// restored with a new certificate (`rms_sync::SyncNode::joining`): its tills' writes are
    /// refused.
    pub joining: bool,
    /// The master's epoch (its term) as this device knows it; `None` while it knows none.
    pub epoch: Option<Epoch>,
    /// The store's master as this device knows it (itself when master); `None` while it knows
    /// none (before an election, or after the master fell silent).
    pub master_id: Option<DeviceId>,
    /// How many master-log entries this device holds: the position of its newest (0: none).
    pub log_head: u64,
    /// Peers this node has heard of: info, heard within the master timeout, last heard (wall ms).
    pub roster: Vec<(PeerInfo, bool, Option<u64>)>,
    /// The devices with at least one open link to this node, sorted, each once.
    pub connected: Vec<DeviceId>,
    /// On a client, when (wall ms since the epoch) its copy of the master log last grew;
    /// `None` if it has not since the node started. A master does not set it.
    pub last_sync_at_ms: Option<u64>,
    /// Latency histograms the driver fills (shared, not copied, by clones of the status).
    pub metrics: Arc<Metrics>,
    /// Each peer's log head as it last said (the status page's sync lag).
    pub peer_log_heads: BTreeMap<DeviceId, u64>,
    /// Bumped after every input the driver handled: the status page's cue to refresh.
    pub changes: Arc<tokio::sync::watch::Sender<u64>>,
}

/// A shared, read-mostly view of the driver's [`Status`]: the driver replaces it after every
/// input; readers take a copy. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatusCell(Arc<RwLock<Status>>);

impl StatusCell {
    /// The status as of the driver's last input.
    pub fn get(&self) -> Status {
        locks::read(&self.0).clone()
    }

    /// Changes the status in place (the driver, after each input).
    pub(crate) fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut locks::write(&self.0));
    }
}

/// Whether the node is stopping: what its background tasks check between steps. Cheap to clone.
///
/// Every clone holds the flag's sender, so a task that waits for the flag (the connector) never
/// sees it dropped while any part of the node still runs: an app that drops its last `Node`
/// without `shutdown` leaves a node that keeps running, links and all, never a half-stopped one.
#[derive(Debug, Clone)]
pub struct Stopping(Arc<watch::Sender<bool>>);

impl Stopping {
    /// A flag that is not raised.
    pub(crate) fn new() -> Stopping {
        Stopping(Arc::new(watch::channel(false).0))
    }

    /// Raises the flag (`Node::shutdown`): every task ends at its next step.
    pub(crate) fn raise(&self) {
        self.0.send_replace(true);
    }

    /// The node is stopping: background tasks end.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// A receiver, for a task that waits on the flag itself.
    pub(crate) fn receiver(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

//! The store's side of head office (issue #15), on the master only:
//! - the **uplink** (`uplink`) follows the master log after head office's cursor, as a device
//!   pulls (`since`, `since_epoch`, and a truncation where the logs disagree), and posts it in
//!   bounded batches, one in flight, with backoff and jitter on failure;
//! - the **catalogue follower** (`catalog`) long-polls head office's catalogue changes and logs
//!   each as an event from the reserved head-office origin, so it reaches every till through the
//!   ordinary sync, once.
//!
//! Neither blocks a till: they read the database through the reader pool and write only through
//! the driver, like any local write. A device that stops being master stops both; the next master
//! starts from head office's cursor.

mod catalog;
mod client;
mod uplink;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use client::{HeadOffice, HeadOfficeError};

use crate::tasks::Handles;

/// What the store's status page and `/metrics` show of the uplink.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UplinkStatus {
    /// This device is master and follows head office.
    pub active: bool,
    /// The last `master_seq` head office holds (its cursor), as it last said.
    pub cursor: u64,
    /// Entries of this master log head office does not hold yet.
    pub lag_entries: u64,
    /// Since when head office has been behind this log (wall ms); `None`: caught up.
    pub behind_since_ms: Option<u64>,
    /// Last answer from head office (wall ms).
    pub last_contact_ms: Option<u64>,
    /// Why the last request to head office failed, for a person; `None` once a batch
    /// succeeded after it (or if none failed since the node started).
    pub last_error: Option<String>,
    /// The last head-office catalogue version logged in this store.
    pub catalog_version: u64,
    /// Batches head office committed since this node started.
    pub batches: u64,
    /// Failed requests since this node started.
    pub errors: u64,
}

/// The uplink's shared status.
#[derive(Debug, Clone, Default)]
pub struct UplinkState(Arc<Mutex<UplinkStatus>>);

impl UplinkState {
    /// The uplink's status now.
    pub fn get(&self) -> UplinkStatus {
        crate::locks::lock(&self.0).clone()
    }

    fn update(&self, f: impl FnOnce(&mut UplinkStatus)) {
        f(&mut crate::locks::lock(&self.0));
    }

    fn failed(&self, why: String) {
        self.update(|s| {
            s.errors += 1;
            s.last_error = Some(why);
        });
    }
}

/// Tunes the uplink (tests and benchmarks shorten the heartbeat).
#[derive(Debug, Clone)]
pub struct UplinkLimits {
    /// Most entries per batch.
    pub entries_max: usize,
    /// About the most bytes of JSON per batch.
    pub bytes_max: usize,
    /// An empty batch (a heartbeat: head, catalogue version) at least this often.
    pub heartbeat: Duration,
}

impl Default for UplinkLimits {
    fn default() -> UplinkLimits {
        UplinkLimits {
            entries_max: rms_domain::hq::UPLINK_ENTRIES_MAX,
            bytes_max: 1024 * 1024,
            heartbeat: Duration::from_secs(5),
        }
    }
}

/// Starts the uplink and the catalogue follower; they run until the node stops.
pub(crate) fn spawn(handles: &Handles, office: HeadOffice, limits: UplinkLimits) -> UplinkState {
    let state = UplinkState::default();
    tokio::spawn(uplink::run(
        handles.clone(),
        office.clone(),
        limits,
        state.clone(),
    ));
    tokio::spawn(catalog::run(handles.clone(), office, state.clone()));
    state
}

/// Backoff after a failure: doubles from 200 ms to 1 s, with ±50 % jitter from the system's
/// generator, so that a head office coming back is not met by every store at once. The cap is
/// low because a store whose link returns must reach head office within seconds (bench H2); a
/// retry is one refused TCP connection.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn take(&mut self) -> Duration {
        use ring::rand::SecureRandom;
        let mut byte = [0u8; 1];
        let jitter = match ring::rand::SystemRandom::new().fill(&mut byte) {
            Ok(()) => f64::from(byte[0]) / 255.0,
            Err(_) => 0.5,
        };
        let wait = self.next.mul_f64(0.5 + jitter);
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

/// The node's epoch if it is master of it now.
fn master_epoch(handles: &Handles) -> Option<rms_domain::Epoch> {
    let status = handles.status.get();
    let me = handles.device_id;
    match (status.role, status.epoch) {
        (Some(rms_domain::Role::Master), Some(epoch)) if epoch.master_id == me => Some(epoch),
        _ => None,
    }
}

/// Waits until the driver handled another input, at most `wait`.
async fn changed_or(handles: &Handles, wait: Duration) {
    let mut changes = handles.status.get().changes.subscribe();
    let _ = tokio::time::timeout(wait, changes.changed()).await;
}

/// Why a request to head office did not give what the uplink or the catalogue follower wanted;
/// shown on the status page as the uplink's last error, then tried again after a backoff.
#[derive(Debug, thiserror::Error)]
enum OfficeError {
    #[error(transparent)]
    Request(#[from] HeadOfficeError),
    /// Head office answered with another status; `text` is the start of its body.
    #[error("head office answered {status}: {text}")]
    Answered { status: u16, text: String },
    #[error("head office's {what} does not decode: {source}")]
    Decode {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// A refusal or failure from head office, for the status page: its status and the start of its
/// body.
fn text_of(status: u16, body: &hyper::body::Bytes) -> OfficeError {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    OfficeError::Answered { status, text }
}

//! The driver's step without its I/O: how a node's inputs reach the sync core. The driver thread
//! (`driver.rs`) groups the pushes waiting in its queue with [`PushGroup`] and records local
//! writes with [`local_write`]; the deterministic simulator (`tests/it/sim`) calls the same two,
//! through [`handle_arrived`] for the messages that reach a device together, so that the group
//! limit and the local write path are simulated, not re-implemented. (The driver's loop around
//! them, its timers and catch-up after a gap, the simulator models in its own scheduler.)
//!
//! **Invariants:**
//! - Pushes found waiting together are decided in one group commit of at most
//!   [`GROUP_EVENTS_MAX`] events; any other message is handed to the core alone, in order.
//! - A local write is committed (one transaction, `rms_storage::local::record`) before the core
//!   hears of it, in the role the core says a local write is recorded in.

use rms_domain::DeviceId;
use rms_storage::local::{self, Command, Recorded};
use rms_storage::{StorageError, Store};
use rms_sync::{BATCH_EVENTS_MAX, Message, Now, SyncError, SyncNode};

use crate::sync_store::StoreAdapter;

/// Most events decided in one group commit: pushes waiting beyond it wait for the next one.
pub const GROUP_EVENTS_MAX: usize = 2 * BATCH_EVENTS_MAX;

/// A group of pushes being gathered from the head of a queue.
#[derive(Debug, Default)]
pub struct PushGroup {
    pushes: Vec<(DeviceId, Message)>,
    events: usize,
}

impl PushGroup {
    /// Takes `message` into the group if it is a push that keeps the group within
    /// [`GROUP_EVENTS_MAX`] events (a group always takes its first push); gives it back if not.
    pub fn offer(&mut self, from: DeviceId, message: Message) -> Option<(DeviceId, Message)> {
        let events = match &message {
            Message::Push { events, .. } => events.len(),
            _ => return Some((from, message)),
        };
        if !self.pushes.is_empty() && self.events + events > GROUP_EVENTS_MAX {
            return Some((from, message));
        }
        self.events += events;
        self.pushes.push((from, message));
        None
    }

    /// Whether the group holds no push yet.
    pub fn is_empty(&self) -> bool {
        self.pushes.is_empty()
    }

    /// The pushes taken, in the order they were offered, each with the device that sent it.
    pub fn into_pushes(self) -> Vec<(DeviceId, Message)> {
        self.pushes
    }
}

/// Hands messages that arrived together to the core as the driver does: a push and the pushes
/// right behind it go as one group; any other message goes alone. The first error is returned;
/// the messages after it are still handled.
pub fn handle_arrived(
    node: &mut SyncNode<StoreAdapter>,
    arrived: impl IntoIterator<Item = (DeviceId, Message)>,
    now: Now,
) -> Result<(), SyncError<StorageError>> {
    let mut first_error = None;
    let mut group = PushGroup::default();
    let mut note = |result: Result<(), SyncError<StorageError>>| {
        if let Err(err) = result {
            first_error.get_or_insert(err);
        }
    };
    for (from, message) in arrived {
        let Some((from, message)) = group.offer(from, message) else {
            continue;
        };
        if !group.is_empty() {
            note(node.handle_messages(std::mem::take(&mut group).into_pushes(), now));
        }
        match group.offer(from, message) {
            None => {}
            Some((from, message)) => note(node.handle_message(from, message, now)),
        }
    }
    if !group.is_empty() {
        note(node.handle_messages(group.into_pushes(), now));
    }
    first_error.map_or(Ok(()), Err)
}

/// A committed local write, and what the core made of it.
#[derive(Debug)]
pub struct LocalWrite {
    /// What the write committed: the event, and the rows it changed.
    pub recorded: Recorded,
    /// The core's handling of the write (a broadcast, an immediate push). The write is committed
    /// whatever this says: a failure here is the core's, to log, not the write's.
    pub core: Result<(), SyncError<StorageError>>,
}

/// A local write: recorded in one transaction in the role the core gives it, then handed to the
/// core (which broadcasts it if it is critical on the master, or pushes it at once on a client).
pub fn local_write(
    node: &mut SyncNode<StoreAdapter>,
    store: &Store,
    command: Command,
    now: Now,
) -> Result<LocalWrite, StorageError> {
    let role = node.local_write_role();
    let recorded = store.write(|tx| local::record(tx, role, now.wall_ms, command))?;
    let core = node.handle_local_write(&recorded.event, recorded.entry.as_ref(), now);
    Ok(LocalWrite { recorded, core })
}

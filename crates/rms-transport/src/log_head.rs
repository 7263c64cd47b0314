//! The head of this device's log chain as the driver and the log watch share it (issue #17): the
//! leaf between the driver thread, which sends this device's signed head in heartbeats and hears
//! the master's, and the log watch task (`tasks::log_watch`), which follows and compares the
//! chain. It imports nothing of this crate but the lock policy.

use std::sync::{Mutex, MutexGuard};

use rms_domain::{DeviceId, PushHead};
use rms_storage::log_chain::{LogChain, MasterHead, Recent};
use serde::Serialize;

use crate::locks;

/// A position of this copy compared with the master's signed head there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// The position in the master log (`master_seq`) that was compared.
    pub seq: u64,
    /// The master whose signed head was compared with.
    pub master_id: DeviceId,
    /// When the comparison was made (wall ms since the epoch).
    pub at_ms: u64,
}

/// The head of this device's log chain, what `/health` shows.
#[derive(Debug, Clone, Default)]
pub struct LogHead {
    /// This copy's chain: its head position and the hash there, as last followed.
    pub chain: LogChain,
    /// The master's signature over its head (`journal_heads::LogHeadStatement`).
    pub signed: Option<PushHead>,
    /// A client's last position that had the hash its master signed there.
    pub checked: Option<Checked>,
    /// A client's last position that did not (the alarm `log_chain_differs` was raised).
    pub differs: Option<Checked>,
}

/// A master's head that does not verify this many times in a row is raised as an alarm: once
/// could be a trust entry this device has not pulled yet.
pub const REFUSALS_BEFORE_ALARM: u32 = 3;

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) own: LogHead,
    /// The hashes of the chain's latest positions, for a head heard after the chain passed it.
    pub(crate) recent: Recent,
    /// Signed and not yet sent in a heartbeat (master).
    pub(crate) unsent: bool,
    /// The latest head heard from a master, not yet verified (client).
    pub(crate) heard: Option<(DeviceId, PushHead)>,
    /// The signature of the last head heard: the same head again (every REST answer carries
    /// it) is not checked again.
    pub(crate) last_heard: Option<String>,
    /// A verified head whose position this copy does not reach yet: compared when it does, or
    /// replaced by a newer one.
    pub(crate) pending: Option<MasterHead>,
    /// Heads refused in a row, and whether that was raised as an alarm (once a run).
    pub(crate) refusals: u32,
    pub(crate) refused_alarm: bool,
}

/// Shared by the node (which follows the chain) and the driver (which sends and hears heads in
/// heartbeats).
#[derive(Debug, Default)]
pub struct LogWatch {
    state: Mutex<State>,
    /// A master's head was heard: [`run`] compares at once rather than at its next interval.
    pub(crate) heard: tokio::sync::Notify,
}

impl LogWatch {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        locks::lock(&self.state)
    }

    /// This device's log head as of the last time it was followed or signed (a copy).
    pub fn head(&self) -> LogHead {
        self.state().own.clone()
    }

    /// A master's heartbeat carried its signed head: checked at once, unless it is the one
    /// heard last.
    pub(crate) fn heard(&self, from: DeviceId, head: PushHead) {
        let mut state = self.state();
        if state.last_heard.as_ref() == Some(&head.signature) {
            return;
        }
        state.last_heard = Some(head.signature.clone());
        state.heard = Some((from, head));
        drop(state);
        self.heard.notify_one();
    }

    /// The signed head for the next heartbeat to all peers, once per signing.
    pub(crate) fn to_send(&self) -> Option<PushHead> {
        let mut state = self.state();
        if !std::mem::take(&mut state.unsent) {
            return None;
        }
        state.own.signed.clone()
    }

    /// The latest signed head (a REST peer hears heartbeats only in answers).
    pub(crate) fn signed(&self) -> Option<PushHead> {
        self.state().own.signed.clone()
    }
}

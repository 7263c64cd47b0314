//! The master log's chain as this device watches it (issue #17, `rms_storage::log_chain`): the
//! head of its own copy, followed every [`SIGN_INTERVAL`] and signed when it is the master; the
//! master's signed head, heard in the master's heartbeats; and the check of this copy against
//! it, which raises the alarm `log_chain_differs` (once, until the chain starts again) when the
//! two disagree at the same position and epoch: one of the two files was changed.

use std::sync::{Arc, Mutex, MutexGuard};

use rms_domain::{DeviceId, PushHead, Role};
use rms_storage::journal_heads::{self, LogHeadStatement};
use rms_storage::log_chain::{Compared, Followed, LogChain, MasterHead};
use serde::Serialize;

use crate::journal_sign::{SIGN_INTERVAL, Signer};
use crate::node::Node;

/// The last position where this copy of the log had the hash the master signed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub seq: u64,
    pub master_id: DeviceId,
    /// When the check was made.
    pub at_ms: u64,
}

/// The head of this device's log chain, what `/health` shows.
#[derive(Debug, Clone, Default)]
pub struct LogHead {
    pub chain: LogChain,
    /// The master's signature over its head (`journal_heads::LogHeadStatement`).
    pub signed: Option<PushHead>,
    /// A client's last position checked against its master's signed head.
    pub checked: Option<Checked>,
}

#[derive(Debug, Default)]
struct State {
    own: LogHead,
    /// Signed and not yet sent in a heartbeat (master).
    unsent: bool,
    /// The latest head heard from a master, not yet compared (client).
    heard: Option<(DeviceId, PushHead)>,
    /// The alarm for a copy that differs was raised: not again until the chain starts again.
    differs: bool,
    /// The alarm for a master's head that does not verify was raised (once a run).
    refused: bool,
}

/// Shared by the node (which follows the chain) and the driver (which sends and hears heads in
/// heartbeats).
#[derive(Debug, Default)]
pub struct LogWatch {
    state: Mutex<State>,
    /// A master's head was heard: [`run`] compares at once rather than at its next interval.
    heard: tokio::sync::Notify,
}

impl LogWatch {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn head(&self) -> LogHead {
        self.state().own.clone()
    }

    /// A master's heartbeat carried its signed head: compared at the next follow.
    pub(crate) fn heard(&self, from: DeviceId, head: PushHead) {
        self.state().heard = Some((from, head));
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

/// Follows the log chain every [`SIGN_INTERVAL`], and as soon as the master's signed head is
/// heard, until the node stops; `signer` signs the head while this device is the master.
pub(crate) async fn run(node: Node, signer: Option<Arc<Signer>>) {
    let mut tick = tokio::time::interval(SIGN_INTERVAL);
    while !node.is_stopping() {
        tokio::select! {
            _ = tick.tick() => {}
            () = node.log_watch().heard.notified() => {}
        }
        if let Err(err) = follow(&node, signer.as_ref()).await {
            log::error!("cannot follow the master log's chain: {err}");
        }
    }
}

/// Extends this device's log chain over what its log gained (from the start again after a
/// truncation); on the master, signs the head; on a client, checks the copy against the master's
/// latest signed head when the chain reaches its position.
async fn follow(node: &Node, signer: Option<&Arc<Signer>>) -> Result<(), FollowError> {
    let watch = node.log_watch();
    let (own, heard) = {
        let mut state = watch.state();
        (state.own.clone(), state.heard.take())
    };
    let master = match heard {
        Some((from, head)) => master_head(node, from, head).await,
        None => None,
    };
    let chain = own.chain.clone();
    let followed = {
        let master = master.clone();
        node.db()
            .read(move |c| chain.follow(c, master.as_ref()))
            .await?
    };
    let Followed {
        chain,
        compared,
        restarted,
    } = followed;
    let mut checked = if restarted { None } else { own.checked };
    if restarted {
        watch.state().differs = false;
    }
    if let (Some(master), Some(compared)) = (master, compared) {
        let said = &master.statement;
        match compared {
            Compared::Same => {
                checked = Some(Checked {
                    seq: said.seq,
                    master_id: said.device_id,
                    at_ms: node.config().clock.now_ms(),
                });
            }
            Compared::Diverged => {
                log::info!("this copy of the log went another way at {}", said.seq);
            }
            Compared::Differs { own } => {
                if !std::mem::replace(&mut watch.state().differs, true) {
                    log::error!(
                        "this copy of the master log differs from device {}'s at {}",
                        said.device_id,
                        said.seq
                    );
                    let details = serde_json::json!({
                        "seq": said.seq,
                        "epoch": said.epoch,
                        "master_id": said.device_id,
                        "master_hash": said.hash,
                        "own_hash": own.to_hex(),
                        "checked_to": checked.map(|c| c.seq),
                        "head": master.signed,
                    });
                    node.alarm("log_chain_differs", details).await;
                }
            }
        }
    }
    let signed = match (signer, chain.epoch()) {
        (Some(signer), Some(epoch)) if node.status().role == Some(Role::Master) => {
            let statement = LogHeadStatement {
                device_id: node.config().device_id,
                seq: chain.seq,
                epoch: *epoch,
                hash: chain.hash.to_hex(),
                at_ms: node.config().clock.now_ms(),
            };
            let text = journal_heads::log_statement(statement)?;
            Some(journal_heads::sign_text(&**signer, text)?)
        }
        _ => None,
    };
    let mut state = watch.state();
    state.unsent = signed.is_some();
    state.own = LogHead {
        chain,
        signed,
        checked,
    };
    Ok(())
}

/// `head`, heard from `from`, as the signed head of this device's master; `None` (logged, and
/// the first refusal of a run raised as an alarm) when it is not.
async fn master_head(node: &Node, from: DeviceId, head: PushHead) -> Option<MasterHead> {
    if node.status().master_id != Some(from) {
        return None;
    }
    match MasterHead::verify(head, from, &node.trust().list()) {
        Ok(head) => Some(head),
        Err(why) => {
            log::warn!("device {from}'s signed log head is refused: {why}");
            let first = !std::mem::replace(&mut node.log_watch().state().refused, true);
            if first {
                let details = serde_json::json!({ "master_id": from, "why": why.to_string() });
                node.alarm("log_head_refused", details).await;
            }
            None
        }
    }
}

/// Why the log chain could not be followed this time (tried again at the next interval).
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Storage(#[from] rms_storage::StorageError),
}

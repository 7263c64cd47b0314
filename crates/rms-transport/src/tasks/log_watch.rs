//! The master log's chain as this device watches it (issue #17, `rms_storage::log_chain`): the
//! head of its own copy, followed every [`SIGN_INTERVAL`] and signed when it is the master; the
//! master's signed head, heard in the master's heartbeats; and the check of this copy against
//! it, which raises the alarm `log_chain_differs` (once, until the chain starts again) when the
//! two disagree at the same position and epoch: one of the two files was changed.

use std::sync::Arc;
use std::time::Duration;

use rms_domain::{DeviceId, PushHead, Role};
use rms_storage::journal::Hash;
use rms_storage::journal_heads::{self, LogHeadStatement};
use rms_storage::log_chain::{Compared, Followed, LogChain, MasterHead, Recent};

use rms_security::signer::Signer;

use crate::log_head::{Checked, LogHead, LogWatch, REFUSALS_BEFORE_ALARM};
use crate::tasks::{Handles, SIGN_INTERVAL};

/// Follows the log chain every [`SIGN_INTERVAL`], and as soon as the master's signed head is
/// heard, until the node stops; `signer` signs the head while this device is the master.
/// Every `recheck_every` the chain is also computed again from the start ([`recheck`]).
pub(crate) async fn run(
    handles: Handles,
    watch: Arc<LogWatch>,
    recheck_every: Duration,
    signer: Option<Arc<Signer>>,
) {
    let mut tick = tokio::time::interval(SIGN_INTERVAL);
    let every = recheck_every.max(Duration::from_millis(1));
    let mut rechecks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    while !handles.stopping.is_set() {
        let mut recheck_now = false;
        tokio::select! {
            _ = tick.tick() => {}
            () = watch.heard.notified() => {}
            _ = rechecks.tick() => recheck_now = true,
        }
        if let Err(err) = follow(&handles, &watch, signer.as_ref()).await {
            log::error!("cannot follow the master log's chain: {err}");
        }
        if recheck_now {
            match recheck(&handles, &watch).await {
                // Followed from the file at once: the master signs again, the client compares.
                Ok(true) => {
                    if let Err(err) = follow(&handles, &watch, signer.as_ref()).await {
                        log::error!("cannot follow the master log's chain: {err}");
                    }
                }
                Ok(false) => {}
                Err(err) => log::error!("cannot hash the master log again: {err}"),
            }
        }
    }
}

/// Computes the chain again from the start of this device's copy of the log: when the file
/// gives another hash at the head's position than the one computed as entries came — the file
/// was changed while the node ran — raises the alarm `log_chain_changed`, and follows the
/// chain from the start again (what the file holds now is what is compared and signed from then
/// on).
/// True when it did.
async fn recheck(handles: &Handles, watch: &LogWatch) -> Result<bool, FollowError> {
    let chain = watch.head().chain;
    let was = chain.clone();
    let Some(now) = handles.db.read(move |c| chain.recheck(c)).await? else {
        return Ok(false);
    };
    log::error!(
        "this device's copy of the master log changed under it at or before {}",
        was.seq
    );
    let details = serde_json::json!({
        "seq": was.seq,
        "hash_was": was.hash.to_hex(),
        "file_seq": now.seq,
        "file_hash": now.hash.to_hex(),
    });
    handles.driver.alarm("log_chain_changed", details);
    let mut state = watch.state();
    state.own = LogHead::default();
    state.recent = Recent::default();
    Ok(true)
}

/// Extends this device's log chain over what its log gained (from the start again after a
/// truncation); on the master, signs the head; on a client, compares the copy with the master's
/// latest signed head at its position.
async fn follow(
    handles: &Handles,
    watch: &LogWatch,
    signer: Option<&Arc<Signer>>,
) -> Result<(), FollowError> {
    let status = handles.status.get();
    let (master_id, is_master) = (status.master_id, status.role == Some(Role::Master));
    let (own, heard, pending, mut recent) = {
        let mut state = watch.state();
        let recent = std::mem::take(&mut state.recent);
        (
            state.own.clone(),
            state.heard.take(),
            state.pending.take(),
            recent,
        )
    };
    let master = match heard {
        Some((from, head)) => master_head(handles, watch, from, head).await.or(pending),
        None => pending,
    }
    .filter(|head| !is_master && Some(head.statement.device_id) == master_id);
    let chain = own.chain.clone();
    let (followed, recent) = {
        let master = master.clone();
        handles
            .db
            .read(move |c| {
                let followed = chain.follow(c, master.as_ref(), &mut recent)?;
                Ok::<_, rms_storage::StorageError>((followed, recent))
            })
            .await?
    };
    let Followed {
        chain,
        compared,
        restarted,
    } = followed;
    let (checked, differs) = if restarted || is_master {
        (None, None)
    } else {
        (own.checked, own.differs)
    };
    let (checked, differs, pending) = match master {
        Some(master) => judge(handles, master, compared, chain.seq, checked, differs),
        None => (checked, differs, None),
    };
    let signed = sign_head(handles, signer, &chain, is_master)?;
    let mut state = watch.state();
    state.unsent = signed.is_some();
    state.recent = recent;
    state.pending = pending;
    state.own = LogHead {
        chain,
        signed,
        checked,
        differs,
    };
    Ok(())
}

/// What comparing this copy with the master's signed head `master` says, given this copy's
/// head `own_seq` and the last `checked` and `differs`: the same hash moves `checked` there, a
/// different one moves `differs` there (raising `log_chain_differs` on the first), and a head
/// this copy does not reach yet is returned as pending, to compare when it does. Returns
/// `(checked, differs, pending)`.
fn judge(
    handles: &Handles,
    master: MasterHead,
    compared: Option<Compared>,
    own_seq: u64,
    mut checked: Option<Checked>,
    mut differs: Option<Checked>,
) -> (Option<Checked>, Option<Checked>, Option<MasterHead>) {
    let mut pending = None;
    let said = &master.statement;
    let at = Some(Checked {
        seq: said.seq,
        master_id: said.device_id,
        at_ms: handles.clock.now_ms(),
    });
    match compared {
        None if said.seq > own_seq => pending = Some(master),
        None => log::debug!("the master's head at {} is too old to compare", said.seq),
        Some(Compared::Same) => checked = at,
        Some(Compared::Diverged) => {
            log::info!("this copy of the log went another way at {}", said.seq);
        }
        Some(Compared::Differs { own }) => {
            if differs.is_none() {
                raise_differs(handles, &master, own, checked);
            }
            differs = at;
        }
    }
    (checked, differs, pending)
}

/// The master's signature over its log head (position, epoch, hash, and now), for its
/// heartbeats. `None` on a client, without a signer, or while the chain has no epoch.
fn sign_head(
    handles: &Handles,
    signer: Option<&Arc<Signer>>,
    chain: &LogChain,
    is_master: bool,
) -> Result<Option<PushHead>, FollowError> {
    let signed = match (signer, chain.epoch()) {
        (Some(signer), Some(epoch)) if is_master => {
            let statement = LogHeadStatement {
                device_id: handles.device_id,
                seq: chain.seq,
                epoch: *epoch,
                hash: chain.hash.to_hex(),
                at_ms: handles.clock.now_ms(),
            };
            let text = journal_heads::log_statement(statement)?;
            Some(journal_heads::sign_text(&**signer, text)?)
        }
        _ => None,
    };
    Ok(signed)
}

/// The alarm `log_chain_differs`: this copy and the master's disagree at the same position and
/// epoch (raised once, until the chain starts again).
fn raise_differs(handles: &Handles, master: &MasterHead, own: Hash, checked: Option<Checked>) {
    let said = &master.statement;
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
    handles.driver.alarm("log_chain_differs", details);
}

/// `head`, heard from `from`, verified as its signed log head; `None` (logged, and raised as an
/// alarm after [`REFUSALS_BEFORE_ALARM`] refusals in a row, once a run) when it does not verify.
async fn master_head(
    handles: &Handles,
    watch: &LogWatch,
    from: DeviceId,
    head: PushHead,
) -> Option<MasterHead> {
    let verified = MasterHead::verify(head, from, &handles.trust.list());
    let why = match verified {
        Ok(head) => {
            watch.state().refusals = 0;
            return Some(head);
        }
        Err(why) => why,
    };
    log::warn!("device {from}'s signed log head is refused: {why}");
    let alarm = {
        let mut state = watch.state();
        state.refusals += 1;
        let alarm = state.refusals >= REFUSALS_BEFORE_ALARM && !state.refused_alarm;
        state.refused_alarm |= alarm;
        alarm
    };
    if alarm {
        let details = serde_json::json!({ "master_id": from, "why": why.to_string() });
        handles.driver.alarm("log_head_refused", details);
    }
    None
}

/// Why the log chain could not be followed this time (tried again at the next interval).
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Following the chain on the blocking pool failed: SQLite, or a panic
    /// ([`DbError`](crate::db::DbError)).
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// A master could not write or sign the statement of its log head (its key failed to
    /// sign).
    #[error(transparent)]
    Storage(#[from] rms_storage::StorageError),
}

//! The catalogue follower: long-polls head office's changes after the last version this store
//! logged, and logs each through the driver as head office's event `(head office, version)`.
//!
//! **On crash:** the version applied is read back from the log (the greatest `seq` of the
//! head-office origin), and a version logged twice is refused by its event id: each change is
//! applied exactly once, whichever master fetched it.

use std::time::Duration;

use hyper::Method;
use rms_domain::RejectReason;
use rms_domain::hq::{CATALOG_WAIT_MS_MAX, CatalogChanges};
use rms_storage::StorageError;
use rms_storage::local::{self, Command};

use super::{Backoff, HeadOffice, OfficeError, UplinkState, changed_or, master_epoch, text_of};
use crate::input::NodeError;
use crate::tasks::Handles;

/// How long one long poll asks head office to wait.
const WAIT: Duration = Duration::from_millis(CATALOG_WAIT_MS_MAX - 5_000);
/// How long a device that is not master waits before it looks again (unless its state changes).
const IDLE: Duration = Duration::from_millis(500);

/// Follows head office's catalogue while this device is master, until the node stops: each
/// change after the store's version is logged once, in order; failures are shown in `state` and
/// retried with backoff.
pub(super) async fn run(handles: Handles, office: HeadOffice, state: UplinkState) {
    let mut backoff = Backoff::new();
    let mut alarmed = false;
    loop {
        if handles.stopping.is_set() {
            return;
        }
        if master_epoch(&handles).is_none() {
            changed_or(&handles, IDLE).await;
            continue;
        }
        let since = match handles.db.read(local::catalog_version).await {
            Ok(since) => since,
            Err(err) => {
                state.failed(format!("cannot read the catalogue version: {err}"));
                tokio::time::sleep(backoff.take()).await;
                continue;
            }
        };
        let changes = match fetch(&office, since).await {
            Ok(changes) => changes,
            Err(why) => {
                state.failed(why.to_string());
                tokio::time::sleep(backoff.take()).await;
                continue;
            }
        };
        backoff.reset();
        if changes.version < since {
            // Head office's catalogue went back in time (its database restored): versions it
            // issues again would be skipped here. Say so; take nothing.
            if !alarmed {
                alarmed = true;
                let details = serde_json::json!({"head_office": changes.version, "store": since});
                handles.driver.alarm(
                    "head office's catalogue version is behind this store's",
                    details,
                );
            }
            state.failed(format!(
                "head office's catalogue is at version {}, behind this store's {since}",
                changes.version
            ));
            tokio::time::sleep(backoff.take()).await;
            continue;
        }
        alarmed = false;
        if !log_changes(&handles, &state, changes, since).await {
            tokio::time::sleep(backoff.take()).await;
        }
    }
}

/// One long poll of head office's catalogue changes after version `since`: waits up to
/// [`WAIT`] for one (and ten seconds more for the answer).
async fn fetch(office: &HeadOffice, since: u64) -> Result<CatalogChanges, OfficeError> {
    let path = format!(
        "/hq/v1/catalog/changes?since={since}&wait_ms={}",
        WAIT.as_millis()
    );
    let answer = office
        .request(Method::GET, &path, None, WAIT + Duration::from_secs(10))
        .await;
    match answer {
        Ok((200, body)) => {
            serde_json::from_slice::<CatalogChanges>(&body).map_err(|source| OfficeError::Decode {
                what: "catalogue",
                source,
            })
        }
        Ok((status, body)) => Err(text_of(status, &body)),
        Err(err) => Err(OfficeError::from(err)),
    }
}

/// Logs the changes after version `since` in order, each as head office's event through the
/// driver; one logged already (by this master or an earlier one) is skipped. False when a write
/// failed: the failure is in `state`, and the changes after it wait for the next poll.
async fn log_changes(
    handles: &Handles,
    state: &UplinkState,
    changes: CatalogChanges,
    since: u64,
) -> bool {
    for change in changes.changes.into_iter().filter(|c| c.version > since) {
        let version = change.version;
        match handles
            .driver
            .local_write(Command::HeadOffice(change))
            .await
        {
            Ok(_) => state.update(|s| s.catalog_version = version),
            Err(NodeError::Storage(StorageError::Refused {
                reason: RejectReason::AlreadyExists,
                ..
            })) => {}
            Err(err) => {
                state.failed(format!("cannot log catalogue version {version}: {err}"));
                return false;
            }
        }
    }
    true
}

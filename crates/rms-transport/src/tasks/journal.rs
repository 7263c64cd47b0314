//! Signing the journal's heads (issue #17, `docs/JOURNAL.md`) with this device's key
//! ([`Signer`]): every [`SIGN_INTERVAL`] the heads that moved are signed, by the driver thread
//! like every write (`Input::SignJournal`), and past days are closed. It starts the log watch
//! (`log_watch::run`) with the same signer.

use std::sync::Arc;
use std::time::Duration;

use rms_security::identity::Identity;
use rms_security::signer::Signer;

use crate::input::Input;
use crate::log_head::LogWatch;
use crate::tasks::log_watch;
use crate::tasks::{Handles, SIGN_INTERVAL};

/// Asks the driver to sign the journal's heads every [`SIGN_INTERVAL`] until the node stops.
/// `watch` and `recheck_every` are the log watch's (see [`log_watch::run`]).
pub(crate) async fn run(
    handles: Handles,
    identity: &Identity,
    watch: Arc<LogWatch>,
    recheck_every: Duration,
) {
    let signer = match Signer::new(identity) {
        Ok(signer) => Arc::new(signer),
        Err(err) => {
            log::error!("{err}: the journal's heads and pushes stay unsigned");
            handles.driver.send_or_log(Input::JournalBroken);
            handles.driver.alarm(
                "journal_unsigned",
                serde_json::json!({ "error": err.to_string() }),
            );
            return log_watch::run(handles, watch, recheck_every, None).await;
        }
    };
    tokio::spawn(log_watch::run(
        handles.clone(),
        watch,
        recheck_every,
        Some(Arc::clone(&signer)),
    ));
    let mut tick = tokio::time::interval(SIGN_INTERVAL);
    // The day whose past days were last closed: checked at start and when the day changes.
    let mut closed_before = None;
    while !handles.stopping.is_set() {
        tick.tick().await;
        // A revoked key signs nothing more once the device knows (issue #27): its heads up to
        // then stay its own (`journal verify`).
        if handles.is_revoked() {
            continue;
        }
        handles
            .driver
            .send_or_log(Input::SignJournal(Arc::clone(&signer)));
        let today = handles.clock.now_ms() / rms_domain::DAY_MS;
        if closed_before != Some(today) && close_days(&handles).await {
            closed_before = Some(today);
        }
    }
}

/// Closes the past days this device sold on and has not closed (issue #17,
/// `rms_storage::closing`), each one local write. False when it is to be tried again.
async fn close_days(handles: &Handles) -> bool {
    let device = handles.device_id;
    let now_ms = handles.clock.now_ms();
    let due = handles
        .db
        .read(move |c| rms_storage::closing::due(c, device, now_ms))
        .await;
    let due = match due {
        Ok(due) => due,
        Err(err) => {
            log::error!("cannot find the days to close: {err}");
            return false;
        }
    };
    let more = due.len() == rms_storage::closing::DAYS_PER_CHECK_MAX;
    for day in due {
        let command = rms_storage::local::Command::CloseDay { day: day.clone() };
        match handles.driver.local_write(command).await {
            Ok(_) => log::info!("closed day {day}"),
            Err(err) => {
                log::error!("cannot close day {day}: {err}");
                return false;
            }
        }
    }
    !more
}

//! The uplink: the master log after head office's cursor, in bounded batches, one in flight.
//!
//! **On crash** (of either side): head office commits a batch with its cursor; a batch whose
//! answer was lost is sent again from the cursor this master last knew, and head office answers
//! `cursor_moved` with the cursor it holds, so nothing is written twice and nothing is skipped.

use std::time::Duration;

use hyper::Method;
use rms_domain::Epoch;
use rms_domain::hq::{Cursor, IngestAnswer};
use rms_storage::uplink::{self, Planned};
use serde::Deserialize;
use tokio::time::Instant;

use super::{
    Backoff, HeadOffice, OfficeError, UplinkLimits, UplinkState, changed_or, master_epoch, text_of,
};
use crate::tasks::Handles;

/// How long a batch may take to be answered.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a device that is not master looks again.
const IDLE: Duration = Duration::from_millis(500);
/// After a batch that was not full, how long to let a burst of sales gather into the next.
const GATHER: Duration = Duration::from_millis(20);

/// A refusal with head office's cursor (`409`).
#[derive(Deserialize)]
struct Refusal {
    error: String,
    cursor: Option<Cursor>,
}

/// The uplink's own state: head office's cursor as this master last learnt it (in the epoch it
/// learnt it in), the backoff, and whether the "head office is ahead" alarm was raised.
struct Uplink {
    handles: Handles,
    office: HeadOffice,
    limits: UplinkLimits,
    state: UplinkState,
    cursor: Option<(Epoch, Cursor)>,
    backoff: Backoff,
    alarmed: bool,
    last_sent: Option<Instant>,
}

pub(super) async fn run(
    handles: Handles,
    office: HeadOffice,
    limits: UplinkLimits,
    state: UplinkState,
) {
    let mut uplink = Uplink {
        handles,
        office,
        limits,
        state,
        cursor: None,
        backoff: Backoff::new(),
        alarmed: false,
        last_sent: None,
    };
    while !uplink.handles.stopping.is_set() {
        uplink.step().await;
    }
}

impl Uplink {
    /// One round: learn the cursor if needed, send the next batch (or a heartbeat), read the
    /// answer.
    async fn step(&mut self) {
        let Some(epoch) = master_epoch(&self.handles) else {
            self.state.update(|s| s.active = false);
            self.cursor = None;
            changed_or(&self.handles, IDLE).await;
            return;
        };
        self.state.update(|s| s.active = true);
        // A new master (or this one in a new epoch) starts from head office's cursor.
        let known = match self.cursor.filter(|(e, _)| *e == epoch) {
            Some((_, known)) => known,
            None => match self.read_cursor().await {
                Ok(read) => {
                    self.cursor = Some((epoch, read));
                    read
                }
                Err(why) => return self.failed(why.to_string()).await,
            },
        };
        let (entries_max, bytes_max) = (self.limits.entries_max, self.limits.bytes_max);
        let planned = self
            .handles
            .db
            .read(move |c| uplink::batch_after(c, &known, epoch, entries_max, bytes_max))
            .await;
        let planned = match planned {
            Ok(planned) => planned,
            Err(err) => {
                return self
                    .failed(format!("cannot read the master log: {err}"))
                    .await;
            }
        };
        self.note_plan(&known, &planned).await;
        let batch = &planned.batch;
        let idle = batch.entries.is_empty() && !batch.truncate;
        if let Some(sent) = self.last_sent.filter(|_| idle)
            && sent.elapsed() < self.limits.heartbeat
        {
            let wait = self.limits.heartbeat.saturating_sub(sent.elapsed());
            changed_or(&self.handles, wait).await;
            return;
        }
        self.send(epoch, planned).await;
    }

    /// Raises the alarm when head office holds more than this log, and shows the lag.
    async fn note_plan(&mut self, known: &Cursor, planned: &Planned) {
        if planned.behind && !self.alarmed {
            self.alarmed = true;
            let details = serde_json::json!({
                "head_office_cursor": known.since,
                "log_head": planned.batch.head,
            });
            let why = "head office holds more of the master log than this master";
            self.handles.driver.alarm(why, details);
        }
        let (head, version, now) = (
            planned.batch.head,
            planned.batch.catalog_version,
            self.handles.clock.now_ms(),
        );
        self.state.update(|s| {
            s.cursor = known.since;
            s.lag_entries = head.saturating_sub(known.since);
            s.catalog_version = version;
            if s.lag_entries == 0 {
                s.behind_since_ms = None;
            } else if s.behind_since_ms.is_none() {
                s.behind_since_ms = Some(now);
            }
        });
    }

    async fn send(&mut self, epoch: Epoch, planned: Planned) {
        let batch = planned.batch;
        let full = batch.entries.len() >= self.limits.entries_max;
        let body = match serde_json::to_vec(&batch) {
            Ok(body) => body,
            Err(err) => return self.failed(format!("cannot encode a batch: {err}")).await,
        };
        self.last_sent = Some(Instant::now());
        let answer = self
            .office
            .request(
                Method::POST,
                "/hq/v1/uplink/batch",
                Some(body),
                BATCH_TIMEOUT,
            )
            .await;
        match answer {
            Ok((200, body)) => match serde_json::from_slice::<IngestAnswer>(&body) {
                Ok(answer) => {
                    self.committed(epoch, batch.head, &answer, planned.behind);
                    if answer.errors > 0 {
                        let details = serde_json::json!({
                            "errors": answer.errors,
                            "after": batch.since,
                            "up_to": answer.cursor.since,
                        });
                        let why =
                            "head office kept entries of this log raw only (hq_ingest_errors)";
                        self.handles.driver.alarm(why, details);
                    }
                    if !full {
                        changed_or(&self.handles, GATHER).await;
                    }
                }
                Err(err) => {
                    let why = format!("head office's answer does not decode: {err}");
                    self.failed(why).await;
                }
            },
            Ok((409, body)) => match serde_json::from_slice::<Refusal>(&body) {
                Ok(Refusal {
                    error,
                    cursor: Some(theirs),
                }) if error == "cursor_moved" => {
                    // A lost answer's batch was committed, or another replica moved on: go on
                    // from head office's cursor.
                    let now = self.handles.clock.now_ms();
                    self.state.update(|s| s.last_contact_ms = Some(now));
                    let stuck = self.cursor.is_some_and(|(_, ours)| ours == theirs);
                    self.cursor = Some((epoch, theirs));
                    if stuck {
                        // The same refusal again: do not spin on it.
                        let why = "head office refuses to move its cursor (cursor_moved)";
                        self.failed(why.to_owned()).await;
                    }
                }
                Ok(Refusal { error, .. }) if error == "stale_epoch" => {
                    let why = "head office follows a newer master of this store (stale epoch)";
                    self.failed(why.to_owned()).await;
                }
                // `epoch_out_of_range` (this master's term is beyond what head office takes)
                // and anything else: shown as head office said it.
                _ => self.failed(text_of(409, &body).to_string()).await,
            },
            Ok((status, body)) => self.failed(text_of(status, &body).to_string()).await,
            Err(err) => self.failed(err.to_string()).await,
        }
    }

    fn committed(&mut self, epoch: Epoch, head: u64, answer: &IngestAnswer, behind: bool) {
        self.backoff.reset();
        self.alarmed &= behind;
        self.cursor = Some((epoch, answer.cursor));
        let (now, since) = (self.handles.clock.now_ms(), answer.cursor.since);
        self.state.update(|s| {
            s.batches += 1;
            s.last_contact_ms = Some(now);
            s.last_error = None;
            s.cursor = since;
            s.lag_entries = head.saturating_sub(since);
            if s.lag_entries == 0 {
                s.behind_since_ms = None;
            }
        });
    }

    async fn failed(&mut self, why: String) {
        self.state.failed(why);
        tokio::time::sleep(self.backoff.take()).await;
    }

    async fn read_cursor(&self) -> Result<Cursor, OfficeError> {
        let path = "/hq/v1/uplink/cursor";
        match self
            .office
            .request(Method::GET, path, None, BATCH_TIMEOUT)
            .await
        {
            Ok((200, body)) => {
                serde_json::from_slice(&body).map_err(|source| OfficeError::Decode {
                    what: "cursor",
                    source,
                })
            }
            Ok((status, body)) => Err(text_of(status, &body)),
            Err(err) => Err(OfficeError::from(err)),
        }
    }
}

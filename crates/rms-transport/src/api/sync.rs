//! The sync protocol's REST fallback: push, pull and exchange, for a device that cannot hold a
//! WebSocket.

use rms_domain::{DeviceId, ValidationError};
use rms_storage::events;
use rms_sync::ErrorCode;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use super::body;
use super::error::ApiError;
use crate::node::Node;

use super::{json, limit};

/// `POST /sync/push`: the REST fallback of the WebSocket `push`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestPush {
    device_id: u16,
    /// The pusher's epoch; without it the node's own is assumed (no fencing).
    #[serde(default)]
    epoch: Option<rms_domain::Epoch>,
    events: Vec<rms_domain::SyncEvent>,
    /// The pusher's signature over its last linked event (issue #17, `docs/JOURNAL.md`).
    #[serde(default)]
    head: Option<rms_domain::PushHead>,
}

pub async fn sync_push(node: Node, body: Bytes) -> Result<Response, ApiError> {
    let push: RestPush = body::decode(&body)?;
    let from = peer_id(&node, push.device_id)?;
    if push.events.len() > rms_sync::BATCH_EVENTS_MAX {
        let message = format!("at most {} events per push", rms_sync::BATCH_EVENTS_MAX);
        return Err(ApiError::invalid(ValidationError::new("events", message)));
    }
    let epoch = push.epoch.or(node.status().epoch);
    let answers = node
        .exchange(
            from,
            rms_sync::Message::Push {
                epoch,
                events: push.events,
                head: push.head,
            },
        )
        .await?;
    // The verdicts, when there are any: a batch with some refused events (another device's)
    // still answers for the events that were decided; the refusal is in the audit log.
    let mut refusal = None;
    for answer in answers {
        match answer {
            rms_sync::Message::PushAck { epoch, verdicts } => {
                return Ok(json(
                    StatusCode::OK,
                    &json!({ "epoch": epoch, "verdicts": verdicts }),
                ));
            }
            rms_sync::Message::Error { code, message, .. } => {
                refusal.get_or_insert(ApiError::new(
                    StatusCode::CONFLICT,
                    error_code(&code),
                    message,
                ));
            }
            _ => {}
        }
    }
    Err(refusal.unwrap_or_else(|| ApiError::internal("the push got no answer")))
}

/// The device a REST sync request speaks for: another device of the store, never this one.
fn peer_id(node: &Node, device_id: u16) -> Result<DeviceId, ApiError> {
    let invalid = |message: &str| ApiError::invalid(ValidationError::new("device_id", message));
    let from = DeviceId::new(device_id).ok_or_else(|| invalid("must be in 1..=65535"))?;
    if from == node.config().device_id {
        return Err(invalid("is this device's own id"));
    }
    Ok(from)
}

/// The REST error code for a refusal of the sync core: the wire codes a REST client knows, and
/// `refused` for any other.
fn error_code(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::StaleTerm => "stale_term",
        ErrorCode::NotMaster => "not_master",
        ErrorCode::HandingOver => "handing_over",
        ErrorCode::Refused | ErrorCode::Other(_) => "refused",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullParams {
    since: u64,
    limit: Option<usize>,
}

/// `GET /sync/pull?since=N`: this device's copy of the master log after `since`.
pub async fn sync_pull(node: Node, params: PullParams) -> Result<Response, ApiError> {
    let limit = limit(params.limit)?;
    let since = params.since;
    let entries = node
        .db()
        .read(move |c| events::log_after(c, since, limit))
        .await?;
    let status = node.status();
    Ok(json(
        StatusCode::OK,
        &json!({ "epoch": status.epoch, "log_head": status.log_head, "entries": entries }),
    ))
}

/// `POST /sync/exchange`: the sync protocol over plain HTTP for a device that cannot hold a
/// WebSocket. The body carries the messages it would have sent; the answer carries what this
/// node answers to it, and this node's heartbeat.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    device_id: u16,
    messages: Vec<rms_sync::Message>,
}

/// `bound`: on the store port, the device id the trust list binds the caller's certificate
/// to; the exchange may speak for no other (an alarm).
pub async fn sync_exchange(
    node: Node,
    body: Bytes,
    bound: Option<DeviceId>,
    in_flight: Arc<InFlight>,
) -> Result<Response, ApiError> {
    let exchange: Exchange = body::decode(&body)?;
    let from = peer_id(&node, exchange.device_id)?;
    if let Some(bound) = bound
        && bound != from
    {
        let details = json!({ "claimed": from, "bound": bound });
        node.driver().send(crate::input::Input::LinkRefused {
            from: Some(bound),
            why: rms_sync::DEVICE_ID_MISMATCH,
            details,
        });
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            rms_sync::DEVICE_ID_MISMATCH,
            "this certificate belongs to another device id",
        ));
    }
    if exchange.messages.len() > crate::net::link::EXCHANGE_MESSAGES_MAX {
        let message = format!(
            "at most {} messages per exchange",
            crate::net::link::EXCHANGE_MESSAGES_MAX
        );
        return Err(ApiError::invalid(ValidationError::new("messages", message)));
    }
    let Some(_turn) = in_flight.enter(from) else {
        node.status().metrics.refused.exchanges.add();
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_exchanges",
            format!(
                "at most {EXCHANGES_IN_FLIGHT_PER_DEVICE} exchanges of one device at once; \
                 send the next when one is answered"
            ),
        ));
    };
    let answer = answer_exchange(&node, from, exchange.messages).await?;
    Ok(warp::reply::with_header(answer, "content-type", "application/json").into_response())
}

/// What this node answers to `messages` from `from`, as the JSON body of the exchange's answer:
/// `{"messages": [...]}`, this node's heartbeat first. Each answer is serialized as it comes,
/// and once they reach [`EXCHANGE_ANSWER_BYTES_MAX`] the pulls left are not asked (their
/// answers are the large ones: the device pulls again in its next exchange); the other
/// messages still are, for they carry the device's writes.
async fn answer_exchange(
    node: &Node,
    from: DeviceId,
    messages: Vec<rms_sync::Message>,
) -> Result<String, ApiError> {
    let is_heartbeat = |m: &rms_sync::Message| matches!(m, rms_sync::Message::Heartbeat { .. });
    let mut heartbeat = None;
    let mut answers = Vec::new();
    let mut bytes = 0usize;
    for message in messages {
        if bytes >= EXCHANGE_ANSWER_BYTES_MAX && matches!(message, rms_sync::Message::Pull { .. }) {
            continue;
        }
        for answer in node.exchange(from, message).await? {
            // Each exchange answers with a heartbeat; one is enough, and it goes first, so
            // that the asker knows who answers before it reads the rest (a link must
            // introduce itself first).
            if is_heartbeat(&answer) {
                heartbeat = Some(answer);
                continue;
            }
            let text = serde_json::to_string(&answer)
                .map_err(|e| ApiError::internal(format!("cannot encode an answer: {e}")))?;
            bytes += text.len();
            answers.push(text);
        }
    }
    let heartbeat = heartbeat
        .map(|h| serde_json::to_string(&h))
        .transpose()
        .map_err(|e| ApiError::internal(format!("cannot encode the heartbeat: {e}")))?;
    let all: Vec<String> = heartbeat.into_iter().chain(answers).collect();
    Ok(format!("{{\"messages\":[{}]}}", all.join(",")))
}

/// REST exchanges one device may have in flight at once on this node; more are refused with
/// `429 too_many_exchanges` (issue #29: the work one device makes the master do is bounded).
pub const EXCHANGES_IN_FLIGHT_PER_DEVICE: usize = 2;

/// The most an exchange's answer holds, in bytes of JSON, before its remaining pulls are left
/// unanswered (the pulls; the other messages are still asked). One pull's answer is at most
/// [`rms_sync::BATCH_BYTES_MAX`], so an answer stays under this plus one page: with
/// [`EXCHANGES_IN_FLIGHT_PER_DEVICE`], what one device makes the master hold is bounded.
pub const EXCHANGE_ANSWER_BYTES_MAX: usize = 1024 * 1024;

/// The exchanges in flight, by device (shared by the store port's requests).
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<DeviceId, usize>>);

/// One exchange's turn: released when dropped.
pub struct Turn<'a> {
    in_flight: &'a InFlight,
    device: DeviceId,
}

impl InFlight {
    /// A turn for an exchange of `device`, or `None` if it has
    /// [`EXCHANGES_IN_FLIGHT_PER_DEVICE`] in flight.
    fn enter(&self, device: DeviceId) -> Option<Turn<'_>> {
        let mut counts = crate::locks::lock(&self.0);
        let count = counts.entry(device).or_default();
        if *count >= EXCHANGES_IN_FLIGHT_PER_DEVICE {
            return None;
        }
        *count += 1;
        Some(Turn {
            in_flight: self,
            device,
        })
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut counts = crate::locks::lock(&self.in_flight.0);
        if let Some(count) = counts.get_mut(&self.device) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.device);
            }
        }
    }
}

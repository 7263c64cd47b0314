//! The sync protocol's REST fallback: push, pull and exchange, for a device that cannot hold a
//! WebSocket.

use rms_domain::{DeviceId, ValidationError};
use rms_storage::events;
use rms_sync::ErrorCode;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::Response;

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
    let mut answers = Vec::new();
    for message in exchange.messages {
        answers.extend(node.exchange(from, message).await?);
    }
    // Each exchange answers with a heartbeat; one is enough, and it goes first, so that the
    // asker knows who answers before it reads the rest (a link must introduce itself first).
    let is_heartbeat = |m: &rms_sync::Message| matches!(m, rms_sync::Message::Heartbeat { .. });
    let heartbeat = answers.iter().rev().find(|m| is_heartbeat(m)).cloned();
    answers.retain(|m| !is_heartbeat(m));
    answers.splice(0..0, heartbeat);
    Ok(json(StatusCode::OK, &json!({ "messages": answers })))
}

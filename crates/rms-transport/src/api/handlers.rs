//! The REST handlers: decode, validate, run one repository call off the runtime, answer.

use rms_domain::{
    DeviceId, EventStatus, NewProduct, NewSale, Operation, ProductPatch, Role, SaleStatus,
    StockAdjustment, ValidationError, ms_from_rfc3339, rfc3339_from_ms,
};
use rms_storage::audit::{self, AuditQuery};
use rms_storage::local::Command;
use rms_storage::{events, products, sales};
use rms_sync::{ErrorCode, HandoverError};
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::body;
use crate::error::ApiError;
use crate::node::{Node, VERDICT_WAIT};

/// Default and largest page of `GET /sales` and `GET /audit`.
const LIST_LIMIT_DEFAULT: usize = 100;
const LIST_LIMIT_MAX: usize = 1000;

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

pub async fn health(node: Node) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &health_value(&node)))
}

fn health_value(node: &Node) -> serde_json::Value {
    let status = node.status();
    let disk_full = node.db().disk_full();
    json!({
        "status": if disk_full { "degraded" } else { "ok" },
        "storage": if disk_full { "full" } else { "ok" },
        "device_id": node.config().device_id,
        "role": status.role.unwrap_or(Role::Client),
        "term": status.epoch.map_or(0, |e| e.term.0),
        "master_id": status.master_id,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

pub async fn cluster(node: Node) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &cluster_value(&node)))
}

fn cluster_value(node: &Node) -> serde_json::Value {
    let status = node.status();
    let mut devices = vec![node.device()];
    for (info, online, last_seen) in status.roster {
        let role = if status.master_id == Some(info.device_id) {
            Role::Master
        } else {
            Role::Client
        };
        devices.push(rms_domain::Device {
            device_id: info.device_id,
            name: info.name,
            role,
            advertise: info.advertise,
            priority: info.priority,
            online,
            last_seen: last_seen.map(rfc3339_from_ms),
        });
    }
    devices.sort_by_key(|d| d.device_id);
    json!({
        "term": status.epoch.map_or(0, |e| e.term.0),
        "master_id": status.master_id,
        "devices": devices,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverRequest {
    device_id: u16,
}

pub async fn handover(node: Node, body: Bytes) -> Result<Response, ApiError> {
    let request: HandoverRequest = body::decode(&body)?;
    let target = DeviceId::new(request.device_id).ok_or_else(|| {
        ApiError::invalid(ValidationError::new("device_id", "must be in 1..=65535"))
    })?;
    match node.handover(target).await? {
        Ok(()) => Ok(json(
            StatusCode::ACCEPTED,
            &json!({ "status": "handover_requested", "device_id": target }),
        )),
        Err(HandoverError::Storage(err)) => Err(ApiError::from(err)),
        Err(err) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "handover_refused",
            err.to_string(),
        )),
    }
}

pub async fn sync_status(node: Node) -> Result<Response, ApiError> {
    let pending = node.db().read(events::pending_summary).await?;
    Ok(json(StatusCode::OK, &sync_status_value(&node, pending)))
}

fn sync_status_value(node: &Node, (pending, oldest_ms): (u64, Option<u64>)) -> serde_json::Value {
    let status = node.status();
    let now_ms = node.now_ms();
    json!({
        "pending": pending,
        "oldest_pending_ms": oldest_ms.map(|at| now_ms.saturating_sub(at)),
        "cursor": status.log_head,
        "last_sync_at": status.last_sync_at_ms.map(rfc3339_from_ms),
        "connected_devices": status.connected.len(),
    })
}

/// Audit entries on the status page.
const STATUS_AUDIT_ENTRIES: usize = 20;

/// Everything the status page shows, as one JSON value: the same shapes as `GET /health`,
/// `/cluster`, `/sync/status`, `/products`, plus the newest audit entries and conflicts.
pub async fn status_snapshot(node: &Node) -> Result<serde_json::Value, ApiError> {
    let (products, pending, recent, conflicts) = node
        .db()
        .read(|c| {
            let newest = |operation| AuditQuery {
                operation,
                limit: STATUS_AUDIT_ENTRIES,
                ..AuditQuery::default()
            };
            Ok((
                products::list(c)?,
                events::pending_summary(c)?,
                audit::query(c, &newest(None))?,
                audit::query(c, &newest(Some(rms_domain::Operation::Conflict)))?,
            ))
        })
        .await?;
    let status = node.status();
    let mut log_heads: serde_json::Map<String, serde_json::Value> = status
        .peer_log_heads
        .iter()
        .map(|(device, head)| (device.to_string(), json!(head)))
        .collect();
    log_heads.insert(node.config().device_id.to_string(), json!(status.log_head));
    // The master's head: ours on the master, else what the master last said.
    let master_log_head = match status.master_id {
        Some(master) if master != node.config().device_id => {
            status.peer_log_heads.get(&master).copied()
        }
        Some(_) => Some(status.log_head),
        None => None,
    };
    Ok(json!({
        "health": health_value(node),
        "cluster": cluster_value(node),
        "log_heads": log_heads,
        "master_log_head": master_log_head,
        "sync": sync_status_value(node, pending),
        "products": products,
        "audit": recent,
        "conflicts": conflicts,
        "at": rfc3339_from_ms(node.now_ms()),
    }))
}

pub async fn list_products(node: Node) -> Result<Response, ApiError> {
    let products = node.db().read(products::list).await?;
    Ok(json(StatusCode::OK, &products))
}

pub async fn get_product(node: Node, sku: String) -> Result<Response, ApiError> {
    let found = node.db().read(move |c| products::get(c, &sku)).await?;
    let product = found.ok_or_else(|| ApiError::not_found("no product with that sku"))?;
    Ok(json(StatusCode::OK, &product))
}

/// Runs a local write in one transaction and answers with the first product it changed.
async fn write_product(
    node: &Node,
    status: StatusCode,
    command: Command,
) -> Result<Response, ApiError> {
    let done = node.local_write(command).await?;
    let product = done
        .recorded
        .products
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("the write changed no product"))?;
    Ok(json(status, &product))
}

pub async fn create_product(node: Node, body: Bytes) -> Result<Response, ApiError> {
    let new: NewProduct = body::decode(&body)?;
    new.validate().map_err(ApiError::invalid)?;
    write_product(&node, StatusCode::CREATED, Command::CreateProduct(new)).await
}

pub async fn patch_product(node: Node, sku: String, body: Bytes) -> Result<Response, ApiError> {
    let patch: ProductPatch = body::decode(&body)?;
    patch.validate().map_err(ApiError::invalid)?;
    write_product(&node, StatusCode::OK, Command::UpdateProduct { sku, patch }).await
}

pub async fn adjust_stock(node: Node, sku: String, body: Bytes) -> Result<Response, ApiError> {
    let adjustment: StockAdjustment = body::decode(&body)?;
    adjustment.validate().map_err(ApiError::invalid)?;
    write_product(
        &node,
        StatusCode::OK,
        Command::AdjustStock { sku, adjustment },
    )
    .await
}

/// A sale: on the master decided at once (201, or 409 and nothing written). On a client committed
/// locally first; a critical one waits up to [`VERDICT_WAIT`] for the master (201 or 409 with the
/// sale and its reason), anything else answers 202 `pending`.
pub async fn create_sale(node: Node, body: Bytes) -> Result<Response, ApiError> {
    let sale: NewSale = body::decode(&body)?;
    sale.validate().map_err(ApiError::invalid)?;
    let done = node.local_write(Command::Sell(sale)).await?;
    let mut sale = done
        .recorded
        .sale
        .ok_or_else(|| ApiError::internal("the sale was not recorded"))?;
    if done.role == Role::Master {
        return Ok(json(StatusCode::CREATED, &sale));
    }
    let Some(verdict) = done.verdict else {
        return Ok(json(StatusCode::ACCEPTED, &sale));
    };
    match tokio::time::timeout(VERDICT_WAIT, verdict).await {
        Ok(Ok(verdict)) if verdict.status == EventStatus::Synced => {
            sale.status = SaleStatus::Accepted;
            Ok(json(StatusCode::CREATED, &sale))
        }
        Ok(Ok(verdict)) => {
            sale.status = SaleStatus::Rejected;
            sale.reason = verdict.reason;
            let reason = verdict.reason.map_or("rejected", |r| r.as_str());
            let mut body =
                serde_json::to_value(&sale).map_err(|e| ApiError::internal(e.to_string()))?;
            body["error"] = json!(reason);
            body["message"] = json!(
                verdict
                    .reason
                    .map_or("the master rejected the sale", |r| r.describe())
            );
            Ok(json(StatusCode::CONFLICT, &body))
        }
        _ => Ok(json(StatusCode::ACCEPTED, &sale)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<usize>,
}

fn limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        let err = ValidationError::new("limit", format!("must be between 1 and {LIST_LIMIT_MAX}"));
        return Err(ApiError::invalid(err));
    }
    Ok(limit)
}

pub async fn list_sales(node: Node, params: ListParams) -> Result<Response, ApiError> {
    let limit = limit(params.limit)?;
    let sales = node.db().read(move |c| sales::list(c, limit)).await?;
    Ok(json(StatusCode::OK, &sales))
}

pub async fn get_sale(node: Node, sale_id: String) -> Result<Response, ApiError> {
    let found = node.db().read(move |c| sales::get(c, &sale_id)).await?;
    let sale = found.ok_or_else(|| ApiError::not_found("no sale with that id"))?;
    Ok(json(StatusCode::OK, &sale))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    operation: Option<String>,
    device_id: Option<u16>,
    /// An entry id (entries after it) or an RFC 3339 time (entries at or after it).
    since: Option<String>,
    limit: Option<usize>,
}

fn audit_query(params: AuditParams) -> Result<AuditQuery, ApiError> {
    let invalid =
        |field: &str, message: String| ApiError::invalid(ValidationError::new(field, message));
    let operation = params
        .operation
        .map(|op| op.parse::<Operation>())
        .transpose()
        .map_err(|e| invalid("operation", e.to_string()))?;
    let device_id = params
        .device_id
        .map(|id| {
            DeviceId::new(id).ok_or_else(|| invalid("device_id", "must be in 1..=65535".into()))
        })
        .transpose()?;
    let (mut after_id, mut since_at) = (None, None);
    if let Some(since) = params.since {
        if let Ok(id) = since.parse::<i64>() {
            after_id = Some(id);
        } else {
            let ms = ms_from_rfc3339(&since).ok_or_else(|| {
                invalid("since", "must be an entry id or an RFC 3339 time".into())
            })?;
            since_at = Some(rfc3339_from_ms(ms));
        }
    }
    Ok(AuditQuery {
        operation,
        device_id,
        after_id,
        since_at,
        limit: limit(params.limit)?,
    })
}

pub async fn audit(node: Node, params: AuditParams) -> Result<Response, ApiError> {
    let query = audit_query(params)?;
    let entries = node.db().read(move |c| audit::query(c, &query)).await?;
    Ok(json(StatusCode::OK, &entries))
}

/// `POST /sync/push`: the REST fallback of the WebSocket `push`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestPush {
    device_id: u16,
    /// The pusher's epoch; without it the node's own is assumed (no fencing).
    #[serde(default)]
    epoch: Option<rms_domain::Epoch>,
    events: Vec<rms_domain::SyncEvent>,
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

pub async fn sync_exchange(node: Node, body: Bytes) -> Result<Response, ApiError> {
    let exchange: Exchange = body::decode(&body)?;
    let from = peer_id(&node, exchange.device_id)?;
    if exchange.messages.len() > crate::link::EXCHANGE_MESSAGES_MAX {
        let message = format!(
            "at most {} messages per exchange",
            crate::link::EXCHANGE_MESSAGES_MAX
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

/// `GET /metrics`: Prometheus text format. The log and audit counts are read from the database
/// (one pass over the log), the rest from the driver's status.
pub async fn metrics(node: Node) -> Result<Response, ApiError> {
    use crate::metrics::family;
    let (log, elections, pending) = node
        .db()
        .read(|c| {
            Ok((
                events::log_counts(c)?,
                rms_storage::audit::election_counts(c)?,
                events::pending_summary(c)?,
            ))
        })
        .await?;
    let status = node.status();
    let now_ms = node.now_ms();
    let mut out = String::new();
    let device = node.config().device_id;
    family(
        &mut out,
        "rms_info",
        "gauge",
        "This device and the rms version.",
        &[(
            format!(
                "device_id=\"{device}\",version=\"{}\"",
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        )],
    );
    let role = status.role.unwrap_or(Role::Client);
    let roles: Vec<(String, f64)> = [Role::Master, Role::Client]
        .iter()
        .map(|r| {
            (
                format!("role=\"{}\"", r.as_str()),
                f64::from(u8::from(*r == role)),
            )
        })
        .collect();
    family(
        &mut out,
        "rms_role",
        "gauge",
        "1 for this device's role.",
        &roles,
    );
    let term = status.epoch.map_or(0, |e| e.term.0) as f64;
    family(
        &mut out,
        "rms_term",
        "gauge",
        "The term of the epoch this device is in.",
        &[(String::new(), term)],
    );
    let connected = status.connected.len() as f64;
    family(
        &mut out,
        "rms_connected_devices",
        "gauge",
        "Devices with an open link to this one.",
        &[(String::new(), connected)],
    );
    let (pending_count, oldest) = pending;
    family(
        &mut out,
        "rms_pending_events",
        "gauge",
        "This device's own events waiting for the master's verdict.",
        &[(String::new(), pending_count as f64)],
    );
    let age = oldest.map_or(0.0, |at| now_ms.saturating_sub(at) as f64 / 1000.0);
    family(
        &mut out,
        "rms_oldest_pending_seconds",
        "gauge",
        "Age of the oldest pending event (0 when none).",
        &[(String::new(), age)],
    );
    family(
        &mut out,
        "rms_log_head",
        "gauge",
        "Entries in this device's copy of the master log.",
        &[(String::new(), status.log_head as f64)],
    );
    let by_verdict: Vec<(String, f64)> = log
        .iter()
        .map(|(status, reason, count)| {
            let verdict = if status == "synced" {
                "accepted"
            } else {
                status.as_str()
            };
            let labels = match reason {
                Some(reason) => format!("verdict=\"{verdict}\",reason=\"{reason}\""),
                None => format!("verdict=\"{verdict}\""),
            };
            (labels, *count as f64)
        })
        .collect();
    family(
        &mut out,
        "rms_log_events",
        "gauge",
        "Master-log entries by verdict and reject reason.",
        &by_verdict,
    );
    let (won, role_changes) = elections;
    family(
        &mut out,
        "rms_elections_won_total",
        "counter",
        "Elections this device won (from its audit log).",
        &[(String::new(), won as f64)],
    );
    family(
        &mut out,
        "rms_role_changes_total",
        "counter",
        "Role changes of this device (from its audit log).",
        &[(String::new(), role_changes as f64)],
    );
    status.metrics.push_latency.render(
        &mut out,
        "rms_push_latency_seconds",
        "A client's push until its acknowledgement.",
    );
    status.metrics.apply.render(
        &mut out,
        "rms_apply_seconds",
        "Deciding or applying one incoming batch, commit included.",
    );
    Ok(warp::reply::with_header(
        out,
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response())
}

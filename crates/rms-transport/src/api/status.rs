//! Status routes: health, the roster, sync status, the status page's snapshot, handover, the
//! audit log and the metrics.

use rms_domain::{DeviceId, Operation, Role, ValidationError, ms_from_rfc3339, rfc3339_from_ms};
use rms_storage::audit::{self, AuditQuery};
use rms_storage::{events, products};
use rms_sync::HandoverError;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use super::body;
use super::error::ApiError;
use crate::node::Node;

use super::{json, limit};

pub async fn health(node: Node) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &health_value(&node)))
}

fn health_value(node: &Node) -> serde_json::Value {
    let status = node.status();
    let disk_full = node.db().disk_full();
    let log = node.log_head();
    let mut log_chain = json!({ "seq": log.chain.seq, "hash": log.chain.hash.to_hex() });
    if let Some(signed) = log.signed {
        log_chain["signed"] = json!(signed);
    }
    if let Some(checked) = log.checked {
        log_chain["checked"] = json!(checked);
    }
    if let Some(differs) = log.differs {
        log_chain["differs"] = json!(differs);
    }
    json!({
        "status": if disk_full { "degraded" } else { "ok" },
        "storage": if disk_full { "full" } else { "ok" },
        "fingerprint": node.identity().fingerprint(),
        "device_id": node.config().device_id,
        "role": status.role.unwrap_or(Role::Client),
        "joining": status.joining,
        "revoked": node.is_revoked(),
        "term": status.epoch.map_or(0, |e| e.term.0),
        "master_id": status.master_id,
        "version": env!("CARGO_PKG_VERSION"),
        "log_chain": log_chain,
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
        "fingerprint": node.identity().fingerprint(),
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
        "connected": status.connected,
        "head_office": node.uplink().map(|u| json!({
            "active": u.active,
            "cursor": u.cursor,
            "lag_entries": u.lag_entries,
            "lag_seconds": u.behind_since_ms.map_or(0.0, |at| now_ms.saturating_sub(at) as f64 / 1000.0),
            "last_contact": u.last_contact_ms.map(rfc3339_from_ms),
            "last_error": u.last_error,
            "catalog_version": u.catalog_version,
            "batches": u.batches,
            "errors": u.errors,
        })),
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

/// `GET /metrics`: the OpenMetrics text format (`api::metrics`). The log and audit counts are read
/// from the database (one pass over the log), the rest from the driver's status.
pub async fn metrics(node: Node) -> Result<Response, ApiError> {
    let (log, (elections_won, role_changes), (pending_events, oldest)) = node
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
    let log_events = log
        .into_iter()
        .map(|(status, reason, count)| super::metrics::LogCount {
            verdict: if status == "synced" {
                "accepted".to_owned()
            } else {
                status
            },
            reason,
            count,
        })
        .collect();
    let scrape = super::metrics::Scrape {
        device_id: node.config().device_id,
        role: status.role.unwrap_or(Role::Client),
        term: status.epoch.map_or(0, |e| e.term.0),
        connected_devices: status.connected.len(),
        pending_events,
        oldest_pending: Duration::from_millis(oldest.map_or(0, |at| now_ms.saturating_sub(at))),
        log_head: status.log_head,
        log_events,
        elections_won,
        role_changes,
        feed_subscribers: node.feed_subscribers(),
        uplink: node.uplink(),
        audit_suppressed: node.driver().audit_gate().suppressed(),
        now_ms,
    };
    let text = super::metrics::render(&scrape, &status.metrics)
        .map_err(|e| ApiError::internal(format!("cannot render the metrics: {e}")))?;
    Ok(
        warp::reply::with_header(text, "content-type", super::metrics::CONTENT_TYPE)
            .into_response(),
    )
}

//! The store's devices by certificate (issue #14): the trust list, the devices waiting for
//! approval, and the owner's two acts on them, approve and revoke. Both are local writes of a
//! `device_trust` event, so they replicate through the master log like a sale; both are
//! answered only to a request from this machine (the loopback API), as Syncthing keeps device
//! management to its GUI.

use rms_domain::{DeviceId, Fingerprint, TrustState, ValidationError, rfc3339_from_ms};
use rms_storage::local::Command;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::Response;

use super::body;
use super::error::ApiError;
use crate::node::Node;

use super::json;

/// The peer address of a request (set by the API's accept loop).
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// `GET /devices/trust`: trusted and revoked certificates, and those waiting.
pub async fn list(node: Node) -> Result<Response, ApiError> {
    let book = node.trust();
    let list = book.list();
    let pending = node
        .db()
        .read(rms_storage::trust::pending)
        .await?
        .into_iter()
        .filter(|p| list.get(&p.fingerprint).is_none())
        .map(|p| {
            json!({
                "fingerprint": p.fingerprint,
                "short": p.fingerprint.short(),
                "device_id": p.device_id,
                "name": p.name,
                "address": p.address,
                "first_seen": rfc3339_from_ms(p.first_seen_ms),
                "last_seen": rfc3339_from_ms(p.last_seen_ms),
                "attempts": p.attempts,
            })
        })
        .collect::<Vec<_>>();
    let devices = list
        .entries()
        .map(|e| {
            json!({
                "fingerprint": e.fingerprint,
                "short": e.fingerprint.short(),
                "device_id": e.device_id,
                "name": e.name,
                "state": e.state.as_str(),
                "added_by": e.added_by,
                "how": e.how,
                "at": rfc3339_from_ms(e.at_ms),
            })
        })
        .collect::<Vec<_>>();
    let keyless = book.store_key().is_none();
    let closes_at = book.window_closes_at_ms();
    let me = book.me();
    Ok(json(
        StatusCode::OK,
        &json!({
            "me": { "fingerprint": me, "short": me.short(), "device_id": book.device() },
            "store_key_window": {
                "open": book.window_key(node.now_ms()).is_some(),
                // None for a store without a key, or a window never opened.
                "closes_at": (!keyless && closes_at > 0).then(|| rfc3339_from_ms(closes_at)),
            },
            "devices": devices,
            "pending": pending,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    fingerprint: String,
    /// Needed when the device is not waiting (the owner read its ID off its screen).
    #[serde(default)]
    device_id: Option<u16>,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /devices/approve`: trusts a certificate for a device id.
pub async fn approve(
    node: Node,
    remote: Option<RemoteAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    local_only(remote)?;
    let approve: Approve = body::decode(&body)?;
    let fingerprint: Fingerprint = approve
        .fingerprint
        .parse()
        .map_err(|e| ApiError::invalid(ValidationError::new("fingerprint", format!("{e}"))))?;
    let waiting = node
        .db()
        .read(move |c| rms_storage::trust::pending_one(c, &fingerprint))
        .await?;
    let device = match (approve.device_id, &waiting) {
        (Some(id), _) => DeviceId::new(id),
        (None, Some(waiting)) => Some(waiting.device_id),
        (None, None) => None,
    }
    .ok_or_else(|| {
        ApiError::invalid(ValidationError::new(
            "device_id",
            "is required (1..=65535) for a device that is not waiting for approval",
        ))
    })?;
    let name = approve
        .name
        .or_else(|| waiting.map(|w| w.name))
        .unwrap_or_else(|| format!("device-{device}"));
    let done = node
        .local_write(Command::Trust {
            fingerprint,
            device_id: device,
            name,
            state: TrustState::Trusted,
            how: "approved".into(),
        })
        .await?;
    Ok(json(StatusCode::OK, &answer(&done.recorded.event)))
}

/// `POST /devices/{id}/revoke`: revokes the certificate device `id` is trusted with, for good.
pub async fn revoke(node: Node, remote: Option<RemoteAddr>, id: u16) -> Result<Response, ApiError> {
    local_only(remote)?;
    let device = DeviceId::new(id)
        .ok_or_else(|| ApiError::invalid(ValidationError::new("id", "must be in 1..=65535")))?;
    if device == node.config().device_id {
        return Err(ApiError::invalid(ValidationError::new(
            "id",
            "is this device: revoke it from another device",
        )));
    }
    let entry = node
        .trust()
        .trusted_for(device)
        .and_then(|f| node.trust().entry(&f))
        .ok_or_else(|| ApiError::not_found(format!("no trusted certificate for device {id}")))?;
    let done = node
        .local_write(Command::Trust {
            fingerprint: entry.fingerprint,
            device_id: device,
            name: entry.name,
            state: TrustState::Revoked,
            how: "revoked".into(),
        })
        .await?;
    Ok(json(StatusCode::OK, &answer(&done.recorded.event)))
}

fn answer(event: &rms_domain::SyncEvent) -> serde_json::Value {
    let rms_domain::EventPayload::DeviceTrust {
        fingerprint,
        device_id,
        name,
        trust,
        ..
    } = &event.payload
    else {
        return json!({ "event_id": event.event_id.to_string() });
    };
    json!({
        "fingerprint": fingerprint,
        "device_id": device_id,
        "name": name,
        "state": trust.as_str(),
        "event_id": event.event_id.to_string(),
        "status": event.status.as_str(),
    })
}

/// Device management answers only the apps of this machine.
fn local_only(remote: Option<RemoteAddr>) -> Result<(), ApiError> {
    match remote {
        Some(RemoteAddr(address)) if address.ip().is_loopback() => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "loopback_only",
            "devices are approved and revoked from the device itself (127.0.0.1)",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenPairing {
    /// How long the window stays open [default: 600].
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

/// `POST /pairing`: opens this device's pairing window; answers the one-time code.
pub async fn open_pairing(
    node: Node,
    remote: Option<RemoteAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    local_only(remote)?;
    let open: OpenPairing = if body.is_empty() {
        OpenPairing { ttl_seconds: None }
    } else {
        body::decode(&body)?
    };
    let max_s = rms_security::pairing::TTL_MAX_MS / 1000;
    let ttl_ms = match open.ttl_seconds {
        None => rms_security::pairing::TTL_DEFAULT_MS,
        Some(s) if (1..=max_s).contains(&s) => s * 1000,
        Some(_) => {
            let message = format!("must be 1 to {max_s}");
            return Err(ApiError::invalid(ValidationError::new(
                "ttl_seconds",
                message,
            )));
        }
    };
    let now_ms = node.now_ms();
    let code = node
        .pairing()
        .open(now_ms, ttl_ms)
        .ok_or_else(|| ApiError::internal("the system's random source failed"))?;
    log::info!("pairing window open for {} s", ttl_ms / 1000);
    Ok(json(
        StatusCode::OK,
        &json!({
            "code": code,
            "expires_at": rfc3339_from_ms(now_ms + ttl_ms),
            "sponsor": { "device_id": node.config().device_id, "fingerprint": node.trust().me() },
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    code: String,
    /// The sponsor's store port, e.g. `https://10.0.0.11:7879`.
    peer: String,
}

/// `POST /pairing/join`: this (new) device joins the sponsor's store with its code.
pub async fn join(
    node: Node,
    remote: Option<RemoteAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    use crate::net::join::JoinError;
    local_only(remote)?;
    let join: Join = body::decode(&body)?;
    match node.join(&join.code, &join.peer).await {
        Ok(joined) => Ok(json(StatusCode::OK, &json!({ "sponsor": joined }))),
        Err(JoinError::BadCode { .. }) => Err(ApiError::invalid(ValidationError::new(
            "code",
            format!(
                "is {} letters and digits (dashes optional)",
                rms_security::pairing::CODE_CHARS
            ),
        ))),
        Err(err @ JoinError::Dial(crate::net::dial::DialError::BadAddress { .. })) => Err(
            ApiError::invalid(ValidationError::new("peer", err.to_string())),
        ),
        Err(JoinError::Node(err)) => Err(err.into()),
        Err(err @ JoinError::StoreOfItsOwn) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "store_of_its_own",
            err.to_string(),
        )),
        Err(
            err @ (JoinError::CodeRefused | JoinError::Refused { .. } | JoinError::NotTheSponsor),
        ) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "pairing_refused",
            err.to_string(),
        )),
        Err(err @ JoinError::Dial(_)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "sponsor_unreachable",
            err.to_string(),
        )),
    }
}

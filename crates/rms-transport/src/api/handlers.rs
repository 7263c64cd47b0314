//! The REST handlers: decode, validate, run one repository call off the runtime, answer.

use rms_domain::{
    DeviceId, NewProduct, NewSale, Operation, ProductPatch, Role, StockAdjustment, ValidationError,
    ms_from_rfc3339, rfc3339_from_ms,
};
use rms_storage::audit::{self, AuditQuery};
use rms_storage::local::{self, Command};
use rms_storage::{devices, events, node_state, products, sales};
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::body;
use crate::error::ApiError;
use crate::node::Node;

/// Default and largest page of `GET /sales` and `GET /audit`.
const LIST_LIMIT_DEFAULT: usize = 100;
const LIST_LIMIT_MAX: usize = 1000;

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

pub async fn health(node: Node) -> Result<Response, ApiError> {
    let state = node.db().read(node_state::load).await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "device_id": state.device_id,
            "role": node.role(),
            "term": state.term(),
            "master_id": state.master_id(),
            "version": env!("CARGO_PKG_VERSION"),
        }),
    ))
}

pub async fn cluster(node: Node) -> Result<Response, ApiError> {
    let (state, mut roster) = node
        .db()
        .read(|c| Ok((node_state::load(c)?, devices::list(c)?)))
        .await?;
    let me = node.device();
    for device in &mut roster {
        if device.device_id == me.device_id {
            *device = me.clone();
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({ "term": state.term(), "master_id": state.master_id(), "devices": roster }),
    ))
}

pub async fn sync_status(node: Node) -> Result<Response, ApiError> {
    let ((pending, oldest_ms), state) = node
        .db()
        .read(|c| Ok((events::pending_summary(c)?, node_state::load(c)?)))
        .await?;
    let now_ms = node.now_ms();
    Ok(json(
        StatusCode::OK,
        &json!({
            "pending": pending,
            "oldest_pending_ms": oldest_ms.map(|at| now_ms.saturating_sub(at)),
            "cursor": state.log_head,
            "last_sync_at": null,
            "connected_devices": 0,
        }),
    ))
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
    let (role, now_ms) = (node.role(), node.now_ms());
    let recorded = node
        .db()
        .write(move |tx| local::record(tx, role, now_ms, command))
        .await?;
    let product = recorded
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

pub async fn create_sale(node: Node, body: Bytes) -> Result<Response, ApiError> {
    let sale: NewSale = body::decode(&body)?;
    sale.validate().map_err(ApiError::invalid)?;
    let (role, now_ms) = (node.role(), node.now_ms());
    let recorded = node
        .db()
        .write(move |tx| local::record(tx, role, now_ms, Command::Sell(sale)))
        .await?;
    let sale = recorded
        .sale
        .ok_or_else(|| ApiError::internal("the sale was not recorded"))?;
    let status = if role == Role::Master {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Ok(json(status, &sale))
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
        .map_err(|e| invalid("operation", e))?;
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

//! Sales routes: a sale (decided at once on the master; on a client pending, or decided by the
//! master within `VERDICT_WAIT` when critical), and reading sales.

use rms_domain::{EventStatus, NewSale, Role, SaleStatus};
use rms_storage::local::Command;
use rms_storage::sales;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::Response;

use super::body;
use super::error::ApiError;
use crate::node::{Node, VERDICT_WAIT};

use super::{json, limit};

/// A sale: on the master decided at once (201, or 409 and nothing written). On a client committed
/// locally first; a critical one waits up to [`VERDICT_WAIT`] for the master (201 or 409 with the
/// sale and its reason), anything else answers 202 `pending`.
pub async fn create_sale(node: Node, body: Bytes) -> Result<Response, ApiError> {
    let sale: NewSale = body::decode(&body)?;
    sale.validate().map_err(ApiError::invalid)?;
    let done = node.till_write(Command::Sell(sale)).await?;
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

//! Catalogue routes: products, their edits and stock adjustments (local writes through the
//! driver).

use rms_domain::{NewProduct, ProductPatch, StockAdjustment};
use rms_storage::local::Command;
use rms_storage::products;

use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::Response;

use super::body;
use super::error::ApiError;
use crate::node::Node;

use super::json;

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
    let done = node.till_write(command).await?;
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

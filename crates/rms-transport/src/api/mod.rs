//! The REST API under `/api/v1` (SPEC §7). Each route is a function returning a filter; state
//! enters through `with_node`; bodies sit behind the 1 MiB limit; handlers answer business
//! errors as [`ApiError`] replies and `recover` turns routing rejections into the same shape.

mod auth;
mod body;
mod catalogue;
pub mod changes;
mod devices;
mod error;
mod metrics;
mod sales;
mod server;
mod slots;
mod status;
mod store_port;
mod sync;

pub use body::{BODY_BYTES_MAX, BODY_READ_TIMEOUT};
pub(crate) use devices::RemoteAddr;
pub use error::ApiError;
pub use server::{bind, serve};
pub use slots::{UNPROVEN_MAX, UNPROVEN_PER_SOURCE_MAX};
pub(crate) use status::status_snapshot;
pub use store_port::serve_store;
pub use sync::{EXCHANGE_ANSWER_BYTES_MAX, EXCHANGES_IN_FLIGHT_PER_DEVICE};

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::node::Node;

/// The device a request was admitted for (a request extension, for the routes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admitted(pub rms_domain::DeviceId);

/// Every route of the node, with the JSON error shape for anything that does not match.
pub fn routes(node: Node) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let v1 = warp::path("api").and(warp::path("v1"));
    let status = health(&node)
        .or(cluster(&node))
        .unify()
        .or(handover(&node))
        .unify()
        .or(sync_status(&node))
        .unify()
        .or(sync_push(&node))
        .unify()
        .or(sync_pull(&node))
        .unify()
        .or(sync_exchange(&node))
        .unify()
        .or(trust_list(&node))
        .unify()
        .or(approve_device(&node))
        .unify()
        .or(revoke_device(&node))
        .unify()
        .or(open_pairing(&node))
        .unify()
        .or(join_store(&node))
        .unify()
        .or(changes::feed(&node))
        .unify();
    let products = list_products(&node)
        .or(create_product(&node))
        .unify()
        .or(get_product(&node))
        .unify()
        .or(patch_product(&node))
        .unify()
        .or(adjust_stock(&node))
        .unify();
    let sales = create_sale(&node)
        .or(list_sales(&node))
        .unify()
        .or(get_sale(&node))
        .unify();
    let api = v1.and(authorized(&node)).and(
        status
            .or(products)
            .unify()
            .or(sales)
            .unify()
            .or(audit(&node))
            .unify(),
    );
    api.or(metrics(&node))
        .unify()
        .or(status_page())
        .unify()
        .or(changes::till_page())
        .unify()
        .boxed()
        .recover(recover)
        .unify()
}

/// The status page, embedded in the binary (no CDN: it works with no internet).
const STATUS_PAGE: &str = include_str!("../../assets/status.html");

/// `GET /`: the status page. The page itself holds no data; it asks for the store key (when the
/// node has one) and shows what the live feed, `/api/v1/status/ws`, sends.
fn status_page() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::end().and(warp::get()).map(|| {
        warp::reply::with_header(STATUS_PAGE, "content-type", "text/html; charset=utf-8")
            .into_response()
    })
}

/// `GET /metrics` (outside `/api/v1`, where scrapers look), behind the store key like the rest.
fn metrics(node: &Node) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("metrics")
        .and(warp::get())
        .and(authorized(node))
        .and(with_node(node))
        .and_then(|node| answer(status::metrics(node)))
}

fn with_node(node: &Node) -> impl Filter<Extract = (Node,), Error = Infallible> + Clone + use<> {
    let node = node.clone();
    warp::any().map(move || node.clone())
}

/// A request without the store key, when the node has one.
#[derive(Debug)]
struct Unauthorized;

impl warp::reject::Reject for Unauthorized {}

/// Passes requests that carry `Authorization: Bearer <store key>`, or all of them when the node
/// has no key.
fn authorized(node: &Node) -> impl Filter<Extract = (), Error = Rejection> + Clone + use<> {
    let node = node.clone();
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let passes = auth::key_matches(&node, header.as_deref());
            async move {
                if passes {
                    Ok(())
                } else {
                    Err(warp::reject::custom(Unauthorized))
                }
            }
        })
        .untuple_one()
}

/// Awaits a handler and turns its error into a reply: business errors are never rejections.
async fn answer(
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, Rejection> {
    Ok(handler.await.unwrap_or_else(Reply::into_response))
}

fn health(node: &Node) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("health")
        .and(warp::get())
        .and(with_node(node))
        .and_then(|node| answer(status::health(node)))
}

fn cluster(node: &Node) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("cluster")
        .and(warp::get())
        .and(with_node(node))
        .and_then(|node| answer(status::cluster(node)))
}

type Route = (Response,);

fn handover(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    warp::path!("cluster" / "handover")
        .and(warp::post())
        .and(with_node(node))
        .and(body::limited())
        .and_then(|node, body| answer(status::handover(node, body)))
}

fn sync_push(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    warp::path!("sync" / "push")
        .and(warp::post())
        .and(with_node(node))
        .and(body::limited())
        .and_then(|node, body| answer(sync::sync_push(node, body)))
}

fn sync_pull(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    warp::path!("sync" / "pull")
        .and(warp::get())
        .and(with_node(node))
        .and(warp::query::<sync::PullParams>())
        .and_then(|node, params| answer(sync::sync_pull(node, params)))
}

fn sync_exchange(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    let in_flight = Arc::new(sync::InFlight::default());
    warp::path!("sync" / "exchange")
        .and(warp::post())
        .and(with_node(node))
        .and(body::limited())
        .and_then(move |node, body| {
            answer(sync::sync_exchange(
                node,
                body,
                None,
                Arc::clone(&in_flight),
            ))
        })
}

/// The routes of the store port besides the link upgrade: the REST sync fallback, for a device
/// the store port admitted (`store_port::Admitted`, set on the request before it gets here).
pub(crate) fn store_routes(node: Node) -> warp::filters::BoxedFilter<(Response,)> {
    let in_flight = Arc::new(sync::InFlight::default());
    warp::path!("api" / "v1" / "sync" / "exchange")
        .and(warp::post())
        .and(with_node(&node))
        .and(warp::ext::get::<Admitted>())
        .and(body::limited())
        .and_then(move |node, admitted: Admitted, body| {
            let in_flight = Arc::clone(&in_flight);
            answer(sync::sync_exchange(node, body, Some(admitted.0), in_flight))
        })
        .recover(recover)
        .unify()
        .boxed()
}

fn trust_list(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    warp::path!("devices" / "trust")
        .and(warp::get())
        .and(with_node(node))
        .and_then(|node| answer(devices::list(node)))
}

fn approve_device(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    warp::path!("devices" / "approve")
        .and(warp::post())
        .and(with_node(node))
        .and(warp::ext::optional::<RemoteAddr>())
        .and(body::limited())
        .and_then(|node, remote, body| answer(devices::approve(node, remote, body)))
}

fn revoke_device(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    warp::path!("devices" / u16 / "revoke")
        .and(warp::post())
        .and(with_node(node))
        .and(warp::ext::optional::<RemoteAddr>())
        .and_then(|id, node, remote| answer(devices::revoke(node, remote, id)))
}

fn open_pairing(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    warp::path!("pairing")
        .and(warp::post())
        .and(with_node(node))
        .and(warp::ext::optional::<RemoteAddr>())
        .and(body::limited())
        .and_then(|node, remote, body| answer(devices::open_pairing(node, remote, body)))
}

fn join_store(node: &Node) -> impl Filter<Extract = Route, Error = Rejection> + Clone + use<> {
    warp::path!("pairing" / "join")
        .and(warp::post())
        .and(with_node(node))
        .and(warp::ext::optional::<RemoteAddr>())
        .and(body::limited())
        .and_then(|node, remote, body| answer(devices::join(node, remote, body)))
}

fn sync_status(
    node: &Node,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("sync" / "status")
        .and(warp::get())
        .and(with_node(node))
        .and_then(|node| answer(status::sync_status(node)))
}

fn list_products(
    node: &Node,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("products")
        .and(warp::get())
        .and(with_node(node))
        .and_then(|node| answer(catalogue::list_products(node)))
}

fn create_product(
    node: &Node,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("products")
        .and(warp::post())
        .and(with_node(node))
        .and(body::limited())
        .and_then(|node, body| answer(catalogue::create_product(node, body)))
}

fn get_product(
    node: &Node,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("products" / String)
        .and(warp::get())
        .and(with_node(node))
        .and_then(|sku, node| answer(catalogue::get_product(node, sku)))
}

fn patch_product(
    node: &Node,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("products" / String)
        .and(warp::patch())
        .and(with_node(node))
        .and(body::limited())
        .and_then(|sku, node, body| answer(catalogue::patch_product(node, sku, body)))
}

fn adjust_stock(
    node: &Node,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("products" / String / "stock")
        .and(warp::post())
        .and(with_node(node))
        .and(body::limited())
        .and_then(|sku, node, body| answer(catalogue::adjust_stock(node, sku, body)))
}

fn create_sale(
    node: &Node,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("sales")
        .and(warp::post())
        .and(with_node(node))
        .and(body::limited())
        .and_then(|node, body| answer(sales::create_sale(node, body)))
}

fn list_sales(
    node: &Node,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("sales")
        .and(warp::get())
        .and(with_node(node))
        .and(warp::query::<sales::ListParams>())
        .and_then(|node, params| answer(sales::list_sales(node, params)))
}

fn get_sale(node: &Node) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("sales" / String)
        .and(warp::get())
        .and(with_node(node))
        .and_then(|sale_id, node| answer(sales::get_sale(node, sale_id)))
}

fn audit(node: &Node) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("audit")
        .and(warp::get())
        .and(with_node(node))
        .and(warp::query::<status::AuditParams>())
        .and_then(|node, params| answer(status::audit(node, params)))
}

/// Turns what no route answered into the JSON error shape.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.find::<Unauthorized>().is_some() {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <store key>",
        )
    } else if rejection.is_not_found() {
        ApiError::not_found("no such route")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} bytes", body::BODY_BYTES_MAX),
        )
    } else if rejection.find::<body::BodyTimedOut>().is_some() {
        let message = format!(
            "the body did not arrive within {:?} of the headers",
            body::BODY_READ_TIMEOUT
        );
        let mut response =
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", message).into_response();
        // The connection's reads are half-done: it is closed, not reused.
        response.headers_mut().insert(
            warp::http::header::CONNECTION,
            warp::http::HeaderValue::from_static("close"),
        );
        return Ok(response);
    } else if rejection.find::<body::BodyFailed>().is_some() {
        ApiError::bad_request("bad_body", "the body could not be read whole")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header",
        )
    } else if let Some(err) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(
            "bad_query",
            format!("the query string does not fit this route: {err}"),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    } else {
        log::error!("unhandled rejection: {rejection:?}");
        ApiError::internal("the request could not be handled")
    };
    Ok(error.into_response())
}

// ----- helpers the handlers share -----

/// Default and largest page of `GET /sales` and `GET /audit`.
pub(super) const LIST_LIMIT_DEFAULT: usize = 100;
pub(super) const LIST_LIMIT_MAX: usize = 1000;

pub(super) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

pub(super) fn limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        let err = rms_domain::ValidationError::new(
            "limit",
            format!("must be between 1 and {LIST_LIMIT_MAX}"),
        );
        return Err(ApiError::invalid(err));
    }
    Ok(limit)
}

//! The head-office API under `/hq/v1`, and the status page at `/hq/`.
//!
//! - Store routes ask for the store's token (`Authorization: Bearer <token>`): `GET
//!   /hq/v1/uplink/cursor`, `POST /hq/v1/uplink/batch`, `GET /hq/v1/catalog/changes`.
//! - People's routes ask for the admin token: `GET /hq/v1/stores`, `GET /hq/v1/catalog`, `PUT
//!   /hq/v1/catalog/{sku}`.
//! - `GET /hq/v1/health` and the status page (which asks for the admin token itself) are open.
//!
//! Every refusal is logged (`warn`) with the address it came from. Limits: [`CONNECTIONS_MAX`],
//! a body of at most [`rms_domain::hq::UPLINK_BYTES_MAX`], headers within
//! [`HEADER_READ_TIMEOUT`], a long poll of at most [`rms_domain::hq::CATALOG_WAIT_MS_MAX`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rms_domain::hq::{
    CATALOG_CHANGES_MAX, CATALOG_WAIT_MS_MAX, CatalogEntry, IngestBatch, UPLINK_BYTES_MAX,
};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::db::Db;
use crate::error::HqError;
use crate::{catalog, ingest, stores};

/// Connections served at once; more wait in the listen backlog.
pub const CONNECTIONS_MAX: usize = 1024;
/// Headers must arrive within this (also an idle keep-alive connection's next request).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a long poll looks at the catalogue when no change was made through this replica
/// (another replica's change is seen within this).
const CATALOG_POLL: Duration = Duration::from_millis(200);
/// The shortest admin token accepted.
pub const ADMIN_TOKEN_CHARS_MIN: usize = 16;

type Answer = Response<Full<Bytes>>;

/// What every request can reach: the database, the admin token's hash, and the signal that
/// wakes long polls when this replica changed the catalogue.
#[derive(Clone)]
pub struct Hq {
    db: Db,
    admin_token_sha256: Arc<Vec<u8>>,
    catalog_changed: Arc<Notify>,
}

impl std::fmt::Debug for Hq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hq").finish_non_exhaustive()
    }
}

impl Hq {
    /// Head office over `db`; `admin_token` guards the people's routes (at least
    /// [`ADMIN_TOKEN_CHARS_MIN`] characters).
    pub fn new(db: Db, admin_token: &str) -> Result<Hq, HqError> {
        if admin_token.chars().count() < ADMIN_TOKEN_CHARS_MIN {
            return Err(rms_domain::ValidationError::new(
                "admin_token",
                "must have at least 16 characters",
            )
            .into());
        }
        Ok(Hq {
            db,
            admin_token_sha256: Arc::new(stores::token_hash(admin_token)),
            catalog_changed: Arc::new(Notify::new()),
        })
    }
}

/// Serves head office on `listener` (TLS when `tls` is given) until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    hq: Hq,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    // HTTP/1.1 only: its header timeout runs from the connection's first byte, so a client that
    // connects and says nothing cannot hold a connection slot.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, address) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    log::warn!("cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (hq, builder, tls) = (hq.clone(), builder.clone(), tls.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let hq = hq.clone();
                async move { Ok::<_, Infallible>(handle(&hq, address, request).await) }
            });
            let served = match tls {
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Ok(Err(err)) => {
                            log::warn!("a TLS handshake from {address} failed: {err}");
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(err) = served {
                log::debug!("a connection from {address} ended: {err}");
            }
            drop(permit);
        });
    }
}

fn json_answer(status: StatusCode, body: &impl Serialize) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut answer = Response::new(Full::new(Bytes::from(bytes)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    answer
}

fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    json_answer(status, &json!({ "error": code, "message": message }))
}

/// A refusal, logged with where it came from.
fn refuse(address: SocketAddr, status: StatusCode, code: &str, message: &str) -> Answer {
    log::warn!("refused a request from {address}: {code}: {message}");
    error(status, code, message)
}

fn bearer(request: &Request<Incoming>) -> Option<&str> {
    request
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// A query parameter that should be a whole number and is not: the `400 bad_query` answer.
#[derive(Debug, thiserror::Error)]
#[error("{name} must be a whole number")]
struct NotAWholeNumber {
    name: &'static str,
    #[source]
    source: std::num::ParseIntError,
}

/// The query parameter `name` as a whole number; `None` when the query does not give it.
fn query_u64(
    request: &Request<Incoming>,
    name: &'static str,
) -> Result<Option<u64>, NotAWholeNumber> {
    let Some(query) = request.uri().query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            return value
                .parse()
                .map(Some)
                .map_err(|source| NotAWholeNumber { name, source });
        }
    }
    Ok(None)
}

fn failed(address: SocketAddr, err: &HqError) -> Answer {
    match err {
        HqError::Invalid(invalid) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            &invalid.to_string(),
        ),
        HqError::Malformed(why) => refuse(
            address,
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed",
            &why.to_string(),
        ),
        HqError::CursorMoved(cursor) => json_answer(
            StatusCode::CONFLICT,
            &json!({"error": "cursor_moved", "message": err.to_string(), "cursor": cursor}),
        ),
        HqError::StaleEpoch(cursor) => {
            log::warn!("refused a batch from {address}: {err}");
            json_answer(
                StatusCode::CONFLICT,
                &json!({"error": "stale_epoch", "message": err.to_string(), "cursor": cursor}),
            )
        }
        HqError::EpochOutOfRange(refused) => {
            log::warn!("refused a batch from {address}: {err}");
            json_answer(
                StatusCode::CONFLICT,
                &json!({"error": "epoch_out_of_range", "message": err.to_string(),
                        "term_max": refused.term_max}),
            )
        }
        HqError::NotFound(what) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no such {what}"),
        ),
        other => {
            log::error!("a request from {address} failed: {other}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "head office's database is unavailable; try again",
            )
        }
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Answer> {
    match Limited::new(request.into_body(), UPLINK_BYTES_MAX)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the body is larger than head office takes",
        )),
    }
}

/// Which caller a request is, by its token.
enum Caller {
    Store(i64),
    Admin,
}

async fn caller(hq: &Hq, request: &Request<Incoming>) -> Result<Option<Caller>, HqError> {
    let Some(token) = bearer(request) else {
        return Ok(None);
    };
    if stores::token_hash(token) == *hq.admin_token_sha256 {
        return Ok(Some(Caller::Admin));
    }
    Ok(stores::authenticate(&hq.db, token)
        .await?
        .map(Caller::Store))
}

async fn handle(hq: &Hq, address: SocketAddr, request: Request<Incoming>) -> Answer {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/hq/" | "/hq") => return crate::status_page::page(),
        (&Method::GET, "/hq/v1/health") => {
            return match hq.db.client().await {
                Ok(client) => match client.query_one("SELECT 1", &[]).await {
                    Ok(_) => json_answer(StatusCode::OK, &json!({"status": "ok"})),
                    Err(err) => failed(address, &err.into()),
                },
                Err(err) => failed(address, &err),
            };
        }
        _ => {}
    }
    if !path.starts_with("/hq/v1/") {
        return error(StatusCode::NOT_FOUND, "not_found", "no such route");
    }
    let who = match caller(hq, &request).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            let message = "a valid store or admin token is required (Authorization: Bearer)";
            return refuse(address, StatusCode::UNAUTHORIZED, "unauthorized", message);
        }
        Err(err) => return failed(address, &err),
    };
    let result = match who {
        Caller::Store(store_id) => store_route(hq, address, store_id, request).await,
        Caller::Admin => admin_route(hq, address, request).await,
    };
    result.unwrap_or_else(|answer| answer)
}

fn not_for(address: SocketAddr, whom: &str) -> Answer {
    let message = format!("this route is not for {whom}");
    refuse(address, StatusCode::FORBIDDEN, "forbidden", &message)
}

async fn store_route(
    hq: &Hq,
    address: SocketAddr,
    store_id: i64,
    request: Request<Incoming>,
) -> Result<Answer, Answer> {
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/hq/v1/uplink/cursor") => {
            let cursor = ingest::cursor(&hq.db, store_id).await;
            Ok(cursor.map_or_else(|e| failed(address, &e), |c| json_answer(StatusCode::OK, &c)))
        }
        (Method::POST, "/hq/v1/uplink/batch") => {
            let body = read_body(request).await?;
            let batch: IngestBatch<Box<serde_json::value::RawValue>> =
                serde_json::from_slice(&body).map_err(|e| {
                    refuse(address, StatusCode::BAD_REQUEST, "bad_json", &e.to_string())
                })?;
            let answer = ingest::ingest(&hq.db, store_id, &batch).await;
            Ok(answer.map_or_else(|e| failed(address, &e), |a| json_answer(StatusCode::OK, &a)))
        }
        (Method::GET, "/hq/v1/catalog/changes") => {
            let bad =
                |e: NotAWholeNumber| error(StatusCode::BAD_REQUEST, "bad_query", &e.to_string());
            let since = query_u64(&request, "since").map_err(bad)?.unwrap_or(0);
            let wait_ms = query_u64(&request, "wait_ms").map_err(bad)?.unwrap_or(0);
            if wait_ms > CATALOG_WAIT_MS_MAX {
                let message = format!("wait_ms is at most {CATALOG_WAIT_MS_MAX}");
                return Err(error(StatusCode::BAD_REQUEST, "bad_query", &message));
            }
            Ok(long_poll(hq, address, since, Duration::from_millis(wait_ms)).await)
        }
        _ => Err(not_for(address, "a store")),
    }
}

/// The catalogue changes after `since`; waits up to `wait` for one if there is none yet.
async fn long_poll(hq: &Hq, address: SocketAddr, since: u64, wait: Duration) -> Answer {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let changed = hq.catalog_changed.notified();
        match catalog::changes(&hq.db, since, CATALOG_CHANGES_MAX).await {
            Ok(changes)
                if !changes.changes.is_empty() || tokio::time::Instant::now() >= deadline =>
            {
                return json_answer(StatusCode::OK, &changes);
            }
            Ok(_) => {}
            Err(err) => return failed(address, &err),
        }
        let next = (tokio::time::Instant::now() + CATALOG_POLL).min(deadline);
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

async fn admin_route(
    hq: &Hq,
    address: SocketAddr,
    request: Request<Incoming>,
) -> Result<Answer, Answer> {
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/hq/v1/stores") => {
            let list = stores::list(&hq.db).await;
            Ok(list.map_or_else(|e| failed(address, &e), |l| json_answer(StatusCode::OK, &l)))
        }
        (Method::GET, "/hq/v1/catalog") => {
            let all = catalog::changes(&hq.db, 0, usize::MAX).await;
            Ok(all.map_or_else(|e| failed(address, &e), |c| json_answer(StatusCode::OK, &c)))
        }
        (Method::PUT, sku_path) if sku_path.starts_with("/hq/v1/catalog/") => {
            let sku = sku_path.trim_start_matches("/hq/v1/catalog/").to_owned();
            let body = read_body(request).await?;
            let entry: CatalogEntry = serde_json::from_slice(&body)
                .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_json", &e.to_string()))?;
            match catalog::put(&hq.db, &sku, &entry).await {
                Ok(change) => {
                    hq.catalog_changed.notify_waiters();
                    Ok(json_answer(StatusCode::OK, &change))
                }
                Err(err) => Ok(failed(address, &err)),
            }
        }
        _ => Err(not_for(address, "people (use a store's token)")),
    }
}

//! `GET /api/v1/changes`: the change feed ([`crate::tasks::changes`]) as Server-Sent Events, and `GET
//! /till`, the reference till page that reads it.
//!
//! Limits: [`FEEDS_MAX`] feeds open at once (`503 too_many_feeds` beyond), a heartbeat comment
//! every [`HEARTBEAT`] so that proxies keep an idle feed open.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use crate::node::Node;
use crate::tasks::changes::{Change, ChangeEvent, ChangeId};

/// Feeds open at once.
pub const FEEDS_MAX: usize = 1024;
/// A comment line this often on an idle feed.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The reference till page, embedded (no external assets).
const TILL_PAGE: &str = include_str!("../../assets/till.html");

/// `GET /till`.
pub fn till_page() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("till").and(warp::get()).map(|| {
        warp::reply::with_header(TILL_PAGE, "content-type", "text/html; charset=utf-8")
            .into_response()
    })
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    since: Option<String>,
}

/// `GET /api/v1/changes[?since=ID]` (or `Last-Event-ID: ID`).
pub fn feed(node: &Node) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let node = node.clone();
    let permits = Arc::new(Semaphore::new(FEEDS_MAX));
    warp::path!("changes")
        .and(warp::get())
        .and(
            warp::query::<FeedQuery>()
                .or(warp::any().map(|| FeedQuery { since: None }))
                .unify(),
        )
        .and(warp::header::optional::<String>("last-event-id"))
        .map(move |query: FeedQuery, last: Option<String>| {
            open(&node, &permits, query.since.or(last)).unwrap_or_else(Reply::into_response)
        })
}

fn open(
    node: &Node,
    permits: &Arc<Semaphore>,
    since: Option<String>,
) -> Result<Response, ApiError> {
    let since =
        match since.filter(|s| !s.is_empty()) {
            Some(text) => Some(text.parse::<ChangeId>().map_err(|err| {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_since", err.to_string())
            })?),
            None => None,
        };
    let stream = node.changes(since).map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_since",
            err.to_string(),
        )
    })?;
    let permit = Arc::clone(permits).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_feeds",
            format!("at most {FEEDS_MAX} change feeds are open at once"),
        )
    })?;
    let events =
        futures_util::stream::unfold((stream, permit), |(mut stream, permit)| async move {
            let event = stream.next().await?;
            Some((
                Ok::<_, std::convert::Infallible>(sse_event(&event)),
                (stream, permit),
            ))
        });
    let reply = warp::sse::reply(warp::sse::keep_alive().interval(HEARTBEAT).stream(events));
    Ok(warp::reply::with_header(reply, "cache-control", "no-store").into_response())
}

fn sse_event(event: &ChangeEvent) -> warp::sse::Event {
    let mut sse = warp::sse::Event::default().event(event.change.kind());
    if let Some(id) = event.id {
        sse = sse.id(id.to_string());
    }
    let data = serde_json::to_string(&event.change).unwrap_or_else(|_| "{}".to_owned());
    match &event.change {
        Change::Reset { .. } => sse.data(data).retry(Duration::from_millis(500)),
        _ => sse.data(data),
    }
}

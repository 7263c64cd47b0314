//! The store key: the one check every route and upgrade makes (`Authorization: Bearer <key>`),
//! and the one refusal it answers.

use warp::http::StatusCode;

use super::error::ApiError;
use crate::node::Node;

/// Whether an `Authorization` header value carries the node's store key (always, when the node
/// has none). The comparison takes the same time wherever the first wrong byte is.
pub fn key_matches(node: &Node, authorization: Option<&str>) -> bool {
    let Some(key) = node.config().store_key.as_deref() else {
        return true;
    };
    let given = authorization.and_then(bearer_token).unwrap_or("");
    constant_time_eq(given.as_bytes(), key.as_bytes())
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Checks `authorization` against the store key; the refusal names what to send (`how`).
pub fn require_key(node: &Node, authorization: Option<&str>, how: &str) -> Result<(), ApiError> {
    if key_matches(node, authorization) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        format!("send {how}"),
    ))
}

//! Request bodies: JSON behind a size limit and a time limit, decoded with errors that name the
//! field.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::Filter;
use warp::hyper::body::Bytes;

use super::error::ApiError;

/// Largest JSON request body, in bytes (SPEC §8). Larger bodies are refused with 413.
pub const BODY_BYTES_MAX: u64 = 1024 * 1024;

/// A request's body must arrive whole this soon after its headers, or the request is answered
/// `408 body_timeout` and its connection closed (issue #29): a request parked half-sent cannot
/// hold a connection slot, nor wait across a revocation for an answer.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The body did not arrive within [`BODY_READ_TIMEOUT`].
#[derive(Debug)]
pub struct BodyTimedOut;

impl warp::reject::Reject for BodyTimedOut {}

/// The body stream failed (the peer reset the connection, or sent a malformed chunk).
#[derive(Debug)]
pub struct BodyFailed;

impl warp::reject::Reject for BodyFailed {}

/// The raw body, refused with 413 past [`BODY_BYTES_MAX`] and 408 past [`BODY_READ_TIMEOUT`].
pub fn limited() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(BODY_BYTES_MAX)
        .and(warp::body::stream())
        .and_then(|stream| async move {
            match tokio::time::timeout(BODY_READ_TIMEOUT, collect(stream)).await {
                Ok(Ok(body)) => Ok(body),
                Ok(Err(rejection)) => Err(rejection),
                Err(_) => Err(warp::reject::custom(BodyTimedOut)),
            }
        })
}

/// The whole body, at most [`BODY_BYTES_MAX`] bytes (the length limit above checked the
/// declared length; this checks what came).
async fn collect<B: warp::Buf>(
    stream: impl Stream<Item = Result<B, warp::Error>>,
) -> Result<Bytes, warp::Rejection> {
    let mut stream = std::pin::pin!(stream);
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| warp::reject::custom(BodyFailed))?;
        if (body.len() + chunk.remaining()) as u64 > BODY_BYTES_MAX {
            return Err(warp::reject::custom(BodyFailed));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            body.extend_from_slice(piece);
            let taken = piece.len();
            chunk.advance(taken);
        }
    }
    Ok(Bytes::from(body))
}

/// Decodes a JSON body. Syntax errors, unknown fields, missing fields and wrong types are 400
/// with the path of the field at fault; value rules are checked later (422).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(
                "bad_json",
                format!("the body is not valid JSON: {message}"),
            );
        }
        let code = if message.starts_with("unknown field") {
            "unknown_field"
        } else {
            "bad_json"
        };
        let field = field_of(&path, &message);
        ApiError::bad_request(code, format!("{field}: {message}")).with_field(field)
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("trailing data after the JSON body: {e}"),
        )
    })?;
    Ok(value)
}

/// The field a decoding error is about. For a missing field serde points the path at the parent
/// and names the field only in the message.
fn field_of(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (missing, path) {
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, path) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rms_domain::NewSale;

    #[test]
    fn decoding_errors_name_the_field() {
        let err =
            decode::<NewSale>(br#"{"user_id":"a","lines":[{"sku":"x","qty":"two"}]}"#).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            ("bad_json", Some("lines[0].qty"))
        );
        let err = decode::<NewSale>(br#"{"lines":[]}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("user_id"));
        let err = decode::<NewSale>(br#"{"user_id":"a","lines":[],"coupon":1}"#).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            ("unknown_field", Some("coupon"))
        );
        let err = decode::<NewSale>(br#"{"user_id":"a","lines":[{"sku":"x","qty":1,"x":1}]}"#)
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("lines[0].x"));
        assert_eq!(decode::<NewSale>(b"{nope").unwrap_err().code, "bad_json");
        assert_eq!(decode::<NewSale>(b"").unwrap_err().code, "bad_json");
        assert_eq!(
            decode::<NewSale>(br#"{"user_id":"a","lines":[]} 1"#)
                .unwrap_err()
                .code,
            "bad_json"
        );
    }
}

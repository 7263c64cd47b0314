//! [`ApiError`]: the REST API's error reply, `{"error": <code>, "message": <text>}` with its HTTP
//! status, and how storage and database errors map to it.

use rms_domain::{RejectReason, ValidationError};
use rms_storage::StorageError;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::db::DbError;
use crate::input::NodeError;

/// A business error, answered as `{"error": "<code>", "message": "<text>"}` (plus `field` for
/// invalid input and `reason` for a refusal by the rules).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The reply's HTTP status (4xx for the client's mistakes and refusals, 5xx for ours).
    pub status: StatusCode,
    /// The body's `error`: a fixed snake_case name clients match on (`not_found`,
    /// `invalid_value`, `internal`, ...). Part of the REST API: never change one.
    pub code: &'static str,
    /// The body's `message`: what went wrong, for a person.
    pub message: String,
    /// The body's `field`, for invalid input: the request field at fault.
    pub field: Option<String>,
    /// The body's `reason`, for a refusal by the business rules: the rule, as the wire names it.
    pub reason: Option<RejectReason>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<RejectReason>,
}

impl ApiError {
    /// An error with this status, code and message, and no `field` or `reason`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            reason: None,
        }
    }

    /// A 400 Bad Request with this code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404 Not Found, code `not_found`, with this message.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A 422 Unprocessable Entity, code `invalid_value`, naming the field the validation
    /// refused.
    pub fn invalid(err: ValidationError) -> ApiError {
        ApiError {
            field: Some(err.field.clone()),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
                err.to_string(),
            )
        }
    }

    /// A 500 Internal Server Error, code `internal`, with this message.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The same error, naming `field` as the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code,
            message: &self.message,
            field: self.field.as_deref(),
            reason: self.reason,
        };
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> ApiError {
        match err {
            DbError::Storage(err) => err.into(),
            other => {
                log::error!("database call failed: {other}");
                ApiError::internal("the database call failed; see the node's log")
            }
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> ApiError {
        match err {
            StorageError::Invalid(invalid) => ApiError::invalid(invalid),
            StorageError::Refused { reason, message } => {
                let status = match reason {
                    RejectReason::UnknownProduct => StatusCode::NOT_FOUND,
                    RejectReason::OutOfStock
                    | RejectReason::StaleVersion
                    | RejectReason::AlreadyExists
                    | RejectReason::EventIdReused
                    | RejectReason::Revoked
                    | RejectReason::DeviceIdTaken => StatusCode::CONFLICT,
                    RejectReason::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError {
                    reason: Some(reason),
                    ..ApiError::new(status, reason.as_str(), message)
                }
            }
            StorageError::NotFound { what } => ApiError::not_found(format!("{what} not found")),
            StorageError::NotMaster => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_master",
                "this device is not the master of the store right now; retry shortly",
            ),
            full if full.is_disk_full() => {
                log::error!("a write failed: the disk is full ({full})");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the device's disk is full: nothing was written; free space and retry",
                )
            }
            other => {
                log::error!("storage error: {other}");
                ApiError::internal(format!("storage error: {other}"))
            }
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(err: NodeError) -> ApiError {
        match err {
            NodeError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the node is overloaded or stopping; retry shortly",
            ),
            NodeError::Storage(err) => ApiError::from(err),
            NodeError::Joining => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "joining", err.to_string())
            }
            NodeError::Revoked => {
                ApiError::new(StatusCode::FORBIDDEN, "device_revoked", err.to_string())
            }
            NodeError::Panicked | NodeError::StopTimedOut(_) => ApiError::internal(err.to_string()),
        }
    }
}

//! The JSON API under `/api/`: one module per group, each handler with serde request and
//! response types. The HTML pages call the same functions, so nothing is only in HTML.
//!
//! Authentication: the session cookie (see [`crate::session`]); a write also carries the
//! session's CSRF token in `X-CSRF-Token`. Errors are `{"error": "..."}` with the status:
//! 400 malformed, 401 not logged in, 403 not allowed (CSRF, role, domain), 404 unknown,
//! 409 conflicting state, 429 blocked login, 503 store unavailable.

pub mod account;
pub mod attachments;
pub mod admin;
pub mod app_passwords;
pub mod logins;
pub mod openapi;
pub mod reading;
pub mod requests;
pub mod session;
pub mod space;
pub mod tokens;
pub mod usage;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API failure: a status and one line for the user.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Serialize)]
pub struct ErrorBody {
    pub error: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<letterbox_store::Error> for ApiError {
    fn from(e: letterbox_store::Error) -> ApiError {
        use letterbox_store::Error as E;
        let status = match &e {
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Exists(_) | E::Refused(_) | E::OverQuota => StatusCode::CONFLICT,
            E::DiskFull => {
                return ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the server's disk is full; try again later",
                )
            }
            E::Io(_) | E::Db(_) | E::Unavailable(_) => {
                tracing::error!("web: store error: {e}");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the mail store is unavailable; try again later",
                );
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<axum::Json<T>, ApiError>;

//! The wire form of errors: `{"detail": "...", "code": N}` (NUT-00).

use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use coinslot_mint::Error;
use serde::Serialize;

/// A mint error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

/// The NUT-00 error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Human-readable reason.
    pub detail: String,
    /// NUT-00 error code.
    pub code: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.0.to_string(),
            code: self.0.code(),
        };
        // Storage and backend faults are ours, and pass (a database that is down comes
        // back): 503 with Retry-After tells the client to try again; nothing was written.
        // Every fault of the request is a Cashu error with status 400, as wallets expect.
        if self.0.is_internal() {
            tracing::error!(error = %self.0, "internal error");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(RETRY_AFTER, "1")],
                Json(body),
            )
                .into_response();
        }
        tracing::debug!(code = self.0.code(), error = %self.0, "request refused");
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

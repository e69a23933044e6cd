//! The wire form of errors: `{"detail": "...", "code": N}` (NUT-00).

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
        // Storage and backend faults are ours: 500 tells the client to retry later. Every
        // fault of the request is a Cashu error with status 400, as wallets expect.
        let status = if self.0.is_internal() {
            tracing::error!(error = %self.0, "internal error");
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            tracing::debug!(code = self.0.code(), error = %self.0, "request refused");
            StatusCode::BAD_REQUEST
        };
        let body = ErrorBody {
            detail: self.0.to_string(),
            code: self.0.code(),
        };
        (status, Json(body)).into_response()
    }
}

//! The wire form of errors: `{"detail": "...", "code": N}` (NUT-00), through the mint's one
//! mapping ([`ErrorBody`]).

use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use coinslot_mint::{Error, ErrorBody};

/// A mint error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::from(&self.0);
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
        tracing::debug!(code = %body.code, error = %self.0, "request refused");
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

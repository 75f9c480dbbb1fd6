//! Domain errors to wire errors, in one place for both front ends.
//!
//! The status code and text come from [`ripplekv_core::Error`]'s own table; this
//! module adds the transport framing (a JSON reply on the socket, an HTTP response on
//! REST) and logs internal failures, whose details never reach the client.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ripplekv_core::Error;
use serde_json::json;
use serde_json::value::RawValue;

fn log_if_internal(err: &Error) {
    if let Error::Internal(detail) = err {
        tracing::error!(error = %detail, "request failed");
    }
}

/// The WebSocket error reply for `err`.
pub(crate) fn socket_error(
    err: &Error,
    message_id: Option<&RawValue>,
    key: Option<&str>,
) -> String {
    log_if_internal(err);
    let text = err.client_message();
    match err {
        // A failed conditional write says which revision the key is really at.
        Error::Conflict { current } => {
            ripplekv_proto::reply::error_at(err.status(), &text, message_id, key, Some(*current))
        }
        // A refusal by a rate limit says when to retry.
        Error::RateLimited { retry_after_ms } => {
            ripplekv_proto::reply::rate_limited(&text, *retry_after_ms, message_id, key)
        }
        _ => ripplekv_proto::reply::error(err.status(), &text, message_id, key),
    }
}

/// An HTTP error response `{"error": text}` with the status of the error.
#[derive(Debug)]
pub(crate) struct HttpError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    /// For a 429: how long to wait, sent as `Retry-After` (seconds) and `retryAfterMs`.
    pub(crate) retry_after_ms: Option<u64>,
}

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// A 400 with `reason`: an [`Error::Invalid`], like every other refusal from the
    /// one table.
    pub(crate) fn bad_request(reason: impl Into<String>) -> Self {
        Error::Invalid(reason.into()).into()
    }
}

impl From<Error> for HttpError {
    fn from(err: Error) -> Self {
        log_if_internal(&err);
        let status =
            StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut http = HttpError::new(status, err.client_message());
        // A refusal by a rate limit says when to retry.
        if let Error::RateLimited { retry_after_ms } = err {
            http.retry_after_ms = Some(retry_after_ms);
        }
        http
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match self.retry_after_ms {
            None => (self.status, Json(json!({ "error": self.message }))).into_response(),
            Some(ms) => {
                // Retry-After counts whole seconds; round up so a client never retries early.
                let seconds = ms.div_ceil(1000).to_string();
                let body = json!({ "error": self.message, "retryAfterMs": ms });
                (self.status, [(header::RETRY_AFTER, seconds)], Json(body)).into_response()
            }
        }
    }
}

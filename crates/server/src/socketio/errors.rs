//! Errors as socket.io clients see them: Feathers' error JSON
//! `{name, message, code, className, data?}`, which `@feathersjs/socketio-client` turns
//! back into a `FeathersError` and a verb-style client reads as is. The status comes
//! from the one error table (`ripplekv_core::Error::status`); this only names it.

use ripplekv_core::Error;
use serde_json::{json, Value};

/// A failed request, ready to be acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Failure {
    status: u16,
    message: String,
    data: Option<Value>,
}

impl Failure {
    /// An event no face serves.
    pub(super) fn unknown_event(event: &str) -> Self {
        Failure {
            status: 405,
            message: format!("Unknown event {event:?}"),
            data: None,
        }
    }

    /// Not found, with its own message (a service that cannot exist).
    pub(super) fn not_found(message: String) -> Self {
        Failure {
            status: 404,
            message,
            data: None,
        }
    }

    /// A method Feathers refuses (multi create, patch or remove).
    pub(super) fn method_not_allowed(message: &str) -> Self {
        Failure {
            status: 405,
            message: message.to_owned(),
            data: None,
        }
    }

    /// A request its socket's queue had no room for.
    pub(super) fn queue_full(limit: usize) -> Self {
        Failure {
            status: 429,
            message: format!(
                "Too many requests in flight on this socket (at most {limit}); wait for acks"
            ),
            data: Some(json!({ "limit": limit })),
        }
    }

    /// Feathers' error JSON.
    pub(super) fn to_json(&self) -> Value {
        let (name, class_name) = feathers_name(self.status);
        let mut error = json!({
            "name": name,
            "message": self.message,
            "code": self.status,
            "className": class_name,
        });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let data = match &err {
            Error::Conflict { current } => Some(json!({ "revision": current })),
            Error::RateLimited { retry_after_ms } => {
                Some(json!({ "retryAfterMs": retry_after_ms }))
            }
            Error::BodyTooLarge { limit } => Some(json!({ "limit": limit })),
            _ => None,
        };
        // A body too large and a non-WebSocket request are the client's request being
        // wrong: BadRequest, as Feathers has no 413 or 426.
        let status = match err.status() {
            413 | 426 => 400,
            status => status,
        };
        if let Error::Internal(detail) = &err {
            tracing::error!(error = %detail, "socket.io request failed");
        }
        Failure {
            status,
            message: err.client_message(),
            data,
        }
    }
}

/// Feathers' error class name and `className` for a status code.
fn feathers_name(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("BadRequest", "bad-request"),
        401 => ("NotAuthenticated", "not-authenticated"),
        403 => ("Forbidden", "forbidden"),
        404 => ("NotFound", "not-found"),
        405 => ("MethodNotAllowed", "method-not-allowed"),
        408 => ("Timeout", "timeout"),
        409 => ("Conflict", "conflict"),
        422 => ("Unprocessable", "unprocessable"),
        429 => ("TooManyRequests", "too-many-requests"),
        503 => ("Unavailable", "unavailable"),
        _ => ("GeneralError", "general-error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_of_the_table_has_its_feathers_name() {
        let cases = [
            (Error::invalid("bad"), "BadRequest", 400),
            (Error::InvalidApiKey, "NotAuthenticated", 401),
            (Error::Forbidden, "Forbidden", 403),
            (Error::NotFound, "NotFound", 404),
            (Error::MethodNotAllowed, "MethodNotAllowed", 405),
            (Error::Conflict { current: 7 }, "Conflict", 409),
            (Error::Unprocessable("x".into()), "Unprocessable", 422),
            (
                Error::RateLimited { retry_after_ms: 5 },
                "TooManyRequests",
                429,
            ),
            (Error::internal("disk"), "GeneralError", 500),
            (Error::Unavailable, "Unavailable", 503),
            (Error::BodyTooLarge { limit: 9 }, "BadRequest", 400),
        ];
        for (err, name, code) in cases {
            let json = Failure::from(err).to_json();
            assert_eq!(json["name"], name);
            assert_eq!(json["code"], code);
        }
        let conflict = Failure::from(Error::Conflict { current: 7 }).to_json();
        assert_eq!(conflict["className"], "conflict");
        assert_eq!(conflict["data"]["revision"], 7);
        let internal = Failure::from(Error::internal("disk on fire")).to_json();
        assert_eq!(internal["message"], "Internal server error");
    }
}

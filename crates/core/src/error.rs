//! The one error type and the table that maps it to a status code.
//!
//! Every way a request can fail, whatever refuses it (validation, the store, the
//! credential check, a limit, a rate limit, the HTTP layer), is a variant here.
//! [`Error::status`] is the single place that decides the HTTP-like code a client
//! sees, and [`Error::client_message`] the text it sees; internal details stay in
//! [`Error::Internal`] and go to the log.

/// A failed operation, with enough information to answer the client precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed or breaks a limit; the text says exactly how.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed, but not something this request can work on (a collection item whose
    /// value is not a JSON object); the text says why.
    #[error("{0}")]
    Unprocessable(String),
    /// GET or DELETE of a key that does not exist.
    #[error("Record not found")]
    NotFound,
    /// A token connection touched a key outside its access pattern.
    #[error("Access denied: Key does not match allowed pattern")]
    Forbidden,
    /// A conditional write saw a different revision than it asked for.
    #[error("Revision mismatch: key is at revision {current}")]
    Conflict {
        /// The key's current revision (0 if it does not exist).
        current: u64,
    },
    /// The caller exceeded a rate limit.
    #[error("Rate limit exceeded; retry after {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait before retrying, in milliseconds.
        retry_after_ms: u64,
    },
    /// The server is shutting down and takes no new writes.
    #[error("Server is shutting down")]
    Unavailable,
    /// No credentials at all: no `x-api-key`, no `?apiKey=`, no `?token=`.
    #[error("Missing API key: send the x-api-key header (or ?apiKey= / ?token= on /ws)")]
    MissingCredentials,
    /// An API key that is not one of the server's.
    #[error("Invalid API key")]
    InvalidApiKey,
    /// A token that does not verify or has expired (403: what HPKV clients look for).
    #[error("Invalid or expired token")]
    InvalidToken,
    /// The WebSocket connection cap is reached.
    #[error("Too many connections; try again later")]
    TooManyConnections,
    /// As many snapshots as allowed are streaming already.
    #[error("{limit} snapshots are already being taken; try again when one finishes")]
    TooManySnapshots {
        /// How many may stream at once.
        limit: usize,
    },
    /// A request body larger than the server accepts.
    #[error("Request body too large: at most {limit} bytes")]
    BodyTooLarge {
        /// The largest body accepted, in bytes.
        limit: usize,
    },
    /// No route has this path.
    #[error("Not found")]
    NoSuchRoute,
    /// The route exists but not with this method.
    #[error("Method not allowed on this route")]
    MethodNotAllowed,
    /// A plain HTTP request to the WebSocket endpoint.
    #[error("/ws is the WebSocket endpoint: connect with a WebSocket client ({detail})")]
    NotWebSocket {
        /// What the request lacks, such as the `Connection: upgrade` header.
        detail: String,
        /// 426 when only the upgrade itself is missing, 400 for a malformed handshake.
        upgrade_required: bool,
    },
    /// Storage or another internal component failed. The text is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }

    /// Shorthand for [`Error::Internal`] from any displayable failure.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Error::Internal(err.to_string())
    }

    /// The HTTP-like status code for this error (PROTOCOL.md A4).
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::NotWebSocket {
                upgrade_required, ..
            } => {
                if *upgrade_required {
                    426
                } else {
                    400
                }
            }
            Error::MissingCredentials | Error::InvalidApiKey => 401,
            Error::Forbidden | Error::InvalidToken => 403,
            Error::NotFound | Error::NoSuchRoute => 404,
            Error::MethodNotAllowed => 405,
            Error::Conflict { .. } => 409,
            Error::Unprocessable(_) => 422,
            Error::BodyTooLarge { .. } => 413,
            Error::RateLimited { .. } => 429,
            Error::Internal(_) => 500,
            Error::Unavailable | Error::TooManyConnections | Error::TooManySnapshots { .. } => 503,
        }
    }

    /// The text a client may see. Internal failures are not described to clients.
    pub fn client_message(&self) -> String {
        match self {
            Error::Internal(_) => "Internal server error".to_owned(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_are_not_shown_to_clients() {
        let err = Error::internal("disk on fire at /var/lib/x");
        assert_eq!(err.status(), 500);
        assert_eq!(err.client_message(), "Internal server error");
    }

    #[test]
    fn texts_required_by_the_protocol() {
        assert_eq!(Error::NotFound.client_message(), "Record not found");
        assert_eq!(
            Error::Forbidden.client_message(),
            "Access denied: Key does not match allowed pattern"
        );
    }
}

//! Client errors: the server's answer, or what kept the request from getting one.

/// A failed client call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error code (400, 403, 404, 409, 429, 500…).
    #[error("server error {code}: {message}")]
    Server {
        /// The status code.
        code: u16,
        /// The server's text.
        message: String,
        /// For 409: the revision the key is actually at.
        revision: Option<u64>,
    },
    /// No reply within the request timeout. The request may or may not have been applied.
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    /// The connection dropped before the reply came. The request may or may not have
    /// been applied; the client reconnects by itself.
    #[error("disconnected before the reply")]
    Disconnected,
    /// The client gave up reconnecting, or was closed.
    #[error("the client is closed")]
    Closed,
    /// The server refused the credentials at the upgrade: a wrong or missing API key
    /// (401) or a bad or expired token (403). Retrying with the same credentials cannot
    /// help, so callers should tell this apart from an unreachable server.
    #[error("authentication refused ({status}): {message}")]
    Unauthorized {
        /// 401 (API key) or 403 (token).
        status: u16,
        /// The server's text.
        message: String,
    },
    /// Connecting failed: bad URL, server unreachable, or an HTTP refusal other than
    /// 401/403 (503 when the server is full, 429 when rate-limited).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server sent something this client does not understand.
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

impl Error {
    /// The server's status code, if the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for 404 Record not found.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }
}

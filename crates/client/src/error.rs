//! Client errors: the server's answer, or what kept the request from getting one.

/// A failed client call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error code (400, 403, 404, 409, 429, 500…).
    #[error("server error {code}: {message}")]
    Server {
        code: u16,
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
    /// Connecting failed: bad URL, refused credentials (401/403), server unreachable.
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

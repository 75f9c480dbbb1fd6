//! How a client connects, waits and reconnects.

use std::time::Duration;

/// Credentials for the WebSocket upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Full access (`?apiKey=`).
    ApiKey(String),
    /// A token from `POST /token/websocket` (`?token=`).
    Token(String),
}

/// Reconnect policy: exponential backoff with jitter between attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconnect {
    /// Attempts after a drop before giving up; `None` retries forever.
    pub max_attempts: Option<usize>,
    /// Wait before the first retry.
    pub initial_delay: Duration,
    /// Longest wait between retries.
    pub max_delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            max_attempts: None,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Everything configurable about a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How to authenticate.
    pub auth: Auth,
    /// How long a request waits for its reply.
    pub request_timeout: Duration,
    /// How to reconnect after a drop.
    pub reconnect: Reconnect,
    /// Client-side limit on requests per second; `None` for no limit. A 429 from the
    /// server makes the client wait for the hinted time and retry, whatever this is.
    pub rate_limit: Option<u32>,
    /// Times a request answered 429 is retried before the error is returned.
    pub max_rate_limit_retries: usize,
}

impl ClientConfig {
    /// Defaults for everything but the credentials.
    pub fn new(auth: Auth) -> Self {
        ClientConfig {
            auth,
            request_timeout: Duration::from_secs(10),
            reconnect: Reconnect::default(),
            rate_limit: None,
            max_rate_limit_retries: 5,
        }
    }
}

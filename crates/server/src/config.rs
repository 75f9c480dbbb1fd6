//! Settings the server runs with, already validated and typed.
//!
//! Layering (defaults < file < env < flags) happens in the binary; this struct is what
//! comes out of it. Socket limits are derived here from the key and value limits so
//! the two can never disagree.

use std::time::Duration;

use ripplekv_core::Limits;

use crate::rate::RateLimit;

/// Everything [`crate::run`] needs besides the store and the listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Keys accepted in `?apiKey=` and `x-api-key`. Must not be empty.
    pub api_keys: Vec<String>,
    /// Key and value limits.
    pub limits: Limits,
    /// Frames that may wait in one connection's outgoing queue.
    pub outbox_messages: usize,
    /// Bytes of notifications that may wait in one connection's outgoing queue; a
    /// subscriber past either bound is closed as a slow consumer.
    pub outbox_bytes: usize,
    /// Secret that signs WebSocket tokens; nodes sharing it accept each other's tokens.
    pub token_secret: Vec<u8>,
    /// How long an issued token stays valid.
    pub token_lifetime: Duration,
    /// How often keys whose TTL ran out are removed (and their `expire` published).
    /// Reads never return an expired key, whatever this is.
    pub expiry_sweep_interval: Duration,
    /// WebSocket connections served at once; upgrades beyond it get HTTP 503.
    pub max_connections: usize,
    /// How often an otherwise silent connection is pinged.
    pub ping_interval: Duration,
    /// How long a pinged connection may stay silent before it is closed.
    pub pong_timeout: Duration,
    /// How long shutdown waits for sessions to finish before closing the store anyway.
    pub shutdown_grace: Duration,
    /// Patterns one connection may hold through in-band `subscribe`; more get a 400.
    pub max_subscriptions: usize,
    /// How long a new TCP connection may take to send a complete HTTP request head
    /// (where its credentials are), and how long an idle keep-alive HTTP connection
    /// is kept. A connection that never authenticates is closed after this.
    pub handshake_timeout: Duration,
    /// Requests per second (with burst) one API key or one token may make, over
    /// WebSocket and REST together; `None` for no limit.
    pub credential_rate_limit: Option<RateLimit>,
    /// HTTP requests (REST calls and WebSocket upgrades) per second one client IP may
    /// make; `None` for no limit.
    pub ip_rate_limit: Option<RateLimit>,
    /// The secret that signed tokens before the current one; its tokens are still
    /// accepted until `previous_token_secret_until_ms`.
    pub previous_token_secret: Option<Vec<u8>>,
    /// When tokens signed with `previous_token_secret` stop being accepted, in
    /// milliseconds since the Unix epoch; connections opened with one are closed then.
    /// An absolute time, so restarting the server does not extend the grace period.
    pub previous_token_secret_until_ms: u64,
}

/// Bytes tungstenite reads from the socket at a time. Its default (128 KiB) would be
/// allocated for every connection. 1 KiB rather than 2 KiB took a kibibyte off every
/// idle connection (6.7 to 5.8 KiB of RSS with 19,000 held, `bash bench/compare.sh`);
/// 32 pipelined GETs (about 1.3 KB) then take two reads, and a 60 KB SET about 60,
/// with no throughput change measured for either (`ripplekv bench rpc`, paired runs).
pub const WS_READ_BUFFER_BYTES: usize = 1024;
/// Bytes of outgoing frames gathered before a write to the socket.
pub const WS_WRITE_BUFFER_BYTES: usize = 8 * 1024;

impl ServerConfig {
    /// A configuration with default limits, for the given keys and token secret.
    pub fn new(api_keys: Vec<String>, token_secret: Vec<u8>) -> Self {
        ServerConfig {
            api_keys,
            limits: Limits::default(),
            outbox_messages: 1024,
            outbox_bytes: 8 * 1024 * 1024,
            token_secret,
            token_lifetime: Duration::from_secs(2 * 3600),
            expiry_sweep_interval: Duration::from_millis(250),
            max_connections: 100_000,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_subscriptions: 1000,
            handshake_timeout: Duration::from_secs(10),
            credential_rate_limit: None,
            ip_rate_limit: None,
            previous_token_secret: None,
            previous_token_secret_until_ms: 0,
        }
    }

    /// The largest WebSocket message or REST body accepted. A key and a value at their
    /// limits can each grow up to 6x when JSON-escaped (`\u0001`), plus the envelope.
    /// Anything larger is refused by the WebSocket layer before it is buffered; anything
    /// smaller but over a limit gets a precise 400.
    pub fn max_message_bytes(&self) -> usize {
        6 * (self.limits.max_key_bytes + self.limits.max_value_bytes) + 4096
    }
}

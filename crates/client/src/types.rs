//! The values operations return.

/// A stored value and the revision that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// The revision of its last change.
    pub revision: u64,
}

/// A committed write: its revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The revision the write was committed at.
    pub revision: u64,
}

/// Conditions of a write (PROTOCOL.md part B).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriteOptions {
    /// Write only if the key is at this revision (0: only if it does not exist).
    pub if_revision: Option<u64>,
    /// Expire the key this long after the write (SET and PATCH).
    pub ttl: Option<std::time::Duration>,
}

/// A change pushed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key that changed.
    pub key: String,
    /// `None` for deletes and expiries.
    pub value: Option<String>,
    /// `set`, `patch`, `delete`, `atomic`, `expire` or `jsonpatch`; `None` from a server
    /// that does not say (HPKV).
    pub op: Option<String>,
    /// The revision of the change; 0 from a server that does not say (HPKV).
    pub revision: u64,
    /// Commit time, milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// What happened to the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The connection is up (after a reconnect).
    Connected,
    /// The connection dropped; the client is reconnecting.
    Disconnected,
    /// About to try again after `delay`.
    Reconnecting {
        /// Which attempt this is, from 1.
        attempt: usize,
        /// How long the client waits before it.
        delay: std::time::Duration,
    },
    /// No more attempts; the client is closed.
    GaveUp,
}

/// A snapshot of the client's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent and waiting for their reply.
    pub pending_requests: usize,
    /// Reconnect attempts since the last successful connect.
    pub reconnect_attempts: usize,
    /// Successful connects, the first included.
    pub connects: u64,
    /// Whether the socket is up now.
    pub connected: bool,
}

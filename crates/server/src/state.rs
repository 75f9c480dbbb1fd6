//! The shared state every handler sees: a cheap `Clone` handle over an `Arc`.

use std::sync::Arc;

use ripplekv_core::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::ApiKeys;
use crate::ops::Ops;
use crate::ServerConfig;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ops: Ops,
    keys: ApiKeys,
    config: ServerConfig,
    /// Cancelled when shutdown starts: every session sends a close frame and ends.
    shutdown: CancellationToken,
    /// Tracks live sessions so shutdown can wait for them.
    sessions: TaskTracker,
}

impl AppState {
    pub(crate) fn new(config: ServerConfig, store: Arc<dyn Store>) -> Self {
        AppState {
            inner: Arc::new(Inner {
                ops: Ops::new(store, config.limits),
                keys: ApiKeys::new(config.api_keys.clone()),
                config,
                shutdown: CancellationToken::new(),
                sessions: TaskTracker::new(),
            }),
        }
    }

    pub(crate) fn ops(&self) -> &Ops {
        &self.inner.ops
    }

    pub(crate) fn keys(&self) -> &ApiKeys {
        &self.inner.keys
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub(crate) fn sessions(&self) -> &TaskTracker {
        &self.inner.sessions
    }
}

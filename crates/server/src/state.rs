//! The shared state every handler sees: a cheap `Clone` handle over an `Arc`.

use std::sync::Arc;

use ripplekv_core::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::ApiKeys;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::ops::Ops;
use crate::token::Tokens;
use crate::ServerConfig;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ops: Ops,
    keys: ApiKeys,
    tokens: Tokens,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    config: ServerConfig,
    /// Cancelled when shutdown starts: every session sends a close frame and ends.
    shutdown: CancellationToken,
    /// Tracks live sessions so shutdown can wait for them.
    sessions: TaskTracker,
}

impl AppState {
    /// The state of a server over `store`; the store's changes are published to the hub.
    pub(crate) fn new(config: ServerConfig, store: Arc<dyn Store>) -> Self {
        let hub = Arc::new(Hub::default());
        store.set_change_sink(Arc::clone(&hub) as _);
        AppState {
            inner: Arc::new(Inner {
                ops: Ops::new(store, config.limits),
                keys: ApiKeys::new(config.api_keys.clone()),
                tokens: Tokens::new(config.token_secret.clone(), config.token_lifetime),
                hub,
                metrics: Arc::default(),
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

    pub(crate) fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
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

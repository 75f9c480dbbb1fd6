//! The shared state every handler sees: a cheap `Clone` handle over an `Arc`.

use std::sync::Arc;

use ripplekv_core::Store;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::ApiKeys;
use crate::exec::Executor;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::rate::{RateLimiter, Subject};
use crate::sequencer::Sequencer;
use crate::token::Tokens;
use crate::ServerConfig;

/// Snapshots (`GET /admin/snapshot`) streamed at once; each holds a read transaction
/// and a blocking thread.
pub(crate) const MAX_SNAPSHOTS: usize = 2;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    executor: Executor,
    keys: ApiKeys,
    tokens: Tokens,
    hub: Arc<Hub>,
    /// Orders the store's changes into the hub; what replays are served against.
    sequencer: Arc<Sequencer>,
    metrics: Arc<Metrics>,
    /// Requests per API key or token.
    credential_limits: Arc<RateLimiter>,
    /// HTTP requests per client address.
    ip_limits: RateLimiter,
    /// Snapshots that may stream at once.
    snapshots: Arc<Semaphore>,
    config: ServerConfig,
    /// Cancelled when shutdown starts: every session sends a close frame and ends.
    shutdown: CancellationToken,
    /// Tracks live sessions so shutdown can wait for them.
    sessions: TaskTracker,
}

impl AppState {
    /// The state of a server over `store`; the store's changes reach the hub through
    /// the sequencer.
    pub(crate) fn new(config: ServerConfig, store: Arc<dyn Store>) -> Self {
        let hub = Arc::new(Hub::default());
        let sequencer = Arc::new(Sequencer::new(Arc::clone(&hub), store.revision()));
        store.set_change_sink(Arc::clone(&sequencer) as _);
        AppState {
            inner: Arc::new(Inner {
                executor: Executor::new(store, config.limits, Arc::clone(&sequencer)),
                keys: ApiKeys::new(config.api_keys.clone()),
                tokens: tokens(&config),
                hub,
                sequencer,
                metrics: Arc::default(),
                credential_limits: Arc::new(RateLimiter::new(config.credential_rate_limit)),
                ip_limits: RateLimiter::new(config.ip_rate_limit),
                snapshots: Arc::new(Semaphore::new(MAX_SNAPSHOTS)),
                config,
                shutdown: CancellationToken::new(),
                sessions: TaskTracker::new(),
            }),
        }
    }

    pub(crate) fn executor(&self) -> &Executor {
        &self.inner.executor
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

    pub(crate) fn sequencer(&self) -> &Arc<Sequencer> {
        &self.inner.sequencer
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub(crate) fn credential_limits(&self) -> &Arc<RateLimiter> {
        &self.inner.credential_limits
    }

    /// Counts one request against `subject`'s credential limit.
    pub(crate) fn admit(&self, subject: &Subject) -> Result<(), ripplekv_core::Error> {
        self.inner.credential_limits.check(subject)
    }

    pub(crate) fn snapshots(&self) -> &Arc<Semaphore> {
        &self.inner.snapshots
    }

    pub(crate) fn ip_limits(&self) -> &RateLimiter {
        &self.inner.ip_limits
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

/// The token issuer: the current secret, plus the previous one during a rotation.
fn tokens(config: &ServerConfig) -> Tokens {
    let tokens = Tokens::new(config.token_secret.clone(), config.token_lifetime);
    match &config.previous_token_secret {
        Some(previous) => {
            tokens.with_previous(previous.clone(), config.previous_token_secret_until_ms)
        }
        None => tokens,
    }
}

//! Running the server, and the shutdown sequence.
//!
//! [`run`] serves, and sweeps keys whose TTL ran out, until `shutdown` resolves, then:
//! 1. stops accepting connections;
//! 2. tells every session to finish: each completes the request it is running,
//!    sends a close frame (1001, "server shutting down") and ends;
//! 3. waits for sessions and in-flight HTTP requests, at most `shutdown_grace`;
//! 4. closes the store, which commits and fsyncs every write already submitted.

use std::future::Future;
use std::sync::Arc;

use ripplekv_core::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::{http, listen, ServerConfig};

/// Where the server listens: everything on `main`, except `/metrics` when `metrics` is
/// given, which then serves it alone (for example on a loopback or private address, so
/// the unauthenticated metrics are not on the public port).
#[derive(Debug)]
pub struct Listeners {
    /// Serves everything (but `/metrics` when `metrics` is given).
    pub main: TcpListener,
    /// Serves `/metrics` alone.
    pub metrics: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(main: TcpListener) -> Self {
        Listeners {
            main,
            metrics: None,
        }
    }
}

/// Serves HTTP and WebSocket on `listeners` until `shutdown` resolves.
pub async fn run(
    config: ServerConfig,
    store: Arc<dyn Store>,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listeners {
        main: listener,
        metrics: metrics_listener,
    } = listeners.into();
    let grace = config.shutdown_grace;
    let config_interval = config.expiry_sweep_interval;
    let state = AppState::new(config, Arc::clone(&store));
    let stopping = state.shutdown().clone();
    let signal = {
        let stopping = stopping.clone();
        async move {
            tokio::select! {
                () = shutdown => tracing::info!("shutting down: closing sessions"),
                () = stopping.cancelled() => {}
            }
            stopping.cancel();
        }
    };
    let sweeper = tokio::spawn(sweep_expired(
        Arc::clone(&store),
        config_interval,
        stopping.clone(),
    ));
    let router = http::router(state.clone(), metrics_listener.is_none());
    let handshake_timeout = state.config().handshake_timeout;
    let force = CancellationToken::new();
    let metrics_served = metrics_listener.map(|metrics_listener| {
        let router = http::metrics_router(state.clone());
        let (stopping, force) = (stopping.clone(), force.clone());
        tokio::spawn(async move {
            let stop = async move { stopping.cancelled().await };
            listen::serve(metrics_listener, router, handshake_timeout, stop, force).await;
        })
    });
    let force_http = force.clone();
    let mut served = tokio::spawn(async move {
        listen::serve(listener, router, handshake_timeout, signal, force_http).await;
        Ok::<(), std::io::Error>(())
    });
    let early_end = tokio::select! {
        outcome = &mut served => Some(outcome),
        () = stopping.cancelled() => None,
    };
    // From here on shutdown has begun; the grace period bounds the drain.
    stopping.cancel();
    let drain = async {
        let outcome = match early_end {
            Some(outcome) => outcome,
            None => served.await,
        };
        state.sessions().close();
        state.sessions().wait().await;
        // The metrics listener drains within the same grace period.
        if let Some(metrics_served) = metrics_served {
            let _ = metrics_served.await;
        }
        outcome
    };
    let result = match tokio::time::timeout(grace, drain).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(std::io::Error::other(join_error)),
        Err(_) => {
            tracing::warn!(
                sessions = state.sessions().len(),
                "sessions still open after the grace period; closing the store anyway"
            );
            // HTTP connections still draining are dropped, closing their sockets.
            force.cancel();
            Ok(())
        }
    };
    let _ = sweeper.await;
    if let Err(err) = store.close().await {
        tracing::error!(error = %err, "closing the store failed");
    }
    result
}

/// Removes expired keys every `interval` until shutdown, so their `expire` changes
/// reach subscribers even when nobody touches the keys.
async fn sweep_expired(
    store: Arc<dyn Store>,
    interval: std::time::Duration,
    stop: CancellationToken,
) {
    // The first sweep comes one interval after start, not at once: the interval is
    // the promise (a test that sets it to an hour gets no sweep at all).
    let first = tokio::time::Instant::now() + interval;
    let mut ticks = tokio::time::interval_at(first, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match store.expire_due().await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "expired keys removed"),
            Err(err) => tracing::warn!(error = %err, "expiry sweep failed"),
        }
    }
}

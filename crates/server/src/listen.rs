//! The accept loop: one HTTP/1.1 connection per TCP socket, with a handshake timeout.
//!
//! `axum::serve` has no way to bound how long a connection may take to send its
//! request head, so a client could open sockets and never say anything, holding them
//! forever without presenting a credential. This loop serves each socket with hyper's
//! HTTP/1 server and its header-read timeout: a connection must send a complete request
//! head (where the API key or token is) within `handshake_timeout`, and a keep-alive
//! connection idle for that long between requests is closed too. Upgraded WebSocket
//! connections leave hyper and are governed by their own ping/pong liveness.
//!
//! Shutdown stops accepting, asks every HTTP connection to finish its current request
//! and close, and returns once they have.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::linger::LingeringStream;

/// How long to pause accepting after an error such as "too many open files", so the
/// loop does not spin while the process is out of descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then drains HTTP
/// connections; `force` drops those still open (the grace period is over).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()>,
    force: CancellationToken,
) {
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // One client's connection failed before it was accepted: nothing to wait for.
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // Replies are small frames written as soon as they are ready; Nagle's algorithm
        // would hold a second one back until the first is acknowledged.
        if let Err(err) = socket.set_nodelay(true) {
            tracing::warn!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = with_client_address(router.clone(), remote);
        let closing = closing.clone();
        let force = force.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(handshake_timeout)
                .serve_connection(TokioIo::new(LingeringStream::new(socket)), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                outcome = connection.as_mut() => log_outcome(outcome),
                () = closing.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        outcome = connection.as_mut() => log_outcome(outcome),
                        // Dropping the connection closes its socket.
                        () = force.cancelled() => {}
                    }
                }
            }
        });
    }
    // New clients are refused from here on rather than left waiting in the backlog.
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
}

fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// The router as a hyper service whose requests carry the client's address, for
/// the per-IP rate limit.
fn with_client_address(
    router: Router,
    remote: SocketAddr,
) -> TowerToHyperService<
    impl tower::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
            Future = impl Send,
        > + Clone,
> {
    TowerToHyperService::new(router.map_request(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    }))
}

fn log_outcome(outcome: Result<(), hyper::Error>) {
    if let Err(err) = outcome {
        // Timeouts and resets are what clients do; they are not server failures.
        tracing::debug!(error = %err, "http connection ended");
    }
}

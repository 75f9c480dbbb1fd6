//! A bare WebSocket broadcast server: the floor for fan-out on this stack.
//!
//! Every text frame any connection sends goes to every connection (its sender too),
//! as one shared message: the payload is reference-counted, never copied per socket.
//! Each connection's task writes everything queued for it, then flushes once. It uses
//! the same axum/tungstenite stack and socket settings as `ripplekv serve`, and
//! nothing else: no protocol, no store, no subscriptions, so `ripplekv bench fanout
//! --broadcast` against it measures what delivering one frame to N sockets costs.
//! Used by `bench/compare.sh`.
//!
//! A connection that falls more than a queue behind skips what it missed (a floor
//! measures the fast path, not a policy).
//!
//! `ripplekv-broadcast [HOST:PORT]` (default 127.0.0.1:3101)

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;

/// Frames one connection may fall behind by.
const QUEUE: usize = 1024;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3101".into());
    let (frames, _) = broadcast::channel::<Utf8Bytes>(QUEUE);
    let app =
        Router::new()
            .route(
                "/ws",
                get(
                    |upgrade: WebSocketUpgrade,
                     State(frames): State<broadcast::Sender<Utf8Bytes>>| async move {
                        upgrade
                            .read_buffer_size(4 * 1024)
                            .write_buffer_size(8 * 1024)
                            .on_upgrade(move |socket| connection(socket, frames))
                    },
                ),
            )
            .with_state(frames);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

async fn connection(socket: WebSocket, frames: broadcast::Sender<Utf8Bytes>) {
    let mut queued = frames.subscribe();
    let (mut sink, mut stream) = socket.split();
    let reading = async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                let _ = frames.send(text);
            }
        }
    };
    let writing = async {
        loop {
            let first = match queued.recv().await {
                Ok(frame) => frame,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            while let Ok(frame) = queued.try_recv() {
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
}

//! A bare WebSocket echo server: the floor for any WebSocket protocol on this stack.
//!
//! It answers every text frame with the same frame, over the same axum/tungstenite
//! stack and socket settings as `ripplekv serve`, so `ripplekv bench` against it
//! measures what the transport alone costs. Used by `bench/compare.sh`.
//!
//! `ripplekv-echo [HOST:PORT]` (default 127.0.0.1:3100)

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3100".into());
    let app = Router::new().route(
        "/ws",
        get(|upgrade: WebSocketUpgrade| async move {
            upgrade
                .read_buffer_size(4 * 1024)
                .write_buffer_size(8 * 1024)
                .on_upgrade(echo)
        }),
    );
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

async fn echo(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    while let Some(Ok(message)) = stream.next().await {
        if let Message::Text(text) = message {
            if sink.send(Message::Text(text)).await.is_err() {
                return;
            }
        }
    }
}

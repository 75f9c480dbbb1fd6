//! Secrets never reach the logs: with every log level on (`RUST_LOG=trace`), a server
//! that is handed an API key in the query string and in a header, mints a token and
//! accepts it, must not print either anywhere.

#![allow(clippy::unwrap_used)]

mod common;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "log-test-key-4f1c9a";

/// One HTTP/1.1 exchange; returns the whole response.
async fn http(addr: std::net::SocketAddr, request: String) -> Result<String> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    Ok(response)
}

async fn round_trip(url: &str) -> Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    ws.send(Message::text(r#"{"op":"get","key":"k"}"#)).await?;
    let reply = ws.next().await.context("no reply")??;
    assert!(reply.to_text()?.contains("\"code\""), "{reply:?}");
    ws.close(None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_tokens_never_appear_in_trace_logs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = common::start_logging(dir.path(), "trace").await?;
    let addr = server.addr;
    round_trip(&format!("ws://{addr}/ws?apiKey={KEY}")).await?;
    let body = r#"{"accessPattern":"k*","subscribeKeys":["k"]}"#;
    let minted = http(
        addr,
        format!(
            "POST /token/websocket HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await?;
    let token = minted
        .split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no token in the reply")?
        .to_owned();
    round_trip(&format!("ws://{addr}/ws?token={token}")).await?;
    let wrong = http(
        addr,
        "GET /record/k HTTP/1.1\r\nHost: x\r\nx-api-key: wrong-key-77d2\r\nConnection: close\r\n\r\n".into(),
    )
    .await?;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");

    server.child.kill().await?;
    let mut lines = Vec::new();
    while let Some(line) = server.log.recv().await {
        lines.push(line);
    }
    assert!(
        lines.len() > 20,
        "trace logging produced only {} lines",
        lines.len()
    );
    for secret in [KEY, token.as_str(), "wrong-key-77d2"] {
        let leaked: Vec<&String> = lines.iter().filter(|line| line.contains(secret)).collect();
        assert!(leaked.is_empty(), "a secret reached the log: {leaked:?}");
    }
    Ok(())
}

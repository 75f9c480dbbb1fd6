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
    let mut lines = std::mem::take(&mut server.startup);
    lines.extend(drain(&mut server.log).await);
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

/// A newcomer must learn the generated key whatever `RUST_LOG` says, and a start that
/// cannot serve must not generate (and print) a key that then never worked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_key_is_printed_at_any_log_level_and_only_by_a_start_that_serves(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");

    // Port taken: the start fails before any key exists.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.to_string();
    let failed = tokio::process::Command::new(env!("CARGO_BIN_EXE_ripplekv"))
        .args(["serve", "--listen", &port])
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .env_remove("RIPPLEKV_API_KEY")
        .env_remove("RIPPLEKV_API_KEYS")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(
        !stderr.contains("rk_"),
        "printed a key it then did not serve: {stderr}"
    );
    assert!(!data.join("api-key").exists());

    // First start that serves, with the log turned down: the key is printed.
    let mut first = common::start_with(&[], &[], &data, "warn").await?;
    let key = std::fs::read_to_string(data.join("api-key"))?
        .trim()
        .to_owned();
    first.child.kill().await?;
    let lines = first.startup;
    assert!(
        lines
            .iter()
            .any(|line| line.contains(&format!("generated API key {key}"))),
        "{lines:?}"
    );

    // Later starts say where the key is kept, never the key itself.
    let mut second = common::start_with(&[], &[], &data, "error").await?;
    second.child.kill().await?;
    let mut lines = second.startup;
    lines.extend(drain(&mut second.log).await);
    let location = data.join("api-key").display().to_string();
    assert!(
        lines.iter().any(|line| line.contains(&location)),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|line| line.contains(&key)), "{lines:?}");
    Ok(())
}

async fn drain(log: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(line) = log.recv().await {
        lines.push(line);
    }
    lines
}

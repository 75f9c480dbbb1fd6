//! Defences: rate limits (per credential and per IP, with retry hints), the cap on
//! subscriptions per connection, the handshake timeout for connections that never
//! authenticate, and token-secret rotation.
//!
//! Rate-limit tests use a refill slow enough (1 request per 10 s) that no token comes
//! back during the test, so what is refused does not depend on the machine's speed.

use std::time::Duration;

use anyhow::Result;
use ripplekv_core::now_ms;
use ripplekv_server::{RateLimit, ServerConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{assert_error, assert_ok, http, TestServer, Ws, KEY, SECRET};

fn slow_limit(burst: u32) -> Option<RateLimit> {
    Some(RateLimit {
        per_second: 0.1,
        burst,
    })
}

fn config() -> ServerConfig {
    ServerConfig::new(vec![KEY.into(), "second-key".into()], SECRET.to_vec())
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_a_hint_and_nothing_is_written() -> Result<()> {
    let mut config = config();
    config.credential_rate_limit = slow_limit(3);
    let server = TestServer::start_with(config, None).await?;
    let mut ws = server.ws().await?;
    for i in 0..3 {
        assert_ok(
            &ws.request(json!({"op": "set", "key": format!("k{i}"), "value": "v"}))
                .await?,
        );
    }
    let refused = ws
        .request(json!({"op": "set", "key": "k3", "value": "v", "messageId": 9}))
        .await?;
    assert_error(&refused, 429, "Rate limit exceeded; retry after");
    assert_eq!(refused["messageId"], 9);
    assert_eq!(refused["key"], "k3");
    let hint = refused["retryAfterMs"].as_u64().unwrap();
    assert!((9_000..=10_000).contains(&hint), "retry hint {hint} ms");
    assert_eq!(server.store.revision(), 3, "the refused SET wrote nothing");
    // Garbage counts too, and the connection is still open and answering.
    ws.send_text("not json").await?;
    assert_error(&ws.recv().await?, 429, "retry after");
    ws.send_raw(Message::binary(b"binary".to_vec())).await?;
    assert_error(&ws.recv().await?, 429, "retry after");

    // REST with the same key shares the bucket, and says when to retry.
    let rest = server.http("GET", "/record/k0", None).await?;
    assert_eq!(rest.status, 429);
    assert_eq!(rest.header("retry-after"), Some("10"));
    assert!(rest.body["retryAfterMs"].as_u64().unwrap() > 9_000);
    // Another key has its own bucket.
    let other = http(
        server.addr,
        "GET",
        "/record/k0",
        &[("x-api-key", "second-key")],
        None,
    )
    .await?;
    assert_eq!(other.status, 200, "{other:?}");
    server.stop().await
}

#[tokio::test]
async fn each_token_has_its_own_bucket() -> Result<()> {
    let mut config = config();
    config.credential_rate_limit = slow_limit(2);
    let server = TestServer::start_with(config, None).await?;
    let token = server.token(json!({"accessPattern": "t*"})).await?;
    let other_token = server.token(json!({"accessPattern": "u*"})).await?;
    let mut first = server.ws_token(&token).await?;
    let mut again = server.ws_token(&token).await?; // same token, same bucket
    let mut other = server.ws_token(&other_token).await?;
    assert_eq!(
        first.request(json!({"op": "get", "key": "t1"})).await?["code"],
        404
    );
    assert_eq!(
        again.request(json!({"op": "get", "key": "t1"})).await?["code"],
        404
    );
    assert_error(
        &first.request(json!({"op": "get", "key": "t1"})).await?,
        429,
        "retry after",
    );
    assert_error(
        &again.request(json!({"op": "get", "key": "t1"})).await?,
        429,
        "retry after",
    );
    assert_eq!(
        other.request(json!({"op": "get", "key": "u1"})).await?["code"],
        404
    );
    server.stop().await
}

#[tokio::test]
async fn an_ip_over_its_rate_is_refused_at_the_upgrade_and_on_rest() -> Result<()> {
    let mut config = config();
    config.ip_rate_limit = slow_limit(2);
    let server = TestServer::start_with(config, None).await?;
    let mut ws = server.ws().await?; // 1
    assert_eq!(server.http("GET", "/health", None).await?.status, 200); // 2
    let url = format!("ws://{}/ws?apiKey={KEY}", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()["retry-after"], "10");
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    let rest = server.http("GET", "/record/x", None).await?;
    assert_eq!(rest.status, 429);
    assert!(rest.body["error"]
        .as_str()
        .unwrap()
        .contains("Rate limit exceeded"));
    // A connection already open is not an HTTP request: it carries on.
    ws.assert_alive().await?;
    server.stop().await
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() -> Result<()> {
    let mut config = config();
    config.max_subscriptions = 3;
    let server = TestServer::start_with(config, None).await?;
    let mut ws = server.ws().await?;
    let subscribe = |patterns: &[&str]| json!({"op": "subscribe", "patterns": patterns});
    assert_ok(&ws.request(subscribe(&["a", "b"])).await?);
    // Patterns already held do not count again.
    assert_ok(&ws.request(subscribe(&["a", "b", "c", "c"])).await?);
    let refused = ws.request(subscribe(&["d"])).await?;
    assert_error(
        &refused,
        400,
        "Too many subscriptions: this connection would hold 4 patterns; the limit is 3",
    );
    // The refused pattern was not added: a write to "d" notifies nobody, one to "c" does.
    assert_ok(
        &ws.request(json!({"op": "set", "key": "d", "value": "1"}))
            .await?,
    );
    ws.send(&json!({"op": "set", "key": "c", "value": "1"}))
        .await?;
    assert_eq!(ws.notification().await?["key"], "c");
    assert_ok(&ws.recv().await?);
    // Unsubscribing makes room.
    assert_ok(
        &ws.request(json!({"op": "unsubscribe", "patterns": ["a"]}))
            .await?,
    );
    assert_ok(&ws.request(subscribe(&["d"])).await?);
    server.stop().await
}

/// Reads until the server closes the socket; fails if it is still open after `limit`.
async fn closed_within(socket: &mut TcpStream, limit: Duration) -> Result<Vec<u8>> {
    let mut received = Vec::new();
    tokio::time::timeout(limit, socket.read_to_end(&mut received)).await??;
    Ok(received)
}

#[tokio::test]
async fn connections_that_never_send_credentials_are_closed() -> Result<()> {
    let mut config = config();
    config.handshake_timeout = Duration::from_millis(200);
    let server = TestServer::start_with(config, None).await?;
    // Says nothing at all.
    let mut silent = TcpStream::connect(server.addr).await?;
    closed_within(&mut silent, Duration::from_secs(10)).await?;
    // Starts a request head and never finishes it (slowloris).
    let mut slow = TcpStream::connect(server.addr).await?;
    slow.write_all(b"GET /ws?apiKey=").await?;
    closed_within(&mut slow, Duration::from_secs(10)).await?;
    // An upgraded WebSocket is past the handshake: silence longer than the timeout
    // does not close it (pings govern it from here).
    let mut ws = server.ws().await?;
    let quiet = tokio::time::sleep(Duration::from_millis(500));
    quiet.await; // a wall-clock wait is the point: longer than the handshake timeout
    ws.assert_alive().await?;
    server.stop().await
}

#[tokio::test]
async fn a_rotated_secret_keeps_old_tokens_valid_for_the_grace_period() -> Result<()> {
    let old = TestServer::start().await?;
    let old_token = old.token(json!({"accessPattern": "r*"})).await?;
    old.stop().await?;

    let rotated = |grace: Duration| {
        let mut config = ServerConfig::new(vec![KEY.into()], b"the-new-secret".to_vec());
        config.previous_token_secret = Some(SECRET.to_vec());
        config.previous_token_secret_until_ms = now_ms() + grace.as_millis() as u64;
        config
    };
    let during = TestServer::start_with(rotated(Duration::from_secs(3600)), None).await?;
    let mut ws = during.ws_token(&old_token).await?;
    assert_ok(
        &ws.request(json!({"op": "set", "key": "r1", "value": "v"}))
            .await?,
    );
    let new_token = during.token(json!({"accessPattern": "r*"})).await?;
    Ws::connect(&format!("ws://{}/ws?token={new_token}", during.addr))
        .await?
        .assert_alive()
        .await?;
    during.stop().await?;

    let after = TestServer::start_with(rotated(Duration::ZERO), None).await?;
    let url = format!("ws://{}/ws?token={old_token}", after.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a 403 after the grace period, got {other:?}"),
    }
    after.stop().await?;

    // A connection opened with an old token during the grace period is closed when
    // the period ends; one opened with a new token stays.
    let ending = TestServer::start_with(rotated(Duration::from_millis(500)), None).await?;
    let mut old = ending.ws_token(&old_token).await?;
    old.assert_alive().await?;
    let new_token = ending.token(json!({"accessPattern": "r*"})).await?;
    let mut new = ending.ws_token(&new_token).await?;
    let frame = loop {
        match old.next_message().await? {
            Message::Close(frame) => break frame.expect("a close frame with a code"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("rotated out"), "{}", frame.reason);
    new.assert_alive().await?;
    ending.stop().await
}

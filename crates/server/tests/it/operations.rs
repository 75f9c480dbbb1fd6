//! Operations: `/metrics` (on the main port or its own), the connection limit, and
//! pings for silent connections.

use std::time::Duration;

use anyhow::Result;
use futures_util::StreamExt;
use ripplekv_server::ServerConfig;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{assert_ok, http, http_raw, TestServer, Ws, KEY, SECRET};

#[tokio::test]
async fn metrics_count_requests_connections_and_notifications() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": "subscribe", "patterns": ["m:*"]}))
            .await?,
    );
    // The writer hears its own write first, then the reply.
    ws.send(&json!({"op": 2, "key": "m:1", "value": "v"}))
        .await?;
    ws.notification().await?;
    assert_ok(&ws.recv().await?);
    assert_eq!(
        ws.request(json!({"op": 1, "key": "missing"})).await?["code"],
        404
    );
    ws.send_text("not json").await?;
    ws.recv().await?;
    server.http("GET", "/record/m:1", None).await?;
    let reply = reqwest_text(&server, "/metrics").await?;
    for line in [
        "ripplekv_connections_open 1",
        "ripplekv_requests_total{op=\"set\",code=\"200\"} 1",
        "ripplekv_requests_total{op=\"get\",code=\"404\"} 1",
        "ripplekv_requests_total{op=\"get\",code=\"200\"} 1",
        "ripplekv_requests_total{op=\"invalid\",code=\"400\"} 1",
        "ripplekv_requests_total{op=\"subscribe\",code=\"200\"} 1",
        "ripplekv_request_seconds_count{op=\"set\"} 1",
        "ripplekv_subscriptions 1",
        "ripplekv_revision 1",
    ] {
        assert!(reply.contains(line), "missing {line:?} in\n{reply}");
    }
    assert!(reply.contains("ripplekv_request_seconds_bucket{op=\"get\",le=\"+Inf\"} 2"));
    server.stop().await
}

/// Two servers in one process count apart: every counter belongs to its instance. And
/// a subscribe that is refused counts as refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_belong_to_their_server_and_count_refused_subscribes() -> Result<()> {
    let busy = TestServer::start().await?;
    let quiet = TestServer::start().await?;
    let mut ws = busy.ws().await?;
    assert_ok(
        &ws.request(json!({"op": "subscribe", "patterns": ["q:*"]}))
            .await?,
    );
    ws.send(&json!({"op": 2, "key": "q:1", "value": "v"}))
        .await?;
    ws.notification().await?;
    assert_ok(&ws.recv().await?);
    let bad = ws
        .request(json!({"op": "subscribe", "patterns": [""], "messageId": 3}))
        .await?;
    assert_ne!(bad["code"], 200, "{bad}");
    let code = bad["code"].as_u64().unwrap();
    let busy_metrics = reqwest_text(&busy, "/metrics").await?;
    let quiet_metrics = reqwest_text(&quiet, "/metrics").await?;
    for (text, expected) in [(&busy_metrics, 1), (&quiet_metrics, 0)] {
        assert!(
            text.contains(&format!("ripplekv_notifications_queued_total {expected}\n")),
            "expected {expected} queued in\n{text}"
        );
    }
    assert!(
        busy_metrics.contains(&format!(
            "ripplekv_requests_total{{op=\"subscribe\",code=\"{code}\"}} 1"
        )),
        "{busy_metrics}"
    );
    assert!(busy_metrics.contains("ripplekv_requests_total{op=\"subscribe\",code=\"200\"} 1"));
    busy.stop().await?;
    quiet.stop().await
}

/// With a metrics listener, `/metrics` is served there alone and not on the main port,
/// which serves everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_to_their_own_listener() -> Result<()> {
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let metrics_addr = metrics.local_addr()?;
    let listeners = ripplekv_server::Listeners {
        main: tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        metrics: Some(metrics),
    };
    let config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    let server = TestServer::start_on(config, None, listeners).await?;
    server.http("GET", "/record/m", None).await?;
    let main = http(server.addr, "GET", "/metrics", &[], None).await?;
    assert_eq!(main.status, 404, "{main:?}");
    assert_eq!(server.http("GET", "/health", None).await?.status, 200);
    let moved = http_raw(metrics_addr, "GET", "/metrics", &[]).await?;
    assert!(moved.head.starts_with("HTTP/1.1 200"), "{}", moved.head);
    assert!(
        moved
            .body
            .contains("ripplekv_requests_total{op=\"get\",code=\"404\"} 1"),
        "{}",
        moved.body
    );
    // Only the metrics are there.
    let other = http(metrics_addr, "GET", "/health", &[], None).await?;
    assert_eq!(other.status, 404);
    server.stop().await?;
    // Shutdown closed the metrics listener too.
    assert!(tokio::net::TcpStream::connect(metrics_addr).await.is_err());
    Ok(())
}

/// The body of a GET as text (the metrics are not JSON).
pub(crate) async fn reqwest_text(server: &TestServer, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(server.addr).await?;
    socket
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut raw = String::new();
    socket.read_to_string(&mut raw).await?;
    Ok(raw
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

#[tokio::test]
async fn upgrades_beyond_the_connection_limit_get_503() -> Result<()> {
    let mut config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    config.max_connections = 2;
    let server = TestServer::start_with(config, None).await?;
    let mut first = server.ws().await?;
    let mut second = server.ws().await?;
    // Both sessions are running once they answer.
    first.assert_alive().await?;
    second.assert_alive().await?;
    let url = format!("ws://{}/ws?apiKey={KEY}", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    let metrics = reqwest_text(&server, "/metrics").await?;
    assert!(metrics.contains("ripplekv_connections_refused_total 1"));
    assert_eq!(
        http(server.addr, "GET", "/health", &[], None).await?.status,
        200,
        "HTTP still works"
    );
    server.stop().await
}

fn quick_pings() -> ServerConfig {
    let mut config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    config.ping_interval = Duration::from_millis(50);
    config.pong_timeout = Duration::from_millis(50);
    config
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_closed() -> Result<()> {
    let server = TestServer::start_with(quick_pings(), None).await?;
    let (mut silent, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?apiKey={KEY}", server.addr)).await?;
    // Not reading means not answering pings. The timeout has to pass on the clock.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut saw_ping = false;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), silent.next()).await? {
            Some(Ok(Message::Ping(_))) => saw_ping = true,
            Some(Ok(Message::Close(frame))) => break frame,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(saw_ping);
    let frame = close.expect("a close frame");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1001, "ping timeout")
    );
    server.stop().await
}

#[tokio::test]
async fn idle_peers_that_answer_pings_stay_connected() -> Result<()> {
    let server = TestServer::start_with(quick_pings(), None).await?;
    let mut ws: Ws = server.ws().await?;
    // Reading (as every WebSocket client does) answers pings automatically.
    let idle_for = tokio::time::sleep(Duration::from_millis(400));
    tokio::pin!(idle_for);
    loop {
        tokio::select! {
            () = &mut idle_for => break,
            message = ws.next_message() => assert!(matches!(message?, Message::Ping(_))),
        }
    }
    ws.assert_alive().await?;
    server.stop().await
}

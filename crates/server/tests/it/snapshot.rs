//! `GET /admin/snapshot`: authentication, the JSON-lines format, consistency, and a
//! `since` beyond the store's history (as after a restore) answered with a resync.

use anyhow::Result;
use ripplekv_proto::snapshot::{Line, FORMAT};
use serde_json::json;

use crate::common::{assert_ok, http, TestServer};

/// Fetches the snapshot and parses every line.
async fn snapshot_lines(server: &TestServer) -> Result<Vec<Line>> {
    let raw = crate::common::http_raw(
        server.addr,
        "GET",
        "/admin/snapshot",
        &[("x-api-key", crate::common::KEY)],
    )
    .await?;
    assert!(raw.head.contains("application/x-ndjson"), "{}", raw.head);
    raw.body
        .lines()
        .map(|line| Line::parse(line).map_err(anyhow::Error::msg))
        .collect()
}

#[tokio::test]
async fn the_snapshot_holds_every_live_record_between_a_header_and_a_trailer() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for (key, value) in [("b", "2"), ("a", "1"), ("c", "3"), ("a", "1b")] {
        assert_ok(
            &ws.request(json!({"op": "set", "key": key, "value": value}))
                .await?,
        );
    }
    assert_ok(&ws.request(json!({"op": "delete", "key": "c"})).await?);
    assert_ok(
        &ws.request(json!({"op": "set", "key": "t", "value": "x", "ttl": 3600}))
            .await?,
    );
    let lines = snapshot_lines(&server).await?;
    let Some(Line::Header(header)) = lines.first() else {
        panic!("no header: {lines:?}")
    };
    assert_eq!(
        (header.format.as_str(), header.revision, header.keys),
        (FORMAT, 6, 3)
    );
    let entries: Vec<_> = lines
        .iter()
        .filter_map(|line| match line {
            Line::Entry(entry) => Some((entry.key.as_str(), entry.value.as_str(), entry.revision)),
            _ => None,
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("a", "1b", Some(4)),
            ("b", "2", Some(1)),
            ("t", "x", Some(6))
        ]
    );
    let Some(Line::Entry(ttl)) = lines.get(3) else {
        panic!()
    };
    assert!(ttl.expires_at_ms.is_some());
    assert!(matches!(lines.last(), Some(Line::Trailer(t)) if t.end && t.records == 3));
    server.stop().await
}

#[tokio::test]
async fn the_snapshot_needs_an_api_key() -> Result<()> {
    let server = TestServer::start().await?;
    let refused = http(
        server.addr,
        "GET",
        "/admin/snapshot",
        &[("x-api-key", "wrong")],
        None,
    )
    .await?;
    assert_eq!(refused.status, 401);
    let missing = http(server.addr, "GET", "/admin/snapshot", &[], None).await?;
    assert_eq!(missing.status, 401);
    server.stop().await
}

#[tokio::test]
async fn since_beyond_the_store_history_asks_for_a_resync() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": "set", "key": "k", "value": "v"}))
            .await?,
    );
    let reply = ws
        .request(json!({"op": "subscribe", "patterns": ["k"], "since": 50}))
        .await?;
    assert_ok(&reply);
    assert_eq!(ws.recv().await?, json!({"type": "resync", "revision": 1}));
    // Live delivery carries on after the resync.
    ws.send(&json!({"op": "set", "key": "k", "value": "w"}))
        .await?;
    assert_eq!(ws.notification().await?["value"], "w");
    server.stop().await
}

#[tokio::test]
async fn at_most_two_snapshots_stream_at_once() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    // 24 MB: more than socket buffers absorb, so unread snapshots stay in progress.
    let value = "v".repeat(60_000);
    for i in 0..400 {
        assert_ok(
            &ws.request(json!({"op": "set", "key": format!("big:{i:03}"), "value": value}))
                .await?,
        );
    }
    let request = format!(
        "GET /admin/snapshot HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\n\r\n",
        crate::common::KEY
    );
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await?;
        tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes()).await?;
        // Wait for the response to start, so the snapshot is surely running.
        let mut first = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut socket, &mut first).await?;
        assert_eq!(&first, b"HTTP/1.1 200");
        stalled.push(socket);
    }
    let third = http(
        server.addr,
        "GET",
        "/admin/snapshot",
        &[("x-api-key", crate::common::KEY)],
        None,
    )
    .await?;
    assert_eq!(third.status, 503, "{third:?}");
    assert!(third.body["error"]
        .as_str()
        .unwrap()
        .contains("already being taken"));
    // When one finishes (its client leaves), another may start.
    drop(stalled);
    let lines = loop {
        match crate::common::http_raw(
            server.addr,
            "GET",
            "/admin/snapshot",
            &[("x-api-key", crate::common::KEY)],
        )
        .await
        {
            Ok(raw) if raw.head.starts_with("HTTP/1.1 200") => break raw.body,
            _ => tokio::task::yield_now().await,
        }
    };
    assert!(lines.lines().last().unwrap().contains("\"records\":400"));
    server.stop().await
}

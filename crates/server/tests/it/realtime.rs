//! Real-time: tokens, access patterns, notifications, in-band subscriptions with
//! `since` replay, and the slow-consumer policy.

use std::time::Duration;

use anyhow::Result;
use ripplekv_core::{Limits, Retention};
use ripplekv_server::ServerConfig;
use ripplekv_storage::MemoryStore;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{assert_error, assert_ok, http, TestServer, KEY, SECRET};
use crate::hooked::HookedStore;

const DENIED: &str = "Access denied: Key does not match allowed pattern";

#[tokio::test]
async fn tokens_are_issued_only_for_an_api_key_and_checked_at_upgrade() -> Result<()> {
    let server = TestServer::start().await?;
    let body = r#"{"subscribeKeys":["a"],"accessPattern":"a*"}"#;
    let refused = http(server.addr, "POST", "/token/websocket", &[], Some(body)).await?;
    assert_eq!(refused.status, 401);
    let bad = server
        .http("POST", "/token/websocket", Some(r#"{"subscribeKeys":"a"}"#))
        .await?;
    assert_eq!(bad.status, 400);
    let token = server
        .token(json!({"subscribeKeys": ["elsewhere"], "accessPattern": "a*"}))
        .await?;
    let mut ws = server.ws_token(&token).await?;
    assert_ok(
        &ws.request(json!({"op": 2, "key": "a", "value": "v"}))
            .await?,
    );
    // The same token serves many connections and reconnects.
    drop(ws);
    let mut again = server.ws_token(&token).await?;
    assert_ok(&again.request(json!({"op": 1, "key": "a"})).await?);
    // A token with any one byte changed is refused with 403 at the upgrade.
    let mut forged = token.clone().into_bytes();
    let middle = forged.len() / 2;
    forged[middle] = if forged[middle] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged)?;
    assert_eq!(
        upgrade_status(&server, &format!("token={forged}")).await?,
        403
    );
    assert_eq!(upgrade_status(&server, "token=").await?, 403);
    server.stop().await
}

async fn upgrade_status(server: &TestServer, query: &str) -> Result<u16> {
    let url = format!("ws://{}/ws?{query}", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => Ok(101),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Ok(response.status().as_u16())
        }
        Err(other) => Err(other.into()),
    }
}

#[tokio::test]
async fn expired_tokens_are_refused() -> Result<()> {
    let mut config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    config.token_lifetime = Duration::ZERO; // expired as soon as issued
    let server = TestServer::start_with(config, None).await?;
    let token = server.token(json!({"accessPattern": "*"})).await?;
    assert_eq!(
        upgrade_status(&server, &format!("token={token}")).await?,
        403
    );
    server.stop().await
}

#[tokio::test]
async fn access_pattern_applies_to_every_op() -> Result<()> {
    let server = TestServer::start().await?;
    let mut admin = server.ws().await?;
    for key in ["user:1", "user:2", "admin:1", "user:3"] {
        assert_ok(
            &admin
                .request(json!({"op": 2, "key": key, "value": "5"}))
                .await?,
        );
    }
    let token = server
        .token(json!({"accessPattern": "^user:[0-9]+$"}))
        .await?;
    let mut ws = server.ws_token(&token).await?;
    for (allowed, key) in [(true, "user:1"), (false, "admin:1")] {
        let requests = [
            json!({"op": 1, "key": key}),
            json!({"op": 2, "key": key, "value": "6"}),
            json!({"op": 3, "key": key, "value": "7"}),
            json!({"op": 6, "key": key, "value": 1}),
            json!({"op": 4, "key": key}),
        ];
        for request in requests {
            let reply = ws.request(request.clone()).await?;
            if allowed {
                assert_ok(&reply);
            } else {
                assert_error(&reply, 403, DENIED);
            }
        }
    }
    assert_eq!(
        admin.request(json!({"op": 1, "key": "admin:1"})).await?["value"],
        "5"
    );
    // RANGE leaves out what the pattern does not allow, and still fills the page.
    let reply = ws
        .request(json!({"op": 5, "key": "a", "endKey": "z", "limit": 1}))
        .await?;
    assert_eq!(reply["records"][0]["key"], "user:2");
    assert_eq!(reply["truncated"], true);
    let reply = ws
        .request(json!({"op": 5, "key": "a", "endKey": "z"}))
        .await?;
    let keys: Vec<&str> = reply["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["user:2", "user:3"]);
    // A token without an access pattern may not read or write at all.
    let token = server.token(json!({"subscribeKeys": ["user:2"]})).await?;
    let mut watcher = server.ws_token(&token).await?;
    assert_error(
        &watcher.request(json!({"op": 1, "key": "user:2"})).await?,
        403,
        DENIED,
    );
    assert_error(
        &watcher
            .request(json!({"op": 2, "key": "x", "value": "v"}))
            .await?,
        403,
        DENIED,
    );
    assert_error(
        &watcher
            .request(json!({"op": 5, "key": "a", "endKey": "z"}))
            .await?,
        403,
        DENIED,
    );
    server.stop().await
}

#[tokio::test]
async fn notifications_have_the_shape_of_each_op() -> Result<()> {
    let server = TestServer::start().await?;
    let token = server
        .token(json!({"subscribeKeys": ["doc"], "subscribePatterns": ["n*"]}))
        .await?;
    let mut watcher = server.ws_token(&token).await?;
    let mut writer = server.ws().await?;
    let cases = [
        (
            json!({"op": 2, "key": "doc", "value": r#"{"a":1}"#}),
            "set",
            json!(r#"{"a":1}"#),
        ),
        (
            json!({"op": 3, "key": "doc", "value": r#"{"b":2}"#}),
            "patch",
            json!(r#"{"b":2}"#),
        ),
        (
            json!({"op": 6, "key": "n1", "value": 41}),
            "atomic",
            json!("41"),
        ),
        (json!({"op": 4, "key": "doc"}), "delete", Value::Null),
    ];
    for (request, op, value) in cases {
        let reply = writer.request(request.clone()).await?;
        assert_ok(&reply);
        let note = watcher.notification().await?;
        assert_eq!(note["type"], "notification");
        assert_eq!(note["key"], request["key"]);
        assert_eq!(note["value"], value, "{op}");
        assert_eq!(note["op"], op);
        assert_eq!(note["revision"], reply["revision"]);
        assert!(note["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }
    server.stop().await
}

#[tokio::test]
async fn the_writer_hears_its_own_write_before_its_reply() -> Result<()> {
    let server = TestServer::start().await?;
    let token = server
        .token(json!({"subscribeKeys": ["mine"], "accessPattern": "mine"}))
        .await?;
    let mut ws = server.ws_token(&token).await?;
    ws.send(&json!({"op": 2, "key": "mine", "value": "v", "messageId": 1}))
        .await?;
    let first = ws.recv().await?;
    assert_eq!(first["type"], "notification");
    let second = ws.recv().await?;
    assert_eq!(second["messageId"], 1);
    server.stop().await
}

#[tokio::test]
async fn only_subscribed_keys_notify_and_every_subscriber_hears_once() -> Result<()> {
    let server = TestServer::start().await?;
    // Overlapping patterns on one connection still give one notification per write.
    let token = server
        .token(json!({"subscribeKeys": ["a"], "subscribePatterns": ["a*", "^a$"]}))
        .await?;
    let mut first = server.ws_token(&token).await?;
    let mut second = server.ws_token(&token).await?;
    let mut writer = server.ws().await?;
    assert_ok(
        &writer
            .request(json!({"op": 2, "key": "b", "value": "ignored"}))
            .await?,
    );
    assert_ok(
        &writer
            .request(json!({"op": 2, "key": "a", "value": "1"}))
            .await?,
    );
    assert_ok(
        &writer
            .request(json!({"op": 2, "key": "a", "value": "2"}))
            .await?,
    );
    for ws in [&mut first, &mut second] {
        assert_eq!(ws.notification().await?["value"], "1");
        assert_eq!(ws.notification().await?["value"], "2");
    }
    // Nothing else is pending: a round trip comes back next.
    first.assert_alive().await?;
    second.assert_alive().await?;
    server.stop().await
}

#[tokio::test]
async fn rest_writes_notify_too() -> Result<()> {
    let server = TestServer::start().await?;
    let token = server.token(json!({"subscribeKeys": ["r"]})).await?;
    let mut watcher = server.ws_token(&token).await?;
    server
        .http("POST", "/record", Some(r#"{"key":"r","value":"1"}"#))
        .await?;
    server
        .http(
            "POST",
            "/record/atomic",
            Some(r#"{"key":"r","increment":2}"#),
        )
        .await?;
    server.http("DELETE", "/record/r", None).await?;
    assert_eq!(watcher.notification().await?["value"], "1");
    assert_eq!(watcher.notification().await?["value"], "3");
    assert_eq!(watcher.notification().await?["value"], Value::Null);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_notified_in_commit_order() -> Result<()> {
    let server = TestServer::start().await?;
    let mut watcher = server.ws().await?;
    assert_ok(
        &watcher
            .request(json!({"op": "subscribe", "patterns": ["count"]}))
            .await?,
    );
    let mut writers = Vec::new();
    for _ in 0..4 {
        let mut ws = server.ws().await?;
        writers.push(tokio::spawn(async move {
            for _ in 0..50 {
                ws.request(json!({"op": 6, "key": "count", "value": 1}))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    // Every increment is seen once, in order: values 1..=200, revisions increasing.
    let mut last_revision = 0;
    for expected in 1..=200 {
        let note = watcher.notification().await?;
        assert_eq!(note["value"], expected.to_string());
        let revision = note["revision"].as_u64().unwrap();
        assert!(revision > last_revision);
        last_revision = revision;
    }
    server.stop().await
}

#[tokio::test]
async fn in_band_subscribe_and_unsubscribe() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    let reply = ws
        .request(json!({"op": "subscribe", "patterns": ["x:*"], "messageId": 5}))
        .await?;
    assert_ok(&reply);
    assert_eq!(reply["patterns"], json!(["x:*"]));
    assert_eq!(reply["messageId"], 5);
    let mut writer = server.ws().await?;
    assert_ok(
        &writer
            .request(json!({"op": 2, "key": "x:1", "value": "v"}))
            .await?,
    );
    assert_eq!(ws.notification().await?["key"], "x:1");
    let reply = ws
        .request(json!({"op": "unsubscribe", "patterns": ["x:*", "never"]}))
        .await?;
    assert_eq!(reply["patterns"], json!(["x:*"]));
    assert_ok(
        &writer
            .request(json!({"op": 2, "key": "x:2", "value": "v"}))
            .await?,
    );
    ws.assert_alive().await?; // no notification came first
                              // Token connections only hear about keys their access pattern allows.
    let token = server.token(json!({"accessPattern": "x:1"})).await?;
    let mut limited = server.ws_token(&token).await?;
    assert_ok(
        &limited
            .request(json!({"op": "subscribe", "patterns": ["x:*"]}))
            .await?,
    );
    assert_ok(
        &writer
            .request(json!({"op": 2, "key": "x:2", "value": "hidden"}))
            .await?,
    );
    assert_ok(
        &writer
            .request(json!({"op": 2, "key": "x:1", "value": "shown"}))
            .await?,
    );
    assert_eq!(limited.notification().await?["value"], "shown");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_since_loses_nothing_and_doubles_nothing_while_writes_continue() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": "subscribe", "patterns": ["r:*"]}))
            .await?,
    );
    let mut writer = server.ws().await?;
    // Every write goes to an r:* key, so the revisions seen must be exactly 1..=N.
    for i in 0..20 {
        assert_ok(
            &writer
                .request(json!({"op": 2, "key": format!("r:{i}"), "value": "v"}))
                .await?,
        );
    }
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(ws.notification().await?["revision"].as_u64().unwrap());
    }
    drop(ws); // disconnect midway through the stream
    let writing = tokio::spawn(async move {
        for i in 20..400 {
            writer
                .request(json!({"op": 2, "key": format!("r:{i}"), "value": "v"}))
                .await?;
        }
        anyhow::Ok(())
    });
    let since = *seen.last().unwrap();
    let mut ws = server.ws().await?;
    let reply = ws
        .request(json!({"op": "subscribe", "patterns": ["r:*"], "since": since}))
        .await?;
    assert_ok(&reply);
    writing.await??;
    while seen.len() < 400 {
        seen.push(ws.notification().await?["revision"].as_u64().unwrap());
    }
    assert_eq!(seen, (1..=400).collect::<Vec<u64>>());
    ws.assert_alive().await?; // and nothing beyond
    server.stop().await
}

#[tokio::test]
async fn since_older_than_the_retained_log_asks_for_a_resync() -> Result<()> {
    let retention = Retention {
        max_entries: 5,
        max_age: Duration::from_secs(3600),
    };
    let store = std::sync::Arc::new(MemoryStore::with_retention(Limits::default(), retention));
    let server = TestServer::start_with(
        ServerConfig::new(vec![KEY.into()], SECRET.to_vec()),
        Some(store),
    )
    .await?;
    let mut ws = server.ws().await?;
    for i in 0..10 {
        assert_ok(
            &ws.request(json!({"op": 2, "key": format!("k{i}"), "value": "v"}))
                .await?,
        );
    }
    assert_ok(
        &ws.request(json!({"op": "subscribe", "patterns": ["k*"], "since": 2}))
            .await?,
    );
    let resync = ws.recv().await?;
    assert_eq!(resync, json!({"type": "resync", "revision": 10}));
    // Within the retained log, the replay works.
    assert_ok(
        &ws.request(json!({"op": "subscribe", "patterns": ["k9"], "since": 8}))
            .await?,
    );
    assert_eq!(ws.notification().await?["key"], "k9");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_while_a_healthy_one_keeps_receiving() -> Result<()> {
    let mut config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    config.outbox_messages = 16;
    config.outbox_bytes = 256 * 1024;
    let server = TestServer::start_with(config, None).await?;
    let mut slow = server.ws().await?;
    assert_ok(
        &slow
            .request(json!({"op": "subscribe", "patterns": ["flood:*"]}))
            .await?,
    );
    let mut healthy = server.ws().await?;
    assert_ok(
        &healthy
            .request(json!({"op": "subscribe", "patterns": ["flood:*"]}))
            .await?,
    );
    let mut writer = server.ws().await?;
    let value = "x".repeat(60_000);
    const WRITES: usize = 300; // 18 MB of notifications per subscriber
                               // The healthy one takes each notification before the next write: however loaded
                               // the machine, it never falls behind, so only the one that stops reading may be
                               // closed (a reader that lags four 60 KB notifications would be slow too).
    for i in 0..WRITES {
        assert_ok(
            &writer
                .request(json!({"op": 2, "key": format!("flood:{i}"), "value": value}))
                .await?,
        );
        let note = healthy.notification().await?;
        assert_eq!(note["key"], format!("flood:{i}"));
    }
    // The slow one gets what fit, then a 1008 close.
    let close = loop {
        match slow.next_message().await? {
            Message::Text(_) => continue,
            Message::Close(frame) => break frame,
            other => panic!("unexpected {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "slow consumer");
    assert!(server.store.revision() >= WRITES as u64);
    server.stop().await
}

/// A `subscribe` with `since` holds the connection's live notifications back while it
/// replays; a change for one of the connection's *other* subscriptions committed in
/// that window is in the log but not replayed (it matches none of the new patterns),
/// so it must still be delivered, once, and in revision order with the replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_does_not_swallow_changes_for_the_connections_other_subscriptions() -> Result<()> {
    let store = std::sync::Arc::new(HookedStore::default());
    let config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    let server = TestServer::start_with(config, Some(store.clone())).await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": "subscribe", "patterns": ["a:*"]}))
            .await?,
    );
    // History for the replay: b:1 at revision 1.
    let written = server
        .http("POST", "/record", Some(r#"{"key":"b:1","value":"old"}"#))
        .await?;
    assert_eq!(written.body["revision"], 1, "{written:?}");
    store.write_during_next_log_read(&["a:live", "b:2"]);
    ws.send(&json!({"op": "subscribe", "patterns": ["b:*"], "since": 0, "messageId": 9}))
        .await?;
    assert_eq!(ws.recv().await?["messageId"], 9, "the reply comes first");
    // Then, in revision order: the replayed b:1 (1); a:live (2), written while the
    // replay read the log and owed to the a:* subscription; the replayed b:2 (3).
    for (key, revision) in [("b:1", 1), ("a:live", 2), ("b:2", 3)] {
        let notification = ws.notification().await?;
        assert_eq!(
            (
                notification["key"].clone(),
                notification["revision"].clone()
            ),
            (json!(key), json!(revision)),
            "{notification}"
        );
    }
    // Nothing doubled: the next frame is the reply to this GET.
    let reply = ws
        .request(json!({"op": 1, "key": "a:live", "messageId": 10}))
        .await?;
    assert_eq!(reply["messageId"], 10, "{reply}");
    server.stop().await
}

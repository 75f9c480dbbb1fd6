//! Part B writes: conditional writes (`ifRevision`), TTL with `expire` changes, and
//! atomic JSON Patch.

use std::time::Duration;

use anyhow::Result;
use ripplekv_server::ServerConfig;
use serde_json::{json, Value};

use crate::common::{assert_error, assert_ok, TestServer, KEY, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_conditional_writers_exactly_one_wins() -> Result<()> {
    let server = TestServer::start().await?;
    let mut setup = server.ws().await?;
    let start = setup
        .request(json!({"op": 2, "key": "race", "value": "0"}))
        .await?;
    let mut revision = start["revision"].as_u64().unwrap();
    for round in 0..20 {
        let mut contenders = Vec::new();
        for who in ["a", "b"] {
            let mut ws = server.ws().await?;
            let value = format!("{who}{round}");
            contenders.push(tokio::spawn(async move {
                ws.request(json!({"op": 2, "key": "race", "value": value, "ifRevision": revision}))
                    .await
            }));
        }
        let mut replies = Vec::new();
        for contender in contenders {
            replies.push(contender.await??);
        }
        let winners: Vec<&Value> = replies
            .iter()
            .filter(|reply| reply["code"] == 200)
            .collect();
        let losers: Vec<&Value> = replies
            .iter()
            .filter(|reply| reply["code"] == 409)
            .collect();
        assert_eq!((winners.len(), losers.len()), (1, 1), "{replies:?}");
        let won = winners[0]["revision"].as_u64().unwrap();
        assert_eq!(
            losers[0]["revision"], won,
            "the 409 names the current revision"
        );
        assert!(losers[0]["error"]
            .as_str()
            .unwrap()
            .contains("Revision mismatch"));
        revision = won;
    }
    server.stop().await
}

#[tokio::test]
async fn if_revision_zero_means_create_only_and_applies_to_every_write() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    let created = ws
        .request(json!({"op": 2, "key": "once", "value": "1", "ifRevision": 0}))
        .await?;
    assert_ok(&created);
    let again = ws
        .request(json!({"op": 2, "key": "once", "value": "2", "ifRevision": 0}))
        .await?;
    assert_error(&again, 409, "Revision mismatch");
    assert_eq!(again["revision"], created["revision"]);
    let stale = created["revision"].as_u64().unwrap() + 100;
    for request in [
        json!({"op": 3, "key": "once", "value": "x", "ifRevision": stale}),
        json!({"op": "jsonpatch", "key": "once", "value": "[]", "ifRevision": stale}),
        json!({"op": 4, "key": "once", "ifRevision": stale}),
    ] {
        assert_error(&ws.request(request).await?, 409, "Revision mismatch");
    }
    let revision = created["revision"].clone();
    assert_ok(
        &ws.request(json!({"op": 4, "key": "once", "ifRevision": revision}))
            .await?,
    );
    server.stop().await
}

#[tokio::test]
async fn ttl_expiry_is_hidden_at_once_then_notified_and_replayable() -> Result<()> {
    let mut config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    config.expiry_sweep_interval = Duration::from_millis(20);
    let server = TestServer::start_with(config, None).await?;
    let mut watcher = server.ws().await?;
    assert_ok(
        &watcher
            .request(json!({"op": "subscribe", "patterns": ["session:*"]}))
            .await?,
    );
    let mut ws = server.ws().await?;
    let set = ws
        .request(json!({"op": 2, "key": "session:1", "value": "v", "ttl": 0.3}))
        .await?;
    assert_ok(&set);
    assert_ok(
        &ws.request(json!({"op": 2, "key": "session:2", "value": "kept"}))
            .await?,
    );
    assert_eq!(watcher.notification().await?["op"], "set");
    assert_eq!(watcher.notification().await?["op"], "set");
    // The sweeper's expire change arrives like any other (await it, no sleeping).
    let expired = watcher.notification().await?;
    assert_eq!(expired["op"], "expire");
    assert_eq!(expired["key"], "session:1");
    assert_eq!(expired["value"], Value::Null);
    assert_error(
        &ws.request(json!({"op": 1, "key": "session:1"})).await?,
        404,
        "Record not found",
    );
    assert_eq!(
        ws.request(json!({"op": 1, "key": "session:2"})).await?["value"],
        "kept"
    );
    // Replayable: a late subscriber replaying from before the SET sees set then expire.
    let since = set["revision"].as_u64().unwrap() - 1;
    let mut late = server.ws().await?;
    assert_ok(
        &late
            .request(json!({"op": "subscribe", "patterns": ["session:1"], "since": since}))
            .await?,
    );
    assert_eq!(late.notification().await?["op"], "set");
    assert_eq!(late.notification().await?["op"], "expire");
    server.stop().await
}

#[tokio::test]
async fn expired_keys_are_never_returned_even_before_the_sweeper_runs() -> Result<()> {
    let mut config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    config.expiry_sweep_interval = Duration::from_secs(3600); // never, in this test
    let server = TestServer::start_with(config, None).await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": 2, "key": "t", "value": "v", "ttl": 0.001}))
            .await?,
    );
    // Wait for the 1 ms TTL to pass on the clock; there is no event to await for that.
    let deadline = ripplekv_core::now_ms() + 2;
    while ripplekv_core::now_ms() < deadline {
        tokio::task::yield_now().await;
    }
    assert_error(
        &ws.request(json!({"op": 1, "key": "t"})).await?,
        404,
        "Record not found",
    );
    let page = ws
        .request(json!({"op": 5, "key": "a", "endKey": "z"}))
        .await?;
    assert_eq!(page["count"], 0);
    // Writing it again first commits its expiry, then the new value.
    let mut watcher = server.ws().await?;
    assert_ok(
        &watcher
            .request(json!({"op": "subscribe", "patterns": ["t"]}))
            .await?,
    );
    assert_ok(
        &ws.request(json!({"op": 3, "key": "t", "value": "new"}))
            .await?,
    );
    assert_eq!(watcher.notification().await?["op"], "expire");
    let patched = watcher.notification().await?;
    assert_eq!(
        (patched["op"].clone(), patched["value"].clone()),
        (json!("patch"), json!("new"))
    );
    assert_eq!(
        ws.request(json!({"op": 1, "key": "t"})).await?["value"],
        "new"
    );
    server.stop().await
}

#[tokio::test]
async fn json_patch_is_all_or_nothing() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": 2, "key": "doc", "value": r#"{"items":[1],"version":1}"#}))
            .await?,
    );
    let revision = server.store.revision();
    let failing =
        r#"[{"op":"add","path":"/items/-","value":2},{"op":"test","path":"/version","value":2}]"#;
    let reply = ws
        .request(json!({"op": "jsonpatch", "key": "doc", "value": failing}))
        .await?;
    assert_error(&reply, 400, "JSON Patch failed");
    assert_eq!(server.store.revision(), revision, "nothing was written");
    assert_eq!(
        ws.request(json!({"op": 1, "key": "doc"})).await?["value"],
        r#"{"items":[1],"version":1}"#
    );
    let passing = r#"[{"op":"test","path":"/version","value":1},{"op":"add","path":"/items/-","value":2},{"op":"replace","path":"/version","value":2}]"#;
    assert_ok(
        &ws.request(json!({"op": "jsonpatch", "key": "doc", "value": passing}))
            .await?,
    );
    assert_eq!(
        ws.request(json!({"op": 1, "key": "doc"})).await?["value"],
        r#"{"items":[1,2],"version":2}"#
    );
    assert_error(
        &ws.request(json!({"op": "jsonpatch", "key": "doc", "value": "{}"}))
            .await?,
        400,
        "Invalid JSON Patch",
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_json_patch_appends_lose_nothing() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": 2, "key": "todos", "value": "[]"}))
            .await?,
    );
    let mut tasks = Vec::new();
    for who in 0..2 {
        let mut ws = server.ws().await?;
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let op =
                    json!([{"op": "add", "path": "/-", "value": {"id": format!("{who}-{i}")}}])
                        .to_string();
                let reply = ws
                    .request(json!({"op": "jsonpatch", "key": "todos", "value": op}))
                    .await?;
                assert_eq!(reply["code"], 200, "{reply}");
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let stored = ws.request(json!({"op": 1, "key": "todos"})).await?;
    let todos: Vec<Value> = serde_json::from_str(stored["value"].as_str().unwrap())?;
    assert_eq!(todos.len(), 40);
    server.stop().await
}

//! Every operation's success path and reply shape (PROTOCOL.md A2-A4, part B names).

use anyhow::Result;
use serde_json::json;

use crate::common::{assert_error, assert_ok, TestServer};

#[tokio::test]
async fn set_get_delete_round_trip_with_exact_shapes() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;

    let reply = ws
        .request(json!({"op": 2, "key": "user:1", "value": "Ada ✓", "messageId": 1}))
        .await?;
    assert_ok(&reply);
    assert_eq!(reply["success"], true);
    assert_eq!(reply["messageId"], 1);
    assert!(reply["message"].is_string());
    assert_eq!(reply["revision"], 1);

    let reply = ws
        .request(json!({"op": 1, "key": "user:1", "messageId": 2}))
        .await?;
    assert_ok(&reply);
    assert_eq!(reply["key"], "user:1");
    assert_eq!(reply["value"], "Ada ✓");
    assert_eq!(reply["revision"], 1);
    assert_eq!(reply["messageId"], 2);

    let reply = ws
        .request(json!({"op": 4, "key": "user:1", "value": "", "messageId": 3}))
        .await?;
    assert_ok(&reply);
    assert_eq!(reply["success"], true);
    assert_eq!(reply["revision"], 2);

    let reply = ws
        .request(json!({"op": 1, "key": "user:1", "messageId": 4}))
        .await?;
    assert_error(&reply, 404, "Record not found");
    assert_eq!(reply["messageId"], 4);
    assert_eq!(reply["key"], "user:1");

    let reply = ws
        .request(json!({"op": 4, "key": "user:1", "messageId": 5}))
        .await?;
    assert_error(&reply, 404, "Record not found");
    server.stop().await
}

#[tokio::test]
async fn op_names_are_accepted_case_insensitively() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for (op, value) in [
        ("SET", "a"),
        ("insert", "b"),
        ("Create", "c"),
        ("update", "d"),
        ("append", "e"),
    ] {
        assert_ok(
            &ws.request(json!({"op": op, "key": "k", "value": value}))
                .await?,
        );
    }
    let reply = ws.request(json!({"op": "get", "key": "k"})).await?;
    assert_eq!(reply["value"], "cde");
    assert_ok(
        &ws.request(json!({"op": "atomic", "key": "n", "value": 2}))
            .await?,
    );
    let reply = ws
        .request(json!({"op": "range", "key": "a", "endKey": "z"}))
        .await?;
    assert_eq!(reply["count"], 2);
    assert_ok(&ws.request(json!({"op": "delete", "key": "n"})).await?);
    server.stop().await
}

#[tokio::test]
async fn requests_without_message_id_still_get_a_reply() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    let reply = ws
        .request(json!({"op": 2, "key": "k", "value": "v", "timestamp": 1700000000000u64}))
        .await?;
    assert_ok(&reply);
    assert!(reply.get("messageId").is_none());
    // Non-numeric message ids are echoed unchanged too.
    let reply = ws
        .request(json!({"op": 1, "key": "k", "messageId": "req-7"}))
        .await?;
    assert_eq!(reply["messageId"], "req-7");
    server.stop().await
}

#[tokio::test]
async fn patch_merges_appends_and_creates() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    // Creates a missing key with the given value.
    assert_ok(
        &ws.request(
            json!({"op": 3, "key": "doc", "value": r#"{"a":1,"n":{"x":1,"y":2},"drop":true}"#}),
        )
        .await?,
    );
    // Merges objects recursively; null deletes; arrays replace.
    assert_ok(
        &ws.request(
            json!({"op": 3, "key": "doc", "value": r#"{"n":{"y":3},"drop":null,"list":[1,2]}"#}),
        )
        .await?,
    );
    let reply = ws.request(json!({"op": 1, "key": "doc"})).await?;
    let stored: serde_json::Value =
        serde_json::from_str(reply["value"].as_str().unwrap_or_default())?;
    assert_eq!(
        stored,
        json!({"a": 1, "n": {"x": 1, "y": 3}, "list": [1, 2]})
    );
    // Appends when either side is not a JSON object.
    assert_ok(
        &ws.request(json!({"op": 2, "key": "log", "value": "line1;"}))
            .await?,
    );
    assert_ok(
        &ws.request(json!({"op": 3, "key": "log", "value": "line2;"}))
            .await?,
    );
    assert_eq!(
        ws.request(json!({"op": 1, "key": "log"})).await?["value"],
        "line1;line2;"
    );
    assert_ok(
        &ws.request(json!({"op": 3, "key": "log", "value": r#"{"a":1}"#}))
            .await?,
    );
    assert_eq!(
        ws.request(json!({"op": 1, "key": "log"})).await?["value"],
        r#"line1;line2;{"a":1}"#
    );
    server.stop().await
}

#[tokio::test]
async fn atomic_edge_cases() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    // Missing counts as 0; newValue is a JSON number; the stored value a decimal string.
    let reply = ws
        .request(json!({"op": 6, "key": "c", "value": 5, "messageId": 9}))
        .await?;
    assert_ok(&reply);
    assert_eq!(reply["success"], true);
    assert_eq!(reply["key"], "c");
    assert_eq!(reply["newValue"], 5);
    assert_eq!(reply["messageId"], 9);
    assert_eq!(
        ws.request(json!({"op": 6, "key": "c", "value": -8}))
            .await?["newValue"],
        -3
    );
    assert_eq!(
        ws.request(json!({"op": 6, "key": "c", "value": 0})).await?["newValue"],
        -3
    );
    assert_eq!(
        ws.request(json!({"op": 1, "key": "c"})).await?["value"],
        "-3"
    );
    // A stored decimal string set by SET is parsed.
    assert_ok(
        &ws.request(json!({"op": 2, "key": "s", "value": "41"}))
            .await?,
    );
    assert_eq!(
        ws.request(json!({"op": 6, "key": "s", "value": 1})).await?["newValue"],
        42
    );
    // The extremes of i64 work; one past them is 400 and changes nothing.
    assert_ok(
        &ws.request(json!({"op": 2, "key": "max", "value": i64::MAX.to_string()}))
            .await?,
    );
    assert_error(
        &ws.request(json!({"op": 6, "key": "max", "value": 1}))
            .await?,
        400,
        "overflow",
    );
    assert_eq!(
        ws.request(json!({"op": 1, "key": "max"})).await?["value"],
        i64::MAX.to_string()
    );
    let reply = ws
        .request(json!({"op": 6, "key": "min", "value": i64::MIN}))
        .await?;
    assert_eq!(reply["newValue"], i64::MIN);
    assert_error(
        &ws.request(json!({"op": 6, "key": "min", "value": -1}))
            .await?,
        400,
        "overflow",
    );
    server.stop().await
}

#[tokio::test]
async fn revisions_increase_across_keys_and_failed_writes_take_none() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    let mut last = 0;
    for key in ["a", "b", "a", "c"] {
        let revision = ws
            .request(json!({"op": 2, "key": key, "value": "v"}))
            .await?["revision"]
            .as_u64()
            .unwrap_or_default();
        assert_eq!(revision, last + 1);
        last = revision;
    }
    assert_error(
        &ws.request(json!({"op": 4, "key": "zzz"})).await?,
        404,
        "Record not found",
    );
    let revision = ws
        .request(json!({"op": 2, "key": "d", "value": "v"}))
        .await?["revision"]
        .clone();
    assert_eq!(revision, last + 1);
    assert_eq!(
        ws.request(json!({"op": 1, "key": "a"})).await?["revision"],
        3
    );
    server.stop().await
}

#[tokio::test]
async fn keys_may_hold_any_characters() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for key in [
        "with space",
        "a:b:c",
        "path/to/x",
        "!@#$%^&*()",
        "ключ",
        "emoji 🎉",
        "quote\"back\\slash",
    ] {
        assert_ok(
            &ws.request(json!({"op": 2, "key": key, "value": key}))
                .await?,
        );
        let reply = ws.request(json!({"op": 1, "key": key})).await?;
        assert_eq!(reply["value"], key);
        assert_eq!(reply["key"], key);
    }
    server.stop().await
}

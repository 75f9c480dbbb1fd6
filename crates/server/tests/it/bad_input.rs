//! Bad input: every malformed request gets a precise error with the right code,
//! nothing is written, and the connection stays usable.

use anyhow::Result;
use ripplekv_core::Limits;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{assert_error, assert_ok, TestServer};

/// One row of the bad-input table: the frame, the code, and text the error must contain.
struct Case {
    name: &'static str,
    frame: String,
    code: u16,
    text: &'static str,
}

fn case(name: &'static str, frame: impl Into<String>, code: u16, text: &'static str) -> Case {
    Case {
        name,
        frame: frame.into(),
        code,
        text,
    }
}

fn table() -> Vec<Case> {
    let big_value = "v".repeat(102_400);
    let long_key = "k".repeat(513);
    vec![
        case("invalid JSON", "{\"op\":1,", 400, "Invalid JSON"),
        case("not JSON at all", "hello", 400, "Invalid JSON"),
        case("JSON array", "[1,2,3]", 400, "must be a JSON object"),
        case("JSON string", "\"get\"", 400, "must be a JSON object"),
        case("JSON number", "42", 400, "must be a JSON object"),
        case(
            "missing op",
            r#"{"key":"k","messageId":1}"#,
            400,
            "Missing field 'op'",
        ),
        case(
            "unknown numeric op",
            r#"{"op":7,"key":"k"}"#,
            400,
            "Unknown operation: 7",
        ),
        case(
            "unknown op name",
            r#"{"op":"explode","key":"k"}"#,
            400,
            "Unknown operation",
        ),
        case(
            "op of wrong type",
            r#"{"op":[1],"key":"k"}"#,
            400,
            "Field 'op' must be",
        ),
        case("missing key", r#"{"op":1}"#, 400, "Missing field 'key'"),
        case(
            "key of wrong type",
            r#"{"op":1,"key":12}"#,
            400,
            "Field 'key' must be a string",
        ),
        case(
            "value of wrong type",
            r#"{"op":2,"key":"w","value":{"a":1}}"#,
            400,
            "Field 'value' must be a string",
        ),
        case(
            "missing value",
            r#"{"op":2,"key":"w"}"#,
            400,
            "Missing field 'value'",
        ),
        case(
            "empty key",
            r#"{"op":2,"key":"","value":"v"}"#,
            400,
            "Key must not be empty",
        ),
        case(
            "oversize key",
            json!({"op": 2, "key": long_key, "value": "v"}).to_string(),
            400,
            "limit is 512 bytes",
        ),
        case(
            "key with U+0000",
            r#"{"op":2,"key":"a\u0000b","value":"v"}"#,
            400,
            "U+0000",
        ),
        case(
            "empty value",
            r#"{"op":2,"key":"w","value":""}"#,
            400,
            "Value must not be empty",
        ),
        case(
            "oversize value (102400 bytes)",
            json!({"op": 2, "key": "w", "value": big_value}).to_string(),
            400,
            "limit is 65536 bytes",
        ),
        case(
            "oversize PATCH value",
            json!({"op": 3, "key": "w", "value": "v".repeat(70_000)}).to_string(),
            400,
            "limit is 65536 bytes",
        ),
        case(
            "missing endKey",
            r#"{"op":5,"key":"a"}"#,
            400,
            "Missing field 'endKey'",
        ),
        case(
            "endKey of wrong type",
            r#"{"op":5,"key":"a","endKey":5}"#,
            400,
            "Field 'endKey' must be a string",
        ),
        case(
            "non-integer limit",
            r#"{"op":5,"key":"a","endKey":"b","limit":1.5}"#,
            400,
            "Field 'limit' must be an integer",
        ),
        case(
            "zero limit",
            r#"{"op":5,"key":"a","endKey":"b","limit":0}"#,
            400,
            "limit must be a positive integer",
        ),
        case(
            "non-integer delta",
            r#"{"op":6,"key":"n","value":1.5}"#,
            400,
            "must be an integer",
        ),
        case(
            "string delta",
            r#"{"op":6,"key":"n","value":"5"}"#,
            400,
            "must be an integer",
        ),
        case(
            "missing delta",
            r#"{"op":6,"key":"n"}"#,
            400,
            "Missing field 'value'",
        ),
        case(
            "overflowing delta",
            r#"{"op":6,"key":"n","value":9223372036854775808}"#,
            400,
            "out of range",
        ),
        case(
            "hugely overflowing delta",
            r#"{"op":6,"key":"n","value":1e999}"#,
            400,
            "out of range",
        ),
        case(
            "duplicate field",
            r#"{"op":1,"key":"a","key":"b"}"#,
            400,
            "duplicate field",
        ),
        case(
            "ATOMIC on non-numeric value",
            r#"{"op":6,"key":"text","value":1}"#,
            400,
            "not a 64-bit integer",
        ),
        case(
            "ATOMIC on fractional value",
            r#"{"op":6,"key":"fraction","value":1}"#,
            400,
            "not a 64-bit integer",
        ),
    ]
}

#[tokio::test]
async fn every_bad_request_gets_a_precise_error_and_changes_nothing() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": 2, "key": "text", "value": "hello"}))
            .await?,
    );
    assert_ok(
        &ws.request(json!({"op": 2, "key": "fraction", "value": "1.5"}))
            .await?,
    );
    for case in table() {
        let revision = server.store.revision();
        ws.send_text(&case.frame).await?;
        let reply = ws.recv().await?;
        assert_eq!(reply["code"], case.code, "{}: {reply}", case.name);
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(case.text),
            "{}: {error:?} lacks {:?}",
            case.name,
            case.text
        );
        assert_eq!(
            server.store.revision(),
            revision,
            "{}: something was written",
            case.name
        );
        ws.assert_alive().await?;
    }
    assert_eq!(
        ws.request(json!({"op": 1, "key": "text"})).await?["value"],
        "hello"
    );
    assert_eq!(ws.request(json!({"op": 1, "key": "w"})).await?["code"], 404);
    server.stop().await
}

#[tokio::test]
async fn errors_echo_message_id_and_key_when_known() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    let reply = ws
        .request(json!({"op": 2, "key": "k", "value": "", "messageId": 77}))
        .await?;
    assert_error(&reply, 400, "Value must not be empty");
    assert_eq!(reply["messageId"], 77);
    assert_eq!(reply["key"], "k");
    // Malformed JSON has no messageId to echo.
    ws.send_text("{\"messageId\": 5, ").await?;
    let reply = ws.recv().await?;
    assert_error(&reply, 400, "Invalid JSON");
    assert!(reply.get("messageId").is_none());
    server.stop().await
}

#[tokio::test]
async fn binary_frames_are_refused_and_the_connection_lives_on() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    ws.send_raw(Message::binary(
        br#"{"op":2,"key":"b","value":"v"}"#.to_vec(),
    ))
    .await?;
    assert_error(&ws.recv().await?, 400, "Binary frames are not supported");
    assert_eq!(server.store.revision(), 0);
    ws.assert_alive().await?;
    server.stop().await
}

#[tokio::test]
async fn configured_limits_apply_including_to_patch_results() -> Result<()> {
    let server = TestServer::with_limits(Limits {
        max_key_bytes: 8,
        max_value_bytes: 10,
    })
    .await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": 2, "key": "12345678", "value": "0123456789"}))
            .await?,
    );
    assert_error(
        &ws.request(json!({"op": 2, "key": "123456789", "value": "v"}))
            .await?,
        400,
        "limit is 8 bytes",
    );
    assert_error(
        &ws.request(json!({"op": 2, "key": "k", "value": "0123456789a"}))
            .await?,
        400,
        "limit is 10 bytes",
    );
    assert_ok(
        &ws.request(json!({"op": 2, "key": "k", "value": "012345"}))
            .await?,
    );
    let reply = ws
        .request(json!({"op": 3, "key": "k", "value": "6789a"}))
        .await?;
    assert_error(&reply, 400, "after PATCH");
    assert_eq!(
        ws.request(json!({"op": 1, "key": "k"})).await?["value"],
        "012345"
    );
    server.stop().await
}

/// A frame over the limit is refused from its header, before its payload is buffered,
/// and however large it is the client receives the 1009 close with its reason: the
/// server drains what the client is still sending instead of resetting the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frames_get_a_1009_close_whatever_their_size() -> Result<()> {
    let server = TestServer::start().await?;
    for mebibytes in [1, 4, 8, 32] {
        let mut ws = server.ws().await?;
        let huge = format!(
            r#"{{"op":2,"key":"k","value":"{}"}}"#,
            "x".repeat(mebibytes * 1024 * 1024)
        );
        ws.send_text(&huge)
            .await
            .map_err(|err| anyhow::anyhow!("{mebibytes} MiB: sending was cut off: {err}"))?;
        let closed = match ws.next_message().await {
            Ok(Message::Close(frame)) => frame,
            Ok(other) => panic!("{mebibytes} MiB: expected a close frame, got {other:?}"),
            Err(err) => panic!("{mebibytes} MiB: expected a close frame, got error {err}"),
        };
        let CloseFrame { code, reason } = closed.expect("close frame with a code");
        assert_eq!(u16::from(code), 1009, "{mebibytes} MiB");
        assert_eq!(reason.as_str(), "message too big", "{mebibytes} MiB");
    }
    assert_eq!(server.store.revision(), 0);
    // The server itself is fine.
    let mut again = server.ws().await?;
    again.assert_alive().await?;
    server.stop().await
}

/// The same for REST: a body over the limit gets its 413, not a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_their_413_whatever_their_size() -> Result<()> {
    let server = TestServer::start().await?;
    for mebibytes in [1, 8, 32] {
        let body = format!(
            r#"{{"key":"k","value":"{}"}}"#,
            "x".repeat(mebibytes * 1024 * 1024)
        );
        let reply = server.http("POST", "/record", Some(&body)).await?;
        assert_eq!(reply.status, 413, "{mebibytes} MiB: {reply:?}");
    }
    assert_eq!(server.store.revision(), 0);
    server.stop().await
}

//! Hostile input, over real sockets: what an attacker, a fuzzer or a badly broken client
//! sends. `bad_input.rs` covers the ordinary mistakes; this file adds the nastier
//! ones, one table row per input, each with a name that says what it is: malformed and
//! deeply nested JSON, absurd numbers, every field with the wrong type, unknown ops,
//! control characters and lone surrogates, raw WebSocket frames that break the
//! protocol (bad UTF-8, stray continuations, reserved opcodes), regex bombs and forged
//! tokens, and REST paths that try to climb out of `/record/`.
//!
//! Every refusal is checked three ways: the exact code (a reply code, an HTTP status or
//! a WebSocket close code) with a fragment of its text, the store revision unchanged
//! (nothing was written), and the survivor: the same connection still answers a GET,
//! or, where the protocol requires a close, a fresh connection does. Inputs the server
//! accepts on purpose (control characters in keys, `..` in REST paths) are asserted to
//! round-trip exactly instead, so a test never claims a refusal that does not happen.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ripplekv_server::ServerConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::common::{assert_error, assert_ok, TestServer, Ws, KEY, REPLY_TIMEOUT, SECRET};

/// How long a pathological pattern may take to be issued and used. The `regex` crate
/// matches in linear time and compiles under a size limit, so this is generous.
const PROMPT: Duration = Duration::from_secs(5);

/// A frame the server must refuse with `code`, its error containing `text`.
struct Refused {
    name: &'static str,
    frame: String,
    code: u16,
    text: &'static str,
}

fn refused(name: &'static str, frame: impl Into<String>, code: u16, text: &'static str) -> Refused {
    Refused {
        name,
        frame: frame.into(),
        code,
        text,
    }
}

/// `depth` nested arrays around nothing: `[[[...]]]`.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Text frames refused with a 400 (or another code) and a precise reason.
fn refused_frames() -> Vec<Refused> {
    let deep = nested_arrays(10_000);
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    vec![
        // Malformed JSON. serde_json is strict: no BOM, comments, quotes other than '"'.
        refused(
            "truncated inside a string",
            r#"{"op":1,"key":"ab"#,
            400,
            "Invalid JSON: EOF while parsing a string",
        ),
        refused(
            "trailing garbage after the object",
            r#"{"op":1,"key":"k"}xyz"#,
            400,
            "Invalid JSON: trailing characters",
        ),
        refused(
            "two objects in one frame",
            r#"{"op":1,"key":"k"}{"op":2,"key":"k","value":"v"}"#,
            400,
            "Invalid JSON: trailing characters",
        ),
        refused(
            "byte order mark before the object",
            "\u{feff}{\"op\":1,\"key\":\"k\"}",
            400,
            "Invalid JSON: expected value at line 1 column 1",
        ),
        refused(
            "block comment",
            r#"{"op":1 /* get */,"key":"k"}"#,
            400,
            "Invalid JSON",
        ),
        refused(
            "line comment after the object",
            "{\"op\":1,\"key\":\"k\"} // get",
            400,
            "Invalid JSON: trailing characters",
        ),
        refused(
            "single quotes",
            "{'op':1,'key':'k'}",
            400,
            "Invalid JSON: key must be a string",
        ),
        refused(
            "unquoted member names",
            r#"{op:1,key:"k"}"#,
            400,
            "Invalid JSON: key must be a string",
        ),
        refused(
            "trailing comma",
            r#"{"op":1,"key":"k",}"#,
            400,
            "Invalid JSON: trailing comma",
        ),
        refused("empty frame", "", 400, "Invalid JSON: EOF while parsing"),
        refused("whitespace only", " \t\r\n", 400, "Invalid JSON: EOF"),
        refused("JSON null", "null", 400, "must be a JSON object, got null"),
        refused(
            "raw control character inside a string",
            "{\"op\":1,\"key\":\"a\u{1}b\"}",
            400,
            "Invalid JSON: control character",
        ),
        refused(
            "invalid escape",
            r#"{"op":1,"key":"a\xb"}"#,
            400,
            "Invalid JSON: invalid escape",
        ),
        // Deep nesting: skipped fields are scanned iteratively and typed fields are
        // refused by type, so 10 000 levels cost a scan, never a stack overflow.
        refused(
            "10 000 nested arrays as a SET value",
            format!(r#"{{"op":2,"key":"deep","value":{deep}}}"#),
            400,
            "Field 'value' must be a string, got an array",
        ),
        refused(
            "10 000 nested arrays as the whole frame",
            deep.clone(),
            400,
            "Request must be a JSON object, got an array",
        ),
        refused(
            "10 000 nested objects in an unknown member, no op",
            format!(r#"{{"x":{deep_objects}}}"#),
            400,
            "Missing field 'op'",
        ),
        refused(
            "10 000 nested arrays as a RANGE limit",
            format!(r#"{{"op":5,"key":"a","endKey":"b","limit":{deep}}}"#),
            400,
            "Field 'limit' must be an integer, got an array",
        ),
        refused(
            "JSON Patch adding 10 000 nested arrays",
            json!({
                "op": "jsonpatch",
                "key": "deep",
                "value": format!(r#"[{{"op":"add","path":"/a","value":{deep}}}]"#),
            })
            .to_string(),
            400,
            "Invalid JSON Patch: recursion limit exceeded",
        ),
        refused(
            "10 000 nested arrays as subscribe patterns",
            format!(r#"{{"op":"subscribe","patterns":{deep}}}"#),
            400,
            "Field 'patterns' must be an array of strings",
        ),
        // Numbers beyond any integer type, and literals JSON does not have.
        refused(
            "delta of 23 digits",
            r#"{"op":6,"key":"n","value":99999999999999999999999}"#,
            400,
            "Field 'value' is out of range: 99999999999999999999999 does not fit",
        ),
        refused(
            "delta below i64::MIN",
            r#"{"op":6,"key":"n","value":-9223372036854775809}"#,
            400,
            "Field 'value' is out of range: -9223372036854775809",
        ),
        refused(
            "delta NaN",
            r#"{"op":6,"key":"n","value":NaN}"#,
            400,
            "Invalid JSON: expected value",
        ),
        refused(
            "delta Infinity",
            r#"{"op":6,"key":"n","value":Infinity}"#,
            400,
            "Invalid JSON: expected value",
        ),
        refused(
            "delta -Infinity",
            r#"{"op":6,"key":"n","value":-Infinity}"#,
            400,
            "Invalid JSON: invalid number",
        ),
        refused(
            "negative limit of 23 digits",
            r#"{"op":5,"key":"a","endKey":"b","limit":-99999999999999999999999}"#,
            400,
            "Field 'limit' is out of range: -99999999999999999999999",
        ),
        refused(
            "limit 1e309",
            r#"{"op":5,"key":"a","endKey":"b","limit":1e309}"#,
            400,
            "Field 'limit' is out of range: 1e309",
        ),
        refused(
            "negative limit",
            r#"{"op":5,"key":"a","endKey":"b","limit":-1}"#,
            400,
            "limit must be a positive integer, got -1",
        ),
        refused(
            "ttl 1e309",
            r#"{"op":2,"key":"t","value":"v","ttl":1e309}"#,
            400,
            "Field 'ttl' must be more than 0 and at most 315360000 seconds",
        ),
        refused(
            "ifRevision of 23 digits",
            r#"{"op":2,"key":"t","value":"v","ifRevision":99999999999999999999999}"#,
            400,
            "Field 'ifRevision' is out of range",
        ),
        refused(
            "since 1e309",
            r#"{"op":"subscribe","patterns":["a"],"since":1e309}"#,
            400,
            "Field 'since' is out of range: 1e309",
        ),
        // Wrong types, field by field.
        refused(
            "op true",
            r#"{"op":true,"key":"k"}"#,
            400,
            "Field 'op' must be an integer or a string",
        ),
        refused(
            "op an object",
            r#"{"op":{"code":1},"key":"k"}"#,
            400,
            "Field 'op' must be an integer or a string",
        ),
        // `null` counts as absent, like a missing member.
        refused(
            "op null",
            r#"{"op":null,"key":"k"}"#,
            400,
            "Missing field 'op'",
        ),
        refused(
            "key true",
            r#"{"op":1,"key":true}"#,
            400,
            "Field 'key' must be a string, got a boolean",
        ),
        refused(
            "key an array",
            r#"{"op":2,"key":["k"],"value":"v"}"#,
            400,
            "Field 'key' must be a string, got an array",
        ),
        refused(
            "key null",
            r#"{"op":4,"key":null}"#,
            400,
            "Missing field 'key'",
        ),
        refused(
            "SET value a number",
            r#"{"op":2,"key":"w","value":5}"#,
            400,
            "Field 'value' must be a string, got a number",
        ),
        refused(
            "PATCH value an array",
            r#"{"op":3,"key":"w","value":["a"]}"#,
            400,
            "Field 'value' must be a string, got an array",
        ),
        refused(
            "JSON Patch value an array instead of its text",
            r#"{"op":"jsonpatch","key":"w","value":[{"op":"add","path":"/a","value":1}]}"#,
            400,
            "Field 'value' must be a string, got an array",
        ),
        refused(
            "ATOMIC value a boolean",
            r#"{"op":6,"key":"n","value":true}"#,
            400,
            "Field 'value' must be an integer, got a boolean",
        ),
        refused(
            "ATOMIC value null",
            r#"{"op":6,"key":"n","value":null}"#,
            400,
            "Missing field 'value'",
        ),
        refused(
            "endKey null",
            r#"{"op":5,"key":"a","endKey":null}"#,
            400,
            "Missing field 'endKey'",
        ),
        refused(
            "endKey an object",
            r#"{"op":5,"key":"a","endKey":{"k":"z"}}"#,
            400,
            "Field 'endKey' must be a string, got an object",
        ),
        refused(
            "limit a numeric string",
            r#"{"op":5,"key":"a","endKey":"b","limit":"10"}"#,
            400,
            "Field 'limit' must be an integer, got a string",
        ),
        refused(
            "limit a boolean",
            r#"{"op":5,"key":"a","endKey":"b","limit":true}"#,
            400,
            "Field 'limit' must be an integer, got a boolean",
        ),
        refused(
            "ifRevision a string",
            r#"{"op":2,"key":"t","value":"v","ifRevision":"3"}"#,
            400,
            "Field 'ifRevision' must be an integer, got a string",
        ),
        refused(
            "ifRevision negative",
            r#"{"op":4,"key":"t","ifRevision":-1}"#,
            400,
            "Field 'ifRevision' must not be negative",
        ),
        refused(
            "ifRevision fractional",
            r#"{"op":3,"key":"t","value":"v","ifRevision":1.5}"#,
            400,
            "Field 'ifRevision' must be an integer, got 1.5",
        ),
        refused(
            "ifRevision on GET",
            r#"{"op":1,"key":"t","ifRevision":1}"#,
            400,
            "Field 'ifRevision' is only allowed on SET, PATCH, DELETE and JSONPATCH",
        ),
        refused(
            "ttl a string",
            r#"{"op":2,"key":"t","value":"v","ttl":"10"}"#,
            400,
            "Field 'ttl' must be a number of seconds, got a string",
        ),
        refused(
            "ttl zero",
            r#"{"op":2,"key":"t","value":"v","ttl":0}"#,
            400,
            "Field 'ttl' must be more than 0",
        ),
        refused(
            "ttl negative",
            r#"{"op":3,"key":"t","value":"v","ttl":-5}"#,
            400,
            "Field 'ttl' must be more than 0",
        ),
        refused(
            "ttl over ten years",
            r#"{"op":2,"key":"t","value":"v","ttl":315360001}"#,
            400,
            "at most 315360000 seconds",
        ),
        refused(
            "ttl on DELETE",
            r#"{"op":4,"key":"t","ttl":5}"#,
            400,
            "Field 'ttl' is only allowed on SET and PATCH",
        ),
        refused(
            "ttl on ATOMIC",
            r#"{"op":6,"key":"n","value":1,"ttl":5}"#,
            400,
            "Field 'ttl' is only allowed on SET and PATCH",
        ),
        refused(
            "subscribe without patterns",
            r#"{"op":"subscribe"}"#,
            400,
            "Missing field 'patterns'",
        ),
        refused(
            "subscribe patterns a string",
            r#"{"op":"subscribe","patterns":"a*"}"#,
            400,
            "Field 'patterns' must be an array of strings",
        ),
        refused(
            "subscribe patterns of numbers",
            r#"{"op":"subscribe","patterns":[1,2]}"#,
            400,
            "Field 'patterns' must be an array of strings",
        ),
        refused(
            "subscribe patterns empty",
            r#"{"op":"subscribe","patterns":[]}"#,
            400,
            "Field 'patterns' must not be empty",
        ),
        refused(
            "subscribe an empty pattern",
            r#"{"op":"subscribe","patterns":[""]}"#,
            400,
            "Pattern must not be empty",
        ),
        refused(
            "subscribe a 100 000-byte pattern",
            json!({"op": "subscribe", "patterns": ["a".repeat(100_000)]}).to_string(),
            400,
            "Pattern is 100000 bytes; the limit is 1024 bytes",
        ),
        refused(
            "subscribe since negative",
            r#"{"op":"subscribe","patterns":["a"],"since":-1}"#,
            400,
            "Field 'since' must not be negative",
        ),
        refused(
            "subscribe since a string",
            r#"{"op":"subscribe","patterns":["a"],"since":"5"}"#,
            400,
            "Field 'since' must be an integer, got a string",
        ),
        refused(
            "unsubscribe patterns null",
            r#"{"op":"unsubscribe","patterns":null}"#,
            400,
            "Missing field 'patterns'",
        ),
        // Unknown operations, numeric and named.
        refused("op 0", r#"{"op":0,"key":"k"}"#, 400, "Unknown operation: 0"),
        refused(
            "op -1",
            r#"{"op":-1,"key":"k"}"#,
            400,
            "Unknown operation: -1",
        ),
        refused(
            "op 99",
            r#"{"op":99,"key":"k"}"#,
            400,
            "Unknown operation: 99",
        ),
        refused(
            "op 1.5",
            r#"{"op":1.5,"key":"k"}"#,
            400,
            "Unknown operation: 1.5",
        ),
        refused(
            "op 1.0 (integral, but not an integer literal)",
            r#"{"op":1.0,"key":"k"}"#,
            400,
            "Unknown operation: 1.0",
        ),
        refused(
            "op of 23 digits",
            r#"{"op":99999999999999999999999,"key":"k"}"#,
            400,
            "Unknown operation: 99999999999999999999999",
        ),
        refused(
            "op a numeric string",
            r#"{"op":"1","key":"k"}"#,
            400,
            r#"Unknown operation: "1""#,
        ),
        refused(
            "op an empty string",
            r#"{"op":"","key":"k"}"#,
            400,
            r#"Unknown operation: """#,
        ),
        refused(
            "op name with a leading space",
            r#"{"op":" get","key":"k"}"#,
            400,
            r#"Unknown operation: " get""#,
        ),
        refused(
            "op name with U+0000",
            r#"{"op":"get\u0000","key":"k"}"#,
            400,
            r#"Unknown operation: "get\0""#,
        ),
        // Keys: U+0000 everywhere, lone surrogates, sizes counted in bytes.
        refused(
            "GET of the key U+0000",
            r#"{"op":1,"key":"\u0000"}"#,
            400,
            "Key must not contain U+0000",
        ),
        refused(
            "DELETE of a key ending in U+0000",
            r#"{"op":4,"key":"k\u0000"}"#,
            400,
            "Key must not contain U+0000",
        ),
        refused(
            "ATOMIC on a key with U+0000",
            r#"{"op":6,"key":"n\u0000m","value":1}"#,
            400,
            "Key must not contain U+0000",
        ),
        refused(
            "key with a lone leading surrogate",
            r#"{"op":1,"key":"\ud800"}"#,
            400,
            "Field 'key' is not valid Unicode: a \\u escape is a lone surrogate",
        ),
        refused(
            "SET key with a lone trailing surrogate",
            r#"{"op":2,"key":"a\udc00b","value":"v"}"#,
            400,
            "Field 'key' is not valid Unicode",
        ),
        refused(
            "SET value with a reversed surrogate pair",
            r#"{"op":2,"key":"s","value":"\ude00\ud83d"}"#,
            400,
            "Field 'value' is not valid Unicode",
        ),
        refused(
            "op name with a lone surrogate",
            r#"{"op":"g\ud800et","key":"k"}"#,
            400,
            "Field 'op' is not valid Unicode",
        ),
        refused(
            "key of 171 three-byte characters (513 bytes)",
            json!({"op": 2, "key": "€".repeat(171), "value": "v"}).to_string(),
            400,
            "Key is 513 bytes; the limit is 512 bytes",
        ),
        refused(
            "GET of a 10 000-byte key",
            json!({"op": 1, "key": "k".repeat(10_000)}).to_string(),
            400,
            "Key is 10000 bytes; the limit is 512 bytes",
        ),
        refused(
            "endKey of 514 bytes",
            json!({"op": 5, "key": "a", "endKey": "z".repeat(514)}).to_string(),
            400,
            "endKey is 514 bytes; the limit is 513 bytes",
        ),
        refused(
            "empty endKey",
            r#"{"op":5,"key":"a","endKey":""}"#,
            400,
            "endKey must not be empty",
        ),
        refused(
            "JSON Patch text that is not JSON",
            r#"{"op":"jsonpatch","key":"w","value":"not json"}"#,
            400,
            "Invalid JSON Patch",
        ),
        refused(
            "JSON Patch with an unknown operation",
            r#"{"op":"jsonpatch","key":"w","value":"[{\"op\":\"explode\",\"path\":\"/a\"}]"}"#,
            400,
            "Invalid JSON Patch: unknown variant",
        ),
    ]
}

#[tokio::test]
async fn hostile_text_frames_get_precise_errors_and_change_nothing() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for case in refused_frames() {
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
        ws.assert_alive()
            .await
            .with_context(|| format!("after {}", case.name))?;
    }
    server.stop().await
}

/// Frames that look hostile but are legal: each is a GET of a missing key and must be
/// answered as one (404), with `messageId` echoed byte for byte, whatever it is.
fn answered_frames() -> Vec<(&'static str, String, &'static str)> {
    let deep = nested_arrays(10_000);
    vec![
        (
            "messageId of 23 digits, echoed as sent",
            r#"{"op":1,"key":"absent","messageId":99999999999999999999999}"#.to_owned(),
            r#""messageId":99999999999999999999999"#,
        ),
        (
            "messageId 1e309, echoed as sent",
            r#"{"op":1,"key":"absent","messageId":1e309}"#.to_owned(),
            r#""messageId":1e309"#,
        ),
        (
            "messageId an object",
            r#"{"op":1,"key":"absent","messageId":{"a":[1,{"b":null}]}}"#.to_owned(),
            r#""messageId":{"a":[1,{"b":null}]}"#,
        ),
        (
            "messageId a string with a lone surrogate, echoed as sent",
            r#"{"op":1,"key":"absent","messageId":"\ud800"}"#.to_owned(),
            r#""messageId":"\ud800""#,
        ),
        // A2: `timestamp` and unknown members are ignored. Skipping them is iterative,
        // so even 10 000 levels of nesting there are read past, not recursed into.
        (
            "10 000 nested arrays as the ignored timestamp",
            format!(r#"{{"op":1,"key":"absent","timestamp":{deep},"messageId":1}}"#),
            r#""messageId":1"#,
        ),
        (
            "RANGE-only fields of every wrong type on a GET",
            r#"{"op":1,"key":"absent","endKey":5,"limit":"x","patterns":7,"messageId":2}"#
                .to_owned(),
            r#""messageId":2"#,
        ),
    ]
}

#[tokio::test]
async fn legal_but_strange_frames_are_answered_and_ids_echoed_verbatim() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for (name, frame, echoed) in answered_frames() {
        let revision = server.store.revision();
        ws.send_text(&frame).await?;
        // Read the raw text: some echoed ids (1e309, "\ud800") are valid JSON that
        // serde_json will not parse, and the point is that they come back unchanged.
        let text = match ws.next_message().await? {
            Message::Text(text) => text.as_str().to_owned(),
            other => bail!("{name}: expected a text frame, got {other:?}"),
        };
        assert!(text.contains(r#""code":404"#), "{name}: {text}");
        assert!(text.contains("Record not found"), "{name}: {text}");
        assert!(text.contains(echoed), "{name}: {text} lacks {echoed}");
        assert_eq!(server.store.revision(), revision, "{name}: written");
        ws.assert_alive().await?;
    }
    server.stop().await
}

#[tokio::test]
async fn control_characters_and_odd_unicode_in_keys_round_trip_exactly() -> Result<()> {
    // Only U+0000 is refused (A3); every other character is a key like any other, and
    // no normalization happens: NFC "é" and NFD "e\u{301}" are two different keys.
    let keys = [
        ("U+0001", "\u{1}".to_owned()),
        ("tab, newline, carriage return", "a\tb\nc\rd".to_owned()),
        ("U+001F and DEL", "\u{1f}\u{7f}".to_owned()),
        ("line separator U+2028", "line\u{2028}sep".to_owned()),
        ("byte order mark U+FEFF", "\u{feff}bom".to_owned()),
        ("NFC é", "caf\u{e9}".to_owned()),
        ("NFD e + combining acute", "cafe\u{301}".to_owned()),
        ("astral plane emoji", "😀\u{10ffff}".to_owned()),
        ("quote and backslash", r#"a"b\c"#.to_owned()),
        (
            "exactly 512 bytes of 3-byte chars and ASCII",
            format!("{}ab", "€".repeat(170)),
        ),
    ];
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for (name, key) in &keys {
        let revision = server.store.revision();
        let value = format!("value of {name}");
        assert_ok(
            &ws.request(json!({"op": 2, "key": key, "value": value}))
                .await?,
        );
        assert_eq!(server.store.revision(), revision + 1, "{name}");
        let got = ws.request(json!({"op": 1, "key": key})).await?;
        assert_ok(&got);
        assert_eq!(
            (&got["key"], &got["value"]),
            (&json!(key), &json!(value)),
            "{name}"
        );
        let page = ws
            .request(json!({"op": 5, "key": key, "endKey": key}))
            .await?;
        assert_eq!(page["count"], 1, "{name}: {page}");
        assert_eq!(page["records"][0]["key"], json!(key), "{name}");
    }
    // Nothing collided: as many keys as writes.
    let all = ws
        .request(json!({"op": 5, "key": "\u{1}", "endKey": "\u{10ffff}\u{10ffff}"}))
        .await?;
    assert_eq!(all["count"], keys.len(), "{all}");
    server.stop().await
}

#[tokio::test]
async fn binary_frames_of_any_content_get_400_and_the_connection_lives() -> Result<()> {
    // bad_input.rs sends a binary frame holding a valid request; these hold none.
    let frames: [(&str, Vec<u8>); 2] = [
        ("invalid UTF-8", vec![0xff, 0xfe, 0xfd, 0x00, 0xc0, 0xaf]),
        ("empty", Vec::new()),
    ];
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for (name, bytes) in frames {
        ws.send_raw(Message::binary(bytes)).await?;
        let reply = ws.recv().await.with_context(|| name.to_owned())?;
        assert_error(&reply, 400, "Binary frames are not supported");
        assert_eq!(server.store.revision(), 0, "{name}");
        ws.assert_alive().await?;
    }
    server.stop().await
}

/// One raw data frame, `fin` or not; the client masks it on the way out.
fn frame(opcode: Data, payload: impl Into<Vec<u8>>, fin: bool) -> Message {
    Message::Frame(Frame::message(payload.into(), OpCode::Data(opcode), fin))
}

/// A frame with an arbitrary opcode and header bits, for frames no API would build.
fn raw_frame(opcode: OpCode, payload: impl Into<Vec<u8>>, fin: bool, rsv1: bool) -> Message {
    let mut frame = Frame::message(payload.into(), OpCode::Data(Data::Text), fin);
    frame.header_mut().opcode = opcode;
    frame.header_mut().rsv1 = rsv1;
    Message::Frame(frame)
}

/// Waits for the server's close frame, skipping pings and pongs; returns its code.
async fn close_code(ws: &mut Ws) -> Result<u16> {
    loop {
        match ws.next_message().await? {
            Message::Close(Some(close)) => return Ok(close.code.into()),
            Message::Close(None) => bail!("close frame without a code"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => bail!("expected a close frame, got {other:?}"),
        }
    }
}

/// Frame sequences that break RFC 6455: the server must close with the right code.
fn protocol_violations(max_message: usize) -> Vec<(&'static str, Vec<Message>, u16)> {
    let set_start = br#"{"op":2,"key":"frag","value":"#.to_vec();
    let chunk = vec![b'x'; 64 * 1024];
    let mut too_big = vec![frame(Data::Text, set_start.clone(), false)];
    // Each fragment is small; together they pass the message limit.
    for _ in 0..(max_message / chunk.len() + 2) {
        too_big.push(frame(Data::Continue, chunk.clone(), false));
    }
    vec![
        (
            "text frame with byte 0xFF",
            vec![frame(
                Data::Text,
                b"{\"op\":1,\"key\":\"\xff\"}".to_vec(),
                true,
            )],
            1007,
        ),
        (
            "text frame with an overlong encoding of '/'",
            vec![frame(
                Data::Text,
                b"{\"op\":1,\"key\":\"\xc0\xaf\"}".to_vec(),
                true,
            )],
            1007,
        ),
        (
            "text frame with a UTF-8-encoded surrogate",
            vec![frame(
                Data::Text,
                b"{\"op\":1,\"key\":\"\xed\xa0\x80\"}".to_vec(),
                true,
            )],
            1007,
        ),
        (
            "text frame ending inside a multi-byte character",
            vec![frame(
                Data::Text,
                b"{\"op\":1,\"key\":\"\xe2\x9c".to_vec(),
                true,
            )],
            1007,
        ),
        (
            "fragmented SET whose last fragment is not UTF-8",
            vec![
                frame(Data::Text, set_start.clone(), false),
                frame(Data::Continue, b"\"v\xff\"}".to_vec(), true),
            ],
            1007,
        ),
        (
            "continuation frame without a start",
            vec![frame(
                Data::Continue,
                br#"{"op":1,"key":"k"}"#.to_vec(),
                true,
            )],
            1002,
        ),
        (
            "new text frame in the middle of a fragmented SET",
            vec![
                frame(Data::Text, set_start.clone(), false),
                frame(Data::Text, br#"{"op":1,"key":"k"}"#.to_vec(), true),
            ],
            1002,
        ),
        (
            "binary frame in the middle of a fragmented SET",
            vec![
                frame(Data::Text, set_start.clone(), false),
                frame(Data::Binary, br#""v"}"#.to_vec(), true),
            ],
            1002,
        ),
        (
            "reserved data opcode 3",
            vec![raw_frame(
                OpCode::Data(Data::Reserved(3)),
                br#"{"op":1,"key":"k"}"#.to_vec(),
                true,
                false,
            )],
            1002,
        ),
        (
            "reserved control opcode 0xB",
            vec![raw_frame(
                OpCode::Control(Control::Reserved(0xb)),
                Vec::new(),
                true,
                false,
            )],
            1002,
        ),
        (
            "fragmented ping",
            vec![raw_frame(
                OpCode::Control(Control::Ping),
                b"hi".to_vec(),
                false,
                false,
            )],
            1002,
        ),
        (
            "ping with a 126-byte payload",
            vec![raw_frame(
                OpCode::Control(Control::Ping),
                vec![b'p'; 126],
                true,
                false,
            )],
            1002,
        ),
        (
            "RSV1 set without a negotiated extension",
            vec![raw_frame(
                OpCode::Data(Data::Text),
                br#"{"op":2,"key":"rsv","value":"v"}"#.to_vec(),
                true,
                true,
            )],
            1002,
        ),
        (
            "fragments that add up past the message limit",
            too_big,
            1009,
        ),
    ]
}

#[tokio::test]
async fn frames_that_break_the_protocol_close_with_the_right_code() -> Result<()> {
    let config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    let max_message = config.max_message_bytes();
    let server = TestServer::start_with(config, None).await?;
    for (name, frames, code) in protocol_violations(max_message) {
        let mut ws = server.ws().await?;
        for message in frames {
            // The server may close before the last frames are out; the close tells why.
            if ws.send_raw(message).await.is_err() {
                break;
            }
        }
        let closed = close_code(&mut ws)
            .await
            .with_context(|| format!("{name}: no close frame"))?;
        assert_eq!(closed, code, "{name}");
        assert_eq!(server.store.revision(), 0, "{name}: something was written");
        // The server is unharmed: a new connection works.
        server
            .ws()
            .await?
            .assert_alive()
            .await
            .with_context(|| format!("after {name}"))?;
    }
    server.stop().await
}

#[tokio::test]
async fn fragmented_requests_are_reassembled_and_answered() -> Result<()> {
    let get = |id: u32| format!(r#"{{"op":1,"key":"frag✓","messageId":{id}}}"#).into_bytes();
    let split = |bytes: Vec<u8>, at: &[usize]| -> Vec<Vec<u8>> {
        let mut parts = Vec::new();
        let mut from = 0;
        for &to in at {
            parts.push(bytes[from..to].to_vec());
            from = to;
        }
        parts.push(bytes[from..].to_vec());
        parts
    };
    let fragments = |parts: Vec<Vec<u8>>| -> Vec<Message> {
        let last = parts.len() - 1;
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let opcode = if i == 0 { Data::Text } else { Data::Continue };
                frame(opcode, part, i == last)
            })
            .collect()
    };
    // Where "✓" (3 bytes) starts in the GET frame, to split inside it.
    let check = get(0)
        .windows(3)
        .position(|w| w == "✓".as_bytes())
        .context("no ✓")?;
    let one_per_byte =
        |bytes: Vec<u8>| -> Vec<Vec<u8>> { bytes.into_iter().map(|b| vec![b]).collect() };
    let cases: Vec<(&str, Vec<Message>)> = vec![
        ("three fragments", fragments(split(get(1), &[5, 20]))),
        ("one fragment per byte", fragments(one_per_byte(get(2)))),
        (
            "split inside a multi-byte character",
            fragments(split(get(3), &[check + 1, check + 2])),
        ),
        (
            "empty first and middle fragments",
            fragments(vec![Vec::new(), get(4), Vec::new(), Vec::new()]),
        ),
        ("a ping between fragments", {
            let mut frames = fragments(split(get(5), &[10]));
            frames.insert(1, Message::Ping(b"mid".to_vec().into()));
            frames
        }),
        ("an unsolicited pong between fragments", {
            let mut frames = fragments(split(get(6), &[10]));
            frames.insert(1, Message::Pong(b"mid".to_vec().into()));
            frames
        }),
    ];
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for (id, (name, frames)) in (1..).zip(cases) {
        for message in frames {
            ws.send_raw(message).await?;
        }
        // recv skips the pong the server owes for the ping.
        let reply = ws.recv().await.with_context(|| name.to_owned())?;
        assert_error(&reply, 404, "Record not found");
        assert_eq!(reply["messageId"], id, "{name}: {reply}");
        ws.assert_alive().await?;
    }
    // A fragmented write is applied once, as a whole.
    let set = br#"{"op":2,"key":"frag","value":"pieced together"}"#.to_vec();
    for message in fragments(split(set, &[3, 17, 30])) {
        ws.send_raw(message).await?;
    }
    assert_ok(&ws.recv().await?);
    assert_eq!(server.store.revision(), 1);
    let got = ws.request(json!({"op": 1, "key": "frag"})).await?;
    assert_eq!(got["value"], "pieced together");
    server.stop().await
}

/// An access pattern built to be slow to compile or match, with a key it must allow
/// (if any can exist within 512 bytes) and one it must refuse.
struct Bomb {
    name: &'static str,
    pattern: String,
    inside: Option<String>,
    outside: String,
}

fn bombs() -> Vec<Bomb> {
    vec![
        Bomb {
            // Catastrophic for backtracking engines on "aaaa…!".
            name: "nested quantifier (a+)+$",
            pattern: "(a+)+$".into(),
            inside: Some("a".repeat(512)),
            outside: format!("{}!", "a".repeat(511)),
        },
        Bomb {
            // Each `*` becomes `.*` (A5), so this is ((a.*).*).*b: starts with a, ends with b.
            name: "nested stars ((a*)*)*b",
            pattern: "((a*)*)*b".into(),
            inside: Some(format!("{}b", "a".repeat(511))),
            outside: "a".repeat(512),
        },
        Bomb {
            // Blows the compiled-size limit, so it falls back to a literal match.
            name: "nested counted repetition a{1000}{1000}",
            pattern: "a{1000}{1000}".into(),
            inside: Some("a{1000}{1000}".into()),
            outside: "a".repeat(500),
        },
        Bomb {
            // Deeper than the regex parser's nesting limit: also a literal, and too
            // long to be a key, so it allows nothing. Were it compiled as a regex it
            // would match exactly "a", which is why "a" is the key that must fail.
            name: "260 nested groups",
            pattern: format!("{}a{}", "(".repeat(260), ")".repeat(260)),
            inside: None,
            outside: "a".to_owned(),
        },
        Bomb {
            name: "many optional prefixes a?{300}a{300}",
            pattern: format!("{}{}", "a?".repeat(300), "a".repeat(300)),
            inside: Some("a".repeat(300)),
            outside: "a".repeat(299),
        },
        Bomb {
            // Not a valid regex at all: a literal with `*` as the only wildcard.
            name: "unclosed class [*",
            pattern: "[*".into(),
            inside: Some("[anything".into()),
            outside: "anything".into(),
        },
    ]
}

#[tokio::test]
async fn regex_bomb_access_patterns_are_issued_promptly_and_confine_the_token() -> Result<()> {
    let server = TestServer::start().await?;
    for bomb in bombs() {
        let name = bomb.name;
        let token =
            tokio::time::timeout(PROMPT, server.token(json!({"accessPattern": bomb.pattern})))
                .await
                .with_context(|| format!("{name}: token not issued in time"))??;
        let mut ws = server.ws_token(&token).await?;
        if let Some(inside) = &bomb.inside {
            let reply = tokio::time::timeout(
                PROMPT,
                ws.request(json!({"op": 2, "key": inside, "value": "in"})),
            )
            .await
            .with_context(|| format!("{name}: slow write"))??;
            assert_ok(&reply);
        }
        let revision = server.store.revision();
        for op in [
            json!({"op": 2, "key": bomb.outside, "value": "out"}),
            json!({"op": 1, "key": bomb.outside}),
            json!({"op": 6, "key": bomb.outside, "value": 1}),
        ] {
            let reply = tokio::time::timeout(PROMPT, ws.request(op))
                .await
                .with_context(|| format!("{name}: slow refusal"))??;
            assert_error(
                &reply,
                403,
                "Access denied: Key does not match allowed pattern",
            );
        }
        assert_eq!(server.store.revision(), revision, "{name}: written");
        ws.assert_alive().await?;
    }
    server.stop().await
}

#[tokio::test]
async fn regex_bomb_subscribe_patterns_still_deliver_exactly_what_they_match() -> Result<()> {
    let server = TestServer::start().await?;
    let token = tokio::time::timeout(
        PROMPT,
        server.token(json!({
            "subscribePatterns": ["(a+)+$", "((a*)*)*b", "a{1000}{1000}"],
            "accessPattern": "*",
        })),
    )
    .await??;
    let mut ws = server.ws_token(&token).await?;
    // A writer's own subscribed connection gets the notification before the reply,
    // so the first frame after a write shows whether it matched.
    let cases = [
        (format!("{}!", "a".repeat(511)), false),
        ("a".repeat(512), true),
        ("aaab".to_owned(), true),
        ("baaa".to_owned(), false),
        ("a{1000}{1000}".to_owned(), true),
    ];
    for (key, matches) in cases {
        ws.send(&json!({"op": 2, "key": key, "value": "v"})).await?;
        let first = tokio::time::timeout(PROMPT, ws.recv()).await??;
        if matches {
            assert_eq!(first["type"], "notification", "{key}: {first}");
            assert_eq!(first["key"], json!(key));
            assert_ok(&ws.recv().await?);
        } else {
            assert_ok(&first);
        }
    }
    server.stop().await
}

#[tokio::test]
async fn malformed_token_requests_get_400_and_issue_nothing() -> Result<()> {
    let deep = nested_arrays(10_000);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "100 000-byte access pattern",
            json!({"accessPattern": "a".repeat(100_000)}).to_string(),
            "Pattern is 100000 bytes; the limit is 1024 bytes",
        ),
        (
            "1025-byte access pattern",
            json!({"accessPattern": "(a+)+".repeat(205)}).to_string(),
            "Pattern is 1025 bytes; the limit is 1024 bytes",
        ),
        (
            "100 000-byte subscribe pattern",
            json!({"subscribePatterns": ["x".repeat(100_000)]}).to_string(),
            "Pattern is 100000 bytes",
        ),
        (
            "empty access pattern",
            json!({"accessPattern": ""}).to_string(),
            "Pattern must not be empty",
        ),
        (
            "1001 subscribe keys",
            json!({"subscribeKeys": vec!["k"; 1001]}).to_string(),
            "at most 1000 subscribe keys and patterns",
        ),
        (
            "access pattern with a lone surrogate",
            r#"{"accessPattern":"user:\ud800*"}"#.to_owned(),
            "Field 'accessPattern' is not valid Unicode",
        ),
        (
            "subscribe keys with a lone surrogate",
            r#"{"subscribeKeys":["ok","\udfff"]}"#.to_owned(),
            "Field 'subscribeKeys' is not valid Unicode",
        ),
        (
            "10 000 nested arrays as subscribe patterns",
            format!(r#"{{"subscribePatterns":{deep}}}"#),
            "Field 'subscribePatterns' must be an array of strings",
        ),
        (
            "access pattern a number",
            r#"{"accessPattern":5}"#.to_owned(),
            "Field 'accessPattern' must be a string, got a number",
        ),
        (
            "body with a byte order mark",
            "\u{feff}{}".to_owned(),
            "Invalid JSON",
        ),
    ];
    let server = TestServer::start().await?;
    for (name, body, text) in cases {
        let reply =
            tokio::time::timeout(PROMPT, server.http("POST", "/token/websocket", Some(&body)))
                .await
                .with_context(|| format!("{name}: slow"))??;
        assert_eq!(reply.status, 400, "{name}: {reply:?}");
        let error = reply.body["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{name}: {error:?} lacks {text:?}");
        assert!(reply.body.get("token").is_none(), "{name}");
    }
    server.stop().await
}

/// The status and body of a refused upgrade; fails if the upgrade succeeds.
async fn refused_upgrade(url: &str) -> Result<(u16, Value)> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => bail!("upgrade to {url} unexpectedly succeeded"),
        Err(WsError::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().as_deref().unwrap_or_default();
            Ok((status, serde_json::from_slice(body).unwrap_or(Value::Null)))
        }
        Err(other) => bail!("unexpected error {other}"),
    }
}

/// Changes the base64url character at `at` to another valid one.
fn flip(token: &str, at: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap_or_default()
}

#[tokio::test]
async fn tampered_tokens_are_refused_at_the_upgrade_with_403() -> Result<()> {
    let server = TestServer::start().await?;
    let token = server.token(json!({"accessPattern": "user:*"})).await?;
    // A token for everything, signed with a secret this server does not hold.
    let stranger_config = ServerConfig::new(vec![KEY.into()], b"another secret".to_vec());
    let stranger = TestServer::start_with(stranger_config, None).await?;
    let foreign = stranger.token(json!({"accessPattern": "*"})).await?;
    stranger.stop().await?;
    // The same MAC over a payload rewritten to grant everything.
    let bytes = URL_SAFE_NO_PAD.decode(&token)?;
    let (payload, mac) = bytes.split_at(bytes.len() - 32);
    let mut claims: Value = serde_json::from_slice(payload)?;
    claims["a"] = json!("*");
    let mut forged = serde_json::to_vec(&claims)?;
    forged.extend_from_slice(mac);
    let forged = URL_SAFE_NO_PAD.encode(forged);
    let standard = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let cases: Vec<(&str, String)> = vec![
        ("one payload character changed", flip(&token, 5)),
        (
            "one signature character changed",
            flip(&token, token.len() - 10),
        ),
        (
            "last character dropped",
            token[..token.len() - 1].to_owned(),
        ),
        ("cut in half", token[..token.len() / 2].to_owned()),
        ("extra character appended", format!("{token}A")),
        ("empty", String::new()),
        ("JWT-like extra dots", format!("{token}.{token}.x")),
        ("base64 garbage", "!!!!****~~~~".to_owned()),
        ("padded, standard alphabet", standard),
        ("payload rewritten, MAC kept", forged),
        ("signed with another secret", foreign),
    ];
    let base = format!("ws://{}/ws", server.addr);
    for (name, bad) in cases {
        let (status, body) = refused_upgrade(&format!("{base}?token={bad}")).await?;
        assert_eq!(status, 403, "{name}");
        assert_eq!(body, json!({"error": "Invalid or expired token"}), "{name}");
    }
    // A bad token is not rescued by a good one later in the query.
    let (status, _) = refused_upgrade(&format!("{base}?token=x{token}&token={token}")).await?;
    assert_eq!(status, 403, "first token wins");
    // A token is not an API key.
    let (status, _) = refused_upgrade(&format!("{base}?apiKey={token}")).await?;
    assert_eq!(status, 401, "token as apiKey");
    assert_eq!(server.store.revision(), 0);
    // The genuine token still works, within its pattern only.
    let mut ws = server.ws_token(&token).await?;
    assert_ok(
        &ws.request(json!({"op": 2, "key": "user:1", "value": "v"}))
            .await?,
    );
    ws.assert_alive().await?;
    server.stop().await
}

#[tokio::test]
async fn expired_tokens_are_refused_at_the_upgrade_with_403() -> Result<()> {
    let mut config = ServerConfig::new(vec![KEY.into()], SECRET.to_vec());
    config.token_lifetime = Duration::from_millis(1);
    let server = TestServer::start_with(config, None).await?;
    let token = server.token(json!({"accessPattern": "*"})).await?;
    // The expiry is in the token ("e", ms since the epoch): wait exactly until it has
    // passed on the wall clock, which is what expiry is measured against.
    let bytes = URL_SAFE_NO_PAD.decode(&token)?;
    let claims: Value = serde_json::from_slice(&bytes[..bytes.len() - 32])?;
    let expires_ms = claims["e"].as_u64().context("no expiry in the token")?;
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    tokio::time::sleep(Duration::from_millis(expires_ms.saturating_sub(now_ms) + 1)).await;
    let url = format!("ws://{}/ws?token={token}", server.addr);
    let (status, body) = refused_upgrade(&url).await?;
    assert_eq!(status, 403);
    assert_eq!(body, json!({"error": "Invalid or expired token"}));
    // Refused again from the verified-token cache, not just on first sight.
    assert_eq!(refused_upgrade(&url).await?.0, 403);
    assert_eq!(server.store.revision(), 0);
    server.ws().await?.assert_alive().await?;
    server.stop().await
}

/// An HTTP request with the API key and raw bytes for the path and body (so paths and
/// bodies need not be valid UTF-8); returns the status and the JSON body (or null).
async fn raw_http(
    server: &TestServer,
    method: &str,
    path: &[u8],
    body: &[u8],
) -> Result<(u16, Value)> {
    let mut request = format!("{method} ").into_bytes();
    request.extend_from_slice(path);
    request.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nx-api-key: {KEY}\r\n\
             Content-Length: {}\r\n\r\n",
            server.addr,
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    let mut socket = TcpStream::connect(server.addr).await?;
    socket.write_all(&request).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, socket.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head.split(' ').nth(1).context("no status line")?.parse()?;
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    Ok((status, body))
}

#[tokio::test]
async fn rest_paths_decode_once_into_exactly_the_key_without_normalization() -> Result<()> {
    // (name, path after the host, the key it must name). Dot segments, doubled slashes
    // and escapes are not resolved: a key is bytes, and `..` climbs nowhere.
    let cases: Vec<(&str, String, String)> = vec![
        (
            "dot-dot segments",
            "/record/../etc/passwd".into(),
            "../etc/passwd".into(),
        ),
        (
            "encoded dot-dot-slash",
            "/record/%2e%2e%2f".into(),
            "../".into(),
        ),
        (
            "mixed encoded traversal",
            "/record/%2E%2E/..%2f%2e%2E%5Csecret".into(),
            "../../..\\secret".into(),
        ),
        (
            "single dot segments",
            "/record/a/./b/.".into(),
            "a/./b/.".into(),
        ),
        ("leading slash in the key", "/record//x".into(), "/x".into()),
        (
            "trailing slash in the key",
            "/record/dir/".into(),
            "dir/".into(),
        ),
        (
            "double-encoded slash",
            "/record/a%252Fb".into(),
            "a%2Fb".into(),
        ),
        (
            "double-encoded dot-dot",
            "/record/%252e%252e".into(),
            "%2e%2e".into(),
        ),
        (
            "encoded space and unicode",
            "/record/a%20b%E2%9C%93".into(),
            "a b✓".into(),
        ),
        ("plus stays plus", "/record/a+b".into(), "a+b".into()),
        ("lone percent", "/record/100%".into(), "100%".into()),
        (
            "invalid escape kept",
            "/record/%zz%4".into(),
            "%zz%4".into(),
        ),
        (
            "encoded question mark",
            "/record/%3Fq%3D1".into(),
            "?q=1".into(),
        ),
        ("encoded hash", "/record/%23frag".into(), "#frag".into()),
        (
            "query is not part of the key",
            "/record/plain?x=1".into(),
            "plain".into(),
        ),
        (
            "encoded control characters",
            "/record/%01%09%1F%7F".into(),
            "\u{1}\t\u{1f}\u{7f}".into(),
        ),
        (
            "encoded line separator",
            "/record/%E2%80%A8".into(),
            "\u{2028}".into(),
        ),
        (
            "512 encoded bytes",
            format!("/record/{}", "%41".repeat(512)),
            "A".repeat(512),
        ),
    ];
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for (name, path, key) in cases {
        let value = format!("value of {name}");
        let body = json!({"key": key, "value": value}).to_string();
        let (status, _) = raw_http(&server, "POST", b"/record", body.as_bytes()).await?;
        assert_eq!(status, 200, "{name}: POST");
        let (status, got) = raw_http(&server, "GET", path.as_bytes(), b"").await?;
        assert_eq!(status, 200, "{name}: GET {path}: {got}");
        assert_eq!(got["key"], json!(key), "{name}");
        assert_eq!(got["value"], json!(value), "{name}");
        let (status, _) = raw_http(&server, "DELETE", path.as_bytes(), b"").await?;
        assert_eq!(status, 200, "{name}: DELETE {path}");
        // The DELETE removed exactly that key.
        assert_error(
            &ws.request(json!({"op": 1, "key": key})).await?,
            404,
            "Record not found",
        );
    }
    server.stop().await
}

/// A REST request that must be refused: raw path and body (neither need be UTF-8), the
/// status, and text the `{"error"}` body must contain (empty when hyper itself answers
/// and the body is not the server's).
struct RestRefusal {
    name: &'static str,
    method: &'static str,
    path: Vec<u8>,
    body: Vec<u8>,
    status: u16,
    text: &'static str,
}

fn refusal(
    name: &'static str,
    method: &'static str,
    path: impl Into<Vec<u8>>,
    body: impl Into<Vec<u8>>,
    status: u16,
    text: &'static str,
) -> RestRefusal {
    RestRefusal {
        name,
        method,
        path: path.into(),
        body: body.into(),
        status,
        text,
    }
}

#[tokio::test]
async fn hostile_rest_requests_are_refused_and_write_nothing() -> Result<()> {
    let deep = nested_arrays(10_000);
    let long_path = format!("/record/{}", "k".repeat(600));
    let huge_path = format!("/record/{}", "k".repeat(100_000));
    let deep_body = format!(r#"{{"key":"deep","value":{deep}}}"#);
    let cases = vec![
        refusal("GET of %00", "GET", b"/record/%00", b"", 400, "U+0000"),
        refusal(
            "DELETE of a%00b",
            "DELETE",
            b"/record/a%00b",
            b"",
            400,
            "U+0000",
        ),
        refusal(
            "GET of %FF",
            "GET",
            b"/record/%FF",
            b"",
            400,
            "Key is not valid UTF-8 after percent-decoding",
        ),
        refusal(
            "DELETE of an overlong encoding %C0%AF",
            "DELETE",
            b"/record/%C0%AF",
            b"",
            400,
            "Key is not valid UTF-8",
        ),
        refusal(
            "GET of an encoded surrogate %ED%A0%80",
            "GET",
            b"/record/%ED%A0%80",
            b"",
            400,
            "Key is not valid UTF-8",
        ),
        refusal(
            "GET of a 600-byte key",
            "GET",
            long_path.into_bytes(),
            b"",
            400,
            "Key is 600 bytes; the limit is 512 bytes",
        ),
        refusal(
            "GET of 513 encoded bytes",
            "GET",
            format!("/record/{}", "%41".repeat(513)).into_bytes(),
            b"",
            400,
            "Key is 513 bytes",
        ),
        // hyper refuses a request line this long before routing, with an empty body
        // rather than the `{"error"}` of A6; the status is the right one.
        refusal(
            "DELETE of a 100 000-byte path",
            "DELETE",
            huge_path.into_bytes(),
            b"",
            414,
            "",
        ),
        refusal(
            "GET of the empty key",
            "GET",
            b"/record/",
            b"",
            400,
            "Key must not be empty",
        ),
        refusal(
            "doubled slashes before record",
            "GET",
            b"//record//x",
            b"",
            404,
            "Not found",
        ),
        refusal(
            "POST climbing back to atomic",
            "POST",
            b"/record/../record/atomic",
            br#"{"key":"n","increment":1}"#,
            405,
            "Method not allowed on this route",
        ),
        refusal(
            "POST to atomic with a trailing slash",
            "POST",
            b"/record/atomic/",
            br#"{"key":"n","increment":1}"#,
            405,
            "Method not allowed on this route",
        ),
        refusal(
            "POST to an encoded-slash atomic",
            "POST",
            b"/record%2Fatomic",
            br#"{"key":"n","increment":1}"#,
            404,
            "Not found",
        ),
        refusal(
            "POST a key with U+0000",
            "POST",
            b"/record",
            br#"{"key":"a\u0000b","value":"v"}"#,
            400,
            "U+0000",
        ),
        refusal(
            "POST a key with a lone surrogate",
            "POST",
            b"/record",
            br#"{"key":"\ud800","value":"v"}"#,
            400,
            "Field 'key' is not valid Unicode",
        ),
        refusal(
            "POST 10 000 nested arrays as the value",
            "POST",
            b"/record",
            deep_body.into_bytes(),
            400,
            "Field 'value' must be a string, got an array",
        ),
        refusal(
            "POST a body that is not UTF-8",
            "POST",
            b"/record",
            b"{\"key\":\"k\",\"value\":\"\xff\"}".to_vec(),
            400,
            "Body is not valid UTF-8",
        ),
        refusal(
            "POST a body with a byte order mark",
            "POST",
            b"/record",
            "\u{feff}{\"key\":\"k\",\"value\":\"v\"}"
                .as_bytes()
                .to_vec(),
            400,
            "Invalid JSON",
        ),
        refusal(
            "POST an increment of 1e309",
            "POST",
            b"/record/atomic",
            br#"{"key":"n","increment":1e309}"#,
            400,
            "Field 'increment' is out of range: 1e309",
        ),
        refusal(
            "POST an increment of 23 digits",
            "POST",
            b"/record/atomic",
            br#"{"key":"n","increment":99999999999999999999999}"#,
            400,
            "Field 'increment' is out of range: 99999999999999999999999",
        ),
        refusal(
            "POST partialUpdate as a string",
            "POST",
            b"/record",
            br#"{"key":"k","value":"v","partialUpdate":"true"}"#,
            400,
            "Field 'partialUpdate' must be a boolean or null",
        ),
        refusal(
            "RANGE with a limit of 23 digits and a sign",
            "GET",
            b"/records?startKey=a&endKey=b&limit=-99999999999999999999999",
            b"",
            400,
            "Query parameter 'limit' must be an integer",
        ),
        refusal(
            "RANGE with a negative limit",
            "GET",
            b"/records?startKey=a&endKey=b&limit=-5",
            b"",
            400,
            "limit must be a positive integer, got -5",
        ),
    ];
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    for RestRefusal {
        name,
        method,
        path,
        body,
        status,
        text,
    } in cases
    {
        let (got, reply) = raw_http(&server, method, &path, &body).await?;
        assert_eq!(got, status, "{name}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{name}: {error:?} lacks {text:?}");
        assert_eq!(server.store.revision(), 0, "{name}: something was written");
        ws.assert_alive().await?;
    }
    server.stop().await
}

// PATCH merges when both texts parse as JSON objects (A3). serde_json stops parsing at
// 128 levels; appending such an object to a stored one would leave
// `{"a":1}{"a":{...}}`, which is not JSON, so the merge is refused instead.
#[tokio::test]
async fn patch_with_an_object_too_deep_to_merge_is_refused_not_appended() -> Result<()> {
    let server = TestServer::start().await?;
    let mut ws = server.ws().await?;
    assert_ok(
        &ws.request(json!({"op": 2, "key": "doc", "value": r#"{"a":1}"#}))
            .await?,
    );
    let revision = server.store.revision();
    let deep = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
    let reply = ws
        .request(json!({"op": 3, "key": "doc", "value": deep}))
        .await?;
    assert_error(&reply, 400, "nested deeper than");
    assert_eq!(server.store.revision(), revision, "something was written");
    assert_eq!(
        ws.request(json!({"op": 1, "key": "doc"})).await?["value"],
        r#"{"a":1}"#
    );
    ws.assert_alive().await?;
    server.stop().await
}

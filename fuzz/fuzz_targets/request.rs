//! Fuzzes the WebSocket request parser and the REST body parsers with any UTF-8 text.
//!
//! Beyond "does not panic", it checks what clients rely on: a refusal always says
//! why, an echoed `messageId` is the JSON the client sent (never `null`, never
//! reformatted), and an accepted request that names a key really has one. The REST
//! body parsers get the same text, and must likewise explain every refusal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ripplekv_proto::{parse_request, rest, RequestBody};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // Frames arrive as WebSocket text, which is always UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sent_id = sent_message_id(text);
    let echoed = match parse_request(text) {
        Ok(request) => {
            let keyless = matches!(
                request.body,
                RequestBody::Subscribe { .. } | RequestBody::Unsubscribe { .. }
            );
            assert_eq!(request.body.key().is_none(), keyless);
            request.message_id
        }
        Err(error) => {
            assert!(
                !error.message.trim().is_empty(),
                "no reason given for {text:?}"
            );
            error.message_id
        }
    };
    if let Some(raw) = &echoed {
        // Valid JSON text, though not always a serde_json `Value`: a number such as
        // 1E2290 is legal JSON beyond f64, and is echoed as sent.
        serde_json::from_str::<&serde_json::value::RawValue>(raw.get()).expect("echoed id is JSON");
        assert_ne!(raw.get(), "null", "null is no id");
        // The echo is the sender's own text for the id, so equal as JSON to it.
        if let (Ok(id), Some(sent)) = (serde_json::from_str::<Value>(raw.get()), &sent_id) {
            assert_eq!(&id, sent);
        }
    }
    for answer in [
        rest::parse_record_body(text).err(),
        rest::parse_atomic_body(text).err(),
        rest::parse_token_body(text).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!answer.trim().is_empty(), "no reason given for {text:?}");
    }
});

/// The `messageId` of a frame that is a JSON object, if it has a non-null one.
fn sent_message_id(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut object)) => object.remove("messageId").filter(|id| !id.is_null()),
        _ => None,
    }
}

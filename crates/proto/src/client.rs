//! The client's side of the wire: a request as the JSON text the server parses, and the
//! frames a server sends, read into types.
//!
//! [`encode_request`] writes the same [`RequestBody`] that [`crate::parse_request`]
//! reads (a property test holds the two together), so a client and the server cannot
//! disagree on a field name. [`parse_server_frame`] reads replies, notifications and
//! `resync` notices; fields a server leaves out (an HPKV server sends no `revision`
//! and no `op`) are `None`, never a made-up default.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::request::{RequestBody, WriteOptions};

/// The text frame of `body`, tagged with `message_id` when given.
pub fn encode_request(body: &RequestBody, message_id: Option<u64>) -> String {
    let mut fields = Map::new();
    let mut put = |name: &str, value: Value| {
        fields.insert(name.to_owned(), value);
    };
    // The writes share one shape: op, key, value (not for DELETE), conditions.
    let write = |op, key: &str, value: Option<&str>, options: &WriteOptions| {
        (
            op,
            Some(key.to_owned()),
            value.map(str::to_owned),
            Some(*options),
        )
    };
    let (op, key, value, options) = match body {
        RequestBody::Set {
            key,
            value,
            options,
        } => write("set", key, Some(value), options),
        RequestBody::Patch {
            key,
            value,
            options,
        } => write("patch", key, Some(value), options),
        RequestBody::JsonPatch {
            key,
            value,
            options,
        } => write("jsonpatch", key, Some(value), options),
        RequestBody::Delete { key, options } => write("delete", key, None, options),
        RequestBody::Get { key } => ("get", Some(key.clone()), None, None),
        RequestBody::Range {
            key,
            end_key,
            limit,
        } => {
            put("endKey", json!(end_key));
            if let Some(limit) = limit {
                put("limit", json!(limit));
            }
            ("range", Some(key.clone()), None, None)
        }
        RequestBody::Atomic { key, delta } => {
            put("value", json!(delta));
            ("atomic", Some(key.clone()), None, None)
        }
        RequestBody::Subscribe { patterns, since } => {
            put("patterns", json!(patterns));
            if let Some(since) = since {
                put("since", json!(since));
            }
            ("subscribe", None, None, None)
        }
        RequestBody::Unsubscribe { patterns } => {
            put("patterns", json!(patterns));
            ("unsubscribe", None, None, None)
        }
    };
    put("op", json!(op));
    if let Some(key) = key {
        put("key", json!(key));
    }
    if let Some(value) = value {
        put("value", json!(value));
    }
    if let Some(WriteOptions {
        if_revision,
        ttl_ms,
    }) = options
    {
        if let Some(revision) = if_revision {
            put("ifRevision", json!(revision));
        }
        if let Some(ttl_ms) = ttl_ms {
            // The wire counts seconds, fractions allowed.
            put("ttl", json!(ttl_ms as f64 / 1000.0));
        }
    }
    if let Some(id) = message_id {
        put("messageId", json!(id));
    }
    Value::Object(fields).to_string()
}

/// A frame a server sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// The answer to a request.
    Reply(Reply),
    /// A change to a subscribed key.
    Notification(Notification),
    /// The server's history does not reach back to a requested `since`: re-read what
    /// is watched, then carry on from `revision`.
    Resync {
        /// Where to carry on from.
        revision: u64,
    },
}

/// The answer to a request: `code` 200, or an error with its text. Which other fields
/// are present depends on the op.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    /// 200, or the error's status code.
    pub code: u16,
    /// The request's `messageId`, as a number (the only kind this client sends).
    #[serde(default)]
    pub message_id: Option<u64>,
    /// The error text, when `code` is not 200.
    #[serde(default)]
    pub error: Option<String>,
    /// The revision of a write, of a read record, or (on a 409) the key's current one.
    #[serde(default)]
    pub revision: Option<u64>,
    /// GET and ATOMIC: the key.
    #[serde(default)]
    pub key: Option<String>,
    /// GET: the value.
    #[serde(default)]
    pub value: Option<String>,
    /// ATOMIC: the value after the increment.
    #[serde(default)]
    pub new_value: Option<i64>,
    /// RANGE: the page.
    #[serde(default)]
    pub records: Option<Vec<ReplyRecord>>,
    /// RANGE: whether more records follow the page.
    #[serde(default)]
    pub truncated: Option<bool>,
}

/// One record of a RANGE reply.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReplyRecord {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// The revision of its last change (RippleKV sends it; HPKV does not).
    #[serde(default)]
    pub revision: Option<u64>,
}

/// A change pushed to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notification {
    /// The key that changed.
    pub key: String,
    /// What HPKV notifications carry: `None` for a delete or an expiry.
    #[serde(default)]
    pub value: Option<String>,
    /// When it was committed, in ms since the Unix epoch.
    #[serde(default)]
    pub timestamp: u64,
    /// `set`, `patch`, `delete`, `atomic`, `expire` or `jsonpatch`; `None` from a
    /// server that does not say (HPKV).
    #[serde(default)]
    pub op: Option<String>,
    /// The change's revision; `None` from a server that does not say (HPKV).
    #[serde(default)]
    pub revision: Option<u64>,
}

#[derive(Deserialize)]
struct Tag {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    revision: Option<u64>,
}

/// Reads a frame from a server; the error says what was wrong with it.
pub fn parse_server_frame(text: &str) -> Result<ServerFrame, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|err| format!("frame is not JSON: {err}"))?;
    let tag = Tag::deserialize(&value).map_err(|err| format!("unexpected frame: {err}"))?;
    match tag.kind.as_deref() {
        Some("notification") => Notification::deserialize(&value)
            .map(ServerFrame::Notification)
            .map_err(|err| format!("unexpected notification: {err}")),
        Some("resync") => Ok(ServerFrame::Resync {
            revision: tag.revision.ok_or("resync without a revision")?,
        }),
        Some(other) => Err(format!("unknown frame type {other:?}")),
        None => Reply::deserialize(&value)
            .map(ServerFrame::Reply)
            .map_err(|err| format!("unexpected reply: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_request;

    #[test]
    fn every_request_reads_back_as_it_was_written() {
        let options = WriteOptions {
            if_revision: Some(7),
            ttl_ms: Some(1500),
        };
        // DELETE and JSON Patch take a condition but no TTL.
        let condition = WriteOptions {
            if_revision: Some(7),
            ttl_ms: None,
        };
        let bodies = [
            RequestBody::Get { key: "k".into() },
            RequestBody::Set {
                key: "k".into(),
                value: "v".into(),
                options,
            },
            RequestBody::Patch {
                key: "k".into(),
                value: "{}".into(),
                options: WriteOptions::default(),
            },
            RequestBody::Delete {
                key: "k".into(),
                options: condition,
            },
            RequestBody::JsonPatch {
                key: "k".into(),
                value: "[]".into(),
                options: condition,
            },
            RequestBody::Range {
                key: "a".into(),
                end_key: "z".into(),
                limit: Some(5),
            },
            RequestBody::Atomic {
                key: "n".into(),
                delta: -3,
            },
            RequestBody::Subscribe {
                patterns: vec!["a*".into()],
                since: Some(9),
            },
            RequestBody::Unsubscribe {
                patterns: vec!["a*".into()],
            },
        ];
        for body in bodies {
            let text = encode_request(&body, Some(42));
            let parsed = parse_request(&text).unwrap();
            assert_eq!(parsed.body, body, "{text}");
            assert_eq!(parsed.message_id.unwrap().get(), "42");
        }
    }

    #[test]
    fn server_frames_are_read_into_types_and_missing_fields_stay_missing() {
        let hpkv = r#"{"type":"notification","key":"k","value":"v","timestamp":5}"#;
        assert_eq!(
            parse_server_frame(hpkv).unwrap(),
            ServerFrame::Notification(Notification {
                key: "k".into(),
                value: Some("v".into()),
                timestamp: 5,
                op: None,
                revision: None,
            })
        );
        assert_eq!(
            parse_server_frame(r#"{"type":"resync","revision":3}"#).unwrap(),
            ServerFrame::Resync { revision: 3 }
        );
        let ServerFrame::Reply(reply) = parse_server_frame(
            r#"{"code":409,"error":"Revision mismatch","key":"k","revision":4,"messageId":2}"#,
        )
        .unwrap() else {
            panic!("a reply");
        };
        assert_eq!(
            (reply.code, reply.message_id, reply.revision),
            (409, Some(2), Some(4))
        );
        assert!(parse_server_frame("[1]").is_err());
        assert!(parse_server_frame(r#"{"type":"weird"}"#).is_err());
    }
}

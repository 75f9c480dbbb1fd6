//! Reply objects (PROTOCOL.md A4), serialized straight to a text frame.
//!
//! Success replies carry `"code":200` and never an `error` field; errors carry the
//! code, a message, and the `messageId` and `key` when they are known. RippleKV adds
//! `revision` to write and read replies (part B); HPKV clients ignore it.

use serde::Serialize;
use serde_json::value::RawValue;

/// One record of a RANGE page.
#[derive(Debug, Serialize)]
pub struct RangeRecord<'a> {
    /// The key.
    pub key: &'a str,
    /// Its value.
    pub value: &'a str,
    /// The revision of its last change.
    pub revision: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, T: Serialize> {
    code: u16,
    #[serde(flatten)]
    body: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a RawValue>,
}

fn success<T: Serialize>(body: T, message_id: Option<&RawValue>) -> String {
    let envelope = Envelope {
        code: 200,
        body,
        message_id,
    };
    serde_json::to_string(&envelope).unwrap_or_else(|_| internal_error())
}

/// `{"code":200,"key":K,"value":V,"revision":R}`
pub fn get(key: &str, value: &str, revision: u64, message_id: Option<&RawValue>) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        key: &'a str,
        value: &'a str,
        revision: u64,
    }
    success(
        Body {
            key,
            value,
            revision,
        },
        message_id,
    )
}

/// `{"code":200,"success":true,"message":M,"revision":R}` for SET, PATCH and DELETE.
pub fn written(message: &str, revision: u64, message_id: Option<&RawValue>) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        success: bool,
        message: &'a str,
        revision: u64,
    }
    success(
        Body {
            success: true,
            message,
            revision,
        },
        message_id,
    )
}

/// `{"code":200,"records":[...],"count":N,"truncated":B}`
pub fn range(records: &[RangeRecord], truncated: bool, message_id: Option<&RawValue>) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        records: &'a [RangeRecord<'a>],
        count: usize,
        truncated: bool,
    }
    success(
        Body {
            records,
            count: records.len(),
            truncated,
        },
        message_id,
    )
}

/// `{"code":200,"success":true,"key":K,"newValue":N,"revision":R}`
pub fn atomic(key: &str, new_value: i64, revision: u64, message_id: Option<&RawValue>) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        success: bool,
        key: &'a str,
        new_value: i64,
        revision: u64,
    }
    success(
        Body {
            success: true,
            key,
            new_value,
            revision,
        },
        message_id,
    )
}

/// `{"code":C,"error":T,"messageId":M,"key":K}`
pub fn error(code: u16, text: &str, message_id: Option<&RawValue>, key: Option<&str>) -> String {
    error_at(code, text, message_id, key, None)
}

/// An error that also reports the key's current `revision` (409 on `ifRevision`).
pub fn error_at(
    code: u16,
    text: &str,
    message_id: Option<&RawValue>,
    key: Option<&str>,
    revision: Option<u64>,
) -> String {
    error_body(ErrorBody {
        code,
        error: text,
        message_id,
        key,
        revision,
        retry_after_ms: None,
    })
}

/// A 429: the request was over a rate limit and may be retried after `retryAfterMs`.
pub fn rate_limited(
    text: &str,
    retry_after_ms: u64,
    message_id: Option<&RawValue>,
    key: Option<&str>,
) -> String {
    error_body(ErrorBody {
        code: 429,
        error: text,
        message_id,
        key,
        revision: None,
        retry_after_ms: Some(retry_after_ms),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    code: u16,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

fn error_body(body: ErrorBody<'_>) -> String {
    serde_json::to_string(&body).unwrap_or_else(|_| internal_error())
}

/// Serializing these plain structs cannot fail; this keeps the reply well-formed anyway.
fn internal_error() -> String {
    r#"{"code":500,"error":"Internal server error"}"#.to_owned()
}

/// A change notification (PROTOCOL.md A5, with part B's `op` and `revision`):
/// `{"type":"notification","key":K,"value":V|null,"timestamp":T,"op":O,"revision":R}`
pub fn notification(
    key: &str,
    value: Option<&str>,
    timestamp_ms: u64,
    op: &str,
    revision: u64,
) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        key: &'a str,
        value: Option<&'a str>,
        timestamp: u64,
        op: &'a str,
        revision: u64,
    }
    serde_json::to_string(&Body {
        kind: "notification",
        key,
        value,
        timestamp: timestamp_ms,
        op,
        revision,
    })
    .unwrap_or_else(|_| internal_error())
}

/// Sent instead of a replay when `since` is older than the retained change log:
/// `{"type":"resync","revision":R}`; the client should re-read what it watches.
pub fn resync(revision: u64) -> String {
    format!(r#"{{"type":"resync","revision":{revision}}}"#)
}

/// `{"code":200,"success":true,"patterns":[...],"revision":R}` for (un)subscribe.
pub fn subscribed(patterns: &[String], revision: u64, message_id: Option<&RawValue>) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        success: bool,
        patterns: &'a [String],
        revision: u64,
    }
    success(
        Body {
            success: true,
            patterns,
            revision,
        },
        message_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn shapes() {
        let m = id("7");
        assert_eq!(
            get("k", "v", 3, Some(&m)),
            r#"{"code":200,"key":"k","value":"v","revision":3,"messageId":7}"#
        );
        assert_eq!(
            written("Record saved", 4, None),
            r#"{"code":200,"success":true,"message":"Record saved","revision":4}"#
        );
        let records = [RangeRecord {
            key: "a",
            value: "1",
            revision: 2,
        }];
        assert_eq!(
            range(&records, true, Some(&m)),
            r#"{"code":200,"records":[{"key":"a","value":"1","revision":2}],"count":1,"truncated":true,"messageId":7}"#
        );
        assert_eq!(
            atomic("n", -5, 9, None),
            r#"{"code":200,"success":true,"key":"n","newValue":-5,"revision":9}"#
        );
        assert_eq!(
            error(404, "Record not found", Some(&m), Some("k")),
            r#"{"code":404,"error":"Record not found","messageId":7,"key":"k"}"#
        );
        assert_eq!(
            error(400, "bad", None, None),
            r#"{"code":400,"error":"bad"}"#
        );
    }
}

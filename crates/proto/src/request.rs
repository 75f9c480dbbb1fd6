//! Parsing one request frame (PROTOCOL.md A2 and part B op names).
//!
//! A frame is first split into its known fields as raw JSON (unknown fields such as
//! `timestamp` are ignored), then each field is checked on its own so an error names
//! the field at fault. `messageId` is kept as raw JSON and echoed byte for byte.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::fields::{describe_json_error, integer, json_kind, string_field, string_list};

/// The operations a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Op 1.
    Get,
    /// Op 2.
    Set,
    /// Op 3.
    Patch,
    /// Op 4.
    Delete,
    /// Op 5.
    Range,
    /// Op 6.
    Atomic,
    /// `jsonpatch`: RFC 6902 operations on the stored document.
    JsonPatch,
    /// `subscribe`, with an optional `since`.
    Subscribe,
    /// `unsubscribe`.
    Unsubscribe,
}

impl Op {
    /// The op for a number (1-6) or a name, as HPKV apps and humans send them.
    fn from_raw(raw: &RawValue) -> Result<Op, String> {
        if let Ok(number) = serde_json::from_str::<i64>(raw.get()) {
            return match number {
                1 => Ok(Op::Get),
                2 => Ok(Op::Set),
                3 => Ok(Op::Patch),
                4 => Ok(Op::Delete),
                5 => Ok(Op::Range),
                6 => Ok(Op::Atomic),
                _ => Err(format!(
                    "Unknown operation: {number} (expected 1-6 or an op name)"
                )),
            };
        }
        let name = match json_kind(raw.get()) {
            "a string" => string_field("op", Some(raw))?,
            // A number that is not a 64-bit integer (1.5, 1e3, 99999999999999999999999)
            // is still a number: name it as the unknown operation it is.
            "a number" => {
                return Err(format!(
                    "Unknown operation: {} (expected 1-6 or an op name)",
                    raw.get()
                ))
            }
            _ => return Err("Field 'op' must be an integer or a string".to_owned()),
        };
        match name.to_ascii_lowercase().as_str() {
            "get" => Ok(Op::Get),
            "set" | "insert" | "create" => Ok(Op::Set),
            "patch" | "update" | "append" => Ok(Op::Patch),
            "delete" => Ok(Op::Delete),
            "range" => Ok(Op::Range),
            "atomic" => Ok(Op::Atomic),
            "jsonpatch" | "json-patch" | "json_patch" => Ok(Op::JsonPatch),
            "subscribe" => Ok(Op::Subscribe),
            "unsubscribe" => Ok(Op::Unsubscribe),
            _ => Err(format!("Unknown operation: {name:?}")),
        }
    }
}

/// A well-formed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Echoed unchanged on the reply.
    pub message_id: Option<Box<RawValue>>,
    /// The operation and its fields.
    pub body: RequestBody,
}

/// What is asked, with every field typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// Read one key.
    Get {
        /// The key.
        key: String,
    },
    /// Create or replace.
    Set {
        /// The key.
        key: String,
        /// The value to store.
        value: String,
        /// `ifRevision` and `ttl`.
        options: WriteOptions,
    },
    /// JSON merge, or append.
    Patch {
        /// The key.
        key: String,
        /// The object to merge or the text to append.
        value: String,
        /// `ifRevision` and `ttl`.
        options: WriteOptions,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
        /// `ifRevision`.
        options: WriteOptions,
    },
    /// Part B: RFC 6902 operations (a JSON array, as text) applied atomically.
    JsonPatch {
        /// The key.
        key: String,
        /// The RFC 6902 operations, as JSON text.
        value: String,
        /// `ifRevision`.
        options: WriteOptions,
    },
    /// Scan `key..=end_key`.
    Range {
        /// The first key (inclusive).
        key: String,
        /// The last key (inclusive).
        end_key: String,
        /// The page size as sent (clamped when used).
        limit: Option<i64>,
    },
    /// Add a delta to an integer.
    Atomic {
        /// The key.
        key: String,
        /// The amount to add.
        delta: i64,
    },
    /// Part B: start receiving notifications for `patterns`, replaying from `since`.
    Subscribe {
        /// The patterns to add.
        patterns: Vec<String>,
        /// Replay every retained change after this revision first.
        since: Option<u64>,
    },
    /// Part B: stop receiving notifications for `patterns`.
    Unsubscribe {
        /// The patterns to remove.
        patterns: Vec<String>,
    },
}

impl RequestBody {
    /// The key the request is about (the start key for RANGE), if it has one.
    pub fn key(&self) -> Option<&str> {
        match self {
            RequestBody::Get { key }
            | RequestBody::Set { key, .. }
            | RequestBody::Patch { key, .. }
            | RequestBody::Delete { key, .. }
            | RequestBody::JsonPatch { key, .. }
            | RequestBody::Range { key, .. }
            | RequestBody::Atomic { key, .. } => Some(key),
            RequestBody::Subscribe { .. } | RequestBody::Unsubscribe { .. } => None,
        }
    }
}

/// A frame that is not a valid request, with what is known of it for the reply.
#[derive(Debug, Clone)]
pub struct RequestError {
    /// Why the request was refused.
    pub message: String,
    /// The request's `messageId`, as sent, if it could be read.
    pub message_id: Option<Box<RawValue>>,
    /// The request's key, if it could be read.
    pub key: Option<String>,
}

/// The known fields of a request, still as raw JSON.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    op: Option<&'a RawValue>,
    #[serde(borrow)]
    key: Option<&'a RawValue>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    #[serde(borrow, rename = "messageId")]
    message_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "endKey")]
    end_key: Option<&'a RawValue>,
    #[serde(borrow)]
    limit: Option<&'a RawValue>,
    #[serde(borrow)]
    patterns: Option<&'a RawValue>,
    #[serde(borrow)]
    since: Option<&'a RawValue>,
    #[serde(borrow, rename = "ifRevision")]
    if_revision: Option<&'a RawValue>,
    #[serde(borrow)]
    ttl: Option<&'a RawValue>,
}

/// Parses one text frame.
pub fn parse_request(text: &str) -> Result<Request, RequestError> {
    let fields: Fields = serde_json::from_str(text).map_err(|err| RequestError {
        message: describe_json_error(text, &err),
        message_id: None,
        key: None,
    })?;
    let message_id = fields.message_id.map(ToOwned::to_owned);
    let mut key = None;
    let body = parse_body(&fields, &mut key);
    match body {
        Ok(body) => Ok(Request { message_id, body }),
        Err(message) => Err(RequestError {
            message,
            message_id,
            key,
        }),
    }
}

fn parse_body(fields: &Fields, key_seen: &mut Option<String>) -> Result<RequestBody, String> {
    let op = Op::from_raw(fields.op.ok_or("Missing field 'op'")?)?;
    match op {
        Op::Subscribe => {
            return Ok(RequestBody::Subscribe {
                patterns: patterns(fields.patterns)?,
                since: fields
                    .since
                    .map(|raw| {
                        integer("since", raw).and_then(|since| {
                            u64::try_from(since)
                                .map_err(|_| "Field 'since' must not be negative".to_owned())
                        })
                    })
                    .transpose()?,
            })
        }
        Op::Unsubscribe => {
            return Ok(RequestBody::Unsubscribe {
                patterns: patterns(fields.patterns)?,
            })
        }
        _ => {}
    }
    let key = string_field("key", fields.key)?;
    *key_seen = Some(key.clone());
    let options = write_options(op, fields)?;
    Ok(match op {
        Op::Get => RequestBody::Get { key },
        Op::Delete => RequestBody::Delete { key, options },
        Op::Set => RequestBody::Set {
            key,
            value: string_field("value", fields.value)?,
            options,
        },
        Op::Patch => RequestBody::Patch {
            key,
            value: string_field("value", fields.value)?,
            options,
        },
        Op::JsonPatch => RequestBody::JsonPatch {
            key,
            value: string_field("value", fields.value)?,
            options,
        },
        Op::Range => RequestBody::Range {
            key,
            end_key: string_field("endKey", fields.end_key)?,
            limit: fields.limit.map(page_limit).transpose()?,
        },
        Op::Atomic => RequestBody::Atomic {
            key,
            delta: integer(
                "value",
                fields
                    .value
                    .ok_or("Missing field 'value' (the integer delta for ATOMIC)")?,
            )?,
        },
        Op::Subscribe | Op::Unsubscribe => unreachable!("handled above"),
    })
}

/// Conditions of a write (PROTOCOL.md part B).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The revision the key must be at; 0 means "must not exist".
    pub if_revision: Option<u64>,
    /// Time to live in milliseconds (the wire gives seconds, fractions allowed).
    pub ttl_ms: Option<u64>,
}

/// Longest `ttl` accepted, in seconds (ten years).
pub const MAX_TTL_SECONDS: f64 = 315_360_000.0;

fn write_options(op: Op, fields: &Fields) -> Result<WriteOptions, String> {
    let conditional = matches!(op, Op::Set | Op::Patch | Op::Delete | Op::JsonPatch);
    let expiring = matches!(op, Op::Set | Op::Patch);
    let if_revision = match fields.if_revision {
        None => None,
        Some(_) if !conditional => {
            return Err(
                "Field 'ifRevision' is only allowed on SET, PATCH, DELETE and JSONPATCH".to_owned(),
            )
        }
        Some(raw) => Some(
            u64::try_from(integer("ifRevision", raw)?)
                .map_err(|_| "Field 'ifRevision' must not be negative".to_owned())?,
        ),
    };
    let ttl_ms = match fields.ttl {
        None => None,
        Some(_) if !expiring => {
            return Err("Field 'ttl' is only allowed on SET and PATCH".to_owned())
        }
        Some(raw) => {
            let range =
                || format!("Field 'ttl' must be more than 0 and at most {MAX_TTL_SECONDS} seconds");
            let seconds: f64 =
                serde_json::from_str(raw.get()).map_err(|_| match json_kind(raw.get()) {
                    // A literal beyond f64 (1e309) is a number, just far too large.
                    "a number" => range(),
                    kind => format!("Field 'ttl' must be a number of seconds, got {kind}"),
                })?;
            if !(seconds > 0.0 && seconds <= MAX_TTL_SECONDS) {
                return Err(range());
            }
            // At least 1 ms, so a tiny positive TTL still expires rather than never.
            Some(((seconds * 1000.0).round() as u64).max(1))
        }
    };
    Ok(WriteOptions {
        if_revision,
        ttl_ms,
    })
}

/// A non-empty array of pattern strings.
fn patterns(raw: Option<&RawValue>) -> Result<Vec<String>, String> {
    let raw = raw.ok_or("Missing field 'patterns'")?;
    let patterns = string_list("patterns", Some(raw))?;
    if patterns.is_empty() {
        return Err("Field 'patterns' must not be empty".to_owned());
    }
    Ok(patterns)
}

/// RANGE's `limit`: "larger is clamped" (A3) holds for integers beyond 64 bits too, so
/// a huge positive integer is taken as the largest one (the caller clamps to 1000).
fn page_limit(raw: &RawValue) -> Result<i64, String> {
    let text = raw.get().trim();
    integer("limit", raw).or_else(|err| {
        let huge_positive = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if huge_positive {
            Ok(i64::MAX)
        } else {
            Err(err)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> RequestBody {
        parse_request(text).unwrap().body
    }

    fn err(text: &str) -> String {
        parse_request(text).unwrap_err().message
    }

    #[test]
    fn ops_by_number_and_name() {
        assert_eq!(
            ok(r#"{"op":1,"key":"k"}"#),
            RequestBody::Get { key: "k".into() }
        );
        assert_eq!(
            ok(r#"{"op":"GET","key":"k"}"#),
            RequestBody::Get { key: "k".into() }
        );
        for name in ["set", "INSERT", "create", "2"] {
            let text = if name == "2" {
                r#"{"op":2,"key":"k","value":"v"}"#.to_owned()
            } else {
                format!(r#"{{"op":"{name}","key":"k","value":"v"}}"#)
            };
            assert!(matches!(ok(&text), RequestBody::Set { .. }), "{name}");
        }
        for name in ["patch", "update", "APPEND"] {
            let text = format!(r#"{{"op":"{name}","key":"k","value":"v"}}"#);
            assert!(matches!(ok(&text), RequestBody::Patch { .. }), "{name}");
        }
        assert_eq!(
            ok(r#"{"op":6,"key":"n","value":-3}"#),
            RequestBody::Atomic {
                key: "n".into(),
                delta: -3
            }
        );
        assert_eq!(
            ok(r#"{"op":"range","key":"a","endKey":"b","limit":5}"#),
            RequestBody::Range {
                key: "a".into(),
                end_key: "b".into(),
                limit: Some(5)
            }
        );
    }

    #[test]
    fn write_options() {
        assert_eq!(
            ok(r#"{"op":"set","key":"k","value":"v","ifRevision":3,"ttl":1.5}"#),
            RequestBody::Set {
                key: "k".into(),
                value: "v".into(),
                options: WriteOptions {
                    if_revision: Some(3),
                    ttl_ms: Some(1500)
                }
            }
        );
        assert!(matches!(
            ok(r#"{"op":"jsonpatch","key":"k","value":"[]","ifRevision":0}"#),
            RequestBody::JsonPatch {
                options: WriteOptions {
                    if_revision: Some(0),
                    ttl_ms: None
                },
                ..
            }
        ));
        assert!(matches!(
            ok(r#"{"op":4,"key":"k","ifRevision":7}"#),
            RequestBody::Delete { .. }
        ));
        assert!(err(r#"{"op":"set","key":"k","value":"v","ttl":0}"#).contains("more than 0"));
        assert!(
            err(r#"{"op":"set","key":"k","value":"v","ttl":"10"}"#).contains("number of seconds")
        );
        assert!(
            err(r#"{"op":"delete","key":"k","ttl":5}"#).contains("only allowed on SET and PATCH")
        );
        assert!(err(r#"{"op":6,"key":"k","value":1,"ifRevision":1}"#).contains("ifRevision"));
        assert!(err(r#"{"op":"set","key":"k","value":"v","ifRevision":-1}"#).contains("negative"));
    }

    #[test]
    fn subscriptions() {
        assert_eq!(
            ok(r#"{"op":"subscribe","patterns":["a*","b"],"since":5}"#),
            RequestBody::Subscribe {
                patterns: vec!["a*".into(), "b".into()],
                since: Some(5)
            }
        );
        assert_eq!(
            ok(r#"{"op":"unsubscribe","patterns":["a*"]}"#),
            RequestBody::Unsubscribe {
                patterns: vec!["a*".into()]
            }
        );
        assert_eq!(err(r#"{"op":"subscribe"}"#), "Missing field 'patterns'");
        assert_eq!(
            err(r#"{"op":"subscribe","patterns":[]}"#),
            "Field 'patterns' must not be empty"
        );
        assert_eq!(
            err(r#"{"op":"subscribe","patterns":"a"}"#),
            "Field 'patterns' must be an array of strings"
        );
        assert_eq!(
            err(r#"{"op":"subscribe","patterns":["a"],"since":-1}"#),
            "Field 'since' must not be negative"
        );
    }

    #[test]
    fn ignored_fields() {
        // value on GET/DELETE/RANGE and timestamp anywhere are ignored.
        assert_eq!(
            ok(r#"{"op":1,"key":"k","value":"","timestamp":123,"extra":[1]}"#),
            RequestBody::Get { key: "k".into() }
        );
    }

    #[test]
    fn message_id_is_echoed_verbatim() {
        let request =
            parse_request(r#"{"op":1,"key":"k","messageId":12345678901234567890}"#).unwrap();
        assert_eq!(request.message_id.unwrap().get(), "12345678901234567890");
        let request = parse_request(r#"{"op":1,"key":"k","messageId":"abc"}"#).unwrap();
        assert_eq!(request.message_id.unwrap().get(), r#""abc""#);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(err("{not json").starts_with("Invalid JSON"));
        assert_eq!(err("[1,2]"), "Request must be a JSON object, got an array");
        assert_eq!(err("42"), "Request must be a JSON object, got a number");
        assert_eq!(err(r#"{"key":"k"}"#), "Missing field 'op'");
        assert!(err(r#"{"op":9,"key":"k"}"#).starts_with("Unknown operation: 9"));
        assert!(err(r#"{"op":"frobnicate","key":"k"}"#).contains("frobnicate"));
        assert_eq!(
            err(r#"{"op":true,"key":"k"}"#),
            "Field 'op' must be an integer or a string"
        );
        assert_eq!(err(r#"{"op":1}"#), "Missing field 'key'");
        assert_eq!(
            err(r#"{"op":1,"key":5}"#),
            "Field 'key' must be a string, got a number"
        );
        assert_eq!(err(r#"{"op":2,"key":"k"}"#), "Missing field 'value'");
        assert_eq!(
            err(r#"{"op":2,"key":"k","value":{"a":1}}"#),
            "Field 'value' must be a string, got an object"
        );
        assert_eq!(err(r#"{"op":5,"key":"a"}"#), "Missing field 'endKey'");
        assert_eq!(
            err(r#"{"op":6,"key":"n","value":1.5}"#),
            "Field 'value' must be an integer, got 1.5"
        );
        assert_eq!(
            err(r#"{"op":6,"key":"n","value":"5"}"#),
            "Field 'value' must be an integer, got a string"
        );
        assert!(err(r#"{"op":6,"key":"n","value":9223372036854775808}"#).contains("out of range"));
        assert!(err(r#"{"op":6,"key":"n","value":-9223372036854775809}"#).contains("out of range"));
        assert!(err(r#"{"op":6,"key":"n","value":1e400}"#).contains("out of range"));
        // An integral number is an integer however it is written (JSON, JavaScript and
        // JSON Schema agree), as long as a double holds it exactly.
        for (text, delta) in [("1e3", 1000), ("5.0", 5), ("-2E1", -20)] {
            assert_eq!(
                ok(&format!(r#"{{"op":6,"key":"n","value":{text}}}"#)),
                RequestBody::Atomic {
                    key: "n".into(),
                    delta
                },
                "{text}"
            );
        }
        assert!(err(r#"{"op":6,"key":"n","value":1e300}"#).contains("out of range"));
        assert!(err(r#"{"op":6,"key":"n","value":1.0e-3}"#).contains("must be an integer"));
        assert!(err(r#"{"op":1,"key":"a","key":"b"}"#).contains("duplicate field"));
    }

    #[test]
    fn hostile_numbers_and_strings_are_named_precisely() {
        // Numbers that are not 64-bit integers are unknown ops, not "not a number".
        for op in ["1.5", "1.0", "99999999999999999999999", "1e309"] {
            assert_eq!(
                err(&format!(r#"{{"op":{op},"key":"k"}}"#)),
                format!("Unknown operation: {op} (expected 1-6 or an op name)")
            );
        }
        // A huge integer is quoted as sent, not as the float it parses to.
        assert_eq!(
            err(r#"{"op":5,"key":"a","endKey":"b","limit":-99999999999999999999999}"#),
            "Field 'limit' is out of range: -99999999999999999999999 does not fit in a 64-bit \
             signed integer"
        );
        // ... except a huge positive RANGE limit, which is clamped like any large one.
        assert!(matches!(
            ok(r#"{"op":5,"key":"a","endKey":"b","limit":99999999999999999999999}"#),
            RequestBody::Range {
                limit: Some(i64::MAX),
                ..
            }
        ));
        // A ttl beyond f64 is out of range, not "must be a number ... got a number".
        assert_eq!(
            err(r#"{"op":"set","key":"k","value":"v","ttl":1e309}"#),
            "Field 'ttl' must be more than 0 and at most 315360000 seconds"
        );
        // Lone surrogates get through the outer parse but are not Unicode.
        assert_eq!(
            err(r#"{"op":1,"key":"\ud800"}"#),
            "Field 'key' is not valid Unicode: a \\u escape is a lone surrogate (U+D800 to \
             U+DFFF without its pair)"
        );
        assert!(err(r#"{"op":"\udc00","key":"k"}"#).starts_with("Field 'op' is not valid Unicode"));
        assert!(err(r#"{"op":"subscribe","patterns":["\ud800"]}"#)
            .starts_with("Field 'patterns' is not valid Unicode"));
        // A surrogate pair is a real character.
        assert_eq!(
            ok(r#"{"op":1,"key":"\ud83d\ude00"}"#),
            RequestBody::Get { key: "😀".into() }
        );
    }

    #[test]
    fn error_keeps_message_id_and_key_when_known() {
        let error = parse_request(r#"{"op":2,"key":"k","messageId":7}"#).unwrap_err();
        assert_eq!(error.message_id.unwrap().get(), "7");
        assert_eq!(error.key.as_deref(), Some("k"));
        let error = parse_request(r#"{"op":99,"messageId":8}"#).unwrap_err();
        assert_eq!(error.message_id.unwrap().get(), "8");
        assert_eq!(error.key, None);
    }
}

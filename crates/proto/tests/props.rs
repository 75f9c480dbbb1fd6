//! Property tests of the request parser (`parse_request`, PROTOCOL.md A2/A3).
//!
//! Three properties: the parser never panics, whatever the text or JSON it is given;
//! every well-formed request built from a small model of the protocol parses back to
//! exactly the fields it was built from (ops by number or by any-case name, aliases,
//! write options, ignored extra fields); and every rejection carries a non-empty
//! message and echoes `messageId` byte for byte whenever the frame was an object that
//! had one, because clients match replies to requests by it.

// A property that fails panics; that is how proptest reports it.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use ripplekv_proto::{parse_request, RequestBody, WriteOptions};
use serde_json::{json, Map, Value};

/// Longest `ttl` the parser accepts, in milliseconds (ten years, as in request.rs).
const MAX_TTL_MS: u64 = 315_360_000_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Any JSON value: scalars of every kind (integers at the i64/u64 edges, floats,
/// unicode strings) nested in arrays and objects a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1)].prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z0-9 ]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Member names: mostly the ones the parser knows, so objects reach deep into it.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "op", "key", "value", "messageId", "endKey", "limit", "patterns", "since",
            "ifRevision", "ttl", "timestamp",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Values the parser's fields may see: right and wrong types, edge numbers.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => json_value(),
        1 => (1i64..=6).prop_map(Value::from),
        1 => prop::sample::select(vec![
            "get", "SET", "Patch", "append", "jsonpatch", "subscribe", "unsubscribe", "range",
            "atomic", "delete", "",
        ])
        .prop_map(Value::from),
        1 => prop::sample::select(vec![
            json!(9_223_372_036_854_775_808u64),
            json!(-1),
            json!(1.5),
            json!(1e300),
            json!(0.0001),
            json!(["a", "b*"]),
            json!([]),
        ]),
    ]
}

/// An object built from the parser's vocabulary with values of any type.
fn request_like_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((field_name(), field_value()), 0..8)
        .prop_map(|members| members.into_iter().collect())
}

/// Text near JSON: random mixes of JSON punctuation, digits and words, so the parser
/// sees truncated, unbalanced and oddly escaped frames, not just noise.
fn jsonish_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        r#"[{}\[\]":,0-9a-zA-Z\\ .eE+\-]{0,40}"#,
        request_like_object().prop_map(|object| Value::Object(object).to_string()),
        (request_like_object(), any::<usize>()).prop_map(|(object, cut)| {
            // A truncated frame: cut at a char boundary somewhere inside.
            let text = Value::Object(object).to_string();
            let mut at = cut % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_owned()
        }),
    ]
}

/// Checks what must hold of any answer: rejections explain themselves and echo the
/// `messageId` of an object frame.
fn check_answer(text: &str) {
    let answer = parse_request(text);
    let Err(error) = answer else {
        return;
    };
    assert!(
        !error.message.trim().is_empty(),
        "empty message for {text:?}"
    );
    let parsed: Result<Value, _> = serde_json::from_str(text);
    if let Ok(Value::Object(object)) = parsed {
        // `"messageId": null` is no id (there is nothing to echo); a repeated member
        // is a malformed frame, which the parser rejects before reading any field.
        let id = object.get("messageId").filter(|id| !id.is_null());
        if let Some(id) = id.filter(|_| !has_duplicates(text)) {
            let echoed = error.message_id.as_ref().map(|raw| raw.get().to_owned());
            assert_eq!(
                echoed
                    .as_deref()
                    .map(serde_json::from_str::<Value>)
                    .transpose()
                    .unwrap(),
                Some(id.clone()),
                "messageId not echoed for {text:?}: {}",
                error.message
            );
        }
    }
}

/// True when the top-level object of `text` repeats a member name.
fn has_duplicates(text: &str) -> bool {
    let Ok(names) = top_level_names(text) else {
        return true;
    };
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    sorted.len() != names.len()
}

/// The member names of a JSON object, in order, duplicates kept.
fn top_level_names(text: &str) -> Result<Vec<String>, serde_json::Error> {
    struct Names(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Names {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Names;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Names, A::Error> {
                    let mut names = Vec::new();
                    while let Some((name, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        names.push(name);
                    }
                    Ok(Names(names))
                }
            }
            deserializer.deserialize_map(Visitor)
        }
    }
    serde_json::from_str::<Names>(text).map(|names| names.0)
}

/// What a client means to send: the model the generated frames are written from.
#[derive(Debug, Clone)]
struct Model {
    body: RequestBody,
    message_id: Option<Value>,
    /// Send the op as its number (ops 1-6 only) rather than a name.
    op_as_number: bool,
    /// Index into the accepted names of the op, and a case pattern for it.
    alias: usize,
    case_mask: u64,
    /// Fields the parser must ignore: `timestamp`, unknown ones, `value` on reads.
    extras: Vec<(String, Value)>,
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z:/ *!@#]{1,12}"]
}

fn write_options(conditional: bool, expiring: bool) -> impl Strategy<Value = WriteOptions> {
    let if_revision = if conditional {
        prop::option::of(0..=i64::MAX as u64).boxed()
    } else {
        Just(None).boxed()
    };
    let ttl = if expiring {
        prop::option::of(prop_oneof![1..=MAX_TTL_MS, 1..=10_000u64]).boxed()
    } else {
        Just(None).boxed()
    };
    (if_revision, ttl).prop_map(|(if_revision, ttl_ms)| WriteOptions {
        if_revision,
        ttl_ms,
    })
}

fn body() -> impl Strategy<Value = RequestBody> {
    let patterns = prop::collection::vec(any::<String>(), 1..4);
    prop_oneof![
        key().prop_map(|key| RequestBody::Get { key }),
        (key(), any::<String>(), write_options(true, true)).prop_map(|(key, value, options)| {
            RequestBody::Set {
                key,
                value,
                options,
            }
        }),
        (key(), any::<String>(), write_options(true, true)).prop_map(|(key, value, options)| {
            RequestBody::Patch {
                key,
                value,
                options,
            }
        }),
        (key(), write_options(true, false))
            .prop_map(|(key, options)| RequestBody::Delete { key, options }),
        (key(), any::<String>(), write_options(true, false)).prop_map(|(key, value, options)| {
            RequestBody::JsonPatch {
                key,
                value,
                options,
            }
        }),
        (key(), key(), prop::option::of(any::<i64>())).prop_map(|(key, end_key, limit)| {
            RequestBody::Range {
                key,
                end_key,
                limit,
            }
        }),
        (key(), any::<i64>()).prop_map(|(key, delta)| RequestBody::Atomic { key, delta }),
        (patterns.clone(), prop::option::of(0..=i64::MAX as u64))
            .prop_map(|(patterns, since)| RequestBody::Subscribe { patterns, since }),
        patterns.prop_map(|patterns| RequestBody::Unsubscribe { patterns }),
    ]
}

fn model() -> impl Strategy<Value = Model> {
    (
        body(),
        prop::option::of(json_value().prop_filter("null is no id", |id| !id.is_null())),
        any::<bool>(),
        any::<usize>(),
        any::<u64>(),
        prop::collection::vec(
            (
                prop::sample::select(vec!["timestamp", "extra", "Key", "op2", "value"]),
                json_value(),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(body, message_id, op_as_number, alias, case_mask, extras)| {
                let extras = extras
                    .into_iter()
                    .filter(|(name, _)| *name != "value" || ignores_value(&body))
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect();
                Model {
                    body,
                    message_id,
                    op_as_number,
                    alias,
                    case_mask,
                    extras,
                }
            },
        )
}

/// GET, DELETE and RANGE ignore `value` (some apps send `""` there).
fn ignores_value(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::Get { .. } | RequestBody::Delete { .. } | RequestBody::Range { .. }
    )
}

/// The op field as the model says to send it.
fn op_field(model: &Model) -> Value {
    let (number, names): (Option<i64>, &[&str]) = match &model.body {
        RequestBody::Get { .. } => (Some(1), &["get"]),
        RequestBody::Set { .. } => (Some(2), &["set", "insert", "create"]),
        RequestBody::Patch { .. } => (Some(3), &["patch", "update", "append"]),
        RequestBody::Delete { .. } => (Some(4), &["delete"]),
        RequestBody::Range { .. } => (Some(5), &["range"]),
        RequestBody::Atomic { .. } => (Some(6), &["atomic"]),
        RequestBody::JsonPatch { .. } => (None, &["jsonpatch", "json-patch", "json_patch"]),
        RequestBody::Subscribe { .. } => (None, &["subscribe"]),
        RequestBody::Unsubscribe { .. } => (None, &["unsubscribe"]),
    };
    match number {
        Some(number) if model.op_as_number => Value::from(number),
        _ => {
            let name = names[model.alias % names.len()];
            // Op names are case-insensitive: flip letters by the mask.
            let name: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if model.case_mask >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            Value::from(name)
        }
    }
}

/// Writes the model as a frame, the way a client would.
fn frame(model: &Model) -> String {
    let mut object = Map::new();
    for (name, value) in &model.extras {
        object.insert(name.clone(), value.clone());
    }
    object.insert("op".into(), op_field(model));
    let options = |object: &mut Map<String, Value>, options: &WriteOptions| {
        if let Some(revision) = options.if_revision {
            object.insert("ifRevision".into(), revision.into());
        }
        if let Some(ms) = options.ttl_ms {
            // The wire gives seconds, fractions allowed.
            object.insert("ttl".into(), (ms as f64 / 1000.0).into());
        }
    };
    match &model.body {
        RequestBody::Get { key } => {
            object.insert("key".into(), key.clone().into());
        }
        RequestBody::Set {
            key,
            value,
            options: o,
        }
        | RequestBody::Patch {
            key,
            value,
            options: o,
        }
        | RequestBody::JsonPatch {
            key,
            value,
            options: o,
        } => {
            object.insert("key".into(), key.clone().into());
            object.insert("value".into(), value.clone().into());
            options(&mut object, o);
        }
        RequestBody::Delete { key, options: o } => {
            object.insert("key".into(), key.clone().into());
            options(&mut object, o);
        }
        RequestBody::Range {
            key,
            end_key,
            limit,
        } => {
            object.insert("key".into(), key.clone().into());
            object.insert("endKey".into(), end_key.clone().into());
            if let Some(limit) = limit {
                object.insert("limit".into(), (*limit).into());
            }
        }
        RequestBody::Atomic { key, delta } => {
            object.insert("key".into(), key.clone().into());
            object.insert("value".into(), (*delta).into());
        }
        RequestBody::Subscribe { patterns, since } => {
            object.insert("patterns".into(), patterns.clone().into());
            if let Some(since) = since {
                object.insert("since".into(), (*since).into());
            }
        }
        RequestBody::Unsubscribe { patterns } => {
            object.insert("patterns".into(), patterns.clone().into());
        }
    }
    if let Some(id) = &model.message_id {
        object.insert("messageId".into(), id.clone());
    }
    Value::Object(object).to_string()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics_on_any_text(text in jsonish_text()) {
        check_answer(&text);
    }

    #[test]
    fn never_panics_on_any_json(value in json_value()) {
        check_answer(&value.to_string());
    }

    #[test]
    fn request_like_objects_are_answered_precisely(
        object in request_like_object(),
        id in json_value().prop_filter("null is no id", |id| !id.is_null()),
    ) {
        let mut object = object;
        object.insert("messageId".into(), id.clone());
        let text = Value::Object(object).to_string();
        check_answer(&text);
        // Objects from a map cannot repeat a member, so the id always comes back.
        let echoed = match parse_request(&text) {
            Ok(request) => request.message_id,
            Err(error) => error.message_id,
        };
        prop_assert_eq!(echoed.map(|raw| raw.get().to_owned()), Some(id.to_string()));
    }

    #[test]
    fn well_formed_requests_parse_back(model in model()) {
        let text = frame(&model);
        let request = match parse_request(&text) {
            Ok(request) => request,
            Err(error) => return Err(TestCaseError::fail(format!("{text} was refused: {}", error.message))),
        };
        prop_assert_eq!(&request.body, &model.body, "{}", text);
        prop_assert_eq!(
            request.message_id.map(|raw| raw.get().to_owned()),
            model.message_id.as_ref().map(Value::to_string)
        );
    }
}

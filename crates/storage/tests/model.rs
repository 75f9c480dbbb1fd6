//! Model-based property tests of the stores: random sequences of writes and scans are
//! applied to `MemoryStore`, to `RedbStore` in a temporary directory, and to a model
//! written here from PROTOCOL.md A3 (a `BTreeMap` of key → (value, revision) plus a
//! revision counter and a change log).
//!
//! The model is deliberately independent of `ripplekv_core::mutation`: its PATCH is
//! its own RFC 7396 merge (or string append), ATOMIC its own checked sum, JSON Patch
//! its own interpretation of add/remove/replace/test on top-level members. After every
//! operation the store's answer (change or error code, the conflict revision), the
//! key's record and the store revision must equal the model's; at the end every range
//! page and the whole change log must too. Values are kept small and the value limit
//! low, so appends run into it.

// A property that fails panics; that is how proptest reports it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use ripplekv_core::{ChangeOp, ChangesSince, Error, Limits, Mutation, Store, WriteOp};
use ripplekv_storage::{Durability, MemoryStore, RedbStore};
use serde_json::{json, Map, Value};

/// Small enough that a few PATCH appends exceed it.
const LIMITS: Limits = Limits {
    max_key_bytes: 512,
    max_value_bytes: 160,
};

/// Keys that collide often and sort in interesting byte orders (ASCII, 2- and 4-byte
/// characters, a key that is another's prefix).
const KEYS: &[&str] = &["a", "a:1", "a:2", "b", "n", "é", "z\u{10000}", "a:10"];

/// Bounds for range scans: the keys, paging bounds ending in U+0000, and extremes.
const BOUNDS: &[&str] = &[
    "",
    "a",
    "a:",
    "a:1",
    "a:1\0",
    "a:2",
    "b",
    "b\0",
    "n",
    "é",
    "z",
    "\u{10ffff}",
];

/// How a write's `ifRevision` is chosen, resolved against the model when applied.
#[derive(Debug, Clone, Copy)]
enum Condition {
    Unconditional,
    /// `ifRevision: 0`: the key must not exist.
    Absent,
    /// The revision the key is at now (0 if missing): always passes.
    Current,
    /// A fixed revision, usually wrong.
    At(u64),
}

#[derive(Debug, Clone)]
enum Step {
    Write {
        key: &'static str,
        op: WriteOp,
        condition: Condition,
    },
    Range {
        start: &'static str,
        end: &'static str,
        limit: usize,
    },
}

/// What the model expects a write to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Committed {
        revision: u64,
        op: ChangeOp,
        value: Option<String>,
    },
    Failed {
        status: u16,
        /// For 409: the revision the key is at.
        conflict: Option<u64>,
    },
}

#[derive(Debug, Default)]
struct Model {
    records: BTreeMap<String, (String, u64)>,
    revision: u64,
    log: Vec<(u64, String, ChangeOp, Option<String>)>,
}

fn failed(status: u16) -> Answer {
    Answer::Failed {
        status,
        conflict: None,
    }
}

impl Model {
    fn if_revision(&self, key: &str, condition: Condition) -> Option<u64> {
        match condition {
            Condition::Unconditional => None,
            Condition::Absent => Some(0),
            Condition::Current => Some(self.records.get(key).map_or(0, |r| r.1)),
            Condition::At(revision) => Some(revision),
        }
    }

    fn write(&mut self, key: &str, op: &WriteOp, if_revision: Option<u64>) -> Answer {
        let current = self.records.get(key).map(|(value, _)| value.as_str());
        if let Some(expected) = if_revision {
            let at = self.records.get(key).map_or(0, |r| r.1);
            if at != expected {
                return Answer::Failed {
                    status: 409,
                    conflict: Some(at),
                };
            }
        }
        // (what to store, or None to remove; the change op; the notified value)
        let outcome = match op {
            WriteOp::Set(value) => Ok((Some(value.clone()), ChangeOp::Set, Some(value.clone()))),
            WriteOp::Patch(patch) => {
                let stored = match current {
                    None => patch.clone(),
                    Some(current) => merge_or_append(current, patch),
                };
                fits(&stored).map(|()| (Some(stored), ChangeOp::Patch, Some(patch.clone())))
            }
            WriteOp::Delete => match current {
                Some(_) => Ok((None, ChangeOp::Delete, None)),
                None => Err(failed(404)),
            },
            WriteOp::Atomic(delta) => {
                let base = match current {
                    None => Some(0),
                    Some(text) => decimal(text),
                };
                match base.and_then(|base| base.checked_add(*delta)) {
                    Some(sum) => Ok((
                        Some(sum.to_string()),
                        ChangeOp::Atomic,
                        Some(sum.to_string()),
                    )),
                    None => Err(failed(400)),
                }
            }
            WriteOp::JsonPatch(operations) => json_patch(current, operations)
                .and_then(|doc| fits(&doc).map(|()| doc))
                .map(|doc| (Some(doc.clone()), ChangeOp::JsonPatch, Some(doc))),
        };
        let (stored, change_op, notified) = match outcome {
            Ok(outcome) => outcome,
            Err(answer) => return answer,
        };
        self.revision += 1;
        match stored {
            Some(value) => self.records.insert(key.to_owned(), (value, self.revision)),
            None => self.records.remove(key),
        };
        self.log
            .push((self.revision, key.to_owned(), change_op, notified.clone()));
        Answer::Committed {
            revision: self.revision,
            op: change_op,
            value: notified,
        }
    }

    /// `start..=end` in byte order, at most `limit`, and whether more remain.
    fn range(&self, start: &str, end: &str, limit: usize) -> (Vec<(String, String, u64)>, bool) {
        if start > end {
            return (Vec::new(), false);
        }
        let all: Vec<_> = self
            .records
            .range::<str, _>((
                std::ops::Bound::Included(start),
                std::ops::Bound::Included(end),
            ))
            .map(|(key, (value, revision))| (key.clone(), value.clone(), *revision))
            .collect();
        let truncated = all.len() > limit;
        (all.into_iter().take(limit).collect(), truncated)
    }
}

/// A stored value after a PATCH must be a non-empty string within the limit.
fn fits(stored: &str) -> Result<(), Answer> {
    if stored.is_empty() || stored.len() > LIMITS.max_value_bytes {
        return Err(failed(400));
    }
    Ok(())
}

/// A decimal 64-bit integer: optional sign, then ASCII digits, in range.
fn decimal(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A3 PATCH: two JSON objects merge (RFC 7396); anything else appends.
fn merge_or_append(current: &str, patch: &str) -> String {
    match (
        serde_json::from_str::<Value>(current),
        serde_json::from_str::<Value>(patch),
    ) {
        (Ok(target @ Value::Object(_)), Ok(patch @ Value::Object(_))) => {
            merge_patch(target, patch).to_string()
        }
        _ => format!("{current}{patch}"),
    }
}

/// RFC 7396 section 2, as pseudo-code there: a non-object patch replaces; an object
/// patch applies member by member to the target (an empty object if the target is
/// not one), `null` removing. Existing members keep their place, new ones go last.
fn merge_patch(target: Value, patch: Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch;
    };
    let mut target = match target {
        Value::Object(target) => target,
        _ => Map::new(),
    };
    for (name, value) in patch {
        if value.is_null() {
            target.shift_remove(&name);
        } else {
            let old = target.get(&name).cloned().unwrap_or(Value::Null);
            target.insert(name, merge_patch(old, value));
        }
    }
    Value::Object(target)
}

/// RFC 6902 on the operations this test generates: add, remove, replace and test of
/// top-level members (`/name`) or the whole document (`""`), all or nothing. A
/// missing key is the document `null`.
fn json_patch(current: Option<&str>, operations: &str) -> Result<String, Answer> {
    let Ok(Value::Array(operations)) = serde_json::from_str::<Value>(operations) else {
        return Err(failed(400));
    };
    let mut document = match current {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).map_err(|_| failed(400))?,
    };
    for operation in operations {
        let (Some(op), Some(path)) = (operation["op"].as_str(), operation["path"].as_str()) else {
            return Err(failed(400));
        };
        let value = operation.get("value").cloned();
        let member = path.strip_prefix('/');
        match (op, member, value) {
            ("add" | "replace", None, Some(value)) => document = value,
            ("test", None, Some(value)) if document == value => {}
            ("add", Some(name), Some(value)) => match &mut document {
                Value::Object(members) => {
                    members.insert(name.to_owned(), value);
                }
                _ => return Err(failed(400)),
            },
            ("replace", Some(name), Some(value)) => {
                match document.as_object_mut().and_then(|m| m.get_mut(name)) {
                    Some(slot) => *slot = value,
                    None => return Err(failed(400)),
                }
            }
            // serde_json's remove is `swap_remove` with preserve_order, as json-patch uses.
            ("remove", Some(name), _) => {
                match document.as_object_mut().and_then(|m| m.remove(name)) {
                    Some(_) => {}
                    None => return Err(failed(400)),
                }
            }
            ("test", Some(name), Some(value)) if document.get(name) == Some(&value) => {}
            _ => return Err(failed(400)),
        }
    }
    Ok(document.to_string())
}

fn json_object() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        2 => Just(Value::Null),
        1 => (-3i64..30).prop_map(Value::from),
        1 => "[a-c]{0,2}".prop_map(Value::from),
        1 => Just(json!([1])),
    ];
    let member = leaf.prop_recursive(2, 6, 3, |inner| {
        prop::collection::vec((prop::sample::select(vec!["x", "y"]), inner), 0..3).prop_map(
            |members| {
                Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            },
        )
    });
    let name = prop::sample::select(vec!["x", "y", "z", "w", "v", "u"]);
    prop::collection::vec((name, member), 0..7).prop_map(|members| {
        Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    })
}

/// Values of every shape A3 distinguishes: integers (edges, signs, leading zeros,
/// almost-integers), JSON objects (compact and spaced), other JSON, plain text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<i64>().prop_map(|n| n.to_string()),
        2 => (-5i64..5).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![
            "9223372036854775807", "-9223372036854775808", "9223372036854775808", "+5",
            "007", "-0", " 5", "5 ", "1.5", "1e3", "-", "+",
        ])
        .prop_map(str::to_owned),
        3 => json_object().prop_map(|v| v.to_string()),
        1 => json_object().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
        1 => prop::sample::select(vec!["[1]", "null", "\"s\"", "{", "{}", " {\"x\":1} "])
            .prop_map(str::to_owned),
        2 => "[a-z ]{1,8}",
    ]
}

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => -5i64..5,
        1 => any::<i64>(),
        1 => prop::sample::select(vec![i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1, 0]),
    ]
}

fn json_patch_text() -> impl Strategy<Value = String> {
    let operation = (
        prop::sample::select(vec!["add", "remove", "replace", "test"]),
        prop::sample::select(vec!["", "/x", "/y", "/z"]),
        prop_oneof![
            json_object(),
            (0i64..3).prop_map(Value::from),
            Just(json!("a"))
        ],
    )
        .prop_map(|(op, path, value)| match op {
            "remove" => json!({"op": op, "path": path}),
            _ => json!({"op": op, "path": path, "value": value}),
        });
    prop_oneof![
        4 => prop::collection::vec(operation, 0..4).prop_map(|ops| Value::Array(ops).to_string()),
        1 => prop::sample::select(vec!["{}", "nope", "[{\"op\":\"bogus\",\"path\":\"/x\"}]"])
            .prop_map(str::to_owned),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        6 => Just(Condition::Unconditional),
        1 => Just(Condition::Absent),
        1 => Just(Condition::Current),
        1 => (1u64..20).prop_map(Condition::At),
    ]
}

/// Mostly JSON objects, so PATCH merges (and its `null` removals) happen often.
fn object_heavy() -> impl Strategy<Value = String> {
    prop_oneof![2 => json_object().prop_map(|v| v.to_string()), 1 => value()]
}

fn step() -> impl Strategy<Value = Step> {
    // Two keys take most writes, so writes build on each other's values.
    let key = prop_oneof![2 => prop::sample::select(&KEYS[..2]), 1 => prop::sample::select(KEYS)];
    let bound = prop::sample::select(BOUNDS);
    prop_oneof![
        3 => (key.clone(), object_heavy(), condition())
            .prop_map(|(key, value, condition)| Step::Write { key, op: WriteOp::Set(value), condition }),
        3 => (key.clone(), object_heavy(), condition())
            .prop_map(|(key, value, condition)| Step::Write { key, op: WriteOp::Patch(value), condition }),
        2 => (key.clone(), condition())
            .prop_map(|(key, condition)| Step::Write { key, op: WriteOp::Delete, condition }),
        3 => (key.clone(), delta())
            .prop_map(|(key, delta)| Step::Write { key, op: WriteOp::Atomic(delta), condition: Condition::Unconditional }),
        2 => (key, json_patch_text(), condition())
            .prop_map(|(key, ops, condition)| Step::Write { key, op: WriteOp::JsonPatch(ops), condition }),
        1 => (bound.clone(), bound, 0usize..6)
            .prop_map(|(start, end, limit)| Step::Range { start, end, limit }),
    ]
}

/// Runs `steps` against `store` and the model, checking after every step.
async fn check(store: Arc<dyn Store>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for (index, step) in steps.into_iter().enumerate() {
        match step {
            Step::Write { key, op, condition } => {
                let if_revision = model.if_revision(key, condition);
                let expected = model.write(key, &op, if_revision);
                let mut mutation = Mutation::new(key, op.clone());
                mutation.if_revision = if_revision;
                let actual = match store.write(mutation).await {
                    Ok(change) => {
                        prop_assert_eq!(&change.key, key);
                        Answer::Committed {
                            revision: change.revision,
                            op: change.op,
                            value: change.value,
                        }
                    }
                    Err(err) => Answer::Failed {
                        status: err.status(),
                        conflict: match err {
                            Error::Conflict { current } => Some(current),
                            _ => None,
                        },
                    },
                };
                prop_assert_eq!(
                    &actual,
                    &expected,
                    "step {}: {:?} on {:?} if {:?}",
                    index,
                    op,
                    key,
                    if_revision
                );
                let record = store.get(key).await.unwrap();
                let record = record.map(|r| (r.value, r.revision, r.expires_at_ms));
                let wanted = model
                    .records
                    .get(key)
                    .map(|(value, revision)| (value.clone(), *revision, None));
                prop_assert_eq!(record, wanted, "record of {:?} after step {}", key, index);
                prop_assert_eq!(store.revision(), model.revision);
            }
            Step::Range { start, end, limit } => {
                check_range(&*store, &model, start, end, limit).await?;
            }
        }
    }
    for start in BOUNDS {
        for end in BOUNDS {
            for limit in [0, 1, 3, 100] {
                check_range(&*store, &model, start, end, limit).await?;
            }
        }
    }
    let ChangesSince::Changes(changes) = store.changes_since(0, 10_000).await.unwrap() else {
        return Err(TestCaseError::fail("the whole log is retained"));
    };
    let changes: Vec<_> = changes
        .into_iter()
        .map(|c| (c.revision, c.key, c.op, c.value))
        .collect();
    prop_assert_eq!(changes, model.log);
    store.close().await.unwrap();
    Ok(())
}

async fn check_range(
    store: &dyn Store,
    model: &Model,
    start: &str,
    end: &str,
    limit: usize,
) -> Result<(), TestCaseError> {
    let page = store.range(start, end, limit).await.unwrap();
    let records: Vec<_> = page
        .records
        .into_iter()
        .map(|(key, record)| (key, record.value, record.revision))
        .collect();
    let (wanted, truncated) = model.range(start, end, limit);
    prop_assert_eq!(
        records,
        wanted,
        "range {:?}..={:?} limit {}",
        start,
        end,
        limit
    );
    prop_assert_eq!(
        page.truncated,
        truncated,
        "truncated {:?}..={:?} limit {}",
        start,
        end,
        limit
    );
    Ok(())
}

fn run(make: impl FnOnce() -> Arc<dyn Store>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(check(make(), steps))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_follows_the_model(steps in prop::collection::vec(step(), 1..48)) {
        run(|| Arc::new(MemoryStore::new(LIMITS)), steps)?;
    }
}

proptest! {
    // Each case opens a database file; 32 cases keep this under a few seconds.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn redb_store_follows_the_model(steps in prop::collection::vec(step(), 1..48)) {
        let dir = tempfile::tempdir().unwrap();
        // Relaxed: the same commits without an fsync each, which only slows the test.
        run(|| Arc::new(RedbStore::open(dir.path(), Durability::Relaxed, LIMITS).unwrap()), steps)?;
    }
}

/// The model itself, on cases worked out by hand from A3 and RFC 7396.
#[test]
fn model_follows_the_protocol() {
    assert_eq!(
        merge_or_append(
            r#"{"a":1,"b":{"x":1,"z":3},"c":[0]}"#,
            r#"{"b":{"y":2,"z":null},"c":[1],"a":null}"#
        ),
        r#"{"b":{"x":1,"y":2},"c":[1]}"#
    );
    assert_eq!(merge_or_append("abc", "def"), "abcdef");
    assert_eq!(merge_or_append("[1]", "[2]"), "[1][2]");
    assert_eq!(decimal("+5"), Some(5));
    assert_eq!(decimal(" 5"), None);
    assert_eq!(decimal("9223372036854775808"), None);
    let mut model = Model::default();
    assert_eq!(
        model.write("n", &WriteOp::Atomic(i64::MAX), None),
        Answer::Committed {
            revision: 1,
            op: ChangeOp::Atomic,
            value: Some(i64::MAX.to_string())
        }
    );
    assert_eq!(model.write("n", &WriteOp::Atomic(1), None), failed(400));
    assert_eq!(
        model.write("n", &WriteOp::Delete, Some(0)),
        Answer::Failed {
            status: 409,
            conflict: Some(1)
        }
    );
}

//! What each write does to a stored value, independent of where values are stored.
//!
//! A [`Mutation`] names a key, a [`WriteOp`] and its conditions (`ifRevision`, TTL).
//! Every backend calls [`plan`] inside its own write transaction with the record
//! currently stored, and gets back what to store (or that the key goes away), the
//! [`Change`] to commit, and, if the stored record had expired, the `expire` change
//! that must be committed just before it. Keeping the semantics here means SET, PATCH
//! (JSON merge or string append), DELETE, ATOMIC and JSON Patch behave identically on
//! every backend.
//!
//! Expiry: a record whose `expires_at_ms` has passed is absent to every read and write,
//! even before a sweeper removes it. The first write that finds it commits an `expire`
//! change first, so subscribers and replays always see the key expire before it is
//! written again.

use serde_json::{Map, Value};

use crate::change::{Change, ChangeOp, Previous};
use crate::{Error, Limits, Record, Revision};

/// Longest TTL accepted: ten years.
pub const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// One write to one key, as the writer of a backend receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    /// The key written.
    pub key: String,
    /// What is done to it.
    pub op: WriteOp,
    /// Conditional write: the revision the key must be at; 0 means "must not exist".
    pub if_revision: Option<Revision>,
    /// SET and PATCH: expire the key this many milliseconds after the write.
    pub ttl_ms: Option<u64>,
}

impl Mutation {
    /// An unconditional write without TTL.
    pub fn new(key: impl Into<String>, op: WriteOp) -> Self {
        Mutation {
            key: key.into(),
            op,
            if_revision: None,
            ttl_ms: None,
        }
    }
}

/// The kinds of write (PROTOCOL.md A3 and part B).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Create or replace with this string.
    Set(String),
    /// JSON-merge this object into the stored one, or append this string to it.
    Patch(String),
    /// Remove the key; 404 if it does not exist.
    Delete,
    /// Add this delta to the stored 64-bit integer (missing counts as 0).
    Atomic(i64),
    /// Apply these RFC 6902 operations (a JSON array, as text) to the stored JSON
    /// document, all or nothing. A missing key is the document `null`.
    JsonPatch(String),
}

impl WriteOp {
    /// The kind of change this write produces once committed.
    pub fn change_op(&self) -> ChangeOp {
        match self {
            WriteOp::Set(_) => ChangeOp::Set,
            WriteOp::Patch(_) => ChangeOp::Patch,
            WriteOp::Delete => ChangeOp::Delete,
            WriteOp::Atomic(_) => ChangeOp::Atomic,
            WriteOp::JsonPatch(_) => ChangeOp::JsonPatch,
        }
    }
}

/// The outcome of applying a write to the current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Store `stored`; tell subscribers `notified`.
    Put {
        /// The value to store.
        stored: String,
        /// The value subscribers are told.
        notified: String,
    },
    /// Remove the key.
    Remove,
}

/// Applies `op` to the value currently stored under the key (`None` if absent).
///
/// Nothing is written when this fails, so a backend can call it inside a transaction
/// and simply skip the write on error.
pub fn apply(op: &WriteOp, current: Option<&str>, limits: &Limits) -> Result<Applied, Error> {
    let fits = |stored: String, what: &str| {
        limits.check_value(&stored).map_err(|_| {
            Error::invalid(format!(
                "Value after {what} would be {} bytes; the limit is {} bytes",
                stored.len(),
                limits.max_value_bytes
            ))
        })?;
        Ok(stored)
    };
    match op {
        WriteOp::Set(value) => Ok(Applied::Put {
            stored: value.clone(),
            notified: value.clone(),
        }),
        WriteOp::Patch(patch) => {
            let stored = match current {
                None => patch.clone(),
                Some(current) => merge_or_append(current, patch)?,
            };
            Ok(Applied::Put {
                stored: fits(stored, "PATCH")?,
                notified: patch.clone(),
            })
        }
        WriteOp::Delete => match current {
            Some(_) => Ok(Applied::Remove),
            None => Err(Error::NotFound),
        },
        WriteOp::Atomic(delta) => {
            let base = match current {
                None => 0,
                Some(text) => text.parse::<i64>().map_err(|_| {
                    Error::invalid("Stored value is not a 64-bit integer; ATOMIC needs a number")
                })?,
            };
            let sum = base.checked_add(*delta).ok_or_else(|| {
                Error::invalid(format!(
                    "ATOMIC overflow: {base} + {delta} does not fit in a 64-bit signed integer"
                ))
            })?;
            let text = sum.to_string();
            Ok(Applied::Put {
                stored: text.clone(),
                notified: text,
            })
        }
        WriteOp::JsonPatch(operations) => {
            let stored = fits(json_patch(current, operations)?, "JSON Patch")?;
            Ok(Applied::Put {
                notified: stored.clone(),
                stored,
            })
        }
    }
}

/// RFC 6902: all operations apply, or the document is left as it was.
fn json_patch(current: Option<&str>, operations: &str) -> Result<String, Error> {
    let patch: json_patch::Patch = serde_json::from_str(operations)
        .map_err(|err| Error::invalid(format!("Invalid JSON Patch: {err}")))?;
    let mut document = match current {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).map_err(|_| {
            Error::invalid("Stored value is not a JSON document; JSON Patch needs one")
        })?,
    };
    json_patch::patch(&mut document, &patch).map_err(|err| match current {
        // The usual mistake: appending to `/-` of a key nobody created yet.
        None => Error::invalid(format!(
            "JSON Patch failed: the key does not exist, so the document is null and only \
             the root path \"\" can be written; create it first (for example SET it to [] \
             or {{}} with ifRevision 0): {err}"
        )),
        Some(_) => Error::invalid(format!("JSON Patch failed: {err}")),
    })?;
    Ok(document.to_string())
}

/// What a backend writes for one mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The stored record had expired: commit this `expire` change first.
    pub expired: Option<Change>,
    /// The new record; `None` removes the key.
    pub record: Option<Record>,
    /// The change the mutation commits.
    pub change: Change,
}

impl Planned {
    /// The revision of the last change this plan commits.
    pub fn revision(&self) -> Revision {
        self.change.revision
    }

    /// The changes to log and publish, in commit order.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.expired.iter().chain(std::iter::once(&self.change))
    }
}

/// Applies `mutation` to the stored record, giving the changes revisions from
/// `next_revision` on. Backends call this inside their write transaction, so all share
/// one semantics. Fails (writing nothing) on a broken condition or invalid input.
pub fn plan(
    mutation: Mutation,
    stored: Option<&Record>,
    limits: &Limits,
    next_revision: Revision,
    now_ms: u64,
) -> Result<Planned, Error> {
    let (live, expired) = match stored {
        Some(record) if record.is_expired(now_ms) => (None, true),
        other => (other, false),
    };
    if let Some(expected) = mutation.if_revision {
        let current = live.map_or(0, |record| record.revision);
        if current != expected {
            return Err(Error::Conflict { current });
        }
    }
    let applied = apply(
        &mutation.op,
        live.map(|record| record.value.as_str()),
        limits,
    )?;
    let expired = match stored {
        Some(record) if expired => Some(Change::expire(
            &mutation.key,
            (record.revision, &record.value),
            next_revision,
            now_ms,
        )),
        _ => None,
    };
    let previous = live.map_or(Previous::Absent, |record| Previous::At(record.revision));
    let revision = next_revision + u64::from(expired.is_some());
    let expires_at_ms = match (&mutation.op, mutation.ttl_ms) {
        (_, Some(ttl)) => Some(now_ms.saturating_add(ttl)),
        // SET replaces the whole record, TTL included; other writes keep the TTL.
        (WriteOp::Set(_), None) => None,
        (_, None) => live.and_then(|record| record.expires_at_ms),
    };
    let (record, value) = match applied {
        Applied::Put { stored, notified } => (
            Some(Record {
                value: stored,
                revision,
                expires_at_ms,
            }),
            Some(notified),
        ),
        Applied::Remove => (None, None),
    };
    let stored = record.as_ref().map(|record| record.value.clone());
    let removed = match (&record, live) {
        (None, Some(before)) => Some(before.value.clone()),
        _ => None,
    };
    Ok(Planned {
        expired,
        change: Change {
            revision,
            key: mutation.key,
            op: mutation.op.change_op(),
            value,
            timestamp_ms: now_ms,
            previous,
            stored,
            expires_at_ms: record.as_ref().and_then(|record| record.expires_at_ms),
            removed,
        },
        record,
    })
}

/// PATCH semantics: merge two JSON objects (RFC 7396), otherwise append the strings.
///
/// An object nested too deeply for the JSON parser (128 levels) is refused rather
/// than appended to: appending would turn a document into text that is not JSON.
fn merge_or_append(current: &str, patch: &str) -> Result<String, Error> {
    let looks_like_object = |text: &str| text.trim_start().starts_with('{');
    if !(looks_like_object(current) && looks_like_object(patch)) {
        // Not two objects, so never a merge: PATCH appends.
        return Ok(format!("{current}{patch}"));
    }
    let objects = (
        parse_for_merge(current, "stored value")?,
        parse_for_merge(patch, "PATCH value")?,
    );
    Ok(match objects {
        (Some(Value::Object(mut target)), Some(Value::Object(patch))) => {
            merge_objects(&mut target, patch);
            Value::Object(target).to_string()
        }
        _ => format!("{current}{patch}"),
    })
}

/// The JSON in `text` (which starts with `{`), `None` if it is not JSON, or an error
/// if it is an object the parser cannot read for depth.
fn parse_for_merge(text: &str, what: &str) -> Result<Option<Value>, Error> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => Ok(Some(value)),
        // serde_json has no error kind for its depth limit; its message is the only
        // sign. If the wording ever changes, the unit test below fails.
        Err(err) if err.to_string().contains("recursion limit") => Err(Error::invalid(format!(
            "The {what} is a JSON object nested deeper than 128 levels; it cannot be merged"
        ))),
        Err(_) => Ok(None),
    }
}

/// RFC 7396 merge of `patch` into `target`: objects merge recursively, `null` members
/// delete, anything else replaces. Member order of the target is kept.
fn merge_objects(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (name, patch_value) in patch {
        match patch_value {
            Value::Null => {
                target.shift_remove(&name);
            }
            Value::Object(inner_patch) => {
                let slot = target
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(inner_target) = slot {
                    // RFC 7396 applies the patch object to an empty object when the
                    // target member was not an object, which also drops nested nulls.
                    merge_objects(inner_target, inner_patch);
                }
            }
            other => {
                target.insert(name, other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(op: WriteOp, current: Option<&str>) -> (String, String) {
        match apply(&op, current, &Limits::default()) {
            Ok(Applied::Put { stored, notified }) => (stored, notified),
            other => panic!("expected a put, got {other:?}"),
        }
    }

    #[test]
    fn set_replaces() {
        assert_eq!(
            put(WriteOp::Set("new".into()), Some("old")),
            ("new".into(), "new".into())
        );
    }

    #[test]
    fn patch_merges_objects_recursively() {
        let (stored, notified) = put(
            WriteOp::Patch(r#"{"b":{"y":2,"z":null},"c":[1],"d":null}"#.into()),
            Some(r#"{"a":1,"b":{"x":1,"z":3},"c":[0,0],"d":4}"#),
        );
        assert_eq!(stored, r#"{"a":1,"b":{"x":1,"y":2},"c":[1]}"#);
        assert_eq!(notified, r#"{"b":{"y":2,"z":null},"c":[1],"d":null}"#);
    }

    #[test]
    fn objects_too_deep_to_merge_are_refused_not_appended() {
        let deep = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        let limits = Limits::default();
        let patch_too_deep = apply(&WriteOp::Patch(deep.clone()), Some(r#"{"a":1}"#), &limits);
        assert!(patch_too_deep
            .unwrap_err()
            .to_string()
            .contains("PATCH value is a JSON object nested deeper than 128 levels"));
        let stored_too_deep = apply(&WriteOp::Patch(r#"{"b":1}"#.into()), Some(&deep), &limits);
        assert!(stored_too_deep
            .unwrap_err()
            .to_string()
            .contains("stored value is a JSON object nested deeper"));
        // Text appended to a deep object is an append, not a merge: allowed.
        let (stored, _) = put(WriteOp::Patch(" tail".into()), Some(&deep));
        assert_eq!(stored, format!("{deep} tail"));
        // Deep arrays are not objects: appending is what PATCH does to them.
        let deep_array = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let (stored, _) = put(WriteOp::Patch("x".into()), Some(&deep_array));
        assert_eq!(stored, format!("{deep_array}x"));
    }

    #[test]
    fn patch_replaces_non_object_member_with_patched_object() {
        let (stored, _) = put(
            WriteOp::Patch(r#"{"a":{"b":1,"c":null}}"#.into()),
            Some(r#"{"a":5}"#),
        );
        assert_eq!(stored, r#"{"a":{"b":1}}"#);
    }

    #[test]
    fn patch_appends_when_either_side_is_not_an_object() {
        assert_eq!(put(WriteOp::Patch("def".into()), Some("abc")).0, "abcdef");
        assert_eq!(put(WriteOp::Patch("[2]".into()), Some("[1]")).0, "[1][2]");
        assert_eq!(
            put(WriteOp::Patch(r#"{"a":1}"#.into()), Some("text")).0,
            r#"text{"a":1}"#
        );
    }

    #[test]
    fn patch_creates_missing_key() {
        assert_eq!(put(WriteOp::Patch("v".into()), None).0, "v");
    }

    #[test]
    fn patch_result_must_fit_the_value_limit() {
        let limits = Limits {
            max_key_bytes: 10,
            max_value_bytes: 5,
        };
        let err = apply(&WriteOp::Patch("def".into()), Some("abc"), &limits).unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn delete_needs_an_existing_key() {
        assert_eq!(
            apply(&WriteOp::Delete, Some("x"), &Limits::default()),
            Ok(Applied::Remove)
        );
        assert_eq!(
            apply(&WriteOp::Delete, None, &Limits::default()),
            Err(Error::NotFound)
        );
    }

    #[test]
    fn atomic_adds_and_counts_missing_as_zero() {
        assert_eq!(put(WriteOp::Atomic(5), None).0, "5");
        assert_eq!(put(WriteOp::Atomic(-7), Some("5")).0, "-2");
        assert_eq!(put(WriteOp::Atomic(0), Some("41")).0, "41");
    }

    #[test]
    fn atomic_refuses_non_numbers_and_overflow() {
        let limits = Limits::default();
        for stored in ["abc", "1.5", "", " 1", "99999999999999999999"] {
            let err = apply(&WriteOp::Atomic(1), Some(stored), &limits).unwrap_err();
            assert_eq!(err.status(), 400, "stored {stored:?}");
        }
        let max = i64::MAX.to_string();
        let err = apply(&WriteOp::Atomic(1), Some(&max), &limits).unwrap_err();
        assert!(err.to_string().contains("overflow"));
        let min = i64::MIN.to_string();
        assert!(apply(&WriteOp::Atomic(-1), Some(&min), &limits).is_err());
        assert!(apply(&WriteOp::Atomic(i64::MIN), Some("0"), &limits).is_ok());
    }

    fn stored(value: &str, revision: u64, expires_at_ms: Option<u64>) -> Record {
        Record {
            value: value.into(),
            revision,
            expires_at_ms,
        }
    }

    fn conditional(op: WriteOp, if_revision: u64) -> Mutation {
        Mutation {
            if_revision: Some(if_revision),
            ..Mutation::new("k", op)
        }
    }

    #[test]
    fn if_revision_guards_every_kind_of_write() {
        let limits = Limits::default();
        let at_3 = stored("v", 3, None);
        let ok = plan(
            conditional(WriteOp::Set("w".into()), 3),
            Some(&at_3),
            &limits,
            10,
            0,
        );
        assert_eq!(ok.unwrap().change.revision, 10);
        for op in [
            WriteOp::Set("w".into()),
            WriteOp::Patch("w".into()),
            WriteOp::Delete,
            WriteOp::JsonPatch("[]".into()),
        ] {
            let err = plan(conditional(op, 2), Some(&at_3), &limits, 10, 0).unwrap_err();
            assert_eq!(err, Error::Conflict { current: 3 });
            assert_eq!(err.status(), 409);
        }
        // 0 means "must not exist".
        assert!(plan(
            conditional(WriteOp::Set("w".into()), 0),
            None,
            &limits,
            1,
            0
        )
        .is_ok());
        let err = plan(
            conditional(WriteOp::Set("w".into()), 0),
            Some(&at_3),
            &limits,
            10,
            0,
        );
        assert_eq!(err.unwrap_err(), Error::Conflict { current: 3 });
        let err = plan(conditional(WriteOp::Delete, 3), None, &limits, 1, 0);
        assert_eq!(err.unwrap_err(), Error::Conflict { current: 0 });
    }

    #[test]
    fn ttl_is_set_by_set_and_patch_cleared_by_set_and_kept_otherwise() {
        let limits = Limits::default();
        let with_ttl = Mutation {
            ttl_ms: Some(5_000),
            ..Mutation::new("k", WriteOp::Set("v".into()))
        };
        let planned = plan(with_ttl, None, &limits, 1, 1_000).unwrap();
        assert_eq!(planned.record.unwrap().expires_at_ms, Some(6_000));
        let expiring = stored("1", 1, Some(6_000));
        let keep = |op| plan(Mutation::new("k", op), Some(&expiring), &limits, 2, 2_000).unwrap();
        assert_eq!(
            keep(WriteOp::Patch("2".into()))
                .record
                .unwrap()
                .expires_at_ms,
            Some(6_000)
        );
        assert_eq!(
            keep(WriteOp::Atomic(1)).record.unwrap().expires_at_ms,
            Some(6_000)
        );
        assert_eq!(
            keep(WriteOp::Set("2".into())).record.unwrap().expires_at_ms,
            None
        );
    }

    #[test]
    fn an_expired_record_is_absent_and_expires_first() {
        let limits = Limits::default();
        let expired = stored("old", 4, Some(1_000));
        let planned = plan(
            Mutation::new("k", WriteOp::Patch("new".into())),
            Some(&expired),
            &limits,
            9,
            1_000,
        )
        .unwrap();
        let expire = planned.expired.clone().unwrap();
        assert_eq!(
            (expire.op, expire.revision, expire.value),
            (ChangeOp::Expire, 9, None)
        );
        assert_eq!(planned.change.revision, 10);
        assert_eq!(expire.previous, Previous::At(4), "what expired");
        assert_eq!(
            (planned.change.previous, planned.change.stored.as_deref()),
            (Previous::Absent, Some("new")),
            "the write after an expiry creates the key"
        );
        assert_eq!(
            planned.record.unwrap().value,
            "new",
            "PATCH on an expired key creates it"
        );
        let err = plan(
            Mutation::new("k", WriteOp::Delete),
            Some(&expired),
            &limits,
            9,
            1_000,
        );
        assert_eq!(err.unwrap_err(), Error::NotFound);
        let err = plan(
            conditional(WriteOp::Set("x".into()), 4),
            Some(&expired),
            &limits,
            9,
            1_000,
        );
        assert_eq!(err.unwrap_err(), Error::Conflict { current: 0 });
    }

    #[test]
    fn json_patch_applies_all_or_nothing() {
        let doc = r#"{"todos":[{"id":1}]}"#;
        let (stored, notified) = put(
            WriteOp::JsonPatch(r#"[{"op":"add","path":"/todos/-","value":{"id":2}},{"op":"replace","path":"/todos/0/id","value":0}]"#.into()),
            Some(doc),
        );
        assert_eq!(stored, r#"{"todos":[{"id":0},{"id":2}]}"#);
        assert_eq!(notified, stored, "subscribers get the whole new document");
        let limits = Limits::default();
        let failing = WriteOp::JsonPatch(
            r#"[{"op":"add","path":"/x","value":1},{"op":"test","path":"/todos/0/id","value":99}]"#
                .into(),
        );
        let err = apply(&failing, Some(doc), &limits).unwrap_err();
        assert!(err.to_string().contains("JSON Patch failed"), "{err}");
        assert!(apply(&WriteOp::JsonPatch("{}".into()), Some(doc), &limits)
            .unwrap_err()
            .to_string()
            .contains("Invalid JSON Patch"));
        assert!(apply(&WriteOp::JsonPatch("[]".into()), Some("not json"), &limits).is_err());
        // A missing key is the document null, which "add" at the root replaces.
        let (created, _) = put(
            WriteOp::JsonPatch(r#"[{"op":"add","path":"","value":[]}]"#.into()),
            None,
        );
        assert_eq!(created, "[]");
        // Anything deeper on a missing key says that the key is missing and what to do.
        let append = WriteOp::JsonPatch(r#"[{"op":"add","path":"/-","value":1}]"#.into());
        let err = apply(&append, None, &limits).unwrap_err().to_string();
        assert!(
            err.starts_with("JSON Patch failed: the key does not exist, so the document is null"),
            "{err}"
        );
        assert!(err.contains("with ifRevision 0"), "{err}");
    }

    #[test]
    fn atomic_result_is_read_back_from_the_change() {
        let change = Change {
            revision: 3,
            key: "k".into(),
            op: ChangeOp::Atomic,
            value: Some("-12".into()),
            timestamp_ms: 0,
            previous: Previous::Absent,
            stored: Some("-12".into()),
            expires_at_ms: None,
            removed: None,
        };
        assert_eq!(change.atomic_result(), Some(-12));
    }
}

//! What each write does to a stored value, independent of where values are stored.
//!
//! A [`Mutation`] names a key and a [`WriteOp`]. Every backend runs [`apply`] inside
//! its own transaction, with the value currently stored, and gets back what to store
//! (or that the key goes away) plus the value subscribers are told about. Keeping the
//! semantics here means SET, PATCH (JSON merge or string append), DELETE and ATOMIC
//! behave identically on every backend. A committed write becomes a [`Change`].

use serde_json::{Map, Value};

use crate::{Error, Limits, Record, Revision};

/// One write to one key, as the writer of a backend receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub key: String,
    pub op: WriteOp,
}

/// The kinds of write (PROTOCOL.md A3).
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
}

impl WriteOp {
    /// The kind of change this write produces once committed.
    pub fn change_op(&self) -> ChangeOp {
        match self {
            WriteOp::Set(_) => ChangeOp::Set,
            WriteOp::Patch(_) => ChangeOp::Patch,
            WriteOp::Delete => ChangeOp::Delete,
            WriteOp::Atomic(_) => ChangeOp::Atomic,
        }
    }
}

/// The kind of a committed change, as named in notifications (PROTOCOL.md part B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Set,
    Patch,
    Delete,
    Atomic,
}

impl ChangeOp {
    /// A stable number for storage.
    pub fn code(self) -> u8 {
        match self {
            ChangeOp::Set => 1,
            ChangeOp::Patch => 2,
            ChangeOp::Delete => 3,
            ChangeOp::Atomic => 4,
        }
    }

    /// The op stored as `code`.
    pub fn from_code(code: u8) -> Option<ChangeOp> {
        [
            ChangeOp::Set,
            ChangeOp::Patch,
            ChangeOp::Delete,
            ChangeOp::Atomic,
        ]
        .into_iter()
        .find(|op| op.code() == code)
    }

    /// The lowercase name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ChangeOp::Set => "set",
            ChangeOp::Patch => "patch",
            ChangeOp::Delete => "delete",
            ChangeOp::Atomic => "atomic",
        }
    }
}

/// A committed write: what subscribers are told and what the writer's reply reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The store-wide revision this change was committed at.
    pub revision: Revision,
    pub key: String,
    pub op: ChangeOp,
    /// The notified value: SET the stored string, PATCH the patch as sent, ATOMIC the
    /// new number in decimal, DELETE `None`.
    pub value: Option<String>,
    /// Wall-clock commit time in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl Change {
    /// For an ATOMIC change, the new value as a number.
    pub fn atomic_result(&self) -> Option<i64> {
        match self.op {
            ChangeOp::Atomic => self.value.as_deref()?.parse().ok(),
            _ => None,
        }
    }
}

/// The outcome of applying a write to the current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Store `stored`; tell subscribers `notified`.
    Put { stored: String, notified: String },
    /// Remove the key.
    Remove,
}

/// Applies `op` to the value currently stored under the key (`None` if absent).
///
/// Nothing is written when this fails, so a backend can call it inside a transaction
/// and simply skip the write on error.
pub fn apply(op: &WriteOp, current: Option<&str>, limits: &Limits) -> Result<Applied, Error> {
    match op {
        WriteOp::Set(value) => Ok(Applied::Put {
            stored: value.clone(),
            notified: value.clone(),
        }),
        WriteOp::Patch(patch) => {
            let stored = match current {
                None => patch.clone(),
                Some(current) => merge_or_append(current, patch),
            };
            limits.check_value(&stored).map_err(|_| {
                Error::invalid(format!(
                    "Value after PATCH would be {} bytes; the limit is {} bytes",
                    stored.len(),
                    limits.max_value_bytes
                ))
            })?;
            Ok(Applied::Put {
                stored,
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
    }
}

/// What a backend writes for one mutation: the new record (`None` removes the key)
/// and the change it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub record: Option<Record>,
    pub change: Change,
}

/// Applies `mutation` to the current value and stamps the result with `revision`.
/// Backends call this inside their write transaction, so all share one semantics.
pub fn plan(
    mutation: Mutation,
    current: Option<&str>,
    limits: &Limits,
    revision: Revision,
    timestamp_ms: u64,
) -> Result<Planned, Error> {
    let applied = apply(&mutation.op, current, limits)?;
    let (record, value) = match applied {
        Applied::Put { stored, notified } => (
            Some(Record {
                value: stored,
                revision,
            }),
            Some(notified),
        ),
        Applied::Remove => (None, None),
    };
    Ok(Planned {
        record,
        change: Change {
            revision,
            key: mutation.key,
            op: mutation.op.change_op(),
            value,
            timestamp_ms,
        },
    })
}

/// PATCH semantics: merge two JSON objects (RFC 7396), otherwise append the strings.
fn merge_or_append(current: &str, patch: &str) -> String {
    let objects = (
        serde_json::from_str::<Value>(current),
        serde_json::from_str::<Value>(patch),
    );
    match objects {
        (Ok(Value::Object(mut target)), Ok(Value::Object(patch))) => {
            merge_objects(&mut target, patch);
            Value::Object(target).to_string()
        }
        _ => format!("{current}{patch}"),
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

    #[test]
    fn atomic_result_is_read_back_from_the_change() {
        let change = Change {
            revision: 3,
            key: "k".into(),
            op: ChangeOp::Atomic,
            value: Some("-12".into()),
            timestamp_ms: 0,
        };
        assert_eq!(change.atomic_result(), Some(-12));
    }
}

//! What a committed write (or an expiry) changed: the [`Change`] every store returns,
//! publishes to subscribers and keeps in its change log, with what each face needs
//! to render it without reading the store again.

use crate::Revision;

/// The kind of a committed change, as named in notifications (PROTOCOL.md part B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// Created or replaced.
    Set,
    /// Merged into or appended to.
    Patch,
    /// Deleted.
    Delete,
    /// Incremented.
    Atomic,
    /// The key's TTL ran out; like a delete, its value is `None`.
    Expire,
    /// A JSON Patch; the notified value is the whole resulting document.
    JsonPatch,
}

const ALL_OPS: [ChangeOp; 6] = [
    ChangeOp::Set,
    ChangeOp::Patch,
    ChangeOp::Delete,
    ChangeOp::Atomic,
    ChangeOp::Expire,
    ChangeOp::JsonPatch,
];

impl ChangeOp {
    /// A stable number for storage.
    pub fn code(self) -> u8 {
        match self {
            ChangeOp::Set => 1,
            ChangeOp::Patch => 2,
            ChangeOp::Delete => 3,
            ChangeOp::Atomic => 4,
            ChangeOp::Expire => 5,
            ChangeOp::JsonPatch => 6,
        }
    }

    /// The op stored as `code`.
    pub fn from_code(code: u8) -> Option<ChangeOp> {
        ALL_OPS.into_iter().find(|op| op.code() == code)
    }

    /// The lowercase name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ChangeOp::Set => "set",
            ChangeOp::Patch => "patch",
            ChangeOp::Delete => "delete",
            ChangeOp::Atomic => "atomic",
            ChangeOp::Expire => "expire",
            ChangeOp::JsonPatch => "jsonpatch",
        }
    }
}

/// A committed write: what subscribers are told and what the writer's reply reports,
/// with enough of the record before and after it for any face to render it without
/// reading the store again (a create from an update, the whole document after a
/// PATCH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The store-wide revision this change was committed at.
    pub revision: Revision,
    /// The key that changed.
    pub key: String,
    /// Which kind of write it was.
    pub op: ChangeOp,
    /// The notified value: SET the stored string, PATCH the patch as sent, ATOMIC the
    /// new number in decimal, JSON Patch the resulting document, DELETE and expiry `None`.
    pub value: Option<String>,
    /// Wall-clock commit time in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The key before the change: absent (this change created it) or at a revision.
    pub previous: Previous,
    /// The value stored after the change (the whole document after PATCH, JSON Patch
    /// and ATOMIC); `None` when the key was removed, or not known (see [`Previous`]).
    pub stored: Option<String>,
    /// When the key expires after this change, if it has a TTL.
    pub expires_at_ms: Option<u64>,
    /// The value a DELETE or an expiry removed (the document that was there), so a
    /// subscriber can be told what went; `None` for other changes, and for log
    /// entries written before it was recorded (redb log format 3, PostgreSQL schema 3).
    pub removed: Option<String>,
}

/// What a key was before a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    /// It did not exist (or had expired): the change created it.
    Absent,
    /// It existed, last changed at this revision.
    At(Revision),
    /// Not recorded: a change-log entry written by a version before log format 2,
    /// which kept neither the previous revision nor, after a PATCH, the stored value.
    Unknown,
}

impl Change {
    /// For an ATOMIC change, the new value as a number.
    pub fn atomic_result(&self) -> Option<i64> {
        match self.op {
            ChangeOp::Atomic => self.value.as_deref()?.parse().ok(),
            _ => None,
        }
    }

    /// The change recording that `key`, holding `removed` since `previous`, expired.
    pub fn expire(
        key: &str,
        (previous, removed): (Revision, &str),
        revision: Revision,
        timestamp_ms: u64,
    ) -> Change {
        Change {
            revision,
            key: key.to_owned(),
            op: ChangeOp::Expire,
            value: None,
            timestamp_ms,
            previous: Previous::At(previous),
            stored: None,
            expires_at_ms: None,
            removed: Some(removed.to_owned()),
        }
    }
}

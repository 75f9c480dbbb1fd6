//! SET, PATCH, DELETE and JSON Patch (ops 2, 3, 4 and `jsonpatch` on the socket;
//! `POST /record` and `DELETE /record/{key}` on REST): the writes whose reply is a
//! message and the new revision. What each does to the stored value is
//! `ripplekv_core::apply`, the one implementation every backend shares.

use ripplekv_core::{Change, Error, Limits, Mutation, WriteOp};
use ripplekv_proto::{reply, WriteOptions};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::hub::Access;

/// Reply message of a successful SET.
const SAVED: &str = "Record inserted/updated successfully";
/// Reply message of a successful PATCH.
const PATCHED: &str = "Record patched successfully";
/// Reply message of a successful JSON Patch.
const JSON_PATCHED: &str = "JSON Patch applied successfully";
/// Reply message of a successful DELETE.
const DELETED: &str = "Record deleted successfully";

/// What a [`Write`] does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Create or replace with this value.
    Set(String),
    /// Merge this JSON object in, or append this text.
    Patch(String),
    /// Apply these RFC 6902 operations (a JSON array, as text).
    JsonPatch(String),
    /// Remove the key.
    Delete,
}

/// A SET, PATCH, DELETE or JSON Patch of one key. With `ifRevision` it is conditional
/// (409 on a mismatch); `ttl` applies to SET and PATCH (a SET without one clears the
/// TTL, other writes keep it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub(crate) key: String,
    pub(crate) edit: Edit,
    pub(crate) options: WriteOptions,
}

impl Write {
    pub(crate) fn new(key: String, edit: Edit, options: WriteOptions) -> Self {
        Write { key, edit, options }
    }

    pub(super) fn check(&self, limits: &Limits, access: &Access) -> Result<(), Error> {
        limits.check_key(&self.key)?;
        access.check(&self.key)?;
        match &self.edit {
            Edit::Set(value) | Edit::Patch(value) | Edit::JsonPatch(value) => {
                limits.check_value(value)
            }
            Edit::Delete => Ok(()),
        }
    }

    /// What the reply will say, fixed before the write is queued.
    pub(super) fn message(&self) -> &'static str {
        match self.edit {
            Edit::Set(_) => SAVED,
            Edit::Patch(_) => PATCHED,
            Edit::JsonPatch(_) => JSON_PATCHED,
            Edit::Delete => DELETED,
        }
    }

    pub(super) fn into_mutation(self) -> Mutation {
        let op = match self.edit {
            Edit::Set(value) => WriteOp::Set(value),
            Edit::Patch(value) => WriteOp::Patch(value),
            Edit::JsonPatch(value) => WriteOp::JsonPatch(value),
            Edit::Delete => WriteOp::Delete,
        };
        Mutation {
            key: self.key,
            op,
            if_revision: self.options.if_revision,
            ttl_ms: self.options.ttl_ms,
        }
    }
}

/// A committed SET, PATCH, DELETE or JSON Patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) message: &'static str,
    pub(crate) change: Change,
}

impl Written {
    pub(super) fn socket_reply(&self, message_id: Option<&RawValue>) -> String {
        reply::written(self.message, self.change.revision, message_id)
    }

    pub(super) fn rest_body(&self) -> Value {
        json!({"success": true, "message": self.message, "revision": self.change.revision})
    }
}

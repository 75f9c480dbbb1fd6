//! ATOMIC (op 6 on the socket, `POST /record/atomic` on REST): add a delta to an
//! integer value (a missing key counts as 0) and answer with the result.

use ripplekv_core::{Change, Error, Limits, Mutation, WriteOp};
use ripplekv_proto::reply;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::hub::Access;

/// Add `delta` to the integer at `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Atomic {
    pub(crate) key: String,
    pub(crate) delta: i64,
}

impl Atomic {
    pub(super) fn check(&self, limits: &Limits, access: &Access) -> Result<(), Error> {
        limits.check_key(&self.key)?;
        access.check(&self.key)
    }

    pub(super) fn into_mutation(self) -> Mutation {
        Mutation::new(self.key, WriteOp::Atomic(self.delta))
    }
}

/// A committed ATOMIC: the change holds the new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) change: Change,
}

impl Counted {
    fn result(&self) -> i64 {
        self.change.atomic_result().unwrap_or_default()
    }

    pub(super) fn socket_reply(&self, message_id: Option<&RawValue>) -> String {
        reply::atomic(
            &self.change.key,
            self.result(),
            self.change.revision,
            message_id,
        )
    }

    pub(super) fn rest_body(&self) -> Value {
        json!({
            "success": true,
            "key": self.change.key,
            "result": self.result(),
            "revision": self.change.revision,
        })
    }
}

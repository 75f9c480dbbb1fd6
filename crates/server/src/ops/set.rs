//! SET (op 2): create or replace a key with a string value.

use ripplekv_core::{Change, Error, Mutation, WriteOp};

use super::Ops;

impl Ops {
    pub(crate) async fn set(&self, key: String, value: String) -> Result<Change, Error> {
        self.limits.check_key(&key)?;
        self.limits.check_value(&value)?;
        self.store
            .write(Mutation {
                key,
                op: WriteOp::Set(value),
            })
            .await
    }
}

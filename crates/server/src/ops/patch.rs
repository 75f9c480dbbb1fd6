//! PATCH (op 3): JSON-merge into the stored object, or append to the stored string;
//! creates the key when missing. The merged result must still fit the value limit,
//! which the store checks when it applies the patch.

use ripplekv_core::{Change, Error, Mutation, WriteOp};

use super::Ops;

impl Ops {
    pub(crate) async fn patch(&self, key: String, value: String) -> Result<Change, Error> {
        self.limits.check_key(&key)?;
        self.limits.check_value(&value)?;
        self.store
            .write(Mutation {
                key,
                op: WriteOp::Patch(value),
            })
            .await
    }
}

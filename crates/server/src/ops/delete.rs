//! DELETE (op 4): remove a key; 404 when it does not exist.

use ripplekv_core::{Change, Error, Mutation, WriteOp};

use super::Ops;

impl Ops {
    pub(crate) async fn delete(&self, key: String) -> Result<Change, Error> {
        self.limits.check_key(&key)?;
        self.store
            .write(Mutation {
                key,
                op: WriteOp::Delete,
            })
            .await
    }
}

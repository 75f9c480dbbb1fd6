//! DELETE (op 4): remove a key; 404 when it does not exist.

use ripplekv_core::{Change, Error, WriteOp};

use super::Ops;

impl Ops {
    pub(crate) async fn delete(&self, key: String) -> Result<Change, Error> {
        self.commit(key, WriteOp::Delete).await
    }
}

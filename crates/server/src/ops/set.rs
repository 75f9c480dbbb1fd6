//! SET (op 2): create or replace a key with a string value.

use ripplekv_core::{Change, Error, WriteOp};

use super::Ops;

impl Ops {
    pub(crate) async fn set(&self, key: String, value: String) -> Result<Change, Error> {
        self.commit(key, WriteOp::Set(value)).await
    }
}

//! SET (op 2): create or replace a key with a string value.

use ripplekv_core::{Change, Error, WriteOp};

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn set(
        &self,
        access: &Access,
        key: String,
        value: String,
    ) -> Result<Change, Error> {
        self.commit(access, key, WriteOp::Set(value)).await
    }
}

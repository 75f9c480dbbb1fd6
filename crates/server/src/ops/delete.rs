//! DELETE (op 4): remove a key; 404 when it does not exist.

use ripplekv_core::{Change, Error, WriteOp};

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn delete(&self, access: &Access, key: String) -> Result<Change, Error> {
        self.commit(access, key, WriteOp::Delete).await
    }
}

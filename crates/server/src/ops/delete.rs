//! DELETE (op 4): remove a key; 404 when it does not exist, 409 when `ifRevision`
//! does not match.

use ripplekv_core::{Change, Error, WriteOp};
use ripplekv_proto::WriteOptions;

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn delete(
        &self,
        access: &Access,
        key: String,
        options: WriteOptions,
    ) -> Result<Change, Error> {
        self.commit(access, key, WriteOp::Delete, options).await
    }
}

//! SET (op 2): create or replace a key with a string value. With `ttl` the key
//! expires; without, any earlier TTL is cleared. With `ifRevision`, only if the key is
//! at that revision (0: only if it does not exist), else 409.

use ripplekv_core::{Change, Error, WriteOp};
use ripplekv_proto::WriteOptions;

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn set(
        &self,
        access: &Access,
        key: String,
        value: String,
        options: WriteOptions,
    ) -> Result<Change, Error> {
        self.commit(access, key, WriteOp::Set(value), options).await
    }
}

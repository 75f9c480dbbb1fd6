//! PATCH (op 3): JSON-merge into the stored object, or append to the stored string;
//! creates the key when missing. The merged result must still fit the value limit,
//! which the store checks when it applies the patch. An existing TTL is kept unless
//! `ttl` sets a new one; `ifRevision` makes it conditional.

use ripplekv_core::{Change, Error, WriteOp};
use ripplekv_proto::WriteOptions;

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn patch(
        &self,
        access: &Access,
        key: String,
        value: String,
        options: WriteOptions,
    ) -> Result<Change, Error> {
        self.commit(access, key, WriteOp::Patch(value), options)
            .await
    }
}

//! PATCH (op 3): JSON-merge into the stored object, or append to the stored string;
//! creates the key when missing. The merged result must still fit the value limit,
//! which the store checks when it applies the patch.

use ripplekv_core::{Change, Error, WriteOp};

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn patch(
        &self,
        access: &Access,
        key: String,
        value: String,
    ) -> Result<Change, Error> {
        self.commit(access, key, WriteOp::Patch(value)).await
    }
}

//! JSON Patch (part B): apply RFC 6902 operations to the stored JSON document, all or
//! nothing, so concurrent edits of one document (appending to an array) lose nothing.
//! A failing operation (a `test` that does not hold, a missing path) is a 400 and the
//! document is left untouched. Subscribers get the whole resulting document.

use ripplekv_core::{Change, Error, WriteOp};
use ripplekv_proto::WriteOptions;

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn json_patch(
        &self,
        access: &Access,
        key: String,
        operations: String,
        options: WriteOptions,
    ) -> Result<Change, Error> {
        self.commit(access, key, WriteOp::JsonPatch(operations), options)
            .await
    }
}

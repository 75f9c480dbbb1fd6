//! ATOMIC (op 6): add a signed 64-bit delta to a stored decimal integer (a missing
//! key counts as 0). Non-numeric stored values and overflow are 400 and change nothing.
//! An existing TTL is kept.

use ripplekv_core::{Change, Error, WriteOp};
use ripplekv_proto::WriteOptions;

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn atomic(
        &self,
        access: &Access,
        key: String,
        delta: i64,
    ) -> Result<Change, Error> {
        self.commit(access, key, WriteOp::Atomic(delta), WriteOptions::default())
            .await
    }
}

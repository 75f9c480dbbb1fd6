//! GET (op 1): read one key; 404 when it does not exist.

use ripplekv_core::{Error, Record};

use super::Ops;
use crate::hub::Access;

impl Ops {
    pub(crate) async fn get(&self, access: &Access, key: &str) -> Result<Record, Error> {
        self.limits.check_key(key)?;
        access.check(key)?;
        self.store.get(key).await?.ok_or(Error::NotFound)
    }
}

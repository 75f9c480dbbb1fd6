//! GET (op 1): read one key; 404 when it does not exist.

use ripplekv_core::{Error, Record};

use super::Ops;

impl Ops {
    pub(crate) async fn get(&self, key: &str) -> Result<Record, Error> {
        self.limits.check_key(key)?;
        self.store.get(key).await?.ok_or(Error::NotFound)
    }
}

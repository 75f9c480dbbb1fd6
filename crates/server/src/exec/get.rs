//! GET (op 1 on the socket, `GET /record/{key}` on REST): read one key; 404 when it
//! does not exist. The command, its checks and both renderings.

use ripplekv_core::{Error, Limits, Record, Store};
use ripplekv_proto::reply;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::hub::Access;

/// Read one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Get {
    pub(crate) key: String,
}

impl Get {
    pub(super) fn check(&self, limits: &Limits, access: &Access) -> Result<(), Error> {
        limits.check_key(&self.key)?;
        access.check(&self.key)
    }

    pub(super) async fn read(self, store: &dyn Store) -> Result<Got, Error> {
        let record = store.get(&self.key).await?;
        self.found(record)
    }

    /// The GET's result once its record was read: 404 when there is none.
    pub(super) fn found(self, record: Option<Record>) -> Result<Got, Error> {
        let record = record.ok_or(Error::NotFound)?;
        Ok(Got {
            key: self.key,
            record,
        })
    }
}

/// The record a GET found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Got {
    pub(crate) key: String,
    pub(crate) record: Record,
}

impl Got {
    pub(super) fn socket_reply(&self, message_id: Option<&RawValue>) -> String {
        reply::get(
            &self.key,
            &self.record.value,
            self.record.revision,
            message_id,
        )
    }

    pub(super) fn rest_body(&self) -> Value {
        json!({"key": self.key, "value": self.record.value, "revision": self.record.revision})
    }
}

//! The storage contract every backend implements.
//!
//! The server reaches storage only through [`Store`]. Reads return the committed
//! state; writes go through [`Store::write`], which commits one [`Mutation`] under
//! the backend's durability policy and returns the resulting [`Change`] with the
//! store-wide revision it was given. Revisions are strictly increasing across the
//! whole store, never reused, and survive restarts.

use async_trait::async_trait;

use crate::{Change, Error, Mutation};

/// A store-wide, strictly increasing change number (like etcd's revision).
pub type Revision = u64;

/// A stored value and the revision of the change that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    pub revision: Revision,
}

/// One page of an ordered scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangePage {
    /// Records in ascending order of the key's UTF-8 bytes.
    pub records: Vec<(String, Record)>,
    /// True when more records exist in the range after the last one returned.
    pub truncated: bool,
}

/// A key-value backend. Implementations are cheap to share behind an `Arc`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Record>, Error>;

    /// Reads keys in `start..=end` (byte order), at most `limit` of them. An inverted
    /// range is empty, not an error.
    async fn range(&self, start: &str, end: &str, limit: usize) -> Result<RangePage, Error>;

    /// Applies and commits one write. Writes of one caller are committed in the order
    /// their futures are polled to completion one after another.
    async fn write(&self, mutation: Mutation) -> Result<Change, Error>;

    /// The revision of the latest committed change (0 for an empty new store).
    fn revision(&self) -> Revision;

    /// Finishes every write already submitted, makes it durable, and refuses new ones.
    async fn close(&self) -> Result<(), Error>;
}

/// Milliseconds since the Unix epoch, for change timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

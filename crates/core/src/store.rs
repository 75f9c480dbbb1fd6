//! The storage contract every backend implements.
//!
//! The server reaches storage only through [`Store`]. Reads return the committed
//! state; writes go through [`Store::submit`], which queues one [`Mutation`] and hands
//! back a [`PendingWrite`] that resolves, once the write committed under the backend's
//! durability policy, to the resulting [`Change`] with the store-wide revision it was
//! given. Queueing and awaiting are separate steps so one caller can have several
//! writes queued, in order, before the first commits (they then share a commit).
//! Revisions are strictly increasing across the whole store, never reused, and survive
//! restarts.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use async_trait::async_trait;

use crate::{Change, Error, Mutation};

/// A store-wide, strictly increasing change number (like etcd's revision).
pub type Revision = u64;

/// A stored value, the revision of the change that last wrote it, and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The stored string.
    pub value: String,
    /// The revision of the key's last change.
    pub revision: Revision,
    /// When the key expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
}

impl Record {
    /// A record without expiry.
    pub fn new(value: impl Into<String>, revision: Revision) -> Self {
        Record {
            value: value.into(),
            revision,
            expires_at_ms: None,
        }
    }

    /// True once the record's TTL has run out: it is then absent to every read.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A consistent view of every live record at one revision, read in key order.
///
/// The iterator reads from a snapshot of the store taken when it was made, so writes
/// committed meanwhile are not in it; it may block on storage, so drive it from a
/// blocking thread.
pub struct Snapshot {
    /// The revision the view is consistent with.
    pub revision: Revision,
    /// Live records when the view was taken (expired ones are skipped while reading,
    /// so slightly fewer may come out); 0 for a prefix scan, which does not count.
    pub keys: u64,
    /// Every live record, in key order.
    pub records: Box<dyn Iterator<Item = Result<(String, Record), Error>> + Send>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("revision", &self.revision)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// One page of an ordered scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangePage {
    /// Records in ascending order of the key's UTF-8 bytes.
    pub records: Vec<(String, Record)>,
    /// True when more records exist in the range after the last one returned.
    pub truncated: bool,
}

/// The answer to "what changed after revision R?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangesSince {
    /// The changes after R, oldest first (possibly fewer than asked, if the end was reached).
    Changes(Vec<Change>),
    /// Changes after R are no longer all retained; the oldest retained is after `floor`.
    TooOld {
        /// The last revision the log no longer holds.
        floor: Revision,
    },
}

/// How much of the change log a store keeps for `since` replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many of the latest changes.
    pub max_entries: u64,
    /// Drop changes older than this.
    pub max_age: std::time::Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_entries: 100_000,
            max_age: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

/// A key-value backend. Implementations are cheap to share behind an `Arc`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Record>, Error>;

    /// Reads several keys (a connection's pipelined GETs): their records, in the order
    /// of `keys`, each at least as new as every write committed before the call. The
    /// embedded store reads them from one snapshot; the default reads them one at a
    /// time.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Record>>, Error> {
        let mut records = Vec::with_capacity(keys.len());
        for key in keys {
            records.push(self.get(key).await?);
        }
        Ok(records)
    }

    /// Reads keys in `start..=end` (byte order), at most `limit` of them. An inverted
    /// range is empty, not an error.
    async fn range(&self, start: &str, end: &str, limit: usize) -> Result<RangePage, Error>;

    /// Queues one write, waiting only for room in the store's queue. Writes are
    /// applied in the order their `submit`s complete, so a caller that awaits one
    /// `submit` before starting the next has its writes applied in that order; the
    /// returned [`PendingWrite`] resolves once the write committed (or failed).
    async fn submit(&self, mutation: Mutation) -> Result<PendingWrite, Error>;

    /// Applies and commits one write: [`Store::submit`], then await it.
    async fn write(&self, mutation: Mutation) -> Result<Change, Error> {
        self.submit(mutation).await?.await
    }

    /// Removes every record whose TTL has run out, committing an `expire` change for
    /// each (published like any change). Returns how many expired.
    async fn expire_due(&self) -> Result<usize, Error>;

    /// Committed changes with a revision above `after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: Revision, limit: usize) -> Result<ChangesSince, Error>;

    /// The revision of the latest committed change this process knows of (0 for an
    /// empty new store).
    fn revision(&self) -> Revision;

    /// The revision of the latest committed change, asking the store itself: for a
    /// store shared by several processes this may be ahead of [`Store::revision`]
    /// until this process has caught up with the others' commits.
    async fn committed_revision(&self) -> Result<Revision, Error> {
        Ok(self.revision())
    }

    /// A consistent view of every live record, for backups and exports.
    async fn snapshot(&self) -> Result<Snapshot, Error> {
        self.scan("").await
    }

    /// A consistent view of the live records whose keys start with `prefix`, in key
    /// order, with the revision it is consistent with (collection lists). Its `keys`
    /// counts the whole store for the empty prefix, and is 0 (not counted) otherwise.
    async fn scan(&self, prefix: &str) -> Result<Snapshot, Error>;

    /// Finishes every write already submitted, makes it durable, and refuses new ones.
    async fn close(&self) -> Result<(), Error>;

    /// Sets where committed changes are published (replacing any earlier sink).
    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>);

    /// What kind of store this is, as `/health` reports it ("embedded", "postgres").
    fn kind(&self) -> &'static str;

    /// How the processes sharing this store learn of each other's commits ("redis",
    /// "notify"), for a store shared by several; `None` otherwise.
    fn bus(&self) -> Option<&'static str> {
        None
    }

    /// Checks that the store can serve: for a store behind a network, that its server
    /// answers.
    async fn ping(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Appends the store's own metrics, in the Prometheus text format, to `out`.
    fn render_metrics(&self, out: &mut String) {
        let _ = out;
    }
}

/// A queued write: resolves to its [`Change`] once committed, or to the error that
/// refused it (a failed write changes nothing and takes no revision).
#[must_use = "a pending write reports its outcome only when awaited"]
pub struct PendingWrite(Pin<Box<dyn Future<Output = Result<Change, Error>> + Send>>);

impl PendingWrite {
    /// A write whose outcome arrives later, from the store's commit path.
    pub fn later(outcome: impl Future<Output = Result<Change, Error>> + Send + 'static) -> Self {
        PendingWrite(Box::pin(outcome))
    }

    /// A write whose outcome is already known (a store that commits while submitting).
    pub fn ready(outcome: Result<Change, Error>) -> Self {
        PendingWrite::later(std::future::ready(outcome))
    }
}

impl Future for PendingWrite {
    type Output = Result<Change, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingWrite")
    }
}

/// Receives every committed change once, in revision order; a change this process
/// committed arrives before its writer is answered.
///
/// A store shared by several processes (PostgreSQL) also publishes the others'
/// commits, as it learns of them, in the same one sequence. The server's sink, its
/// sequencer, still tolerates repeats and gaps, as a feed of several sources will need.
/// Stores call it from their commit path, so it must not block.
pub trait ChangeSink: Send + Sync + std::fmt::Debug {
    /// Receives committed changes in revision order.
    fn publish(&self, changes: &[Change]);
}

/// The slot a store keeps its sink in.
#[derive(Debug, Default)]
pub struct SinkSlot(RwLock<Option<Arc<dyn ChangeSink>>>);

impl SinkSlot {
    /// Fills the slot; later publishes go to `sink`.
    pub fn set(&self, sink: Arc<dyn ChangeSink>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    /// Publishes `changes` if a sink is set and there is anything to publish.
    pub fn publish(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        if let Some(sink) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            sink.publish(changes);
        }
    }
}

/// Milliseconds since the Unix epoch, for change timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

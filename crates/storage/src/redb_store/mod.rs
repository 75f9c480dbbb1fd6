//! The embedded durable backend: redb with one group-committing writer thread.
//!
//! Writes are queued to a dedicated thread. It takes every write waiting in the queue
//! (up to [`MAX_BATCH`]), applies them in order in one redb transaction, commits once
//! and only then answers them all, so N concurrent writers share one fsync. With
//! [`Durability::Sync`] the commit fsyncs before anyone is answered; with
//! [`Durability::Relaxed`] commits skip the fsync and the writer makes everything
//! durable at least every [`RELAXED_SYNC_INTERVAL`].
//!
//! Reads open their own MVCC snapshot on the caller's thread: they never queue behind
//! the writer. A read of one key is a few microseconds of B-tree walking in redb's page
//! cache, cheaper than a hop to a blocking pool, so it runs inline.
//!
//! In sync mode a batch is made durable by appending its changes to a write-ahead log
//! and fsyncing that (one small sequential write), and redb commits it without an
//! fsync; a periodic durable redb commit (a checkpoint) empties the log, and an open
//! applies whatever the log holds above the database's durable revision (`wal`).
//!
//! On disk: table `kv` maps each key to its encoded [`Record`]; table `changes` is the
//! change log (revision → encoded [`Change`]) that `since` replays read, trimmed in the
//! same transactions by count and age; table `meta` holds the store-wide revision (so
//! revisions keep increasing across restarts) and the log floor (every revision up to
//! it was trimmed).
//!
//! Parts: `codec` (how records and change-log entries are laid out in bytes),
//! `writer` (the writer thread: group commit, expiry, change-log trimming, fsync),
//! `wal` (the sync mode's write-ahead log),
//! `restore` (filling a new store from a snapshot); this file opens the store and
//! serves reads.

mod codec;
mod restore;
mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use ripplekv_core::{
    now_ms, Change, ChangeSink, ChangesSince, Error, Limits, Mutation, PendingWrite, RangePage,
    Record, Retention, Revision, SinkSlot, Snapshot, Store,
};
use tokio::sync::oneshot;

use crate::jobs;
pub use crate::stats::WriterStats;
use codec::{decode, decode_change};
pub use restore::{restore, RESTORE_REVISION_GAP};
use wal::Wal;
pub use wal::WAL_FILE;
use writer::Writer;

pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// Keys with a TTL, by (expiry time, key), so the sweeper finds due keys in order.
pub(super) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
pub(super) const REVISION: &str = "revision";
/// Relaxed mode: revisions up to here may have been handed out. It is fsynced before
/// any of them is, and set back to the revision by a clean close; finding it above the
/// revision on open means a crash may have lost acknowledged writes (see `init_tables`).
pub(super) const RESERVED: &str = "reserved";
/// Every change up to this revision has been dropped from the change log.
pub(super) const LOG_FLOOR: &str = "log_floor";
/// The database file inside the data directory.
pub const DB_FILE: &str = "ripplekv.redb";

/// Most writes committed in one transaction; bounds the latency a batch adds.
pub(crate) const MAX_BATCH: usize = 1024;
/// Longest time a relaxed-mode commit stays without an fsync.
pub(crate) const RELAXED_SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Writes that may wait for the writer before submitters are made to wait.
const QUEUE_CAPACITY: usize = 8192;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the commit holding it is fsynced: survives `kill -9` and power loss.
    #[default]
    Sync,
    /// After it is applied; fsynced within [`RELAXED_SYNC_INTERVAL`].
    Relaxed,
}

/// The durable embedded store. See the module documentation.
#[derive(Debug)]
pub struct RedbStore {
    shared: Arc<Shared>,
    jobs: flume::Sender<Job>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
pub(super) struct Shared {
    db: Database,
    revision: AtomicU64,
    /// The `kv` table of the latest snapshot a GET opened, with the revision it was
    /// opened at (see [`Shared::latest_kv`]).
    latest: Mutex<Option<(Revision, Arc<KvTable>)>>,
    stats: WriterStats,
    sink: SinkSlot,
}

pub(super) enum Job {
    Write(Mutation, oneshot::Sender<Result<Change, Error>>),
    ExpireDue(oneshot::Sender<Result<usize, Error>>),
    Close(oneshot::Sender<Result<(), Error>>),
}

impl RedbStore {
    /// Opens (or creates) the store in `dir` with the default change-log retention.
    pub fn open(dir: &Path, durability: Durability, limits: Limits) -> Result<Self, Error> {
        Self::open_with(dir, durability, limits, Retention::default())
    }

    /// Opens (or creates) the store in `dir` and starts its writer thread.
    pub fn open_with(
        dir: &Path,
        durability: Durability,
        limits: Limits,
        retention: Retention,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let path: PathBuf = dir.join(DB_FILE);
        let db = Database::create(&path)
            .map_err(|e| Error::internal(format!("cannot open {}: {e}", path.display())))?;
        let revision = init_tables(&db)?;
        // Changes a sync-mode run had made durable in its log, but not yet in the
        // database, when it stopped (whatever mode this run is in).
        let revision = writer::apply_logged(&db, revision, wal::replay(dir, revision)?)?;
        let wal = match durability {
            // What it held is in the database now: the log starts again.
            Durability::Sync => Some(Wal::start(dir)?),
            Durability::Relaxed => {
                let _ = std::fs::remove_file(dir.join(WAL_FILE));
                None
            }
        };
        let shared = Arc::new(Shared {
            db,
            revision: AtomicU64::new(revision),
            latest: Mutex::new(None),
            stats: WriterStats::default(),
            sink: SinkSlot::default(),
        });
        let (jobs, queue) = flume::bounded(QUEUE_CAPACITY);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("ripplekv-writer".into())
            .spawn(move || {
                Writer::new(writer_shared, durability, limits, retention, wal).run(&queue)
            })
            .map_err(Error::internal)?;
        Ok(RedbStore {
            shared,
            jobs,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Group-commit counters since open.
    pub fn stats(&self) -> &WriterStats {
        &self.shared.stats
    }
}

/// Creates the tables of a new database and returns the stored revision.
///
/// A relaxed-mode store that was not closed cleanly may have handed out revisions
/// (to acknowledged writes, notifications, GETs) that its last fsync did not keep.
/// So that no revision ever means two different changes, it restarts above every
/// revision it reserved, and drops its change log with the floor raised to there: a
/// client resuming from any earlier revision gets a resync and re-reads.
pub(super) fn init_tables(db: &Database) -> Result<Revision, Error> {
    let txn = db.begin_write().map_err(Error::internal)?;
    let revision = {
        txn.open_table(KV).map_err(Error::internal)?;
        txn.open_table(CHANGES).map_err(Error::internal)?;
        txn.open_table(EXPIRY).map_err(Error::internal)?;
        let mut meta = txn.open_table(META).map_err(Error::internal)?;
        let read = |meta: &redb::Table<&str, u64>, name: &str| -> Result<u64, Error> {
            let stored = meta.get(name).map_err(Error::internal)?;
            Ok(stored.map_or(0, |guard| guard.value()))
        };
        let stored = read(&meta, REVISION)?;
        let reserved = read(&meta, RESERVED)?;
        if reserved > stored {
            tracing::warn!(
                durable_revision = stored,
                restarting_after = reserved,
                "the store was not closed cleanly in relaxed mode: writes acknowledged \
                 after its last fsync may be lost; revisions restart after every one it \
                 may have handed out, and resuming clients will be told to resync"
            );
            for name in [REVISION, LOG_FLOOR, RESERVED] {
                meta.insert(name, reserved).map_err(Error::internal)?;
            }
            drop(meta);
            txn.delete_table(CHANGES).map_err(Error::internal)?;
            txn.open_table(CHANGES).map_err(Error::internal)?;
            reserved
        } else {
            stored
        }
    };
    txn.commit().map_err(Error::internal)?;
    Ok(revision)
}

/// The `kv` table as a read transaction sees it.
type KvTable = redb::ReadOnlyTable<&'static str, &'static [u8]>;

impl Shared {
    /// The `kv` table of a snapshot holding every commit made so far.
    ///
    /// Opening a read transaction and its table is most of what a lone GET costs, so
    /// the last one opened is kept while no commit follows it: GETs between two
    /// commits share it. It was opened after the revision it is filed under was
    /// published, so it holds at least that commit (and may hold one more). The
    /// writer drops it at every commit, so an idle reader never pins old pages.
    fn latest_kv(&self) -> Result<Arc<KvTable>, Error> {
        let revision = self.revision.load(Ordering::Acquire);
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, table)) = latest.as_ref() {
            if *at == revision {
                return Ok(Arc::clone(table));
            }
        }
        let txn = self.db.begin_read().map_err(Error::internal)?;
        let table = Arc::new(txn.open_table(KV).map_err(Error::internal)?);
        *latest = Some((revision, Arc::clone(&table)));
        Ok(table)
    }

    /// Forgets the kept snapshot: a commit made it stale.
    pub(super) fn forget_latest(&self) {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The record stored under `key`, unless it is absent or expired (expired records are
/// absent even before the sweeper removes them).
fn live_record(table: &KvTable, key: &str, now: u64) -> Result<Option<Record>, Error> {
    let guard = table.get(key).map_err(Error::internal)?;
    let record = guard.map(|bytes| decode(bytes.value())).transpose()?;
    Ok(record.filter(|record| !record.is_expired(now)))
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        let table = self.shared.latest_kv()?;
        live_record(&table, key, now_ms())
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Record>>, Error> {
        // One snapshot for the lot, so the reads agree with each other.
        let table = self.shared.latest_kv()?;
        let now = now_ms();
        keys.iter()
            .map(|key| live_record(&table, key, now))
            .collect()
    }

    async fn range(&self, start: &str, end: &str, limit: usize) -> Result<RangePage, Error> {
        if start > end {
            return Ok(RangePage::default());
        }
        let txn = self.shared.db.begin_read().map_err(Error::internal)?;
        let table = txn.open_table(KV).map_err(Error::internal)?;
        let mut records = Vec::with_capacity(limit.min(128));
        let mut truncated = false;
        let now = now_ms();
        for entry in table.range::<&str>(start..=end).map_err(Error::internal)? {
            let (key, value) = entry.map_err(Error::internal)?;
            let record = decode(value.value())?;
            if record.is_expired(now) {
                continue;
            }
            if records.len() == limit {
                truncated = true;
                break;
            }
            records.push((key.value().to_owned(), record));
        }
        Ok(RangePage { records, truncated })
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn submit(&self, mutation: Mutation) -> Result<PendingWrite, Error> {
        let answer = jobs::queue(&self.jobs, |reply| Job::Write(mutation, reply)).await?;
        Ok(PendingWrite::later(jobs::answer(answer)))
    }

    async fn expire_due(&self) -> Result<usize, Error> {
        // Peek first, so an idle store does not commit (and fsync) on every sweep.
        let txn = self.shared.db.begin_read().map_err(Error::internal)?;
        let expiry = txn.open_table(EXPIRY).map_err(Error::internal)?;
        let first_due = expiry
            .first()
            .map_err(Error::internal)?
            .map(|(entry, _)| entry.value().0);
        if first_due.is_none_or(|at| at > now_ms()) {
            return Ok(0);
        }
        jobs::answer(jobs::queue(&self.jobs, Job::ExpireDue).await?).await
    }

    async fn changes_since(&self, after: Revision, limit: usize) -> Result<ChangesSince, Error> {
        let txn = self.shared.db.begin_read().map_err(Error::internal)?;
        // The floor is read in the same snapshot as the log, so they always agree.
        let meta = txn.open_table(META).map_err(Error::internal)?;
        let floor = meta
            .get(LOG_FLOOR)
            .map_err(Error::internal)?
            .map_or(0, |g| g.value());
        if after < floor {
            return Ok(ChangesSince::TooOld { floor });
        }
        let table = txn.open_table(CHANGES).map_err(Error::internal)?;
        let mut changes = Vec::new();
        for entry in table
            .range(after.saturating_add(1)..)
            .map_err(Error::internal)?
        {
            if changes.len() == limit {
                break;
            }
            let (revision, bytes) = entry.map_err(Error::internal)?;
            changes.push(decode_change(revision.value(), bytes.value())?);
        }
        Ok(ChangesSince::Changes(changes))
    }

    fn revision(&self) -> Revision {
        self.shared.revision.load(Ordering::Acquire)
    }

    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        self.shared.sink.set(sink);
    }

    fn render_metrics(&self, out: &mut String) {
        self.shared.stats.render(out);
    }

    async fn scan(&self, prefix: &str) -> Result<Snapshot, Error> {
        // One read transaction is one MVCC snapshot: the revision, the count and every
        // record come from the same committed state, whatever is written meanwhile.
        let txn = self.shared.db.begin_read().map_err(Error::internal)?;
        let revision = txn
            .open_table(META)
            .map_err(Error::internal)?
            .get(REVISION)
            .map_err(Error::internal)?
            .map_or(0, |guard| guard.value());
        let table = txn.open_table(KV).map_err(Error::internal)?;
        let keys = if prefix.is_empty() {
            table.len().map_err(Error::internal)?
        } else {
            0
        };
        let now = now_ms();
        let wanted = prefix.to_owned();
        let records = table
            .range::<&str>(prefix..)
            .map_err(Error::internal)?
            .take_while(move |entry| {
                // Errors go through, to be reported below.
                entry
                    .as_ref()
                    .map_or(true, |(key, _)| key.value().starts_with(&wanted))
            })
            .filter_map(move |entry| {
                let decoded = entry
                    .map_err(Error::internal)
                    .and_then(|(key, value)| Ok((key.value().to_owned(), decode(value.value())?)));
                match decoded {
                    Ok((_, record)) if record.is_expired(now) => None,
                    other => Some(other),
                }
            });
        Ok(Snapshot {
            revision,
            keys,
            records: Box::new(records),
        })
    }

    async fn close(&self) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send_async(Job::Close(reply)).await.is_err() {
            return Ok(()); // already closed
        }
        let result = answer.await.unwrap_or(Ok(()));
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            // The writer answers Close as its last act, so this join is immediate.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        let stats = &self.shared.stats;
        let (commits, writes) = (
            stats.commits.load(Ordering::Relaxed),
            stats.writes.load(Ordering::Relaxed),
        );
        tracing::info!(
            commits,
            writes,
            max_batch = stats.max_batch.load(Ordering::Relaxed),
            avg_batch = format!("{:.2}", writes as f64 / commits.max(1) as f64),
            revision = self.revision(),
            "store closed"
        );
        result
    }
}

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
//! On disk: table `kv` maps each key to its encoded [`Record`]; table `meta` holds the
//! store-wide revision so revisions keep increasing across restarts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use ripplekv_core::{
    now_ms, plan, Change, Error, Limits, Mutation, RangePage, Record, Revision, Store,
};
use tokio::sync::oneshot;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// The database file inside the data directory.
pub const DB_FILE: &str = "ripplekv.redb";

/// Most writes committed in one transaction; bounds the latency a batch adds.
pub const MAX_BATCH: usize = 1024;
/// Longest time a relaxed-mode commit stays without an fsync.
pub const RELAXED_SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Writes that may wait for the writer before submitters are made to wait.
const QUEUE_CAPACITY: usize = 8192;
/// Format tag of an encoded record, so the layout can evolve (e.g. TTL).
const RECORD_FORMAT: u8 = 1;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the commit holding it is fsynced: survives `kill -9` and power loss.
    #[default]
    Sync,
    /// After it is applied; fsynced within [`RELAXED_SYNC_INTERVAL`].
    Relaxed,
}

/// Counters of the group commit, for logs and benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions that committed at least one write.
    pub commits: AtomicU64,
    /// Writes committed (including ones answered with an error such as 404).
    pub writes: AtomicU64,
    /// The largest number of writes committed together.
    pub max_batch: AtomicU64,
}

/// The durable embedded store. See the module documentation.
#[derive(Debug)]
pub struct RedbStore {
    shared: Arc<Shared>,
    jobs: flume::Sender<Job>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    db: Database,
    revision: AtomicU64,
    stats: WriterStats,
}

enum Job {
    Write(Mutation, oneshot::Sender<Result<Change, Error>>),
    Close(oneshot::Sender<Result<(), Error>>),
}

impl RedbStore {
    /// Opens (or creates) the store in `dir` and starts its writer thread.
    pub fn open(dir: &Path, durability: Durability, limits: Limits) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let path: PathBuf = dir.join(DB_FILE);
        let db = Database::create(&path)
            .map_err(|e| Error::internal(format!("cannot open {}: {e}", path.display())))?;
        let revision = init_tables(&db)?;
        let shared = Arc::new(Shared {
            db,
            revision: AtomicU64::new(revision),
            stats: WriterStats::default(),
        });
        let (jobs, queue) = flume::bounded(QUEUE_CAPACITY);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("ripplekv-writer".into())
            .spawn(move || Writer::new(writer_shared, durability, limits).run(&queue))
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
fn init_tables(db: &Database) -> Result<Revision, Error> {
    let txn = db.begin_write().map_err(Error::internal)?;
    let revision = {
        txn.open_table(KV).map_err(Error::internal)?;
        let meta = txn.open_table(META).map_err(Error::internal)?;
        let stored = meta.get(REVISION).map_err(Error::internal)?;
        stored.map_or(0, |guard| guard.value())
    };
    txn.commit().map_err(Error::internal)?;
    Ok(revision)
}

fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(9 + record.value.len());
    bytes.push(RECORD_FORMAT);
    bytes.extend_from_slice(&record.revision.to_le_bytes());
    bytes.extend_from_slice(record.value.as_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Result<Record, Error> {
    let corrupt = || Error::internal("corrupt record in kv table");
    let (&format, rest) = bytes.split_first().ok_or_else(corrupt)?;
    if format != RECORD_FORMAT || rest.len() < 8 {
        return Err(corrupt());
    }
    let (revision, value) = rest.split_at(8);
    let revision = u64::from_le_bytes(revision.try_into().map_err(|_| corrupt())?);
    let value = std::str::from_utf8(value)
        .map_err(|_| corrupt())?
        .to_owned();
    Ok(Record { value, revision })
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        let txn = self.shared.db.begin_read().map_err(Error::internal)?;
        let table = txn.open_table(KV).map_err(Error::internal)?;
        let guard = table.get(key).map_err(Error::internal)?;
        guard.map(|bytes| decode(bytes.value())).transpose()
    }

    async fn range(&self, start: &str, end: &str, limit: usize) -> Result<RangePage, Error> {
        if start > end {
            return Ok(RangePage::default());
        }
        let txn = self.shared.db.begin_read().map_err(Error::internal)?;
        let table = txn.open_table(KV).map_err(Error::internal)?;
        let mut records = Vec::with_capacity(limit.min(128));
        let mut truncated = false;
        for entry in table.range::<&str>(start..=end).map_err(Error::internal)? {
            let (key, value) = entry.map_err(Error::internal)?;
            if records.len() == limit {
                truncated = true;
                break;
            }
            records.push((key.value().to_owned(), decode(value.value())?));
        }
        Ok(RangePage { records, truncated })
    }

    async fn write(&self, mutation: Mutation) -> Result<Change, Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send_async(Job::Write(mutation, reply))
            .await
            .map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
    }

    fn revision(&self) -> Revision {
        self.shared.revision.load(Ordering::Acquire)
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

/// The state of the writer thread.
struct Writer {
    shared: Arc<Shared>,
    durability: Durability,
    limits: Limits,
    /// Relaxed mode: when the oldest commit not yet fsynced was made.
    unsynced_since: Option<Instant>,
}

impl Writer {
    fn new(shared: Arc<Shared>, durability: Durability, limits: Limits) -> Self {
        Writer {
            shared,
            durability,
            limits,
            unsynced_since: None,
        }
    }

    fn run(mut self, queue: &flume::Receiver<Job>) {
        loop {
            let first = match self.unsynced_since {
                Some(since) => match queue.recv_deadline(since + RELAXED_SYNC_INTERVAL) {
                    Ok(job) => job,
                    Err(flume::RecvTimeoutError::Timeout) => {
                        let _ = self.sync(); // a failure is logged inside
                        continue;
                    }
                    Err(flume::RecvTimeoutError::Disconnected) => break,
                },
                None => match queue.recv() {
                    Ok(job) => job,
                    Err(flume::RecvError::Disconnected) => break,
                },
            };
            let mut writes = Vec::new();
            let mut closer = None;
            for job in std::iter::once(first).chain(queue.drain().take(MAX_BATCH - 1)) {
                match job {
                    Job::Write(mutation, reply) if closer.is_none() => {
                        writes.push((mutation, reply))
                    }
                    Job::Write(_, reply) => drop(reply.send(Err(Error::Unavailable))),
                    Job::Close(reply) => closer = Some(reply),
                }
            }
            if !writes.is_empty() {
                self.commit_batch(writes);
            }
            if let Some(reply) = closer {
                let _ = reply.send(self.sync());
                return;
            }
            if self
                .unsynced_since
                .is_some_and(|since| since.elapsed() >= RELAXED_SYNC_INTERVAL)
            {
                let _ = self.sync(); // a failure is logged inside
            }
        }
        // Every handle was dropped without Close: still make what was written durable.
        let _ = self.sync();
    }

    /// Applies the batch in one transaction, commits, then answers every write.
    fn commit_batch(&mut self, writes: Vec<(Mutation, oneshot::Sender<Result<Change, Error>>)>) {
        let count = writes.len() as u64;
        let (mutations, replies): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
        match self.apply_and_commit(mutations) {
            Ok(outcomes) => {
                let stats = &self.shared.stats;
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.writes.fetch_add(count, Ordering::Relaxed);
                stats.max_batch.fetch_max(count, Ordering::Relaxed);
                if self.durability == Durability::Relaxed && self.unsynced_since.is_none() {
                    self.unsynced_since = Some(Instant::now());
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, writes = count, "commit failed; batch rejected");
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Applies mutations in order inside one write transaction. Per-write failures
    /// (404, bad ATOMIC) are outcomes; only a storage failure aborts the batch.
    fn apply_and_commit(
        &self,
        mutations: Vec<Mutation>,
    ) -> Result<Vec<Result<Change, Error>>, Error> {
        let mut txn = self.shared.db.begin_write().map_err(Error::internal)?;
        let level = match self.durability {
            Durability::Sync => redb::Durability::Immediate,
            Durability::Relaxed => redb::Durability::None,
        };
        txn.set_durability(level).map_err(Error::internal)?;
        let mut revision = self.shared.revision.load(Ordering::Acquire);
        let mut outcomes = Vec::with_capacity(mutations.len());
        {
            let mut kv = txn.open_table(KV).map_err(Error::internal)?;
            let timestamp = now_ms();
            for mutation in mutations {
                let current = kv
                    .get(mutation.key.as_str())
                    .map_err(Error::internal)?
                    .map(|bytes| decode(bytes.value()))
                    .transpose()?;
                let current = current.as_ref().map(|record| record.value.as_str());
                let planned = match plan(mutation, current, &self.limits, revision + 1, timestamp) {
                    Ok(planned) => planned,
                    Err(err) => {
                        outcomes.push(Err(err));
                        continue;
                    }
                };
                let key = planned.change.key.as_str();
                match &planned.record {
                    Some(record) => kv.insert(key, encode(record).as_slice()).map(drop),
                    None => kv.remove(key).map(drop),
                }
                .map_err(Error::internal)?;
                revision = planned.change.revision;
                outcomes.push(Ok(planned.change));
            }
            let mut meta = txn.open_table(META).map_err(Error::internal)?;
            meta.insert(REVISION, revision).map_err(Error::internal)?;
        }
        txn.commit().map_err(Error::internal)?;
        self.shared.revision.store(revision, Ordering::Release);
        Ok(outcomes)
    }

    /// Makes every earlier commit durable (an empty fsynced commit).
    fn sync(&mut self) -> Result<(), Error> {
        if self.unsynced_since.take().is_none() {
            return Ok(());
        }
        let result = self
            .shared
            .db
            .begin_write()
            .map_err(Error::internal)
            .and_then(|txn| txn.commit().map_err(Error::internal));
        if let Err(err) = &result {
            tracing::error!(error = %err, "periodic fsync failed");
        }
        result
    }
}

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
//! On disk: table `kv` maps each key to its encoded [`Record`]; table `changes` is the
//! change log (revision → encoded [`Change`]) that `since` replays read, trimmed in the
//! same transactions by count and age; table `meta` holds the store-wide revision (so
//! revisions keep increasing across restarts) and the log floor (every revision up to
//! it was trimmed).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use ripplekv_core::metrics::{Histogram, BATCH_SIZES, LATENCY_SECONDS};
use ripplekv_core::{
    now_ms, plan, Change, ChangeOp, ChangeSink, ChangesSince, Error, Limits, Mutation, RangePage,
    Record, Retention, Revision, SinkSlot, Snapshot, Store,
};
use tokio::sync::oneshot;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// Keys with a TTL, by (expiry time, key), so the sweeper finds due keys in order.
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// Most keys expired in one commit, to keep commits short.
const MAX_EXPIRED_PER_COMMIT: usize = 10_000;
const REVISION: &str = "revision";
/// Every change up to this revision has been dropped from the change log.
const LOG_FLOOR: &str = "log_floor";
/// How often the change log is checked for entries past their age.
const AGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Most expired change-log entries dropped in one commit, to keep commits short.
const MAX_AGE_TRIM: usize = 10_000;
/// The database file inside the data directory.
pub const DB_FILE: &str = "ripplekv.redb";

/// Most writes committed in one transaction; bounds the latency a batch adds.
pub const MAX_BATCH: usize = 1024;
/// Longest time a relaxed-mode commit stays without an fsync.
pub const RELAXED_SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Writes that may wait for the writer before submitters are made to wait.
const QUEUE_CAPACITY: usize = 8192;
/// Format tag of an encoded record: 1 is revision + value, 2 adds the expiry.
const RECORD_FORMAT: u8 = 2;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the commit holding it is fsynced: survives `kill -9` and power loss.
    #[default]
    Sync,
    /// After it is applied; fsynced within [`RELAXED_SYNC_INTERVAL`].
    Relaxed,
}

/// Counters of the group commit, for logs, metrics and benchmarks.
#[derive(Debug)]
pub struct WriterStats {
    /// Writes per committed transaction.
    pub batch_sizes: Histogram,
    /// Time to commit a transaction, fsync included in `sync` mode.
    pub commit_seconds: Histogram,
    /// Entries in the change log (revision minus log floor).
    pub log_entries: AtomicU64,
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

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            batch_sizes: Histogram::new(BATCH_SIZES),
            commit_seconds: Histogram::new(LATENCY_SECONDS),
            log_entries: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            max_batch: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
struct Shared {
    db: Database,
    revision: AtomicU64,
    stats: WriterStats,
    sink: SinkSlot,
}

enum Job {
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
        let shared = Arc::new(Shared {
            db,
            revision: AtomicU64::new(revision),
            stats: WriterStats::default(),
            sink: SinkSlot::default(),
        });
        let (jobs, queue) = flume::bounded(QUEUE_CAPACITY);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("ripplekv-writer".into())
            .spawn(move || Writer::new(writer_shared, durability, limits, retention).run(&queue))
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

/// How far a restored store's revision jumps past its snapshot's. The server the
/// backup came from may have gone on past the snapshot; clients that saw those later
/// revisions must not mistake the restored store's new writes for the ones they saw.
/// With the jump, every revision a client could hold from before the restore is below
/// the change log's floor, so resuming from it asks for a resync.
pub const RESTORE_REVISION_GAP: Revision = 1 << 32;

/// Writes the records of a snapshot taken at `revision` into a new store in `dir`,
/// keeping each record's revision and expiry. The store's revision, and the floor of
/// its (empty) change log, are `revision + RESTORE_REVISION_GAP`. Refuses a directory
/// that already holds a database.
/// Returns the number of records written. Everything is one transaction: a restore
/// that fails leaves no half-filled store behind (the file is removed).
pub fn restore(
    dir: &Path,
    revision: Revision,
    records: impl Iterator<Item = Result<(String, Record), Error>>,
) -> Result<u64, Error> {
    let path = dir.join(DB_FILE);
    if path.exists() {
        return Err(Error::invalid(format!(
            "{} already exists; restore into an empty data directory",
            path.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    let written = write_restored(&path, revision, records);
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    written
}

fn write_restored(
    path: &Path,
    revision: Revision,
    records: impl Iterator<Item = Result<(String, Record), Error>>,
) -> Result<u64, Error> {
    let db = Database::create(path)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", path.display())))?;
    init_tables(&db)?;
    let txn = db.begin_write().map_err(Error::internal)?;
    let mut count = 0;
    {
        let mut tables = Tables {
            kv: txn.open_table(KV).map_err(Error::internal)?,
            expiry: txn.open_table(EXPIRY).map_err(Error::internal)?,
            committed: Vec::new(),
        };
        for record in records {
            let (key, record) = record?;
            if record.revision > revision {
                return Err(Error::invalid(format!(
                    "record {key:?} has revision {} above the snapshot's {revision}",
                    record.revision
                )));
            }
            let old = tables.get(&key)?;
            tables.put(&key, old.as_ref(), Some(&record))?;
            count += 1;
        }
        let restarted_at = revision.saturating_add(RESTORE_REVISION_GAP);
        let mut meta = txn.open_table(META).map_err(Error::internal)?;
        meta.insert(REVISION, restarted_at)
            .map_err(Error::internal)?;
        meta.insert(LOG_FLOOR, restarted_at)
            .map_err(Error::internal)?;
    }
    txn.commit().map_err(Error::internal)?;
    Ok(count)
}

/// Creates the tables of a new database and returns the stored revision.
fn init_tables(db: &Database) -> Result<Revision, Error> {
    let txn = db.begin_write().map_err(Error::internal)?;
    let revision = {
        txn.open_table(KV).map_err(Error::internal)?;
        txn.open_table(CHANGES).map_err(Error::internal)?;
        txn.open_table(EXPIRY).map_err(Error::internal)?;
        let meta = txn.open_table(META).map_err(Error::internal)?;
        let stored = meta.get(REVISION).map_err(Error::internal)?;
        stored.map_or(0, |guard| guard.value())
    };
    txn.commit().map_err(Error::internal)?;
    Ok(revision)
}

fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(17 + record.value.len());
    bytes.push(RECORD_FORMAT);
    bytes.extend_from_slice(&record.revision.to_le_bytes());
    bytes.extend_from_slice(&record.expires_at_ms.unwrap_or(0).to_le_bytes());
    bytes.extend_from_slice(record.value.as_bytes());
    bytes
}

/// A change-log entry: op, timestamp, key length, key, then the value if any.
fn encode_change(change: &Change) -> Vec<u8> {
    let value = change.value.as_deref();
    let mut bytes = Vec::with_capacity(14 + change.key.len() + value.map_or(0, str::len));
    bytes.push(change.op.code());
    bytes.extend_from_slice(&change.timestamp_ms.to_le_bytes());
    bytes.extend_from_slice(
        &u32::try_from(change.key.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    bytes.extend_from_slice(change.key.as_bytes());
    if let Some(value) = value {
        bytes.push(1);
        bytes.extend_from_slice(value.as_bytes());
    } else {
        bytes.push(0);
    }
    bytes
}

fn decode_change(revision: Revision, bytes: &[u8]) -> Result<Change, Error> {
    let corrupt = || Error::internal(format!("corrupt change-log entry {revision}"));
    let op = ChangeOp::from_code(*bytes.first().ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    let number = |range: std::ops::Range<usize>| bytes.get(range).ok_or_else(corrupt);
    let timestamp_ms = u64::from_le_bytes(number(1..9)?.try_into().map_err(|_| corrupt())?);
    let key_len = u32::from_le_bytes(number(9..13)?.try_into().map_err(|_| corrupt())?) as usize;
    let key = number(13..13 + key_len)?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt())?.to_owned();
    let rest = bytes.get(13 + key_len..).ok_or_else(corrupt)?;
    let value = match rest.split_first() {
        Some((1, value)) => Some(
            std::str::from_utf8(value)
                .map_err(|_| corrupt())?
                .to_owned(),
        ),
        Some((0, [])) => None,
        _ => return Err(corrupt()),
    };
    Ok(Change {
        revision,
        key,
        op,
        value,
        timestamp_ms,
    })
}

fn decode(bytes: &[u8]) -> Result<Record, Error> {
    let corrupt = || Error::internal("corrupt record in kv table");
    let (&format, rest) = bytes.split_first().ok_or_else(corrupt)?;
    let number = |at: usize| -> Result<u64, Error> {
        let field = rest.get(at..at + 8).ok_or_else(corrupt)?;
        Ok(u64::from_le_bytes(field.try_into().map_err(|_| corrupt())?))
    };
    let (expires_at_ms, value) = match format {
        1 => (None, rest.get(8..)),
        2 => (Some(number(8)?).filter(|&at| at != 0), rest.get(16..)),
        _ => return Err(corrupt()),
    };
    let value = std::str::from_utf8(value.ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    Ok(Record {
        value: value.to_owned(),
        revision: number(0)?,
        expires_at_ms,
    })
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        let txn = self.shared.db.begin_read().map_err(Error::internal)?;
        let table = txn.open_table(KV).map_err(Error::internal)?;
        let guard = table.get(key).map_err(Error::internal)?;
        let record = guard.map(|bytes| decode(bytes.value())).transpose()?;
        // Expired records are absent even before the sweeper removes them.
        Ok(record.filter(|record| !record.is_expired(now_ms())))
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

    async fn write(&self, mutation: Mutation) -> Result<Change, Error> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send_async(Job::Write(mutation, reply))
            .await
            .map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
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
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send_async(Job::ExpireDue(reply))
            .await
            .map_err(|_| Error::Unavailable)?;
        answer.await.map_err(|_| Error::Unavailable)?
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
        use std::fmt::Write;
        let stats = &self.shared.stats;
        out.push_str("# HELP ripplekv_store_commit_batch_size Writes committed together in one transaction.\n# TYPE ripplekv_store_commit_batch_size histogram\n");
        stats
            .batch_sizes
            .render(out, "ripplekv_store_commit_batch_size", "");
        out.push_str("# HELP ripplekv_store_commit_seconds Time to commit a transaction (fsync included with sync durability).\n# TYPE ripplekv_store_commit_seconds histogram\n");
        stats
            .commit_seconds
            .render(out, "ripplekv_store_commit_seconds", "");
        let _ = writeln!(out, "# HELP ripplekv_changelog_entries Changes retained for since replays.\n# TYPE ripplekv_changelog_entries gauge\nripplekv_changelog_entries {}", stats.log_entries.load(Ordering::Relaxed));
    }

    async fn snapshot(&self) -> Result<Snapshot, Error> {
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
        let keys = table.len().map_err(Error::internal)?;
        let now = now_ms();
        let records = table
            .range::<&str>(..)
            .map_err(Error::internal)?
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

/// The tables one write transaction works on, and the changes it committed so far.
struct Tables<'txn> {
    kv: redb::Table<'txn, &'static str, &'static [u8]>,
    expiry: redb::Table<'txn, (u64, &'static str), ()>,
    committed: Vec<Change>,
}

impl Tables<'_> {
    /// The stored record, expired or not.
    fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        self.kv
            .get(key)
            .map_err(Error::internal)?
            .map(|bytes| decode(bytes.value()))
            .transpose()
    }

    /// Replaces `old` by `new` (or removes the key), keeping the expiry index in step.
    fn put(&mut self, key: &str, old: Option<&Record>, new: Option<&Record>) -> Result<(), Error> {
        let old_expiry = old.and_then(|record| record.expires_at_ms);
        let new_expiry = new.and_then(|record| record.expires_at_ms);
        if old_expiry != new_expiry {
            if let Some(at) = old_expiry {
                self.expiry.remove((at, key)).map_err(Error::internal)?;
            }
            if let Some(at) = new_expiry {
                self.expiry.insert((at, key), ()).map_err(Error::internal)?;
            }
        }
        match new {
            Some(record) => self.kv.insert(key, encode(record).as_slice()).map(drop),
            None => self.kv.remove(key).map(drop),
        }
        .map_err(Error::internal)
    }
}

/// The state of the writer thread.
struct Writer {
    shared: Arc<Shared>,
    durability: Durability,
    limits: Limits,
    retention: Retention,
    /// Relaxed mode: when the oldest commit not yet fsynced was made.
    unsynced_since: Option<Instant>,
    /// When the change log was last checked for entries past their age.
    last_age_check: Instant,
}

impl Writer {
    fn new(
        shared: Arc<Shared>,
        durability: Durability,
        limits: Limits,
        retention: Retention,
    ) -> Self {
        Writer {
            shared,
            durability,
            limits,
            retention,
            unsynced_since: None,
            last_age_check: Instant::now(),
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
                    Job::ExpireDue(reply) => drop(reply.send(self.expire_due())),
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

    /// Applies the batch in one transaction, commits, publishes, then answers.
    fn commit_batch(&mut self, writes: Vec<(Mutation, oneshot::Sender<Result<Change, Error>>)>) {
        let count = writes.len() as u64;
        let (mutations, replies): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
        let limits = self.limits;
        let committed = self.transact(|tables, revision, now| {
            let mut outcomes = Vec::with_capacity(mutations.len());
            for mutation in mutations {
                let key = mutation.key.clone();
                let stored = tables.get(&key)?;
                match plan(mutation, stored.as_ref(), &limits, *revision + 1, now) {
                    Ok(planned) => {
                        tables.put(&key, stored.as_ref(), planned.record.as_ref())?;
                        *revision = planned.revision();
                        tables.committed.extend(planned.changes().cloned());
                        outcomes.push(Ok(planned.change));
                    }
                    // Per-write failures (404, 409, bad ATOMIC) are answers, not aborts.
                    Err(err) => outcomes.push(Err(err)),
                }
            }
            Ok(outcomes)
        });
        match committed {
            Ok((outcomes, changes)) => {
                let stats = &self.shared.stats;
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.writes.fetch_add(count, Ordering::Relaxed);
                stats.max_batch.fetch_max(count, Ordering::Relaxed);
                stats.batch_sizes.observe(count as f64);
                // Published from this one thread, after commit and before any writer
                // hears back: subscribers see changes in commit order, never later
                // than the writer's own reply.
                self.shared.sink.publish(&changes);
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

    /// Removes records whose TTL ran out, committing an `expire` change for each.
    fn expire_due(&mut self) -> Result<usize, Error> {
        let (count, changes) = self.transact(|tables, revision, now| {
            let mut due = Vec::new();
            for entry in tables.expiry.iter().map_err(Error::internal)? {
                let (entry, _) = entry.map_err(Error::internal)?;
                let (at, key) = entry.value();
                if at > now || due.len() == MAX_EXPIRED_PER_COMMIT {
                    break;
                }
                due.push((at, key.to_owned()));
            }
            for (at, key) in &due {
                tables
                    .expiry
                    .remove((*at, key.as_str()))
                    .map_err(Error::internal)?;
                let stored = tables.get(key)?;
                if stored.as_ref().and_then(|record| record.expires_at_ms) == Some(*at) {
                    tables.kv.remove(key.as_str()).map_err(Error::internal)?;
                    *revision += 1;
                    tables.committed.push(Change::expire(key, *revision, now));
                }
            }
            Ok(tables.committed.len())
        })?;
        self.shared.sink.publish(&changes);
        Ok(count)
    }

    /// Runs `body` in one write transaction, then logs the changes it committed, trims
    /// the log, stores the revision, and commits. Returns the body's result and the
    /// committed changes, in order.
    fn transact<T>(
        &mut self,
        body: impl FnOnce(&mut Tables<'_>, &mut Revision, u64) -> Result<T, Error>,
    ) -> Result<(T, Vec<Change>), Error> {
        let mut txn = self.shared.db.begin_write().map_err(Error::internal)?;
        let level = match self.durability {
            Durability::Sync => redb::Durability::Immediate,
            Durability::Relaxed => redb::Durability::None,
        };
        txn.set_durability(level).map_err(Error::internal)?;
        let mut revision = self.shared.revision.load(Ordering::Acquire);
        let now = now_ms();
        let (result, committed) = {
            let mut tables = Tables {
                kv: txn.open_table(KV).map_err(Error::internal)?,
                expiry: txn.open_table(EXPIRY).map_err(Error::internal)?,
                committed: Vec::new(),
            };
            let result = body(&mut tables, &mut revision, now)?;
            let mut log = txn.open_table(CHANGES).map_err(Error::internal)?;
            for change in &tables.committed {
                log.insert(change.revision, encode_change(change).as_slice())
                    .map_err(Error::internal)?;
            }
            let mut meta = txn.open_table(META).map_err(Error::internal)?;
            let floor = meta
                .get(LOG_FLOOR)
                .map_err(Error::internal)?
                .map_or(0, |g| g.value());
            let trimmed = self.trim_log(&mut log, floor, revision, now)?;
            if trimmed != floor {
                meta.insert(LOG_FLOOR, trimmed).map_err(Error::internal)?;
            }
            self.shared
                .stats
                .log_entries
                .store(revision - trimmed, Ordering::Relaxed);
            meta.insert(REVISION, revision).map_err(Error::internal)?;
            (result, tables.committed)
        };
        let committing = Instant::now();
        txn.commit().map_err(Error::internal)?;
        self.shared
            .stats
            .commit_seconds
            .observe(committing.elapsed().as_secs_f64());
        self.shared.revision.store(revision, Ordering::Release);
        if self.durability == Durability::Relaxed && self.unsynced_since.is_none() {
            self.unsynced_since = Some(Instant::now());
        }
        Ok((result, committed))
    }

    /// Drops change-log entries beyond the retention, returning the new floor. The log
    /// holds consecutive revisions floor+1..=revision, so the count needs no scan.
    fn trim_log(
        &mut self,
        log: &mut redb::Table<u64, &[u8]>,
        mut floor: Revision,
        revision: Revision,
        now: u64,
    ) -> Result<Revision, Error> {
        let excess = revision
            .saturating_sub(floor)
            .saturating_sub(self.retention.max_entries);
        for dropped in floor + 1..=floor + excess {
            log.remove(dropped).map_err(Error::internal)?;
        }
        floor += excess;
        if self.last_age_check.elapsed() >= AGE_CHECK_INTERVAL {
            self.last_age_check = Instant::now();
            let max_age = u64::try_from(self.retention.max_age.as_millis()).unwrap_or(u64::MAX);
            let cutoff = now.saturating_sub(max_age);
            for _ in 0..MAX_AGE_TRIM {
                let oldest = match log.first().map_err(Error::internal)? {
                    Some((revision, bytes)) => (
                        revision.value(),
                        decode_change(revision.value(), bytes.value())?,
                    ),
                    None => break,
                };
                if oldest.1.timestamp_ms >= cutoff {
                    break;
                }
                log.remove(oldest.0).map_err(Error::internal)?;
                floor = oldest.0;
            }
        }
        Ok(floor)
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

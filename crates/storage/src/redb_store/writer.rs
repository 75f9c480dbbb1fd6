//! The writer thread: takes every queued write, applies the batch in one transaction,
//! commits (in sync mode after its changes are fsynced in the write-ahead log),
//! publishes the changes and answers the writers; sweeps expired keys; trims the
//! change log; makes relaxed-mode commits durable in time, and sync-mode ones in
//! checkpoints that empty the log.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::ReadableTable;
use ripplekv_core::{now_ms, plan, Change, Error, Limits, Mutation, Record, Retention, Revision};
use tokio::sync::oneshot;

use super::codec::{decode, decode_change, encode, encode_change};
use super::wal::Wal;
use super::{
    Durability, Job, Shared, CHANGES, EXPIRY, KV, LOG_FLOOR, MAX_BATCH, META,
    RELAXED_SYNC_INTERVAL, RESERVED, REVISION,
};

/// Most keys expired in one commit, to keep commits short.
const MAX_EXPIRED_PER_COMMIT: usize = 10_000;
/// How often the change log is checked for entries past their age.
const AGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Most expired change-log entries dropped in one commit, to keep commits short.
const MAX_AGE_TRIM: usize = 10_000;
/// Relaxed mode: revisions reserved by one fsynced commit. Larger means fewer extra
/// fsyncs (one per this many revisions) and a longer jump after a crash.
const RESERVATION: Revision = 1 << 20;

/// The tables one write transaction works on, and the changes it committed so far.
pub(super) struct Tables<'txn> {
    pub(super) kv: redb::Table<'txn, &'static str, &'static [u8]>,
    pub(super) expiry: redb::Table<'txn, (u64, &'static str), ()>,
    pub(super) committed: Vec<Change>,
}

impl Tables<'_> {
    /// The stored record, expired or not.
    pub(super) fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        self.kv
            .get(key)
            .map_err(Error::internal)?
            .map(|bytes| decode(bytes.value()))
            .transpose()
    }

    /// Replaces `old` by `new` (or removes the key), keeping the expiry index in step.
    pub(super) fn put(
        &mut self,
        key: &str,
        old: Option<&Record>,
        new: Option<&Record>,
    ) -> Result<(), Error> {
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

/// Applies changes replayed from the write-ahead log (consecutive, above `revision`,
/// the database's durable revision) and commits them durably; returns the revision
/// reached.
pub(super) fn apply_logged(
    db: &redb::Database,
    revision: Revision,
    changes: Vec<Change>,
) -> Result<Revision, Error> {
    let Some(last) = changes.last().map(|change| change.revision) else {
        return Ok(revision);
    };
    let txn = db.begin_write().map_err(Error::internal)?;
    {
        let mut tables = Tables {
            kv: txn.open_table(KV).map_err(Error::internal)?,
            expiry: txn.open_table(EXPIRY).map_err(Error::internal)?,
            committed: Vec::new(),
        };
        let mut log = txn.open_table(CHANGES).map_err(Error::internal)?;
        for change in &changes {
            let old = tables.get(&change.key)?;
            let new = change.stored.as_ref().map(|value| Record {
                value: value.clone(),
                revision: change.revision,
                expires_at_ms: change.expires_at_ms,
            });
            tables.put(&change.key, old.as_ref(), new.as_ref())?;
            log.insert(change.revision, encode_change(change).as_slice())
                .map_err(Error::internal)?;
        }
        let mut meta = txn.open_table(META).map_err(Error::internal)?;
        meta.insert(REVISION, last).map_err(Error::internal)?;
    }
    txn.commit().map_err(Error::internal)?;
    tracing::info!(
        changes = changes.len(),
        from = revision + 1,
        to = last,
        "applied the write-ahead log of a run that did not checkpoint it"
    );
    Ok(last)
}

/// The state of the writer thread.
pub(super) struct Writer {
    shared: Arc<Shared>,
    durability: Durability,
    limits: Limits,
    retention: Retention,
    /// Relaxed mode: when the oldest commit not yet fsynced was made.
    unsynced_since: Option<Instant>,
    /// When the change log was last checked for entries past their age.
    last_age_check: Instant,
    /// Relaxed mode: the highest revision that may be handed out before another
    /// reservation is fsynced (see `RESERVED`).
    reserved: Revision,
    /// The write-ahead log each commit is fsynced in first: there in sync mode only.
    wal: Option<Wal>,
}

impl Writer {
    pub(super) fn new(
        shared: Arc<Shared>,
        durability: Durability,
        limits: Limits,
        retention: Retention,
        wal: Option<Wal>,
    ) -> Self {
        // On open nothing is reserved beyond the revision (`init_tables` saw to it).
        let reserved = shared.revision.load(Ordering::Acquire);
        Writer {
            wal,
            shared,
            durability,
            limits,
            retention,
            unsynced_since: None,
            last_age_check: Instant::now(),
            reserved,
        }
    }

    pub(super) fn run(mut self, queue: &flume::Receiver<Job>) {
        loop {
            let first = match self.sync_due() {
                Some(due) => match queue.recv_deadline(due) {
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
                let _ = reply.send(self.release_reservation().and_then(|()| self.sync()));
                return;
            }
            if self.sync_due().is_some_and(|due| due <= Instant::now()) {
                let _ = self.sync(); // a failure is logged inside
            }
        }
        // Every handle was dropped without Close: still make what was written durable.
        let _ = self.release_reservation().and_then(|()| self.sync());
    }

    /// When the database itself is next due a durable commit: a relaxed-mode commit's
    /// fsync, or a checkpoint of the write-ahead log.
    fn sync_due(&self) -> Option<Instant> {
        let relaxed = self
            .unsynced_since
            .map(|since| since + RELAXED_SYNC_INTERVAL);
        let logged = self.wal.as_ref().and_then(Wal::checkpoint_due);
        relaxed.into_iter().chain(logged).min()
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
                if let Some(record) = stored.filter(|record| record.expires_at_ms == Some(*at)) {
                    tables.kv.remove(key.as_str()).map_err(Error::internal)?;
                    *revision += 1;
                    let change =
                        Change::expire(key, (record.revision, &record.value), *revision, now);
                    tables.committed.push(change);
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
        // Sync mode makes a batch durable in its log; redb's own durable commit is for
        // checkpoints (and for the relaxed mode's reservations, below).
        let checkpoint = self.wal.as_ref().is_some_and(Wal::wants_checkpoint);
        let level = if checkpoint {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        txn.set_durability(level).map_err(Error::internal)?;
        let mut revision = self.shared.revision.load(Ordering::Acquire);
        let mut reserve_to = None;
        let now = now_ms();
        let (result, committed) = {
            let mut tables = Tables {
                kv: txn.open_table(KV).map_err(Error::internal)?,
                expiry: txn.open_table(EXPIRY).map_err(Error::internal)?,
                committed: Vec::new(),
            };
            let result = body(&mut tables, &mut revision, now)?;
            let mut log = txn.open_table(CHANGES).map_err(Error::internal)?;
            let encoded: Vec<Vec<u8>> = tables.committed.iter().map(encode_change).collect();
            for (change, bytes) in tables.committed.iter().zip(&encoded) {
                log.insert(change.revision, bytes.as_slice())
                    .map_err(Error::internal)?;
            }
            if let Some(wal) = &mut self.wal {
                // Durable before the commit makes it visible: no reader, subscriber or
                // writer learns of a change a crash could still take back.
                let revisions = tables.committed.iter().map(|change| change.revision);
                wal.append(revisions.zip(encoded.iter().map(Vec::as_slice)))?;
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
            if self.durability == Durability::Relaxed && revision > self.reserved {
                // These revisions become visible at commit: reserve them durably first.
                reserve_to = Some(revision + RESERVATION);
                meta.insert(RESERVED, revision + RESERVATION)
                    .map_err(Error::internal)?;
            }
            (result, tables.committed)
        };
        if let Some(reserved) = reserve_to {
            txn.set_durability(redb::Durability::Immediate)
                .map_err(Error::internal)?;
            self.reserved = reserved;
        }
        let committing = Instant::now();
        if let Err(err) = txn.commit() {
            if let Some(wal) = &mut self.wal {
                // The batch failed: its record must not be replayed after a restart.
                wal.undo_last()?;
            }
            return Err(Error::internal(err));
        }
        if checkpoint {
            if let Some(wal) = &mut self.wal {
                wal.reset();
            }
        }
        self.shared
            .stats
            .commit_seconds
            .observe(committing.elapsed().as_secs_f64());
        self.shared.revision.store(revision, Ordering::Release);
        self.shared.forget_latest();
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

    /// A clean close gives back the revisions reserved but not handed out, so the next
    /// open knows nothing was lost (the commit fsyncs everything before it too).
    fn release_reservation(&mut self) -> Result<(), Error> {
        let revision = self.shared.revision.load(Ordering::Acquire);
        if self.durability != Durability::Relaxed || self.reserved <= revision {
            return Ok(());
        }
        let txn = self.shared.db.begin_write().map_err(Error::internal)?;
        txn.open_table(META)
            .map_err(Error::internal)?
            .insert(RESERVED, revision)
            .map_err(Error::internal)?;
        txn.commit().map_err(Error::internal)?;
        self.reserved = revision;
        self.unsynced_since = None;
        Ok(())
    }

    /// Makes every earlier commit durable in the database itself (an empty fsynced
    /// commit), emptying the write-ahead log.
    fn sync(&mut self) -> Result<(), Error> {
        let logged = !self.wal.as_ref().is_none_or(Wal::is_empty);
        if self.unsynced_since.take().is_none() && !logged {
            return Ok(());
        }
        let result = self
            .shared
            .db
            .begin_write()
            .map_err(Error::internal)
            .and_then(|txn| txn.commit().map_err(Error::internal))
            .map(|()| {
                if let Some(wal) = &mut self.wal {
                    wal.reset();
                }
            });
        if let Err(err) = &result {
            tracing::error!(error = %err, "periodic fsync failed");
        }
        result
    }
}

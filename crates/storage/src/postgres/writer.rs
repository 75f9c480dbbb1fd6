//! The writer task: takes every queued write (up to [`MAX_BATCH`]), applies the batch
//! in one transaction, commits, publishes the changes and answers the writers; sweeps
//! expired keys; trims the change log.
//!
//! A batch transaction locks the clock row first and holds it to COMMIT, so batches of
//! every node are serialised and revisions are dense, in commit order. The writer plans
//! a batch (`ripplekv_core::plan` on each write: the same semantics as every backend,
//! with the database's clock as "now") on a lock-free snapshot of its rows, and commits
//! it in one call that holds the clock only inside the database; when another node
//! changed one of those rows in between, it plans the batch again under the lock (see
//! `batch`). A head above what this node last committed means someone else committed
//! in between (another node, or this one in a commit whose answer was lost): those
//! changes are read from the log under the lock and published before this batch's, so
//! the node's sequencer gets a gap-free sequence.
//!
//! Any database failure answers the whole batch with 503 (never an acknowledgement for
//! a write that may not have committed) and drops the connection; the next batch
//! connects again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ripplekv_core::{plan, Change, Error, Limits, Mutation, Previous, Record, Retention, Revision};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Config;

use super::batch::{Connection, PlannedBatch};
use super::bus::Delivery;
use super::rows::from_sql;
use super::{Job, Shared, MAX_BATCH};

/// How often the change log is checked for entries past their age.
const AGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Changes read per round trip while catching up with other nodes.
const CATCH_UP_PAGE: i64 = 1000;
/// Most keys expired in one commit, to keep commits short.
const MAX_EXPIRED_PER_COMMIT: i64 = 1000;

type Reply = oneshot::Sender<Result<Change, Error>>;

/// The state of the writer task.
pub(super) struct Writer {
    config: Config,
    connection: Option<Connection>,
    shared: Arc<Shared>,
    limits: Limits,
    retention: Retention,
    /// The head this node last committed or saw under the clock lock.
    known: Revision,
    /// Where committed batches are announced to other nodes (the Redis bus), if anywhere.
    bus: Option<mpsc::Sender<Vec<Change>>>,
    /// The change log's floor as this node last set or read it.
    floor: Revision,
    last_age_check: Instant,
}

/// What one locked transaction produced: changes others committed before it, then its
/// own, all to be published in that order.
struct Committed<T> {
    result: T,
    earlier: Vec<Change>,
    own: Vec<Change>,
}

impl Writer {
    pub(super) fn new(
        config: Config,
        connection: Connection,
        shared: Arc<Shared>,
        (limits, retention): (Limits, Retention),
        floor: Revision,
        bus: Option<mpsc::Sender<Vec<Change>>>,
    ) -> Self {
        let known = shared.revision.load(Ordering::Acquire);
        Writer {
            config,
            connection: Some(connection),
            shared,
            limits,
            retention,
            known,
            bus,
            floor,
            last_age_check: Instant::now(),
        }
    }

    pub(super) async fn run(mut self, jobs: flume::Receiver<Job>) {
        while let Ok(first) = jobs.recv_async().await {
            let mut writes = Vec::new();
            let mut sweeps = Vec::new();
            let mut catch_up = false;
            let mut deliveries = Vec::new();
            let mut close = None;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Write(mutation, reply) => writes.push((mutation, reply)),
                    Job::ExpireDue(reply) => sweeps.push(reply),
                    Job::CatchUp => catch_up = true,
                    Job::Deliver(delivery) => deliveries.push(delivery),
                    Job::Close(reply) => close = Some(reply),
                }
                if close.is_some() || writes.len() >= MAX_BATCH {
                    break;
                }
                next = jobs.try_recv().ok();
            }
            for delivery in deliveries {
                if let Err(err) = self.deliver(delivery).await {
                    tracing::warn!(error = %err, "cannot read other nodes' commits; retrying at the next probe");
                    self.connection = None;
                }
            }
            if catch_up && writes.is_empty() {
                // A batch reads what others committed anyway, under the lock.
                if let Err(err) = self.catch_up().await {
                    tracing::warn!(error = %err, "cannot read other nodes' commits; retrying at the next probe");
                    self.connection = None;
                }
            }
            if !writes.is_empty() {
                self.commit_batch(writes).await;
            }
            if !sweeps.is_empty() {
                let outcome = self.expire_due().await;
                for reply in sweeps {
                    let _ = reply.send(outcome.clone());
                }
            }
            if let Some(reply) = close {
                // Finish every write queued before the close, then stop.
                let mut queued: Vec<_> = jobs
                    .drain()
                    .filter_map(|job| match job {
                        Job::Write(mutation, reply) => Some((mutation, reply)),
                        Job::ExpireDue(_) | Job::CatchUp | Job::Deliver(_) | Job::Close(_) => None,
                    })
                    .collect();
                while !queued.is_empty() {
                    let rest = queued.split_off(queued.len().min(MAX_BATCH));
                    self.commit_batch(queued).await;
                    queued = rest;
                }
                let _ = reply.send(Ok(()));
                return;
            }
        }
    }

    /// The connection, made again (with its statements) after a failure.
    async fn connection(&mut self) -> Result<&mut Connection, Error> {
        if self
            .connection
            .as_ref()
            .is_none_or(|connection| connection.client.is_closed())
        {
            self.connection = Some(Connection::open(&self.config).await?);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| Error::internal("no database connection"))
    }

    /// Applies the batch in one transaction, commits, publishes, then answers.
    async fn commit_batch(&mut self, writes: Vec<(Mutation, Reply)>) {
        let count = writes.len() as u64;
        let (mutations, replies): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
        let committing = Instant::now();
        match self.transact_writes(mutations).await {
            Ok(committed) => {
                let stats = &self.shared.stats;
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.writes.fetch_add(count, Ordering::Relaxed);
                stats.max_batch.fetch_max(count, Ordering::Relaxed);
                stats.batch_sizes.observe(count as f64);
                stats
                    .commit_seconds
                    .observe(committing.elapsed().as_secs_f64());
                self.publish(&committed);
                for (reply, outcome) in replies.into_iter().zip(committed.result) {
                    let _ = reply.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, writes = count, "batch not committed; answered 503");
                self.connection = None;
                for reply in replies {
                    let _ = reply.send(Err(Error::Unavailable));
                }
            }
        }
    }

    /// Publishes to this node's subscribers, then announces this node's own changes
    /// on the bus (never waiting for it).
    fn publish<T>(&mut self, committed: &Committed<T>) {
        self.shared.sink.publish(&committed.earlier);
        self.shared.sink.publish(&committed.own);
        if let (Some(bus), false) = (&self.bus, committed.own.is_empty()) {
            let _ = bus.try_send(committed.own.clone());
        }
    }

    /// A batch another node announced: published as it is when it follows what this
    /// node knows, ignored when already known, and read from the log when it leaves a
    /// gap (an announcement was lost).
    async fn deliver(&mut self, delivery: Delivery) -> Result<(), Error> {
        if delivery.last <= self.known {
            return Ok(());
        }
        match delivery.changes {
            Some(changes) if delivery.first == self.known + 1 => {
                self.advance(delivery.last);
                self.shared.sink.publish(&changes);
                Ok(())
            }
            _ => self.catch_up().await,
        }
    }

    /// Commits the batch the usual way (planned on a snapshot, committed in one call
    /// holding the clock), or the locked way when one of its rows changed in between.
    async fn transact_writes(
        &mut self,
        mutations: Vec<Mutation>,
    ) -> Result<Committed<Vec<Result<Change, Error>>>, Error> {
        let keys = distinct_keys(&mutations);
        let snapshot = self.connection().await?.snapshot(&keys).await?;
        let plan = BatchPlan::new(
            mutations.clone(),
            snapshot.current,
            snapshot.base,
            snapshot.now,
            &self.limits,
        );
        if plan.own.is_empty() {
            // Nothing to commit (every write was refused, by 404, 409…): answered as of
            // the snapshot, once this node has published up to it.
            if snapshot.base > self.known {
                self.catch_up().await?;
            }
            return Ok(Committed {
                result: plan.outcomes,
                earlier: Vec::new(),
                own: Vec::new(),
            });
        }
        let check_age = self.last_age_check.elapsed() >= AGE_CHECK_INTERVAL;
        let seen = keys
            .iter()
            .map(|key| (*key, plan.read.get(*key).map(|record| record.revision)))
            .collect();
        let planned = PlannedBatch {
            base: snapshot.base,
            known: self.known,
            seen,
            rows: plan.rows(),
            changes: &plan.own,
            max_entries: self.retention.max_entries,
            max_age_ms: check_age.then(|| max_age_ms(self.retention)),
        };
        let applied = self.connection().await?.commit_planned(&planned).await?;
        drop(planned);
        let Some(applied) = applied else {
            self.shared.replanned.fetch_add(1, Ordering::Relaxed);
            return self.transact_locked(mutations).await;
        };
        let (shared, lift) = (&self.shared, applied.head - snapshot.base);
        shared.clock_wait.observe(applied.waited_us as f64 / 1e6);
        shared.clock_hold.observe(applied.held_us as f64 / 1e6);
        self.floor = applied.floor;
        if check_age {
            self.last_age_check = Instant::now();
        }
        let (outcomes, own) = plan.renumbered(snapshot.base, lift);
        self.advance(own.last().map_or(applied.head, |change| change.revision));
        Ok(Committed {
            result: outcomes,
            earlier: applied.earlier,
            own,
        })
    }

    /// The locked way: the clock is taken first, the rows read and the batch planned
    /// under it, then written and committed; two round trips holding the clock.
    async fn transact_locked(
        &mut self,
        mutations: Vec<Mutation>,
    ) -> Result<Committed<Vec<Result<Change, Error>>>, Error> {
        let limits = self.limits;
        let (known, floor, retention) = (self.known, self.floor, self.retention);
        let check_age = self.last_age_check.elapsed() >= AGE_CHECK_INTERVAL;
        let keys = distinct_keys(&mutations);
        let age_check = check_age.then(|| (floor, max_age_ms(retention)));
        let shared = Arc::clone(&self.shared);
        let connection = self.connection().await?;
        let asked = Instant::now();
        let locked = connection.begin(known, &keys, age_check).await?;
        let taken = Instant::now();
        shared.clock_wait.observe((taken - asked).as_secs_f64());
        let (head, now) = (locked.head, locked.now);
        drop(keys);
        let plan = BatchPlan::new(mutations, locked.current, head, now, &limits);
        let revision = plan.own.last().map_or(head, |change| change.revision);
        let mut new_floor = floor;
        if plan.own.is_empty() {
            connection.rollback().await?;
        } else {
            // Every entry before the first young one is old (with none young, every
            // entry before this batch's); beyond the count, the oldest go too.
            let by_age = age_check.map(|_| locked.first_young.map_or(head, |young| young - 1));
            new_floor = floor
                .max(revision.saturating_sub(retention.max_entries))
                .max(by_age.unwrap_or(0));
            let trim = (new_floor > floor).then_some((floor, new_floor));
            connection
                .commit(&plan.rows(), &plan.own, revision, trim)
                .await?;
        }
        shared.clock_hold.observe(taken.elapsed().as_secs_f64());
        self.floor = new_floor;
        if check_age {
            self.last_age_check = Instant::now();
        }
        self.advance(revision);
        Ok(Committed {
            result: plan.outcomes,
            earlier: locked.earlier,
            own: plan.own,
        })
    }

    /// Removes records whose TTL ran out, committing an `expire` change for each.
    async fn expire_due(&mut self) -> Result<usize, Error> {
        match self.transact_expiry().await {
            Ok(committed) => {
                self.publish(&committed);
                Ok(committed.result)
            }
            Err(err) => {
                tracing::error!(error = %err, "expiry sweep failed");
                self.connection = None;
                Err(Error::Unavailable)
            }
        }
    }

    async fn transact_expiry(&mut self) -> Result<Committed<usize>, Error> {
        let known = self.known;
        let connection = self.connection().await?;
        let locked = connection.begin(known, &[], None).await?;
        let (head, now) = (locked.head, locked.now);
        let mut due = connection.take_due(now, MAX_EXPIRED_PER_COMMIT).await?;
        // Expire in the order they were due, as the embedded store does.
        due.sort();
        let mut revision = head;
        let own: Vec<Change> = due
            .iter()
            .map(|(_, key, previous, value)| {
                revision += 1;
                Change::expire(key, (from_sql(*previous), value), revision, now)
            })
            .collect();
        if own.is_empty() {
            connection.rollback().await?;
        } else {
            connection.commit(&[], &own, revision, None).await?;
        }
        self.advance(revision);
        Ok(Committed {
            result: own.len(),
            earlier: locked.earlier,
            own,
        })
    }

    /// Publishes what others committed above the known head, a page at a time. The
    /// clock's lock makes commits visible in revision order, so what is read has no
    /// hole.
    async fn catch_up(&mut self) -> Result<(), Error> {
        loop {
            let known = self.known;
            let changes = self
                .connection()
                .await?
                .changes_after(known, CATCH_UP_PAGE)
                .await?;
            let Some(last) = changes.last().map(|change| change.revision) else {
                return Ok(());
            };
            self.advance(last);
            self.shared.sink.publish(&changes);
            if (changes.len() as i64) < CATCH_UP_PAGE {
                return Ok(());
            }
        }
    }

    fn advance(&mut self, revision: Revision) {
        self.known = self.known.max(revision);
        self.shared.revision.fetch_max(self.known, Ordering::AcqRel);
        let retained = self.known.saturating_sub(self.floor);
        self.shared
            .stats
            .log_entries
            .store(retained, Ordering::Relaxed);
    }
}

/// The retention's age limit in milliseconds.
fn max_age_ms(retention: Retention) -> u64 {
    u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX)
}

/// The batch's keys, each once.
fn distinct_keys(mutations: &[Mutation]) -> Vec<&str> {
    mutations
        .iter()
        .map(|mutation| mutation.key.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// A batch planned on rows read at `base`: each write run through
/// `ripplekv_core::plan` in queue order, its changes numbered from `base + 1`.
struct BatchPlan {
    /// Each write's answer, in queue order.
    outcomes: Vec<Result<Change, Error>>,
    /// The changes to commit, in order.
    own: Vec<Change>,
    /// The rows as read.
    read: HashMap<String, Record>,
    /// Each written key's new record (`None`: removed), in the order first written.
    written: Vec<(String, Option<Record>)>,
}

impl BatchPlan {
    fn new(
        mutations: Vec<Mutation>,
        read: HashMap<String, Record>,
        base: Revision,
        now: u64,
        limits: &Limits,
    ) -> Self {
        let mut current: HashMap<String, Option<Record>> = HashMap::new();
        let mut revision = base;
        let mut outcomes = Vec::with_capacity(mutations.len());
        let mut own = Vec::new();
        let mut order = Vec::new();
        for mutation in mutations {
            let key = mutation.key.clone();
            let stored = match current.get(&key) {
                Some(written) => written.as_ref(),
                None => read.get(&key),
            };
            match plan(mutation, stored, limits, revision + 1, now) {
                Ok(planned) => {
                    revision = planned.revision();
                    own.extend(planned.changes().cloned());
                    if !current.contains_key(&key) {
                        order.push(key.clone());
                    }
                    current.insert(key, planned.record);
                    outcomes.push(Ok(planned.change));
                }
                // Per-write failures (404, 409, bad ATOMIC) are answers, not aborts.
                Err(err) => outcomes.push(Err(err)),
            }
        }
        let written = order
            .into_iter()
            .map(|key| {
                let record = current.remove(&key).flatten();
                (key, record)
            })
            .collect();
        BatchPlan {
            outcomes,
            own,
            read,
            written,
        }
    }

    /// The rows to write: each written key with its new record, or `None` to delete.
    fn rows(&self) -> Vec<(&str, Option<&Record>)> {
        self.written
            .iter()
            .map(|(key, record)| (key.as_str(), record.as_ref()))
            .collect()
    }

    /// The answers and changes with every revision above `base` (the plan's own)
    /// moved up by `lift`, as the database numbered them.
    fn renumbered(
        self,
        base: Revision,
        lift: Revision,
    ) -> (Vec<Result<Change, Error>>, Vec<Change>) {
        let lifted = |revision: Revision| {
            if revision > base {
                revision + lift
            } else {
                revision
            }
        };
        let change = |mut change: Change| {
            change.revision = lifted(change.revision);
            if let Previous::At(previous) = change.previous {
                change.previous = Previous::At(lifted(previous));
            }
            change
        };
        let outcomes = self
            .outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok(answer) => Ok(change(answer)),
                Err(Error::Conflict { current }) => Err(Error::Conflict {
                    current: lifted(current),
                }),
                Err(err) => Err(err),
            })
            .collect();
        (outcomes, self.own.into_iter().map(change).collect())
    }
}

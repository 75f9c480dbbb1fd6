//! The PostgreSQL store: any number of RippleKV nodes share one database.
//!
//! Data lives in the `ripplekv` schema (see `schema`): `kv` (key → value, revision,
//! expiry), `changes` (the change log, one row per revision), `clock` (the store-wide
//! revision, one row) and `meta`. Each node has one writer task with its own
//! connection, which group-commits every queued write in one transaction under the
//! clock row's lock (see `writer`): revisions are dense and commit-ordered across all
//! nodes, and a write is acknowledged only after its transaction committed (with
//! PostgreSQL's `synchronous_commit`, after the WAL was flushed). Reads go through a
//! small pool and never take the lock. TTLs follow the database's clock.
//!
//! The node's writer is its only publisher: of its own commits, of others' commits it
//! finds under the lock, of others' commits it reads when its feed (see `feed`) says
//! there are some (on `LISTEN/NOTIFY`, and every second whatever happens), and, with a
//! Redis bus (see `bus`), of the batches other nodes announce there. So the node's sink
//! gets every change of every node once, in revision order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use ripplekv_core::{
    Change, ChangeSink, ChangesSince, Error, Limits, Mutation, PendingWrite, RangePage, Record,
    Retention, Revision, SinkSlot, Snapshot, Store,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::{Config, NoTls};

use crate::jobs;
use crate::stats::WriterStats;
use db::{cluster_id, connect, db_error};
use ripplekv_core::metrics::{Histogram, LATENCY_SECONDS};
use rows::{from_sql, sql_int, CHANGES_AFTER};
use writer::Writer;

mod batch;
mod bus;
mod db;
mod feed;
mod rows;
mod schema;
mod snapshot;
mod writer;

/// Most writes committed in one transaction; bounds the time the clock is held.
pub(crate) const MAX_BATCH: usize = 256;
/// Writes that may wait for the writer before submitters are made to wait.
const QUEUE_CAPACITY: usize = 8192;
/// Connections for reads (the writer has its own).
const READ_POOL_SIZE: usize = 8;

/// Live records only, by the database's clock.
const LIVE: &str = "(expires_at_ms IS NULL OR expires_at_ms > ripplekv.now_ms())";

/// How a node uses its database.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Key and value limits.
    pub limits: Limits,
    /// How much of the change log `since` replays can use.
    pub retention: Retention,
    /// A Redis URL (`redis://HOST:PORT`): nodes then learn of each other's commits
    /// through Redis pub/sub instead of `LISTEN/NOTIFY` (see `bus`).
    pub bus: Option<String>,
}

/// The store over one PostgreSQL database. See the module documentation.
#[derive(Debug)]
pub struct PostgresStore {
    shared: Arc<Shared>,
    jobs: flume::Sender<Job>,
    pool: Pool,
    config: Config,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Tells the writer of other nodes' commits (see `feed`).
    feed: JoinHandle<()>,
    /// The Redis bus's counters, when there is one.
    bus: Option<Arc<bus::BusStats>>,
}

#[derive(Debug)]
struct Shared {
    revision: AtomicU64,
    stats: WriterStats,
    /// How long batches waited for the clock row, and held it (lock to commit).
    clock_wait: Histogram,
    clock_hold: Histogram,
    /// Batches whose rows changed between their snapshot and their commit, committed
    /// again the locked way.
    replanned: AtomicU64,
    sink: SinkSlot,
}

enum Job {
    Write(Mutation, oneshot::Sender<Result<Change, Error>>),
    ExpireDue(oneshot::Sender<Result<usize, Error>>),
    /// Publish what other nodes committed since this node last looked (from the feed).
    CatchUp,
    /// A batch another node announced on the Redis bus.
    Deliver(bus::Delivery),
    Close(oneshot::Sender<Result<(), Error>>),
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), creates or
    /// migrates the schema, and starts the writer, with the default retention.
    pub async fn connect(url: &str, limits: Limits) -> Result<Self, Error> {
        let options = PostgresOptions {
            limits,
            ..PostgresOptions::default()
        };
        Self::open(url, options).await
    }

    /// [`PostgresStore::connect`] with every option.
    pub async fn open(url: &str, options: PostgresOptions) -> Result<Self, Error> {
        let PostgresOptions {
            limits,
            retention,
            bus,
        } = options;
        let config: Config = url
            .parse()
            .map_err(|err| Error::Invalid(format!("Invalid PostgreSQL URL: {err}")))?;
        let client = connect(&config).await?;
        schema::migrate(&client).await?;
        let row = client
            .query_one(
                "SELECT (SELECT revision FROM ripplekv.clock), \
                 (SELECT log_floor FROM ripplekv.meta)",
                &[],
            )
            .await
            .map_err(db_error)?;
        let (revision, floor) = (from_sql(row.get(0)), from_sql(row.get(1)));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(READ_POOL_SIZE)
            .build()
            .map_err(Error::internal)?;
        let shared = Arc::new(Shared {
            revision: AtomicU64::new(revision),
            stats: WriterStats::default(),
            clock_wait: Histogram::new(LATENCY_SECONDS),
            clock_hold: Histogram::new(LATENCY_SECONDS),
            replanned: AtomicU64::new(0),
            sink: SinkSlot::default(),
        });
        let bus = match bus {
            None => None,
            Some(url) => Some(bus::Bus::new(&url, &cluster_id(&client).await?)?),
        };
        let (jobs, queue) = flume::bounded(QUEUE_CAPACITY);
        let writer = Writer::new(
            config.clone(),
            batch::Connection::prepare(client).await?,
            Arc::clone(&shared),
            (limits, retention),
            floor,
            bus.as_ref().map(bus::Bus::start_publisher),
        );
        let writer = tokio::spawn(writer.run(queue));
        let bus_stats = bus.as_ref().map(|bus| Arc::clone(&bus.stats));
        let feed = tokio::spawn(feed::run(config.clone(), jobs.clone(), bus));
        Ok(PostgresStore {
            shared,
            jobs,
            pool,
            config,
            writer: Mutex::new(Some(writer)),
            feed,
            bus: bus_stats,
        })
    }

    /// The secret `name` every node on this database shares: the stored one, or
    /// `candidate`, stored now if no node stored one first. True when it was stored now.
    pub async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<(String, bool), Error> {
        let client = self.reader().await?;
        let inserted = client
            .query_opt(
                "INSERT INTO ripplekv.secrets (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING RETURNING value",
                &[&name, &candidate],
            )
            .await
            .map_err(db_error)?;
        if let Some(row) = inserted {
            return Ok((row.get(0), true));
        }
        let row = client
            .query_one(
                "SELECT value FROM ripplekv.secrets WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(db_error)?;
        Ok((row.get(0), false))
    }

    async fn reader(&self) -> Result<Object, Error> {
        self.pool.get().await.map_err(|err| {
            tracing::warn!(error = %err, "no database connection for a read");
            Error::Unavailable
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The writer stops once its queue is gone; the feed would run on.
        self.feed.abort();
    }
}

/// A RANGE bound as SQL can hold it. Keys never contain U+0000, so a bound with one
/// cuts there: a start `K\0…` means "after K" (every longer key starting with K sorts
/// after it), an end `K\0…` means "up to K".
fn cut_at_nul(bound: &str) -> (&str, bool) {
    match bound.find('\0') {
        Some(at) => (&bound[..at], true),
        None => (bound, false),
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        let client = self.reader().await?;
        let sql = format!(
            "SELECT value, revision, expires_at_ms FROM ripplekv.kv WHERE key = $1 AND {LIVE}"
        );
        let statement = client.prepare_cached(&sql).await.map_err(db_error)?;
        let row = client
            .query_opt(&statement, &[&key])
            .await
            .map_err(db_error)?;
        row.map(|row| rows::record(&row, 0)).transpose()
    }

    async fn range(&self, start: &str, end: &str, limit: usize) -> Result<RangePage, Error> {
        if start > end {
            return Ok(RangePage::default());
        }
        let ((start, after), (end, _)) = (cut_at_nul(start), cut_at_nul(end));
        let from = if after { ">" } else { ">=" };
        let sql = format!(
            "SELECT key, value, revision, expires_at_ms FROM ripplekv.kv \
             WHERE key {from} $1 AND key <= $2 AND {LIVE} ORDER BY key LIMIT $3"
        );
        let client = self.reader().await?;
        let statement = client.prepare_cached(&sql).await.map_err(db_error)?;
        let fetch = sql_int(limit as u64 + 1);
        let rows = client
            .query(&statement, &[&start, &end, &fetch])
            .await
            .map_err(db_error)?;
        let mut records = rows
            .iter()
            .map(|row| Ok((row.get(0), rows::record(row, 1)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let truncated = records.len() > limit;
        records.truncate(limit);
        Ok(RangePage { records, truncated })
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn bus(&self) -> Option<&'static str> {
        Some(if self.bus.is_some() {
            "redis"
        } else {
            "notify"
        })
    }

    async fn ping(&self) -> Result<(), Error> {
        let client = self.reader().await?;
        client.simple_query("SELECT 1").await.map_err(db_error)?;
        Ok(())
    }

    async fn submit(&self, mutation: Mutation) -> Result<PendingWrite, Error> {
        let answer = jobs::queue(&self.jobs, |reply| Job::Write(mutation, reply)).await?;
        Ok(PendingWrite::later(jobs::answer(answer)))
    }

    async fn expire_due(&self) -> Result<usize, Error> {
        // Peek first, so an idle store never takes the clock just to sweep.
        let client = self.reader().await?;
        let sql =
            "SELECT EXISTS (SELECT 1 FROM ripplekv.kv WHERE expires_at_ms <= ripplekv.now_ms())";
        let statement = client.prepare_cached(sql).await.map_err(db_error)?;
        let due: bool = client
            .query_one(&statement, &[])
            .await
            .map_err(db_error)?
            .get(0);
        drop(client);
        if !due {
            return Ok(0);
        }
        jobs::answer(jobs::queue(&self.jobs, Job::ExpireDue).await?).await
    }

    async fn changes_since(&self, after: Revision, limit: usize) -> Result<ChangesSince, Error> {
        let mut client = self.reader().await?;
        // One snapshot for the floor and the rows, so they always agree.
        let txn = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_error)?;
        let floor: i64 = txn
            .query_one("SELECT log_floor FROM ripplekv.meta", &[])
            .await
            .map_err(db_error)?
            .get(0);
        let floor = from_sql(floor);
        if after < floor {
            return Ok(ChangesSince::TooOld { floor });
        }

        let rows = txn
            .query(CHANGES_AFTER, &[&sql_int(after), &sql_int(limit as u64)])
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        let changes = rows.iter().map(rows::change).collect::<Result<_, _>>()?;
        Ok(ChangesSince::Changes(changes))
    }

    fn revision(&self) -> Revision {
        self.shared.revision.load(Ordering::Acquire)
    }

    async fn committed_revision(&self) -> Result<Revision, Error> {
        let client = self.reader().await?;
        // Read without the clock's lock: the head as of the last commit.
        let row = client
            .query_one("SELECT revision FROM ripplekv.clock", &[])
            .await
            .map_err(db_error)?;
        Ok(from_sql(row.get(0)))
    }

    async fn scan(&self, prefix: &str) -> Result<Snapshot, Error> {
        snapshot::open(&self.config, prefix).await
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
            let _ = writer.await;
        }
        self.feed.abort();
        let stats = &self.shared.stats;
        tracing::info!(
            commits = stats.commits.load(Ordering::Relaxed),
            writes = stats.writes.load(Ordering::Relaxed),
            revision = self.revision(),
            "store closed"
        );
        result
    }

    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        self.shared.sink.set(sink);
    }

    fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        self.shared.stats.render(out);
        out.push_str("# HELP ripplekv_store_clock_wait_seconds Time a batch waited for the clock row's lock.\n# TYPE ripplekv_store_clock_wait_seconds histogram\n");
        self.shared
            .clock_wait
            .render(out, "ripplekv_store_clock_wait_seconds", "");
        out.push_str("# HELP ripplekv_store_clock_hold_seconds Time a batch held the clock row: until its commit call returned inside the database (the usual way; the WAL flush after it not included), or from the lock to the commit (the locked way).\n# TYPE ripplekv_store_clock_hold_seconds histogram\n");
        self.shared
            .clock_hold
            .render(out, "ripplekv_store_clock_hold_seconds", "");
        let replanned = self.shared.replanned.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP ripplekv_store_batches_replanned_total Batches whose rows another node changed between their snapshot and their commit, committed again under the clock's lock.\n# TYPE ripplekv_store_batches_replanned_total counter\nripplekv_store_batches_replanned_total {replanned}");
        if let Some(bus) = &self.bus {
            bus.render(out);
        }
    }
}

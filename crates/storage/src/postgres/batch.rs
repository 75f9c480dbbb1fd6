//! A write batch's round trips with the database. The usual way takes one round trip
//! before the clock row is locked and one under it:
//!
//! 1. [`Connection::snapshot`]: the clock and the batch's rows, read together (one
//!    statement, one snapshot), without any lock. The writer plans every write on
//!    them, numbering its changes above the snapshot's clock.
//! 2. [`Connection::commit_planned`]: one call of `ripplekv.commit_batch` (see
//!    `schema`), which locks the clock, checks that none of the batch's rows changed
//!    since the snapshot, renumbers the changes to follow the head it finds, writes
//!    everything, trims the log and commits, all inside the database. The clock row is
//!    held for that call only, not for any network round trip.
//!
//! When a row did change (another node wrote one of the batch's keys in between), the
//! call changes nothing and the writer takes the locked way: [`Connection::begin`]
//! locks the clock and reads the rows, the writer plans under the lock, and
//! [`Connection::commit`] writes and commits, two round trips with the row held. That
//! way always succeeds, so a hot key cannot starve a batch; expiry sweeps take it too.
//!
//! On the locked way any failing statement aborts the transaction, so its `COMMIT`
//! rolls back; the first error is returned, and the writer then drops the connection
//! (whose pipeline may still hold answers) and answers the batch with 503.

use std::collections::HashMap;

use futures_util::future::{try_join, try_join5};
use ripplekv_core::{Change, Error, Record, Revision};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::db::{connect, db_error};
use super::rows::{self, from_sql, sql_int, ChangeColumns, RowColumns, CHANGES_AFTER};

/// The writer's connection and the statements prepared on it.
pub(super) struct Connection {
    pub(super) client: Client,
    statements: Statements,
}

struct Statements {
    lock_clock: Statement,
    log_after: Statement,
    rows: Statement,
    first_young: Statement,
    upsert: Statement,
    delete: Statement,
    append: Statement,
    set_clock: Statement,
    notify: Statement,
    trim: Statement,
    set_floor: Statement,
    take_due: Statement,
    snapshot: Statement,
    commit_batch: Statement,
}

/// The SQLSTATE `ripplekv.commit_batch` fails with when the batch's rows changed.
const ROWS_CHANGED: &str = "RK001";

impl Connection {
    pub(super) async fn open(config: &tokio_postgres::Config) -> Result<Self, Error> {
        Self::prepare(connect(config).await?).await
    }

    pub(super) async fn prepare(client: Client) -> Result<Self, Error> {
        let sql = [
            "SELECT revision, ripplekv.now_ms() FROM ripplekv.clock FOR UPDATE",
            CHANGES_AFTER,
            "SELECT key, value, revision, expires_at_ms FROM ripplekv.kv WHERE key = ANY($1)",
            "SELECT revision FROM ripplekv.changes \
             WHERE revision > $1 AND at_ms >= ripplekv.now_ms() - $2 ORDER BY revision LIMIT 1",
            "INSERT INTO ripplekv.kv (key, value, revision, expires_at_ms) \
             SELECT * FROM unnest($1::text[], $2::bytea[], $3::int8[], $4::int8[]) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
             revision = EXCLUDED.revision, expires_at_ms = EXCLUDED.expires_at_ms",
            "DELETE FROM ripplekv.kv WHERE key = ANY($1)",
            "INSERT INTO ripplekv.changes (revision, key, op, value, previous, stored, \
             expires_at_ms, at_ms, removed) SELECT * FROM unnest($1::int8[], $2::text[], \
             $3::int2[], $4::bytea[], $5::int8[], $6::bytea[], $7::int8[], $8::int8[], \
             $9::bytea[])",
            "UPDATE ripplekv.clock SET revision = $1",
            "SELECT pg_notify('ripplekv_changes', $1)",
            "DELETE FROM ripplekv.changes WHERE revision > $1 AND revision <= $2",
            "UPDATE ripplekv.meta SET log_floor = GREATEST(log_floor, $1)",
            "DELETE FROM ripplekv.kv WHERE key IN (SELECT key FROM ripplekv.kv \
             WHERE expires_at_ms <= $1 ORDER BY expires_at_ms LIMIT $2) \
             RETURNING expires_at_ms, key, revision, value",
            "SELECT c.revision, ripplekv.now_ms(), k.key, k.value, k.revision, k.expires_at_ms \
             FROM ripplekv.clock c LEFT JOIN ripplekv.kv k ON k.key = ANY($1)",
            "SELECT * FROM ripplekv.commit_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        ];
        let mut prepared = Vec::with_capacity(sql.len());
        for text in sql {
            prepared.push(client.prepare(text).await.map_err(db_error)?);
        }
        let mut prepared = prepared.into_iter();
        let mut next = || {
            prepared
                .next()
                .ok_or_else(|| Error::internal("a statement is missing"))
        };
        let statements = Statements {
            lock_clock: next()?,
            log_after: next()?,
            rows: next()?,
            first_young: next()?,
            upsert: next()?,
            delete: next()?,
            append: next()?,
            set_clock: next()?,
            notify: next()?,
            trim: next()?,
            set_floor: next()?,
            take_due: next()?,
            snapshot: next()?,
            commit_batch: next()?,
        };
        Ok(Connection { client, statements })
    }

    /// The clock, the database's time and the batch's rows (expired or not), read in
    /// one snapshot, without a lock.
    pub(super) async fn snapshot(&self, keys: &[&str]) -> Result<Snapshot, Error> {
        let rows = self
            .client
            .query(&self.statements.snapshot, &[&keys])
            .await
            .map_err(db_error)?;
        let first = rows
            .first()
            .ok_or_else(|| Error::internal("the clock row is missing"))?;
        let mut current = HashMap::with_capacity(rows.len());
        for row in &rows {
            if let Some(key) = row.get::<_, Option<String>>(2) {
                current.insert(key, rows::record(row, 3)?);
            }
        }
        Ok(Snapshot {
            base: from_sql(first.get(0)),
            now: from_sql(first.get(1)),
            current,
        })
    }

    /// Commits a batch planned on `plan.snapshot` in one call (see the module
    /// documentation); `None`, with nothing changed, when one of `plan.seen` changed
    /// since.
    pub(super) async fn commit_planned(
        &self,
        plan: &PlannedBatch<'_>,
    ) -> Result<Option<Applied>, Error> {
        let seen_keys: Vec<&str> = plan.seen.iter().map(|(key, _)| *key).collect();
        let seen_revisions: Vec<Option<i64>> = plan
            .seen
            .iter()
            .map(|(_, revision)| revision.map(sql_int))
            .collect();
        let row_columns = RowColumns::new(&plan.rows);
        let columns = ChangeColumns::new(plan.changes);
        let (base, known) = (sql_int(plan.base), sql_int(plan.known));
        let max_entries = sql_int(plan.max_entries);
        let max_age = plan.max_age_ms.map(sql_int);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &base,
            &known,
            &max_entries,
            &max_age,
            &seen_keys,
            &seen_revisions,
        ];
        params.extend(row_columns.upsert_params());
        params.push(&row_columns.deleted);
        params.extend(columns.params());
        let rows = match self
            .client
            .query(&self.statements.commit_batch, &params)
            .await
        {
            Ok(rows) => rows,
            Err(err) if err.code() == Some(&SqlState::from_code(ROWS_CHANGED)) => return Ok(None),
            Err(err) => return Err(db_error(err)),
        };
        let (last, earlier) = rows
            .split_last()
            .ok_or_else(|| Error::internal("commit_batch returned nothing"))?;
        Ok(Some(Applied {
            head: from_sql(last.get(0)),
            floor: from_sql(last.get(4)),
            waited_us: from_sql(last.get(6)),
            held_us: from_sql(last.get(7)),
            earlier: earlier.iter().map(rows::change).collect::<Result<_, _>>()?,
        }))
    }

    /// Round trip 1: begins, locks the clock, and reads what the batch needs.
    pub(super) async fn begin(
        &self,
        known: Revision,
        keys: &[&str],
        // The floor, and the longest an entry is kept in milliseconds, when due.
        age_check: Option<(Revision, u64)>,
    ) -> Result<Locked, Error> {
        let (client, statements) = (&self.client, &self.statements);
        let begin = client.batch_execute("BEGIN");
        let lock = client.query_one(&statements.lock_clock, &[]);
        let known_param = sql_int(known);
        let log_params: [&(dyn ToSql + Sync); 2] = [&known_param, &i64::MAX];
        let row_params: [&(dyn ToSql + Sync); 1] = [&keys];
        let log = client.query(&statements.log_after, &log_params);
        let rows = client.query(&statements.rows, &row_params);
        let young = async {
            match age_check {
                Some((floor, max_age)) => {
                    let (floor, max_age) = (sql_int(floor), sql_int(max_age));
                    let row = client
                        .query_opt(&statements.first_young, &[&floor, &max_age])
                        .await?;
                    Ok(row.map(|row| from_sql(row.get(0))))
                }
                None => Ok(None),
            }
        };
        let ((), clock, log, rows, first_young) = try_join5(begin, lock, log, rows, young)
            .await
            .map_err(db_error)?;
        let mut current = HashMap::with_capacity(rows.len());
        for row in &rows {
            current.insert(row.get(0), rows::record(row, 1)?);
        }
        Ok(Locked {
            head: from_sql(clock.get(0)),
            now: from_sql(clock.get(1)),
            earlier: log.iter().map(rows::change).collect::<Result<_, _>>()?,
            current,
            first_young,
        })
    }

    /// Round trip 2: writes the batch's rows and changes, moves the clock to `head`,
    /// trims the log to `trim` (old floor, new floor) when given, and commits.
    pub(super) async fn commit(
        &self,
        rows: &[(&str, Option<&Record>)],
        changes: &[Change],
        head: Revision,
        trim: Option<(Revision, Revision)>,
    ) -> Result<(), Error> {
        let (client, statements) = (&self.client, &self.statements);
        let row_columns = RowColumns::new(rows);
        let columns = ChangeColumns::new(changes);
        let first = changes.first().map_or(head, |change| change.revision);
        let hint = format!("{first}-{head}");
        let head = sql_int(head);
        let upsert_params = row_columns.upsert_params();
        let append_params = columns.params();
        let upsert = client.execute(&statements.upsert, &upsert_params);
        let delete_params: [&(dyn ToSql + Sync); 1] = [&row_columns.deleted];
        let clock_params: [&(dyn ToSql + Sync); 1] = [&head];
        let hint_params: [&(dyn ToSql + Sync); 1] = [&hint];
        let delete = client.execute(&statements.delete, &delete_params);
        let append = client.execute(&statements.append, &append_params);
        let clock = client.execute(&statements.set_clock, &clock_params);
        // A wake-up hint for other nodes; the log above is what they read.
        let notify = client.execute(&statements.notify, &hint_params);
        let trimmed = async {
            if let Some((old, new)) = trim {
                let (old, new) = (sql_int(old), sql_int(new));
                let trim_params: [&(dyn ToSql + Sync); 2] = [&old, &new];
                let floor_params: [&(dyn ToSql + Sync); 1] = [&new];
                let entries = client.execute(&statements.trim, &trim_params);
                let floor = client.execute(&statements.set_floor, &floor_params);
                try_join(entries, floor).await?;
            }
            Ok(())
        };
        let commit = client.batch_execute("COMMIT");
        // Polled in this order, so sent in this order, in one round trip.
        try_join(
            try_join5(upsert, delete, append, clock, notify),
            try_join(trimmed, commit),
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Up to `limit` changes above `after` from the log, oldest first (outside any
    /// batch: the clock's lock makes commits visible in revision order, so there is no
    /// hole in what is read).
    pub(super) async fn changes_after(
        &self,
        after: Revision,
        limit: i64,
    ) -> Result<Vec<Change>, Error> {
        let after = sql_int(after);
        let rows = self
            .client
            .query(&self.statements.log_after, &[&after, &limit])
            .await
            .map_err(db_error)?;
        rows.iter().map(rows::change).collect()
    }

    /// Removes up to `limit` records whose TTL ran out by `now`, inside the batch's
    /// transaction: their (expiry, key, last revision, value), in no particular order.
    pub(super) async fn take_due(
        &self,
        now: u64,
        limit: i64,
    ) -> Result<Vec<(i64, String, i64, String)>, Error> {
        let now = sql_int(now);
        let rows = self
            .client
            .query(&self.statements.take_due, &[&now, &limit])
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let value = String::from_utf8(row.get(3))
                    .map_err(|_| Error::internal("a stored value is not UTF-8"))?;
                Ok((row.get(0), row.get(1), row.get(2), value))
            })
            .collect()
    }

    /// Ends a transaction that changed nothing.
    pub(super) async fn rollback(&self) -> Result<(), Error> {
        self.client
            .batch_execute("ROLLBACK")
            .await
            .map_err(db_error)
    }
}

/// What round trip 1 read, under the clock's lock.
pub(super) struct Locked {
    pub(super) head: Revision,
    pub(super) now: u64,
    /// Changes others committed above what this node knew, in order.
    pub(super) earlier: Vec<Change>,
    /// The batch's keys that exist (expired or not), with their records.
    pub(super) current: HashMap<String, Record>,
    /// The change log's first entry young enough to keep, when asked.
    pub(super) first_young: Option<Revision>,
}

/// What [`Connection::snapshot`] read.
pub(super) struct Snapshot {
    /// The clock in the snapshot: every row read has a revision at or below it.
    pub(super) base: Revision,
    pub(super) now: u64,
    /// The batch's keys that exist (expired or not), with their records.
    pub(super) current: HashMap<String, Record>,
}

/// A batch planned on a [`Snapshot`], for [`Connection::commit_planned`].
pub(super) struct PlannedBatch<'a> {
    /// The snapshot's clock; the changes' revisions follow it.
    pub(super) base: Revision,
    /// The head this node knows: the changes above it are returned.
    pub(super) known: Revision,
    /// Every key the plan read, with the revision it had (`None`: absent).
    pub(super) seen: Vec<(&'a str, Option<Revision>)>,
    pub(super) rows: Vec<(&'a str, Option<&'a Record>)>,
    pub(super) changes: &'a [Change],
    /// The retention: at most this many entries; no entry older than this, when due.
    pub(super) max_entries: u64,
    pub(super) max_age_ms: Option<u64>,
}

/// What [`Connection::commit_planned`] committed after.
pub(super) struct Applied {
    /// The head the batch followed: its changes are the planned ones moved up by
    /// `head - base`.
    pub(super) head: Revision,
    /// The change log's floor after the commit.
    pub(super) floor: Revision,
    pub(super) waited_us: u64,
    pub(super) held_us: u64,
    /// Changes others committed in (known, head], in order.
    pub(super) earlier: Vec<Change>,
}

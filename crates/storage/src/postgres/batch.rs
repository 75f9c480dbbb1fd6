//! One write batch in two pipelined round trips, so the clock row is held as briefly as
//! the network allows:
//!
//! 1. `BEGIN`; lock the clock row (the head and the database's time); read the log above
//!    what this node knows (others' commits); read the batch's rows; and, when due,
//!    find the change log's first entry young enough to keep. Each statement runs after
//!    the lock is taken, so each sees every commit before it and none after.
//! 2. (the writer plans every write in between) upsert and delete the rows, append the
//!    changes, move the clock, notify, trim the log when due, and `COMMIT`.
//!
//! Any failing statement aborts the transaction, so its `COMMIT` rolls back; the first
//! error is returned, and the writer then drops the connection (whose pipeline may
//! still hold answers) and answers the batch with 503.

use std::collections::HashMap;

use futures_util::future::{try_join, try_join5};
use ripplekv_core::{Change, Error, Record, Revision};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::db::{connect, db_error};
use super::rows::{self, from_sql, sql_int, ChangeColumns, CHANGES_AFTER};

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
}

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
             expires_at_ms, at_ms) SELECT * FROM unnest($1::int8[], $2::text[], $3::int2[], \
             $4::bytea[], $5::int8[], $6::bytea[], $7::int8[], $8::int8[])",
            "UPDATE ripplekv.clock SET revision = $1",
            "SELECT pg_notify('ripplekv_changes', $1)",
            "DELETE FROM ripplekv.changes WHERE revision > $1 AND revision <= $2",
            "UPDATE ripplekv.meta SET log_floor = GREATEST(log_floor, $1)",
            "DELETE FROM ripplekv.kv WHERE key IN (SELECT key FROM ripplekv.kv \
             WHERE expires_at_ms <= $1 ORDER BY expires_at_ms LIMIT $2) \
             RETURNING expires_at_ms, key, revision",
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
        };
        Ok(Connection { client, statements })
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
        let (mut keys, mut values, mut revisions, mut expiries) = (vec![], vec![], vec![], vec![]);
        let mut deleted = vec![];
        for (key, record) in rows {
            match record {
                Some(record) => {
                    keys.push(*key);
                    values.push(record.value.as_bytes());
                    revisions.push(sql_int(record.revision));
                    expiries.push(record.expires_at_ms.map(sql_int));
                }
                None => deleted.push(*key),
            }
        }
        let columns = ChangeColumns::new(changes);
        let first = changes.first().map_or(head, |change| change.revision);
        let hint = format!("{first}-{head}");
        let head = sql_int(head);
        let upsert_params: [&(dyn ToSql + Sync); 4] = [&keys, &values, &revisions, &expiries];
        let append_params: [&(dyn ToSql + Sync); 8] = [
            &columns.revisions,
            &columns.keys,
            &columns.ops,
            &columns.values,
            &columns.previous,
            &columns.stored,
            &columns.expiries,
            &columns.times,
        ];
        let upsert = client.execute(&statements.upsert, &upsert_params);
        let delete_params: [&(dyn ToSql + Sync); 1] = [&deleted];
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
    /// transaction: their (expiry, key, last revision), in no particular order.
    pub(super) async fn take_due(
        &self,
        now: u64,
        limit: i64,
    ) -> Result<Vec<(i64, String, i64)>, Error> {
        let now = sql_int(now);
        let rows = self
            .client
            .query(&self.statements.take_due, &[&now, &limit])
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect())
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

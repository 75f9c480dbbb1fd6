//! Rows to domain types and back: records, changes, and revisions (PostgreSQL's
//! `bigint` is signed; revisions and times are never near 2^63).

use ripplekv_core::{Change, ChangeOp, Error, Previous, Record};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The log's changes above `$1`, oldest first, at most `$2`, with the columns in the
/// order [`change`] reads them. Replays, catching up and the batch all read the log so.
pub(super) const CHANGES_AFTER: &str =
    "SELECT revision, key, op, value, previous, stored, expires_at_ms, at_ms, removed \
     FROM ripplekv.changes WHERE revision > $1 ORDER BY revision LIMIT $2";

/// A revision or time as PostgreSQL stores it.
pub(super) fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A revision or time as read back (a negative one cannot be stored by this code).
pub(super) fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn text(bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| Error::internal("a stored value is not UTF-8"))
}

/// A record from `value, revision, expires_at_ms` starting at column `first`.
pub(super) fn record(row: &Row, first: usize) -> Result<Record, Error> {
    Ok(Record {
        value: text(row.get(first))?,
        revision: from_sql(row.get(first + 1)),
        expires_at_ms: row.get::<_, Option<i64>>(first + 2).map(from_sql),
    })
}

/// A change's stored value as kept in the log and on the bus: `None` when it equals the
/// notified value (most changes), so it is kept once.
pub(super) fn stored_unless_notified(change: &Change) -> Option<&str> {
    if change.stored == change.value {
        None
    } else {
        change.stored.as_deref()
    }
}

/// The stored value back from what [`stored_unless_notified`] kept: the notified value
/// when nothing else was kept, except for deletes and expiries, which store nothing.
pub(super) fn stored_or_notified(
    op: ChangeOp,
    value: &Option<String>,
    kept: Option<String>,
) -> Option<String> {
    match kept {
        Some(stored) => Some(stored),
        None if matches!(op, ChangeOp::Delete | ChangeOp::Expire) => None,
        None => value.clone(),
    }
}

/// A change from a row of [`CHANGES_AFTER`].
pub(super) fn change(row: &Row) -> Result<Change, Error> {
    let code: i16 = row.get(2);
    let op = u8::try_from(code)
        .ok()
        .and_then(ChangeOp::from_code)
        .ok_or_else(|| Error::internal(format!("unknown change op {code} in the log")))?;
    let value = row.get::<_, Option<Vec<u8>>>(3).map(text).transpose()?;
    let kept = row.get::<_, Option<Vec<u8>>>(5).map(text).transpose()?;
    let stored = stored_or_notified(op, &value, kept);
    Ok(Change {
        revision: from_sql(row.get(0)),
        key: row.get(1),
        op,
        value,
        timestamp_ms: from_sql(row.get(7)),
        previous: row
            .get::<_, Option<i64>>(4)
            .map_or(Previous::Absent, |revision| {
                Previous::At(from_sql(revision))
            }),
        stored,
        expires_at_ms: row.get::<_, Option<i64>>(6).map(from_sql),
        removed: row.get::<_, Option<Vec<u8>>>(8).map(text).transpose()?,
    })
}

/// Changes as the column arrays one `INSERT … SELECT FROM unnest(…)` takes.
#[derive(Default)]
pub(super) struct ChangeColumns<'a> {
    pub(super) revisions: Vec<i64>,
    pub(super) keys: Vec<&'a str>,
    pub(super) ops: Vec<i16>,
    pub(super) values: Vec<Option<&'a [u8]>>,
    pub(super) previous: Vec<Option<i64>>,
    pub(super) stored: Vec<Option<&'a [u8]>>,
    pub(super) expiries: Vec<Option<i64>>,
    pub(super) times: Vec<i64>,
    pub(super) removed: Vec<Option<&'a [u8]>>,
}

impl<'a> ChangeColumns<'a> {
    pub(super) fn new(changes: &'a [Change]) -> Self {
        let mut columns = ChangeColumns::default();
        for change in changes {
            columns.revisions.push(sql_int(change.revision));
            columns.keys.push(&change.key);
            columns.ops.push(i16::from(change.op.code()));
            let value = change.value.as_deref().map(str::as_bytes);
            columns.values.push(value);
            columns.previous.push(match change.previous {
                Previous::At(revision) => Some(sql_int(revision)),
                Previous::Absent | Previous::Unknown => None,
            });
            columns
                .stored
                .push(stored_unless_notified(change).map(str::as_bytes));
            columns.expiries.push(change.expires_at_ms.map(sql_int));
            columns.times.push(sql_int(change.timestamp_ms));
            columns
                .removed
                .push(change.removed.as_deref().map(str::as_bytes));
        }
        columns
    }

    /// The columns as the parameters of the log's `INSERT … SELECT FROM unnest(…)`.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.revisions,
            &self.keys,
            &self.ops,
            &self.values,
            &self.previous,
            &self.stored,
            &self.expiries,
            &self.times,
            &self.removed,
        ]
    }
}

/// A batch's rows as the column arrays of one upsert and one delete: each written key
/// with its new record, or among the deleted.
#[derive(Default)]
pub(super) struct RowColumns<'a> {
    pub(super) keys: Vec<&'a str>,
    pub(super) values: Vec<&'a [u8]>,
    pub(super) revisions: Vec<i64>,
    pub(super) expiries: Vec<Option<i64>>,
    pub(super) deleted: Vec<&'a str>,
}

impl<'a> RowColumns<'a> {
    pub(super) fn new(rows: &[(&'a str, Option<&'a Record>)]) -> Self {
        let mut columns = RowColumns::default();
        for (key, record) in rows {
            match record {
                Some(record) => {
                    columns.keys.push(key);
                    columns.values.push(record.value.as_bytes());
                    columns.revisions.push(sql_int(record.revision));
                    columns.expiries.push(record.expires_at_ms.map(sql_int));
                }
                None => columns.deleted.push(key),
            }
        }
        columns
    }

    /// The written rows as the parameters of the upsert's `unnest(…)`.
    pub(super) fn upsert_params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.keys, &self.values, &self.revisions, &self.expiries]
    }
}

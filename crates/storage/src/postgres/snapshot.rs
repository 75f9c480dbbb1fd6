//! A consistent view of every live record (or of those under a prefix), read in key
//! order from one `REPEATABLE READ` transaction on a connection of its own (so a long
//! backup never holds a pooled connection, and dropping the view mid-way just closes
//! it).
//!
//! The records are fetched a page at a time as the iterator is driven. The iterator
//! blocks on the database, so it must be driven from a blocking thread or from a
//! multi-threaded runtime (it steps out of the async context with `block_in_place`).

use std::collections::VecDeque;

use ripplekv_core::{Error, Record, Snapshot};
use tokio::runtime::Handle;
use tokio_postgres::{Client, Config};

use super::db::{connect, db_error};
use super::rows::{self, from_sql, sql_int};
use super::LIVE;

/// Records fetched per round trip.
const PAGE: u64 = 1000;

pub(super) async fn open(config: &Config, prefix: &str) -> Result<Snapshot, Error> {
    let client = connect(config).await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(db_error)?;
    // Counting is for progress reports of whole-store backups only.
    let count = if prefix.is_empty() {
        format!("(SELECT count(*) FROM ripplekv.kv WHERE {LIVE})")
    } else {
        "0::int8".to_owned()
    };
    let sql = format!("SELECT (SELECT revision FROM ripplekv.clock), {count}");
    let row = client.query_one(&sql, &[]).await.map_err(db_error)?;
    let (revision, keys): (i64, i64) = (row.get(0), row.get(1));
    let pages = Pages {
        handle: Handle::current(),
        client,
        prefix: prefix.to_owned(),
        after: None,
        page: VecDeque::new(),
        done: false,
    };
    Ok(Snapshot {
        revision: from_sql(revision),
        keys: from_sql(keys),
        records: Box::new(pages),
    })
}

struct Pages {
    handle: Handle,
    client: Client,
    /// Only keys starting with this.
    prefix: String,
    /// The last key returned; the next page starts after it.
    after: Option<String>,
    page: VecDeque<(String, Record)>,
    done: bool,
}

impl Pages {
    /// The next page: keys after the last one returned (from the prefix on), while
    /// they start with the prefix (`key >= prefix` finds the first in the index; a
    /// page is cut at the first key past the prefix).
    async fn fetch(&self) -> Result<(Vec<(String, Record)>, bool), Error> {
        let (from, bound) = match &self.after {
            Some(after) => ("key > $1", after),
            None => ("key >= $1", &self.prefix),
        };
        let sql = format!(
            "SELECT key, value, revision, expires_at_ms FROM ripplekv.kv \
             WHERE {from} AND {LIVE} ORDER BY key LIMIT $2"
        );
        let rows = self
            .client
            .query(&sql, &[bound, &sql_int(PAGE)])
            .await
            .map_err(db_error)?;
        let full = rows.len() as u64 == PAGE;
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.get(0);
            if !key.starts_with(&self.prefix) {
                return Ok((page, true));
            }
            page.push((key, rows::record(row, 1)?));
        }
        Ok((page, !full))
    }
}

impl Iterator for Pages {
    type Item = Result<(String, Record), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            let handle = self.handle.clone();
            let fetched = tokio::task::block_in_place(|| handle.block_on(self.fetch()));
            match fetched {
                Ok((page, last)) => {
                    self.done = last;
                    self.after = page.last().map(|(key, _)| key.clone());
                    self.page.extend(page);
                }
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
        self.page.pop_front().map(Ok)
    }
}

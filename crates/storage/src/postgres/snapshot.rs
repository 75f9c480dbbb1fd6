//! A consistent view of every live record, read in key order from one
//! `REPEATABLE READ` transaction on a connection of its own (so a long backup never
//! holds a pooled connection, and dropping the view mid-way just closes it).
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

pub(super) async fn open(config: &Config) -> Result<Snapshot, Error> {
    let client = connect(config).await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(db_error)?;
    let sql = format!(
        "SELECT (SELECT revision FROM ripplekv.clock), \
         (SELECT count(*) FROM ripplekv.kv WHERE {LIVE})"
    );
    let row = client.query_one(&sql, &[]).await.map_err(db_error)?;
    let (revision, keys): (i64, i64) = (row.get(0), row.get(1));
    let pages = Pages {
        handle: Handle::current(),
        client,
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
    /// The last key returned; the next page starts after it.
    after: Option<String>,
    page: VecDeque<(String, Record)>,
    done: bool,
}

impl Pages {
    async fn fetch(&self) -> Result<Vec<(String, Record)>, Error> {
        let from = if self.after.is_some() {
            "key > $1"
        } else {
            "$1::text IS NULL"
        };
        let sql = format!(
            "SELECT key, value, revision, expires_at_ms FROM ripplekv.kv \
             WHERE {from} AND {LIVE} ORDER BY key LIMIT $2"
        );
        let rows = self
            .client
            .query(&sql, &[&self.after, &sql_int(PAGE)])
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| Ok((row.get(0), rows::record(row, 1)?)))
            .collect()
    }
}

impl Iterator for Pages {
    type Item = Result<(String, Record), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            let handle = self.handle.clone();
            let fetched = tokio::task::block_in_place(|| handle.block_on(self.fetch()));
            match fetched {
                Ok(page) => {
                    self.done = (page.len() as u64) < PAGE;
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

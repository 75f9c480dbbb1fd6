//! RANGE (op 5 on the socket, `GET /records` on REST): ordered scan of `start..=end`
//! by UTF-8 bytes, paged by `limit` (default 100, clamped to 1000). Bounds may contain
//! U+0000 for "after this key" paging; an inverted range is an empty page.
//!
//! A token connection sees only keys its access pattern allows; the others are left
//! out silently, and the page is still filled up to `limit` by scanning further, up to
//! [`MAX_SCANNED`] keys, after which it is returned with `truncated` set. A token
//! without an access pattern may read nothing, so its RANGE is refused (403) like its
//! GET, rather than scanning to return an empty page.

use ripplekv_core::{Error, Limits, RangePage, Store};
use ripplekv_proto::reply::{self, RangeRecord};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::hub::Access;

/// Most keys one filtered RANGE request may skip over.
const MAX_SCANNED: usize = 100_000;

/// Scan `start..=end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) start: String,
    pub(crate) end: String,
    /// The page size as sent (clamped when used).
    pub(crate) limit: Option<i64>,
    /// What the face calls the two bounds, so a refusal names the right one.
    names: [&'static str; 2],
}

impl Range {
    /// A RANGE from the socket, whose bounds are `key` and `endKey`.
    pub(crate) fn socket(start: String, end: String, limit: Option<i64>) -> Self {
        Range {
            start,
            end,
            limit,
            names: ["key", "endKey"],
        }
    }

    /// A RANGE from REST, whose bounds are `startKey` and `endKey`.
    pub(crate) fn rest(start: String, end: String, limit: Option<i64>) -> Self {
        Range {
            start,
            end,
            limit,
            names: ["startKey", "endKey"],
        }
    }

    pub(super) fn check(&self, limits: &Limits, access: &Access) -> Result<(), Error> {
        limits.check_range_bound(self.names[0], &self.start)?;
        limits.check_range_bound(self.names[1], &self.end)?;
        Limits::range_limit(self.limit)?;
        match access {
            Access::Nothing => Err(Error::Forbidden),
            Access::All | Access::Pattern(_) => Ok(()),
        }
    }

    pub(super) async fn read(self, store: &dyn Store, access: &Access) -> Result<Page, Error> {
        let limit = Limits::range_limit(self.limit)?;
        let page = match access {
            Access::Pattern(_) => filtered(store, access, &self.start, &self.end, limit).await?,
            Access::All | Access::Nothing => store.range(&self.start, &self.end, limit).await?,
        };
        Ok(Page { page })
    }
}

/// A page of only the keys `access` allows, scanning past the others.
async fn filtered(
    store: &dyn Store,
    access: &Access,
    start: &str,
    end: &str,
    limit: usize,
) -> Result<RangePage, Error> {
    let mut page = RangePage::default();
    let mut from = start.to_owned();
    let mut scanned = 0;
    loop {
        let batch = store.range(&from, end, limit).await?;
        scanned += batch.records.len();
        let last = batch.records.last().map(|(key, _)| format!("{key}\0"));
        for (key, record) in batch.records {
            if !access.allows(&key) {
                continue;
            }
            if page.records.len() == limit {
                page.truncated = true;
                return Ok(page);
            }
            page.records.push((key, record));
        }
        match last {
            Some(next) if batch.truncated => {
                if scanned >= MAX_SCANNED {
                    page.truncated = true;
                    return Ok(page);
                }
                from = next;
            }
            _ => return Ok(page),
        }
    }
}

/// The page a RANGE read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) page: RangePage,
}

impl Page {
    pub(super) fn socket_reply(&self, message_id: Option<&RawValue>) -> String {
        let records: Vec<RangeRecord> = self
            .page
            .records
            .iter()
            .map(|(key, record)| RangeRecord {
                key,
                value: &record.value,
                revision: record.revision,
            })
            .collect();
        reply::range(&records, self.page.truncated, message_id)
    }

    pub(super) fn rest_body(&self) -> Value {
        let records: Vec<Value> = self
            .page
            .records
            .iter()
            .map(|(key, record)| {
                json!({"key": key, "value": record.value, "revision": record.revision})
            })
            .collect();
        json!({
            "records": records,
            "count": records.len(),
            "truncated": self.page.truncated,
        })
    }
}

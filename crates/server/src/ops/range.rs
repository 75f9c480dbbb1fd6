//! RANGE (op 5): ordered scan of `start..=end` by UTF-8 bytes, paged by `limit`
//! (default 100, clamped to 1000). Bounds may contain U+0000 for "after this key"
//! paging; an inverted range is an empty page.
//!
//! A token connection sees only keys its access pattern allows; the others are left
//! out silently. A token without an access pattern may read nothing, so its RANGE is
//! refused (403) like its GET, rather than scanning to return an empty page. The page is still filled up to `limit` by scanning further, up to
//! [`MAX_SCANNED`] keys, after which the page is returned with `truncated` set.

use ripplekv_core::{Error, Limits, RangePage};

use super::Ops;
use crate::hub::Access;

/// Most keys one filtered RANGE request may skip over.
const MAX_SCANNED: usize = 100_000;

impl Ops {
    /// `names` are what the face calls the two bounds (`key` and `endKey` on the
    /// socket, `startKey` and `endKey` on REST), so a refusal names the right one.
    pub(crate) async fn range(
        &self,
        access: &Access,
        (start, end): (&str, &str),
        names: [&str; 2],
        limit: Option<i64>,
    ) -> Result<RangePage, Error> {
        self.limits.check_range_bound(names[0], start)?;
        self.limits.check_range_bound(names[1], end)?;
        let limit = Limits::range_limit(limit)?;
        match access {
            Access::All => return self.store.range(start, end, limit).await,
            Access::Nothing => return Err(Error::Forbidden),
            Access::Pattern(_) => {}
        }
        let mut page = RangePage::default();
        let mut from = start.to_owned();
        let mut scanned = 0;
        loop {
            let batch = self.store.range(&from, end, limit).await?;
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
}

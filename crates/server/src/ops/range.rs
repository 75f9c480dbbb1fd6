//! RANGE (op 5): ordered scan of `start..=end` by UTF-8 bytes, paged by `limit`
//! (default 100, clamped to 1000). Bounds may contain U+0000 for "after this key"
//! paging; an inverted range is an empty page.

use ripplekv_core::{Error, Limits, RangePage};

use super::Ops;

impl Ops {
    pub(crate) async fn range(
        &self,
        start: &str,
        end: &str,
        limit: Option<i64>,
    ) -> Result<RangePage, Error> {
        self.limits.check_range_bound("key", start)?;
        self.limits.check_range_bound("endKey", end)?;
        let limit = Limits::range_limit(limit)?;
        self.store.range(start, end, limit).await
    }
}

//! Counters of a store's group commit, shared by the durable backends.

use std::sync::atomic::AtomicU64;

use ripplekv_core::metrics::{Histogram, BATCH_SIZES, LATENCY_SECONDS};

/// Counters of the group commit, for logs, metrics and benchmarks.
#[derive(Debug)]
pub struct WriterStats {
    /// Writes per committed transaction.
    pub batch_sizes: Histogram,
    /// Time to commit a transaction, fsync included in `sync` mode.
    pub commit_seconds: Histogram,
    /// Entries in the change log (revision minus log floor).
    pub log_entries: AtomicU64,
    /// Transactions that committed at least one write.
    pub commits: AtomicU64,
    /// Writes committed (including ones answered with an error such as 404).
    pub writes: AtomicU64,
    /// The largest number of writes committed together.
    pub max_batch: AtomicU64,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            batch_sizes: Histogram::new(BATCH_SIZES),
            commit_seconds: Histogram::new(LATENCY_SECONDS),
            log_entries: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            max_batch: AtomicU64::new(0),
        }
    }
}

impl WriterStats {
    /// Appends the counters in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP ripplekv_store_commit_batch_size Writes committed together in one transaction.\n# TYPE ripplekv_store_commit_batch_size histogram\n");
        self.batch_sizes
            .render(out, "ripplekv_store_commit_batch_size", "");
        out.push_str("# HELP ripplekv_store_commit_seconds Time to commit a transaction (fsync included with sync durability).\n# TYPE ripplekv_store_commit_seconds histogram\n");
        self.commit_seconds
            .render(out, "ripplekv_store_commit_seconds", "");
        let _ = writeln!(out, "# HELP ripplekv_changelog_entries Changes retained for since replays.\n# TYPE ripplekv_changelog_entries gauge\nripplekv_changelog_entries {}", self.log_entries.load(std::sync::atomic::Ordering::Relaxed));
    }
}

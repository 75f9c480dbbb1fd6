//! Storage backends behind the [`ripplekv_core::Store`] trait.
//!
//! - [`MemoryStore`]: a `BTreeMap` under a lock, for unit tests and throwaway servers.
//! - [`RedbStore`]: the embedded, durable default. One writer thread group-commits
//!   every waiting write in one redb transaction and one fsync; reads use redb's MVCC
//!   snapshots and never wait for the writer.
//!
//! - [`PostgresStore`]: several nodes on one PostgreSQL database. One writer task per
//!   node group-commits under a clock row that keeps revisions dense across nodes.
//!
//! All apply writes through [`ripplekv_core::plan`], so their semantics cannot drift;
//! the conformance suite in `tests/conformance.rs` runs the same cases against each.

mod jobs;
mod memory;
mod postgres;
mod redb_store;
mod stats;

pub use memory::MemoryStore;
pub use postgres::{PostgresOptions, PostgresStore};
pub use redb_store::{
    restore, Durability, RedbStore, WriterStats, DB_FILE, RESTORE_REVISION_GAP, WAL_FILE,
};

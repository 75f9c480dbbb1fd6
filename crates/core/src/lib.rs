//! The RippleKV domain, free of sockets and wire formats.
//!
//! This crate says what a key-value change *means*: which keys and values are valid
//! ([`limits`]), how SET, PATCH, DELETE and ATOMIC turn a stored value into a new one
//! ([`mutation`]), what a committed [`Change`] carries, and the [`Store`] trait every
//! storage backend implements. It knows nothing about WebSocket frames, HTTP or the
//! request JSON; the only JSON it parses is a stored value, because PATCH merges JSON
//! documents. Every failure is an [`Error`] whose status code is fixed in one table.

pub mod change;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod mutation;
pub mod pattern;
pub mod store;

pub use change::{Change, ChangeOp, Previous};
pub use error::Error;
pub use limits::Limits;
pub use mutation::{apply, plan, Applied, Mutation, Planned, WriteOp, MAX_TTL_MS};
pub use pattern::{Pattern, PatternKind};
pub use store::{
    now_ms, ChangeSink, ChangesSince, PendingWrite, RangePage, Record, Retention, Revision,
    SinkSlot, Snapshot, Store,
};

//! The operations, shared by the WebSocket and REST front ends: [`Ops::write`] for
//! every write (SET, PATCH, DELETE, ATOMIC, JSON Patch; what each does to the stored
//! value is `ripplekv_core::apply`, the one implementation all backends share), and a
//! file each for the reads with logic of their own (`get`, `range`).
//!
//! Every operation has the same shape: check its input against the limits and the
//! caller's [`Access`] (403 outside a token's access pattern), then apply it through
//! the [`Store`], returning a domain result (a record, a page or a committed change).
//! Turning that result into a reply is the front end's job. A write returns only once
//! the sequencer has handed its change to the hub, so subscribers (the writer's own
//! connection among them) are told no later than the writer is answered.

use std::sync::Arc;

use ripplekv_core::{Change, Error, Limits, Mutation, Store, WriteOp};
use ripplekv_proto::WriteOptions;

use crate::hub::Access;
use crate::sequencer::Sequencer;

mod get;
mod range;

/// The operations over one store and one set of limits.
#[derive(Debug, Clone)]
pub(crate) struct Ops {
    store: Arc<dyn Store>,
    limits: Limits,
    sequencer: Arc<Sequencer>,
}

impl Ops {
    pub(crate) fn new(store: Arc<dyn Store>, limits: Limits, sequencer: Arc<Sequencer>) -> Self {
        Ops {
            store,
            limits,
            sequencer,
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Checks the key (and the value, if the write carries one) and the caller's
    /// access, then commits, and returns once subscribers have the change. With
    /// `ifRevision` the write is conditional (409 on a mismatch); `ttl` applies to SET
    /// and PATCH (a SET without one clears the TTL, other writes keep it).
    pub(crate) async fn write(
        &self,
        access: &Access,
        key: String,
        op: WriteOp,
        options: WriteOptions,
    ) -> Result<Change, Error> {
        self.limits.check_key(&key)?;
        access.check(&key)?;
        if let WriteOp::Set(value) | WriteOp::Patch(value) | WriteOp::JsonPatch(value) = &op {
            self.limits.check_value(value)?;
        }
        let mutation = Mutation {
            key,
            op,
            if_revision: options.if_revision,
            ttl_ms: options.ttl_ms,
        };
        let change = self.store.write(mutation).await?;
        let delivered = self.sequencer.delivered_at_least(change.revision).await;
        if delivered < change.revision {
            tracing::warn!(
                revision = change.revision,
                delivered,
                "a change did not reach subscribers in time; answering the writer anyway"
            );
        }
        Ok(change)
    }
}

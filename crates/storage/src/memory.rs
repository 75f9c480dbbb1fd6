//! An in-memory [`Store`]: a `BTreeMap` under a `RwLock`. Nothing survives a restart.
//!
//! It exists so unit and session tests run without a disk, and as the reference the
//! durable backends are checked against.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use ripplekv_core::{
    now_ms, plan, Change, Error, Limits, Mutation, RangePage, Record, Revision, Store,
};

/// A volatile store for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    limits: Limits,
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    records: BTreeMap<String, Record>,
    revision: Revision,
    closed: bool,
}

impl MemoryStore {
    /// An empty store enforcing `limits` on values produced by PATCH.
    pub fn new(limits: Limits) -> Self {
        MemoryStore {
            limits,
            state: RwLock::default(),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.records.get(key).cloned())
    }

    async fn range(&self, start: &str, end: &str, limit: usize) -> Result<RangePage, Error> {
        if start > end {
            return Ok(RangePage::default());
        }
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut records: Vec<(String, Record)> = state
            .records
            .range::<str, _>((Bound::Included(start), Bound::Included(end)))
            .take(limit + 1)
            .map(|(key, record)| (key.clone(), record.clone()))
            .collect();
        let truncated = records.len() > limit;
        records.truncate(limit);
        Ok(RangePage { records, truncated })
    }

    async fn write(&self, mutation: Mutation) -> Result<Change, Error> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return Err(Error::Unavailable);
        }
        let current = state.records.get(&mutation.key).map(|r| r.value.as_str());
        let planned = plan(
            mutation,
            current,
            &self.limits,
            state.revision + 1,
            now_ms(),
        )?;
        state.revision = planned.change.revision;
        match planned.record {
            Some(record) => state.records.insert(planned.change.key.clone(), record),
            None => state.records.remove(&planned.change.key),
        };
        Ok(planned.change)
    }

    fn revision(&self) -> Revision {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .revision
    }

    async fn close(&self) -> Result<(), Error> {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        Ok(())
    }
}

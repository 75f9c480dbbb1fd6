//! An in-memory [`Store`]: a `BTreeMap` under a `RwLock`. Nothing survives a restart.
//!
//! It exists so unit and session tests run without a disk, and as the reference the
//! durable backends are checked against.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use ripplekv_core::{
    now_ms, plan, Change, ChangeSink, ChangesSince, Error, Limits, Mutation, RangePage, Record,
    Retention, Revision, SinkSlot, Store,
};

/// A volatile store for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    limits: Limits,
    retention: Retention,
    state: RwLock<State>,
    sink: SinkSlot,
}

#[derive(Debug, Default)]
struct State {
    records: BTreeMap<String, Record>,
    revision: Revision,
    /// Retained changes, oldest first; every revision up to `floor` was dropped.
    log: VecDeque<Change>,
    floor: Revision,
    closed: bool,
}

impl State {
    fn trim_log(&mut self, retention: &Retention, now: u64) {
        let max_age_ms = u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX);
        while let Some(oldest) = self.log.front() {
            let too_many = self.log.len() as u64 > retention.max_entries;
            if !too_many && now.saturating_sub(oldest.timestamp_ms) <= max_age_ms {
                break;
            }
            self.floor = oldest.revision;
            self.log.pop_front();
        }
    }
}

impl MemoryStore {
    /// An empty store enforcing `limits` on values produced by PATCH.
    pub fn new(limits: Limits) -> Self {
        Self::with_retention(limits, Retention::default())
    }

    /// An empty store keeping the change log as `retention` says.
    pub fn with_retention(limits: Limits, retention: Retention) -> Self {
        MemoryStore {
            limits,
            retention,
            state: RwLock::default(),
            sink: SinkSlot::default(),
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
        let now = now_ms();
        let current = state.records.get(&mutation.key).map(|r| r.value.as_str());
        let planned = plan(mutation, current, &self.limits, state.revision + 1, now)?;
        state.revision = planned.change.revision;
        match planned.record {
            Some(record) => state.records.insert(planned.change.key.clone(), record),
            None => state.records.remove(&planned.change.key),
        };
        state.log.push_back(planned.change.clone());
        state.trim_log(&self.retention, now);
        // Published under the lock, so subscribers see changes in commit order.
        self.sink.publish(std::slice::from_ref(&planned.change));
        Ok(planned.change)
    }

    async fn changes_since(&self, after: Revision, limit: usize) -> Result<ChangesSince, Error> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if after < state.floor {
            return Ok(ChangesSince::TooOld { floor: state.floor });
        }
        // The log holds consecutive revisions floor+1..=revision.
        let skip = usize::try_from(after - state.floor).unwrap_or(usize::MAX);
        Ok(ChangesSince::Changes(
            state.log.iter().skip(skip).take(limit).cloned().collect(),
        ))
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

    fn set_change_sink(&self, sink: std::sync::Arc<dyn ChangeSink>) {
        self.sink.set(sink);
    }
}

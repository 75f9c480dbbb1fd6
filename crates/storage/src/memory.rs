//! An in-memory [`Store`]: a `BTreeMap` under a `RwLock`. Nothing survives a restart.
//!
//! It exists so unit and session tests run without a disk, and as the reference the
//! durable backends are checked against. Changes are published under the write lock,
//! so subscribers see them in commit order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use ripplekv_core::{
    now_ms, plan, Change, ChangeSink, ChangesSince, Error, Limits, Mutation, PendingWrite,
    RangePage, Record, Retention, Revision, SinkSlot, Snapshot, Store,
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
    /// Keys with a TTL, by expiry time.
    expiry: BTreeSet<(u64, String)>,
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

    /// Stores (or removes) the record of `key`, keeping the expiry index in step.
    fn put(&mut self, key: &str, record: Option<Record>) {
        let old = match record {
            Some(record) => {
                if let Some(at) = record.expires_at_ms {
                    self.expiry.insert((at, key.to_owned()));
                }
                self.records.insert(key.to_owned(), record)
            }
            None => self.records.remove(key),
        };
        if let Some(at) = old.and_then(|old| old.expires_at_ms) {
            let still = self.records.get(key).and_then(|r| r.expires_at_ms) == Some(at);
            if !still {
                self.expiry.remove(&(at, key.to_owned()));
            }
        }
    }

    fn commit(&mut self, change: Change, retention: &Retention) {
        self.revision = change.revision;
        let now = change.timestamp_ms;
        self.log.push_back(change);
        self.trim_log(retention, now);
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies and commits one write under the lock.
    fn commit(&self, mutation: Mutation) -> Result<Change, Error> {
        let mut state = self.write_state();
        if state.closed {
            return Err(Error::Unavailable);
        }
        let now = now_ms();
        let key = mutation.key.clone();
        let planned = plan(
            mutation,
            state.records.get(&key),
            &self.limits,
            state.revision + 1,
            now,
        )?;
        state.put(&key, planned.record.clone());
        for change in planned.changes() {
            state.commit(change.clone(), &self.retention);
        }
        // Published under the lock, so subscribers see changes in commit order.
        self.sink
            .publish(&planned.changes().cloned().collect::<Vec<_>>());
        Ok(planned.change)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, Error> {
        let now = now_ms();
        Ok(self
            .read()
            .records
            .get(key)
            .filter(|r| !r.is_expired(now))
            .cloned())
    }

    async fn range(&self, start: &str, end: &str, limit: usize) -> Result<RangePage, Error> {
        if start > end {
            return Ok(RangePage::default());
        }
        let now = now_ms();
        let state = self.read();
        let mut records: Vec<(String, Record)> = state
            .records
            .range::<str, _>((Bound::Included(start), Bound::Included(end)))
            .filter(|(_, record)| !record.is_expired(now))
            .take(limit + 1)
            .map(|(key, record)| (key.clone(), record.clone()))
            .collect();
        let truncated = records.len() > limit;
        records.truncate(limit);
        Ok(RangePage { records, truncated })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn submit(&self, mutation: Mutation) -> Result<PendingWrite, Error> {
        // Committed while submitting, under the lock: the outcome is known at once.
        Ok(PendingWrite::ready(self.commit(mutation)))
    }

    async fn expire_due(&self) -> Result<usize, Error> {
        let mut state = self.write_state();
        let now = now_ms();
        let due: Vec<(u64, String)> = state
            .expiry
            .iter()
            .take_while(|(at, _)| *at <= now)
            .cloned()
            .collect();
        let mut expired = Vec::new();
        for (at, key) in due {
            state.expiry.remove(&(at, key.clone()));
            if state.records.get(&key).and_then(|r| r.expires_at_ms) == Some(at) {
                let Some(record) = state.records.remove(&key) else {
                    continue;
                };
                let change = Change::expire(
                    &key,
                    (record.revision, &record.value),
                    state.revision + 1,
                    now,
                );
                state.commit(change.clone(), &self.retention);
                expired.push(change);
            }
        }
        self.sink.publish(&expired);
        Ok(expired.len())
    }

    async fn changes_since(&self, after: Revision, limit: usize) -> Result<ChangesSince, Error> {
        let state = self.read();
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
        self.read().revision
    }

    async fn scan(&self, prefix: &str) -> Result<Snapshot, Error> {
        let now = now_ms();
        let state = self.read();
        // A copy taken under the lock is the consistent view.
        let records: Vec<(String, Record)> = state
            .records
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(_, record)| !record.is_expired(now))
            .map(|(key, record)| (key.clone(), record.clone()))
            .collect();
        Ok(Snapshot {
            revision: state.revision,
            keys: if prefix.is_empty() {
                records.len() as u64
            } else {
                0
            },
            records: Box::new(records.into_iter().map(Ok)),
        })
    }

    async fn close(&self) -> Result<(), Error> {
        self.write_state().closed = true;
        Ok(())
    }

    fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) {
        self.sink.set(sink);
    }
}

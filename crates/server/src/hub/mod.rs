//! The fan-out hub: which connections hear about which keys.
//!
//! Every committed change is published here by the store, in commit order, before
//! the writer is answered. The hub finds the matching subscriptions through an index
//! that never scans every subscriber: exact keys in a hash map, `prefix*` patterns in a
//! byte trie (a walk down the key), and general patterns (regexes) in a second trie
//! under the literal text their matches must start with, so only the regexes whose
//! prefix the key has are run; only regexes with no literal prefix (such as
//! `^(a|b):.*$`) are checked for every key.
//! A connection is told once per change however many of its patterns match. The hub
//! is face-neutral: it hands each subscriber the same shared [`Event`], the
//! subscriber checks its own access pattern where its subscriptions ask for it, and
//! its delivery [`Target`] (the `/ws` outbox today) renders the face's frame, once per
//! event for all the face's subscribers.

mod event;
mod index;
mod subscriber;
mod trie;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::ws::Utf8Bytes;
use ripplekv_core::metrics::{Histogram, LATENCY_SECONDS};
use ripplekv_core::{now_ms, Change, ChangeSink, Pattern};

pub use event::{Event, Target};
use index::Index;
pub use subscriber::{Access, Subscriber};

/// The subscription index and the publisher of notifications.
#[derive(Debug)]
pub struct Hub {
    index: RwLock<Index>,
    /// Notifications this hub queued to connections (or held for their replays).
    queued: AtomicU64,
    /// Time from each change's commit (its timestamp) to its fan-out here: on a node
    /// of a cluster, how far behind the other nodes' commits it delivers.
    lag: Histogram,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            index: RwLock::default(),
            queued: AtomicU64::new(0),
            lag: Histogram::new(LATENCY_SECONDS),
        }
    }
}

impl Hub {
    /// Adds `pattern` for `subscriber`. With `filtered`, changes are delivered only for
    /// keys the subscriber's access pattern allows. False if it was already there.
    pub fn subscribe(
        &self,
        subscriber: &Arc<Subscriber>,
        pattern: Pattern,
        filtered: bool,
    ) -> bool {
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(subscriber, pattern, filtered)
    }

    /// Removes one pattern of a subscriber; false if it had no such pattern.
    pub(crate) fn unsubscribe(&self, subscriber: u64, source: &str) -> bool {
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(subscriber, source)
    }

    /// How many patterns the subscriber would hold after adding `sources`.
    pub(crate) fn held_after(&self, subscriber: u64, sources: &[String]) -> usize {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .held_after(subscriber, sources)
    }

    /// Removes every pattern of a subscriber (its connection ended).
    pub(crate) fn remove_subscriber(&self, subscriber: u64) {
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove_all(subscriber);
    }

    /// The subscribers to notify of a change to `key`, each once.
    pub fn matching(&self, key: &str) -> Vec<Arc<Subscriber>> {
        self.matching_with_checks(key)
            .into_iter()
            .map(|(subscriber, _)| subscriber)
            .collect()
    }

    /// [`Hub::matching`], each with whether its access pattern must be checked (all
    /// the subscriptions that matched asked for it).
    fn matching_with_checks(&self, key: &str) -> Vec<(Arc<Subscriber>, bool)> {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .matching(key)
    }

    /// Notifications queued to connections so far.
    pub fn notifications_queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Time from commit to fan-out, per change.
    pub fn delivery_lag(&self) -> &Histogram {
        &self.lag
    }

    /// True when nobody subscribes to anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of subscriptions held (for logs and benchmarks).
    pub fn len(&self) -> usize {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The frame of a notification for `change`.
pub(crate) fn notification_frame(change: &Change) -> Utf8Bytes {
    ripplekv_proto::reply::notification(
        &change.key,
        change.value.as_deref(),
        change.timestamp_ms,
        change.op.name(),
        change.revision,
    )
    .into()
}

impl Hub {
    /// Fans each change out to the subscribers it matches, in the order given. Takes
    /// the changes, since each becomes the event its subscribers share.
    pub(crate) fn fan_out(&self, changes: impl IntoIterator<Item = Change>) {
        let now = now_ms();
        for change in changes {
            self.lag
                .observe(now.saturating_sub(change.timestamp_ms) as f64 / 1000.0);
            let subscribers = self.matching_with_checks(&change.key);
            if subscribers.is_empty() {
                continue;
            }
            // One event per change, shared by every subscriber; each face renders its
            // frame from it once, when its first subscriber needs it.
            let event = Event::of_change(change);
            let mut queued = 0;
            for (subscriber, check_access) in subscribers {
                queued += u64::from(subscriber.deliver(&event, check_access));
            }
            self.queued.fetch_add(queued, Ordering::Relaxed);
        }
    }
}

/// The hub as a sink of its own (benchmarks and tests feed it directly; the server
/// feeds it through the sequencer).
impl ChangeSink for Hub {
    fn publish(&self, changes: &[Change]) {
        self.fan_out(changes.iter().cloned());
    }
}

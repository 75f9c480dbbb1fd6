//! The subscription index behind the hub: exact keys, prefixes, general patterns.

use std::collections::HashMap;
use std::sync::Arc;

use ripplekv_core::{Pattern, PatternKind};

use super::trie::Trie;
use super::Subscriber;

/// One subscription of one connection.
#[derive(Debug, Clone)]
struct Entry {
    subscriber: Arc<Subscriber>,
    /// The pattern as written, to find it again on unsubscribe.
    source: Arc<str>,
    /// Deliver only keys the subscriber's access pattern allows.
    filtered: bool,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    exact: HashMap<String, Vec<Entry>>,
    prefixes: Trie<Entry>,
    /// Regexes and globs, filed under the literal text their matches must start with,
    /// so only candidates whose prefix the key has are run.
    general: Trie<(Pattern, Entry)>,
    /// Per subscriber, its patterns, so removal knows where to look.
    by_subscriber: HashMap<u64, Vec<Pattern>>,
    count: usize,
}

impl Index {
    pub(super) fn insert(
        &mut self,
        subscriber: &Arc<Subscriber>,
        pattern: Pattern,
        filtered: bool,
    ) -> bool {
        let patterns = self.by_subscriber.entry(subscriber.id()).or_default();
        if patterns
            .iter()
            .any(|known| known.source() == pattern.source())
        {
            return false;
        }
        patterns.push(pattern.clone());
        let entry = Entry {
            subscriber: Arc::clone(subscriber),
            source: pattern.source().into(),
            filtered,
        };
        match pattern.kind() {
            PatternKind::Exact(key) => self.exact.entry(key.clone()).or_default().push(entry),
            PatternKind::Prefix(prefix) => self.prefixes.insert(prefix.as_bytes(), entry),
            PatternKind::Regex(_) | PatternKind::Glob(_) => {
                let prefix = pattern.literal_prefix().as_bytes().to_vec();
                self.general.insert(&prefix, (pattern, entry));
            }
        }
        self.count += 1;
        true
    }

    pub(super) fn remove(&mut self, subscriber: u64, source: &str) -> bool {
        let Some(patterns) = self.by_subscriber.get_mut(&subscriber) else {
            return false;
        };
        let Some(at) = patterns.iter().position(|known| known.source() == source) else {
            return false;
        };
        let pattern = patterns.swap_remove(at);
        if patterns.is_empty() {
            self.by_subscriber.remove(&subscriber);
        }
        self.remove_entry(subscriber, &pattern);
        true
    }

    pub(super) fn held_after(&self, subscriber: u64, sources: &[String]) -> usize {
        let held = self
            .by_subscriber
            .get(&subscriber)
            .map_or(&[][..], Vec::as_slice);
        // Hash sets keep this linear: both lists may hold a thousand patterns.
        let known: std::collections::HashSet<&str> =
            held.iter().map(|pattern| pattern.source()).collect();
        let new: std::collections::HashSet<&str> = sources
            .iter()
            .map(String::as_str)
            .filter(|source| !known.contains(source))
            .collect();
        held.len() + new.len()
    }

    pub(super) fn remove_all(&mut self, subscriber: u64) {
        for pattern in self.by_subscriber.remove(&subscriber).unwrap_or_default() {
            self.remove_entry(subscriber, &pattern);
        }
    }

    fn remove_entry(&mut self, subscriber: u64, pattern: &Pattern) {
        let is_it = |entry: &Entry| {
            entry.subscriber.id() == subscriber && &*entry.source == pattern.source()
        };
        match pattern.kind() {
            PatternKind::Exact(key) => {
                if let Some(entries) = self.exact.get_mut(key) {
                    entries.retain(|entry| !is_it(entry));
                    if entries.is_empty() {
                        self.exact.remove(key);
                    }
                }
            }
            PatternKind::Prefix(prefix) => {
                self.prefixes.remove(prefix.as_bytes(), &is_it);
            }
            PatternKind::Regex(_) | PatternKind::Glob(_) => {
                self.general
                    .remove(pattern.literal_prefix().as_bytes(), &|(_, entry)| {
                        is_it(entry)
                    });
            }
        }
        self.count -= 1;
    }

    /// The subscribers with a subscription matching `key`, each once, with whether
    /// every one of its matching subscriptions asked for the access check (the
    /// subscriber makes that check; the index only matches patterns).
    pub(super) fn matching(&self, key: &str) -> Vec<(Arc<Subscriber>, bool)> {
        let mut found: Vec<(Arc<Subscriber>, bool)> = Vec::new();
        let mut take = |entry: &Entry| {
            found.push((Arc::clone(&entry.subscriber), entry.filtered));
        };
        if let Some(entries) = self.exact.get(key) {
            entries.iter().for_each(&mut take);
        }
        self.prefixes.for_each_prefix_of(key.as_bytes(), &mut take);
        self.general
            .for_each_prefix_of(key.as_bytes(), |(pattern, entry)| {
                if pattern.matches(key) {
                    take(entry);
                }
            });
        if found.len() > 1 {
            // One per subscriber; it is checked only if all its matches asked for it.
            found.sort_unstable_by_key(|(subscriber, filtered)| (subscriber.id(), !filtered));
            found.dedup_by(|later, kept| {
                let same = later.0.id() == kept.0.id();
                if same {
                    kept.1 &= later.1;
                }
                same
            });
        }
        found
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }
}

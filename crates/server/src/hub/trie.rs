//! A byte trie of prefix subscriptions: matching a key is one walk down its bytes,
//! collecting the entries stored at each node, whatever the number of prefixes.

/// A node; children are kept sorted by byte, which is compact for sparse fan-out.
#[derive(Debug)]
pub(super) struct Trie<T> {
    entries: Vec<T>,
    children: Vec<(u8, Trie<T>)>,
}

impl<T> Default for Trie<T> {
    fn default() -> Self {
        Trie {
            entries: Vec::new(),
            children: Vec::new(),
        }
    }
}

impl<T> Trie<T> {
    pub(super) fn insert(&mut self, prefix: &[u8], entry: T) {
        let mut node = self;
        for &byte in prefix {
            let at = match node.children.binary_search_by_key(&byte, |(b, _)| *b) {
                Ok(at) => at,
                Err(at) => {
                    node.children.insert(at, (byte, Trie::default()));
                    at
                }
            };
            node = &mut node.children[at].1;
        }
        node.entries.push(entry);
    }

    /// Removes the entries at `prefix` for which `remove` is true, pruning empty nodes.
    /// Returns how many were removed.
    pub(super) fn remove(&mut self, prefix: &[u8], remove: &impl Fn(&T) -> bool) -> usize {
        match prefix.split_first() {
            None => {
                let before = self.entries.len();
                self.entries.retain(|entry| !remove(entry));
                before - self.entries.len()
            }
            Some((byte, rest)) => {
                let Ok(at) = self.children.binary_search_by_key(byte, |(b, _)| *b) else {
                    return 0;
                };
                let removed = self.children[at].1.remove(rest, remove);
                if self.children[at].1.is_empty() {
                    self.children.remove(at);
                }
                removed
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.children.is_empty()
    }

    /// Calls `visit` for every entry whose prefix is a prefix of `key`.
    pub(super) fn for_each_prefix_of(&self, key: &[u8], mut visit: impl FnMut(&T)) {
        let mut node = self;
        node.entries.iter().for_each(&mut visit);
        for byte in key {
            match node.children.binary_search_by_key(byte, |(b, _)| *b) {
                Ok(at) => node = &node.children[at].1,
                Err(_) => return,
            }
            node.entries.iter().for_each(&mut visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(trie: &Trie<&'static str>, key: &str) -> Vec<&'static str> {
        let mut found = Vec::new();
        trie.for_each_prefix_of(key.as_bytes(), |entry| found.push(*entry));
        found
    }

    #[test]
    fn finds_every_prefix_and_prunes() {
        let mut trie = Trie::default();
        trie.insert(b"", "all");
        trie.insert(b"user:", "users");
        trie.insert(b"user:1", "user 1 and 1x");
        trie.insert(b"todo", "todos");
        assert_eq!(found(&trie, "user:12"), ["all", "users", "user 1 and 1x"]);
        assert_eq!(found(&trie, "user:2"), ["all", "users"]);
        assert_eq!(found(&trie, "use"), ["all"]);
        assert_eq!(trie.remove(b"user:1", &|_| true), 1);
        assert_eq!(found(&trie, "user:12"), ["all", "users"]);
        assert_eq!(trie.remove(b"todo", &|_| true), 1);
        assert_eq!(trie.remove(b"nothing", &|_| true), 0);
        assert_eq!(trie.children.len(), 1, "the todo branch was pruned");
    }
}

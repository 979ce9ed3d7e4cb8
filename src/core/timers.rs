//! A timer queue keyed by instant, with an index by owner so cancelling an
//! owner's timers costs a lookup, not a scan of every pending timer (the
//! router holds one or two timers for each of 100k open conversations).

use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;

/// Timers `(at, owner, kind)` in time order; a set: the same timer twice is one.
#[derive(Debug, Clone)]
pub struct Timers<K> {
    queue: BTreeSet<(Timestamp, String, K)>,
    by_owner: HashMap<String, Vec<(Timestamp, K)>>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers { queue: BTreeSet::new(), by_owner: HashMap::new() }
    }
}

impl<K: Ord + Copy> Timers<K> {
    pub fn insert(&mut self, at: Timestamp, owner: &str, kind: K) {
        if self.queue.insert((at, owner.to_string(), kind)) {
            self.by_owner.entry(owner.to_string()).or_default().push((at, kind));
        }
    }

    /// The earliest timer.
    pub fn first(&self) -> Option<&(Timestamp, String, K)> {
        self.queue.first()
    }

    /// Removes and returns the earliest timer.
    pub fn pop_first(&mut self) -> Option<(Timestamp, String, K)> {
        let first = self.queue.pop_first()?;
        self.unindex(&first.1, |at, k| at == first.0 && k == first.2);
        Some(first)
    }

    /// Cancels `owner`'s timers whose kind satisfies `which`.
    pub fn cancel(&mut self, owner: &str, which: impl Fn(K) -> bool) {
        let Some(list) = self.by_owner.get(owner) else { return };
        for (at, k) in list.iter().filter(|(_, k)| which(*k)) {
            self.queue.remove(&(*at, owner.to_string(), *k));
        }
        self.unindex(owner, |_, k| which(k));
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn unindex(&mut self, owner: &str, gone: impl Fn(Timestamp, K) -> bool) {
        if let Some(list) = self.by_owner.get_mut(owner) {
            list.retain(|(at, k)| !gone(*at, *k));
            if list.is_empty() {
                self.by_owner.remove(owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn pops_in_time_order_and_cancels_by_owner_and_kind() {
        let mut timers = Timers::default();
        timers.insert(t(30), "a", 1);
        timers.insert(t(10), "b", 1);
        timers.insert(t(20), "a", 2);
        timers.insert(t(20), "a", 2); // the same timer twice is one
        assert_eq!(timers.len(), 3);
        timers.cancel("a", |k| k == 1);
        assert_eq!(timers.pop_first(), Some((t(10), "b".to_string(), 1)));
        assert_eq!(timers.pop_first(), Some((t(20), "a".to_string(), 2)));
        assert!(timers.is_empty());
        assert!(timers.by_owner.is_empty(), "the index empties with the queue");
        timers.insert(t(5), "a", 1);
        timers.cancel("a", |_| true);
        assert_eq!(timers.first(), None);
    }
}

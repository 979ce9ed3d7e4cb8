//! A timer queue keyed by instant, with an index by owner so cancelling an
//! owner's timers costs a lookup, not a scan of every pending timer (the
//! router holds one or two timers for each of 100k open conversations).
//!
//! Owners are numbers (the router's slot of a conversation, see
//! `router/held.rs`), so a timer costs 24 bytes in the queue and nothing
//! is copied per timer; the owner's name stays with its owner.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;

/// Timers `(at, owner, kind)` in time order; a set: the same timer twice is one.
#[derive(Debug, Clone)]
pub struct Timers<K> {
    queue: BTreeSet<(Timestamp, u32, K)>,
    by_owner: HashMap<u32, Owned<K>>,
}

/// One owner's timers: nearly always one, kept inline (a vector of one
/// costs an allocation per open conversation).
#[derive(Debug, Clone)]
enum Owned<K> {
    One([(Timestamp, K); 1]),
    Many(Vec<(Timestamp, K)>),
}

impl<K: Copy> Owned<K> {
    fn as_slice(&self) -> &[(Timestamp, K)] {
        match self {
            Owned::One(one) => one,
            Owned::Many(many) => many,
        }
    }

    fn push(&mut self, timer: (Timestamp, K)) {
        match self {
            Owned::One([first]) => *self = Owned::Many(vec![*first, timer]),
            Owned::Many(many) => many.push(timer),
        }
    }

    /// Keeps the timers `keep` says; `None` when none is left.
    fn retain(self, keep: impl Fn(Timestamp, K) -> bool) -> Option<Owned<K>> {
        let mut left: Vec<_> = self.as_slice().iter().copied().filter(|(at, k)| keep(*at, *k)).collect();
        match left.len() {
            0 => None,
            1 => Some(Owned::One([left.remove(0)])),
            _ => Some(Owned::Many(left)),
        }
    }
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers { queue: BTreeSet::new(), by_owner: HashMap::new() }
    }
}

/// What a timer is for: ordered, with a least value (the start of a range).
pub trait Kind: Ord + Copy {
    const LEAST: Self;
}

impl<K: Kind> Timers<K> {
    pub fn insert(&mut self, at: Timestamp, owner: u32, kind: K) {
        if self.queue.insert((at, owner, kind)) {
            match self.by_owner.entry(owner) {
                Entry::Occupied(mut e) => e.get_mut().push((at, kind)),
                Entry::Vacant(e) => {
                    e.insert(Owned::One([(at, kind)]));
                }
            }
        }
    }

    /// The earliest timer.
    pub fn first(&self) -> Option<&(Timestamp, u32, K)> {
        self.queue.first()
    }

    /// Removes one timer; whether it was armed.
    pub fn remove(&mut self, at: Timestamp, owner: u32, kind: K) -> bool {
        let armed = self.queue.remove(&(at, owner, kind));
        if armed {
            self.unindex(owner, |a, k| a == at && k == kind);
        }
        armed
    }

    /// Every timer due at exactly `at`, in owner order.
    pub fn at(&self, at: Timestamp) -> impl Iterator<Item = (u32, K)> + '_ {
        self.queue.range((at, 0, K::LEAST)..).take_while(move |t| t.0 == at).map(|t| (t.1, t.2))
    }

    /// `owner`'s timers, in no particular order.
    pub fn of(&self, owner: u32) -> impl Iterator<Item = (Timestamp, K)> + '_ {
        self.by_owner.get(&owner).into_iter().flat_map(|o| o.as_slice().iter().copied())
    }

    /// Cancels `owner`'s timers whose kind satisfies `which`.
    pub fn cancel(&mut self, owner: u32, which: impl Fn(K) -> bool) {
        let Some(list) = self.by_owner.get(&owner) else { return };
        for (at, k) in list.as_slice().iter().filter(|(_, k)| which(*k)) {
            self.queue.remove(&(*at, owner, *k));
        }
        self.unindex(owner, |_, k| which(k));
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn unindex(&mut self, owner: u32, gone: impl Fn(Timestamp, K) -> bool) {
        if let Some(list) = self.by_owner.remove(&owner)
            && let Some(left) = list.retain(|at, k| !gone(at, k))
        {
            self.by_owner.insert(owner, left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Kind for u8 {
        const LEAST: u8 = 0;
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn pops_in_time_order_and_cancels_by_owner_and_kind() {
        let mut timers: Timers<u8> = Timers::default();
        timers.insert(t(30), 1, 1);
        timers.insert(t(10), 2, 1);
        timers.insert(t(20), 1, 2);
        timers.insert(t(20), 1, 2); // the same timer twice is one
        assert_eq!(timers.len(), 3);
        timers.cancel(1, |k| k == 1);
        assert_eq!(timers.first(), Some(&(t(10), 2, 1)));
        assert!(timers.remove(t(10), 2, 1));
        assert!(!timers.remove(t(10), 2, 1), "removed once");
        assert_eq!(timers.of(1).collect::<Vec<_>>(), vec![(t(20), 2)]);
        assert!(timers.remove(t(20), 1, 2));
        assert!(timers.is_empty());
        assert!(timers.by_owner.is_empty(), "the index empties with the queue");
        timers.insert(t(5), 1, 1);
        timers.cancel(1, |_| true);
        assert_eq!(timers.first(), None);
    }

    #[test]
    fn lists_the_timers_due_at_one_instant() {
        let mut timers: Timers<u8> = Timers::default();
        for (at, owner, kind) in [(7, 3, 0), (7, 0, 1), (7, 0, 0), (6, 9, 9), (8, 0, 0), (7, 1, 2)] {
            timers.insert(t(at), owner, kind);
        }
        assert_eq!(timers.at(t(7)).collect::<Vec<_>>(), vec![(0, 0), (0, 1), (1, 2), (3, 0)]);
        assert_eq!(timers.at(t(5)).count(), 0);
    }
}

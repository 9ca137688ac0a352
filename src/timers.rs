//! Deadlines for long-poll holds, SSE heartbeats, WebSocket pings and
//! head/idle timeouts — without a clock.
//!
//! Time enters the core only as an argument: the event loop reads the OS clock
//! once per turn and passes an [`Instant`] down; tests and fuzzers make their
//! own. [`Timers`] keeps at most one deadline per key (the loop uses one key
//! per connection, holding the earliest deadline that connection's session
//! reports through `next_deadline()`), so re-arming replaces instead of
//! piling up stale entries.
//!
//! Cost: a binary heap ordered by deadline plus a `HashMap` from key to its
//! live entry. Re-arming or cancelling only updates the map (O(1)) and
//! pushes (O(log n)); the old heap entry goes stale and is dropped when it
//! surfaces, or all at once when stale entries outnumber live ones
//! (amortised O(1) each). `pop_expired` is O(log n), `next_deadline` O(1).
//! A `BTreeSet` did the same with a remove and an insert per re-arm, which
//! showed in profiles of 10,000 long polls released at once
//! (docs/performance.md).

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hash};

use crate::ids::IdHasher;
pub use crate::time::Instant;

/// A set of deadlines, at most one per key.
#[derive(Debug)]
pub struct Timers<K> {
    /// Every deadline ever armed and not yet popped, earliest on top; an
    /// entry whose key has since been re-armed or cancelled is stale and is
    /// dropped when it reaches the top (or at a compaction).
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// The live deadline of each key, with the sequence number that tells
    /// its heap entry from stale ones.
    by_key: HashMap<K, (Instant, u64), BuildHasherDefault<IdHasher>>,
    next_seq: u64,
}

impl<K: Copy + Ord + Hash> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            by_key: HashMap::default(),
            next_seq: 0,
        }
    }
}

impl<K: Copy + Ord + Hash> Timers<K> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `key` to fire at `deadline`, replacing any deadline it had.
    /// `None` cancels it.
    pub fn set(&mut self, key: K, deadline: Option<Instant>) {
        let Some(at) = deadline else {
            return self.cancel(key);
        };
        let seq = self.next_seq;
        match self.by_key.entry(key) {
            // Unchanged: keep its place among equals.
            Entry::Occupied(e) if e.get().0 == at => return,
            Entry::Occupied(mut e) => {
                e.insert((at, seq));
            }
            Entry::Vacant(e) => {
                e.insert((at, seq));
            }
        }
        self.next_seq += 1;
        self.heap.push(Reverse((at, seq, key)));
        self.tidy();
    }

    /// Forgets `key`'s deadline, if any.
    pub fn cancel(&mut self, key: K) {
        if self.by_key.remove(&key).is_some() {
            self.tidy();
        }
    }

    /// `key`'s current deadline.
    pub fn deadline(&self, key: K) -> Option<Instant> {
        self.by_key.get(&key).map(|&(at, _)| at)
    }

    /// The earliest deadline of all, which the loop turns into its `poll`
    /// timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns one key whose deadline is at or before `now`,
    /// earliest first; `None` when nothing has expired. Each armed deadline
    /// is returned exactly once.
    pub fn pop_expired(&mut self, now: Instant) -> Option<K> {
        let &Reverse((at, _, key)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.by_key.remove(&key);
        self.tidy();
        Some(key)
    }

    /// Number of armed deadlines.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether nothing is armed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Keeps the two invariants: the top of the heap is live (so
    /// `next_deadline` needs no `&mut`), and stale entries never outnumber
    /// live ones by much (so memory stays proportional to what is armed).
    fn tidy(&mut self) {
        while let Some(&Reverse((at, seq, key))) = self.heap.peek() {
            if self.by_key.get(&key) == Some(&(at, seq)) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 2 * self.by_key.len() + 64 {
            self.heap = self
                .by_key
                .iter()
                .map(|(&key, &(at, seq))| Reverse((at, seq, key)))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn expired_keys_come_out_earliest_first() {
        let mut t = Timers::new();
        t.set(1u32, Some(ms(30)));
        t.set(2, Some(ms(10)));
        t.set(3, Some(ms(20)));
        assert_eq!(t.next_deadline(), Some(ms(10)));
        assert_eq!(t.pop_expired(ms(25)), Some(2));
        assert_eq!(t.pop_expired(ms(25)), Some(3));
        assert_eq!(t.pop_expired(ms(25)), None);
        assert_eq!(t.pop_expired(ms(30)), Some(1));
        assert!(t.is_empty());
    }

    #[test]
    fn a_cancelled_deadline_never_fires() {
        let mut t = Timers::new();
        t.set(1u32, Some(ms(10)));
        t.cancel(1);
        t.cancel(1); // cancelling twice is harmless
        assert_eq!(t.pop_expired(ms(100)), None);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn rearming_replaces_the_old_deadline() {
        let mut t = Timers::new();
        t.set(7u32, Some(ms(10)));
        t.set(7, Some(ms(50)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_expired(ms(20)), None);
        assert_eq!(t.pop_expired(ms(50)), Some(7));
        t.set(7, Some(ms(60)));
        t.set(7, None);
        assert!(t.is_empty());
    }

    #[test]
    fn many_deadlines_at_one_instant_all_fire_once_in_arming_order() {
        let mut t = Timers::new();
        for k in 0..1000u32 {
            t.set(k, Some(ms(5)));
        }
        let fired: Vec<u32> = std::iter::from_fn(|| t.pop_expired(ms(5))).collect();
        assert_eq!(fired, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn rearming_over_and_over_keeps_memory_bounded() {
        let mut t = Timers::new();
        for k in 0..100u32 {
            t.set(k, Some(ms(1_000_000)));
        }
        // Pushing deadlines later and later leaves stale entries below
        // the top, where `tidy` cannot pop them: only compaction can.
        for round in 1..=1000u64 {
            for k in 0..100u32 {
                t.set(k, Some(ms(1_000_000 + round)));
            }
            assert!(t.heap.len() <= 2 * t.len() + 64, "{} entries", t.heap.len());
        }
        assert_eq!(t.next_deadline(), Some(ms(1_001_000)));
        let fired: Vec<u32> = std::iter::from_fn(|| t.pop_expired(ms(2_000_000))).collect();
        assert_eq!(fired, (0..100).collect::<Vec<_>>());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, u16),
        Cancel(u8),
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), any::<u16>()).prop_map(|(k, d)| Op::Set(k % 16, d)),
            any::<u8>().prop_map(|k| Op::Cancel(k % 16)),
            any::<u16>().prop_map(|d| Op::Advance(d % 2000)),
        ]
    }

    proptest! {
        /// Random operation sequences agree with a naive model: a map from key
        /// to deadline, scanned in full.
        #[test]
        fn timers_agree_with_a_naive_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut t = Timers::new();
            let mut model: BTreeMap<u8, Instant> = BTreeMap::new();
            let mut now = Instant::ZERO;
            for op in ops {
                match op {
                    Op::Set(k, d) => {
                        let at = now + Duration::from_millis(u64::from(d));
                        t.set(k, Some(at));
                        model.insert(k, at);
                    }
                    Op::Cancel(k) => {
                        t.cancel(k);
                        model.remove(&k);
                    }
                    Op::Advance(d) => {
                        now = now + Duration::from_millis(u64::from(d));
                        let mut fired = Vec::new();
                        while let Some(k) = t.pop_expired(now) {
                            fired.push(k);
                        }
                        let mut expected: Vec<(Instant, u8)> = model
                            .iter()
                            .filter(|(_, &at)| at <= now)
                            .map(|(&k, &at)| (at, k))
                            .collect();
                        expected.sort_by_key(|&(at, _)| at);
                        for &(_, k) in &expected {
                            model.remove(&k);
                        }
                        let mut fired_sorted = fired.clone();
                        fired_sorted.sort_unstable();
                        let mut expected_keys: Vec<u8> = expected.iter().map(|&(_, k)| k).collect();
                        expected_keys.sort_unstable();
                        prop_assert_eq!(fired_sorted, expected_keys);
                        // Deadlines come out in non-decreasing order.
                        let ats: Vec<Instant> = fired.iter().map(|k| expected.iter().find(|e| e.1 == *k).unwrap().0).collect();
                        prop_assert!(ats.windows(2).all(|w| w[0] <= w[1]));
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(t.next_deadline(), model.values().min().copied());
            }
        }
    }
}

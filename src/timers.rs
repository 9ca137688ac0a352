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
//! Cost: `set`, `cancel` and `pop_expired` are O(log n) (a `BTreeSet` ordered
//! by deadline plus a `HashMap` from key to its entry); `next_deadline` is
//! O(log n). Thousands of parked long polls are normal.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in microseconds since an origin the caller chose (the
/// server uses its own start). Sans-I/O code only ever compares and adds these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis * 1000)
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

/// A set of deadlines, at most one per key.
#[derive(Debug)]
pub struct Timers<K> {
    // (deadline, insertion sequence, key): the sequence orders keys that share
    // a deadline by arming order and makes every entry unique.
    by_deadline: BTreeSet<(Instant, u64, K)>,
    by_key: HashMap<K, (Instant, u64)>,
    next_seq: u64,
}

impl<K: Copy + Ord + Hash> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_deadline: BTreeSet::new(),
            by_key: HashMap::new(),
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
        match deadline {
            None => self.cancel(key),
            Some(at) => {
                if let Some(&(old, _)) = self.by_key.get(&key) {
                    if old == at {
                        return; // unchanged: keep its place among equals
                    }
                }
                self.cancel(key);
                let seq = self.next_seq;
                self.next_seq += 1;
                self.by_deadline.insert((at, seq, key));
                self.by_key.insert(key, (at, seq));
            }
        }
    }

    /// Forgets `key`'s deadline, if any.
    pub fn cancel(&mut self, key: K) {
        if let Some((at, seq)) = self.by_key.remove(&key) {
            self.by_deadline.remove(&(at, seq, key));
        }
    }

    /// `key`'s current deadline.
    pub fn deadline(&self, key: K) -> Option<Instant> {
        self.by_key.get(&key).map(|&(at, _)| at)
    }

    /// The earliest deadline of all, which the loop turns into its `poll`
    /// timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|&(at, _, _)| at)
    }

    /// Removes and returns one key whose deadline is at or before `now`,
    /// earliest first; `None` when nothing has expired. Each armed deadline
    /// is returned exactly once.
    pub fn pop_expired(&mut self, now: Instant) -> Option<K> {
        let &(at, seq, key) = self.by_deadline.first()?;
        if at > now {
            return None;
        }
        self.by_deadline.remove(&(at, seq, key));
        self.by_key.remove(&key);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

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

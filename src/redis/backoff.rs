//! When to try a lost connection again: exponential backoff with jitter,
//! from a seeded generator (no OS randomness, no clock: the log stays
//! replayable).
//!
//! The delay before attempt `k` (0 after a success) is drawn uniformly from
//! `[d/2, d]` with `d = min(RECONNECT_MAX, RECONNECT_MIN × 2^k)` ("equal
//! jitter"): nodes that lost Redis together do not all come back in the
//! same millisecond, and none waits less than half its step.

use std::time::Duration;

/// The first delay after a connection is lost.
pub const RECONNECT_MIN: Duration = Duration::from_millis(50);

/// The longest delay between two attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, a good spread
/// for jitter and fresh names; not for secrets.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Consecutive failures of one connection, and the delays they earn.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    attempts: u32,
}

impl Backoff {
    /// The delay before the next attempt, counting one more failure.
    pub fn next_delay(&mut self, rng: &mut SplitMix64) -> Duration {
        let step = RECONNECT_MIN
            .saturating_mul(1u32 << self.attempts.min(16))
            .min(RECONNECT_MAX);
        self.attempts = self.attempts.saturating_add(1);
        let half = step / 2;
        let jitter_ms = rng.next_u64() % (half.as_millis() as u64 + 1);
        half + Duration::from_millis(jitter_ms)
    }

    /// The connection works again: the next failure starts from the
    /// shortest delay.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_each_within_its_jitter_band() {
        let mut rng = SplitMix64::new(7);
        let mut b = Backoff::default();
        let mut step = RECONNECT_MIN;
        for _ in 0..12 {
            let d = b.next_delay(&mut rng);
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} outside [{:?}, {step:?}]",
                step / 2
            );
            step = (step * 2).min(RECONNECT_MAX);
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= RECONNECT_MIN);
    }

    #[test]
    fn the_same_seed_gives_the_same_delays_and_others_spread() {
        let delays = |seed| {
            let mut rng = SplitMix64::new(seed);
            let mut b = Backoff::default();
            (0..8).map(|_| b.next_delay(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(delays(1), delays(1));
        // Ten nodes failing together: their third attempts do not coincide.
        let third: std::collections::HashSet<_> = (0..10).map(|s| delays(s)[3]).collect();
        assert!(third.len() >= 5, "{third:?}");
    }
}

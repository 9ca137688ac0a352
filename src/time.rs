//! Time as the sans-I/O core sees it: an [`Instant`] passed in as an
//! argument, never read from a clock.
//!
//! The event loop reads the OS clock once per turn and turns it into an
//! [`Instant`]; tests and fuzzers make their own. This module imports
//! nothing from the crate, so every other module can use it without a cycle
//! (like smoltcp's `time.rs`).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Instant::from_millis(5);
        assert_eq!(t.as_micros(), 5_000);
        assert_eq!(t - Instant::from_millis(7), Duration::ZERO);
        assert_eq!(t.saturating_since(Instant::ZERO), Duration::from_millis(5));
        assert_eq!(
            Instant::from_micros(u64::MAX - 1) + Duration::from_secs(1),
            Instant::from_micros(u64::MAX)
        );
        assert_eq!(t + Duration::MAX, Instant::from_micros(u64::MAX));
    }
}

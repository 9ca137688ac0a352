//! The server-wide budget for messages being assembled: publish bodies
//! being read and WebSocket messages being reassembled from frames
//! (`--assembly-memory`).
//!
//! One [`Assembly`] is owned by the event loop and lent to every session
//! through its [`super::Ctx`]. Each session holds a *charge*: the bytes its
//! partial message holds beyond [`ASSEMBLY_ALLOWANCE`], set after every
//! input ([`Assembly::charge`]) and returned when the message completes or
//! the connection closes, however it closes ([`Assembly::release`]). A charge
//! that would pass the budget is refused, and the session refuses the message
//! with its wire consequence: `503` for a publish body, close `1013` for a
//! WebSocket message. Without it, 24 `/echo` peers each leaving a
//! 16 MiB message unfinished held 382 MiB.

use crate::config::ASSEMBLY_ALLOWANCE;

/// Bytes held by partial messages over all connections, against a limit.
#[derive(Debug, Default)]
pub struct Assembly {
    used: usize,
    limit: usize,
    /// Messages refused because the budget was spent.
    refusals: u64,
}

impl Assembly {
    /// A budget of `limit` bytes, none used.
    pub fn new(limit: usize) -> Assembly {
        Assembly {
            used: 0,
            limit,
            refusals: 0,
        }
    }

    /// Bytes charged now, over all connections.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The budget (`--assembly-memory`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Messages refused so far.
    pub fn refusals(&self) -> u64 {
        self.refusals
    }

    /// A connection whose charge is `*charge` now holds `held` bytes of a
    /// partial message: moves its charge to what it holds beyond the
    /// allowance. Growing past the budget is refused (`false`, the charge
    /// unchanged, a refusal counted); shrinking always succeeds.
    pub fn charge(&mut self, charge: &mut usize, held: usize) -> bool {
        let want = held.saturating_sub(ASSEMBLY_ALLOWANCE);
        if want > *charge && self.used - *charge + want > self.limit {
            self.refusals += 1;
            return false;
        }
        self.used = self.used - *charge + want;
        *charge = want;
        true
    }

    /// The connection's message completed or the connection closed.
    pub fn release(&mut self, charge: &mut usize) {
        self.used -= *charge;
        *charge = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_past_the_allowance_count_until_released() {
        let mut a = Assembly::new(100_000);
        let (mut x, mut y) = (0, 0);
        assert!(a.charge(&mut x, ASSEMBLY_ALLOWANCE));
        assert_eq!(a.used(), 0, "within the allowance");
        assert!(a.charge(&mut x, ASSEMBLY_ALLOWANCE + 60_000));
        assert!(
            !a.charge(&mut y, ASSEMBLY_ALLOWANCE + 50_000),
            "over the budget"
        );
        assert_eq!((a.used(), y, a.refusals()), (60_000, 0, 1));
        assert!(a.charge(&mut y, ASSEMBLY_ALLOWANCE + 40_000));
        assert!(a.charge(&mut x, 10), "shrinking always passes");
        a.release(&mut y);
        assert_eq!((a.used(), x, y), (0, 0, 0));
    }
}

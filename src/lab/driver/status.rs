//! The questions a run asks the loop between turns: is everyone
//! subscribed, published, up to date, closed; and the per-transport sums.

use super::{Driver, Role};
use crate::lab::client::{Client, Counters};
use crate::lab::measure::Tracker;
use crate::lab::Column;

impl Driver {
    fn subscribers(&self) -> impl Iterator<Item = (&Client, &Tracker)> {
        self.slots.iter().filter_map(|s| match &s.role {
            Role::Subscriber { client, tracker } => Some((&**client, tracker)),
            Role::Publisher(_) => None,
        })
    }

    /// Every subscriber is subscribed (or failed) and every publisher
    /// connected.
    pub fn all_ready(&self) -> bool {
        self.slots.iter().all(|s| match &s.role {
            Role::Subscriber { client, .. } => client.is_ready() || client.is_failed(),
            Role::Publisher(_) => s.link.as_ref().is_some_and(|l| l.connected),
        })
    }

    /// Every message is published and acknowledged.
    pub fn publish_done(&self) -> bool {
        let Some(s) = self.schedule else {
            return false;
        };
        self.sent >= s.total
            && self.slots.iter().all(|s| match &s.role {
                Role::Publisher(p) => p.outstanding == 0,
                Role::Subscriber { .. } => true,
            })
    }

    /// Every subscriber has every message (or failed).
    pub fn all_complete(&self) -> bool {
        self.subscribers()
            .all(|(c, t)| c.is_failed() || t.distinct >= self.sent)
    }

    /// Every subscriber has finished and closed its socket.
    pub fn all_done(&self) -> bool {
        self.subscribers().all(|(c, _)| c.is_done())
    }

    /// Subscribers of column `t` that have every message so far.
    pub fn complete_count(&self, t: Column) -> (usize, usize) {
        let mut done = 0;
        let mut all = 0;
        for (c, tr) in self.subscribers() {
            if c.column() == t {
                all += 1;
                done += usize::from(tr.distinct >= self.sent);
            }
        }
        (done, all)
    }

    /// Sum of the machine counters of the subscribers of column `t`.
    pub fn counters(&self, t: Column) -> Counters {
        let mut sum = Counters::default();
        for (c, _) in self.subscribers() {
            if c.column() == t {
                sum.add(c.counters());
            }
        }
        sum
    }

    /// Messages the subscribers of column `t` never received, summed.
    pub fn lost(&self, t: Column) -> u64 {
        self.subscribers()
            .filter(|(c, _)| c.column() == t)
            .map(|(_, tr)| self.sent.saturating_sub(tr.distinct))
            .sum()
    }
}

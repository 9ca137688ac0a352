//! What the lab counts, per subscriber ([`Tracker`]) and per transport
//! ([`Tally`]). Pure data: the event loop adds socket and byte counts, the
//! clients' deliveries go through [`Tally::record`].

use std::time::Duration;

use super::client::Delivery;
use super::payload;
use super::updates::Update;

/// Which of the run's messages one subscriber has seen.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// Bit `seq` set: message `seq` arrived.
    seen: Vec<u64>,
    /// Messages seen at least once.
    pub distinct: u64,
    /// Arrivals of a message already seen.
    pub duplicates: u64,
    /// The highest sequence number seen.
    pub highest: u64,
    /// First arrivals of a message older than one already seen.
    pub out_of_order: u64,
}

impl Tracker {
    /// Records message `seq`; true the first time.
    pub fn record(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= mask;
        self.distinct += 1;
        if seq < self.highest {
            self.out_of_order += 1;
        }
        self.highest = self.highest.max(seq);
        true
    }

    /// Whether message `seq` arrived.
    pub fn has(&self, seq: u64) -> bool {
        self.seen
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }
}

/// Everything measured for one transport.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Publish→deliver latency of each arrival, in µs.
    pub latencies_us: Vec<u64>,
    /// Messages received, duplicates included.
    pub received: u64,
    /// Messages received for the first time by their subscriber.
    pub distinct: u64,
    pub duplicates: u64,
    /// First arrivals older than a message the subscriber already had.
    pub out_of_order: u64,
    /// Arrivals on a socket that had already carried a response or frame.
    pub reused: u64,
    /// Gap notices and the messages they say were missed.
    pub missed_notices: u64,
    pub missed_messages: u64,
    pub resets: u64,
    /// Messages whose data was not the lab's (another publisher's).
    pub foreign: u64,
    /// Sockets, from the client side.
    pub sockets_opened: u64,
    pub sockets_closed: u64,
    pub lifetime_us: u64,
    /// Bytes written to and read from the client sockets.
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Tally {
    /// Records one delivery read at `now_us` (µs since the lab started).
    pub fn record(&mut self, tracker: &mut Tracker, d: &Delivery, now_us: u64) {
        match &d.update {
            Update::Message { data, .. } => {
                let Some(stamp) = payload::decode(data) else {
                    self.foreign += 1;
                    return;
                };
                self.received += 1;
                self.latencies_us
                    .push(now_us.saturating_sub(stamp.published_us));
                if d.reused {
                    self.reused += 1;
                }
                let before = tracker.out_of_order;
                if tracker.record(stamp.seq) {
                    self.distinct += 1;
                    self.out_of_order += tracker.out_of_order - before;
                } else {
                    self.duplicates += 1;
                }
            }
            Update::Missed(n) => {
                self.missed_notices += 1;
                self.missed_messages += n;
            }
            Update::Reset => self.resets += 1,
        }
    }

    /// Adds `other`'s counts (latency samples included).
    pub fn add(&mut self, other: &Tally) {
        self.latencies_us.extend_from_slice(&other.latencies_us);
        self.received += other.received;
        self.distinct += other.distinct;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.reused += other.reused;
        self.missed_notices += other.missed_notices;
        self.missed_messages += other.missed_messages;
        self.resets += other.resets;
        self.foreign += other.foreign;
        self.sockets_opened += other.sockets_opened;
        self.sockets_closed += other.sockets_closed;
        self.lifetime_us += other.lifetime_us;
        self.bytes_up += other.bytes_up;
        self.bytes_down += other.bytes_down;
    }

    /// A socket closed after `lifetime`.
    pub fn socket_closed(&mut self, lifetime: Duration) {
        self.sockets_closed += 1;
        self.lifetime_us += lifetime.as_micros() as u64;
    }

    /// Mean lifetime of the closed sockets.
    pub fn mean_lifetime(&self) -> Option<Duration> {
        (self.sockets_closed > 0)
            .then(|| Duration::from_micros(self.lifetime_us / self.sockets_closed))
    }
}

/// Latency summary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The nearest-rank percentiles of `samples` (µs); `None` when empty.
pub fn latency(samples: &mut [u64]) -> Option<Latency> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = |p: f64| {
        // Nearest rank: the smallest sample with at least p of them at or
        // below it.
        let r = (p * samples.len() as f64).ceil() as usize;
        samples[r.clamp(1, samples.len()) - 1]
    };
    let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
    Some(Latency {
        mean: Duration::from_micros((sum / samples.len() as u128) as u64),
        p50: Duration::from_micros(rank(0.50)),
        p99: Duration::from_micros(rank(0.99)),
        max: Duration::from_micros(samples[samples.len() - 1]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::payload::{encode, Stamp};

    fn message(seq: u64, published_us: u64, reused: bool) -> Delivery {
        Delivery {
            update: Update::Message {
                id: format!("E-{seq}"),
                data: encode(Stamp { seq, published_us }, 32),
            },
            reused,
        }
    }

    #[test]
    fn duplicates_and_latencies_are_counted_per_subscriber() {
        let mut tally = Tally::default();
        let (mut a, mut b) = (Tracker::default(), Tracker::default());
        tally.record(&mut a, &message(1, 100, false), 400);
        tally.record(&mut b, &message(1, 100, true), 500);
        tally.record(&mut a, &message(1, 100, true), 900);
        tally.record(&mut a, &message(70, 1000, true), 1100);
        tally.record(&mut a, &message(3, 1000, true), 1100);
        assert_eq!(
            (tally.received, tally.distinct, tally.duplicates),
            (5, 4, 1)
        );
        assert_eq!(tally.out_of_order, 1);
        assert_eq!(tally.reused, 4);
        assert_eq!(tally.latencies_us, [300, 400, 800, 100, 100]);
        assert!(a.has(70) && !b.has(70));
        assert_eq!((a.distinct, a.duplicates, a.out_of_order), (3, 1, 1));
    }

    #[test]
    fn notices_and_foreign_messages_are_not_deliveries() {
        let mut tally = Tally::default();
        let mut t = Tracker::default();
        let other = Delivery {
            update: Update::Message {
                id: "E-1".into(),
                data: "hello".into(),
            },
            reused: false,
        };
        tally.record(&mut t, &other, 0);
        let gap = Delivery {
            update: Update::Missed(3),
            reused: false,
        };
        tally.record(&mut t, &gap, 0);
        assert_eq!((tally.received, tally.foreign), (0, 1));
        assert_eq!((tally.missed_notices, tally.missed_messages), (1, 3));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut s: Vec<u64> = (1..=100).rev().collect();
        let l = latency(&mut s).unwrap();
        assert_eq!(l.p50, Duration::from_micros(50));
        assert_eq!(l.p99, Duration::from_micros(99));
        assert_eq!(l.max, Duration::from_micros(100));
        assert_eq!(l.mean, Duration::from_micros(50));
        assert_eq!(latency(&mut [7]).unwrap().p99, Duration::from_micros(7));
        assert!(latency(&mut []).is_none());
    }
}

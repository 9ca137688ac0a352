//! The body of every message the lab publishes: its sequence number and the
//! instant it was written to the server, then padding up to `--size` bytes.
//!
//! ```text
//! 17 2503114 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…
//! ^  ^       ^
//! |  |       padding (ASCII, so JSON and SSE carry it unchanged)
//! |  microseconds since the lab started, when the publish request was written
//! sequence number, 1, 2, 3, … for the whole run
//! ```
//!
//! Publisher and clients share one process and one clock, so a client turns
//! the stamp into a publish→deliver latency by subtracting, and the sequence
//! number tells it which message it is (loss and duplicates). No newline, no
//! quote, no byte that any transport escapes: every transport carries exactly
//! `--size` bytes of data per message.

/// What a client reads back from a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The lab's sequence number, from 1.
    pub seq: u64,
    /// When the publish request was written, in µs since the lab started.
    pub published_us: u64,
}

/// The message data for `stamp`, padded with `x` to `size` bytes. A `size`
/// smaller than the stamp itself gives just the stamp.
pub fn encode(stamp: Stamp, size: usize) -> String {
    let mut s = format!("{} {} ", stamp.seq, stamp.published_us);
    if s.len() < size {
        s.extend(std::iter::repeat('x').take(size - s.len()));
    }
    s
}

/// Reads the stamp at the start of `data`; `None` when `data` is not a
/// message the lab published.
pub fn decode(data: &str) -> Option<Stamp> {
    let mut fields = data.splitn(3, ' ');
    let seq = fields.next()?.parse().ok()?;
    let published_us = fields.next()?.parse().ok()?;
    fields.next()?;
    Some(Stamp { seq, published_us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_round_trips_and_the_data_has_the_asked_size() {
        let stamp = Stamp {
            seq: 17,
            published_us: 2_503_114,
        };
        let data = encode(stamp, 128);
        assert_eq!(data.len(), 128);
        assert_eq!(decode(&data), Some(stamp));
    }

    #[test]
    fn a_size_below_the_stamp_gives_the_bare_stamp() {
        let stamp = Stamp {
            seq: 1,
            published_us: 5,
        };
        assert_eq!(encode(stamp, 0), "1 5 ");
        assert_eq!(decode("1 5 "), Some(stamp));
    }

    #[test]
    fn foreign_data_is_not_a_stamp() {
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("1 two x"), None);
        assert_eq!(decode("1 2"), None);
    }
}

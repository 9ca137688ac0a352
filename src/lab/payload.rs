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
//! With `--payload json` the data is instead a dashboard update, a JSON
//! object whose first two members are the stamp and whose size is `--size`
//! bytes too (figures that change with the sequence number, then a history
//! of samples, then spaces), the kind of message that compression is for:
//!
//! ```text
//! {"seq":17,"published_us":2503114,"type":"service.metrics","service":"checkout-api",…}
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

/// What the data of a message looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The stamp, then `x` up to the size.
    Padding,
    /// A JSON dashboard update of the size (at least the stamp's object).
    Json,
}

impl Kind {
    /// `padding` or `json`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Padding => "padding",
            Kind::Json => "json",
        }
    }
}

/// The message data of `kind` for `stamp`, `size` bytes long (or just the
/// stamp when that is longer).
pub fn encode_as(kind: Kind, stamp: Stamp, size: usize) -> String {
    match kind {
        Kind::Padding => encode(stamp, size),
        Kind::Json => encode_json(stamp, size),
    }
}

/// A monitoring dashboard's update for one service: the stamp, then the
/// members below while they fit in `size`, then samples of a history, then
/// spaces up to exactly `size` bytes.
pub fn encode_json(stamp: Stamp, size: usize) -> String {
    let r = stamp.seq.wrapping_mul(2_654_435_761) % 10_000;
    let mut s = format!(
        r#"{{"seq":{},"published_us":{}"#,
        stamp.seq, stamp.published_us
    );
    let members = [
        r#","type":"service.metrics""#.to_string(),
        r#","service":"checkout-api""#.into(),
        r#","region":"eu-west-1""#.into(),
        format!(r#","host":"web-{:02}.eu-west-1.internal""#, r % 16),
        format!(r#","requests":{},"errors":{}"#, 15_000 + r, r % 37),
        format!(
            r#","status":"{}""#,
            if r % 37 > 30 { "degraded" } else { "ok" }
        ),
        format!(
            r#","latency_ms":{{"p50":{}.{},"p95":{}.{},"p99":{}.{}}}"#,
            18 + r % 9,
            r % 10,
            70 + r % 31,
            (r / 10) % 10,
            120 + r % 47,
            (r / 100) % 10
        ),
        format!(
            r#","cpu":0.{:02},"memory_mb":{}"#,
            40 + r % 55,
            1_700 + r % 300
        ),
        format!(
            r#","instances":{{"healthy":{},"draining":{},"unhealthy":0}}"#,
            10 + r % 4,
            r % 2
        ),
        r#","deploy":{"version":"2026.12.06-3","canary":false}"#.into(),
    ];
    for m in members {
        if s.len() + m.len() < size {
            s.push_str(&m);
        }
    }
    // `,"history":[` + samples + `]` + `}`.
    if s.len() + 16 < size {
        s.push_str(r#","history":["#);
        let mut x = r;
        let mut first = true;
        loop {
            x = (x * 7_919 + 17) % 10_000;
            let sample = format!("{}{}", if first { "" } else { "," }, 15_000 + x % 900);
            if s.len() + sample.len() + 2 > size {
                break;
            }
            s.push_str(&sample);
            first = false;
        }
        s.push(']');
    }
    while s.len() + 1 < size {
        s.push(' ');
    }
    s.push('}');
    s
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
    if let Some(rest) = data.strip_prefix(r#"{"seq":"#) {
        let (seq, rest) = rest.split_once(r#","published_us":"#)?;
        let end = rest.find([',', '}'])?;
        return Some(Stamp {
            seq: seq.parse().ok()?,
            published_us: rest[..end].parse().ok()?,
        });
    }
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
    fn a_json_update_has_the_size_parses_and_round_trips_its_stamp() {
        let stamp = Stamp {
            seq: 123_456,
            published_us: 9_876_543_210,
        };
        for size in [0, 40, 128, 380, 1000, 4096] {
            let data = encode_as(Kind::Json, stamp, size);
            let v: serde_json::Value = serde_json::from_str(&data).expect("valid JSON");
            assert_eq!(v["seq"], 123_456);
            assert_eq!(decode(&data), Some(stamp), "{data}");
            let bare = encode_json(stamp, 0).len();
            assert_eq!(data.len(), size.max(bare), "{data}");
        }
        let big = encode_json(stamp, 1000);
        assert!(big.contains(r#""history":[15"#), "{big}");
        assert!(
            big.matches(' ').count() < 6,
            "samples, not spaces, fill it: {big}"
        );
        assert_ne!(
            encode_json(stamp, 380),
            encode_json(Stamp { seq: 2, ..stamp }, 380)
        );
        assert_eq!(decode(r#"{"seq":1}"#), None);
    }

    #[test]
    fn foreign_data_is_not_a_stamp() {
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("1 two x"), None);
        assert_eq!(decode("1 2"), None);
    }
}

//! Ids, cursors and topic names: the vocabulary that the codecs, the
//! sessions and the hub share.
//!
//! A message id is `E-N`: `E` is the hub's epoch (ASCII alphanumeric; the
//! server writes its start time in [`base36`]) and `N` a hub-wide sequence
//! 1, 2, 3, … shared by every topic. A [`Cursor`] is what a reader sends
//! back: "messages after this id".
//!
//! This module imports nothing from the crate but `config`, so `wire`,
//! `hub`, `timers` and `session` can all use it without importing each
//! other.

use std::hash::Hasher;

use crate::config::MAX_TOPIC_LEN;

/// Whether `name` is a valid topic: 1–128 bytes of `[A-Za-z0-9._~-]`.
pub fn is_valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// Where a reader wants to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// No cursor: only messages published from now on.
    Now,
    /// `since=0`: everything still kept.
    All,
    /// `since=E-N`: messages after `N` of epoch `E`.
    After { epoch: String, seq: u64 },
}

impl Cursor {
    /// Parses `0` or `E-N` (the epoch is ASCII alphanumeric).
    pub fn parse(s: &str) -> Option<Cursor> {
        if s == "0" {
            return Some(Cursor::All);
        }
        let (epoch, seq) = s.split_once('-')?;
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = seq.parse().ok()?;
        Some(Cursor::After {
            epoch: epoch.to_string(),
            seq,
        })
    }
}

/// `n` in base 36 (`0-9a-z`): hub epochs and the lab's topic names are
/// the start time in milliseconds written this way.
pub fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    // ASCII digits only.
    String::from_utf8(s).unwrap_or_default()
}

/// `E-seq`, without `format!` (ids are written on every poll response).
/// The epoch must be ASCII (the hubs check theirs when they are made).
pub fn format_id(epoch: &str, seq: u64) -> String {
    let mut id = Vec::with_capacity(epoch.len() + 21);
    id.extend_from_slice(epoch.as_bytes());
    id.push(b'-');
    push_decimal(&mut id, seq);
    // ASCII epoch, `-` and digits.
    String::from_utf8(id).unwrap_or_default()
}

/// Hashes subscriber ids with one multiplication instead of SipHash. The
/// ids are connection tokens the server picks, so no client can choose
/// them to collide (topic names, which clients choose, keep SipHash).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Appends `n` in decimal: what `write!(out, "{n}")` does, without the
/// formatting machinery, for the numbers written on every response.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(1_763_700_000_000), "mi8dfxmo");
        assert_eq!(u64::from_str_radix(&base36(u64::MAX), 36), Ok(u64::MAX));
    }

    #[test]
    fn cursors_parse_zero_and_epoch_dash_seq_only() {
        assert_eq!(Cursor::parse("0"), Some(Cursor::All));
        assert_eq!(
            Cursor::parse("e1-5"),
            Some(Cursor::After {
                epoch: "e1".into(),
                seq: 5
            })
        );
        for bad in ["", "5", "-5", "e1-", "e1-x", "e 1-5", "e1-5-6", "e1--5"] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 65_535, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn ids_are_the_epoch_a_dash_and_the_sequence() {
        assert_eq!(format_id("e1", 0), "e1-0");
        assert_eq!(
            format_id("mi8dfxmo", u64::MAX),
            format!("mi8dfxmo-{}", u64::MAX)
        );
    }
}

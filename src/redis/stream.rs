//! Reading the shared log back: the commands a node's tail sends and what
//! their replies mean.
//!
//! Each round of the tail is two pipelined commands on the tail's own
//! connection:
//!
//! 1. `HMGET <meta> epoch seq` ([`meta_command`]): the log's epoch and last
//!    `N` as Redis has them now ([`decode_meta_reply`]). An epoch other than
//!    the node's means Redis lost the log and another epoch began; no epoch
//!    means Redis lost it and nobody appended since; an `N` below what the
//!    node has read means Redis went back in time (restored from an older
//!    snapshot).
//! 2. `XREAD COUNT <count> BLOCK <ms> STREAMS <stream> <N>-0`
//!    ([`ReadCommand`]): the entries after the last one the node has read,
//!    waiting up to `ms` for one to come ([`decode_read_reply`]). Redis
//!    answers the null array when none came in time.
//!
//! Entries are `N-0` with fields `t` (topic), `d` (data) and `o` (origin,
//! [`super::script::Origin`]), as the append script writes them. Ids are
//! consecutive, so the first entry read after `N` tells exactly how many
//! were trimmed before the node could read them.

use crate::wire::resp::{Arg, Reader, Reply, Token};

use super::script::{kind_of_field, LogKeys};
use crate::log::Kind;

/// `HMGET <meta> epoch seq`.
pub fn meta_command(keys: &LogKeys) -> [Arg<'_>; 4] {
    [
        Arg::from("HMGET"),
        Arg::Bytes(keys.meta()),
        Arg::from("epoch"),
        Arg::from("seq"),
    ]
}

/// What the log's hash holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The epoch, or `None`: Redis has none (a new or lost log).
    pub epoch: Option<String>,
    /// The last `N` appended (0 when absent).
    pub seq: u64,
}

/// A reply that is not what the command's contract says: the connection's
/// peer is not the Redis the log expects. Its text says what came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unexpected(pub String);

impl std::fmt::Display for Unexpected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn unexpected(what: &str, reply: &Reply) -> Unexpected {
    let mut text = format!("{what}: {reply:?}");
    text.truncate(200);
    Unexpected(text)
}

/// Reads `HMGET <meta> epoch seq`'s reply.
pub fn decode_meta_reply(reply: &Reply) -> Result<Meta, Unexpected> {
    let Reply::Array(items) = reply else {
        return Err(unexpected("HMGET answered", reply));
    };
    let [epoch, seq] = items.as_slice() else {
        return Err(unexpected("HMGET answered", reply));
    };
    let epoch = match epoch {
        Reply::NullBulk => None,
        Reply::Bulk(e) if !e.is_empty() && e.iter().all(u8::is_ascii_alphanumeric) => {
            Some(String::from_utf8_lossy(e).into_owned())
        }
        _ => return Err(unexpected("the log's epoch is", epoch)),
    };
    let seq = match seq {
        Reply::NullBulk => 0,
        Reply::Bulk(n) => parse_u64(n).ok_or_else(|| unexpected("the log's seq is", seq))?,
        _ => return Err(unexpected("the log's seq is", seq)),
    };
    Ok(Meta { epoch, seq })
}

/// `XREAD COUNT <count> BLOCK <block_ms> STREAMS <stream> <after>-0`: the
/// `XREAD` of one round (it owns the text of the id).
pub struct ReadCommand {
    id: Vec<u8>,
    count: u64,
    block_ms: u64,
}

impl ReadCommand {
    /// Entries after `after`, at most `count`, waiting up to `block_ms`.
    pub fn new(after: u64, count: u64, block_ms: u64) -> ReadCommand {
        let mut id = Vec::with_capacity(24);
        crate::ids::push_decimal(&mut id, after);
        id.extend_from_slice(b"-0");
        ReadCommand {
            id,
            count,
            block_ms,
        }
    }

    /// The arguments.
    pub fn args<'a>(&'a self, keys: &'a LogKeys) -> [Arg<'a>; 8] {
        [
            Arg::from("XREAD"),
            Arg::from("COUNT"),
            Arg::Uint(self.count.max(1)),
            Arg::from("BLOCK"),
            Arg::Uint(self.block_ms),
            Arg::from("STREAMS"),
            Arg::Bytes(keys.stream()),
            Arg::Bytes(&self.id),
        ]
    }
}

/// One entry of the log as read back, borrowed from the reply's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its `N`.
    pub seq: u64,
    pub topic: &'a [u8],
    pub data: &'a [u8],
    /// The field `o`, empty when absent.
    pub origin: &'a [u8],
    /// The field `k` (text when absent).
    pub kind: Kind,
}

/// Reads `XREAD`'s reply from its bytes (taken raw: see
/// [`crate::wire::resp::Decoder::next_raw`]): the entries in id order
/// (none when it timed out), borrowing their fields from `reply`. Entries
/// whose id is not `N-0` were not written by the append script and are
/// left out.
pub fn decode_read_reply(reply: &[u8]) -> Result<Vec<Entry<'_>>, Unexpected> {
    let mut r = Reader::new(reply);
    // What went wrong, with the reply's start (not cut inside a character).
    let bad = |what: &str| {
        let start = String::from_utf8_lossy(&reply[..reply.len().min(160)]);
        Unexpected(format!("{what}: {start:?}"))
    };
    let streams = match r.next_token() {
        Some(Token::NullArray) => return Ok(Vec::new()),
        Some(Token::Array(streams)) => streams,
        _ => return Err(bad("XREAD answered")),
    };
    let mut out = Vec::new();
    for _ in 0..streams {
        let (Some(2), Some(_key), Some(entries)) = (r.array(), r.bulk(), r.array()) else {
            return Err(bad("XREAD's stream is not [key, entries]"));
        };
        out.reserve(entries);
        for _ in 0..entries {
            let (Some(2), Some(id), Some(fields)) = (r.array(), r.bulk(), r.array()) else {
                return Err(bad("XREAD's entry is not [id, fields]"));
            };
            let mut e = Entry {
                seq: 0,
                topic: &[],
                data: &[],
                origin: &[],
                kind: Kind::Text,
            };
            for _ in 0..fields / 2 {
                let (Some(name), Some(value)) = (r.bulk(), r.bulk()) else {
                    return Err(bad("XREAD's fields are not bulk strings"));
                };
                match name {
                    b"t" => e.topic = value,
                    b"d" => e.data = value,
                    b"o" => e.origin = value,
                    b"k" => e.kind = kind_of_field(value),
                    _ => {}
                }
            }
            if fields % 2 == 1 && r.skip_value().is_none() {
                return Err(bad("XREAD's entry is cut short"));
            }
            if let Some(seq) = id.strip_suffix(b"-0").and_then(parse_u64) {
                e.seq = seq;
                out.push(e);
            }
        }
    }
    if !out.windows(2).all(|w| w[0].seq < w[1].seq) {
        out.sort_by_key(|e| e.seq);
    }
    Ok(out)
}

/// Decimal digits as a `u64` (no sign, no spaces).
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::resp::encode_command;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Reply {
        Reply::Array(vec![
            bulk(id),
            Reply::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn the_read_names_the_stream_and_the_id_after_which_to_read() {
        let keys = LogKeys::new("{p}:");
        let read = ReadCommand::new(41, 100, 1000);
        let mut out = Vec::new();
        encode_command(&mut out, &read.args(&keys));
        let expected = "*8\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$3\r\n100\r\n$5\r\nBLOCK\r\n\
                        $4\r\n1000\r\n$7\r\nSTREAMS\r\n$7\r\n{p}:log\r\n$4\r\n41-0\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        let mut out = Vec::new();
        encode_command(&mut out, &meta_command(&keys));
        assert_eq!(
            out,
            b"*4\r\n$5\r\nHMGET\r\n$8\r\n{p}:meta\r\n$5\r\nepoch\r\n$3\r\nseq\r\n"
        );
    }

    fn wire(reply: &Reply) -> Vec<u8> {
        let mut out = Vec::new();
        crate::wire::resp::encode_reply(&mut out, reply);
        out
    }

    #[test]
    fn entries_come_back_with_topic_data_origin_and_kind_in_id_order() {
        let reply = wire(&Reply::Array(vec![Reply::Array(vec![
            bulk("{p}:log"),
            Reply::Array(vec![
                entry("8-0", &["t", "a", "d", "eA==", "o", "n1:3", "k", "b"]),
                entry("7-0", &["d", "y", "t", "b", "x"]),
                entry("1700000000000-5", &["t", "a", "d", "by hand"]),
            ]),
        ])]));
        let entries = decode_read_reply(&reply).unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    seq: 7,
                    topic: b"b",
                    data: b"y",
                    origin: b"",
                    kind: Kind::Text,
                },
                Entry {
                    seq: 8,
                    topic: b"a",
                    data: b"eA==",
                    origin: b"n1:3",
                    kind: Kind::Binary,
                },
            ]
        );
        assert_eq!(decode_read_reply(&wire(&Reply::NullArray)).unwrap(), []);
        for odd in [
            Reply::Error(b"ERR".to_vec()),
            Reply::Array(vec![bulk("x")]),
            Reply::Array(vec![Reply::Array(vec![bulk("k"), bulk("x")])]),
            Reply::Array(vec![Reply::Array(vec![
                bulk("k"),
                Reply::Array(vec![Reply::Array(vec![bulk("1-0"), bulk("t")])]),
            ])]),
            Reply::Array(vec![Reply::Array(vec![
                bulk("k"),
                Reply::Array(vec![entry("1-0", &["t", "a"]), bulk("2-0")]),
            ])]),
        ] {
            assert!(decode_read_reply(&wire(&odd)).is_err(), "{odd:?}");
        }
        // Cut short: not the reply of a whole XREAD.
        assert!(decode_read_reply(&reply[..reply.len() - 3]).is_err());
        // The error quotes the reply's start without cutting a character.
        let accents = wire(&Reply::Array(vec![bulk(&"é".repeat(150))]));
        for cut in 150..160 {
            assert!(decode_read_reply(&accents[..cut]).is_err());
        }
    }

    #[test]
    fn the_meta_reply_gives_epoch_and_seq_or_their_absence() {
        let meta = |e: Reply, s: Reply| decode_meta_reply(&Reply::Array(vec![e, s]));
        assert_eq!(
            meta(bulk("k3v9"), bulk("42")),
            Ok(Meta {
                epoch: Some("k3v9".into()),
                seq: 42
            })
        );
        assert_eq!(
            meta(Reply::NullBulk, Reply::NullBulk),
            Ok(Meta {
                epoch: None,
                seq: 0
            })
        );
        assert!(meta(bulk("k3-v9"), bulk("1")).is_err());
        assert!(meta(bulk("k3v9"), bulk("-1")).is_err());
        assert!(decode_meta_reply(&Reply::NullArray).is_err());
    }
}

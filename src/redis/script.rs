//! The append script: how a node adds messages to the shared log in one
//! atomic step, and the commands that call it.
//!
//! [`APPEND_SCRIPT`] (`src/redis/append.lua`) runs inside Redis, so no two
//! nodes can interleave between reading the sequence and writing entries.
//! One call appends a *batch*: every message a node's turn published, in
//! order (one message is a batch of one).
//!
//! 1. read the log's epoch and last `N` from one hash ([`LogKeys::meta`]);
//!    when the hash has no epoch (a new log, or Redis restarted empty),
//!    install the epoch the calling node proposes, start `N` at 1 and drop
//!    whatever the stream still holds from the lost epoch;
//! 2. for each message, `XADD` it to the stream ([`LogKeys::stream`]) with
//!    the explicit id `N-0` (the next `N`) and its topic, data, origin (the
//!    node and the append's ticket, so the node knows its own message when
//!    it reads the stream back) and kind (`t` text, `b` binary: the data is
//!    then the bytes' standard base64);
//! 3. trim the stream to the newest `max_len` entries (`XTRIM MAXLEN`,
//!    exact), store the epoch and the last `N` back in the hash, and return
//!    `{epoch, N, count}`: the batch got `N - count + 1 ..= N`.
//!
//! The epoch and `N` live in one hash so they are lost together: a Redis
//! that forgot the sequence also forgot the epoch, so the next append
//! starts a new epoch and every subscriber is told `reset` instead of
//! seeing old ids reused. Stream ids are the consecutive `N-0`, never the
//! time-based ids Redis makes up itself, so a reader that knows the last id
//! it saw and the first id still kept knows exactly how many it missed.
//!
//! # Sequence read, then `XADD`s, then the hash written
//!
//! Redis does not roll back a script's earlier writes when a later command
//! in it fails. Taking `N` first (`HINCRBY`) and then failing in `XADD`
//! (a stream key of the wrong type, an entry added by hand with a larger id,
//! memory refused) would use up an `N` that no message has: a hole that
//! readers would count as a lost message. So the script reads `N`, calls
//! each `XADD` in protected mode (`redis.pcall`) and writes `N` back only
//! for the entries that were added. When the first `XADD` fails the reply
//! is its error and nothing changed; when a later one fails, the messages
//! before it are in the log and the reply says so: `{epoch, N, count,
//! error}` (see [`Appended::rest_refused`]).
//!
//! # Why batches
//!
//! Each call of a script costs Redis a fixed price (look up the script,
//! set up its arguments, run the interpreter) several times that of one
//! `XADD`; trimming once per batch instead of once per entry saves more.
//! Redis runs one script at a time for every node, so that price bounds
//! the whole cluster's publish rate (docs/scaling.md, "The limits of one
//! Redis"). A batch is bounded ([`MAX_BATCH_MESSAGES`],
//! [`MAX_BATCH_BYTES`]) so one script never holds Redis for long.
//!
//! # Trimmed globally, not per topic
//!
//! The stream keeps the newest `max_len` messages of all topics together.
//! Per-topic trimming cannot be had from one stream: `MAXLEN` and `XTRIM`
//! cut the oldest entries whatever their topic. It would take one stream
//! per topic, and then the log would no longer be one ordered log: a node
//! could not tail it with one `XREAD` on one key (`XREAD` names every key
//! it reads, and the set of topics is open), and one cursor `E-N` could no
//! longer resume any set of topics in one read. So the bound is global,
//! like the sequence: Redis holds at most `max_len` messages, whatever
//! their topics, and its memory is bounded by `max_len` × the largest
//! message. The cost, to document for operators: a busy topic can push a
//! quiet topic's history out of Redis sooner than `--history` per topic
//! would on one node; size `max_len` for the busiest topics' history
//! together.
//!
//! # Calling it
//!
//! Load the script once per connection ([`script_load_command`]; Redis
//! answers with [`APPEND_SCRIPT_SHA1`]) and call it by its SHA
//! ([`append_evalsha_command`]). A reply [`AppendError::NoScript`] means
//! Redis lost its script cache (`SCRIPT FLUSH`, a restart or failover
//! behind a proxy that kept the connection): the script did not run, so
//! sending the same batch again is safe. Pipeline `SCRIPT LOAD` and then
//! the same `EVALSHA` again, or send it as [`append_eval_command`] (which
//! carries the whole script; Redis 7.4 and later may evict scripts that
//! only `EVAL` loaded, so `SCRIPT LOAD` is the lasting fix). To keep appends
//! in the order they were sent, resend in order every batch that got
//! `NOSCRIPT` before sending new ones.

use crate::log::Kind;
use crate::wire::resp::{Arg, Reply};

/// The Lua source run by `EVALSHA` / `EVAL` (see the module docs).
pub const APPEND_SCRIPT: &str = include_str!("append.lua");

/// The SHA-1 of [`APPEND_SCRIPT`] in lowercase hex, the name `EVALSHA`
/// calls it by (checked against the source by a test).
pub const APPEND_SCRIPT_SHA1: &str = "5d194208559bf4d58385be385c4af117f5b8530f";

/// The two keys of one log, both under the deployment's key prefix, so
/// several deployments can share one Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKeys {
    meta: Vec<u8>,
    stream: Vec<u8>,
}

impl LogKeys {
    /// `<prefix>meta` (the hash of epoch and sequence) and `<prefix>log`
    /// (the stream). A prefix in braces, `{pushlab}:`, keeps both in one
    /// Redis Cluster hash slot, as a script touching both requires there.
    pub fn new(prefix: &str) -> LogKeys {
        LogKeys {
            meta: [prefix.as_bytes(), b"meta"].concat(),
            stream: [prefix.as_bytes(), b"log"].concat(),
        }
    }

    /// The hash holding the fields `epoch` and `seq`.
    pub fn meta(&self) -> &[u8] {
        &self.meta
    }

    /// The stream of messages, ids `N-0`, fields `t` and `d`.
    pub fn stream(&self) -> &[u8] {
        &self.stream
    }
}

/// Most messages one append script call carries.
pub const MAX_BATCH_MESSAGES: usize = 256;

/// Most bytes of topics and data one append script call carries (a single
/// message larger than this still goes, alone).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// One message of an append.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The topic.
    pub topic: &'a [u8],
    /// The message.
    pub data: &'a [u8],
    /// `<node>:<ticket>`: who appended it (see [`Origin`]).
    pub origin: &'a [u8],
    /// Text or binary (the data is then standard base64).
    pub kind: Kind,
}

/// A batch of messages to append, and what the script needs to know about
/// the log.
#[derive(Clone, Copy, Debug)]
pub struct Append<'a> {
    /// The log's keys.
    pub keys: &'a LogKeys,
    /// The epoch this node proposes when Redis has none (ASCII
    /// alphanumeric, as every epoch).
    pub proposed_epoch: &'a str,
    /// Entries the stream keeps, all topics together; at least 1 (0 is
    /// sent as 1: `MAXLEN 0` would drop the entry just added).
    pub max_len: u64,
    /// The messages, in the order they get their `N`; at least one.
    pub messages: &'a [Message<'a>],
}

impl<'a> Append<'a> {
    /// `<command> <script or SHA> 2 key key epoch max_len`, then topic,
    /// data, origin and kind of each message.
    fn command(&self, name: &'static str, script: &'static str) -> Vec<Arg<'a>> {
        let mut args = Vec::with_capacity(7 + 4 * self.messages.len());
        args.extend([
            Arg::from(name),
            Arg::from(script),
            Arg::Uint(2),
            Arg::Bytes(self.keys.meta()),
            Arg::Bytes(self.keys.stream()),
            Arg::Bytes(self.proposed_epoch.as_bytes()),
            Arg::Uint(self.max_len.max(1)),
        ]);
        for m in self.messages {
            args.extend([
                Arg::Bytes(m.topic),
                Arg::Bytes(m.data),
                Arg::Bytes(m.origin),
                Arg::Bytes(kind_field(m.kind)),
            ]);
        }
        args
    }
}

/// The entry's `k` field: `t` for text, `b` for binary.
pub fn kind_field(kind: Kind) -> &'static [u8] {
    match kind {
        Kind::Text => b"t",
        Kind::Binary => b"b",
    }
}

/// The kind an entry's `k` field names (text when absent or unknown).
pub fn kind_of_field(field: &[u8]) -> Kind {
    if field == b"b" {
        Kind::Binary
    } else {
        Kind::Text
    }
}

/// `EVALSHA <sha> 2 <meta> <stream> <epoch> <max_len>`, then `<topic>
/// <data> <origin> <kind>` for each message.
pub fn append_evalsha_command<'a>(append: &Append<'a>) -> Vec<Arg<'a>> {
    append.command("EVALSHA", APPEND_SCRIPT_SHA1)
}

/// `EVAL <script> 2 …`: the fallback after `NOSCRIPT`. Redis caches the
/// script it runs, so later `EVALSHA`s find it again.
pub fn append_eval_command<'a>(append: &Append<'a>) -> Vec<Arg<'a>> {
    append.command("EVAL", APPEND_SCRIPT)
}

/// The Lua source that reads the log's epoch and last `N`, installing the
/// proposed epoch when Redis has none (`src/redis/epoch.lua`): what a node
/// runs when it starts reading the log, and again when the epoch is gone.
/// Rare, so it is sent whole with `EVAL` (no `NOSCRIPT` to handle).
pub const EPOCH_SCRIPT: &str = include_str!("epoch.lua");

/// `EVAL <epoch script> 2 <meta> <stream> <proposed epoch>`: answered
/// `{epoch, N}` ([`decode_epoch_reply`]).
pub fn epoch_eval_command<'a>(keys: &'a LogKeys, proposed_epoch: &'a str) -> [Arg<'a>; 6] {
    [
        Arg::from("EVAL"),
        Arg::from(EPOCH_SCRIPT),
        Arg::Uint(2),
        Arg::Bytes(keys.meta()),
        Arg::Bytes(keys.stream()),
        Arg::Bytes(proposed_epoch.as_bytes()),
    ]
}

/// Who appended a message: this node's name and the append's ticket,
/// written `<node>:<ticket>` in the entry's field `o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    pub node: &'a [u8],
    pub ticket: u64,
}

impl<'a> Origin<'a> {
    /// Appends `<node>:<ticket>` to `out`.
    pub fn encode_into(out: &mut Vec<u8>, node: &str, ticket: u64) {
        out.extend_from_slice(node.as_bytes());
        out.push(b':');
        crate::ids::push_decimal(out, ticket);
    }

    /// Reads `<node>:<ticket>`; `None` for anything else (an entry added
    /// by hand, say).
    pub fn parse(bytes: &'a [u8]) -> Option<Origin<'a>> {
        let colon = bytes.iter().rposition(|&b| b == b':')?;
        let digits = &bytes[colon + 1..];
        if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let ticket = std::str::from_utf8(digits).ok()?.parse().ok()?;
        Some(Origin {
            node: &bytes[..colon],
            ticket,
        })
    }
}

/// `SCRIPT LOAD <script>`: answered with [`APPEND_SCRIPT_SHA1`] as a bulk
/// string (see [`is_script_loaded`]).
pub fn script_load_command() -> [Arg<'static>; 3] {
    [
        Arg::from("SCRIPT"),
        Arg::from("LOAD"),
        Arg::from(APPEND_SCRIPT),
    ]
}

/// Did `SCRIPT LOAD` answer with the SHA this build calls?
pub fn is_script_loaded(reply: &Reply) -> bool {
    matches!(reply, Reply::Bulk(sha) if sha.as_slice() == APPEND_SCRIPT_SHA1.as_bytes())
}

/// Reads the epoch script's reply: `{epoch, N}` with `N` ≥ 0 (a new epoch
/// has none yet).
pub fn decode_epoch_reply(reply: Reply) -> Result<LogHead, AppendError> {
    if let Reply::Array(items) = &reply {
        if let [Reply::Bulk(epoch), Reply::Integer(seq)] = items.as_slice() {
            if is_epoch(epoch) && *seq >= 0 {
                return Ok(LogHead {
                    epoch: String::from_utf8_lossy(epoch).into_owned(),
                    seq: *seq as u64,
                });
            }
        }
    }
    Err(refusal(reply))
}

/// The log's epoch and its last `N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHead {
    /// The log's epoch (the proposed one, or the one Redis already had).
    pub epoch: String,
    /// The last message's `N` (0: none yet).
    pub seq: u64,
}

/// A batch the log accepted, all of it or its first `count` messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The log's epoch (the proposed one, or the one Redis already had).
    pub epoch: String,
    /// The `N` of the last message appended: the batch's first `count`
    /// messages got `seq - count + 1 ..= seq`, in order.
    pub seq: u64,
    /// How many of the batch's messages were appended (at least 1).
    pub count: u64,
    /// Redis's error for the message after those `count`: it and the rest
    /// of the batch were not appended. `None` when all were.
    pub rest_refused: Option<Vec<u8>>,
}

/// Why an append did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// `NOSCRIPT`: Redis does not know the script; it did not run. Send
    /// the same batch with [`append_eval_command`].
    NoScript,
    /// Redis refused (its error message): an out-of-memory refusal, a key
    /// of the wrong type, an `XADD` id conflict. Nothing was appended.
    Refused(Vec<u8>),
    /// A reply that is not `{epoch, N, count}` with an ASCII alphanumeric
    /// epoch and 1 ≤ `count` ≤ `N`: not this script's.
    Unexpected(Reply),
}

fn is_epoch(epoch: &[u8]) -> bool {
    !epoch.is_empty() && epoch.iter().all(u8::is_ascii_alphanumeric)
}

/// The error a reply that is not the script's result stands for.
fn refusal(reply: Reply) -> AppendError {
    if reply.error_code() == Some(b"NOSCRIPT") {
        return AppendError::NoScript;
    }
    match reply {
        Reply::Error(message) => AppendError::Refused(message),
        other => AppendError::Unexpected(other),
    }
}

/// Reads the script's reply to one batch.
pub fn decode_append_reply(reply: Reply) -> Result<Appended, AppendError> {
    if let Reply::Array(items) = &reply {
        let (head, rest_refused) = match items.as_slice() {
            [a, b, c] => ([a, b, c], None),
            [a, b, c, Reply::Bulk(error)] => ([a, b, c], Some(error)),
            _ => return Err(AppendError::Unexpected(reply)),
        };
        if let [Reply::Bulk(epoch), Reply::Integer(seq), Reply::Integer(count)] = head {
            if is_epoch(epoch) && *count >= 1 && count <= seq {
                return Ok(Appended {
                    epoch: String::from_utf8_lossy(epoch).into_owned(),
                    seq: *seq as u64,
                    count: *count as u64,
                    rest_refused: rest_refused.cloned(),
                });
            }
        }
        return Err(AppendError::Unexpected(reply));
    }
    Err(refusal(reply))
}

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;

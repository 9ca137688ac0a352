//! RESP2, the Redis serialization protocol: commands out, replies in.
//!
//! Spec: "Redis serialization protocol specification"
//! (<https://redis.io/docs/latest/develop/reference/protocol-spec/>). A
//! client sends each command as an array of bulk strings; the server answers
//! every command with exactly one reply, in order. The first byte of a reply
//! names its type:
//!
//! ```text
//! +<string>\r\n                simple string (no CR or LF inside)
//! -<message>\r\n               simple error ("ERR …", "NOSCRIPT …")
//! :[<+|->]<value>\r\n          integer, signed 64-bit
//! $<length>\r\n<data>\r\n      bulk string, binary safe; "$-1\r\n" is null
//! *<count>\r\n<element>...     array of any of these; "*-1\r\n" is null
//! ```
//!
//! - [`encode_command`] writes one command into a caller's `Vec<u8>`, with
//!   no allocation per argument (numbers are formatted on the stack).
//! - [`Decoder`] turns reply bytes, fed in chunks of any size, into
//!   [`Reply`] values in order. It never panics, gives the same values and
//!   the same error however the bytes are split, and bounds memory by
//!   [`Limits`]: an over-long bulk string, array, nesting or reply is refused
//!   with its own [`RespError`] instead of being buffered.
//! - [`Decoder::next_raw`] checks the next reply just as thoroughly but
//!   builds no value: it hands back the reply's bytes, which a [`Reader`]
//!   walks token by token, borrowing. A reply of many small values (an
//!   `XREAD` of a thousand entries) then costs no allocation per value.
//! - [`encode_reply`] writes a reply as a server would (for fakes, tests and
//!   the fuzz target).
//!
//! Left out: the RESP3 types (`_`, `,`, `#`, `(`, `=`, `%`, `~`, `|`, `>`,
//! `!`), which a server sends only after `HELLO 3`; inline commands; and the
//! pub/sub push mode of `SUBSCRIBE` (pushlab reads the log with `XREAD`, so
//! every reply answers a command).
//!
//! Simplification: a length or integer written with leading zeros (`$05`)
//! is accepted; Redis never sends one, and [`encode_reply`] never writes one.

use std::fmt;

mod reader;
pub use reader::{Reader, Token};

/// Default for [`Limits::max_bulk_len`]: 16 MiB, the largest WebSocket
/// message pushlab accepts by default (`--ws-max-message`), so any message
/// the server itself could publish fits. Redis's own ceiling
/// (`proto-max-bulk-len`, 512 MiB) is far more than one reply should hold in
/// memory.
pub const DEFAULT_MAX_BULK_LEN: usize = 16 * 1024 * 1024;

/// Default for [`Limits::max_array_len`]: pushlab reads the log in batches
/// (`XREAD COUNT`) of far fewer entries than this.
pub const DEFAULT_MAX_ARRAY_LEN: usize = 64 * 1024;

/// Default for [`Limits::max_depth`]: the deepest reply pushlab reads is
/// `XREAD`'s, five arrays deep (streams → [key, entries] → entries →
/// [id, fields] → fields).
pub const DEFAULT_MAX_DEPTH: usize = 8;

/// Default for [`Limits::max_reply_len`]: 64 MiB on the wire for one reply,
/// nested values and all. This is what bounds the memory of a reply being
/// decoded: the other limits alone multiply (an array of arrays of bulk
/// strings).
pub const DEFAULT_MAX_REPLY_LEN: usize = 64 * 1024 * 1024;

/// Longest integer or length line after the type byte:
/// `-9223372036854775808` (`i64::MIN`) has 20 characters.
const MAX_NUMBER_LEN: usize = 20;

/// Elements reserved up front for an array, whatever count it announces, so
/// a header alone cannot make the decoder allocate.
const PREALLOC_ITEMS: usize = 64;

/// Bytes reserved up front for a bulk string, for the same reason.
const PREALLOC_BULK: usize = 64 * 1024;

/// How much one reply may hold, checked as the bytes arrive. Every limit
/// passed gives its own [`RespError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, in bytes → [`RespError::BulkTooLong`].
    pub max_bulk_len: usize,
    /// Most elements in one array → [`RespError::ArrayTooLong`].
    pub max_array_len: usize,
    /// Deepest nesting: the outermost array is at depth 1, an array inside
    /// it at depth 2, … → [`RespError::TooDeep`]. Empty and null arrays
    /// count too.
    pub max_depth: usize,
    /// Most bytes one top-level reply takes on the wire →
    /// [`RespError::ReplyTooLong`].
    pub max_reply_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_array_len: DEFAULT_MAX_ARRAY_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            max_reply_len: DEFAULT_MAX_REPLY_LEN,
        }
    }
}

// ---------------------------------------------------------------- values --

/// One RESP2 value. Both nulls are kept apart from the empty values, as on
/// the wire, so every value encodes back to the bytes it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK\r\n`. Bytes, not `String`: the spec forbids only CR and LF.
    Simple(Vec<u8>),
    /// `-ERR unknown command 'foobar'\r\n`: the command failed, the
    /// connection is fine.
    Error(Vec<u8>),
    /// `:1000\r\n`.
    Integer(i64),
    /// `$5\r\nhello\r\n`.
    Bulk(Vec<u8>),
    /// `$-1\r\n`, "the null bulk string" (a missing key, say).
    NullBulk,
    /// `*2\r\n…`.
    Array(Vec<Reply>),
    /// `*-1\r\n`, "the null array" (`XREAD BLOCK` that timed out, say).
    NullArray,
}

impl Reply {
    /// Is this a simple error?
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The error's code: its first word (`ERR`, `WRONGTYPE`, `NOSCRIPT`),
    /// the spec's convention ("the first word after the `-`, up to the first
    /// space or newline, represents the kind of error returned").
    pub fn error_code(&self) -> Option<&[u8]> {
        match self {
            Reply::Error(message) => {
                let end = message
                    .iter()
                    .position(|&b| b == b' ')
                    .unwrap_or(message.len());
                Some(&message[..end])
            }
            _ => None,
        }
    }
}

// --------------------------------------------------------------- encoder --

/// One argument of a command: bytes, or a number written in decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// Sent as is.
    Bytes(&'a [u8]),
    /// Sent as its decimal digits (`XADD … MAXLEN 1024`).
    Uint(u64),
    /// Sent as its decimal digits, with `-` when negative.
    Int(i64),
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Arg::Bytes(bytes)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(text: &'a str) -> Self {
        Arg::Bytes(text.as_bytes())
    }
}

impl From<u64> for Arg<'_> {
    fn from(n: u64) -> Self {
        Arg::Uint(n)
    }
}

/// Appends one command to `out`: "an array of bulk strings", the only form
/// of request a client sends (spec, "Sending commands to a Redis server").
///
/// ```
/// use pushlab::wire::resp::{encode_command, Arg};
/// let mut out = Vec::new();
/// encode_command(&mut out, &[Arg::from("LLEN"), Arg::from("mylist")]);
/// assert_eq!(out, b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n");
/// ```
pub fn encode_command(out: &mut Vec<u8>, args: &[Arg<'_>]) {
    out.push(b'*');
    write_uint(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let mut digits = [0u8; 20];
        let bytes = match *arg {
            Arg::Bytes(bytes) => bytes,
            Arg::Uint(n) => format_uint(&mut digits, n),
            Arg::Int(n) => format_int(&mut digits, n),
        };
        write_bulk(out, bytes);
    }
}

/// Appends `reply` to `out` as a server writes it. Simple strings and errors
/// are written as given: the caller keeps CR and LF out of them.
pub fn encode_reply(out: &mut Vec<u8>, reply: &Reply) {
    match reply {
        Reply::Simple(text) => write_line(out, b'+', text),
        Reply::Error(text) => write_line(out, b'-', text),
        Reply::Integer(n) => {
            let mut digits = [0u8; 20];
            write_line(out, b':', format_int(&mut digits, *n));
        }
        Reply::Bulk(bytes) => write_bulk(out, bytes),
        Reply::NullBulk => out.extend_from_slice(b"$-1\r\n"),
        Reply::Array(items) => {
            out.push(b'*');
            write_uint(out, items.len() as u64);
            out.extend_from_slice(b"\r\n");
            for item in items {
                encode_reply(out, item);
            }
        }
        Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
    }
}

fn write_line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.push(kind);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn write_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    write_uint(out, bytes.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn write_uint(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(format_uint(&mut digits, n));
}

/// `n` in decimal, written at the end of `buf` (20 digits hold `u64::MAX`).
fn format_uint(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

/// `n` in decimal with a leading `-` when negative (`i64::MIN` has 19
/// digits, so sign and digits fit in 20 bytes).
fn format_int(buf: &mut [u8; 20], n: i64) -> &[u8] {
    let len = format_uint(buf, n.unsigned_abs()).len();
    let mut start = buf.len() - len;
    if n < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    &buf[start..]
}

// --------------------------------------------------------------- decoder --

/// The result of [`Decoder::next_reply`] that is not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The next complete reply.
    Reply(Reply),
    /// Every complete reply fed so far was returned; feed more bytes.
    Incomplete,
}

/// Bytes that are not RESP2, or a [`Limits`] passed. The stream cannot be
/// resynchronised: the decoder returns the same error from then on, and the
/// connection must be closed (and the commands still waiting for a reply
/// treated as failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespError {
    /// A value starts with a byte that is not one of `+ - : $ *`.
    UnknownType(u8),
    /// "Every part of the protocol is terminated by `\r\n`": a CR followed
    /// by something else, or an LF without its CR.
    BadLineEnding,
    /// An integer reply that is not `[+|-]digits` within `i64`.
    BadInteger,
    /// A bulk string or array length that is neither `-1` nor decimal
    /// digits within `u64`.
    BadLength,
    /// A bulk string's `data` is not followed by CRLF.
    MissingBulkTerminator,
    /// A bulk string announces more than [`Limits::max_bulk_len`] bytes.
    BulkTooLong {
        /// The announced length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// An array announces more than [`Limits::max_array_len`] elements.
    ArrayTooLong {
        /// The announced count.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// Arrays nested deeper than [`Limits::max_depth`].
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// One reply longer than [`Limits::max_reply_len`] bytes on the wire.
    ReplyTooLong {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::UnknownType(b) => {
                write!(f, "RESP value starts with unknown type byte 0x{b:02x}")
            }
            RespError::BadLineEnding => f.write_str("RESP line not terminated by CRLF"),
            RespError::BadInteger => f.write_str("RESP integer is not a 64-bit decimal"),
            RespError::BadLength => f.write_str("RESP length is neither -1 nor a decimal count"),
            RespError::MissingBulkTerminator => {
                f.write_str("RESP bulk string not followed by CRLF")
            }
            RespError::BulkTooLong { len, limit } => {
                write!(
                    f,
                    "RESP bulk string of {len} bytes is longer than the limit of {limit}"
                )
            }
            RespError::ArrayTooLong { len, limit } => {
                write!(
                    f,
                    "RESP array of {len} elements is longer than the limit of {limit}"
                )
            }
            RespError::TooDeep { limit } => {
                write!(f, "RESP arrays nested deeper than the limit of {limit}")
            }
            RespError::ReplyTooLong { limit } => {
                write!(f, "RESP reply longer than the limit of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for RespError {}

/// An array whose elements are still arriving.
#[derive(Debug)]
struct OpenArray {
    items: Vec<Reply>,
    remaining: usize,
}

/// What the bytes at `pos` are.
#[derive(Debug)]
enum State {
    /// The start of a value: a type byte and its line.
    Line,
    /// The `data` of a bulk string of `len` bytes, then its CRLF.
    Bulk { data: Vec<u8>, len: usize },
    /// A bulk string's data in a raw reply: `left` bytes still to pass,
    /// then its CRLF.
    Skip { left: usize },
}

/// The result of [`Decoder::next`] that is not an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// The next complete reply, decoded.
    Reply(Reply),
    /// The next complete reply's bytes, checked as [`Decoder::next_reply`]
    /// checks them; walk them with a [`Reader`].
    Raw(&'a [u8]),
    /// Every complete reply fed so far was returned; feed more bytes.
    Incomplete,
}

/// A resumable RESP2 reply decoder.
///
/// Contract: [`feed`](Self::feed) the bytes in the order received, split
/// anywhere; then call [`next_reply`](Self::next_reply) until it returns
/// [`Decoded::Incomplete`] (or an error). The same bytes give the same
/// replies and the same error however they are split. `feed` never fails;
/// bytes are decoded lazily by `next_reply`, so bytes fed and not yet pulled
/// stay buffered. Between feeds, the decoder holds at most the part of one
/// reply received so far, within [`Limits::max_reply_len`]. After an error
/// the decoder is spent: make a new one for a new connection.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes fed and not yet consumed: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes of the line starting at `pos` already checked (none was a line
    /// ending, none broke a limit), so a line fed byte by byte is scanned
    /// once.
    scanned: usize,
    state: State,
    /// Arrays being filled, outermost first.
    open: Vec<OpenArray>,
    /// Bytes of the current top-level reply consumed so far.
    reply_len: usize,
    /// The current reply is raw: checked and kept in `buf` from `start`,
    /// not built.
    raw: bool,
    /// Where the current top-level reply starts in `buf` (raw replies).
    start: usize,
    /// A decoded reply encoded again, for a `next_raw` that finished a
    /// reply `next_reply` began (empty otherwise).
    spare: Vec<u8>,
    limits: Limits,
    failed: Option<RespError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A decoder that refuses replies beyond `limits`.
    pub fn with_limits(limits: Limits) -> Self {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            state: State::Line,
            open: Vec::new(),
            reply_len: 0,
            raw: false,
            start: 0,
            spare: Vec::new(),
            limits,
            failed: None,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes fed and not yet consumed by [`next_reply`](Self::next_reply).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Is a reply partly received (bytes buffered, or values decoded into an
    /// unfinished array or bulk string)? At the end of a connection this
    /// says the peer stopped mid-reply.
    pub fn is_mid_reply(&self) -> bool {
        self.buffered() > 0 || !self.open.is_empty() || !matches!(self.state, State::Line)
    }

    /// Is a reply begun: an array still open or a bulk string's data still
    /// coming? (Its mode, raw or not, is then fixed.)
    fn is_in_reply(&self) -> bool {
        !self.open.is_empty() || !matches!(self.state, State::Line)
    }

    /// Hands the decoder the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // A raw reply in progress keeps its bytes from its start.
        let keep = if self.raw && self.is_in_reply() {
            self.start
        } else {
            self.pos
        };
        if keep == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.start = 0;
        } else if keep >= self.buf.len() / 2 {
            // Amortised: each byte moves at most once per doubling.
            self.buf.drain(..keep);
            self.pos -= keep;
            self.start = self.start.saturating_sub(keep);
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete reply, [`Decoded::Incomplete`] when more bytes are
    /// needed, or the error that ended the stream (returned again on every
    /// later call).
    pub fn next_reply(&mut self) -> Result<Decoded, RespError> {
        Ok(match self.next(false)? {
            Next::Reply(reply) => Decoded::Reply(reply),
            // Only when a reply begun by `next_raw` is finished here: its
            // checked bytes, built.
            Next::Raw(bytes) => Decoded::Reply(Reader::new(bytes).reply().ok_or(
                // Unreachable: the bytes were checked as one reply.
                RespError::BadLength,
            )?),
            Next::Incomplete => Decoded::Incomplete,
        })
    }

    /// The next complete reply's bytes, checked against RESP2 and the
    /// [`Limits`] exactly as [`next_reply`](Self::next_reply) checks them
    /// (the same error at the same byte) but not built into a [`Reply`]:
    /// `None` when more bytes are needed. The bytes stay valid until the
    /// next call; a [`Reader`] walks them.
    pub fn next_raw(&mut self) -> Result<Option<&[u8]>, RespError> {
        let decoded = match self.next(true)? {
            Next::Incomplete => return Ok(None),
            Next::Raw(_) => None,
            Next::Reply(reply) => Some(reply),
        };
        match decoded {
            None => Ok(Some(&self.buf[self.start..self.pos])),
            // Only when a reply begun by `next_reply` is finished here: the
            // bytes it came from are gone; give them encoded again.
            Some(reply) => {
                self.spare.clear();
                encode_reply(&mut self.spare, &reply);
                Ok(Some(&self.spare))
            }
        }
    }

    /// The next complete reply, decoded or, when `raw`, as its checked
    /// bytes ([`next_raw`](Self::next_raw)). `raw` chooses for a reply
    /// that begins in this call; one begun in an earlier call keeps the
    /// mode it began in.
    pub fn next(&mut self, raw: bool) -> Result<Next<'_>, RespError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if !self.is_in_reply() {
            self.raw = raw;
        }
        match self.decode() {
            Ok(Some(_)) if self.raw => Ok(Next::Raw(&self.buf[self.start..self.pos])),
            Ok(Some(reply)) => Ok(Next::Reply(reply)),
            Ok(None) => Ok(Next::Incomplete),
            Err(e) => {
                self.failed = Some(e);
                // The stream is dead: let the memory go.
                self.buf = Vec::new();
                self.pos = 0;
                self.start = 0;
                self.open = Vec::new();
                self.state = State::Line;
                Err(e)
            }
        }
    }

    /// The next complete reply (in a raw reply, a stand-in: its bytes are
    /// `buf[start..pos]`), or `None` when more bytes are needed.
    fn decode(&mut self) -> Result<Option<Reply>, RespError> {
        loop {
            let value = match &mut self.state {
                State::Bulk { data, len } => {
                    let available = &self.buf[self.pos..];
                    let take = (*len - data.len()).min(available.len());
                    data.extend_from_slice(&available[..take]);
                    self.pos += take;
                    if data.len() < *len || !self.bulk_terminator()? {
                        return Ok(None);
                    }
                    // Counted in `reply_len` when the header was read.
                    let State::Bulk { data, .. } = std::mem::replace(&mut self.state, State::Line)
                    else {
                        unreachable!("matched above")
                    };
                    Reply::Bulk(data)
                }
                State::Skip { left } => {
                    let take = (*left).min(self.buf.len() - self.pos);
                    *left -= take;
                    self.pos += take;
                    if *left > 0 || !self.bulk_terminator()? {
                        return Ok(None);
                    }
                    self.state = State::Line;
                    Reply::NullBulk
                }
                State::Line => match self.decode_line()? {
                    Some(Some(value)) => value,
                    Some(None) => continue,
                    None => return Ok(None),
                },
            };
            if let Some(reply) = self.complete(value) {
                return Ok(Some(reply));
            }
        }
    }

    /// "$<length>\r\n<data>\r\n": after the data, its own CRLF. Passes it
    /// when it is there (`true`); `false` when it has not arrived.
    fn bulk_terminator(&mut self) -> Result<bool, RespError> {
        let rest = &self.buf[self.pos..];
        if rest.first().is_some_and(|&b| b != b'\r') || rest.get(1).is_some_and(|&b| b != b'\n') {
            return Err(RespError::MissingBulkTerminator);
        }
        if rest.len() < 2 {
            return Ok(false);
        }
        self.pos += 2;
        Ok(true)
    }

    /// Reads the line at `pos`. `None`: incomplete. `Some(None)`: a header
    /// that opened an array or a bulk string. `Some(Some(v))`: a whole
    /// value.
    fn decode_line(&mut self) -> Result<Option<Option<Reply>>, RespError> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Ok(None);
        };
        if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
            return Err(RespError::UnknownType(kind));
        }
        let Some(end) = self.scan_line(kind)? else {
            return Ok(None);
        };
        if self.open.is_empty() {
            // The first line of a top-level reply.
            self.start = self.pos;
        }
        let content = &self.buf[self.pos + 1..end];
        let value = match kind {
            // In a raw reply the values are stand-ins: nothing is copied.
            b'+' | b'-' if self.raw => Some(Reply::NullBulk),
            b'+' => Some(Reply::Simple(content.to_vec())),
            b'-' => Some(Reply::Error(content.to_vec())),
            b':' => Some(Reply::Integer(
                parse_integer(content).ok_or(RespError::BadInteger)?,
            )),
            b'$' => match parse_length(content)? {
                None => Some(Reply::NullBulk),
                Some(len) => {
                    if len > self.limits.max_bulk_len as u64 {
                        return Err(RespError::BulkTooLong {
                            len,
                            limit: self.limits.max_bulk_len,
                        });
                    }
                    let len = len as usize;
                    let whole = self.reply_len + (end + 2 - self.pos) + len + 2;
                    if whole > self.limits.max_reply_len {
                        return Err(RespError::ReplyTooLong {
                            limit: self.limits.max_reply_len,
                        });
                    }
                    self.reply_len += len + 2;
                    self.state = if self.raw {
                        State::Skip { left: len }
                    } else {
                        State::Bulk {
                            data: Vec::with_capacity(len.min(PREALLOC_BULK)),
                            len,
                        }
                    };
                    None
                }
            },
            _ => {
                // '*': the array header is at depth `open + 1`.
                let count = parse_length(content)?;
                if self.open.len() >= self.limits.max_depth {
                    return Err(RespError::TooDeep {
                        limit: self.limits.max_depth,
                    });
                }
                match count {
                    None => Some(Reply::NullArray),
                    Some(len) if len > self.limits.max_array_len as u64 => {
                        return Err(RespError::ArrayTooLong {
                            len,
                            limit: self.limits.max_array_len,
                        });
                    }
                    Some(0) => Some(Reply::Array(Vec::new())),
                    Some(len) => {
                        let len = len as usize;
                        let items = if self.raw {
                            Vec::new()
                        } else {
                            Vec::with_capacity(len.min(PREALLOC_ITEMS))
                        };
                        self.open.push(OpenArray {
                            items,
                            remaining: len,
                        });
                        None
                    }
                }
            }
        };
        self.reply_len += end + 2 - self.pos;
        self.pos = end + 2;
        self.scanned = 0;
        Ok(Some(value))
    }

    /// Finds the CRLF ending the line that starts at `pos` (whose type byte
    /// is `kind`), checking each byte once, in order, so an error is found
    /// at the same byte however the input was split. `None`: incomplete.
    fn scan_line(&mut self, kind: u8) -> Result<Option<usize>, RespError> {
        let is_number = matches!(kind, b':' | b'$' | b'*');
        let max_reply = self.limits.max_reply_len;
        let start = self.pos;
        let mut i = start + self.scanned;
        while i < self.buf.len() {
            // Bytes of this reply up to and including byte `i`.
            if self.reply_len + (i + 1 - start) > max_reply {
                return Err(RespError::ReplyTooLong { limit: max_reply });
            }
            match self.buf[i] {
                b'\r' => match self.buf.get(i + 1) {
                    None => {
                        // Wait for the LF; the CR is checked again then.
                        self.scanned = i - start;
                        return Ok(None);
                    }
                    Some(b'\n') => {
                        if self.reply_len + (i + 2 - start) > max_reply {
                            return Err(RespError::ReplyTooLong { limit: max_reply });
                        }
                        return Ok(Some(i));
                    }
                    Some(_) => return Err(RespError::BadLineEnding),
                },
                b'\n' => return Err(RespError::BadLineEnding),
                // Byte `i` is the (i - start)-th after the type byte.
                _ if is_number && i - start > MAX_NUMBER_LEN => {
                    return Err(if kind == b':' {
                        RespError::BadInteger
                    } else {
                        RespError::BadLength
                    });
                }
                _ => i += 1,
            }
        }
        self.scanned = i - start;
        Ok(None)
    }

    /// Puts a finished value into the array it belongs to, closing every
    /// array it completes; returns the top-level reply when it is whole.
    fn complete(&mut self, mut value: Reply) -> Option<Reply> {
        loop {
            let Some(top) = self.open.last_mut() else {
                self.reply_len = 0;
                return Some(value);
            };
            if !self.raw {
                top.items.push(value);
            }
            top.remaining -= 1;
            if top.remaining > 0 {
                return None;
            }
            let done = self.open.pop().expect("checked above");
            value = Reply::Array(done.items);
        }
    }
}

/// `[+|-]digits` within `i64` (spec: ":[<+|->]<value>\r\n").
fn parse_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut n: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// A bulk string or array length: `-1` is null, otherwise decimal digits.
fn parse_length(text: &[u8]) -> Result<Option<u64>, RespError> {
    if text == b"-1" {
        return Ok(None);
    }
    if text.is_empty() {
        return Err(RespError::BadLength);
    }
    let mut n: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return Err(RespError::BadLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(RespError::BadLength)?;
    }
    Ok(Some(n))
}

#[cfg(test)]
#[path = "resp/tests.rs"]
mod tests;

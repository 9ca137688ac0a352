//! permessage-deflate, [RFC 7692](https://www.rfc-editor.org/rfc/rfc7692):
//! the negotiation (§5, §7.1) and the payload transformation (§7.2), as pure
//! codecs. No socket, no clock.
//!
//! - [`negotiate`] reads the client's `Sec-WebSocket-Extensions` offers
//!   (RFC 6455 §9.1 grammar, several offers, several header lines, quoted
//!   values), picks the first acceptable `permessage-deflate` offer and gives
//!   the [`Agreed`] parameters, whose [`Agreed::response_value`] is the
//!   response header's value.
//! - [`Compressor`] turns one message into the payload of a compressed
//!   message (§7.2.1). It never takes the context over from one message to
//!   the next: the server always answers `server_no_context_takeover`, so one
//!   compressed message is valid for every connection that negotiated the
//!   same window, and the server compresses each message once.
//! - [`Inflater`] turns the payload of a compressed message back (§7.2.2),
//!   chunk by chunk as frames arrive, with the limit on the *inflated* size.
//!
//! Policy, and what the server declines (RFC 7692 lets a server decline any
//! offer, §7.1: "the server doesn't support the offered configuration"):
//!
//! - `server_max_window_bits=8` is declined: zlib, and so `zlib-rs`, cannot
//!   produce raw DEFLATE with a 256-byte window (its smallest is 9 bits).
//!   The next offer, if any, is considered.
//! - `server_max_window_bits=9..15` is accepted and honoured.
//! - `server_no_context_takeover` is in every response (§7.1.1.1 lets the
//!   server include it even when the client did not ask).
//! - `client_no_context_takeover` is in the response when the client
//!   offered it, and also whenever [`DeflatePolicy::client_context_takeover`]
//!   is false (§7.1.1.2 lets the server include it unasked), so the server
//!   keeps no inflate state between a client's messages.
//! - `client_max_window_bits=N` in an offer is echoed back (§7.1.2.2: the
//!   server may use it "to avoid allocating an unnecessarily big LZ77
//!   sliding window"); without a value it is left out of the response (the
//!   client then uses up to 15 bits).
//!
//! Left out: the client's side of the negotiation (pushlab's own clients do
//! not compress), and per-frame compression extensions (`deflate-frame`,
//! `x-webkit-deflate-frame`), which are ignored like any unknown extension.

use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::CloseCode;

/// RFC 7692 §7: the extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// RFC 7692 §7.1.2: "the base-2 logarithm of the LZ77 sliding window size"
/// is a value from 8 to 15; 15 (32 KiB) when no parameter limits it.
pub const MAX_WINDOW_BITS: u8 = 15;

/// RFC 7692 §7.1.2: the smallest window a peer may ask for.
pub const MIN_WINDOW_BITS: u8 = 8;

/// The smallest window zlib (and `zlib-rs`) can use for raw DEFLATE: a
/// `server_max_window_bits` below it is declined, and an inflater for a
/// smaller client window uses this one (a larger window decodes anything a
/// smaller one produced).
pub const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// RFC 7692 §7.2.1: the sync flush's empty stored block ends in these four
/// octets; the sender removes them and the receiver appends them (§7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The compression level: zlib's default, a balance of ratio and speed. A
/// message is compressed once for all its subscribers, so ratio matters more
/// than it would per connection.
pub const LEVEL: u32 = 6;

/// What the server is willing to agree to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflatePolicy {
    /// Whether a client may keep its LZ77 window from one message to the
    /// next. When false, every response says `client_no_context_takeover`
    /// and a connection holds no inflate state between messages.
    pub client_context_takeover: bool,
}

impl Default for DeflatePolicy {
    /// No client context takeover: bounded, small per-connection state.
    fn default() -> Self {
        DeflatePolicy {
            client_context_takeover: false,
        }
    }
}

/// The parameters both ends agreed on (RFC 7692 §7.1). The server never
/// takes its context over (`server_no_context_takeover` is always agreed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The window the server's compressor may use (9..=15). Carried in the
    /// response only when the client asked for a limit.
    pub server_max_window_bits: u8,
    /// Whether the client asked for `server_max_window_bits`, so the
    /// response must carry it (§7.1.2.1).
    pub server_window_in_response: bool,
    /// The window the client's compressor uses (8..=15): the server's
    /// inflater needs at least this one.
    pub client_max_window_bits: u8,
    /// Whether `client_max_window_bits=N` goes in the response.
    pub client_window_in_response: bool,
    /// Whether the client resets its context after every message.
    pub client_no_context_takeover: bool,
}

impl Agreed {
    /// Appends the `Sec-WebSocket-Extensions` response value (RFC 7692 §5:
    /// one `permessage-deflate` element with the accepted parameters).
    pub fn response_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(EXTENSION_NAME.as_bytes());
        // RFC 7692 §7.1.1.1: the server says it will not take over context,
        // so one compressed message is valid for every subscriber.
        out.extend_from_slice(b"; server_no_context_takeover");
        if self.client_no_context_takeover {
            out.extend_from_slice(b"; client_no_context_takeover");
        }
        if self.server_window_in_response {
            out.extend_from_slice(b"; server_max_window_bits=");
            push_decimal(self.server_max_window_bits, out);
        }
        if self.client_window_in_response {
            out.extend_from_slice(b"; client_max_window_bits=");
            push_decimal(self.client_max_window_bits, out);
        }
    }
}

fn push_decimal(value: u8, out: &mut Vec<u8>) {
    if value >= 10 {
        out.push(b'0' + value / 10);
    }
    out.push(b'0' + value % 10);
}

/// Why one offer was declined (the handshake goes on without it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decline {
    /// RFC 6455 §9.1: the element is not `token *( ";" param )`.
    Malformed,
    /// Another extension than permessage-deflate.
    OtherExtension,
    /// RFC 7692 §7.1: "an extension parameter not defined for use in an offer".
    UnknownParameter,
    /// RFC 7692 §7.1: "an extension parameter with an invalid value".
    InvalidValue,
    /// RFC 7692 §7.1: "multiple extension parameters with the same name".
    DuplicateParameter,
    /// RFC 7692 §7.1: "the server doesn't support the offered configuration":
    /// a `server_max_window_bits` below what the library can produce.
    UnsupportedWindow,
}

impl fmt::Display for Decline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decline::Malformed => "malformed extension offer",
            Decline::OtherExtension => "not permessage-deflate",
            Decline::UnknownParameter => "unknown permessage-deflate parameter",
            Decline::InvalidValue => "invalid permessage-deflate parameter value",
            Decline::DuplicateParameter => "repeated permessage-deflate parameter",
            Decline::UnsupportedWindow => "server_max_window_bits=8 is not supported",
        })
    }
}

/// Picks the first acceptable `permessage-deflate` offer among the values of
/// every `Sec-WebSocket-Extensions` header, in order (RFC 6455 §9.1: several
/// header lines read as one comma-separated list; RFC 7692 §5: the offers
/// are in the client's order of preference). `None` declines compression;
/// the handshake itself never fails because of this header.
pub fn negotiate<'a, I>(header_values: I, policy: &DeflatePolicy) -> Option<Agreed>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    header_values
        .into_iter()
        .flat_map(split_elements)
        .find_map(|element| accept_offer(element, policy).ok())
}

/// Interprets one element of the extension list as a permessage-deflate
/// offer, per RFC 7692 §7.1.
pub fn accept_offer(element: &[u8], policy: &DeflatePolicy) -> Result<Agreed, Decline> {
    let (name, params) = parse_element(element)?;
    if !name.eq_ignore_ascii_case(EXTENSION_NAME.as_bytes()) {
        return Err(Decline::OtherExtension);
    }
    let mut server_no_context_takeover = false;
    let mut client_no_context_takeover = false;
    let mut server_bits: Option<u8> = None;
    let mut client_bits: Option<Option<u8>> = None;
    for (key, value) in params {
        let seen = if key.eq_ignore_ascii_case(b"server_no_context_takeover") {
            // §7.1.1.1: "This extension parameter has no value."
            no_value(&value)?;
            std::mem::replace(&mut server_no_context_takeover, true)
        } else if key.eq_ignore_ascii_case(b"client_no_context_takeover") {
            // §7.1.1.2: "This extension parameter has no value."
            no_value(&value)?;
            std::mem::replace(&mut client_no_context_takeover, true)
        } else if key.eq_ignore_ascii_case(b"server_max_window_bits") {
            // §7.1.2.1: the offer's value is required.
            let bits = window_bits(value.as_deref().ok_or(Decline::InvalidValue)?)?;
            server_bits.replace(bits).is_some()
        } else if key.eq_ignore_ascii_case(b"client_max_window_bits") {
            // §7.1.2.2: "This parameter has no value or a decimal integer
            // value".
            let bits = value.as_deref().map(window_bits).transpose()?;
            client_bits.replace(bits).is_some()
        } else {
            return Err(Decline::UnknownParameter);
        };
        if seen {
            return Err(Decline::DuplicateParameter);
        }
    }
    // server_no_context_takeover needs no action: it is always agreed.
    let _ = server_no_context_takeover;
    let server_max_window_bits = match server_bits {
        Some(bits) if bits < MIN_ZLIB_WINDOW_BITS => return Err(Decline::UnsupportedWindow),
        Some(bits) => bits,
        None => MAX_WINDOW_BITS,
    };
    let client_offered = client_bits.flatten();
    Ok(Agreed {
        server_max_window_bits,
        // §7.1.2.1: an offer with server_max_window_bits is accepted "by
        // including the server_max_window_bits extension parameter in the
        // extension negotiation response ... with the same or smaller value".
        server_window_in_response: server_bits.is_some(),
        // §7.1.2.2: without the parameter in the offer, the response "MUST
        // NOT include" it, and the client may use a 15-bit window.
        client_max_window_bits: client_offered.unwrap_or(MAX_WINDOW_BITS),
        client_window_in_response: client_offered.is_some(),
        client_no_context_takeover: client_no_context_takeover || !policy.client_context_takeover,
    })
}

fn no_value(value: &Option<Vec<u8>>) -> Result<(), Decline> {
    match value {
        None => Ok(()),
        Some(_) => Err(Decline::InvalidValue),
    }
}

/// RFC 7692 §7.1.2: "a decimal integer value without leading zeroes between
/// 8 to 15, inclusive".
fn window_bits(value: &[u8]) -> Result<u8, Decline> {
    match value {
        [d @ b'8'..=b'9'] => Ok(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Ok(10 + d - b'0'),
        _ => Err(Decline::InvalidValue),
    }
}

/// Splits a header value into list elements at commas outside quoted
/// strings (RFC 9110 §5.6.1: empty elements are ignored). An unterminated
/// quoted string runs to the end of the value.
pub fn split_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = find_unquoted(rest, b',').unwrap_or(rest.len());
        let element = trim(&rest[..end]);
        rest = rest.get(end + 1..).unwrap_or(&[]);
        if !element.is_empty() {
            return Some(element);
        }
    })
}

/// A parameter: its name and its value, unquoted (`None` when it has none).
type Param<'a> = (&'a [u8], Option<Vec<u8>>);

/// RFC 6455 §9.1:
///
/// ```text
/// extension = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
///     ; When using the quoted-string syntax variant, the value
///     ; after quoted-string unescaping MUST conform to the
///     ; 'token' ABNF.
/// ```
fn parse_element(element: &[u8]) -> Result<(&[u8], Vec<Param<'_>>), Decline> {
    let mut parts = split_params(element);
    let name = parts.next().ok_or(Decline::Malformed)?;
    if !is_token(name) {
        return Err(Decline::Malformed);
    }
    let mut params = Vec::new();
    for part in parts {
        let (key, value) = match part.iter().position(|&b| b == b'=') {
            None => (part, None),
            Some(eq) => (trim(&part[..eq]), Some(trim(&part[eq + 1..]))),
        };
        if !is_token(key) {
            return Err(Decline::Malformed);
        }
        let value = match value {
            None => None,
            Some(raw) => Some(unquote(raw).ok_or(Decline::Malformed)?),
        };
        params.push((key, value));
    }
    Ok((name, params))
}

/// Splits an element at semicolons outside quoted strings, trimming each
/// part.
fn split_params(element: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(element);
    std::iter::from_fn(move || {
        let current = rest?;
        match find_unquoted(current, b';') {
            Some(i) => {
                rest = Some(&current[i + 1..]);
                Some(trim(&current[..i]))
            }
            None => {
                rest = None;
                Some(trim(current))
            }
        }
    })
}

/// The first `delim` in `bytes` outside a quoted string (a backslash inside
/// quotes escapes the next byte), shared by the element and parameter splits.
fn find_unquoted(bytes: &[u8], delim: u8) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == delim && !in_quotes {
            return Some(i);
        }
    }
    None
}

/// A token as it is, or a quoted-string unescaped, whose content must then
/// be a token (RFC 6455 §9.1).
fn unquote(raw: &[u8]) -> Option<Vec<u8>> {
    if is_token(raw) {
        return Some(raw.to_vec());
    }
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut value = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            // RFC 9110 §5.6.4: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            b'\\' => value.push(*bytes.next()?),
            b'"' => return None,
            _ => value.push(b),
        }
    }
    is_token(&value).then_some(value)
}

/// RFC 9110 §5.6.2: `token = 1*tchar`.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Strips optional whitespace (RFC 9110 §5.6.3: `OWS = *( SP / HTAB )`).
fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else { return &[] };
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .unwrap_or(start);
    &s[start..=end]
}

/// RFC 7692 §7.2.1 with no context takeover: every message is compressed on
/// its own, so its payload is valid for any connection that agreed on a
/// window at least as large as this compressor's.
///
/// Memory: zlib's deflate state for the window (about 256 KiB at 15 bits),
/// allocated once and reused for every message (reset in between).
pub struct Compressor {
    inner: Compress,
    window_bits: u8,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor").finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor whose LZ77 window is `window_bits` (clamped to 9..=15).
    pub fn new(window_bits: u8) -> Compressor {
        let window_bits = window_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS);
        Compressor {
            // Raw DEFLATE: no zlib header (RFC 7692 §7.2.1 compresses "using
            // DEFLATE", RFC 1951, not the zlib format).
            inner: Compress::new_with_window_bits(Compression::new(LEVEL), false, window_bits),
            window_bits,
        }
    }

    /// The window this compressor uses.
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Appends to `out` the compressed payload of `message`: DEFLATE with a
    /// sync flush, the trailing `00 00 ff ff` removed (RFC 7692 §7.2.1).
    pub fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) {
        // §7.1.1.1: with server_no_context_takeover every message starts
        // from an empty window.
        self.inner.reset();
        let start = out.len();
        let mut input = message;
        loop {
            // DEFLATE's worst case grows the data by 5 bytes per stored block
            // of up to 64 KiB; room for that plus the flush avoids most loops.
            out.reserve(input.len() + input.len() / 1024 + 64);
            let before = self.inner.total_in();
            // §7.2.1: "Compress all the octets of the payload of the message
            // using DEFLATE", ending on an empty stored block (the sync
            // flush) so the receiver can append the tail back.
            let status = self
                .inner
                .compress_vec(input, out, FlushCompress::Sync)
                .expect("raw deflate of in-memory data cannot fail");
            let used = (self.inner.total_in() - before) as usize;
            input = &input[used..];
            // All input in, and output room left over: the flush is complete.
            if input.is_empty() && out.len() < out.capacity() {
                debug_assert_eq!(status, Status::Ok);
                break;
            }
        }
        // §7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the
        // tail end."
        debug_assert!(out[start..].ends_with(&TAIL));
        out.truncate(out.len() - TAIL.len());
    }
}

/// Why a compressed message could not be inflated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// RFC 6455 §10.4 applied to the inflated size (RFC 7692 §8.1 notes
    /// the decompressed size must be bounded): closes with 1009.
    TooBig {
        /// The limit the message went over.
        max: usize,
    },
    /// The payload is not valid DEFLATE data (RFC 1951), or refers to
    /// history the agreed parameters do not keep: closes with 1007, the
    /// message's data is "not consistent with the type of the message".
    Corrupt,
}

impl InflateError {
    /// The close code the connection fails with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            InflateError::TooBig { .. } => CloseCode::TOO_BIG,
            InflateError::Corrupt => CloseCode::INVALID_PAYLOAD,
        }
    }
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::TooBig { max } => write!(f, "inflated message larger than {max} bytes"),
            InflateError::Corrupt => f.write_str("invalid compressed data"),
        }
    }
}

impl std::error::Error for InflateError {}

/// RFC 7692 §7.2.2 for one connection's incoming messages.
///
/// # The caller's contract
///
/// For each compressed message (RSV1 on its first frame): call
/// [`inflate`](Inflater::inflate) with every chunk of its (unmasked) payload
/// in order, then [`finish`](Inflater::finish) once after its last frame.
/// The inflated bytes are appended to `out`, which never grows past `max`
/// bytes (plus one, to see that the limit is passed): a compression bomb is
/// stopped at the limit and costs no more memory. After an error the
/// connection is failed; the inflater must not be used again.
///
/// Memory: nothing until the first compressed message. While a message is
/// inflated, zlib's inflate state (about 7 KiB) and the 32 KiB window. Without context takeover both are dropped when the
/// message ends; with it (the client may refer back to earlier messages)
/// they stay for the life of the connection.
pub struct Inflater {
    state: Option<Box<Decompress>>,
    takeover: bool,
    /// Whether the current message has had payload bytes.
    fed: bool,
    /// Whether the current message's DEFLATE stream ended (BFINAL).
    ended: bool,
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("takeover", &self.takeover)
            .field("holds_state", &self.state.is_some())
            .finish()
    }
}

/// How many inflated bytes one call to zlib may produce: the output grows
/// by at most this much beyond what is already there.
const INFLATE_STEP: usize = 16 * 1024;

impl Inflater {
    /// An inflater for the context rule of `agreed`.
    pub fn new(agreed: &Agreed) -> Inflater {
        Inflater::with(!agreed.client_no_context_takeover)
    }

    /// An inflater that keeps the window across messages when `takeover` is
    /// true.
    ///
    /// The window is always 15 bits (32 KiB), whatever
    /// `client_max_window_bits` the client announced: zlib checks a
    /// back-reference against the window *plus the output of the current
    /// call*, so with a smaller window a reference reaching past it would be
    /// accepted or refused depending on how the payload was split into
    /// frames. At 15 bits the window covers the longest distance DEFLATE can
    /// express, so the verdict depends only on the bytes. A larger window
    /// decodes everything a compliant smaller one produces (RFC 7692
    /// §7.1.2.2 limits the client's compressor, not the server's inflater).
    pub fn with(takeover: bool) -> Inflater {
        Inflater {
            state: None,
            takeover,
            fed: false,
            ended: false,
        }
    }

    /// Whether zlib state is held (between messages, only with takeover).
    pub fn holds_state(&self) -> bool {
        self.state.is_some()
    }

    /// Drops the message being inflated and the state with it (the
    /// connection is closing and will inflate nothing more).
    pub fn abandon(&mut self) {
        self.state = None;
        self.fed = false;
        self.ended = false;
    }

    /// Inflates one chunk of a compressed message's payload into `out`.
    ///
    /// # Errors
    ///
    /// [`InflateError::TooBig`] once `out` would pass `max` bytes,
    /// [`InflateError::Corrupt`] on invalid DEFLATE data.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        if input.is_empty() || self.ended {
            return Ok(());
        }
        self.fed = true;
        let state = self.state.get_or_insert_with(|| {
            Box::new(Decompress::new_with_window_bits(false, MAX_WINDOW_BITS))
        });
        let mut input = input;
        loop {
            // The room zlib may write to: a step, never past max + 1.
            let room = INFLATE_STEP.min(max.saturating_add(1).saturating_sub(out.len()));
            if room == 0 {
                return Err(InflateError::TooBig { max });
            }
            grow(out, room, max);
            let limit = out.len() + room;
            let before_in = state.total_in();
            let before_out = out.len();
            let status = decompress_into(state, input, out, limit);
            // The limit is checked before zlib's verdict: when one call both
            // passes the limit and then meets invalid data, a payload fed in
            // smaller pieces would have stopped at the limit first. Checking
            // in this order makes the error the same however the payload was
            // split (the output before the invalid data is the same).
            if out.len() > max {
                return Err(InflateError::TooBig { max });
            }
            let status = status?;
            input = &input[(state.total_in() - before_in) as usize..];
            if status == Status::StreamEnd {
                // §7.2.3.4: a block with BFINAL set ends the DEFLATE stream;
                // what follows it in this message (the appended tail, or an
                // empty stored block) is not DEFLATE data. The next message
                // starts a new stream.
                state.reset(false);
                self.ended = true;
                return Ok(());
            }
            // Done when the input is used up and zlib stopped before the end
            // of the room (a full room may hide more output to come).
            let filled = out.len() == limit;
            if input.is_empty() && !filled {
                return Ok(());
            }
            if out.len() == before_out && state.total_in() == before_in {
                // No progress although input and room are left: zlib waits
                // for more input than this chunk holds.
                return Ok(());
            }
        }
    }

    /// Ends a message: appends `00 00 ff ff` and inflates what remains
    /// (RFC 7692 §7.2.2), then forgets the window unless context takeover
    /// was agreed.
    ///
    /// # Errors
    ///
    /// As [`Inflater::inflate`].
    pub fn finish(&mut self, out: &mut Vec<u8>, max: usize) -> Result<(), InflateError> {
        // §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of
        // the payload of the message."
        // An empty payload holds no DEFLATE block at all: an empty message,
        // and no tail to feed (it would leave zlib inside a stored block).
        let result = if self.fed {
            self.inflate(&TAIL, out, max)
        } else {
            Ok(())
        };
        self.fed = false;
        self.ended = false;
        if !self.takeover || result.is_err() {
            // §7.1.1.2: with client_no_context_takeover the client starts
            // every message from an empty window, so none is kept here.
            self.state = None;
        }
        result
    }
}

/// Makes room for `room` more bytes in `out`, doubling its capacity as a
/// Vec does but never past `max + 1`: a bomb stops at the limit with no
/// more memory than the limit.
fn grow(out: &mut Vec<u8>, room: usize, max: usize) {
    let needed = out.len() + room;
    if needed <= out.capacity() {
        return;
    }
    let target = needed
        .max(out.capacity().saturating_mul(2))
        .min(max.saturating_add(1));
    out.reserve_exact(target.max(needed) - out.len());
}

/// One `inflate` call writing into `out` up to `limit` bytes (`out` has the
/// capacity).
fn decompress_into(
    state: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<Status, InflateError> {
    // `decompress_vec` writes into the spare capacity only, so a Vec whose
    // capacity is cut to `limit` bounds the output; write through a slice
    // of exactly that length instead of shrinking the Vec.
    let start = out.len();
    out.resize(limit, 0);
    let before = state.total_out();
    let result = state.decompress(input, &mut out[start..], FlushDecompress::Sync);
    let written = (state.total_out() - before) as usize;
    out.truncate(start + written);
    match result {
        Ok(status) => Ok(status),
        Err(_) => Err(InflateError::Corrupt),
    }
}

#[cfg(test)]
#[path = "deflate/tests.rs"]
mod tests;

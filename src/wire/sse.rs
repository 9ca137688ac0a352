//! The `text/event-stream` format: the encoder the server writes with and the
//! incremental parser that pushlab's own clients and tests read with.
//!
//! Implements WHATWG HTML §9.2.5 "Parsing an event stream" and §9.2.6
//! "Interpreting an event stream"
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>). Pure:
//! bytes in, values out, no socket and no clock.
//!
//! # What the encoder guarantees
//!
//! [`encode_event`] writes `event:`, `id:`, one `data:` line per line of the
//! message, and a blank line. Parsed by any conforming client, the event's data
//! is the message **with every CRLF and every lone CR turned into LF**: the
//! spec's line splitting treats all three as line endings and joins `data`
//! lines with LF, so a bare CR cannot travel in SSE data. Everything else
//! round-trips exactly: empty messages, empty lines, leading spaces, `:`,
//! U+0000, U+FEFF. To carry CR exactly, use pushlab's JSON mode (the data is a
//! JSON string, where CR is the escape `\r`).
//!
//! # Parser call protocol (h11 style)
//!
//! [`Parser::feed`] bytes as they arrive, then call [`Parser::next_event`]
//! until it returns [`Decoded::Incomplete`]. When the connection closes, call
//! [`Parser::end_of_stream`]. Memory is bounded by [`Parser::with_limits`]:
//! a longer line or a bigger event is an [`SseError`], never unbounded growth.
//!
//! # Left out
//!
//! - The `EventSource` object itself (connecting, reconnecting, `readyState`,
//!   HTTP status and `Content-Type` checks, CORS, the `origin` attribute): the
//!   caller does that, reading [`Parser::last_event_id`] and [`Parser::retry`].
//! - Encodings other than UTF-8: §9.2.5 says streams "must always be encoded as
//!   UTF-8", so there is nothing else to support.
//!
//! # Departures (marked `Simplification:` in the code)
//!
//! - After [`Parser::end_of_stream`] the new stream's last event ID buffer
//!   starts at the last event ID string, not empty (as Chromium does), so a
//!   reconnection does not blank the id before the server sends one.
//! - A `retry` value past `u64::MAX` saturates.

use std::borrow::Cow;
use std::fmt;

/// Default for [`Parser::with_limits`]' `max_line`: far above any line the
/// server writes (a `--max-message` of 64 KiB, even JSON-escaped six times
/// over), yet a bound on a server that never sends a line ending.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// Default for [`Parser::with_limits`]' `max_event`: the same reasoning, for
/// the data of one event spread over many `data:` lines.
pub const DEFAULT_MAX_EVENT: usize = 16 * 1024 * 1024;

/// §9.2.6: "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order
/// Mark (BOM), if any."
const BOM: &[u8] = b"\xEF\xBB\xBF";

// ---------------------------------------------------------------- encoder --

/// Appends one event: `event: <event>` (if any), `id: <id>` (if any), one
/// `data: <line>` per line of `data`, then a blank line.
///
/// - Lines of `data` end at LF, CR or CRLF, the three line endings of §9.2.6,
///   so the client receives `data` with CR and CRLF normalised to LF (see the
///   module docs).
/// - Every field is written as `name: value`, with the space: the parser strips
///   exactly one leading space, so a value's own leading spaces survive.
/// - An empty `data` is one `data: ` line. That puts a single LF in the data
///   buffer, which is not empty, so the event *is* dispatched (§9.2.6 dispatch
///   step 2 drops only an empty buffer), and step 3 removes the LF: the client
///   receives data `""`.
/// - `event` and `id` must not contain LF or CR, and `id` must not contain
///   U+0000 (the parser ignores such an `id` field). Checked in debug builds
///   only; the server's ids are `E-N` and its event types are constants.
/// - `Some("")` as `event` gives the default type `message`; `Some("")` as
///   `id` resets the client's last event ID to empty.
pub fn encode_event(out: &mut Vec<u8>, id: Option<&str>, event: Option<&str>, data: &str) {
    debug_assert!(
        !event.is_some_and(|e| e.contains(['\r', '\n'])),
        "SSE event type must be a single line"
    );
    debug_assert!(
        !id.is_some_and(|i| i.contains(['\r', '\n', '\0'])),
        "SSE id must not contain CR, LF or NULL"
    );
    let head = event.map_or(0, |e| b"event: \n".len() + e.len())
        + id.map_or(0, |i| b"id: \n".len() + i.len());
    out.reserve(head + encoded_len_hint(data));
    if let Some(event) = event {
        write_field(out, b"event: ", event.as_bytes());
    }
    if let Some(id) = id {
        write_field(out, b"id: ", id.as_bytes());
    }
    for_each_line(data, |line| write_field(out, b"data: ", line));
    // §9.2.6: "If the line is empty (a blank line): Dispatch the event"
    out.push(b'\n');
}

/// The exact number of bytes [`encode_event`] writes for `data` with no `id`
/// and no `event`; an `id` adds `id.len() + 5`, an `event` `event.len() + 8`.
pub fn encoded_len_hint(data: &str) -> usize {
    let mut len = 1; // the blank line
    for_each_line(data, |line| len += b"data: \n".len() + line.len());
    len
}

/// Appends `retry: <ms>` and a blank line, setting the client's reconnection
/// time. The blank line keeps the block self-contained; it dispatches nothing,
/// since the data buffer is empty (§9.2.6 dispatch step 2).
pub fn encode_retry(out: &mut Vec<u8>, ms: u64) {
    write_field(out, b"retry: ", ms.to_string().as_bytes());
    out.push(b'\n');
}

/// Appends `text` as comment lines (`: <line>`, one per line of `text`) and a
/// blank line, e.g. `: ping\n\n`.
///
/// §9.2.6: a line that "starts with a U+003A COLON character (:)" is ignored,
/// so a comment needs no blank line; one is written anyway so that every block
/// the server writes ends in `\n\n`, which clients and proxies that buffer up to
/// a blank line pass on at once. The blank line dispatches nothing (the data
/// buffer is empty between blocks).
pub fn encode_comment(out: &mut Vec<u8>, text: &str) {
    for_each_line(text, |line| write_field(out, b": ", line));
    out.push(b'\n');
}

fn write_field(out: &mut Vec<u8>, prefix: &[u8], value: &[u8]) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Calls `f` with each line of `text`, split where §9.2.6 splits: at "a
/// U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a single
/// U+000A LINE FEED (LF) character not preceded by a U+000D CARRIAGE RETURN
/// (CR) character, and a single U+000D CARRIAGE RETURN (CR) character not
/// followed by a U+000A LINE FEED (LF) character". Text ending in a line
/// ending has a final empty line; empty text is one empty line.
fn for_each_line(text: &str, mut f: impl FnMut(&[u8])) {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(i) = find_line_ending(&bytes[start..]) {
        let end = start + i;
        f(&bytes[start..end]);
        let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
        start = end + if crlf { 2 } else { 1 };
    }
    f(&bytes[start..]);
}

/// The first CR or LF in `bytes`. Eight bytes at a time: a word that holds
/// neither is skipped with a few integer operations (messages are mostly
/// long runs without line endings), and the exact position is then found
/// byte by byte.
fn find_line_ending(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Non-zero exactly when some byte of `w` is zero.
    let has_zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut words = bytes.chunks_exact(8);
    let mut skipped = 0;
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_ne_bytes(word);
        if has_zero_byte(w ^ (ONES * u64::from(b'\n')))
            | has_zero_byte(w ^ (ONES * u64::from(b'\r')))
            != 0
        {
            break;
        }
        skipped += 8;
    }
    bytes[skipped..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|i| skipped + i)
}

// ----------------------------------------------------------------- parser --

/// One dispatched event, as a browser's `MessageEvent` would carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event` field, or `"message"` when it was absent or empty.
    pub event_type: String,
    /// The `data` lines joined with LF.
    pub data: String,
    /// The last event ID string at dispatch: set by the latest `id` field of
    /// this stream, carried over from earlier events when this one has none.
    pub last_event_id: String,
}

/// The result of [`Parser::next_event`] that is not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A blank line dispatched this event.
    Event(Event),
    /// Every complete line fed so far is processed; feed more bytes.
    Incomplete,
}

/// A limit of [`Parser::with_limits`] was passed. The stream cannot be
/// resynchronised: the parser returns the same error until
/// [`Parser::end_of_stream`], and the client should close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// A line (without its line ending) is longer than `limit` bytes.
    LineTooLong { limit: usize },
    /// One event's data buffer would exceed `limit` bytes.
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::LineTooLong { limit } => {
                write!(f, "event-stream line longer than {limit} bytes")
            }
            SseError::EventTooLarge { limit } => {
                write!(f, "event-stream event data larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

/// An incremental event-stream parser (WHATWG HTML §9.2.6).
///
/// Contract: call [`feed`](Self::feed) with bytes in the order received, split
/// anywhere (inside a UTF-8 character, between CR and LF); then call
/// [`next_event`](Self::next_event) until it returns [`Decoded::Incomplete`].
/// The same bytes give the same events however they are split. Lines are
/// processed lazily in `next_event`, so `feed` never fails and bytes fed but
/// not yet pulled stay buffered. When the connection ends, call
/// [`end_of_stream`](Self::end_of_stream) before reusing the parser for the
/// reconnection.
#[derive(Debug)]
pub struct Parser {
    /// Bytes fed and not yet consumed; `buf[pos..]` starts the current line.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes of the current line already searched for a line ending.
    scanned: usize,
    /// The previous line ended in CR: an LF that comes next belongs to it.
    skip_lf: bool,
    max_line: usize,
    failed: Option<SseError>,
    state: StreamState,
}

/// The buffers of §9.2.6 and what the event source keeps across streams.
#[derive(Debug)]
struct StreamState {
    /// No line has ended yet in this stream, so a BOM may still lead it.
    at_start: bool,
    data: String,
    event_type: String,
    id_buffer: String,
    /// The event source's "last event ID string" (kept across streams).
    last_event_id: String,
    /// The event source's "reconnection time", once a `retry` field set it.
    retry: Option<u64>,
    comments: u64,
    max_event: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser with [`DEFAULT_MAX_LINE`] and [`DEFAULT_MAX_EVENT`].
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_MAX_LINE, DEFAULT_MAX_EVENT)
    }

    /// A parser that fails with [`SseError::LineTooLong`] on a line of more
    /// than `max_line` bytes (line ending excluded) and with
    /// [`SseError::EventTooLarge`] when one event's data buffer (UTF-8 bytes,
    /// with the LF each `data` line appends) would pass `max_event` bytes.
    pub fn with_limits(max_line: usize, max_event: usize) -> Self {
        Parser {
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            skip_lf: false,
            max_line,
            failed: None,
            state: StreamState {
                at_start: true,
                data: String::new(),
                event_type: String::new(),
                id_buffer: String::new(),
                last_event_id: String::new(),
                retry: None,
                comments: 0,
                max_event,
            },
        }
    }

    /// Buffers `chunk`; [`next_event`](Self::next_event) parses it. Ignored
    /// once the parser has failed.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Processes buffered lines until a blank line dispatches an event or no
    /// complete line is left. Comments, fields and blank lines that dispatch
    /// nothing are consumed on the way.
    pub fn next_event(&mut self) -> Result<Decoded, SseError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        loop {
            // §9.2.6: CRLF is one line ending, even when the CR ended a chunk.
            if self.skip_lf && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                }
                self.skip_lf = false;
            }
            let from = self.pos + self.scanned;
            let Some(i) = find_line_ending(&self.buf[from..]) else {
                self.scanned = self.buf.len() - self.pos;
                if self.scanned > self.max_line {
                    return Err(self.fail(SseError::LineTooLong {
                        limit: self.max_line,
                    }));
                }
                return Ok(Decoded::Incomplete);
            };
            let end = from + i;
            if end - self.pos > self.max_line {
                return Err(self.fail(SseError::LineTooLong {
                    limit: self.max_line,
                }));
            }
            // A lone CR ends the line at once; only the next byte can tell
            // whether it was the first half of a CRLF.
            self.skip_lf = self.buf[end] == b'\r';
            let line = &self.buf[self.pos..end];
            self.pos = end + 1;
            self.scanned = 0;
            match self.state.process_line(line) {
                Ok(Some(event)) => return Ok(Decoded::Event(event)),
                Ok(None) => {}
                Err(error) => return Err(self.fail(error)),
            }
        }
    }

    /// The stream ended (the connection closed). §9.2.5: "Once the end of the
    /// file is reached, any pending data must be discarded": the unterminated
    /// line, the incomplete event, and any bytes not yet pulled through
    /// [`next_event`](Self::next_event) are dropped, as is a failure. The
    /// parser is then ready for the reconnection's stream: fresh buffers, a
    /// BOM allowed again, while [`last_event_id`](Self::last_event_id),
    /// [`retry`](Self::retry) and [`comments`](Self::comments) are kept, and
    /// the new stream's events carry the last event ID until an `id` field.
    pub fn end_of_stream(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.scanned = 0;
        self.skip_lf = false;
        self.failed = None;
        let state = &mut self.state;
        state.at_start = true;
        state.data.clear();
        state.event_type.clear();
        // Simplification (deliberate departure): §9.2.6 initialises the last
        // event ID buffer of each new stream "to the empty string", so the
        // first dispatch after a reconnection would blank the last event ID
        // string unless the server repeats an `id`. Like Chromium, start the
        // buffer at the last event ID string instead, so resuming stays sticky.
        state.id_buffer.clone_from(&state.last_event_id);
    }

    /// The event source's last event ID string: what a reconnecting client
    /// sends as `Last-Event-ID` (none when empty). Updated at each blank line.
    pub fn last_event_id(&self) -> &str {
        &self.state.last_event_id
    }

    /// The reconnection time in milliseconds set by the latest valid `retry`
    /// field, if any.
    pub fn retry(&self) -> Option<u64> {
        self.state.retry
    }

    /// How many comment lines (heartbeats such as `: ping`) were processed.
    pub fn comments(&self) -> u64 {
        self.state.comments
    }

    fn fail(&mut self, error: SseError) -> SseError {
        self.failed = Some(error);
        self.buf = Vec::new();
        self.pos = 0;
        self.scanned = 0;
        error
    }
}

impl StreamState {
    /// Processes one line (line ending removed), per §9.2.6.
    fn process_line(&mut self, mut line: &[u8]) -> Result<Option<Event>, SseError> {
        if self.at_start {
            self.at_start = false;
            // The UTF-8 decode algorithm "strips one leading UTF-8 Byte Order
            // Mark (BOM), if any": only once, only at the start of the stream.
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        // Decoding each line on its own equals decoding the whole stream: LF,
        // CR and ':' are ASCII, and the UTF-8 decoder emits an ASCII byte
        // as itself even after an incomplete sequence, so they are always
        // boundaries. Field names compare as bytes: a name with an invalid
        // sequence decodes with U+FFFD and matches no known field either way.
        if line.is_empty() {
            // "If the line is empty (a blank line): Dispatch the event"
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            // "If the line starts with a U+003A COLON character (:): Ignore
            // the line."
            self.comments += 1;
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            // "Collect the characters on the line before the first U+003A
            // COLON character (:) ... If value starts with a U+0020 SPACE
            // character, remove it from value."
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            // "Otherwise ... using the whole line as the field name, and the
            // empty string as the field value."
            None => (line, &b""[..]),
        };
        // "Field names must be compared literally, with no case folding".
        match field {
            // "Set the event type buffer to the field value."
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&decode(value));
            }
            // "Append the field value to the data buffer, then append a single
            // U+000A LINE FEED (LF) character to the data buffer."
            b"data" => {
                let value = decode(value);
                if self.data.len() + value.len() + 1 > self.max_event {
                    return Err(SseError::EventTooLarge {
                        limit: self.max_event,
                    });
                }
                self.data.push_str(&value);
                self.data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the
            // last event ID buffer to the field value. Otherwise, ignore the
            // field."
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.push_str(&decode(value));
            }
            // "If the field value consists of only ASCII digits, then interpret
            // the field value as an integer in base ten, and set the event
            // stream's reconnection time to that integer. Otherwise, ignore the
            // field." An empty value has no integer to interpret: ignored, as
            // browsers do. Simplification: values past u64::MAX saturate.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |ms, &digit| {
                    ms.saturating_mul(10)
                        .saturating_add(u64::from(digit - b'0'))
                });
                self.retry = Some(ms);
            }
            // "Otherwise: The field is ignored." So are the `id` and `retry`
            // fields that fail their checks above.
            _ => {}
        }
        Ok(None)
    }

    /// §9.2.6 "dispatch the event", steps 1 to 7 for web browsers (without
    /// the `origin` attribute).
    fn dispatch(&mut self) -> Option<Event> {
        // 1. "Set the last event ID string of the event source to the value of
        // the last event ID buffer. The buffer does not get reset".
        self.last_event_id.clone_from(&self.id_buffer);
        // 2. "If the data buffer is an empty string, set the data buffer and
        // the event type buffer to the empty string and return."
        if self.data.is_empty() {
            self.event_type.clear();
            return None;
        }
        // 3. "If the data buffer's last character is a U+000A LINE FEED (LF)
        // character, then remove the last character from the data buffer."
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        // 5.-6. The type is "message" unless "the event type buffer has a value
        // other than the empty string".
        let event_type = if self.event_type.is_empty() {
            String::from("message")
        } else {
            std::mem::take(&mut self.event_type)
        };
        // 7. "Set the data buffer and the event type buffer to the empty
        // string." (`take` leaves both empty.)
        Some(Event {
            event_type,
            data: std::mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        })
    }
}

/// §9.2.6: "Streams must be decoded using the UTF-8 decode algorithm":
/// invalid sequences become U+FFFD, one per maximal subpart, which is what
/// `from_utf8_lossy` does too.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---------------------------------------------------------- helpers --

    /// Parses `chunks` fed one after the other, pulling events after each.
    fn parse_chunks(parser: &mut Parser, chunks: &[&[u8]]) -> Vec<Event> {
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk);
            while let Decoded::Event(event) = parser.next_event().unwrap() {
                events.push(event);
            }
        }
        events
    }

    fn parse(stream: &[u8]) -> Vec<Event> {
        parse_chunks(&mut Parser::new(), &[stream])
    }

    fn event(event_type: &str, data: &str, last_event_id: &str) -> Event {
        Event {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: last_event_id.into(),
        }
    }

    fn message(data: &str) -> Event {
        event("message", data, "")
    }

    fn encoded(id: Option<&str>, event_type: Option<&str>, data: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_event(&mut out, id, event_type, data);
        out
    }

    // ------------------------------------------- the spec's own examples --

    #[test]
    fn stock_example_joins_data_lines_with_lf() {
        let events = parse(b"data: YHOO\ndata: +2\ndata: 10\n\n");
        assert_eq!(events, [message("YHOO\n+2\n10")]);
    }

    #[test]
    fn four_block_example_sets_then_resets_the_last_event_id() {
        let stream = b": test stream\n\ndata: first event\nid: 1\n\n\
                       data:second event\nid\n\ndata:  third event\n\n";
        let mut parser = Parser::new();
        let events = parse_chunks(&mut parser, &[stream]);
        assert_eq!(
            events,
            [
                message("first event").with_id("1"),
                message("second event"),
                message(" third event"),
            ]
        );
        assert_eq!(parser.comments(), 1);
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn data_without_colon_example_fires_two_events_and_drops_the_last_block() {
        let events = parse(b"data\n\ndata\ndata\n\ndata:");
        assert_eq!(events, [message(""), message("\n")]);
    }

    #[test]
    fn space_after_colon_is_optional_example_fires_identical_events() {
        let events = parse(b"data:test\n\ndata: test\n\n");
        assert_eq!(events, [message("test"), message("test")]);
    }

    #[test]
    fn event_field_sets_the_type_of_one_event_only() {
        let events =
            parse(b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\ndata: x\n\n");
        assert_eq!(
            events,
            [
                event("add", "73857293", ""),
                event("remove", "2153", ""),
                message("x")
            ]
        );
    }

    // ------------------------------------------------------------ fields --

    #[test]
    fn only_one_leading_space_is_stripped_from_a_value() {
        assert_eq!(parse(b"data:   x \n\n"), [message("  x ")]);
    }

    #[test]
    fn value_is_split_at_the_first_colon_only() {
        assert_eq!(parse(b"data: a: b:c\n\n"), [message("a: b:c")]);
    }

    #[test]
    fn field_names_are_case_sensitive_and_unknown_fields_are_ignored() {
        assert_eq!(
            parse(b"Data: x\nfoo: y\ndata : z\ndata: kept\n\n"),
            [message("kept")]
        );
    }

    #[test]
    fn event_id_carries_over_to_later_events_without_an_id() {
        let events = parse(b"id: E-1\ndata: a\n\ndata: b\n\n");
        assert_eq!(
            events,
            [message("a").with_id("E-1"), message("b").with_id("E-1")]
        );
    }

    #[test]
    fn id_containing_null_is_ignored() {
        let mut parser = Parser::new();
        let events = parse_chunks(&mut parser, &[b"id: 1\n\nid: 2\0x\ndata: a\n\n"]);
        assert_eq!(events, [message("a").with_id("1")]);
        assert_eq!(parser.last_event_id(), "1");
    }

    #[test]
    fn id_only_block_sets_the_last_event_id_without_an_event() {
        let mut parser = Parser::new();
        assert!(parse_chunks(&mut parser, &[b"id: E-7\n\n"]).is_empty());
        assert_eq!(parser.last_event_id(), "E-7");
    }

    #[test]
    fn last_event_id_changes_only_at_a_blank_line() {
        let mut parser = Parser::new();
        parse_chunks(&mut parser, &[b"id: 1\n\nid: 2\ndata: x\n"]);
        assert_eq!(parser.last_event_id(), "1");
    }

    #[test]
    fn block_without_data_dispatches_nothing_and_resets_the_event_type() {
        assert_eq!(parse(b"event: lonely\n\ndata: x\n\n"), [message("x")]);
    }

    #[test]
    fn retry_with_digits_sets_the_reconnection_time() {
        let mut parser = Parser::new();
        assert!(parse_chunks(&mut parser, &[b"retry: 2500\n\n"]).is_empty());
        assert_eq!(parser.retry(), Some(2500));
    }

    #[test]
    fn retry_with_anything_but_digits_is_ignored() {
        for field in [
            &b"retry: 10a\n"[..],
            b"retry:  10\n",
            b"retry: -1\n",
            b"retry: 1.5\n",
            b"retry:\n",
            b"retry\n",
        ] {
            let mut parser = Parser::new();
            parse_chunks(&mut parser, &[b"retry: 7\n", field, b"\n"]);
            assert_eq!(
                parser.retry(),
                Some(7),
                "{:?}",
                String::from_utf8_lossy(field)
            );
        }
    }

    #[test]
    fn retry_past_u64_saturates() {
        let mut parser = Parser::new();
        parse_chunks(&mut parser, &[b"retry: 99999999999999999999999\n\n"]);
        assert_eq!(parser.retry(), Some(u64::MAX));
    }

    #[test]
    fn comments_are_ignored_but_counted() {
        let mut parser = Parser::new();
        let events = parse_chunks(&mut parser, &[b": ping\n\n:\ndata: x\n: in the middle\n\n"]);
        assert_eq!(events, [message("x")]);
        assert_eq!(parser.comments(), 3);
    }

    // ------------------------------------------- line endings and chunks --

    #[test]
    fn lf_cr_and_crlf_line_endings_give_the_same_events() {
        let lf = parse(b"id: 1\ndata: a\ndata: b\n\ndata: c\n\n");
        assert_eq!(lf, parse(b"id: 1\rdata: a\rdata: b\r\rdata: c\r\r"));
        assert_eq!(
            lf,
            parse(b"id: 1\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n")
        );
        assert_eq!(lf, parse(b"id: 1\r\ndata: a\rdata: b\n\r\ndata: c\r\n\n"));
    }

    #[test]
    fn cr_then_lf_across_a_chunk_boundary_is_one_line_ending() {
        let mut parser = Parser::new();
        let events = parse_chunks(&mut parser, &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events, [message("a\nb")]);
    }

    #[test]
    fn cr_at_the_end_of_a_chunk_ends_the_line_at_once() {
        let mut parser = Parser::new();
        assert_eq!(parse_chunks(&mut parser, &[b"data: a\n\r"]), [message("a")]);
        assert_eq!(
            parse_chunks(&mut parser, &[b"\ndata: b\n\n"]),
            [message("b")]
        );
    }

    #[test]
    fn multibyte_character_split_across_chunks_decodes() {
        let stream = "data: h\u{e9}\u{20ac}\u{1F600}\n\n".as_bytes();
        for split in 0..stream.len() {
            let events = parse_chunks(&mut Parser::new(), &[&stream[..split], &stream[split..]]);
            assert_eq!(
                events,
                [message("h\u{e9}\u{20ac}\u{1F600}")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn trailing_unterminated_event_is_discarded() {
        let mut parser = Parser::new();
        let events = parse_chunks(&mut parser, &[b"id: 1\ndata: a\n\nid: 2\ndata: b\n"]);
        parser.end_of_stream();
        assert_eq!(events, [message("a").with_id("1")]);
        assert_eq!(parser.last_event_id(), "1");
        // The reconnection's stream starts with fresh buffers but keeps the id.
        assert_eq!(
            parse_chunks(&mut parser, &[b"data: c\n\n"]),
            [message("c").with_id("1")]
        );
    }

    #[test]
    fn end_of_stream_keeps_retry_and_allows_a_new_bom() {
        let mut parser = Parser::new();
        parse_chunks(&mut parser, &[b"retry: 10\n\ndata: x"]);
        parser.end_of_stream();
        assert_eq!(
            parse_chunks(&mut parser, &[b"\xEF\xBB\xBFdata: y\n\n"]),
            [message("y")]
        );
        assert_eq!(parser.retry(), Some(10));
    }

    // ------------------------------------------------------ UTF-8 and BOM --

    #[test]
    fn leading_bom_is_skipped_even_when_split_across_chunks() {
        assert_eq!(parse(b"\xEF\xBB\xBFdata: x\n\n"), [message("x")]);
        let events = parse_chunks(&mut Parser::new(), &[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]);
        assert_eq!(events, [message("x")]);
    }

    #[test]
    fn only_one_bom_and_only_at_the_start_is_skipped() {
        // The second BOM is part of the field name "\u{FEFF}data": unknown.
        assert_eq!(
            parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n"),
            [message("y")]
        );
        assert!(parse(b"\n\xEF\xBB\xBFdata: x\n\n").is_empty());
        assert_eq!(parse(b"data: \xEF\xBB\xBFx\n\n"), [message("\u{FEFF}x")]);
    }

    #[test]
    fn invalid_utf8_is_replaced_with_u_fffd() {
        assert_eq!(parse(b"data: a\xFFb\n\n"), [message("a\u{FFFD}b")]);
        // A truncated sequence is one U+FFFD; the LF after it still ends the line.
        assert_eq!(parse(b"data: \xE2\x82\n\n"), [message("\u{FFFD}")]);
        // An encoded surrogate is three maximal subparts.
        assert_eq!(
            parse(b"data: \xED\xA0\x80\n\n"),
            [message("\u{FFFD}\u{FFFD}\u{FFFD}")]
        );
        assert_eq!(
            parse(b"event: \xC0\ndata: x\n\n"),
            [event("\u{FFFD}", "x", "")]
        );
    }

    #[test]
    fn null_in_data_and_event_type_is_kept() {
        assert_eq!(
            parse(b"event: a\0b\ndata: \0\n\n"),
            [event("a\0b", "\0", "")]
        );
    }

    // ------------------------------------------------------------ limits --

    #[test]
    fn line_longer_than_max_line_is_an_error_after_earlier_events() {
        let mut parser = Parser::with_limits(8, 100);
        parser.feed(b"data: 12\n\ndata: 123\n");
        assert_eq!(parser.next_event(), Ok(Decoded::Event(message("12"))));
        assert_eq!(parser.next_event(), Err(SseError::LineTooLong { limit: 8 }));
        // The failure is sticky until the stream ends.
        parser.feed(b"\n\ndata: x\n\n");
        assert_eq!(parser.next_event(), Err(SseError::LineTooLong { limit: 8 }));
        parser.end_of_stream();
        assert_eq!(parse_chunks(&mut parser, &[b"data: x\n\n"]), [message("x")]);
    }

    #[test]
    fn unterminated_line_longer_than_max_line_is_an_error_without_waiting() {
        let mut parser = Parser::with_limits(8, 100);
        parser.feed(b"data: 12");
        assert_eq!(parser.next_event(), Ok(Decoded::Incomplete));
        parser.feed(b"3");
        assert_eq!(parser.next_event(), Err(SseError::LineTooLong { limit: 8 }));
    }

    #[test]
    fn event_larger_than_max_event_is_an_error() {
        let mut parser = Parser::with_limits(100, 6);
        parser.feed(b"data: ab\ndata: c\n\n");
        assert_eq!(parser.next_event(), Ok(Decoded::Event(message("ab\nc"))));
        parser.feed(b"data: ab\ndata: cde\n\n");
        assert_eq!(
            parser.next_event(),
            Err(SseError::EventTooLarge { limit: 6 })
        );
    }

    // ----------------------------------------------------------- encoder --

    #[test]
    fn encode_event_writes_event_then_id_then_data_lines() {
        assert_eq!(
            encoded(Some("E-1"), Some("missed"), "3"),
            b"event: missed\nid: E-1\ndata: 3\n\n"
        );
        assert_eq!(
            encoded(None, None, "a\r\nb\rc\nd"),
            b"data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn empty_message_is_one_data_line_and_arrives_as_empty_data() {
        let bytes = encoded(Some("E-2"), None, "");
        assert_eq!(bytes, b"id: E-2\ndata: \n\n");
        assert_eq!(parse(&bytes), [message("").with_id("E-2")]);
    }

    #[test]
    fn leading_spaces_empty_lines_and_colons_survive() {
        let data = "  two spaces\n\n: not a comment\n data:\n";
        assert_eq!(parse(&encoded(None, None, data)), [message(data)]);
    }

    #[test]
    fn cr_and_crlf_in_data_arrive_as_lf() {
        assert_eq!(
            parse(&encoded(None, None, "a\r\nb\rc\r")),
            [message("a\nb\nc\n")]
        );
    }

    #[test]
    fn retry_block_sets_reconnection_time_and_dispatches_nothing() {
        let mut out = Vec::new();
        encode_retry(&mut out, 3000);
        assert_eq!(out, b"retry: 3000\n\n");
        let mut parser = Parser::new();
        assert!(parse_chunks(&mut parser, &[&out]).is_empty());
        assert_eq!(parser.retry(), Some(3000));
    }

    #[test]
    fn comment_block_is_counted_and_dispatches_nothing() {
        let mut out = Vec::new();
        encode_comment(&mut out, "ping");
        encode_comment(&mut out, "two\nlines");
        assert_eq!(out, b": ping\n\n: two\n: lines\n\n");
        let mut parser = Parser::new();
        assert!(parse_chunks(&mut parser, &[&out]).is_empty());
        assert_eq!(parser.comments(), 3);
    }

    #[test]
    fn encoded_len_hint_is_exact() {
        for data in ["", "x", "a\nb", "a\r\nb\r", "\r\n\r\n", "\n\r"] {
            assert_eq!(
                encoded_len_hint(data),
                encoded(None, None, data).len(),
                "{data:?}"
            );
        }
    }

    // ---------------------------------------------------------- proptest --

    impl Event {
        fn with_id(mut self, id: &str) -> Event {
            self.last_event_id = id.into();
            self
        }
    }

    /// §9.2.6 read literally over the whole stream: decode, strip one BOM,
    /// split into lines, drop the unterminated last one, process each line.
    fn reference_parse(stream: &[u8]) -> (Vec<Event>, String, Option<u64>, u64) {
        let text = String::from_utf8_lossy(stream);
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
        let mut lines: Vec<&str> = text
            .split("\r\n")
            .flat_map(|s| s.split(['\r', '\n']))
            .collect();
        lines.pop(); // the unterminated tail ("" when the stream ends in a line ending)
        let (mut data, mut event_type, mut id_buffer) =
            (String::new(), String::new(), String::new());
        let (mut last_id, mut retry, mut comments, mut events) =
            (String::new(), None, 0, Vec::new());
        for line in lines {
            if line.is_empty() {
                last_id = id_buffer.clone();
                if !data.is_empty() {
                    data.pop();
                    let kind = if event_type.is_empty() {
                        "message"
                    } else {
                        event_type.as_str()
                    };
                    events.push(event(kind, &data, &last_id));
                }
                data.clear();
                event_type.clear();
                continue;
            }
            if line.starts_with(':') {
                comments += 1;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event_type = value.into(),
                "data" => data = data + value + "\n",
                "id" if !value.contains('\0') => id_buffer = value.into(),
                "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    retry = Some(value.parse().unwrap_or(u64::MAX))
                }
                _ => {}
            }
        }
        (events, last_id, retry, comments)
    }

    fn parse_split(stream: &[u8], cuts: &[usize]) -> (Vec<Event>, String, Option<u64>, u64) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            chunks.push(&stream[start..cut]);
            start = cut;
        }
        let mut parser = Parser::new();
        let events = parse_chunks(&mut parser, &chunks);
        let last_id = parser.last_event_id().to_owned();
        (events, last_id, parser.retry(), parser.comments())
    }

    /// Byte streams built from the tokens that matter to the parser.
    fn token_stream() -> impl Strategy<Value = Vec<u8>> {
        let tokens: Vec<&[u8]> = vec![
            b"data",
            b"id",
            b"event",
            b"retry",
            b"x",
            b"7",
            b":",
            b" ",
            b"\r",
            b"\n",
            b"\r\n",
            b"\n\n",
            b"\0",
            b"\xEF\xBB\xBF",
            "\u{20AC}".as_bytes(),
            b"\xE2\x82",
            b"\xFF",
            b"data: x\n",
            b"id: 7\n",
            b":c\n",
        ];
        let tokens = prop::collection::vec(prop::sample::select(tokens), 0..60);
        (any::<bool>(), tokens).prop_map(|(bom, tokens)| {
            let bom: &[u8] = if bom { BOM } else { b"" };
            [bom, &tokens.concat()].concat()
        })
    }

    /// Message text rich in line endings, spaces, colons and multi-byte chars.
    const MESSAGE: &str = "([a: \r\n\0\u{FEFF}\u{e9}\u{1F600}]|\r\n){0,24}";

    proptest! {
        #[test]
        fn encoded_messages_round_trip_with_line_endings_normalised(
            messages in prop::collection::vec(
                (prop::option::of("[^\r\n\0]{0,6}"), prop::option::of("[^\r\n]{0,6}"), MESSAGE),
                0..8,
            ),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut stream = Vec::new();
            encode_retry(&mut stream, 1000);
            let mut expected = Vec::new();
            let mut last_id = String::new();
            for (id, event_type, data) in &messages {
                encode_comment(&mut stream, "ping");
                encode_event(&mut stream, id.as_deref(), event_type.as_deref(), data);
                if let Some(id) = id {
                    last_id.clone_from(id);
                }
                let kind = event_type.as_deref().filter(|t| !t.is_empty()).unwrap_or("message");
                let data = data.replace("\r\n", "\n").replace('\r', "\n");
                expected.push(event(kind, &data, &last_id));
            }
            let (events, parsed_id, retry, comments) = parse_split(&stream, &cuts);
            prop_assert_eq!(events, expected);
            prop_assert_eq!(parsed_id, last_id);
            prop_assert_eq!(retry, Some(1000));
            prop_assert_eq!(comments, messages.len() as u64);
        }

        #[test]
        fn any_split_gives_the_same_result_as_the_spec_read_literally(
            stream in token_stream(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            prop_assert_eq!(parse_split(&stream, &cuts), reference_parse(&stream));
        }

        #[test]
        fn byte_at_a_time_feeding_gives_the_same_events(stream in token_stream()) {
            let chunks: Vec<&[u8]> = stream.chunks(1).collect();
            let mut parser = Parser::new();
            let (expected, ..) = reference_parse(&stream);
            prop_assert_eq!(parse_chunks(&mut parser, &chunks), expected);
        }
    }
}

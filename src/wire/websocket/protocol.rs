//! The connection-level WebSocket machine: frames in, messages out, and the
//! closing handshake. No I/O, no clock (the h11 / wsproto call protocol).
//!
//! This file owns every rule about which frames may arrive when. House rules:
//!
//! - RFC 6455 §5.1: a server MUST close the connection on an unmasked
//!   client frame; a client on a masked server frame.
//! - §5.2: RSV bits MUST be 0 unless an extension says otherwise; the only
//!   extension is permessage-deflate (RFC 7692), whose RSV1 is allowed once
//!   it is negotiated ([`Protocol::enable_deflate`]), on the first frame of
//!   a data message only (RFC 7692 §6). An unknown opcode fails the
//!   connection.
//! - §5.4: control frames MAY come between fragments; data frames of another
//!   message MUST NOT.
//! - §5.5: control frames are never fragmented and carry ≤ 125 bytes.
//! - §8.1: a text message that is not UTF-8 fails the connection (1007);
//!   it is checked as the bytes arrive, so it fails on the first bad byte.
//! - §10.4: a message larger than `max_message` fails the connection (1009),
//!   as soon as a frame header announces it; a compressed message when its
//!   *inflated* size passes the limit, as it is inflated.
//! - §5.5.1: after a close frame the peer sends nothing more; bytes that
//!   still arrive are ignored.
//!
//! Every violation is a [`ProtocolError`] that knows its close code; after
//! one the machine is failed for good.

use std::collections::VecDeque;

use super::close::{decode_close_payload, encode_close_payload};
use super::deflate::{Agreed, InflateError, Inflater};
use super::error::{CloseCode, ProtocolError};
use super::frame::{
    decode_header, encode_compressed_frame, encode_frame, encode_masked_frame, ControlOpcode,
    DataOpcode, Decoded, FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
use super::mask::{apply_mask, extend_masked};

/// Which end of the connection this machine plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones.
    Client,
}

/// What [`Protocol::next_event`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole text message (all its fragments, valid UTF-8).
    Text(String),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A ping; the caller answers with [`Protocol::send_pong`] and the same
    /// payload (RFC 6455 §5.5.2).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The peer's close frame. `code` is `None` when the frame had no body
    /// (the API-level code is then 1005, [`CloseCode::NO_STATUS`]).
    Close {
        /// The status code, if the frame had one.
        code: Option<CloseCode>,
        /// The UTF-8 reason after the code, often empty.
        reason: String,
    },
    /// Nothing more can be decoded from the bytes received so far.
    NeedData,
}

/// Where the closing handshake stands (RFC 6455 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// The peer's close frame arrived; we have not answered yet.
    CloseReceived,
    /// Both close frames have passed: the caller closes TCP.
    Closed,
    /// The peer broke a rule; see [`Protocol::next_event`].
    Failed,
}

/// One WebSocket connection's protocol state, without I/O.
///
/// # The caller's contract
///
/// 1. Feed every byte read from the socket to [`receive_data`], then call
///    [`next_event`] until it returns [`Event::NeedData`].
/// 2. On [`Event::Ping`], send [`send_pong`] with the same payload.
/// 3. On [`Event::Close`] (the peer closed first), reply with
///    [`send_close`] echoing the code — `send_close(code, "", out)`, which
///    sends an empty close when `code` is `None` — flush, then the server
///    closes TCP (RFC 6455 §7.1.1: the server closes the TCP connection
///    first). Bytes that arrive after the peer's close are ignored.
/// 4. To close first, call [`send_close`]; keep feeding bytes until
///    [`Event::Close`] arrives (then [`is_closed`] is true) or a timeout,
///    then close TCP. Messages that arrive meanwhile are still delivered.
/// 5. On `Err(err)` the machine is failed: every later [`next_event`]
///    returns the same error. Send `send_close(Some(err.close_code()), "",
///    out)`, flush, and close TCP. Events decoded before the bad frame are
///    returned first, so the result does not depend on how the bytes were
///    split into reads.
///
/// Nothing is written after our close frame: the `send_*` methods then
/// append nothing (RFC 6455 §5.5.1: "the endpoint MUST NOT send any more
/// data frames").
///
/// Memory: a partial header (at most 14 bytes), one control payload (at most
/// 125 bytes) and the current message. Its buffer is sized from the frame
/// header when the first payload bytes arrive, but never more than 64 KiB
/// ahead of the bytes received, and never beyond `max_message`. Payload
/// bytes are read once: copied from the input into the message buffer and
/// unmasked in the same pass, which also tells whether text is all ASCII
/// (then it is valid UTF-8 with no other pass). The finished buffer becomes
/// the event without a copy, so between messages no buffer is held.
/// Finished events wait in a queue until [`next_event`] takes them, so feed
/// reads of bounded size and drain the events between them.
///
/// [`receive_data`]: Protocol::receive_data
/// [`next_event`]: Protocol::next_event
/// [`send_pong`]: Protocol::send_pong
/// [`send_close`]: Protocol::send_close
/// [`is_closed`]: Protocol::is_closed
#[derive(Debug)]
pub struct Protocol {
    role: Role,
    max_message: usize,
    /// Bytes of the header being read, `header_len` of them valid.
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    /// The frame whose payload is arriving, and how much of it has.
    frame: Option<(FrameHeader, u64)>,
    /// The data opcode of the message being assembled, if one is open.
    message: Option<DataOpcode>,
    payload: Vec<u8>,
    /// For a text message: `payload[..utf8_valid]` is known to be whole,
    /// valid UTF-8; at most 3 bytes after it may still be an incomplete
    /// character.
    utf8_valid: usize,
    control: Vec<u8>,
    events: VecDeque<Event>,
    error: Option<ProtocolError>,
    close_sent: bool,
    close_received: bool,
    mask_seed: u64,
    /// permessage-deflate's state, once negotiated (boxed: most
    /// connections never negotiate it, and an idle one should stay small).
    inflate: Option<Box<Inflating>>,
}

/// The receiving side of permessage-deflate on one connection.
#[derive(Debug)]
struct Inflating {
    inflater: Inflater,
    /// Whether the open message is compressed (RSV1 on its first frame), and
    /// how many compressed bytes of it have arrived.
    compressed: Option<u64>,
    /// Compressed messages received, for [`Protocol::take_compressed_count`].
    count: u64,
}

impl Protocol {
    /// A machine for one connection, accepting messages of at most
    /// `max_message` bytes (after reassembly).
    pub fn new(role: Role, max_message: usize) -> Protocol {
        Protocol {
            role,
            max_message,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            payload: Vec::new(),
            utf8_valid: 0,
            control: Vec::new(),
            events: VecDeque::new(),
            error: None,
            close_sent: false,
            close_received: false,
            mask_seed: 0x9e37_79b9_7f4a_7c15,
            inflate: None,
        }
    }

    /// Bytes held by the message being assembled (its buffer's capacity;
    /// 0 between messages).
    pub fn assembling_bytes(&self) -> usize {
        self.payload.capacity()
    }

    /// Drops the message being assembled, for an endpoint that has sent its
    /// close frame and will feed no more data (it refused the message).
    pub fn abandon_message(&mut self) {
        self.payload = Vec::new();
        self.utf8_valid = 0;
        if let Some(inflate) = self.inflate.as_deref_mut() {
            inflate.compressed = None;
            inflate.inflater.abandon();
        }
    }

    /// Accepts compressed messages from the peer (RFC 7692), as the
    /// handshake agreed: RSV1 then marks a compressed message, which is
    /// inflated as it arrives and given as an ordinary [`Event::Text`] or
    /// [`Event::Binary`]. `max_message` bounds the inflated size.
    ///
    /// Memory: nothing more until a compressed message arrives; while one
    /// is inflated, zlib's state and window (about 40 KiB at 15 bits), kept
    /// afterwards only when client context takeover was agreed.
    pub fn enable_deflate(&mut self, agreed: &Agreed) {
        self.inflate = Some(Box::new(Inflating {
            inflater: Inflater::new(agreed),
            compressed: None,
            count: 0,
        }));
    }

    /// Whether permessage-deflate was enabled.
    pub fn is_deflate_enabled(&self) -> bool {
        self.inflate.is_some()
    }

    /// Whether the open message is compressed, and how many compressed
    /// bytes of it have arrived.
    fn compressed(&self) -> Option<u64> {
        self.inflate.as_ref().and_then(|i| i.compressed)
    }

    /// How many compressed messages were received since the last call
    /// (for the caller's counters).
    pub fn take_compressed_count(&mut self) -> u64 {
        self.inflate
            .as_mut()
            .map_or(0, |i| std::mem::take(&mut i.count))
    }

    /// Seeds the masking keys of a [`Role::Client`].
    ///
    /// Simplification: keys come from a xorshift generator, not from "a
    /// strong source of entropy" as RFC 6455 §5.3 asks. Masking protects
    /// intermediaries from cache poisoning by scripts; pushlab's clients are
    /// test and load tools, not browsers running foreign scripts.
    pub fn set_mask_seed(&mut self, seed: u64) {
        self.mask_seed = seed | 1;
    }

    /// Which end this machine plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the closing handshake stands; [`State::Failed`] wins over
    /// the others.
    pub fn state(&self) -> State {
        match (self.error.is_some(), self.close_sent, self.close_received) {
            (true, _, _) => State::Failed,
            (false, true, true) => State::Closed,
            (false, true, false) => State::CloseSent,
            (false, false, true) => State::CloseReceived,
            (false, false, false) => State::Open,
        }
    }

    /// Whether both close frames have passed (the closing handshake is done).
    pub fn is_closed(&self) -> bool {
        self.state() == State::Closed
    }

    /// Whether our close frame has been written.
    pub fn is_close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether the peer's close frame has arrived.
    pub fn is_close_received(&self) -> bool {
        self.close_received
    }

    /// The rule the peer broke, if any.
    pub fn error(&self) -> Option<ProtocolError> {
        self.error
    }

    /// Takes bytes read from the socket. Decodes as far as they go; the
    /// results wait in [`Protocol::next_event`].
    pub fn receive_data(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() && !self.close_received {
            let taken = match self.frame {
                None => self.read_header(data),
                Some((header, received)) => self.read_payload(header, received, data),
            };
            data = &data[taken..];
        }
    }

    /// The next decoded event, [`Event::NeedData`] when the bytes so far
    /// are used up.
    ///
    /// # Errors
    ///
    /// The first rule the peer broke, after the events that came before it;
    /// then the same error on every call.
    pub fn next_event(&mut self) -> Result<Event, ProtocolError> {
        match (self.events.pop_front(), self.error) {
            (Some(event), _) => Ok(event),
            (None, Some(err)) => Err(err),
            (None, None) => Ok(Event::NeedData),
        }
    }

    /// Appends one unfragmented text frame to `out`.
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) {
        self.send(Opcode::Data(DataOpcode::Text), text.as_bytes(), out);
    }

    /// Appends one unfragmented binary frame to `out`.
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.send(Opcode::Data(DataOpcode::Binary), data, out);
    }

    /// Appends one unfragmented, compressed data frame (RSV1 set) whose
    /// payload `compressed` a [`Compressor`](super::deflate::Compressor)
    /// made. Server role only (a server's frames are not masked), and only
    /// after permessage-deflate was negotiated.
    pub fn send_compressed(&mut self, opcode: DataOpcode, compressed: &[u8], out: &mut Vec<u8>) {
        debug_assert_eq!(self.role, Role::Server);
        if self.close_sent {
            return;
        }
        encode_compressed_frame(opcode, compressed, out);
    }

    /// Appends a ping frame to `out`.
    ///
    /// Simplification: a payload over 125 bytes is cut to 125 so the frame
    /// stays a valid control frame.
    pub fn send_ping(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        self.send(Opcode::Control(ControlOpcode::Ping), payload, out);
    }

    /// Appends a pong frame to `out`, usually echoing a ping's payload.
    ///
    /// Simplification: a payload over 125 bytes is cut to 125, as for pings.
    pub fn send_pong(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        self.send(Opcode::Control(ControlOpcode::Pong), payload, out);
    }

    /// Sends our close frame, once. `None`, or a code that may not go on the
    /// wire (1005, 1006, ...), sends a close frame without a body; `reason`
    /// is then dropped. A reason over 123 bytes is cut (see `close.rs`).
    pub fn send_close(&mut self, code: Option<CloseCode>, reason: &str, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        if let Some(code) = code.filter(|code| code.is_valid_on_wire()) {
            encode_close_payload(code, reason, &mut body);
        }
        self.send(Opcode::Control(ControlOpcode::Close), &body, out);
        self.close_sent = true;
    }

    fn send(&mut self, opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
        if self.close_sent {
            return;
        }
        match self.role {
            Role::Server => encode_frame(opcode, true, payload, out),
            Role::Client => {
                let key = self.next_mask_key();
                encode_masked_frame(opcode, true, key, payload, out);
            }
        }
    }

    fn next_mask_key(&mut self) -> [u8; 4] {
        // xorshift64 (Marsaglia 2003).
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_seed = x;
        let [a, b, c, d, ..] = x.to_le_bytes();
        [a, b, c, d]
    }

    /// Reads a frame header; returns how many bytes of `data` it took.
    fn read_header(&mut self, data: &[u8]) -> usize {
        // The common case: a whole header at the start of `data`, decoded
        // where it lies.
        if self.header_len == 0 {
            match decode_header(data) {
                Ok(Decoded::Complete { value, consumed }) => {
                    self.begin_frame(value);
                    return consumed;
                }
                Ok(Decoded::Incomplete { .. }) => {}
                Err(err) => {
                    self.error = Some(err);
                    return 0;
                }
            }
        }
        self.read_split_header(data)
    }

    /// Copies header bytes until the header is whole; returns how many
    /// bytes of `data` it took.
    fn read_split_header(&mut self, data: &[u8]) -> usize {
        // Take only what the header can still need, so payload bytes stay in
        // `data`: first the 2 fixed bytes, then the rest once they say how long.
        let have = usize::from(self.header_len);
        let needed = match decode_header(&self.header[..have]) {
            Ok(Decoded::Incomplete { needed }) => needed.min(MAX_HEADER_LEN),
            _ => 2,
        };
        let take = needed.saturating_sub(have).min(data.len());
        self.header[have..have + take].copy_from_slice(&data[..take]);
        // At most MAX_HEADER_LEN (14) bytes.
        self.header_len += take as u8;
        match decode_header(&self.header[..have + take]) {
            Ok(Decoded::Incomplete { .. }) => {}
            Ok(Decoded::Complete { value, .. }) => {
                self.header_len = 0;
                self.begin_frame(value);
            }
            Err(err) => self.error = Some(err),
        }
        take
    }

    fn begin_frame(&mut self, header: FrameHeader) {
        if let Err(err) = self.start_frame(header) {
            self.error = Some(err);
        }
    }

    /// Checks a new frame's header against the rules of the connection.
    fn start_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        // RFC 6455 §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated";
        // RFC 7692 §6 gives RSV1 to permessage-deflate.
        if header.rsv2 || header.rsv3 || (header.rsv1 && self.inflate.is_none()) {
            return Err(ProtocolError::ReservedBitsSet);
        }
        match (self.role, header.mask.is_some()) {
            // RFC 6455 §5.1: "a client MUST mask all frames that it sends".
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            // RFC 6455 §5.1: "A server MUST NOT mask any frames".
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        match header.opcode {
            Opcode::Reserved(bits) => return Err(ProtocolError::ReservedOpcode(bits)),
            Opcode::Control(_) => {
                // RFC 7692 §6: never RSV1 on a control frame.
                if header.rsv1 {
                    return Err(ProtocolError::CompressedNotFirstFrame);
                }
                // RFC 6455 §5.5: "Control frames themselves MUST NOT be fragmented."
                if !header.fin {
                    return Err(ProtocolError::FragmentedControlFrame);
                }
                // RFC 6455 §5.5: control frames MUST have a payload of 125 bytes or less.
                if header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
                }
            }
            Opcode::Data(data) => {
                match (data, self.message) {
                    (DataOpcode::Continue, None) => {
                        return Err(ProtocolError::UnexpectedContinuation)
                    }
                    (DataOpcode::Text | DataOpcode::Binary, Some(_)) => {
                        return Err(ProtocolError::ExpectedContinuation)
                    }
                    // RFC 7692 §6: RSV1 only on a message's first frame.
                    (DataOpcode::Continue, Some(_)) if header.rsv1 => {
                        return Err(ProtocolError::CompressedNotFirstFrame)
                    }
                    (DataOpcode::Continue, Some(_)) => {}
                    (DataOpcode::Text | DataOpcode::Binary, None) => {
                        self.message = Some(data);
                        self.payload = Vec::new();
                        self.utf8_valid = 0;
                        if let Some(inflate) = self.inflate.as_deref_mut() {
                            inflate.compressed = header.rsv1.then_some(0);
                        }
                    }
                }
                // RFC 6455 §10.4: refuse the message as soon as its size
                // is known to exceed the limit, before buffering any of it.
                // A compressed message's inflated size is checked as it is
                // inflated; its compressed size may pass the limit by
                // DEFLATE's overhead on data that does not compress.
                let (received, limit) = match self.compressed() {
                    Some(received) => (received, compressed_limit(self.max_message)),
                    None => (self.payload.len() as u64, self.max_message as u64),
                };
                if received.saturating_add(header.payload_len) > limit {
                    return Err(ProtocolError::MessageTooBig {
                        max: self.max_message,
                    });
                }
            }
        }
        self.frame = Some((header, 0));
        if header.payload_len == 0 {
            self.finish_frame(header)?;
        }
        Ok(())
    }

    /// Takes payload bytes of the current frame; returns how many it took.
    fn read_payload(&mut self, header: FrameHeader, received: u64, data: &[u8]) -> usize {
        let left = header.payload_len - received;
        let take = usize::try_from(left).map_or(data.len(), |left| left.min(data.len()));
        let chunk = &data[..take];
        let phase = (received % 4) as usize;
        let received = received + take as u64;
        self.frame = Some((header, received));
        let mut result = Ok(());
        if header.opcode.is_control() {
            let start = self.control.len();
            self.control.extend_from_slice(chunk);
            if let Some(key) = header.mask {
                apply_mask(&mut self.control[start..], key, phase);
            }
        } else if let Some(inflate) = self
            .inflate
            .as_deref_mut()
            .filter(|i| i.compressed.is_some())
        {
            inflate.compressed = inflate.compressed.map(|c| c + take as u64);
            result = self.inflate_chunk(chunk, header.mask, phase);
        } else {
            // start_frame checked that the whole frame fits in max_message.
            let frame_left = usize::try_from(left).unwrap_or(usize::MAX);
            self.reserve_payload(take, frame_left, header.fin);
            let start = self.payload.len();
            let is_text = self.message == Some(DataOpcode::Text);
            // One pass copies, unmasks and looks for non-ASCII bytes.
            let is_ascii = match header.mask {
                Some(key) => extend_masked(&mut self.payload, chunk, key, phase),
                None => {
                    self.payload.extend_from_slice(chunk);
                    is_text && chunk.is_ascii()
                }
            };
            if is_text {
                if is_ascii && self.utf8_valid == start {
                    // Valid text followed by ASCII is valid text.
                    self.utf8_valid = self.payload.len();
                } else {
                    result = self.check_utf8(false);
                }
            }
        }
        if result.is_ok() && received == header.payload_len {
            result = self.finish_frame(header);
        }
        if let Err(err) = result {
            self.error = Some(err);
        }
        take
    }

    /// Makes room in the message buffer for `take` more bytes of a data
    /// frame that has `frame_left` bytes to come (these `take` included).
    ///
    /// The frame's length is known from its header, so the buffer is sized
    /// for the whole frame at once, as soon as its first payload bytes
    /// arrive: a 64 KiB message is one allocation and no copy. The header
    /// alone is only a promise, so the space reserved ahead of the bytes
    /// received is at most [`RESERVE_AHEAD`]; past it the buffer doubles as
    /// bytes arrive. It never goes beyond `max_message` (start_frame checked
    /// the frame fits), nor beyond the frame's end when the frame ends the
    /// message.
    fn reserve_payload(&mut self, take: usize, frame_left: usize, fin: bool) {
        let buf = &mut self.payload;
        let needed = buf.len().saturating_add(take);
        if needed <= buf.capacity() {
            return;
        }
        let frame_end = buf.len().saturating_add(frame_left);
        let ahead = frame_end.min(needed.saturating_add(RESERVE_AHEAD));
        let limit = if fin { frame_end } else { self.max_message };
        let doubled = buf.capacity().saturating_mul(2).min(limit);
        let target = needed.max(ahead).max(doubled);
        buf.reserve_exact(target - buf.len());
    }

    /// Unmasks and inflates a chunk of a compressed message's payload into
    /// the message buffer, then checks the new text.
    fn inflate_chunk(
        &mut self,
        chunk: &[u8],
        mask: Option<[u8; 4]>,
        phase: usize,
    ) -> Result<(), ProtocolError> {
        let Some(Inflating { inflater, .. }) = self.inflate.as_deref_mut() else {
            // start_frame takes RSV1 only with an inflater.
            return Err(ProtocolError::ReservedBitsSet);
        };
        let start = self.payload.len();
        let result = match mask {
            Some(key) => {
                let mut unmasked = Vec::with_capacity(chunk.len());
                extend_masked(&mut unmasked, chunk, key, phase);
                inflater.inflate(&unmasked, &mut self.payload, self.max_message)
            }
            None => inflater.inflate(chunk, &mut self.payload, self.max_message),
        };
        self.check_inflated(start, result)
    }

    /// Checks the text inflated since `start`, then the inflate result: the
    /// text found before a failure is judged first, so the error does not
    /// depend on how the payload was split into reads.
    fn check_inflated(
        &mut self,
        start: usize,
        result: Result<(), InflateError>,
    ) -> Result<(), ProtocolError> {
        // The byte past the limit only showed the limit was passed.
        self.payload.truncate(self.max_message);
        self.check_new_text(start.min(self.payload.len()), false)?;
        result.map_err(inflate_error)
    }

    /// Checks the text appended to the message buffer since `start`.
    fn check_new_text(&mut self, start: usize, complete: bool) -> Result<(), ProtocolError> {
        if self.message != Some(DataOpcode::Text) {
            return Ok(());
        }
        if !complete && self.utf8_valid == start && self.payload[start..].is_ascii() {
            self.utf8_valid = self.payload.len();
            return Ok(());
        }
        self.check_utf8(complete)
    }

    /// Validates the text received since the last check. With `complete`
    /// false an incomplete character at the end may still be finished by
    /// the next bytes; with `complete` true the message has ended.
    fn check_utf8(&mut self, complete: bool) -> Result<(), ProtocolError> {
        match std::str::from_utf8(&self.payload[self.utf8_valid..]) {
            Ok(_) => {
                self.utf8_valid = self.payload.len();
                Ok(())
            }
            // `error_len() == None`: the bytes end inside a character that
            // later bytes may complete, so wait for them.
            Err(err) if err.error_len().is_none() && !complete => {
                self.utf8_valid += err.valid_up_to();
                Ok(())
            }
            // RFC 6455 §8.1: "When an endpoint is to interpret a byte stream
            // as UTF-8 but finds that the byte stream is not, in fact, a
            // valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
            // Connection_."
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }

    fn finish_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        self.frame = None;
        match header.opcode {
            Opcode::Data(_) => {
                if header.fin {
                    self.finish_message()?;
                }
            }
            Opcode::Control(ControlOpcode::Ping) => {
                let payload = std::mem::take(&mut self.control);
                self.events.push_back(Event::Ping(payload));
            }
            Opcode::Control(ControlOpcode::Pong) => {
                let payload = std::mem::take(&mut self.control);
                self.events.push_back(Event::Pong(payload));
            }
            Opcode::Control(ControlOpcode::Close) => {
                let payload = std::mem::take(&mut self.control);
                let (code, reason) = decode_close_payload(&payload)?;
                self.events.push_back(Event::Close {
                    code,
                    reason: reason.to_owned(),
                });
                self.close_received = true;
                // Simplification: a message left unfinished by the close is
                // dropped without an error.
                self.message = None;
                if let Some(inflate) = self.inflate.as_deref_mut() {
                    inflate.compressed = None;
                }
                self.payload = Vec::new();
            }
            // start_frame refused it already.
            Opcode::Reserved(bits) => return Err(ProtocolError::ReservedOpcode(bits)),
        }
        Ok(())
    }

    fn finish_message(&mut self) -> Result<(), ProtocolError> {
        let mut finished = None;
        if let Some(inflate) = self.inflate.as_deref_mut() {
            if inflate.compressed.take().is_some() {
                // RFC 7692 §7.2.2: the tail goes back on, and what it ends
                // is inflated.
                let start = self.payload.len();
                let result = inflate.inflater.finish(&mut self.payload, self.max_message);
                finished = Some((start, result));
            }
        }
        if let Some((start, result)) = finished {
            self.check_inflated(start, result)?;
            if let Some(inflate) = self.inflate.as_deref_mut() {
                inflate.count += 1;
            }
        }
        let kind = self.message.take();
        if kind == Some(DataOpcode::Text) {
            // The last bytes must not end inside a character.
            self.check_utf8(true)?;
        }
        let payload = std::mem::take(&mut self.payload);
        self.utf8_valid = 0;
        let event = match kind {
            Some(DataOpcode::Text) => Event::Text(validated_text(payload)),
            Some(_) => Event::Binary(payload),
            // start_frame refused a continuation without a message already.
            None => return Err(ProtocolError::UnexpectedContinuation),
        };
        self.events.push_back(event);
        Ok(())
    }
}

/// The most compressed bytes a message may have: the limit plus DEFLATE's
/// overhead on data that does not compress (stored blocks cost 5 bytes per
/// 64 KiB; 1/1024 of the limit leaves room to spare).
fn compressed_limit(max_message: usize) -> u64 {
    let max = max_message as u64;
    max.saturating_add(max / 1024 + 64)
}

/// The protocol error for an inflate error.
fn inflate_error(err: InflateError) -> ProtocolError {
    match err {
        InflateError::TooBig { max } => ProtocolError::MessageTooBig { max },
        InflateError::Corrupt => ProtocolError::InvalidCompressedData,
    }
}

/// The text of a message whose every byte `check_utf8` has passed: the
/// validation happened as the bytes arrived, so it is not repeated here (a
/// second pass over the payload cost about 8% of the server's CPU time on
/// 64 KiB text echoes). This is the crate's only `unsafe`.
fn validated_text(payload: Vec<u8>) -> String {
    debug_assert!(std::str::from_utf8(&payload).is_ok());
    // SAFETY: `finish_message` calls this only once `check_utf8(true)` has
    // returned `Ok`, and that means the whole payload is valid UTF-8. The
    // invariant is that `payload[..utf8_valid]` is whole, valid UTF-8:
    // `utf8_valid` moves forward only over bytes `std::str::from_utf8`
    // accepted (up to `valid_up_to()`, a character boundary), or over
    // ASCII appended right after valid bytes (valid UTF-8 followed by ASCII
    // is valid UTF-8); `check_utf8(true)` then accepts the rest only if
    // `from_utf8` accepts it whole. The proptest comparing our verdict with
    // std's on randomly split text, and Autobahn's section 6, test this;
    // debug builds (tests, fuzzing) also check it above.
    unsafe { String::from_utf8_unchecked(payload) }
}

/// The most buffer reserved for a data frame beyond the payload bytes that
/// have arrived: what a header and one byte can make the server set aside.
/// One server read (`config::READ_CHUNK`, 64 KiB) brings no more, and a
/// 64 KiB message still gets its buffer in one allocation.
const RESERVE_AHEAD: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT: Opcode = Opcode::Data(DataOpcode::Text);
    const BINARY: Opcode = Opcode::Data(DataOpcode::Binary);
    const CONTINUE: Opcode = Opcode::Data(DataOpcode::Continue);
    const CLOSE: Opcode = Opcode::Control(ControlOpcode::Close);
    const PING: Opcode = Opcode::Control(ControlOpcode::Ping);
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const MAX: usize = 1 << 20;

    /// A masked frame, as a client sends it.
    fn client(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_masked_frame(opcode, fin, KEY, payload, &mut out);
        out
    }

    fn with_header(header: FrameHeader, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::frame::encode_header(&header, &mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
    }

    /// Every event until `NeedData`, and the error if one ended the stream.
    fn drain(protocol: &mut Protocol) -> (Vec<Event>, Option<ProtocolError>) {
        let mut events = Vec::new();
        loop {
            match protocol.next_event() {
                Ok(Event::NeedData) => return (events, None),
                Ok(event) => events.push(event),
                Err(err) => return (events, Some(err)),
            }
        }
    }

    fn server_receives(bytes: &[u8]) -> (Vec<Event>, Option<ProtocolError>) {
        let mut server = Protocol::new(Role::Server, MAX);
        server.receive_data(bytes);
        drain(&mut server)
    }

    fn server_fails_with(bytes: &[u8]) -> (ProtocolError, u16) {
        let (_, err) = server_receives(bytes);
        let err = err.expect("the connection should fail");
        (err, err.close_code().0)
    }

    fn text(s: &str) -> Event {
        Event::Text(s.to_owned())
    }

    // RFC 6455 §5.7 examples.

    #[test]
    fn server_decodes_rfc_masked_hello() {
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(server_receives(&bytes), (vec![text("Hello")], None));
    }

    #[test]
    fn client_decodes_rfc_unmasked_hello() {
        let mut client = Protocol::new(Role::Client, MAX);
        client.receive_data(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(drain(&mut client), (vec![text("Hello")], None));
    }

    #[test]
    fn client_decodes_rfc_fragmented_hello() {
        let mut client = Protocol::new(Role::Client, MAX);
        client.receive_data(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert_eq!(drain(&mut client), (vec![], None));
        client.receive_data(&[0x80, 0x02, 0x6c, 0x6f]);
        assert_eq!(drain(&mut client), (vec![text("Hello")], None));
    }

    #[test]
    fn client_decodes_rfc_ping_and_server_decodes_rfc_masked_pong() {
        let mut client = Protocol::new(Role::Client, MAX);
        client.receive_data(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(
            drain(&mut client),
            (vec![Event::Ping(b"Hello".to_vec())], None)
        );
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            server_receives(&pong),
            (vec![Event::Pong(b"Hello".to_vec())], None)
        );
    }

    #[test]
    fn client_decodes_rfc_256_byte_and_64_kib_binary() {
        let mut client = Protocol::new(Role::Client, MAX);
        let mut bytes = vec![0x82, 0x7e, 0x01, 0x00];
        bytes.extend_from_slice(&[7; 256]);
        bytes.extend_from_slice(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        bytes.extend_from_slice(&[9; 65536]);
        client.receive_data(&bytes);
        let expected = vec![Event::Binary(vec![7; 256]), Event::Binary(vec![9; 65536])];
        assert_eq!(drain(&mut client), (expected, None));
    }

    #[test]
    fn server_sends_rfc_unmasked_frames() {
        let mut server = Protocol::new(Role::Server, MAX);
        let mut out = Vec::new();
        server.send_text("Hello", &mut out);
        server.send_ping(b"Hello", &mut out);
        server.send_binary(&[0; 256], &mut out);
        assert_eq!(out[..7], [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(out[7..14], [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(out[14..18], [0x82, 0x7e, 0x01, 0x00]);
    }

    #[test]
    fn client_sends_masked_frames_a_server_decodes() {
        let mut client = Protocol::new(Role::Client, MAX);
        client.set_mask_seed(42);
        let mut out = Vec::new();
        client.send_text("héllo", &mut out);
        client.send_pong(b"p", &mut out);
        client.send_close(Some(CloseCode::NORMAL), "bye", &mut out);
        assert_eq!(out[1] & 0x80, 0x80, "mask bit set");
        let expected = vec![
            text("héllo"),
            Event::Pong(b"p".to_vec()),
            Event::Close {
                code: Some(CloseCode::NORMAL),
                reason: "bye".into(),
            },
        ];
        assert_eq!(server_receives(&out), (expected, None));
    }

    // Each violation and its close code.

    #[test]
    fn server_rejects_unmasked_frame() {
        let bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(
            server_fails_with(&bytes),
            (ProtocolError::UnmaskedFrame, 1002)
        );
    }

    #[test]
    fn client_rejects_masked_frame() {
        let mut protocol = Protocol::new(Role::Client, MAX);
        protocol.receive_data(&client(TEXT, true, b"Hello"));
        assert_eq!(protocol.next_event(), Err(ProtocolError::MaskedFrame));
        assert_eq!(protocol.state(), State::Failed);
    }

    #[test]
    fn server_rejects_each_rsv_bit() {
        for bit in [0x40, 0x20, 0x10] {
            let mut bytes = client(TEXT, true, b"x");
            bytes[0] |= bit;
            assert_eq!(
                server_fails_with(&bytes),
                (ProtocolError::ReservedBitsSet, 1002)
            );
        }
    }

    #[test]
    fn server_rejects_reserved_opcodes() {
        for bits in (3..=7).chain(0xb..=0xf) {
            let bytes = client(Opcode::Reserved(bits), true, b"");
            assert_eq!(
                server_fails_with(&bytes),
                (ProtocolError::ReservedOpcode(bits), 1002)
            );
        }
    }

    #[test]
    fn server_rejects_fragmented_control_frame() {
        let bytes = client(PING, false, b"x");
        assert_eq!(
            server_fails_with(&bytes),
            (ProtocolError::FragmentedControlFrame, 1002)
        );
    }

    #[test]
    fn server_rejects_control_frame_over_125_bytes_before_its_payload() {
        let header = FrameHeader::new(PING, true, Some(KEY), 126);
        let bytes = with_header(header, &[]);
        assert_eq!(
            server_fails_with(&bytes),
            (ProtocolError::ControlFrameTooLong(126), 1002)
        );
        let mut ok = client(PING, true, &[1; 125]);
        ok.extend(client(CLOSE, true, &[]));
        assert_eq!(server_receives(&ok).1, None);
    }

    #[test]
    fn server_rejects_continuation_without_a_message() {
        let bytes = client(CONTINUE, true, b"lo");
        assert_eq!(
            server_fails_with(&bytes),
            (ProtocolError::UnexpectedContinuation, 1002)
        );
    }

    #[test]
    fn server_rejects_new_message_inside_a_fragmented_one() {
        let mut bytes = client(TEXT, false, b"Hel");
        bytes.extend(client(BINARY, true, b"lo"));
        assert_eq!(
            server_fails_with(&bytes),
            (ProtocolError::ExpectedContinuation, 1002)
        );
    }

    #[test]
    fn server_rejects_length_with_top_bit_set() {
        let bytes = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            server_fails_with(&bytes),
            (ProtocolError::LengthMsbSet, 1002)
        );
    }

    #[test]
    fn server_rejects_too_big_message_from_its_header_alone() {
        let mut server = Protocol::new(Role::Server, 100);
        server.receive_data(&with_header(
            FrameHeader::new(BINARY, true, Some(KEY), 101),
            &[],
        ));
        let err = server.next_event().unwrap_err();
        assert_eq!(
            (err, err.close_code().0),
            (ProtocolError::MessageTooBig { max: 100 }, 1009)
        );
        assert_eq!(server.payload.capacity(), 0, "nothing was buffered");
    }

    #[test]
    fn server_rejects_too_big_fragmented_message_at_the_fragment_that_overflows() {
        let mut server = Protocol::new(Role::Server, 100);
        let mut bytes = client(TEXT, false, &[b'a'; 60]);
        bytes.extend(client(CONTINUE, false, &[b'b'; 40]));
        server.receive_data(&bytes);
        assert_eq!(server.next_event(), Ok(Event::NeedData));
        server.receive_data(&client(CONTINUE, true, b"c"));
        assert_eq!(
            server.next_event(),
            Err(ProtocolError::MessageTooBig { max: 100 })
        );
    }

    #[test]
    fn message_of_exactly_max_bytes_is_accepted_and_buffer_stays_within_max() {
        let mut server = Protocol::new(Role::Server, 1000);
        let bytes = client(BINARY, true, &[5; 1000]);
        for chunk in bytes.chunks(7) {
            server.receive_data(chunk);
            assert!(server.payload.capacity() <= 1000);
        }
        assert_eq!(
            drain(&mut server),
            (vec![Event::Binary(vec![5; 1000])], None)
        );
    }

    #[test]
    fn server_rejects_invalid_utf8_text() {
        let bytes = client(
            TEXT,
            true,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
        );
        assert_eq!(
            server_fails_with(&bytes),
            (ProtocolError::InvalidUtf8, 1007)
        );
    }

    #[test]
    fn invalid_utf8_fails_on_the_first_bad_fragment_before_the_message_ends() {
        let mut server = Protocol::new(Role::Server, MAX);
        server.receive_data(&client(TEXT, false, "κόσμε".as_bytes()));
        assert_eq!(server.next_event(), Ok(Event::NeedData));
        // 0xF4 0x90 can only start a code point above U+10FFFF.
        server.receive_data(&client(CONTINUE, false, b"ok\xf4\x90"));
        assert_eq!(server.next_event(), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn invalid_utf8_fails_inside_a_frame_before_its_payload_is_complete() {
        let mut server = Protocol::new(Role::Server, MAX);
        let bytes = client(TEXT, true, b"abc\xffdefghijklmnop");
        server.receive_data(&bytes[..6 + 4]);
        assert_eq!(server.next_event(), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn code_point_split_across_fragments_is_fine() {
        let euro = "€".as_bytes(); // E2 82 AC
        let mut bytes = client(TEXT, false, &euro[..1]);
        bytes.extend(client(PING, true, b""));
        bytes.extend(client(CONTINUE, false, &euro[1..2]));
        bytes.extend(client(CONTINUE, true, &euro[2..]));
        let expected = vec![Event::Ping(vec![]), text("€")];
        assert_eq!(server_receives(&bytes), (expected, None));
    }

    #[test]
    fn text_ending_inside_a_code_point_is_invalid() {
        let bytes = client(TEXT, true, &"€".as_bytes()[..2]);
        assert_eq!(
            server_fails_with(&bytes),
            (ProtocolError::InvalidUtf8, 1007)
        );
    }

    #[test]
    fn ascii_after_an_unfinished_code_point_fails_at_once() {
        // The frame ends inside "€"; ASCII cannot finish it.
        let mut server = Protocol::new(Role::Server, MAX);
        server.receive_data(&client(TEXT, false, &"a€".as_bytes()[..2]));
        assert_eq!(server.next_event(), Ok(Event::NeedData));
        server.receive_data(&client(CONTINUE, false, &[b'b'; 40]));
        assert_eq!(server.next_event(), Err(ProtocolError::InvalidUtf8));
        // The same inside one frame, the read ending inside the character.
        let mut server = Protocol::new(Role::Server, MAX);
        let mut payload = "a€".as_bytes()[..2].to_vec();
        payload.extend([b'b'; 40]);
        let bytes = client(TEXT, true, &payload);
        server.receive_data(&bytes[..6 + 2]);
        assert_eq!(server.next_event(), Ok(Event::NeedData));
        server.receive_data(&bytes[6 + 2..6 + 3]);
        assert_eq!(server.next_event(), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn long_ascii_and_multibyte_text_in_odd_reads_is_one_message() {
        let message = format!("{}κόσμε{}€", "a".repeat(100), "b".repeat(33));
        let bytes = client(TEXT, true, message.as_bytes());
        let mut server = Protocol::new(Role::Server, MAX);
        for chunk in bytes.chunks(37) {
            server.receive_data(chunk);
        }
        assert_eq!(drain(&mut server), (vec![text(&message)], None));
    }

    // The message buffer.

    #[test]
    fn a_frames_buffer_is_sized_once_from_its_header() {
        let mut server = Protocol::new(Role::Server, MAX);
        let payload = vec![b'x'; 65536];
        let bytes = client(TEXT, true, &payload);
        server.receive_data(&bytes[..8]);
        assert_eq!(
            server.payload.capacity(),
            0,
            "a header alone reserves nothing"
        );
        for chunk in bytes[8..].chunks(1000) {
            server.receive_data(chunk);
            if server.frame.is_some() {
                assert_eq!(server.payload.capacity(), 65536);
            }
        }
        let Ok(Event::Text(text)) = server.next_event() else {
            panic!("expected the text");
        };
        assert_eq!((text.len(), text.capacity()), (65536, 65536));
        assert_eq!(
            server.payload.capacity(),
            0,
            "no buffer held between messages"
        );
    }

    #[test]
    fn a_large_announced_frame_reserves_at_most_64_kib_ahead_of_its_bytes() {
        let mut server = Protocol::new(Role::Server, 16 << 20);
        let header = FrameHeader::new(BINARY, true, Some(KEY), 16 << 20);
        server.receive_data(&with_header(header, &[]));
        server.receive_data(&[1]);
        assert_eq!(server.payload.capacity(), 1 + RESERVE_AHEAD);
        server.receive_data(&vec![0; RESERVE_AHEAD + 10]);
        let capacity = server.payload.capacity();
        assert!(
            capacity <= 2 * (RESERVE_AHEAD + 11) + RESERVE_AHEAD,
            "{capacity}"
        );
        assert_eq!(server.next_event(), Ok(Event::NeedData));
    }

    #[test]
    fn a_fragmented_message_grows_by_doubling_within_max() {
        let mut server = Protocol::new(Role::Server, 1000);
        server.receive_data(&client(BINARY, false, &[1; 100]));
        assert_eq!(server.payload.capacity(), 100);
        server.receive_data(&client(CONTINUE, false, &[2; 10]));
        assert_eq!(server.payload.capacity(), 200);
        server.receive_data(&client(CONTINUE, false, &[3; 800]));
        assert_eq!(server.payload.capacity(), 910);
        server.receive_data(&client(CONTINUE, true, &[4; 90]));
        let Ok(Event::Binary(data)) = server.next_event() else {
            panic!("expected the message");
        };
        assert_eq!((data.len(), data.capacity()), (1000, 1000));
    }

    #[test]
    fn binary_messages_are_not_checked_for_utf8() {
        let bytes = client(BINARY, true, b"\xff\xfe");
        assert_eq!(
            server_receives(&bytes),
            (vec![Event::Binary(vec![0xff, 0xfe])], None)
        );
    }

    // Close frames.

    #[test]
    fn empty_close_has_no_code_and_reply_echoes_an_empty_close() {
        let mut server = Protocol::new(Role::Server, MAX);
        server.receive_data(&client(CLOSE, true, b""));
        let Ok(Event::Close { code, reason }) = server.next_event() else {
            panic!("expected a close");
        };
        assert_eq!((code, reason.as_str()), (None, ""));
        assert_eq!(server.state(), State::CloseReceived);
        let mut out = Vec::new();
        server.send_close(code, "", &mut out);
        assert_eq!(out, [0x88, 0x00]);
        assert!(server.is_closed());
    }

    #[test]
    fn close_with_code_is_echoed() {
        let mut server = Protocol::new(Role::Server, MAX);
        server.receive_data(&client(CLOSE, true, b"\x0f\xa0reason"));
        assert_eq!(
            server.next_event(),
            Ok(Event::Close {
                code: Some(CloseCode(4000)),
                reason: "reason".into()
            })
        );
        let mut out = Vec::new();
        server.send_close(Some(CloseCode(4000)), "", &mut out);
        assert_eq!(out, [0x88, 0x02, 0x0f, 0xa0]);
    }

    #[test]
    fn close_payload_rules_give_their_codes() {
        assert_eq!(
            server_fails_with(&client(CLOSE, true, b"\x03")),
            (ProtocolError::CloseCodeTruncated, 1002)
        );
        assert_eq!(
            server_fails_with(&client(CLOSE, true, b"\x03\xed")),
            (ProtocolError::InvalidCloseCode(1005), 1002)
        );
        assert_eq!(
            server_fails_with(&client(CLOSE, true, b"\x03\xe8\xff")),
            (ProtocolError::InvalidCloseReason, 1007)
        );
    }

    #[test]
    fn bytes_after_the_peers_close_are_ignored() {
        let mut bytes = client(CLOSE, true, b"\x03\xe8");
        bytes.extend(client(TEXT, true, b"late"));
        bytes.extend([0xff; 20]);
        let expected = vec![Event::Close {
            code: Some(CloseCode::NORMAL),
            reason: String::new(),
        }];
        assert_eq!(server_receives(&bytes), (expected, None));
    }

    #[test]
    fn server_that_closes_first_still_receives_until_the_peers_close() {
        let mut server = Protocol::new(Role::Server, MAX);
        let mut out = Vec::new();
        server.send_close(Some(CloseCode::GOING_AWAY), "restart", &mut out);
        assert_eq!(out[..4], [0x88, 0x09, 0x03, 0xe9]);
        assert_eq!(server.state(), State::CloseSent);
        let before = out.len();
        server.send_text("too late", &mut out);
        server.send_close(Some(CloseCode::NORMAL), "", &mut out);
        assert_eq!(out.len(), before, "nothing is sent after our close");
        let mut bytes = client(TEXT, true, b"in flight");
        bytes.extend(client(CLOSE, true, b"\x03\xe9"));
        server.receive_data(&bytes);
        assert_eq!(server.next_event(), Ok(text("in flight")));
        assert!(matches!(server.next_event(), Ok(Event::Close { .. })));
        assert!(server.is_closed());
    }

    #[test]
    fn close_codes_that_cannot_go_on_the_wire_send_an_empty_close() {
        let mut server = Protocol::new(Role::Server, MAX);
        let mut out = Vec::new();
        server.send_close(Some(CloseCode::NO_STATUS), "ignored", &mut out);
        assert_eq!(out, [0x88, 0x00]);
    }

    #[test]
    fn events_before_an_error_come_first_and_the_error_repeats() {
        let mut bytes = client(TEXT, true, b"first");
        bytes.extend(client(PING, true, b"p"));
        bytes.extend([0x81, 0x00]); // unmasked
        bytes.extend(client(TEXT, true, b"never"));
        let mut server = Protocol::new(Role::Server, MAX);
        server.receive_data(&bytes);
        assert_eq!(server.next_event(), Ok(text("first")));
        assert_eq!(server.next_event(), Ok(Event::Ping(b"p".to_vec())));
        for _ in 0..3 {
            assert_eq!(server.next_event(), Err(ProtocolError::UnmaskedFrame));
        }
        server.receive_data(&client(TEXT, true, b"ignored"));
        assert_eq!(server.next_event(), Err(ProtocolError::UnmaskedFrame));
        assert_eq!(server.error(), Some(ProtocolError::UnmaskedFrame));
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            ProtocolError::UnmaskedFrame.to_string(),
            "client frame is not masked"
        );
        assert_eq!(
            ProtocolError::ControlFrameTooLong(126).to_string(),
            "control frame payload of 126 bytes (max 125)"
        );
    }

    // Properties.

    /// One frame for the chunking property: mostly valid, sometimes not.
    fn any_frame() -> impl Strategy<Value = Vec<u8>> {
        let opcode = prop_oneof![
            4 => Just(0u8), 4 => Just(1), 4 => Just(2), 1 => Just(8), 3 => Just(9), 2 => Just(10),
            1 => Just(3), 1 => Just(0xb),
        ];
        let payload = prop_oneof![
            3 => ".{0,40}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..300),
        ];
        (opcode, any::<bool>(), 0u8..20, any::<[u8; 4]>(), payload).prop_map(
            |(opcode, fin, flags, key, payload)| {
                let mut header = FrameHeader::new(
                    Opcode::from_bits(opcode),
                    fin,
                    Some(key),
                    payload.len() as u64,
                );
                header.rsv1 = flags == 0;
                if flags == 1 {
                    header.mask = None;
                }
                with_header(header, &payload)
            },
        )
    }

    fn split_points(len: usize, cuts: &[usize]) -> Vec<usize> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
        points.push(0);
        points.push(len);
        points.sort_unstable();
        points.dedup();
        points
    }

    proptest! {
        #[test]
        fn decoding_is_the_same_however_the_stream_is_split(
            frames in proptest::collection::vec(any_frame(), 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            max in prop_oneof![Just(MAX), 0usize..200],
        ) {
            let stream = frames.concat();
            let mut whole = Protocol::new(Role::Server, max);
            whole.receive_data(&stream);
            let expected = drain(&mut whole);

            let mut chunked = Protocol::new(Role::Server, max);
            let mut events = Vec::new();
            let points = split_points(stream.len(), &cuts);
            for pair in points.windows(2) {
                chunked.receive_data(&stream[pair[0]..pair[1]]);
                // Draining between reads, as the server does.
                let (mut got, _) = drain(&mut chunked);
                events.append(&mut got);
            }
            let (mut rest, error) = drain(&mut chunked);
            events.append(&mut rest);
            prop_assert_eq!((events, error), expected);
        }

        #[test]
        fn fragmented_message_with_pings_reassembles(
            message in prop_oneof![
                ".{0,200}".prop_map(|s: String| (true, s.into_bytes())),
                proptest::collection::vec(any::<u8>(), 0..400).prop_map(|b| (false, b)),
            ],
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            pings in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)), 0..10),
            read_size in 1usize..64,
        ) {
            let (is_text, payload) = message;
            let points = split_points(payload.len(), &cuts);
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            let fragments: Vec<&[u8]> = points.windows(2).map(|p| &payload[p[0]..p[1]]).collect();
            let fragments = if fragments.is_empty() { vec![&payload[..]] } else { fragments };
            for (i, fragment) in fragments.iter().enumerate() {
                let opcode = match (i, is_text) {
                    (0, true) => TEXT,
                    (0, false) => BINARY,
                    _ => CONTINUE,
                };
                stream.extend(client(opcode, i + 1 == fragments.len(), fragment));
                if let Some(Some(ping)) = pings.get(i) {
                    if i + 1 < fragments.len() {
                        stream.extend(client(PING, true, ping));
                        expected.push(Event::Ping(ping.clone()));
                    }
                }
            }
            expected.push(if is_text {
                Event::Text(String::from_utf8(payload).unwrap())
            } else {
                Event::Binary(payload)
            });
            let mut server = Protocol::new(Role::Server, MAX);
            for chunk in stream.chunks(read_size) {
                server.receive_data(chunk);
            }
            prop_assert_eq!(drain(&mut server), (expected, None));
        }

        /// Text of valid pieces and stray bytes, cut into random fragments
        /// and reads: the verdict is std's, and an invalid byte fails the
        /// connection as soon as the read that makes it certain arrives.
        #[test]
        fn utf8_verdict_is_std_and_comes_at_the_first_certain_byte(
            pieces in proptest::collection::vec(prop_oneof![
                4 => "[a-z]{0,80}".prop_map(String::into_bytes),
                4 => ".{0,12}".prop_map(String::into_bytes),
                1 => proptest::collection::vec(any::<u8>(), 0..4),
            ], 0..8),
            fragment_cuts in proptest::collection::vec(any::<usize>(), 0..6),
            read_cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let payload = pieces.concat();
            // The first prefix that no continuation can make valid.
            let certain = (1..=payload.len()).find(|&n| {
                matches!(std::str::from_utf8(&payload[..n]), Err(e) if e.error_len().is_some())
            });
            let is_valid = std::str::from_utf8(&payload).is_ok();
            let mut stream = Vec::new();
            let mut offset_of = Vec::new(); // stream offset of payload byte i
            let points = split_points(payload.len(), &fragment_cuts);
            let last = points.len().saturating_sub(2);
            for (i, pair) in points.windows(2).enumerate().chain(
                // An empty payload is one empty frame.
                (points.len() < 2).then_some((0, &[0usize, 0][..])),
            ) {
                let opcode = if i == 0 { TEXT } else { CONTINUE };
                let frame = client(opcode, i == last, &payload[pair[0]..pair[1]]);
                let header_len = frame.len() - (pair[1] - pair[0]);
                offset_of.extend((0..pair[1] - pair[0]).map(|k| stream.len() + header_len + k));
                stream.extend(frame);
            }
            let mut server = Protocol::new(Role::Server, MAX);
            let mut events = Vec::new();
            let mut error = None;
            let reads = split_points(stream.len(), &read_cuts);
            for pair in reads.windows(2) {
                server.receive_data(&stream[pair[0]..pair[1]]);
                let (mut got, err) = drain(&mut server);
                events.append(&mut got);
                // Or at the end, when the message ends inside a character.
                let must_fail = certain.is_some_and(|n| offset_of[n - 1] < pair[1])
                    || (pair[1] == stream.len() && !is_valid);
                prop_assert_eq!(err.is_some(), must_fail, "after stream byte {}", pair[1]);
                error = err;
            }
            match String::from_utf8(payload) {
                Ok(text) => prop_assert_eq!((events, error), (vec![Event::Text(text)], None)),
                Err(_) => {
                    prop_assert!(events.is_empty());
                    prop_assert_eq!(error, Some(ProtocolError::InvalidUtf8));
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            role in prop_oneof![Just(Role::Server), Just(Role::Client)],
            max in 0usize..1000,
        ) {
            let mut protocol = Protocol::new(role, max);
            for chunk in bytes.chunks(13) {
                protocol.receive_data(chunk);
                let _ = drain(&mut protocol);
                prop_assert!(protocol.payload.capacity() <= max);
            }
        }
    }
}

#[cfg(test)]
#[path = "protocol/deflate_tests.rs"]
mod deflate_tests;

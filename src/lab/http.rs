//! The client half of HTTP/1.1 (RFC 9112) that the lab's clients need:
//! writing a request, and reading responses incrementally. Pure: bytes in,
//! values out.
//!
//! Call protocol, as in [`crate::wire::sse::Parser`]: [`ResponseReader::feed`]
//! the bytes as they arrive, then call [`ResponseReader::next_response`] until
//! it returns [`Decoded::Incomplete`]. A response whose body is delimited by
//! the connection closing (an SSE stream) or that switches protocols (`101`,
//! a WebSocket) is returned as [`Decoded::Stream`] after its head: the bytes
//! behind the head belong to the new protocol, [`ResponseReader::take_rest`]
//! hands them over.
//!
//! Message body length, RFC 9112 §6.3, as far as a pushlab server needs it:
//! `1xx` other than `101` are interim and skipped, `204`/`304` have no body,
//! `Content-Length` delimits the body, and a response with neither
//! `Content-Length` nor `Transfer-Encoding` runs until the connection closes.
//!
//! Left out: the chunked transfer coding (pushlab never sends it; a chunked
//! response is an [`HttpError::Unsupported`]), trailers, `HEAD` responses.

use std::fmt;
use std::io::Write as _;

use crate::config::{MAX_HEADERS, MAX_HEAD_BYTES};
use crate::wire::http1::{find_head_end, list_has_token, HeadEnd};

/// Appends one request to `out`. `Content-Length` is written whenever there
/// is a body or the method is `POST`; `Connection: close` when `keep_alive`
/// is false (RFC 9112 §9.6: the client will close after the response).
pub fn encode_request(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) {
    let _ = write!(out, "{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if !body.is_empty() || method == "POST" {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A response's status line and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Header names lower-cased, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The server will close the connection after this response.
    pub close: bool,
}

impl ResponseHead {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A whole response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub head: ResponseHead,
    pub body: Vec<u8>,
}

/// What [`ResponseReader::next_response`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A response with its whole body.
    Response(Response),
    /// The head of a response whose body is a stream (until close, or a
    /// `101` switch): the reader is done; take the bytes behind the head
    /// with [`ResponseReader::take_rest`].
    Stream(ResponseHead),
    /// Feed more bytes.
    Incomplete,
}

/// A response the reader cannot frame. The connection cannot be reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// httparse refused the status line or a header.
    Malformed(String),
    /// The head passed [`MAX_HEAD_BYTES`] without ending.
    HeadTooLarge,
    /// `Content-Length` is not a number, or is given twice with two values.
    BadContentLength,
    /// A framing this client does not implement (chunked).
    Unsupported(&'static str),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed response head: {why}"),
            HttpError::HeadTooLarge => write!(f, "response head over {MAX_HEAD_BYTES} bytes"),
            HttpError::BadContentLength => f.write_str("invalid Content-Length"),
            HttpError::Unsupported(what) => write!(f, "unsupported response framing: {what}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Where the reader is.
#[derive(Debug)]
enum State {
    Head {
        scanned: usize,
    },
    Body {
        head: ResponseHead,
        len: usize,
    },
    /// A stream response was returned; nothing more is parsed.
    Streaming,
}

/// Reads the responses of one connection, in order (pipelined ones too).
#[derive(Debug)]
pub struct ResponseReader {
    buf: Vec<u8>,
    state: State,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseReader {
    /// A reader for a fresh connection.
    pub fn new() -> Self {
        ResponseReader {
            buf: Vec::new(),
            state: State::Head { scanned: 0 },
        }
    }

    /// Buffers bytes read from the socket.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The bytes behind a [`Decoded::Stream`] head (and any fed since).
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The next response, or [`Decoded::Incomplete`].
    pub fn next_response(&mut self) -> Result<Decoded, HttpError> {
        loop {
            match &mut self.state {
                State::Streaming => return Ok(Decoded::Incomplete),
                State::Head { scanned } => {
                    let end = match find_head_end(&self.buf, *scanned) {
                        HeadEnd::Complete(end) => end,
                        HeadEnd::Incomplete { scanned: s } => {
                            if s > MAX_HEAD_BYTES {
                                return Err(HttpError::HeadTooLarge);
                            }
                            *scanned = s;
                            return Ok(Decoded::Incomplete);
                        }
                    };
                    let (head, framing) = parse_head(&self.buf[..end])?;
                    self.buf.drain(..end);
                    match framing {
                        Framing::Interim => self.state = State::Head { scanned: 0 },
                        Framing::Stream => {
                            self.state = State::Streaming;
                            return Ok(Decoded::Stream(head));
                        }
                        Framing::Length(len) => self.state = State::Body { head, len },
                    }
                }
                State::Body { len, .. } => {
                    if self.buf.len() < *len {
                        return Ok(Decoded::Incomplete);
                    }
                    let len = *len;
                    let body: Vec<u8> = self.buf.drain(..len).collect();
                    let State::Body { head, .. } =
                        std::mem::replace(&mut self.state, State::Head { scanned: 0 })
                    else {
                        unreachable!("matched Body above");
                    };
                    return Ok(Decoded::Response(Response { head, body }));
                }
            }
        }
    }
}

/// How the body after a head is delimited.
enum Framing {
    /// `1xx` (not `101`): another head follows.
    Interim,
    /// Until the connection closes, or another protocol after `101`.
    Stream,
    Length(usize),
}

fn parse_head(bytes: &[u8]) -> Result<(ResponseHead, Framing), HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpError::Malformed("head ended early".into()))
        }
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    let status = response.code.unwrap_or(0);
    let http10 = response.version == Some(0);
    let mut head = ResponseHead {
        status,
        headers: Vec::with_capacity(response.headers.len()),
        close: http10,
    };
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or(HttpError::BadContentLength)?;
                // RFC 9112 §6.3: differing repeated values are an error.
                if length.is_some_and(|l| l != n) {
                    return Err(HttpError::BadContentLength);
                }
                length = Some(n);
            }
            "transfer-encoding" => chunked = true,
            "connection" => {
                if list_has_token(h.value, "close") {
                    head.close = true;
                } else if list_has_token(h.value, "keep-alive") {
                    head.close = false;
                }
            }
            _ => {}
        }
        head.headers.push((name, h.value.to_vec()));
    }
    let framing = match status {
        101 => Framing::Stream,
        100..=199 => Framing::Interim,
        204 | 304 => Framing::Length(0),
        _ if chunked => return Err(HttpError::Unsupported("Transfer-Encoding")),
        _ => match length {
            Some(n) => Framing::Length(n),
            None => {
                head.close = true;
                Framing::Stream
            }
        },
    };
    Ok((head, framing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TWO: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello\
        HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nConnection: close\r\n\r\n";

    fn drain(r: &mut ResponseReader) -> Vec<Decoded> {
        let mut out = Vec::new();
        loop {
            match r.next_response().unwrap() {
                Decoded::Incomplete => return out,
                d => out.push(d),
            }
        }
    }

    #[test]
    fn a_request_names_host_length_and_close() {
        let mut out = Vec::new();
        encode_request(
            &mut out,
            "POST",
            "/publish?topic=a",
            "h:1",
            &[],
            b"hi",
            false,
        );
        assert_eq!(
            out,
            b"POST /publish?topic=a HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        );
        out.clear();
        encode_request(&mut out, "GET", "/poll", "h", &[("X", "1")], b"", true);
        assert_eq!(out, b"GET /poll HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n");
    }

    #[test]
    fn pipelined_responses_come_out_in_order_and_interim_ones_are_skipped() {
        let mut r = ResponseReader::new();
        r.feed(TWO);
        let got = drain(&mut r);
        assert_eq!(got.len(), 2);
        let Decoded::Response(first) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((first.head.status, &first.body[..]), (200, &b"hello"[..]));
        assert!(!first.head.close);
        let Decoded::Response(second) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(second.head.status, 404);
        assert!(second.head.close);
    }

    #[test]
    fn a_response_without_length_is_a_stream_and_hands_over_the_rest() {
        let mut r = ResponseReader::new();
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 10\n");
        let Decoded::Stream(head) = r.next_response().unwrap() else {
            panic!()
        };
        assert_eq!(head.header("content-type"), Some(&b"text/event-stream"[..]));
        assert!(head.close);
        assert_eq!(r.take_rest(), b"retry: 10\n");
        assert_eq!(r.next_response().unwrap(), Decoded::Incomplete);
    }

    #[test]
    fn switching_protocols_is_a_stream() {
        let mut r = ResponseReader::new();
        r.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00");
        assert!(matches!(r.next_response().unwrap(), Decoded::Stream(h) if h.status == 101));
        assert_eq!(r.take_rest(), b"\x81\x00");
    }

    #[test]
    fn bad_framing_is_an_error() {
        let mut r = ResponseReader::new();
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
        assert_eq!(r.next_response(), Err(HttpError::BadContentLength));
        let mut r = ResponseReader::new();
        r.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(r.next_response(), Err(HttpError::Unsupported(_))));
        let mut r = ResponseReader::new();
        r.feed(b"NOT HTTP\r\n\r\n");
        assert!(matches!(r.next_response(), Err(HttpError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn the_same_bytes_split_anywhere_give_the_same_responses(
            cuts in proptest::collection::vec(0..TWO.len(), 0..6)
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut r = ResponseReader::new();
            let mut got = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([TWO.len()]) {
                r.feed(&TWO[at..cut.max(at)]);
                at = cut.max(at);
                got.extend(drain(&mut r));
            }
            let mut whole = ResponseReader::new();
            whole.feed(TWO);
            prop_assert_eq!(got, drain(&mut whole));
        }
    }
}

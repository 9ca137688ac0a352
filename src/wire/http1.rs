//! HTTP/1.1 messages: request heads in, request bodies in, response heads out.
//!
//! Implements the parts of [RFC 9112](https://www.rfc-editor.org/rfc/rfc9112)
//! (message syntax) and [RFC 9110](https://www.rfc-editor.org/rfc/rfc9110)
//! (semantics) a push server needs: the request line and header fields
//! (tokenised by `httparse`), `Content-Length` and `chunked` request bodies
//! (§6, §7.1), persistence (§9.3) and `Expect: 100-continue`
//! (RFC 9110 §10.1.1).
//!
//! Call protocol: the caller keeps the bytes; [`find_head_end`] scans only
//! the bytes that arrived since the last call, so a head trickling in one
//! byte at a time costs O(n) in total, and `httparse` runs once per head.
//! [`BodyDecoder`] then takes body bytes as they come.
//!
//! Left out: trailers in chunked bodies are read and discarded; transfer
//! codings other than `chunked` get `501`; `obs-fold` line folding is
//! rejected (RFC 9112 §5.2 allows that); absolute-form targets are accepted
//! and their path used.

use std::fmt;
use std::io::Write;

use crate::config::{MAX_HEADERS, MAX_HEAD_BYTES};
use crate::ids::push_decimal;

/// Request methods pushlab routes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Other(String),
}

impl Method {
    fn from_token(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method token as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(s) => s,
        }
    }
}

/// HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the request's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    ContentLength(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: Method,
    /// The request-target as sent (origin-form `path?query` in practice).
    pub target: String,
    pub version: Version,
    /// Header fields in order; names as sent.
    pub headers: HeaderFields,
    pub framing: BodyFraming,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The connection stays open after this exchange (RFC 9112 §9.3).
    pub keep_alive: bool,
}

impl RequestHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether the comma-separated list in header `name` contains `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name).any(|v| list_has_token(v, token))
    }

    /// The path part of the target (before `?`), without a scheme/authority.
    pub fn path(&self) -> &str {
        let t = self.target.as_str();
        // origin-form starts with "/" (RFC 9112 §3.2.1), so only another
        // form can hold a scheme; a "://" in the query is just data.
        let absolute = if t.starts_with('/') {
            None
        } else {
            t.find("://")
        };
        let t = match absolute {
            // absolute-form: skip scheme and authority (RFC 9112 §3.2.2)
            Some(i) => t[i + 3..].find('/').map_or("/", |j| &t[i + 3 + j..]),
            None => t,
        };
        t.split_once('?').map_or(t, |(p, _)| p)
    }

    /// The query part of the target (after `?`), empty if none.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// Header pairs as `(&str, &[u8])`, the shape the WebSocket handshake takes.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone {
        self.headers.iter()
    }
}

/// A head's header fields, in order, names as sent: every name in one
/// string and every value in one buffer, back to back — three allocations
/// per request however many fields it has, instead of two per field.
#[derive(Clone, Default)]
pub struct HeaderFields {
    names: String,
    values: Vec<u8>,
    /// (name length, value length) of each field, in order.
    lens: Vec<(u32, u32)>,
}

impl HeaderFields {
    /// Appends a field.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        self.names.push_str(name);
        self.values.extend_from_slice(value);
        self.lens.push((name.len() as u32, value.len() as u32));
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// `(name, value)` of each field, in order.
    pub fn iter(&self) -> HeaderIter<'_> {
        HeaderIter {
            names: &self.names,
            values: &self.values,
            lens: self.lens.iter(),
        }
    }
}

impl PartialEq for HeaderFields {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for HeaderFields {}

impl fmt::Debug for HeaderFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

impl<'a> IntoIterator for &'a HeaderFields {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// Iterator over [`HeaderFields`].
#[derive(Clone)]
pub struct HeaderIter<'a> {
    names: &'a str,
    values: &'a [u8],
    lens: std::slice::Iter<'a, (u32, u32)>,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let &(n, v) = self.lens.next()?;
        // Names are httparse tokens (ASCII), so the split is on a char
        // boundary.
        let (name, names) = self.names.split_at(n as usize);
        let (value, values) = self.values.split_at(v as usize);
        self.names = names;
        self.values = values;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.lens.size_hint()
    }
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
pub fn list_has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A request the server must refuse, with the status it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x syntax (httparse error, or a bare CR/LF problem).
    Malformed(String),
    /// The head passed [`MAX_HEAD_BYTES`] before its end → 431.
    TooLarge,
    /// More than [`MAX_HEADERS`] header fields → 431.
    TooManyHeaders,
    /// Two different `Content-Length`s, a non-numeric one, or both
    /// `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3 ¶3–5) → 400.
    BadContentLength,
    /// A transfer coding other than `chunked` → 501.
    UnsupportedTransferCoding,
    /// `Transfer-Encoding` on HTTP/1.0 (RFC 9112 §6.1) → 400.
    TransferEncodingOnHttp10,
    /// HTTP/1.1 request without `Host` (RFC 9112 §3.2) → 400.
    MissingHost,
    /// More than one `Host` field line (RFC 9112 §3.2) → 400.
    DuplicateHost,
    /// A `Host` value that is not `uri-host [ ":" port ]` (RFC 9110 §7.2) → 400.
    InvalidHost,
    /// The `Expect` value is not `100-continue` (RFC 9110 §10.1.1) → 417.
    UnsupportedExpectation,
}

impl HeadError {
    /// The response status for this error.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UnsupportedTransferCoding => 501,
            HeadError::UnsupportedExpectation => 417,
            _ => 400,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Malformed(why) => write!(f, "malformed request head: {why}"),
            HeadError::TooLarge => write!(f, "request head larger than {MAX_HEAD_BYTES} bytes"),
            HeadError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header fields"),
            HeadError::BadContentLength => f.write_str("invalid or conflicting Content-Length"),
            HeadError::UnsupportedTransferCoding => {
                f.write_str("only the chunked transfer coding is supported")
            }
            HeadError::TransferEncodingOnHttp10 => {
                f.write_str("Transfer-Encoding is not allowed in HTTP/1.0")
            }
            HeadError::MissingHost => f.write_str("HTTP/1.1 request without Host"),
            HeadError::DuplicateHost => f.write_str("more than one Host field"),
            HeadError::InvalidHost => f.write_str("Host is not a host name with an optional port"),
            HeadError::UnsupportedExpectation => {
                f.write_str("only Expect: 100-continue is supported")
            }
        }
    }
}

impl std::error::Error for HeadError {}

/// Result of scanning for the end of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadEnd {
    /// The head ends after this many bytes (the blank line included).
    Complete(usize),
    /// No end yet; resume scanning at this offset next time.
    Incomplete { scanned: usize },
}

/// Looks for the blank line ending a head in `buf`, starting at `from` (the
/// `scanned` of the previous [`HeadEnd::Incomplete`]). Accepts CRLF CRLF and,
/// as RFC 9112 §2.2 allows, bare LF line endings.
pub fn find_head_end(buf: &[u8], from: usize) -> HeadEnd {
    // Back up 3 bytes so a terminator split across reads is still seen.
    let start = from.saturating_sub(3);
    let mut i = start;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let lf = i + off;
        // "\n\n" or "\n\r\n": a line ending right after another line ending.
        if lf >= 1 && buf[lf - 1] == b'\n' {
            return HeadEnd::Complete(lf + 1);
        }
        if lf >= 2 && buf[lf - 1] == b'\r' && buf[lf - 2] == b'\n' {
            return HeadEnd::Complete(lf + 1);
        }
        i = lf + 1;
    }
    HeadEnd::Incomplete { scanned: buf.len() }
}

/// Whether a request head in `buf` starts with the `HEAD` method (after the
/// empty lines RFC 9112 §2.2 lets a server skip), for answering a head that
/// [`parse_head`] refuses as a whole.
pub fn starts_with_head_method(buf: &[u8]) -> bool {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n');
    start.is_some_and(|i| buf[i..].starts_with(b"HEAD "))
}

/// Parses a complete head, `buf[..len]` as found by [`find_head_end`].
pub fn parse_head(buf: &[u8]) -> Result<RequestHead, HeadError> {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF)
    // received prior to the request-line.
    let mut skip = 0;
    while buf[skip..].starts_with(b"\r\n") {
        skip += 2;
    }
    while buf[skip..].starts_with(b"\n") {
        skip += 1;
    }
    let buf = &buf[skip..];
    // Uninitialised slots: httparse writes the ones it fills, and the
    // 64 × 32 bytes of empty headers are not zeroed for every request.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HeadError::Malformed("incomplete head".into()));
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    }
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HeadError::Malformed("unsupported HTTP version".into())),
    };
    let method = Method::from_token(req.method.unwrap_or(""));
    let target = req.path.unwrap_or("").to_string();
    if target.is_empty() {
        return Err(HeadError::Malformed("empty request-target".into()));
    }
    let (names, values) = req
        .headers
        .iter()
        .fold((0, 0), |(n, v), h| (n + h.name.len(), v + h.value.len()));
    let mut headers = HeaderFields {
        names: String::with_capacity(names),
        values: Vec::with_capacity(values),
        lens: Vec::with_capacity(req.headers.len()),
    };
    for h in req.headers.iter() {
        headers.push(h.name, h.value);
    }

    let mut head = RequestHead {
        method,
        target,
        version,
        headers,
        framing: BodyFraming::None,
        expect_continue: false,
        keep_alive: false,
    };

    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
    // code to any HTTP/1.1 request message that lacks a Host header field and
    // to any request message that contains more than one Host header field
    // line or a Host header field with an invalid field value."
    check_host(&head)?;

    head.framing = body_framing(&head)?;

    if let Some(expect) = head.header("expect") {
        if expect.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
            // RFC 9110 §10.1.1: a server that receives 100-continue in an
            // HTTP/1.0 request MUST ignore it.
            head.expect_continue = version == Version::Http11;
        } else {
            return Err(HeadError::UnsupportedExpectation);
        }
    }

    // RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with
    // "keep-alive".
    head.keep_alive = match version {
        Version::Http11 => !head.has_token("connection", "close"),
        Version::Http10 => head.has_token("connection", "keep-alive"),
    };
    Ok(head)
}

fn check_host(head: &RequestHead) -> Result<(), HeadError> {
    let mut hosts = head.header_values("host");
    match (hosts.next(), hosts.next()) {
        (None, _) if head.version == Version::Http11 => Err(HeadError::MissingHost),
        (Some(_), Some(_)) => Err(HeadError::DuplicateHost),
        (Some(host), None) if !is_valid_host(host) => Err(HeadError::InvalidHost),
        _ => Ok(()),
    }
}

/// Whether `value` is a valid `Host` field value (RFC 9110 §7.2):
///
/// ```text
/// Host       = uri-host [ ":" port ]
/// uri-host   = IP-literal / IPv4address / reg-name      (RFC 3986 §3.2.2)
/// IP-literal = "[" ( IPv6address / IPvFuture ) "]"
/// reg-name   = *( unreserved / pct-encoded / sub-delims )
/// port       = *DIGIT
/// ```
///
/// An IPv4 address is a `reg-name` as far as characters go, and the inside
/// of an IP literal is checked for its alphabet only (hex digits, `:`, `.`,
/// and IPvFuture's `v`, unreserved and sub-delims): pushlab routes on the
/// path and never on the host, so the check is there to refuse what no
/// client would send (spaces, `/`, `@`, a second colon).
fn is_valid_host(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let (literal, after) = (&rest[..end], &rest[end + 1..]);
        if literal.is_empty() || !literal.iter().all(|&b| is_reg_name_byte(b) || b == b':') {
            return false;
        }
        match after {
            [] => return true,
            [b':', port @ ..] => (&b""[..], port),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, &b""[..]),
        }
    };
    port.iter().all(u8::is_ascii_digit) && is_reg_name(host)
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2).
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        if name[i] == b'%' {
            // pct-encoded = "%" HEXDIG HEXDIG
            let hex = name.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if is_reg_name_byte(name[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// unreserved (`ALPHA DIGIT - . _ ~`) or sub-delims (`! $ & ' ( ) * + , ; =`).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

fn body_framing(head: &RequestHead) -> Result<BodyFraming, HeadError> {
    let mut te = head.header_values("transfer-encoding").peekable();
    if te.peek().is_some() {
        if head.version == Version::Http10 {
            return Err(HeadError::TransferEncodingOnHttp10);
        }
        // RFC 9112 §6.3 ¶3: both present "ought to be handled as an error".
        if head.header("content-length").is_some() {
            return Err(HeadError::BadContentLength);
        }
        let mut codings = te
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|c| c.trim_ascii())
            .filter(|c| !c.is_empty());
        // Only "chunked" alone is supported; chunked must be last anyway.
        return match (codings.next(), codings.next()) {
            (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(BodyFraming::Chunked),
            _ => Err(HeadError::UnsupportedTransferCoding),
        };
    }
    let cl = head.header_values("content-length");
    let mut length: Option<u64> = None;
    for value in cl.flat_map(|v| v.split(|&b| b == b',')) {
        let value = value.trim_ascii();
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || value.len() > 18 {
            return Err(HeadError::BadContentLength);
        }
        let n: u64 = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(HeadError::BadContentLength)?;
        // RFC 9112 §6.3 ¶5: repeated identical values may be accepted.
        if length.is_some_and(|l| l != n) {
            return Err(HeadError::BadContentLength);
        }
        length = Some(n);
    }
    Ok(match length {
        Some(n) => BodyFraming::ContentLength(n),
        None => BodyFraming::None,
    })
}

/// A request body that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body is larger than the limit → 413.
    TooLarge,
    /// Bad chunk syntax → 400.
    BadChunk(&'static str),
}

impl BodyError {
    /// The response status for this error.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge => 413,
            BodyError::BadChunk(_) => 400,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("request body too large"),
            BodyError::BadChunk(why) => write!(f, "malformed chunked body: {why}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Progress of a [`BodyDecoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyStatus {
    /// The body is complete after consuming this many input bytes.
    Complete { consumed: usize },
    /// All input was consumed; more is needed.
    Incomplete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading the chunk-size line (hex digits, optional extensions, CRLF).
    Size,
    /// Reading chunk data; this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines until an empty one.
    Trailer,
    Done,
}

/// Longest chunk-size line (size + extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// Incremental request-body reader for both framings, with a size limit.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    limit: usize,
    remaining: u64,
    chunked: Option<ChunkState>,
    /// Partial chunk-size or trailer line.
    line: Vec<u8>,
}

impl BodyDecoder {
    /// A decoder for `framing` that refuses more than `limit` body bytes.
    /// A `Content-Length` over the limit fails at once, before any body
    /// byte is read (so `Expect: 100-continue` clients get 413 straight away).
    pub fn new(framing: BodyFraming, limit: usize) -> Result<BodyDecoder, BodyError> {
        let (remaining, chunked) = match framing {
            BodyFraming::None => (0, None),
            BodyFraming::ContentLength(n) => {
                if n > limit as u64 {
                    return Err(BodyError::TooLarge);
                }
                (n, None)
            }
            BodyFraming::Chunked => (0, Some(ChunkState::Size)),
        };
        Ok(BodyDecoder {
            limit,
            remaining,
            chunked,
            line: Vec::new(),
        })
    }

    /// Whether the body is complete without reading anything.
    pub fn is_empty_body(&self) -> bool {
        self.chunked.is_none() && self.remaining == 0
    }

    /// Consumes body bytes from `input`, appending payload to `body`.
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<BodyStatus, BodyError> {
        match self.chunked {
            None => {
                let take = (self.remaining.min(input.len() as u64)) as usize;
                body.extend_from_slice(&input[..take]);
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    Ok(BodyStatus::Complete { consumed: take })
                } else {
                    Ok(BodyStatus::Incomplete)
                }
            }
            Some(_) => self.decode_chunked(input, body),
        }
    }

    fn decode_chunked(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<BodyStatus, BodyError> {
        let mut i = 0;
        loop {
            let state = self.chunked.expect("chunked");
            match state {
                ChunkState::Done => return Ok(BodyStatus::Complete { consumed: i }),
                ChunkState::Data(left) => {
                    let take = left.min((input.len() - i) as u64) as usize;
                    if body.len() + take > self.limit {
                        return Err(BodyError::TooLarge);
                    }
                    body.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    if left > 0 {
                        self.chunked = Some(ChunkState::Data(left));
                        return Ok(BodyStatus::Incomplete);
                    }
                    self.chunked = Some(ChunkState::DataEnd);
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    let Some(nl) = input[i..].iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(&input[i..]);
                        if self.line.len() > MAX_CHUNK_LINE {
                            return Err(BodyError::BadChunk("chunk line too long"));
                        }
                        return Ok(BodyStatus::Incomplete);
                    };
                    self.line.extend_from_slice(&input[i..i + nl]);
                    i += nl + 1;
                    if self.line.len() > MAX_CHUNK_LINE {
                        return Err(BodyError::BadChunk("chunk line too long"));
                    }
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    let next = self.end_of_line(state, &line)?;
                    // Refuse as soon as the sizes announce too much, before
                    // buffering the chunk.
                    if let ChunkState::Data(n) = next {
                        if body.len() as u64 + n > self.limit as u64 {
                            return Err(BodyError::TooLarge);
                        }
                    }
                    self.chunked = Some(next);
                    self.line = line;
                    self.line.clear();
                }
            }
        }
    }

    fn end_of_line(&self, state: ChunkState, line: &[u8]) -> Result<ChunkState, BodyError> {
        match state {
            ChunkState::Size => {
                // chunk = chunk-size [ chunk-ext ] CRLF  (RFC 9112 §7.1)
                let size = line
                    .split(|&b| b == b';')
                    .next()
                    .unwrap_or(b"")
                    .trim_ascii();
                if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
                    return Err(BodyError::BadChunk("bad chunk size"));
                }
                let n = u64::from_str_radix(std::str::from_utf8(size).unwrap_or("x"), 16)
                    .map_err(|_| BodyError::BadChunk("bad chunk size"))?;
                if n > self.limit as u64 {
                    return Err(BodyError::TooLarge);
                }
                Ok(if n == 0 {
                    ChunkState::Trailer
                } else {
                    ChunkState::Data(n)
                })
            }
            ChunkState::DataEnd => {
                if line.is_empty() {
                    Ok(ChunkState::Size)
                } else {
                    Err(BodyError::BadChunk("chunk data longer than its size"))
                }
            }
            // trailer-section = *( field-line CRLF ) then CRLF; fields dropped.
            ChunkState::Trailer => Ok(if line.is_empty() {
                ChunkState::Done
            } else {
                ChunkState::Trailer
            }),
            ChunkState::Data(_) | ChunkState::Done => Ok(state),
        }
    }
}

/// The reason phrase for the statuses pushlab sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The `100 Continue` interim response.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A response head under construction. Headers are written straight into
/// the output buffer; `Content-Length` (when known) and `Connection` come from
/// the arguments so they can never disagree with what the server does.
pub struct ResponseHead<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> ResponseHead<'a> {
    /// Starts `HTTP/1.1 <status> <reason>` with a `Server` header.
    pub fn new(out: &'a mut Vec<u8>, status: u16) -> ResponseHead<'a> {
        // Written piece by piece: `write!` costs more than the rest of a
        // small response together, and every response starts here.
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(status));
        out.push(b' ');
        out.extend_from_slice(reason(status).as_bytes());
        out.extend_from_slice(b"\r\nServer: pushlab\r\n");
        ResponseHead { out }
    }

    /// Adds a header.
    pub fn header(self, name: &str, value: impl fmt::Display) -> Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        let _ = write!(self.out, "{value}");
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the head for a body of `len` bytes.
    pub fn finish(self, len: usize, keep_alive: bool) {
        self.out.extend_from_slice(b"Content-Length: ");
        push_decimal(self.out, len as u64);
        self.out.extend_from_slice(if keep_alive {
            b"\r\nConnection: keep-alive\r\n\r\n"
        } else {
            b"\r\nConnection: close\r\n\r\n"
        });
    }

    /// Ends the head of a response that has no content (`204`): RFC 9110
    /// §8.6, a server MUST NOT send `Content-Length` in a 204 response.
    pub fn finish_no_content(self, keep_alive: bool) {
        self.out.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
    }

    /// Ends the head of a response streamed until the connection closes (SSE).
    pub fn finish_streaming(self) {
        self.out
            .extend_from_slice(b"Cache-Control: no-cache\r\n\r\n");
    }

    /// Ends the head with no framing headers (101 Switching Protocols).
    pub fn finish_bare(self) {
        self.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests;

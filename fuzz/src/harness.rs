//! The real [`Engine`] with one connection, driven the way `server/mod.rs`
//! drives it, with no socket: a virtual clock, a client whose bytes wait in
//! a backlog while the engine does not want to read them, and a [`Kernel`]
//! (the engine's [`Io`]) that takes only what the client reads and hands
//! every byte to a [`Wire`] that checks, with a tokeniser that is not
//! pushlab's own (`httparse`), everything the server writes.
//!
//! Shared by the `session` fuzz target and `tests/session_props.rs` (which
//! includes this file with `#[path]`), so both hold the engine and its
//! sessions to the same invariants. A broken invariant panics with a message
//! saying which.
//!
//! The loop is the one `engine/mod.rs` documents for a shell: reads on an
//! edge (new bytes, the FIN) or when the engine lists the connection as
//! unread, until `WouldBlock` or the engine stops wanting input; then due
//! deadlines; then the end of the turn, which writes what is pending; turns
//! follow each other while the engine has work at once (`poll_at`).
//!
//! The client's socket has no buffer: the kernel takes what the client reads
//! ([`Rig::write`]) and nothing else. So a turn that ends with output queued
//! ends with a write attempt that the kernel refuses (`WouldBlock`), which
//! starts the send timeout; a client that then reads nothing for
//! `--send-timeout` is cut.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Duration;

use pushlab::config::{Config, READ_CHUNK};
use pushlab::engine::{ConnId, Engine, Io, Peer, Written};
use pushlab::hub::{Cursor, Kind as MessageKind};
use pushlab::session::{Lifecycle, Session};
use pushlab::stats::{Stats, Transport};
use pushlab::testkit;
use pushlab::timers::Instant;
use pushlab::wire::http1;
use pushlab::wire::sse;
use pushlab::wire::websocket::{Event as WsEvent, Protocol, Role};

/// The hub's epoch in every rig.
pub const EPOCH: &str = testkit::EPOCH;

/// Topics the canned requests and publishes use.
pub const TOPICS: [&str; 3] = ["a", "b", "c"];

/// How much larger than `--max-queued-bytes` the output queue may grow: the
/// queue is checked *before* each response, so one response may overshoot.
/// With the rig's limits (history ≤ 16 per topic, messages ≤ 512 bytes,
/// escaped at most 6× in JSON) one response stays well below this.
pub const QUEUE_SLACK: usize = 256 * 1024;

/// The knobs a run may turn; everything else is `Config::default()`.
#[derive(Clone, Debug)]
pub struct RigConfig {
    pub max_queued_bytes: usize,
    pub history: usize,
    pub heartbeat: Duration,
    pub sse_max_lifetime: Option<Duration>,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub long_poll_default: Duration,
    pub long_poll_max: Duration,
    pub send_timeout: Duration,
    pub publish_token: Option<String>,
}

impl Default for RigConfig {
    fn default() -> Self {
        RigConfig {
            max_queued_bytes: 64 * 1024,
            history: 8,
            heartbeat: Duration::from_secs(15),
            sse_max_lifetime: None,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            long_poll_default: Duration::from_secs(30),
            long_poll_max: Duration::from_secs(120),
            send_timeout: Config::default().send_timeout,
            publish_token: None,
        }
    }
}

impl RigConfig {
    fn to_config(&self) -> Config {
        Config {
            history: self.history,
            max_message: 512,
            max_queued_bytes: self.max_queued_bytes,
            heartbeat: self.heartbeat,
            sse_max_lifetime: self.sse_max_lifetime,
            head_timeout: self.head_timeout,
            idle_timeout: self.idle_timeout,
            long_poll_default: self.long_poll_default,
            long_poll_max: self.long_poll_max,
            send_timeout: self.send_timeout,
            publish_token: self.publish_token.clone(),
            ws_max_message: 4096,
            ..Config::default()
        }
    }
}

/// What kind of answer a canned request expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `200` poll body (short or long poll), or `400` for a bad parameter.
    Poll,
    LongPoll,
    /// `200` publish reply (or `401` when a token is required and not given).
    Publish,
    /// `200 text/event-stream`, then the stream.
    Events,
    /// `101`, or an error status while WebSockets are not built.
    WebSocket,
    /// A fixed status.
    Status(u16),
}

/// A request whose bytes and expected answer the harness knows.
#[derive(Clone, Debug)]
pub struct Canned {
    pub bytes: Vec<u8>,
    pub kind: Kind,
    /// `HEAD`: the response has no body.
    pub head_only: bool,
    /// The request asks to close the connection after its response.
    pub closes: bool,
}

/// How many different canned requests [`canned`] knows.
pub const CANNED: u8 = 20;

/// Canned request number `which % CANNED`; `close` adds `Connection: close`.
/// `data` is the body of the publishes.
pub fn canned(which: u8, close: bool, data: &str) -> Canned {
    let conn = if close { "Connection: close\r\n" } else { "" };
    let get = |target: &str, kind: Kind| Canned {
        bytes: format!("GET {target} HTTP/1.1\r\nHost: t\r\n{conn}\r\n").into_bytes(),
        kind,
        head_only: false,
        closes: close,
    };
    let upgrade = |path: &str| Canned {
        bytes: format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{conn}\r\n"
        )
        .into_bytes(),
        kind: Kind::WebSocket,
        head_only: false,
        closes: close,
    };
    match which % CANNED {
        0 => get("/poll?topic=a", Kind::Poll),
        1 => get("/poll?topic=a,b&since=0", Kind::Poll),
        2 => get("/long-poll?topic=a&timeout=1", Kind::LongPoll),
        3 => get("/long-poll?topic=a,b&since=e1-1&timeout=5", Kind::LongPoll),
        4 => get("/long-poll?topic=c", Kind::LongPoll),
        5 => Canned {
            bytes: format!(
                "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\
                 Authorization: Bearer s3cret\r\n{conn}\r\n{data}",
                data.len()
            )
            .into_bytes(),
            kind: Kind::Publish,
            head_only: false,
            closes: close,
        },
        6 => {
            let mut bytes = format!(
                "POST /publish?topic=b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
                 Authorization: Bearer s3cret\r\n{conn}\r\n"
            )
            .into_bytes();
            for piece in data.as_bytes().chunks(7) {
                bytes.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
                bytes.extend_from_slice(piece);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
            Canned {
                bytes,
                kind: Kind::Publish,
                head_only: false,
                closes: close,
            }
        }
        // A binary message (docs/api.md § Binary messages).
        7 => Canned {
            bytes: format!(
                "POST /publish?topic=c HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\
                 Content-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\nAuthorization: Bearer s3cret\r\n{conn}\r\n{data}",
                data.len()
            )
            .into_bytes(),
            kind: Kind::Publish,
            head_only: false,
            closes: close,
        },
        8 => get("/events?topic=a", Kind::Events),
        9 => Canned {
            bytes: format!(
                "GET /events?topic=a,b HTTP/1.1\r\nHost: t\r\nLast-Event-ID: e1-2\r\n{conn}\r\n"
            )
            .into_bytes(),
            kind: Kind::Events,
            head_only: false,
            closes: close,
        },
        10 => upgrade("/ws?topic=a"),
        11 => upgrade("/echo"),
        12 => get("/stats", Kind::Status(200)),
        13 => Canned {
            bytes: format!("HEAD /poll?topic=b HTTP/1.1\r\nHost: t\r\n{conn}\r\n").into_bytes(),
            kind: Kind::Poll,
            head_only: true,
            closes: close,
        },
        14 => get("/", Kind::Status(200)),
        15 => Canned {
            // HTTP/1.0 closes unless it asks for keep-alive.
            bytes: if close {
                b"GET /poll?topic=c HTTP/1.0\r\n\r\n".to_vec()
            } else {
                b"GET /poll?topic=c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec()
            },
            kind: Kind::Poll,
            head_only: false,
            closes: close,
        },
        16 => Canned {
            bytes: format!("DELETE /poll HTTP/1.1\r\nHost: t\r\n{conn}\r\n").into_bytes(),
            kind: Kind::Status(405),
            head_only: false,
            closes: close,
        },
        17 => get("/nope", Kind::Status(404)),
        18 => get("/poll?topic=bad%20name", Kind::Status(400)),
        _ => get("/metrics", Kind::Status(200)),
    }
}

/// A binary message's SSE data: its base64 (one topic) or its JSON object
/// marked `"encoding":"base64"` (several), either way bytes that decode.
fn check_binary_event(data: &str) {
    let base64 = if data.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(data).expect("binary event JSON");
        assert_eq!(v["encoding"], "base64", "binary event JSON: {data}");
        v["data"].as_str().expect("binary event data").to_string()
    } else {
        data.to_string()
    };
    assert!(
        pushlab::hub::decode_binary(&base64).is_some(),
        "binary event data is not base64: {data:?}"
    );
}

/// One request the client sent, as the wire checker expects its answer.
#[derive(Clone, Debug)]
struct Expect {
    canned: Canned,
    /// Offset in the client's byte stream just after the request's last byte.
    end: u64,
}

/// What the wire checker is reading.
enum Mode {
    /// A response head (or the start of one).
    Head,
    /// `left` more body bytes of the current response.
    Body { left: usize, close: bool },
    /// An event stream, read with pushlab's own client-side parser.
    Sse(Box<sse::Parser>),
    /// WebSocket frames from the server, read by a client-role machine.
    Ws(Box<Protocol>),
    /// A response said `Connection: close`: nothing more may come.
    Closed,
}

/// A final response seen on the wire.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub close: bool,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The canned request it answers (exact mode).
    pub answers: Option<Canned>,
}

/// Checks the server's byte stream as a strict HTTP/1.1 client would.
pub struct Wire {
    buf: Vec<u8>,
    mode: Mode,
    /// Final responses, in order.
    pub responses: Vec<Response>,
    /// Interim `100 Continue` responses.
    pub continues: usize,
    /// Requests sent and not yet answered, in order (exact mode only).
    pending: VecDeque<Expect>,
    /// Whether every byte the client sent came from [`canned`] (so each
    /// response can be matched with its request).
    pub exact: bool,
    /// The client sent a `HEAD` somewhere (inexact mode: a response with a
    /// `Content-Length` may then come without its body).
    saw_head: bool,
    /// Bytes of the client stream handed to the session so far.
    delivered: u64,
    /// Sequence numbers of the SSE messages received, to check order.
    last_sse_seq: u64,
    /// A deadline fired while the client had answers left to read.
    timed_out_unread: bool,
    pub sse_events: Vec<sse::Event>,
    pub ws_events: Vec<WsEvent>,
    pub total: usize,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn seq_of(id: &str) -> u64 {
    match Cursor::parse(id) {
        Some(Cursor::After { epoch, seq }) => {
            assert_eq!(epoch, EPOCH, "an id from another epoch: {id}");
            seq
        }
        other => panic!("message id {id:?} is not a cursor E-N ({other:?})"),
    }
}

impl Wire {
    fn new() -> Wire {
        Wire {
            buf: Vec::new(),
            mode: Mode::Head,
            responses: Vec::new(),
            continues: 0,
            pending: VecDeque::new(),
            exact: true,
            saw_head: false,
            delivered: 0,
            last_sse_seq: 0,
            timed_out_unread: false,
            sse_events: Vec::new(),
            ws_events: Vec::new(),
            total: 0,
        }
    }

    /// Requests sent but not answered (exact mode).
    pub fn unanswered(&self) -> usize {
        self.pending.len()
    }

    /// Requests the session has received in full and not answered.
    pub fn unanswered_delivered(&self) -> usize {
        self.pending
            .iter()
            .filter(|e| e.end <= self.delivered)
            .count()
    }

    /// Whether the stream became an event stream or a WebSocket.
    pub fn is_streaming(&self) -> bool {
        matches!(self.mode, Mode::Sse(_) | Mode::Ws(_))
    }

    /// Whether a response closed the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// Bytes written that are not yet a whole head or frame.
    pub fn partial(&self) -> usize {
        self.buf.len()
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        self.buf.extend_from_slice(bytes);
        while self.step() {}
    }

    /// Consumes what it can; returns whether it made progress.
    fn step(&mut self) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        match &mut self.mode {
            Mode::Closed => panic!(
                "{} bytes written after a `Connection: close` response: {:?}",
                self.buf.len(),
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
            ),
            Mode::Sse(parser) => {
                parser.feed(&self.buf);
                self.buf.clear();
                loop {
                    match parser.next_event() {
                        Ok(sse::Decoded::Incomplete) => break,
                        Ok(sse::Decoded::Event(ev)) => {
                            match ev.event_type.as_str() {
                                "message" | "binary" => {
                                    if ev.event_type == "binary" {
                                        check_binary_event(&ev.data);
                                    }
                                    let seq = seq_of(&ev.last_event_id);
                                    assert!(
                                        seq > self.last_sse_seq,
                                        "SSE message {seq} after {}: written twice or out of order",
                                        self.last_sse_seq
                                    );
                                    self.last_sse_seq = seq;
                                }
                                "missed" => {
                                    let n: u64 = ev.data.parse().unwrap_or_else(|_| {
                                        panic!("`missed` data {:?} is not a count", ev.data)
                                    });
                                    assert!(n > 0, "a gap of 0 messages");
                                }
                                "reset" => assert_eq!(ev.data, "true"),
                                other => panic!("unknown SSE event type {other:?}"),
                            }
                            self.sse_events.push(ev);
                        }
                        Err(e) => panic!("the server's event stream does not parse: {e}"),
                    }
                }
                false
            }
            Mode::Ws(proto) => {
                proto.receive_data(&self.buf);
                self.buf.clear();
                loop {
                    match proto.next_event() {
                        Ok(WsEvent::NeedData) => break,
                        Ok(ev) => self.ws_events.push(ev),
                        Err(e) => panic!("the server sent a bad WebSocket frame: {e}"),
                    }
                }
                false
            }
            Mode::Body { left, close } => {
                let (left_now, close) = (*left, *close);
                let take = left_now.min(self.buf.len());
                let body: Vec<u8> = self.buf.drain(..take).collect();
                let last = self.responses.last_mut().expect("a body follows a head");
                last.body.extend_from_slice(&body);
                if take == left_now {
                    self.check_body();
                    self.mode = if close { Mode::Closed } else { Mode::Head };
                } else {
                    self.mode = Mode::Body {
                        left: left_now - take,
                        close,
                    };
                }
                true
            }
            Mode::Head => self.read_head(),
        }
    }

    fn read_head(&mut self) -> bool {
        assert!(
            self.buf.starts_with(&b"HTTP/1.1 "[..self.buf.len().min(9)]),
            "output in HTTP mode does not start with `HTTP/1.1 `: {:?}",
            String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
        );
        let Some(end) = find(&self.buf, b"\r\n\r\n") else {
            assert!(self.buf.len() < 64 * 1024, "a response head over 64 KiB");
            return false;
        };
        let head_len = end + 4;
        let head = self.buf[..head_len].to_vec();
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&head) {
            Ok(httparse::Status::Complete(n)) => assert_eq!(n, head_len),
            other => panic!(
                "response head does not parse ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
        assert_eq!(resp.version, Some(1), "not HTTP/1.1");
        let status = resp.code.expect("complete head has a code");
        assert!((100..=599).contains(&status), "status {status}");
        assert_eq!(
            resp.reason,
            Some(http1::reason(status)),
            "reason phrase of {status}"
        );
        let get = |name: &str| -> Vec<&[u8]> {
            resp.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect()
        };
        let lengths = get("content-length");
        let connection = get("connection");
        let content_type = get("content-type")
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        assert!(
            get("transfer-encoding").is_empty(),
            "pushlab never sends a chunked response"
        );
        let close = connection.iter().any(|v| v.eq_ignore_ascii_case(b"close"));
        // Inexact mode after a HEAD: whether a body follows shows only once
        // the next bytes are here.
        let streams = status == 101 || (status == 200 && content_type == "text/event-stream");
        if !self.exact && self.saw_head && status != 100 && !streams {
            let has_length = lengths.first().is_some_and(|v| v != b"0");
            if has_length && self.buf.len() < head_len + 9 {
                return false;
            }
        }
        self.buf.drain(..head_len);

        if status == 100 {
            self.continues += 1;
            assert!(lengths.is_empty(), "a 100 with a Content-Length");
            return true;
        }
        // A 408 answers the request that was not received in time, if any:
        // never one the session had received in full.
        if status == 408 {
            assert!(close, "a 408 closes the connection");
            if let Some(e) = self.pending.front() {
                // Unless the client left answers unread past the deadline:
                // back-pressure held its request, and the head timeout
                // bounds how long a client that does not read is kept.
                assert!(
                    !self.exact || e.end > self.delivered || self.timed_out_unread,
                    "408 for a request the session had received in full: {:?}",
                    String::from_utf8_lossy(&e.canned.bytes)
                );
            }
        }
        let answers = if self.exact && status != 408 {
            let a = self.pending.pop_front();
            assert!(a.is_some(), "a {status} response to no request");
            a
        } else {
            None
        };
        if let Some(e) = &answers {
            if e.canned.closes && status != 101 {
                assert!(
                    close,
                    "the request asked to close but the {status} response keeps alive: {:?}",
                    String::from_utf8_lossy(&head)
                );
            }
        }
        self.responses.push(Response {
            status,
            close,
            content_type: content_type.clone(),
            body: Vec::new(),
            answers: answers.as_ref().map(|e| e.canned.clone()),
        });

        if status == 101 {
            if let Some(e) = &answers {
                assert_eq!(e.canned.kind, Kind::WebSocket, "101 to a plain request");
            }
            assert!(lengths.is_empty(), "a 101 with a Content-Length");
            self.mode = Mode::Ws(Box::new(Protocol::new(Role::Client, 1 << 24)));
            return true;
        }
        if status == 200 && content_type == "text/event-stream" {
            if let Some(e) = &answers {
                assert_eq!(e.canned.kind, Kind::Events, "an event stream to {e:?}");
            }
            assert!(lengths.is_empty(), "an event stream with a Content-Length");
            assert!(
                close,
                "an event stream ends with the connection: Connection: close"
            );
            self.mode = Mode::Sse(Box::new(sse::Parser::new()));
            return true;
        }
        assert_eq!(
            lengths.len(),
            1,
            "a {status} response needs exactly one Content-Length"
        );
        assert_eq!(
            connection.len(),
            1,
            "a {status} response says Connection once"
        );
        let len: usize = std::str::from_utf8(lengths[0])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("Content-Length {:?}", lengths[0]));
        let head_only = match &answers {
            Some(e) => e.canned.head_only,
            // Inexact: after a HEAD, a body-less response shows as the next
            // head starting right away.
            None => self.saw_head && len > 0 && self.buf.starts_with(b"HTTP/1.1 "),
        };
        if let Some(e) = &answers {
            check_status(&e.canned, status);
        }
        if head_only || len == 0 {
            self.check_body();
            self.mode = if close { Mode::Closed } else { Mode::Head };
        } else {
            self.mode = Mode::Body { left: len, close };
        }
        true
    }

    /// Checks the body of the last response, now complete.
    fn check_body(&mut self) {
        let r = self.responses.last().expect("a response");
        let Some(req) = &r.answers else {
            return;
        };
        if req.head_only || r.status != 200 {
            return;
        }
        match req.kind {
            Kind::Poll | Kind::LongPoll => {
                let v: serde_json::Value = serde_json::from_slice(&r.body)
                    .unwrap_or_else(|e| panic!("poll body is not JSON ({e}): {:?}", r.body));
                let msgs = v["messages"].as_array().expect("`messages` is a list");
                let mut last = 0;
                for m in msgs {
                    let seq = seq_of(m["id"].as_str().expect("message id"));
                    assert!(seq > last, "poll messages out of order");
                    last = seq;
                    assert!(m["topic"].is_string() && m["data"].is_string());
                }
                let next = seq_of(v["next"].as_str().expect("`next` is a string"));
                assert!(next >= last, "`next` before the last message");
                assert!(v["missed"].is_u64() && v["reset"].is_boolean());
            }
            Kind::Publish => {
                let v: serde_json::Value =
                    serde_json::from_slice(&r.body).expect("publish reply is JSON");
                seq_of(v["id"].as_str().expect("publish reply has an id"));
            }
            _ => {}
        }
    }
}

/// The statuses each kind of canned request may get.
fn check_status(req: &Canned, status: u16) {
    let ok = match req.kind {
        Kind::Poll | Kind::LongPoll => status == 200,
        Kind::Publish => matches!(status, 200 | 401 | 413),
        Kind::Events => status == 200,
        // 501 while the WebSocket session is being written; 403 for origins.
        Kind::WebSocket => matches!(status, 101 | 403 | 501),
        Kind::Status(s) => status == s,
    };
    assert!(
        ok,
        "{status} to {:?}",
        String::from_utf8_lossy(&req.bytes[..req.bytes.len().min(120)])
    );
}

fn rank(l: Lifecycle) -> u8 {
    match l {
        Lifecycle::Open => 0,
        Lifecycle::Closing => 1,
        Lifecycle::Lingering => 2,
        Lifecycle::Closed => 3,
    }
}

/// The client's end of the socket, as the engine's [`Io`]: the kernel
/// takes what the client reads and nothing else (`allowance`), and every
/// byte taken goes through the [`Wire`] checker.
pub struct Kernel {
    pub wire: Wire,
    /// Bytes the client reads at the next write attempt (0: refused).
    allowance: usize,
    /// The engine shut the write side.
    write_shut: bool,
    /// The engine closed the socket.
    closed: bool,
    /// Output was left unsent when it closed.
    closed_unsent: bool,
    /// The clock, for the account of write progress.
    now: Instant,
    /// The harness's own account of the send timeout: while output is
    /// queued, the last write attempt that moved bytes, or the first attempt
    /// on a queue that was empty. `None` while nothing is queued.
    progress_at: Option<Instant>,
}

impl Io for Kernel {
    fn write(&mut self, _conn: ConnId, bufs: &[IoSlice<'_>]) -> Written {
        assert!(
            !self.write_shut,
            "output queued after the write side was shut"
        );
        assert!(!self.closed, "written after close");
        let mut take = 0;
        for b in bufs {
            let n = b.len().min(self.allowance - take);
            if n == 0 {
                break;
            }
            self.wire.push(&b[..n]);
            take += n;
        }
        self.allowance = 0;
        if take > 0 || self.progress_at.is_none() {
            self.progress_at = Some(self.now);
        }
        if take == 0 {
            Written::WouldBlock
        } else {
            Written::Bytes(take)
        }
    }

    fn want_writable(&mut self, _conn: ConnId, _on: bool) -> bool {
        true
    }

    fn shutdown_write(&mut self, _conn: ConnId) {
        self.write_shut = true;
    }

    fn close(&mut self, _conn: ConnId, unsent: usize) {
        self.closed = true;
        self.closed_unsent = unsent > 0;
    }
}

/// The engine with one connection, and its client.
pub struct Rig {
    /// The real engine, driven as `server/` drives it.
    pub engine: Engine,
    conn: ConnId,
    pub now: Instant,
    kernel: Kernel,
    /// Client bytes not yet read by the server (it did not want to read).
    backlog: VecDeque<u8>,
    /// Bytes the client has sent in total.
    sent: u64,
    /// The client shut its write side; the server sees it after `backlog`.
    eof_sent: bool,
    eof_delivered: bool,
    /// The engine closed the connection.
    pub closed: bool,
    shutdown: bool,
    lifecycle: Lifecycle,
    /// Every turn in which a deadline was due, for the statistics of a run.
    pub timeouts: u64,
    /// The last bytes sent raw, to spot a `HEAD ` split across sends.
    client_tail: Vec<u8>,
    /// The session closed with output the client had not read (a client
    /// that stops reading is dropped at a timeout: by design).
    pub closed_unread: bool,
}

impl Rig {
    pub fn new(rc: &RigConfig) -> Rig {
        let config = Config {
            // Tracing on, so the trace closures run too.
            trace: true,
            ..rc.to_config()
        };
        let now = Instant::from_millis(1_000);
        let mut engine = Engine::new(config, EPOCH, now);
        let peer = Peer {
            ip: "192.0.2.1".into(),
        };
        let conn = engine
            .handle_accept(now, &peer)
            .expect("room for one connection");
        Rig {
            engine,
            conn,
            now,
            kernel: Kernel {
                wire: Wire::new(),
                allowance: 0,
                write_shut: false,
                closed: false,
                closed_unsent: false,
                now,
                progress_at: None,
            },
            backlog: VecDeque::new(),
            sent: 0,
            eof_sent: false,
            eof_delivered: false,
            closed: false,
            shutdown: false,
            lifecycle: Lifecycle::Open,
            timeouts: 0,
            client_tail: Vec::new(),
            closed_unread: false,
        }
    }

    /// The client's view of what the server wrote.
    pub fn wire(&self) -> &Wire {
        &self.kernel.wire
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        self.engine.stats()
    }

    fn session(&mut self) -> Option<&mut Session> {
        self.engine.session(self.conn)
    }

    /// The client sends raw bytes (the harness can no longer match
    /// responses with requests).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let wire = &mut self.kernel.wire;
        wire.exact = false;
        wire.pending.clear();
        let mut tail = std::mem::take(&mut self.client_tail);
        tail.extend_from_slice(bytes);
        if tail.windows(5).any(|w| w == b"HEAD ") {
            wire.saw_head = true;
        }
        self.client_tail = tail[tail.len().saturating_sub(4)..].to_vec();
        self.send(bytes);
    }

    /// The client sends a canned request, in pieces of at most `piece`
    /// bytes (0: at once), each read by the server as it arrives.
    pub fn send_canned(&mut self, req: Canned, piece: usize) {
        let wire = &mut self.kernel.wire;
        if req.head_only {
            wire.saw_head = true;
        }
        if self.eof_sent {
            return;
        }
        if wire.exact {
            wire.pending.push_back(Expect {
                end: self.sent + req.bytes.len() as u64,
                canned: req.clone(),
            });
        }
        if piece == 0 {
            self.send(&req.bytes);
        } else {
            for p in req.bytes.chunks(piece) {
                self.send(p);
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        if self.eof_sent || self.closed || bytes.is_empty() {
            return;
        }
        self.sent += bytes.len() as u64;
        self.backlog.extend(bytes);
        // New bytes raise a readable edge.
        self.turn(true);
    }

    /// Time passes; due deadlines fire, as the loop fires them.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.kernel.now = self.now;
        if !self.closed {
            let due = self
                .engine
                .deadline(self.conn)
                .is_some_and(|t| t <= self.now);
            if due {
                self.timeouts += 1;
                if self.queued() > 0 {
                    self.kernel.wire.timed_out_unread = true;
                }
            }
        }
        let cuts = self.send_timeouts();
        self.turn(false);
        if self.send_timeouts() > cuts {
            self.check_send_cut();
        }
        if let Some(next) = self.session().and_then(|s| s.next_deadline()) {
            let now = self.now;
            assert!(
                next > now,
                "next_deadline {next:?} is not after now {now:?} after handle_timeout",
            );
        }
        self.check_send_timeout_fired();
    }

    /// Jumps to the connection's armed deadline (if any, and at most `max`
    /// away).
    pub fn advance_to_deadline(&mut self, max: Duration) -> bool {
        match self.engine.deadline(self.conn) {
            Some(d) if !self.closed && d <= self.now + max => {
                self.advance(d.saturating_since(self.now));
                true
            }
            _ => false,
        }
    }

    /// Bytes queued for the client.
    pub fn queued(&mut self) -> usize {
        self.session().map_or(0, |s| s.output().len())
    }

    /// Connections cut by the send timeout (`--send-timeout`).
    pub fn send_timeouts(&self) -> u64 {
        Transport::ALL
            .iter()
            .map(|&t| self.stats().get(t).send_timeouts)
            .sum()
    }

    /// Whether the session cut the connection with answers still queued, by
    /// design: a slow consumer over `--max-queued-bytes`, or a client that
    /// read nothing for `--send-timeout`.
    pub fn cut(&self) -> bool {
        self.send_timeouts() > 0
            || Transport::ALL
                .iter()
                .any(|&t| self.stats().get(t).slow_consumer_cuts > 0)
    }

    /// A send-timeout cut: the client had output to read and read none of
    /// it for `--send-timeout` (a slow but steady reader is never cut).
    fn check_send_cut(&mut self) {
        assert!(
            self.closed_unread,
            "cut by the send timeout with nothing to send"
        );
        let since = self
            .kernel
            .progress_at
            .expect("cut by the send timeout before any write attempt");
        let timeout = self.engine.config().send_timeout;
        assert!(
            self.now >= since + timeout,
            "cut by the send timeout at {:?}, {:?} after the last progress (timeout {timeout:?})",
            self.now,
            self.now.saturating_since(since)
        );
    }

    /// Once the clock has passed `--send-timeout` after the last progress,
    /// a connection with output queued is gone.
    fn check_send_timeout_fired(&mut self) {
        if self.closed {
            return;
        }
        if let Some(since) = self.kernel.progress_at {
            let timeout = self.engine.config().send_timeout;
            assert!(
                self.now < since + timeout,
                "{} bytes unread for {:?} (send timeout {timeout:?}) and the connection is open",
                self.queued(),
                self.now.saturating_since(since)
            );
        }
    }

    /// Another client publishes `data` on `topic`.
    pub fn publish(&mut self, topic: &str, data: &str) {
        self.publish_kind(topic, MessageKind::Text, data);
    }

    /// Another client publishes the bytes `data` on `topic`, as a binary
    /// message.
    pub fn publish_binary(&mut self, topic: &str, data: &[u8]) {
        self.publish_kind(
            topic,
            MessageKind::Binary,
            &pushlab::hub::encode_binary(data),
        );
    }

    fn publish_kind(&mut self, topic: &str, kind: MessageKind, data: &str) {
        let _ = self
            .engine
            .handle_publish(self.now, topic, kind, data, &mut self.kernel);
        self.after_call();
        self.turn(false);
    }

    /// One write attempt of the server: the kernel takes at most `n` bytes,
    /// the ones the client reads (0: the write is refused, `WouldBlock`).
    pub fn write(&mut self, n: usize) {
        if self.closed || self.queued() == 0 {
            return;
        }
        self.kernel.allowance = n;
        self.engine.handle_writable(self.conn);
        self.turn(false);
    }

    /// Writes everything queued, including what the session queues when
    /// told the queue is empty (the loop writes that on its next turn).
    pub fn write_all(&mut self) {
        for _ in 0..1000 {
            if self.closed || self.queued() == 0 {
                return;
            }
            self.write(usize::MAX);
        }
        panic!("the output never drains");
    }

    /// The client shuts its write side.
    pub fn eof(&mut self) {
        if self.eof_sent {
            return;
        }
        self.eof_sent = true;
        // The FIN raises a readable edge.
        self.turn(true);
    }

    /// The server shuts down.
    pub fn shutdown(&mut self) {
        if self.closed {
            return;
        }
        self.shutdown = true;
        self.engine.handle_shutdown(self.now, &mut self.kernel);
        self.after_call();
        self.turn(false);
    }

    /// Loop turns, as `server/mod.rs` runs them, until the engine asks for
    /// none at once: read (on an edge, or when the engine lists the
    /// connection as unread), fire due deadlines, write what is pending.
    fn turn(&mut self, mut edge: bool) {
        for _ in 0..10_000 {
            if edge {
                self.read();
            }
            edge = self.engine.take_unread().contains(&self.conn);
            if edge {
                self.read();
            }
            self.engine.handle_timeout(self.now, &mut self.kernel);
            self.after_call();
            self.engine.end_turn(self.now, &mut self.kernel);
            self.after_call();
            // Nothing due at once: the loop would wait in `poll`.
            if self.engine.poll_at() != Some(Instant::ZERO) {
                return;
            }
            edge = false;
        }
        panic!("the engine keeps producing work without input");
    }

    /// Reads the client's bytes as `read_conn` does: until `WouldBlock`,
    /// only while the engine wants to, at most [`READ_CHUNK`] at a time.
    fn read(&mut self) {
        for _ in 0..16 {
            if self.closed {
                return;
            }
            if !self.engine.wants_read(self.conn) {
                return self.engine.handle_read_stopped(self.conn, false);
            }
            if !self.backlog.is_empty() {
                let n = self.backlog.len().min(READ_CHUNK);
                let chunk: Vec<u8> = self.backlog.drain(..n).collect();
                self.kernel.wire.delivered += n as u64;
                let (now, conn) = (self.now, self.conn);
                self.engine
                    .handle_read(now, conn, &chunk, false, &mut self.kernel);
                self.after_call();
                continue;
            }
            if self.eof_sent {
                self.eof_delivered = true;
                let (now, conn) = (self.now, self.conn);
                self.engine.handle_eof(now, conn, &mut self.kernel);
                return self.after_call();
            }
            return self.engine.handle_read_drained(self.conn);
        }
        self.engine.handle_read_stopped(self.conn, true);
    }

    /// After every engine call: note a close, keep the account of write
    /// progress, and check the invariants.
    fn after_call(&mut self) {
        if self.kernel.closed && !self.closed {
            self.closed = true;
            self.closed_unread = self.kernel.closed_unsent;
            assert!(
                self.session().is_none(),
                "the engine closed the socket and kept the session"
            );
        }
        if self.closed {
            self.check_holds();
            return;
        }
        if self.queued() == 0 {
            self.kernel.progress_at = None;
        }
        self.check();
    }

    /// Invariants that hold after every call.
    fn check(&mut self) {
        let Some(s) = self.session() else {
            return;
        };
        let now = s.lifecycle();
        let queued = s.output().len();
        assert!(
            rank(now) >= rank(self.lifecycle),
            "lifecycle went back from {:?} to {now:?}",
            self.lifecycle
        );
        self.lifecycle = now;
        let max = self.engine.config().max_queued_bytes;
        assert!(
            queued <= max + QUEUE_SLACK,
            "{queued} bytes queued, limit {max}"
        );
        if self.kernel.write_shut {
            assert_eq!(queued, 0, "output queued after the write side was shut");
        }
        self.check_holds();
    }

    /// Every long-poll hold ends exactly one way.
    fn check_holds(&self) {
        let c = self.stats().get(Transport::LongPoll);
        assert!(
            c.holds_active <= 1,
            "{} holds on one connection",
            c.holds_active
        );
        assert_eq!(
            c.holds_started,
            c.holds_released_by_message
                + c.holds_released_by_timeout
                + c.holds_dropped_by_client
                + c.holds_active,
            "a hold ended twice or not at all: {c:?}"
        );
        if self.closed {
            assert_eq!(c.holds_active, 0, "a hold outlived its connection");
        }
    }

    /// Lets the run come to rest: the client reads everything, time passes
    /// until nothing is due (holds released, idle connections closed), and
    /// the end-of-run invariants are checked.
    pub fn finish(&mut self) {
        for _ in 0..200 {
            self.write_all();
            if self.closed {
                break;
            }
            if !self.advance_to_deadline(Duration::from_secs(3600)) {
                break;
            }
        }
        self.write_all();
        // Nothing stays queued once the client reads everything.
        if !self.closed {
            assert_eq!(self.queued(), 0);
        }
        // A slow consumer, or a client that stopped reading, is cut, queued
        // answers and all (by design).
        let cut = self.cut();
        let wire = &self.kernel.wire;
        if !wire.saw_head && !self.closed_unread && !cut {
            assert_eq!(wire.partial(), 0, "the output ends inside a response head");
        }
        if !wire.exact || wire.is_streaming() || wire.is_closed() {
            return;
        }
        if self.closed && (self.eof_delivered || self.shutdown || self.closed_unread) {
            return;
        }
        if cut {
            return;
        }
        // Keep-alive, not streaming, time run out: every request the session
        // received was answered, once, in order.
        let lifecycle = self.lifecycle;
        assert_eq!(
            wire.unanswered_delivered(),
            0,
            "requests received but never answered (closed: {}, lifecycle {lifecycle:?})",
            self.closed,
        );
    }
}

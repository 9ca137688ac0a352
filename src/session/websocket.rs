//! WebSockets on a session, [RFC 6455](https://www.rfc-editor.org/rfc/rfc6455):
//! `GET /ws?topic=T[,U…]&since=…` (pub/sub) and `GET /echo`. The codec in
//! [`crate::wire::websocket`] decodes and encodes; this file decides what a
//! connection does with each event and when it ends (docs/websocket.md walks
//! through a captured session).
//!
//! The life of a connection:
//! 1. The opening handshake (§4.2): `validate_request`, then the origin
//!    policy (§10.2, `--allow-origin`; none = same origin only) → `101`, or
//!    the error status (`426` with `Sec-WebSocket-Version: 13`, `405` with
//!    `Allow: GET`, `400`, `403`) with the connection kept as for any other
//!    well-framed request. Bytes the client pipelined behind its head are
//!    the first frames.
//! 2. On `/ws`: subscribe, then the resume notices and the replay after
//!    `since` (`{"reset":true}`, `{"missed":N}`, then the kept messages), then
//!    live messages. Each message is one text frame holding its JSON object,
//!    encoded once per message ([`encoded::ws_frame`]) and shared by every
//!    subscriber: fan-out is a refcount bump.
//! 3. Frames in: on `/echo` every text or binary message comes back with the
//!    same opcode; on `/ws` a text message is published (rules below) and a
//!    binary one closes with 1003. A ping is answered with a pong (§5.5.2).
//! 4. Liveness: a ping every `--ws-ping`; at the next tick, a peer that sent
//!    nothing at all since the previous ping (neither its pong nor any other
//!    frame) is closed with 1011 "ping timeout".
//! 5. The closing handshake (§7): whoever closes first, the connection ends
//!    in [`Lifecycle::Closing`]: our close frame is flushed, the server shuts
//!    its write side (§7.1.1: "the server SHOULD close the underlying TCP
//!    connection first") and drains the client for [`super::LINGER`] while
//!    its close frame and FIN arrive. A close that cannot be flushed within
//!    [`CLOSE_TIMEOUT`] drops the connection.
//!
//! House rules:
//! - Publishing on `/ws`: with one topic, the text is the message. With
//!   several, the text must be `{"topic":"T","data":"D"}` with T one of the
//!   connection's topics; anything else closes with 1008. A client may
//!   publish when no credential is configured, when its handshake carried
//!   `Authorization: Bearer <publish token>`, or with a key configured when
//!   the token of its handshake (header, cookie or, if allowed, query)
//!   grants the topic and has not expired; otherwise its text closes with
//!   1008 and a reason naming the problem. A message over `--max-message`
//!   closes with 1009.
//! - A `/ws` connection opened with a token (some topic was not public)
//!   lasts as long as the token: at its `exp` plus `--jwt-leeway` the
//!   server starts the closing handshake with [`TOKEN_EXPIRED`] (4401,
//!   reason "token expired"). The client reconnects with a fresh token and
//!   `since` = the last id it received, and misses nothing.
//! - No message is sent twice: the connection remembers the last sequence
//!   number it sent, and a live message at or below it is skipped.
//! - Two limits on output. Bytes the peer causes (echoes, pongs) are
//!   *back-pressure*: past `--max-queued-bytes` queued, the server stops
//!   reading the peer until its queue is flushed. Bytes other publishers
//!   cause (fan-out) make a *slow consumer*: past `--max-queued-bytes`
//!   queued after the replay, the connection is dropped at once (it can
//!   resume with `since`). The replay is exempt, as for SSE.
//! - `/stats` counts `frames_in`/`frames_out` per message and per control
//!   frame (a fragmented message counts once: the codec hands over whole
//!   messages), and one close code per connection: the code of the close
//!   frame that started the closing handshake, 1005 for an empty one, 1006
//!   when the connection ended without any.
//!
//! - Compression (RFC 7692 permessage-deflate, on unless `--ws-deflate
//!   off`): the handshake answers the first acceptable offer
//!   (`wire::websocket::deflate`), always with `server_no_context_takeover`.
//!   A message's compressed frame is then one more shared form of it
//!   ([`encoded::ws_deflate_frame`]), compressed once for every subscriber
//!   that negotiated compression; messages under `--ws-deflate-threshold`
//!   bytes, and messages compression does not shrink, go uncompressed.
//!   Compressed client messages are inflated by the codec, with
//!   `--max-message` / `--ws-max-message` on the inflated size; on `/echo`
//!   every echo goes back compressed, whatever its size. `/stats` counts compressed frames out with
//!   their payload bytes before and after, and compressed messages in.
//!
//! Not implemented: other extensions (§9), subprotocols
//! (`Sec-WebSocket-Protocol`, §1.9), `wss://`.

use std::rc::Rc;
use std::time::Duration;

use super::auth::{self, PublishRight};
use super::encoded;
use super::routing::Route;
use super::subscription::Subscription;
use super::{Ctx, Lifecycle, Refusal, Session, State};
use crate::hub::{encode_binary, Batch, HubError, Kind, Message, Notice};
use crate::stats::Transport;
use crate::timers::Instant;
use crate::wire::envelope;
use crate::wire::http1::{RequestHead, Version};
use crate::wire::query::Query;
use crate::wire::websocket::deflate::{negotiate, Agreed, DeflatePolicy};
use crate::wire::websocket::{
    encode_frame, encode_header, encode_response_with_extensions, origin_allowed, validate_request,
    CloseCode, DataOpcode, Event, FrameHeader, Opcode, Protocol, ProtocolError, Role,
};

/// How long our close frame may take to be flushed before the connection is
/// dropped; after the flush, [`super::LINGER`] bounds the wait for the
/// peer's close (RFC 6455 §7.1.1 leaves both to the server).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The close code of a `/ws` connection whose token expired. RFC 6455
/// §7.4.2 leaves 4000–4999 to applications; 4401 reads as HTTP's `401`
/// (the same request made now would get it), as in other WebSocket
/// protocols that close for authorization. It tells a client to fetch a
/// fresh token before reconnecting, where 1008 (a publish refused) means
/// the request itself is wrong. Documented in docs/security.md and
/// docs/websocket.md.
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4401);

/// The reason sent with [`TOKEN_EXPIRED`].
pub const TOKEN_EXPIRED_REASON: &str = "token expired";

const TEXT: Opcode = Opcode::Data(DataOpcode::Text);
const BINARY: Opcode = Opcode::Data(DataOpcode::Binary);

/// An echoed payload shorter than this is copied behind its frame header;
/// a longer one is queued as it is, so its bytes are never copied (a copy
/// of a few KiB costs less than a second allocation and iovec).
const COPY_PAYLOAD_BELOW: usize = 4 * 1024;

/// What the connection is for.
#[derive(Debug)]
enum Mode {
    /// `/echo`: every data message comes back.
    Echo,
    /// `/ws`: messages of the subscription's topics go out; text coming in
    /// is published.
    PubSub {
        sub: Subscription,
        /// What its text messages may publish to (see `session/auth.rs`).
        publish: PublishRight,
    },
}

/// A WebSocket connection after the handshake.
#[derive(Debug)]
pub struct WsConn {
    mode: Mode,
    protocol: Protocol,
    /// permessage-deflate's agreed parameters, when it was negotiated.
    deflate: Option<Agreed>,
    /// When the next ping is due; `None` when pings are off or closing.
    next_ping: Option<Instant>,
    /// The unanswered ping: when it was sent (also its payload).
    ping_sent_at: Option<Instant>,
    /// Bytes arrived since the last ping was sent.
    heard: bool,
    /// Set once we are closing: past it the connection is dropped.
    close_deadline: Option<Instant>,
    /// The code of the close frame that started the closing handshake.
    close_code: Option<u16>,
    /// When the token the connection was opened with expires (`/ws` with a
    /// token only); cleared once closing.
    token_expiry: Option<Instant>,
    /// Output queued past which the peer is no longer read.
    backpressure_at: usize,
    /// Bytes queued by the handshake and the replay (exempt from the
    /// slow-consumer limit), and over the connection's life.
    initial_bytes: u64,
    queued_total: u64,
}

impl WsConn {
    /// Bytes held by the message being reassembled.
    pub fn assembling_bytes(&self) -> usize {
        self.protocol.assembling_bytes()
    }

    /// The earliest of the next ping, the closing deadline and the token's
    /// expiry.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.next_ping, self.close_deadline, self.token_expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the peer should be read, with `queued` bytes not yet written.
    pub fn wants_read(&self, queued: usize) -> bool {
        queued < self.backpressure_at
    }

    /// Bytes queued after the initial ones, given `pending` bytes not yet
    /// written: whatever was written went out in order, initial bytes first.
    fn live_backlog(&self, pending: usize) -> usize {
        let written = self.queued_total.saturating_sub(pending as u64);
        let initial_left = self.initial_bytes.saturating_sub(written);
        pending.saturating_sub(initial_left as usize)
    }
}

/// `{"missed":N}` / `{"reset":true}` as text frames, reset first.
fn encode_notices(batch: &Batch, out: &mut Vec<u8>) -> u64 {
    let mut frames = 0;
    if batch.reset {
        encode_frame(TEXT, true, b"{\"reset\":true}", out);
        frames += 1;
    }
    if batch.missed > 0 {
        let json = format!("{{\"missed\":{}}}", batch.missed);
        encode_frame(TEXT, true, json.as_bytes(), out);
        frames += 1;
    }
    frames
}

/// Topic and data of a message published on a multi-topic connection:
/// `{"topic":"T","data":"D"}` with T among `topics`.
fn parse_publish(text: &str, topics: &[Rc<str>]) -> Option<(Rc<str>, String)> {
    let serde_json::Value::Object(mut obj) = serde_json::from_str(text).ok()? else {
        return None;
    };
    let serde_json::Value::String(data) = obj.remove("data")? else {
        return None;
    };
    let topic = obj.get("topic")?.as_str()?;
    let topic = topics.iter().find(|t| &***t == topic)?.clone();
    Some((topic, data))
}

/// A short description of an event for the trace.
/// The frame carrying `msg` on a connection: its shared compressed form
/// when the connection negotiated compression and the message is not under
/// the threshold, else its shared plain form.
fn message_frame(msg: &Message, deflate: Option<&Agreed>, ctx: &mut Ctx) -> Rc<[u8]> {
    let Some(agreed) = deflate else {
        return encoded::ws_frame(msg);
    };
    let before = encoded::ws_payload_len(msg);
    if before < ctx.config.ws_deflate_threshold {
        return encoded::ws_frame(msg);
    }
    let frame = encoded::ws_deflate_frame(msg, agreed.server_max_window_bits, ctx.deflate);
    if super::deflate::is_compressed(&frame) {
        count_deflate(ctx, before, &frame);
    }
    frame
}

/// Counts one compressed frame sent, of `before` payload bytes.
fn count_deflate(ctx: &mut Ctx, before: usize, frame: &[u8]) {
    let c = ctx.stats.of(Transport::Ws);
    c.deflate_frames_out += 1;
    c.deflate_bytes_before += before as u64;
    c.deflate_bytes_after += super::deflate::payload_len(frame) as u64;
}

fn describe(event: &Event) -> (&'static str, usize) {
    match event {
        Event::Text(s) => ("text", s.len()),
        Event::Binary(b) => ("binary", b.len()),
        Event::Ping(p) => ("ping", p.len()),
        Event::Pong(p) => ("pong", p.len()),
        Event::Close { code, reason } => ("close", code.map_or(0, |_| 2 + reason.len())),
        Event::NeedData => ("", 0),
    }
}

impl Session {
    /// `GET /ws` and `GET /echo`: the opening handshake.
    pub(super) fn start_websocket(
        &mut self,
        route: Route,
        head: &RequestHead,
        query: &Query,
        ctx: &mut Ctx,
    ) {
        self.count_request(Transport::Ws, ctx);
        let close = !head.keep_alive;
        let is_http11 = head.version == Version::Http11;
        let handshake = match validate_request(head.method.as_str(), is_http11, head.header_pairs())
        {
            Ok(h) => h,
            Err(e) => {
                return self.refuse(e.into(), close, ctx);
            }
        };
        // RFC 6455 §10.2: the server decides which origins may connect; a
        // page of another site must not ride on the user's cookies.
        let origin = handshake.origin.as_deref();
        if !origin_allowed(origin, handshake.host.as_deref(), &ctx.config.allow_origins) {
            let why = format!(
                "origin {} may not open a WebSocket here (see --allow-origin)",
                String::from_utf8_lossy(origin.unwrap_or_default())
            );
            return self.refuse(Refusal::new(403, why), close, ctx);
        }
        let (mode, batch, resumed) = match route {
            Route::Ws => match self.ws_subscribe(head, query, ctx) {
                Ok(v) => v,
                Err(refusal) => return self.refuse(refusal, close, ctx),
            },
            _ => (Mode::Echo, Batch::default(), false),
        };

        // RFC 7692 §5: the first acceptable permessage-deflate offer.
        let deflate = ctx.config.ws_deflate.then(|| {
            let offers = head
                .header_pairs()
                .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
                .map(|(_, value)| value);
            negotiate(offers, &DeflatePolicy::default())
        });
        let deflate = deflate.flatten();
        let mut extensions = Vec::new();
        if let Some(agreed) = &deflate {
            agreed.response_value(&mut extensions);
        }
        let mut first = Vec::with_capacity(160 + extensions.len());
        let extensions = deflate.is_some().then_some(extensions.as_slice());
        encode_response_with_extensions(&handshake.accept, extensions, &mut first);
        let notices = encode_notices(&batch, &mut first);
        let mut queued = first.len();
        self.out.push_owned(first);
        for m in &batch.messages {
            let frame = message_frame(m, deflate.as_ref(), ctx);
            queued += frame.len();
            self.out.push_shared(&frame);
        }
        let c = ctx.stats.of(Transport::Ws);
        c.frames_out += notices + batch.messages.len() as u64;
        c.messages_delivered += batch.messages.len() as u64;
        c.resumes += u64::from(resumed);
        c.gaps_reported += u64::from(batch.missed > 0);
        c.resets_reported += u64::from(batch.reset);
        let (id, t) = (self.serial, self.transport);
        let compressed = if deflate.is_some() { " deflate" } else { "" };
        ctx.trace(id, t, "response", queued, || match &mode {
            Mode::Echo => format!("101 websocket echo{compressed}"),
            Mode::PubSub { sub, .. } => format!(
                "101 websocket topics={} replay={} missed={} reset={}{compressed}",
                sub.topics().len(),
                batch.messages.len(),
                batch.missed,
                batch.reset
            ),
        });

        let max_message = match mode {
            Mode::Echo => ctx.config.ws_max_message,
            Mode::PubSub { .. } => ctx.config.ws_max_message.min(ctx.config.max_message),
        };
        let ping = ctx.config.ws_ping;
        let mut protocol = Protocol::new(Role::Server, max_message);
        if let Some(agreed) = &deflate {
            protocol.enable_deflate(agreed);
        }
        let conn = WsConn {
            mode,
            protocol,
            deflate,
            next_ping: (!ping.is_zero()).then(|| ctx.now + ping),
            ping_sent_at: None,
            heard: false,
            close_deadline: None,
            close_code: None,
            // None on `/echo` and on `/ws` with public topics only: no
            // token was needed.
            token_expiry: self.token_expiry(ctx),
            backpressure_at: ctx.config.max_queued_bytes,
            initial_bytes: queued as u64,
            queued_total: queued as u64,
        };
        // The HTTP exchange is over: what follows the head is frames.
        let pipelined = std::mem::take(&mut self.input);
        self.answered += 1;
        self.idle_deadline = None;
        self.state = State::WebSocket(Box::new(conn));
        if !pipelined.is_empty() {
            self.ws_input(&pipelined, ctx);
        }
    }

    /// `/ws` parameters: subscribe to the topics and read the replay.
    /// Returns the mode, the replay, and whether a cursor was given.
    fn ws_subscribe(
        &mut self,
        head: &RequestHead,
        query: &Query,
        ctx: &mut Ctx,
    ) -> Result<(Mode, Batch, bool), Refusal> {
        let topics = query.topics()?;
        let cursor = query.cursor("since")?;
        let mut sub = Subscription::join(ctx.hub, self.id, topics)?;
        // Subscribed and read in the same call: nothing is published in
        // between, so the replay and the live messages meet exactly.
        let batch = sub.read_backlog(ctx.hub, cursor.as_ref(), ctx.now);
        let publish = auth::ws_publish_right(head, query, self.grants.as_deref(), ctx);
        let mode = Mode::PubSub { sub, publish };
        Ok((mode, batch, cursor.is_some()))
    }

    /// Bytes read from a WebSocket.
    pub(super) fn ws_input(&mut self, data: &[u8], ctx: &mut Ctx) {
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        conn.heard = true;
        conn.protocol.receive_data(data);
        ctx.stats.of(Transport::Ws).deflate_messages_in += conn.protocol.take_compressed_count();
        while self.lifecycle == Lifecycle::Open {
            let State::WebSocket(conn) = &mut self.state else {
                return;
            };
            match conn.protocol.next_event() {
                Ok(Event::NeedData) => return,
                Ok(event) => self.ws_event(event, ctx),
                Err(err) => return self.ws_fail(err, ctx),
            }
        }
    }

    fn ws_event(&mut self, event: Event, ctx: &mut Ctx) {
        let (kind, len) = describe(&event);
        ctx.stats.of(Transport::Ws).frames_in += 1;
        let (id, t) = (self.serial, self.transport);
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        let is_echo = matches!(conn.mode, Mode::Echo);
        match event {
            Event::Text(text) => {
                ctx.trace(id, t, "frame", len, || format!("in {kind}"));
                if is_echo {
                    self.ws_send_data(TEXT, text.into_bytes(), ctx);
                } else {
                    self.ws_publish(text, ctx);
                }
            }
            Event::Binary(data) => {
                ctx.trace(id, t, "frame", len, || format!("in {kind}"));
                if is_echo {
                    self.ws_send_data(BINARY, data, ctx);
                } else {
                    self.ws_publish_binary(data, ctx);
                }
            }
            Event::Ping(payload) => {
                ctx.trace(id, t, "frame", len, || format!("in {kind}"));
                // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an
                // endpoint MUST send a Pong frame in response".
                let mut out = Vec::new();
                conn.protocol.send_pong(&payload, &mut out);
                self.ws_push_control(out, "pong", ctx);
            }
            Event::Pong(payload) => {
                ctx.stats.of(Transport::Ws).pongs_received += 1;
                // A pong echoes our ping's payload: the time it was sent.
                let rtt = conn
                    .ping_sent_at
                    .filter(|at| payload == at.as_micros().to_be_bytes())
                    .map(|at| ctx.now - at);
                if rtt.is_some() {
                    conn.ping_sent_at = None;
                }
                ctx.trace(id, t, "frame", len, || match rtt {
                    Some(rtt) => format!("in pong rtt_us={}", rtt.as_micros()),
                    None => "in pong".into(),
                });
            }
            // The trace shows the code only: the reason is the peer's own text.
            Event::Close { code, .. } => {
                let wire = code.map_or(CloseCode::NO_STATUS.0, |c| c.0);
                ctx.trace(id, t, "frame", len, || format!("in close {wire}"));
                conn.close_code.get_or_insert(wire);
                // RFC 6455 §5.5.1: the endpoint "MUST send a Close frame in
                // response", typically "echoing the status code it received".
                // After our own close this sends nothing: the handshake is done.
                let mut out = Vec::new();
                conn.protocol.send_close(code, "", &mut out);
                if !out.is_empty() {
                    self.ws_push_control(out, &format!("close {wire}"), ctx);
                }
                self.ws_closing(ctx);
            }
            Event::NeedData => {}
        }
    }

    /// A text message on `/ws`: publish it to the connection's topic.
    fn ws_publish(&mut self, text: String, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &self.state else {
            return;
        };
        let Mode::PubSub { sub, .. } = &conn.mode else {
            return;
        };
        let topics = sub.topics();
        let (topic, data) = match topics {
            [one] => (one.clone(), text),
            _ => match parse_publish(&text, topics) {
                Some(v) => v,
                None => {
                    let why = "with several topics send {\"topic\":T,\"data\":D}, T subscribed";
                    return self.ws_close_first(CloseCode::POLICY, why, ctx);
                }
            },
        };
        self.ws_append(topic, Kind::Text, &data, ctx);
    }

    /// A binary message on `/ws`: publish its bytes to the connection's
    /// topic, or with several topics to the one its envelope names
    /// (`wire::envelope`, as the server sends them).
    fn ws_publish_binary(&mut self, payload: Vec<u8>, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &self.state else {
            return;
        };
        let Mode::PubSub { sub, .. } = &conn.mode else {
            return;
        };
        let topics = sub.topics();
        let (topic, data) = match topics {
            [one] => (one.clone(), encode_binary(&payload)),
            _ => {
                let opened = match envelope::decode(&payload) {
                    Ok(opened) => opened,
                    Err(e) => return self.ws_close_first(CloseCode::POLICY, &e.to_string(), ctx),
                };
                let Some(topic) = topics.iter().find(|t| ***t == *opened.topic) else {
                    let why = "the envelope's topic is not one of the connection's";
                    return self.ws_close_first(CloseCode::POLICY, why, ctx);
                };
                (topic.clone(), encode_binary(opened.data))
            }
        };
        self.ws_append(topic, Kind::Binary, &data, ctx);
    }

    /// Appends a message the client sent, if it may publish to `topic`.
    fn ws_append(&mut self, topic: Rc<str>, kind: Kind, data: &str, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &self.state else {
            return;
        };
        let Mode::PubSub { publish, .. } = &conn.mode else {
            return;
        };
        if let Err(why) = publish.check(&topic, ctx.unix_secs()) {
            return self.ws_close_first(CloseCode::POLICY, why, ctx);
        }
        match ctx.hub.append(&topic, kind, data, ctx.now) {
            // Fanned out, to this connection too if it subscribes, when it
            // commits; only a failure comes back here (`ws_commit`).
            Ok(ticket) => ctx.appended.push(ticket),
            Err(e) => self.ws_publish_failed(&e, ctx),
        }
    }

    /// A message this connection published committed, or failed to.
    pub(super) fn ws_commit(&mut self, outcome: &Result<Rc<Message>, HubError>, ctx: &mut Ctx) {
        match outcome {
            Ok(_) => ctx.stats.messages_published += 1,
            Err(e) => self.ws_publish_failed(e, ctx),
        }
    }

    /// The log refused a message: the client learns it from the close code,
    /// `1013` (try again later) when the log is busy or unreachable, `1011`
    /// otherwise, and reconnects with its cursor.
    fn ws_publish_failed(&mut self, e: &HubError, ctx: &mut Ctx) {
        let code = match e {
            HubError::Unavailable { .. } | HubError::TooManyTopics => CloseCode::TRY_AGAIN_LATER,
            HubError::InvalidTopic | HubError::StorageFull => CloseCode::INTERNAL,
        };
        self.ws_close_first(code, "publish failed", ctx)
    }

    /// Queues one unfragmented data frame: a small `payload` is copied
    /// behind its header (one allocation, one iovec), a large one is moved
    /// (no copy).
    fn ws_send_data(&mut self, opcode: Opcode, payload: Vec<u8>, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        // RFC 6455 §5.5.1: after a Close frame, no more data frames.
        if conn.protocol.is_close_sent() {
            return;
        }
        if let Some(agreed) = conn.deflate {
            // Echoes are the peer's own messages: when it negotiated
            // compression, every echo goes back compressed (what conformance
            // suites compare), whatever its size.
            {
                let data = if opcode == TEXT {
                    DataOpcode::Text
                } else {
                    DataOpcode::Binary
                };
                let bits = agreed.server_max_window_bits;
                if let Some(frame) = ctx.deflate.frame(data, &payload, bits, false) {
                    let n = frame.len();
                    conn.queued_total += n as u64;
                    count_deflate(ctx, payload.len(), &frame);
                    self.out.push_owned(frame);
                    ctx.stats.of(Transport::Ws).frames_out += 1;
                    ctx.trace(self.serial, self.transport, "frame", n, || {
                        "out compressed".into()
                    });
                    return;
                }
            }
        }
        let header = FrameHeader::new(opcode, true, None, payload.len() as u64);
        let n = header.encoded_len() + payload.len();
        conn.queued_total += n as u64;
        if payload.len() < COPY_PAYLOAD_BELOW {
            let mut frame = Vec::with_capacity(n);
            encode_header(&header, &mut frame);
            frame.extend_from_slice(&payload);
            self.out.push_owned(frame);
        } else {
            let mut head = Vec::with_capacity(header.encoded_len());
            encode_header(&header, &mut head);
            self.out.push_owned(head);
            self.out.push_owned(payload);
        }
        ctx.stats.of(Transport::Ws).frames_out += 1;
        let kind = if opcode == TEXT { "text" } else { "binary" };
        ctx.trace(self.serial, self.transport, "frame", n, || {
            format!("out {kind}")
        });
    }

    /// Queues a control frame the codec encoded.
    fn ws_push_control(&mut self, frame: Vec<u8>, what: &str, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        if frame.is_empty() {
            return;
        }
        let n = frame.len();
        conn.queued_total += n as u64;
        self.out.push_owned(frame);
        ctx.stats.of(Transport::Ws).frames_out += 1;
        ctx.trace(self.serial, self.transport, "frame", n, || {
            format!("out {what}")
        });
    }

    /// The peer broke a rule: close with the rule's code (the caller's
    /// contract on [`Protocol`], item 5).
    /// `--assembly-memory` is spent: the message being assembled is
    /// dropped and the connection closed with 1013 (IANA: "Try Again
    /// Later"), which tells the peer the server is overloaded rather than
    /// that its message broke a rule (1009 would say it is too big for
    /// good, and a well-behaved client would not retry it).
    pub(super) fn ws_refuse_message(&mut self, why: &str, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        conn.protocol.abandon_message();
        self.ws_close_first(CloseCode::TRY_AGAIN_LATER, why, ctx);
    }

    fn ws_fail(&mut self, err: ProtocolError, ctx: &mut Ctx) {
        self.ws_close_first(err.close_code(), &err.to_string(), ctx);
    }

    /// We start the closing handshake with `code`.
    fn ws_close_first(&mut self, code: CloseCode, reason: &str, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        if !conn.protocol.is_close_sent() {
            conn.close_code.get_or_insert(code.0);
            let mut out = Vec::new();
            conn.protocol.send_close(Some(code), reason, &mut out);
            self.ws_push_control(out, &format!("close {code}"), ctx);
        }
        self.ws_closing(ctx);
    }

    /// Both close frames are queued or ours is: flush, then half-close.
    fn ws_closing(&mut self, ctx: &mut Ctx) {
        if let State::WebSocket(conn) = &mut self.state {
            conn.next_ping = None;
            conn.token_expiry = None;
            conn.close_deadline = Some(ctx.now + CLOSE_TIMEOUT);
        }
        if self.lifecycle == Lifecycle::Open {
            self.lifecycle = Lifecycle::Closing;
        }
    }

    /// A message was published on one of the connection's topics.
    pub(super) fn ws_message(&mut self, msg: &Rc<Message>, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        let Mode::PubSub { sub, .. } = &mut conn.mode else {
            return;
        };
        // The connection is closing, or the message was already sent in the
        // replay.
        if conn.protocol.is_close_sent() || !sub.take_new(msg) {
            return;
        }
        let frame = message_frame(msg, conn.deflate.as_ref(), ctx);
        conn.queued_total += frame.len() as u64;
        self.out.push_shared(&frame);
        let backlog = conn.live_backlog(self.out.len());
        let c = ctx.stats.of(Transport::Ws);
        c.frames_out += 1;
        c.messages_delivered += 1;
        let n = frame.len();
        ctx.trace(self.serial, self.transport, "frame", n, || {
            format!("out {} {}", msg.kind.as_str(), msg.id)
        });
        if backlog > ctx.config.max_queued_bytes {
            self.handle_overflow(ctx);
        }
    }

    /// A break in the log's continuity (`Session::handle_notice`):
    /// `{"reset":true}` or `{"missed":N}`, as after a `since`.
    pub(super) fn ws_notice(&mut self, notice: &Notice, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        let Mode::PubSub { sub, .. } = &mut conn.mode else {
            return;
        };
        if conn.protocol.is_close_sent() {
            return;
        }
        let mut frame = Vec::with_capacity(32);
        let c = ctx.stats.of(Transport::Ws);
        match notice {
            Notice::Reset { .. } => {
                // Nothing of the new epoch was sent yet.
                sub.restart();
                encode_frame(TEXT, true, b"{\"reset\":true}", &mut frame);
                c.resets_reported += 1;
            }
            Notice::Missed { count, .. } => {
                let json = format!("{{\"missed\":{count}}}");
                encode_frame(TEXT, true, json.as_bytes(), &mut frame);
                c.gaps_reported += 1;
            }
        }
        c.frames_out += 1;
        let n = frame.len();
        conn.queued_total += n as u64;
        self.out.push_owned(frame);
        let backlog = conn.live_backlog(self.out.len());
        ctx.trace(self.serial, self.transport, "notice", n, || {
            format!("{notice:?}")
        });
        if backlog > ctx.config.max_queued_bytes {
            self.handle_overflow(ctx);
        }
    }

    /// The connection's deadline passed: the closing handshake took too
    /// long, the token expired, or a ping is due (or the peer missed the
    /// last one).
    pub(super) fn ws_timeout(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        let (id, t) = (self.serial, self.transport);
        let State::WebSocket(conn) = &mut self.state else {
            return;
        };
        if conn.close_deadline.is_some_and(|at| now >= at) {
            conn.close_deadline = None;
            ctx.trace(id, t, "timeout", 0, || "websocket closing handshake".into());
            self.lifecycle = Lifecycle::Closed;
            return;
        }
        if conn.token_expiry.is_some_and(|at| now >= at) {
            ctx.trace(id, t, "timeout", 0, || "websocket token expired".into());
            return self.ws_close_first(TOKEN_EXPIRED, TOKEN_EXPIRED_REASON, ctx);
        }
        let Some(due) = conn.next_ping.filter(|&at| now >= at) else {
            return;
        };
        if conn.ping_sent_at.is_some() && !conn.heard {
            ctx.trace(id, t, "timeout", 0, || "websocket ping".into());
            return self.ws_close_first(CloseCode::INTERNAL, "ping timeout", ctx);
        }
        let interval = ctx.config.ws_ping;
        // Keep the cadence; after a stall, start again from now.
        let next = due + interval;
        conn.next_ping = Some(if next > now { next } else { now + interval });
        conn.ping_sent_at = Some(now);
        conn.heard = false;
        let mut out = Vec::new();
        conn.protocol
            .send_ping(&now.as_micros().to_be_bytes(), &mut out);
        ctx.stats.of(Transport::Ws).pings_sent += 1;
        self.ws_push_control(out, "ping", ctx);
    }

    /// The server is shutting down: close with 1001 "going away".
    pub(super) fn ws_shutdown(&mut self, ctx: &mut Ctx) {
        if self.lifecycle == Lifecycle::Open {
            self.ws_close_first(CloseCode::GOING_AWAY, "server shutting down", ctx);
        }
    }

    /// The connection is being dropped: leave the topics, count how it ended.
    pub(super) fn ws_close(&mut self, ctx: &mut Ctx) {
        let State::WebSocket(conn) = &self.state else {
            return;
        };
        if let Mode::PubSub { sub, .. } = &conn.mode {
            sub.leave(ctx.hub, self.id);
        }
        let code = conn.close_code.unwrap_or(CloseCode::ABNORMAL.0);
        ctx.stats.of(Transport::Ws).count_close_code(code);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod echo_frames {
    use std::io::IoSlice;

    use super::*;
    use crate::config::Config;
    use crate::testkit::{split_head, Rig};
    use crate::wire::websocket::encode_masked_frame;

    #[test]
    fn echoes_are_byte_exact_on_both_sides_of_the_copy_threshold() {
        let mut rig = Rig::new(Config::default());
        let mut s = Session::new(1, rig.now, &rig.config);
        let head = "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                    Sec-WebSocket-Version: 13\r\n\r\n";
        s.handle_input(head.as_bytes(), &mut rig.ctx());
        let (status, _) = split_head(&s.output().take_all());
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        let below = COPY_PAYLOAD_BELOW;
        for (len, slices) in [
            (0, 1),
            (1, 1),
            (126, 1),
            (below - 1, 1),
            (below, 2),
            (70_000, 2),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut frame = Vec::new();
            encode_masked_frame(BINARY, true, [1, 2, 3, 4], &payload, &mut frame);
            s.handle_input(&frame, &mut rig.ctx());
            let mut iovecs = Vec::<IoSlice>::new();
            s.output().io_slices(&mut iovecs, 8);
            // A large payload is queued as it came, after its header.
            assert_eq!(iovecs.len(), slices, "{len} bytes");
            if slices == 2 {
                assert_eq!(iovecs[1].len(), len);
            }
            let mut expected = Vec::new();
            encode_frame(BINARY, true, &payload, &mut expected);
            assert_eq!(s.output().take_all(), expected, "{len} bytes");
        }
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod footprint {
    use super::WsConn;
    use crate::wire::websocket::Protocol;

    /// docs/performance.md § Idle connections: an idle WebSocket must stay
    /// under 1 KiB of server memory. What a connection holds while idle is
    /// these structs (and the session's); state that only some connections
    /// need — permessage-deflate's, a message being assembled — lives behind
    /// a pointer. Sizes on a 64-bit target.
    #[test]
    fn an_idle_websocket_keeps_its_rarely_used_state_out_of_line() {
        assert!(
            size_of::<Protocol>() <= 184,
            "Protocol grew to {} bytes",
            size_of::<Protocol>()
        );
        assert!(
            size_of::<WsConn>() <= 344,
            "WsConn grew to {} bytes",
            size_of::<WsConn>()
        );
    }
}

//! Server-Sent Events on a session: `GET /events?topic=T[,U…]` is answered
//! with one response that never ends, a `text/event-stream` (WHATWG HTML
//! §9.2 "Server-sent events",
//! <https://html.spec.whatwg.org/multipage/server-sent-events.html>; RFC 6202
//! §3 calls the technique "HTTP streaming"). The bytes themselves come from
//! [`crate::wire::sse`]; this file decides *which* bytes and when.
//!
//! What a stream carries, in order (docs/sse.md shows a captured one):
//! 1. the response head: `200`, `Content-Type: text/event-stream`,
//!    `Cache-Control: no-cache`, `X-Accel-Buffering: no`,
//!    `Connection: close` — no `Content-Length`, no chunked coding: the body
//!    ends when the connection does (RFC 9112 §6.3 rule 8);
//! 2. `retry: <--sse-retry ms>`;
//! 3. the resume notices: `event: reset` (data `true`) when the cursor is from
//!    another epoch or the future, `event: missed` (data: the count) when
//!    messages after it were evicted;
//! 4. the replay: the kept messages after the cursor;
//! 5. live messages as they are published, and a `: ping` comment every
//!    `--heartbeat`.
//!
//! Each message is `id: E-N`, its `data:` lines and a blank line. The `id` is
//! the hub cursor, so a browser's automatic reconnection (`Last-Event-ID`)
//! resumes any set of topics. With one topic the data is the message itself;
//! with several it is the message's JSON object, which names the topic. Both
//! encodings are made once per message ([`encoded::sse_single`], [`encoded::sse_multi`])
//! and shared by every subscriber: fan-out is a refcount bump.
//!
//! House rules:
//! - The cursor is the `Last-Event-ID` header, else the `last_event_id` query
//!   parameter, else `since`; the first one present is used. No cursor means
//!   "from now on". A cursor that does not parse is a `400`.
//! - No message is written twice: the stream remembers the last sequence
//!   number it wrote, and a live message at or below it (one that was already
//!   in the replay) is skipped.
//! - Heartbeats keep a fixed cadence from the start of the stream; writing a
//!   message does not push the next one back (so fan-out never re-arms a
//!   timer). `--heartbeat 0` turns them off.
//! - A slow consumer is cut when the bytes queued *after its replay* pass
//!   `--max-queued-bytes`. The replay itself is exempt: it is bounded by the
//!   history (at most `encoded::MAX_FORM_FACTOR` times its bytes), and
//!   counting it would cut a client that resumes from far back on every
//!   reconnection, for ever.
//! - `--sse-max-lifetime` ends a stream after that long less a jitter of up
//!   to 10 %, derived from the connection id and the start time (no clock, no
//!   random number generator), so streams opened together do not all
//!   reconnect together. The stream is flushed, then closed; the client
//!   reconnects after `retry` and resumes.
//! - A stream opened with a token (some topic was not public) ends when the
//!   token does: at its `exp` plus `--jwt-leeway`, the first instant at
//!   which the same request would be refused. It ends as a max-lifetime
//!   stream does (flushed, then closed, no event of its own: a client that
//!   does not know about tokens sees an ordinary end of stream), and the
//!   client comes back with a fresh token and its `Last-Event-ID`
//!   (docs/security.md § "When a token expires").
//!
//! - A cross-origin `EventSource` (with or without `withCredentials`) from
//!   an origin `--allow-origin` allows gets the CORS headers on the stream's
//!   head (`session/cors.rs`); the event bytes stay shared.
//!
//! Not implemented: compression, the chunked transfer coding on the stream.

use std::rc::Rc;
use std::time::Duration;

use super::cors;
use super::encoded;
use super::http::ReqInfo;
use super::subscription::Subscription;
use super::{Ctx, Lifecycle, Session, State};
use crate::hub::{Batch, Cursor, Message, Notice};
use crate::stats::Transport;
use crate::timers::Instant;
use crate::wire::http1::{RequestHead, ResponseHead};
use crate::wire::query::{ParamError, Query};
use crate::wire::sse::{encode_event, encode_retry};

/// The heartbeat: a comment line, which every conforming client ignores
/// (§9.2.6: a line starting with `:` is ignored), and a blank line so that
/// proxies that buffer up to one pass it on.
pub const HEARTBEAT: &[u8] = b": ping\n\n";

/// Event type of the gap notice; its data is the number of messages missed.
pub const EVENT_MISSED: &str = "missed";

/// Event type of the reset notice (the cursor is from another epoch or the
/// future; the replay starts from the oldest kept message).
pub const EVENT_RESET: &str = "reset";

/// Event type of a binary message: its data is the bytes' standard base64
/// (with one topic) or its JSON object with `"encoding":"base64"` (with
/// several). A typed event, so that a page listening only to `message`
/// never takes base64 for the text it expects (docs/sse.md § Binary
/// messages).
pub const EVENT_BINARY: &str = "binary";

/// Data of the reset notice. Not empty, so that client libraries that drop
/// events without data still deliver it.
pub const RESET_DATA: &str = "true";

/// `--sse-max-lifetime` is shortened by up to 1/`JITTER_DIVISOR` of itself.
const JITTER_DIVISOR: u128 = 10;

/// A live SSE stream: what the session needs between writes.
#[derive(Debug)]
pub struct Stream {
    /// The topics subscribed to (left on close) and what was written.
    sub: Subscription,
    /// Several topics: each event's data is the message's JSON object.
    multi: bool,
    /// When the next `: ping` is due; `None` when heartbeats are off or the
    /// stream is ending.
    next_heartbeat: Option<Instant>,
    /// When `--sse-max-lifetime` ends the stream.
    close_at: Option<Instant>,
    /// When the token the stream was opened with expires; `None` when no
    /// token was needed.
    token_expiry: Option<Instant>,
    /// Bytes queued when the stream started (head, `retry`, notices, replay):
    /// exempt from the slow-consumer limit.
    initial_bytes: u64,
    /// Bytes queued over the stream's life.
    queued_total: u64,
}

impl Stream {
    /// The earliest of the next heartbeat, the end of the lifetime and the
    /// token's expiry.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.next_heartbeat, self.close_at, self.token_expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Bytes queued after the initial ones, given `pending` bytes not yet
    /// written: whatever was written went out in order, initial bytes first.
    fn live_backlog(&self, pending: usize) -> usize {
        let written = self.queued_total.saturating_sub(pending as u64);
        let initial_left = self.initial_bytes.saturating_sub(written);
        pending.saturating_sub(initial_left as usize)
    }

    /// No more deadlines: the stream is ending.
    fn disarm(&mut self) {
        self.next_heartbeat = None;
        self.close_at = None;
        self.token_expiry = None;
    }
}

/// The resume cursor: `Last-Event-ID`, else `last_event_id`, else `since`.
/// An empty value counts as absent (as `EventSource` never sends one).
pub fn resume_cursor(head: &RequestHead, query: &Query) -> Result<Option<Cursor>, ParamError> {
    if let Some(raw) = head.header("last-event-id") {
        let value = std::str::from_utf8(raw)
            .map_err(|_| ParamError("`Last-Event-ID` is not UTF-8".into()))?
            .trim();
        if !value.is_empty() {
            return Cursor::parse(value).map(Some).ok_or_else(|| {
                ParamError(format!(
                    "`Last-Event-ID` must be 0 or a message id like E-42, not `{value}`"
                ))
            });
        }
    }
    match query.cursor("last_event_id")? {
        Some(cursor) => Ok(Some(cursor)),
        None => query.cursor("since"),
    }
}

/// When a stream started at `now` by connection `conn` must end: `max` less
/// a jitter of up to 10 %, from a hash of both (splitmix64's finaliser).
pub fn lifetime_deadline(now: Instant, max: Duration, conn: usize) -> Instant {
    let mut z = (conn as u64) ^ now.as_micros().wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let max_us = max.as_micros();
    let jitter = max_us / JITTER_DIVISOR * u128::from(z % 1001) / 1000;
    let lifetime = u64::try_from(max_us - jitter).unwrap_or(u64::MAX);
    now + Duration::from_micros(lifetime)
}

/// The response head of a stream, with the CORS headers when the request
/// came from an allowed origin (`session/cors.rs`).
fn write_head(out: &mut Vec<u8>, cors_origin: Option<&cors::Allowed>) {
    // No Content-Length and no Transfer-Encoding: the body is delimited by
    // the connection closing (RFC 9112 §6.3 rule 8), and `Connection: close`
    // says so to every hop. `X-Accel-Buffering: no` turns nginx's response
    // buffering off for this response; `finish_streaming` adds
    // `Cache-Control: no-cache`.
    let mut h = ResponseHead::new(out, 200)
        .header("Content-Type", "text/event-stream")
        .header("X-Accel-Buffering", "no")
        .header("Connection", "close");
    if let Some(origin) = cors_origin {
        h = cors::with_headers(h, origin);
    }
    h.finish_streaming();
}

/// The resume notices of `batch`. When no message follows in the replay they
/// carry the batch's cursor as their `id`, so a reconnection does not report
/// the same gap or reset again.
fn write_notices(out: &mut Vec<u8>, batch: &Batch, next_id: &str) {
    let id = batch.messages.is_empty().then_some(next_id);
    if batch.reset {
        encode_event(out, id, Some(EVENT_RESET), RESET_DATA);
    }
    if batch.missed > 0 {
        encode_event(out, id, Some(EVENT_MISSED), &batch.missed.to_string());
    }
}

impl Session {
    /// `GET /events`: subscribe, answer with the head, `retry`, notices and
    /// replay, and stay in [`State::Sse`] until the connection ends.
    pub(super) fn start_sse(
        &mut self,
        req: ReqInfo,
        head: &RequestHead,
        query: &Query,
        ctx: &mut Ctx,
    ) {
        self.count_request(Transport::Sse, ctx);
        let parsed = query
            .topics()
            .and_then(|topics| Ok((topics, resume_cursor(head, query)?)));
        let (topics, cursor) = match parsed {
            Ok(v) => v,
            Err(e) => return self.refuse(e.into(), !req.keep_alive, ctx),
        };
        let mut sub = match Subscription::join(ctx.hub, self.id, topics) {
            Ok(sub) => sub,
            Err(e) => return self.refuse(e.into(), !req.keep_alive, ctx),
        };
        // Subscribed and read in the same call: nothing can be published in
        // between, so the replay and the live messages meet exactly at
        // `batch.next_seq`.
        let batch = sub.read_backlog(ctx.hub, cursor.as_ref(), ctx.now);

        let mut first = Vec::with_capacity(256);
        write_head(&mut first, self.cors.as_ref());
        encode_retry(&mut first, ctx.config.sse_retry.as_millis() as u64);
        write_notices(&mut first, &batch, &ctx.hub.format_id(batch.next_seq));
        let multi = sub.topics().len() > 1;
        let mut queued = first.len();
        self.out.push_owned(first);
        for m in &batch.messages {
            let bytes = if multi {
                encoded::sse_multi(m)
            } else {
                encoded::sse_single(m)
            };
            queued += bytes.len();
            self.out.push_shared(&bytes);
        }

        let c = ctx.stats.of(Transport::Sse);
        c.messages_delivered += batch.messages.len() as u64;
        if cursor.is_some() {
            c.resumes += 1;
        }
        if batch.missed > 0 {
            c.gaps_reported += 1;
        }
        if batch.reset {
            c.resets_reported += 1;
        }
        let (id, t, n_topics) = (self.serial, self.transport, sub.topics().len());
        ctx.trace(id, t, "response", queued, || {
            format!(
                "200 event-stream topics={n_topics} replay={} missed={} reset={}",
                batch.messages.len(),
                batch.missed,
                batch.reset
            )
        });

        let heartbeat = ctx.config.heartbeat;
        let stream = Stream {
            sub,
            multi,
            next_heartbeat: (!heartbeat.is_zero()).then(|| ctx.now + heartbeat),
            close_at: ctx
                .config
                .sse_max_lifetime
                .map(|max| lifetime_deadline(ctx.now, max, self.id)),
            token_expiry: self.token_expiry(ctx),
            initial_bytes: queued as u64,
            queued_total: queued as u64,
        };
        // The request is answered for good: pipelined bytes behind it will
        // never be read as requests.
        self.input = Vec::new();
        self.answered += 1;
        self.state = State::Sse(Box::new(stream));
    }

    /// A message was published on one of the stream's topics.
    pub(super) fn sse_message(&mut self, msg: &Rc<Message>, ctx: &mut Ctx) {
        let State::Sse(stream) = &mut self.state else {
            return;
        };
        // Already written in the replay of this very call's turn.
        if !stream.sub.take_new(msg) {
            return;
        }
        let bytes = if stream.multi {
            encoded::sse_multi(msg)
        } else {
            encoded::sse_single(msg)
        };
        let n = bytes.len();
        stream.queued_total += n as u64;
        self.out.push_shared(&bytes);
        ctx.stats.of(Transport::Sse).messages_delivered += 1;
        ctx.trace(self.serial, self.transport, "frame", n, || {
            msg.id.to_string()
        });
        self.sse_check_backlog(ctx);
    }

    /// A break in the log's continuity (`Session::handle_notice`): the
    /// notice as an event whose `id` is the cursor that follows it, so a
    /// reconnection does not report it again.
    pub(super) fn sse_notice(&mut self, notice: &Notice, ctx: &mut Ctx) {
        let State::Sse(stream) = &mut self.state else {
            return;
        };
        let mut bytes = Vec::with_capacity(64);
        let c = ctx.stats.of(Transport::Sse);
        match notice {
            Notice::Reset { epoch } => {
                // Nothing of the new epoch was written yet.
                stream.sub.restart();
                let id = crate::ids::format_id(epoch, 0);
                encode_event(&mut bytes, Some(&id), Some(EVENT_RESET), RESET_DATA);
                c.resets_reported += 1;
            }
            Notice::Missed { epoch, count, upto } => {
                let id = crate::ids::format_id(epoch, *upto);
                encode_event(
                    &mut bytes,
                    Some(&id),
                    Some(EVENT_MISSED),
                    &count.to_string(),
                );
                c.gaps_reported += 1;
            }
        }
        let n = bytes.len();
        stream.queued_total += n as u64;
        self.out.push_owned(bytes);
        ctx.trace(self.serial, self.transport, "notice", n, || {
            format!("{notice:?}")
        });
        self.sse_check_backlog(ctx);
    }

    /// The stream's deadline passed: end it (token expired, max lifetime)
    /// or send a heartbeat.
    pub(super) fn sse_timeout(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        let open = self.lifecycle == Lifecycle::Open;
        let State::Sse(stream) = &mut self.state else {
            return;
        };
        if !open {
            // Closing or lingering (shutdown, max lifetime): nothing more is
            // written, and no deadline of the stream may fire again.
            stream.disarm();
            return;
        }
        if stream.token_expiry.is_some_and(|at| now >= at) {
            stream.disarm();
            ctx.stats.of(Transport::Sse).token_expiry_closes += 1;
            ctx.trace(self.serial, self.transport, "timeout", 0, || {
                "sse token expired".into()
            });
            self.lifecycle = Lifecycle::Closing;
            return;
        }
        if stream.close_at.is_some_and(|at| now >= at) {
            stream.disarm();
            ctx.stats.of(Transport::Sse).max_lifetime_closes += 1;
            ctx.trace(self.serial, self.transport, "timeout", 0, || {
                "sse max lifetime".into()
            });
            self.lifecycle = Lifecycle::Closing;
            return;
        }
        let Some(due) = stream.next_heartbeat.filter(|&at| now >= at) else {
            return;
        };
        let interval = ctx.config.heartbeat;
        // Keep the cadence; after a stall, start again from now rather than
        // sending the missed pings in a burst.
        let next = due + interval;
        stream.next_heartbeat = Some(if next > now { next } else { now + interval });
        stream.queued_total += HEARTBEAT.len() as u64;
        self.out.push_slice(HEARTBEAT);
        ctx.stats.of(Transport::Sse).heartbeats += 1;
        ctx.trace(
            self.serial,
            self.transport,
            "heartbeat",
            HEARTBEAT.len(),
            String::new,
        );
        self.sse_check_backlog(ctx);
    }

    /// The connection is being dropped: leave every topic.
    pub(super) fn sse_close(&mut self, ctx: &mut Ctx) {
        if let State::Sse(stream) = &self.state {
            stream.sub.leave(ctx.hub, self.id);
        }
    }

    /// Cuts the stream if what it queued after its replay passed the limit.
    fn sse_check_backlog(&mut self, ctx: &mut Ctx) {
        let State::Sse(stream) = &self.state else {
            return;
        };
        if stream.live_backlog(self.out.len()) > ctx.config.max_queued_bytes {
            self.handle_overflow(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    //! A session driven by hand: a memory hub (`Hub::memory`), a virtual clock and no
    //! socket. Fan-out is what the event loop does after a publish: call
    //! `handle_message` on each subscriber.

    use super::*;
    use crate::config::Config;
    use crate::stats::Counters;
    use crate::testkit::{ms, split_head, Rig};
    use crate::wire::sse::{Decoded, Event, Parser};

    /// The SSE side of the shared [`Rig`].
    trait SseRig {
        /// A new connection `id` that sends `GET target` with `headers`
        /// (each ending in CRLF).
        fn open(&mut self, id: usize, target: &str, headers: &str) -> Session;
        fn sse(&self) -> &Counters;
    }

    impl SseRig for Rig {
        fn open(&mut self, id: usize, target: &str, headers: &str) -> Session {
            let mut s = Session::new(id, self.now, &self.config);
            let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
            s.handle_input(req.as_bytes(), &mut self.ctx());
            s
        }

        fn sse(&self) -> &Counters {
            self.stats.get(Transport::Sse)
        }
    }

    /// The events a conforming client dispatches for `body`.
    fn parse(parser: &mut Parser, body: &[u8]) -> Vec<Event> {
        parser.feed(body);
        let mut events = Vec::new();
        while let Decoded::Event(e) = parser.next_event().unwrap() {
            events.push(e);
        }
        events
    }

    /// The events of a stream's first output (head stripped).
    fn opening_events(s: &mut Session) -> Vec<Event> {
        let (_, body) = split_head(&s.output().take_all());
        parse(&mut Parser::new(), &body)
    }

    fn datas(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn a_stream_opens_with_the_event_stream_head_then_retry() {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(7, "/events?topic=a", "");
        let (head, body) = split_head(&s.output().take_all());
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        for line in [
            "Content-Type: text/event-stream\r\n",
            "Cache-Control: no-cache\r\n",
            "X-Accel-Buffering: no\r\n",
            "Connection: close\r\n",
        ] {
            assert!(head.contains(line), "{line:?} missing from {head}");
        }
        // Delimited by the connection closing: no other framing.
        assert!(!head.contains("Content-Length") && !head.contains("Transfer-Encoding"));
        assert_eq!(body, b"retry: 2000\n\n");
        let mut subs = Vec::new();
        rig.hub.subscribers("a", &mut subs);
        assert_eq!(subs, [7]);
        assert_eq!(s.transport(), Transport::Sse);
        assert_eq!(rig.sse().requests, 1);
        assert_eq!(rig.sse().resumes, 0);
    }

    #[test]
    fn a_live_message_is_its_id_then_one_data_line_per_line_then_a_blank_line() {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(1, "/events?topic=a", "");
        s.output().take_all();
        rig.publish_to("a", "x\ny", &mut [&mut s]);
        assert_eq!(s.output().take_all(), b"id: e1-1\ndata: x\ndata: y\n\n");
        assert_eq!(rig.sse().messages_delivered, 1);
        let frames: Vec<_> = rig
            .tracer
            .events
            .iter()
            .filter(|e| e.kind == "frame")
            .collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].detail, "e1-1");
    }

    #[test]
    fn a_binary_message_is_an_event_of_type_binary_with_its_base64() {
        let mut rig = Rig::new(Config::default());
        rig.publish_binary("a", &[1]);
        let mut one = rig.open(1, "/events?topic=a&since=0", "");
        let mut two = rig.open(2, "/events?topic=a,b&since=0", "");
        let replayed = (opening_events(&mut one), opening_events(&mut two));
        let msg = rig.publish_binary("b", &[0, 0xff]);
        two.handle_message(&msg, &mut rig.ctx());
        let live = parse(&mut Parser::new(), &two.output().take_all());
        // One topic: the data is the bytes' base64.
        assert_eq!(replayed.0.len(), 1);
        let e = &replayed.0[0];
        assert_eq!((e.event_type.as_str(), e.data.as_str()), ("binary", "AQ=="));
        assert_eq!(e.last_event_id, "e1-1", "a cursor like any other");
        // Several: the JSON object, marked.
        for (e, topic, data) in [(&replayed.1[0], "a", "AQ=="), (&live[0], "b", "AP8=")] {
            assert_eq!(e.event_type, "binary");
            let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["encoding"], "base64");
            assert_eq!(
                (v["topic"].as_str(), v["data"].as_str()),
                (Some(topic), Some(data))
            );
        }
        assert_eq!(live[0].last_event_id, "e1-2");
        assert_eq!(rig.sse().messages_delivered, 3);
    }

    #[test]
    fn a_message_is_encoded_once_and_shared_by_every_stream() {
        let mut rig = Rig::new(Config::default());
        let mut s1 = rig.open(1, "/events?topic=a", "");
        let mut s2 = rig.open(2, "/events?topic=a", "");
        let msg = rig.publish("a", "hello");
        s1.handle_message(&msg, &mut rig.ctx());
        s2.handle_message(&msg, &mut rig.ctx());
        let shared = msg.encoded.sse_single.get().expect("encoded");
        // One reference in the message, one in each output queue, one
        // here: no copy.
        assert_eq!(Rc::strong_count(&shared), 4);
    }

    #[test]
    fn several_topics_carry_the_message_json_with_its_topic() {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(1, "/events?topic=a,b", "");
        s.output().take_all();
        rig.publish_to("b", "hi \"there\"", &mut [&mut s]);
        let msg = rig.publish("a", "2");
        s.handle_message(&msg, &mut rig.ctx());
        let events = parse(&mut Parser::new(), &s.output().take_all());
        assert_eq!(events.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"topic": "b", "id": "e1-1", "data": "hi \"there\""})
        );
        assert_eq!(events[0].last_event_id, "e1-1");
        assert_eq!(events[1].data.as_bytes(), &*encoded::json(&msg));
        assert!(msg.encoded.sse_multi.get().is_some());
        assert!(msg.encoded.sse_single.get().is_none());
    }

    #[test]
    fn resume_replays_what_follows_the_last_event_id_header() {
        let mut rig = Rig::new(Config::default());
        for d in ["1", "2", "3"] {
            rig.publish("a", d);
        }
        let mut s = rig.open(1, "/events?topic=a", "Last-Event-ID: e1-1\r\n");
        let events = opening_events(&mut s);
        assert_eq!(datas(&events), ["2", "3"]);
        assert_eq!(events[1].last_event_id, "e1-3");
        assert_eq!(rig.sse().resumes, 1);
        assert_eq!(rig.sse().messages_delivered, 2);
    }

    #[test]
    fn the_header_wins_over_last_event_id_which_wins_over_since() {
        let mut rig = Rig::new(Config::default());
        for d in ["1", "2", "3"] {
            rig.publish("a", d);
        }
        let cases = [
            (
                "/events?topic=a&since=0",
                "Last-Event-ID: e1-2\r\n",
                vec!["3"],
            ),
            (
                "/events?topic=a&last_event_id=e1-1&since=0",
                "",
                vec!["2", "3"],
            ),
            ("/events?topic=a&since=e1-2", "", vec!["3"]),
            ("/events?topic=a&since=0", "", vec!["1", "2", "3"]),
            ("/events?topic=a", "Last-Event-ID: \r\n", vec![]),
        ];
        for (i, (target, headers, expected)) in cases.into_iter().enumerate() {
            let mut s = rig.open(i, target, headers);
            assert_eq!(
                datas(&opening_events(&mut s)),
                expected,
                "{target} {headers}"
            );
        }
    }

    #[test]
    fn a_bad_cursor_is_a_400_and_the_connection_stays_open() {
        let mut rig = Rig::new(Config::default());
        for (target, headers) in [
            ("/events?topic=a&since=nope", ""),
            ("/events?topic=a&last_event_id=5", ""),
            ("/events?topic=a", "Last-Event-ID: e1-x\r\n"),
            ("/events?topic=a%20b", ""),
            ("/events", ""),
        ] {
            let mut s = rig.open(1, target, headers);
            let out = String::from_utf8(s.output().take_all()).unwrap();
            assert!(out.starts_with("HTTP/1.1 400 "), "{target}: {out}");
            assert_eq!(s.lifecycle(), Lifecycle::Open);
            assert!(matches!(s.state, State::Head { .. }));
        }
        assert_eq!(rig.hub.topic_count(), 0, "nothing stays subscribed");
    }

    #[test]
    fn evicted_messages_are_announced_as_missed_before_the_replay() {
        let mut rig = Rig::new(Config {
            history: 2,
            ..Config::default()
        });
        for d in ["1", "2", "3", "4", "5"] {
            rig.publish("a", d);
        }
        let mut s = rig.open(1, "/events?topic=a", "Last-Event-ID: e1-1\r\n");
        let events = opening_events(&mut s);
        assert_eq!(events[0].event_type, "missed");
        assert_eq!(events[0].data, "2"); // 2 and 3 were evicted
        assert_eq!(events[0].last_event_id, "", "messages follow: no id");
        assert_eq!(datas(&events[1..]), ["4", "5"]);
        assert_eq!(rig.sse().gaps_reported, 1);
    }

    #[test]
    fn a_notice_with_nothing_after_it_carries_the_cursor() {
        let mut rig = Rig::new(Config {
            history_ttl: Duration::from_secs(10),
            ..Config::default()
        });
        rig.publish("a", "1");
        rig.publish("a", "2");
        rig.now = ms(20_000); // both expired
        let mut s = rig.open(1, "/events?topic=a", "Last-Event-ID: e1-0\r\n");
        let events = opening_events(&mut s);
        assert_eq!(events.len(), 1);
        assert_eq!((&*events[0].event_type, &*events[0].data), ("missed", "2"));
        // A reconnection resumes after the gap instead of reporting it again.
        assert_eq!(events[0].last_event_id, "e1-2");
    }

    #[test]
    fn a_cursor_from_another_epoch_resets_and_replays_what_is_kept() {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(1, "/events?topic=a", "Last-Event-ID: old-7\r\n");
        let events = opening_events(&mut s);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (&*events[0].event_type, &*events[0].data),
            ("reset", "true")
        );
        assert_eq!(events[0].last_event_id, "e1-0");

        rig.publish("a", "1");
        rig.publish("a", "2");
        let mut s = rig.open(2, "/events?topic=a&since=e1-99", "");
        let events = opening_events(&mut s);
        assert_eq!(events[0].event_type, "reset");
        assert_eq!(events[0].last_event_id, "", "messages follow: no id");
        assert_eq!(datas(&events[1..]), ["1", "2"]);
        assert_eq!(rig.sse().resets_reported, 2);
        assert_eq!(rig.sse().gaps_reported, 0);
    }

    #[test]
    fn a_message_in_the_replay_is_not_written_again_when_it_arrives_live() {
        let mut rig = Rig::new(Config::default());
        // One read carries a publish and, pipelined behind it, a stream that
        // replays everything: the message is in the replay, and the loop
        // fans it out to the new subscriber after the call.
        let mut s = Session::new(1, rig.now, &rig.config);
        let input = "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi\
                     GET /events?topic=a&since=0 HTTP/1.1\r\nHost: t\r\n\r\n";
        s.handle_input(input.as_bytes(), &mut rig.ctx());
        // The publish is answered when it commits; the stream is opened
        // then.
        rig.commit_to(&mut s);
        let published = std::mem::take(&mut rig.published);
        assert_eq!(published.len(), 1);
        s.handle_message(&published[0], &mut rig.ctx());
        let out = s.output().take_all();
        let at = out.windows(6).position(|w| w == b"retry:").unwrap();
        let events = parse(&mut Parser::new(), &out[at..]);
        assert_eq!(datas(&events), ["hi"]);
        assert_eq!(rig.sse().messages_delivered, 1);
        assert_eq!(rig.sse().requests_on_reused_socket, 1);
    }

    #[test]
    fn heartbeats_come_at_exactly_the_deadline_on_a_fixed_cadence() {
        let mut rig = Rig::new(Config::default()); // heartbeat 15 s
        rig.now = ms(1_000);
        let mut s = rig.open(1, "/events?topic=a", "");
        s.output().take_all();
        assert_eq!(s.next_deadline(), Some(ms(16_000)));
        rig.advance(&mut s, Instant::from_micros(15_999_999));
        assert!(s.output().is_empty());
        rig.advance(&mut s, ms(16_000));
        assert_eq!(s.output().take_all(), b": ping\n\n");
        assert_eq!(s.next_deadline(), Some(ms(31_000)));
        // A message does not move the next heartbeat.
        rig.now = ms(20_000);
        rig.publish_to("a", "m", &mut [&mut s]);
        s.output().take_all();
        assert_eq!(s.next_deadline(), Some(ms(31_000)));
        rig.advance(&mut s, ms(31_000));
        assert_eq!(s.output().take_all(), b": ping\n\n");
        assert_eq!(rig.sse().heartbeats, 2);
        let mut parser = Parser::new();
        assert!(parse(&mut parser, b": ping\n\n").is_empty());
        assert_eq!(parser.comments(), 1);
    }

    #[test]
    fn a_late_timer_sends_one_ping_not_a_burst() {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(1, "/events?topic=a", "");
        s.output().take_all();
        rig.advance(&mut s, ms(50_000));
        assert_eq!(s.output().take_all(), b": ping\n\n");
        assert_eq!(s.next_deadline(), Some(ms(65_000)));
    }

    #[test]
    fn a_zero_heartbeat_turns_heartbeats_off() {
        let mut rig = Rig::new(Config {
            heartbeat: Duration::ZERO,
            ..Config::default()
        });
        let s = rig.open(1, "/events?topic=a", "");
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_consumer_that_does_not_read_is_cut_past_the_queue_limit() {
        let mut rig = Rig::new(Config {
            max_queued_bytes: 1000,
            ..Config::default()
        });
        let mut slow = rig.open(1, "/events?topic=a", "");
        let mut fast = rig.open(2, "/events?topic=a", "");
        let data = "x".repeat(100);
        let mut delivered = 0;
        for _ in 0..50 {
            rig.publish_to("a", &data, &mut [&mut slow, &mut fast]);
            delivered += parse(&mut Parser::new(), &fast.output().take_all()).len();
        }
        assert_eq!(delivered, 50, "the reading subscriber gets everything");
        assert_eq!(fast.lifecycle(), Lifecycle::Open);
        assert_eq!(slow.lifecycle(), Lifecycle::Closed);
        assert!(slow.output().is_empty(), "the queue is freed at once");
        assert_eq!(rig.sse().slow_consumer_cuts, 1);
        // Cut on the message that took it past 1000 bytes, not before.
        let frames_to_slow = rig
            .tracer
            .events
            .iter()
            .filter(|e| e.conn == 1 && e.kind == "frame")
            .count();
        let msg_len = encoded::sse_single(&rig.publish("a", &data)).len();
        assert_eq!(frames_to_slow, 1000 / msg_len + 1);
    }

    #[test]
    fn the_replay_does_not_count_toward_the_queue_limit() {
        let mut rig = Rig::new(Config {
            max_queued_bytes: 1000,
            ..Config::default()
        });
        let data = "y".repeat(100);
        for _ in 0..50 {
            rig.publish("a", &data);
        }
        let mut s = rig.open(1, "/events?topic=a&since=0", "");
        let replay = s.output().len();
        assert!(replay > 5000);
        // Live messages may queue up to the limit behind the replay.
        let msg_len = encoded::sse_single(&rig.publish("a", &data)).len() + 1; // "e1-51" vs "e1-1"
        let fits = 1000 / msg_len;
        for _ in 0..fits {
            rig.publish_to("a", &data, &mut [&mut s]);
        }
        assert_eq!(s.lifecycle(), Lifecycle::Open);
        // Half the replay is written: the live backlog is unchanged.
        s.output().consume(replay / 2);
        rig.publish_to("a", &data, &mut [&mut s]);
        assert_eq!(s.lifecycle(), Lifecycle::Closed);
        assert_eq!(rig.sse().slow_consumer_cuts, 1);
    }

    #[test]
    fn the_live_backlog_counts_only_what_follows_the_initial_bytes() {
        let stream = Stream {
            sub: Subscription::default(),
            multi: false,
            next_heartbeat: None,
            close_at: None,
            token_expiry: None,
            initial_bytes: 100,
            queued_total: 150,
        };
        assert_eq!(stream.live_backlog(150), 50); // nothing written
        assert_eq!(stream.live_backlog(90), 50); // 60 of the initial written
        assert_eq!(stream.live_backlog(50), 50); // initial all written
        assert_eq!(stream.live_backlog(10), 10);
    }

    #[test]
    fn max_lifetime_ends_the_stream_up_to_ten_percent_early() {
        let mut rig = Rig::new(Config {
            sse_max_lifetime: Some(Duration::from_secs(100)),
            heartbeat: Duration::from_secs(1000),
            ..Config::default()
        });
        let mut s = rig.open(5, "/events?topic=a", "");
        s.output().take_all();
        let end = s.next_deadline().unwrap();
        assert!(end >= ms(90_000) && end <= ms(100_000), "{end:?}");
        rig.advance(&mut s, end);
        assert_eq!(s.lifecycle(), Lifecycle::Closing);
        assert_eq!(rig.sse().max_lifetime_closes, 1);
        assert_eq!(s.next_deadline(), None, "nothing more fires");
        rig.publish_to("a", "late", &mut [&mut s]);
        assert!(s.output().is_empty(), "nothing is written after the end");
    }

    #[test]
    fn lifetime_jitter_is_deterministic_and_spread() {
        let max = Duration::from_secs(600);
        let at = |conn| lifetime_deadline(ms(1234), max, conn);
        assert_eq!(at(3), at(3));
        let ends: std::collections::BTreeSet<Instant> = (0..100).map(at).collect();
        assert!(ends.len() > 90, "jitter spreads streams: {}", ends.len());
        for end in ends {
            let lifetime = end - ms(1234);
            assert!(lifetime >= max - max / 10 && lifetime <= max);
        }
    }

    #[test]
    fn a_heartbeat_never_fires_on_a_closing_stream() {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(1, "/events?topic=a", "");
        s.output().take_all();
        rig.publish_to("a", "pending", &mut [&mut s]);
        s.handle_shutdown(&mut rig.ctx());
        assert_eq!(s.lifecycle(), Lifecycle::Closing, "flush, then close");
        rig.advance(&mut s, ms(15_000));
        let out = parse(&mut Parser::new(), &s.output().take_all());
        assert_eq!(datas(&out), ["pending"]);
        assert_eq!(rig.sse().heartbeats, 0);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn closing_leaves_every_topic() {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(1, "/events?topic=a,b", "");
        assert_eq!(rig.hub.topic_count(), 2);
        s.handle_close(&mut rig.ctx());
        assert_eq!(rig.hub.topic_count(), 0);
        assert_eq!(rig.sse().sockets_closed, 1);
    }

    #[test]
    fn a_client_that_hangs_up_is_closed() {
        let mut rig = Rig::new(Config::default());
        let mut s = rig.open(1, "/events?topic=a", "");
        s.handle_input(b"ignored", &mut rig.ctx());
        assert!(s.input.is_empty());
        s.handle_eof(&mut rig.ctx());
        assert_eq!(s.lifecycle(), Lifecycle::Closed);
    }
}

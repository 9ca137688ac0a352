//! Request/response traffic on a session: reading heads and bodies,
//! dispatching on the route, the plain endpoints (`/publish`, `/stats`,
//! `/metrics`, the page) and the response writers every transport uses.

use std::collections::VecDeque;
use std::rc::Rc;

use super::auth;
use super::cors;
use super::routing::{route, Route, Routed};
use super::{Ctx, Lifecycle, Refusal, Session, State};
use crate::clients;
use crate::config::MAX_HEAD_BYTES;
use crate::hub::{encode_binary, HubError, Kind, Message, Ticket};
use crate::stats::Transport;
use crate::wire::http1::{
    self, find_head_end, parse_head, BodyDecoder, BodyFraming, BodyStatus, HeadEnd, Method,
    RequestHead, ResponseHead,
};
use crate::wire::json;
use crate::wire::query::Query;

/// The demo page, embedded in the binary.
pub const PAGE: &[u8] = include_bytes!("../../static/index.html");

/// The browser client (`client/pushlab.js`, docs/client.md), embedded too.
pub const CLIENT: &[u8] = include_bytes!("../../client/pushlab.js");

/// What a response needs to know about the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReqInfo {
    /// The connection persists after the response.
    pub keep_alive: bool,
    /// `HEAD`: send the head only.
    pub head_only: bool,
}

impl ReqInfo {
    pub(crate) fn of(head: &RequestHead) -> ReqInfo {
        ReqInfo {
            keep_alive: head.keep_alive,
            head_only: head.method == Method::Head,
        }
    }
}

/// Whether a `Content-Type` value is `application/octet-stream`, whatever
/// its parameters: RFC 9110 §8.3.1, "the type and subtype tokens are
/// case-insensitive", and parameters follow a `;`.
pub fn is_octet_stream(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type else {
        return false;
    };
    let media_type = value.split(|&b| b == b';').next().unwrap_or_default();
    media_type
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/octet-stream")
}

/// A `POST /publish` whose message waits for the log's commit.
#[derive(Debug)]
pub struct Pending {
    ticket: Ticket,
    req: ReqInfo,
    /// The CORS headers its answer carries.
    cors: Option<cors::Allowed>,
    /// The bytes of its message.
    len: usize,
}

/// The publishes of a connection waiting for their commits, in request
/// order: the first one, and those pipelined behind it whose requests were
/// already whole ([`Session::step_pipelined_publish`]). Their messages
/// together stay within `--max-pipelined-bytes`, the bound on what a
/// connection may have waiting behind a request that is not answered yet.
#[derive(Debug)]
pub struct Publishing {
    queue: VecDeque<Pending>,
    bytes: usize,
}

impl Publishing {
    fn new(first: Pending) -> Publishing {
        let bytes = first.len;
        Publishing {
            queue: VecDeque::from([first]),
            bytes,
        }
    }

    fn push(&mut self, pending: Pending) {
        self.bytes += pending.len;
        self.queue.push_back(pending);
    }

    fn pop(&mut self) -> Option<Pending> {
        let pending = self.queue.pop_front()?;
        self.bytes -= pending.len;
        Some(pending)
    }

    /// The ticket whose commit is answered next.
    pub(super) fn front_ticket(&self) -> Option<Ticket> {
        self.queue.front().map(|p| p.ticket)
    }

    /// Publishes still waiting.
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// A publish pipelined behind a waiting one, taken without answering
/// anything (see [`Session::step_pipelined_publish`]).
struct Pipelined {
    consumed: usize,
    head: RequestHead,
    topic: Rc<str>,
    kind: Kind,
    data: String,
}

impl Session {
    /// Looks for a complete head in `input` and acts on it. Returns whether
    /// anything changed (so the caller loops while there is progress).
    pub(super) fn step_head(&mut self, ctx: &mut Ctx) -> bool {
        let State::Head { scanned, .. } = &mut self.state else {
            return false;
        };
        let len = match find_head_end(&self.input, *scanned) {
            HeadEnd::Incomplete { scanned: s } => {
                *scanned = s;
                if self.input.len() > MAX_HEAD_BYTES {
                    self.head_only = http1::starts_with_head_method(&self.input);
                    self.refuse(http1::HeadError::TooLarge.into(), true, ctx);
                    return true;
                }
                return false;
            }
            HeadEnd::Complete(len) => len,
        };
        if len > MAX_HEAD_BYTES {
            self.head_only = http1::starts_with_head_method(&self.input);
            self.refuse(http1::HeadError::TooLarge.into(), true, ctx);
            return true;
        }
        let parsed = parse_head(&self.input[..len]);
        let head = match parsed {
            Ok(head) => {
                self.input.drain(..len);
                head
            }
            Err(e) => {
                // A head refused as a whole may still say `HEAD`: its answer
                // then has no body either.
                self.head_only = http1::starts_with_head_method(&self.input);
                self.refuse(e.into(), true, ctx);
                return true;
            }
        };
        self.head_only = head.method == Method::Head;
        if self.behind_proxy && self.client.is_none() && !self.admit_forwarded(&head, ctx) {
            return true;
        }
        // Before any answer to this request, errors included, so that a
        // cross-origin page can read those too.
        self.cors = cors::allowed_origin(&head, &ctx.config.allow_origins);
        let routed = route(&head.method, head.path());
        if let Routed::Found(r) = routed {
            self.classify(r.transport(), ctx);
        }
        let (id, t) = (self.serial, self.transport);
        // docs/api.md § /trace: the method and the route's path, nothing
        // else the client wrote (no query string, no unknown path or method).
        ctx.trace(id, t, "request", len, || {
            let method = match head.method {
                Method::Other(_) => "other",
                ref m => m.as_str(),
            };
            let path = match routed {
                Routed::NotFound => "?",
                _ => head.path(),
            };
            format!("{method} {path}")
        });
        let needs_body = routed == Routed::Found(Route::Publish);
        if head.framing == BodyFraming::None && !needs_body {
            self.dispatch(head, Vec::new(), ctx);
            return true;
        }
        if needs_body && head.framing == BodyFraming::None {
            // RFC 9110 §8.6: a POST without a length is refused with 411
            // (a zero-length publish says `Content-Length: 0`).
            let why = "publish needs Content-Length or chunked body";
            self.refuse(Refusal::new(411, why), !head.keep_alive, ctx);
            return true;
        }
        // Refuse before the client sends its body when we can already tell.
        if needs_body {
            if let Err(refusal) = self.check_publish(&head, ctx) {
                self.refuse(refusal, true, ctx);
                return true;
            }
        }
        let limit = if needs_body {
            ctx.config.max_message
        } else {
            MAX_HEAD_BYTES
        };
        let decoder = match BodyDecoder::new(head.framing, limit) {
            Ok(d) => d,
            Err(e) => {
                self.refuse(e.into(), true, ctx);
                return true;
            }
        };
        // RFC 9110 §10.1.1: send 100 Continue once we mean to read the body.
        if head.expect_continue {
            self.out.push_slice(http1::CONTINUE);
        }
        self.state = State::Body {
            head: Box::new(head),
            decoder,
            body: Vec::new(),
            deadline: ctx.now + ctx.config.head_timeout,
        };
        true
    }

    /// Feeds `input` to the body decoder; dispatches once the body is whole.
    pub(super) fn step_body(&mut self, ctx: &mut Ctx) -> bool {
        let State::Body { decoder, body, .. } = &mut self.state else {
            return false;
        };
        if self.input.is_empty() && !decoder.is_empty_body() {
            return false;
        }
        match decoder.decode(&self.input, body) {
            Ok(BodyStatus::Incomplete) => {
                self.input.clear();
                false
            }
            Ok(BodyStatus::Complete { consumed }) => {
                self.input.drain(..consumed);
                let State::Body { head, body, .. } = std::mem::replace(
                    &mut self.state,
                    State::Head {
                        scanned: 0,
                        deadline: None,
                    },
                ) else {
                    unreachable!("matched above");
                };
                self.dispatch(*head, body, ctx);
                true
            }
            Err(e) => {
                self.refuse(e.into(), true, ctx);
                true
            }
        }
    }

    /// Answers one complete request.
    fn dispatch(&mut self, head: RequestHead, body: Vec<u8>, ctx: &mut Ctx) {
        let req = ReqInfo::of(&head);
        if let Some(methods) = cors::preflight_methods(&head, &ctx.config.allow_origins) {
            self.count_request(Transport::Http, ctx);
            return self.answer_preflight(req, &head, methods, ctx);
        }
        let routed = route(&head.method, head.path());
        let r = match routed {
            Routed::NotFound => {
                self.count_request(Transport::Http, ctx);
                let path = head.path().to_string();
                let refusal = Refusal::new(404, format!("no such path: {path}"));
                return self.refuse(refusal, !req.keep_alive, ctx);
            }
            Routed::MethodNotAllowed { allow } => {
                self.count_request(Transport::Http, ctx);
                let why = format!("{} is not allowed here", head.method.as_str());
                let refusal = Refusal::new(405, why).with_header("Allow", allow);
                return self.refuse(refusal, !req.keep_alive, ctx);
            }
            Routed::Found(r) => r,
        };
        let query = match Query::parse(head.query()) {
            Ok(q) => q,
            Err(e) => {
                self.count_request(Transport::Http, ctx);
                return self.refuse(e.into(), !req.keep_alive, ctx);
            }
        };
        if let Err(refusal) = self.authorize(r, &head, &query, ctx) {
            self.count_request(r.transport(), ctx);
            return self.refuse(refusal, !req.keep_alive, ctx);
        }
        let needs_log = matches!(
            r,
            Route::Publish | Route::Poll | Route::LongPoll | Route::Events | Route::Ws
        );
        if needs_log && !ctx.hub.log().is_ready() {
            self.count_request(r.transport(), ctx);
            let why = "this node has not read the shared log yet; try again (see /healthz)";
            let refusal = Refusal::new(503, why).with_header("Retry-After", "1");
            return self.refuse(refusal, !req.keep_alive, ctx);
        }
        match r {
            Route::Page => {
                self.count_request(Transport::Http, ctx);
                self.respond_bytes(req, 200, "text/html; charset=utf-8", &[], PAGE, ctx);
            }
            Route::Client => {
                self.count_request(Transport::Http, ctx);
                self.respond_bytes(
                    req,
                    200,
                    "text/javascript; charset=utf-8",
                    &[("Cache-Control", "no-cache")],
                    CLIENT,
                    ctx,
                );
            }
            Route::Stats => {
                self.count_request(Transport::Http, ctx);
                let uptime = ctx.now - ctx.started;
                let memory = ctx.memory();
                let broker = ctx.hub.log().broker(ctx.now);
                let body = ctx.stats.to_json(
                    ctx.hub.epoch(),
                    ctx.hub.head(),
                    uptime,
                    memory,
                    broker.as_ref(),
                );
                self.respond_bytes(
                    req,
                    200,
                    "application/json",
                    &[("Cache-Control", "no-store")],
                    &body,
                    ctx,
                );
            }
            Route::Health => {
                self.count_request(Transport::Http, ctx);
                let broker = ctx.hub.log().broker(ctx.now);
                let (status, body) = crate::stats::health_json(broker.as_ref());
                self.respond_bytes(
                    req,
                    status,
                    "application/json",
                    &[("Cache-Control", "no-store")],
                    &body,
                    ctx,
                );
            }
            Route::Metrics => {
                self.count_request(Transport::Http, ctx);
                let broker = ctx.hub.log().broker(ctx.now);
                let body = ctx.stats.to_prometheus(ctx.memory(), broker.as_ref());
                self.respond_bytes(req, 200, "text/plain; version=0.0.4", &[], &body, ctx);
            }
            Route::Publish => {
                self.count_request(Transport::Http, ctx);
                self.publish(&head, &query, body, ctx);
            }
            Route::Poll => self.answer_poll(req, &query, ctx),
            Route::LongPoll => self.start_long_poll(req, &query, ctx),
            Route::Events => self.start_sse(req, &head, &query, ctx),
            Route::Ws | Route::Echo => self.start_websocket(r, &head, &query, ctx),
            Route::Trace => self.start_trace(ctx),
        }
    }

    /// The credential checks of a routed request, before anything is
    /// answered or subscribed (a WebSocket handshake is refused before the
    /// upgrade): the admin token on the operator endpoints, a token granting
    /// the topics on the subscribing ones. `/publish` is checked from its
    /// head, before its body is read (`check_publish`). On `/ws` the grants
    /// are kept for what the connection may publish, and expiry.
    fn authorize(
        &mut self,
        r: Route,
        head: &RequestHead,
        query: &Query,
        ctx: &Ctx,
    ) -> Result<(), Refusal> {
        self.grants = None;
        match r {
            Route::Stats | Route::Metrics => auth::check_admin(head, ctx.config, false),
            Route::Trace => auth::check_admin(head, ctx.config, true),
            Route::Poll | Route::LongPoll | Route::Events | Route::Ws => {
                if !ctx.config.auth.is_enabled() {
                    return Ok(());
                }
                // Bad topics are the transport's to refuse (400).
                let Ok(topics) = query.topics() else {
                    return Ok(());
                };
                let names: Vec<&str> = topics.iter().map(|t| &**t).collect();
                self.grants = auth::check_subscribe(head, query, &names, ctx)?.map(Box::new);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A CORS preflight (Fetch §3.2.2) to a route taking `methods`: `204`
    /// with the CORS headers when the origin is allowed, else `403`.
    fn answer_preflight(&mut self, req: ReqInfo, head: &RequestHead, methods: &str, ctx: &mut Ctx) {
        let Some(origin) = &self.cors else {
            let origin = String::from_utf8_lossy(head.header("origin").unwrap_or_default());
            let why = format!("origin {origin} may not use this endpoint (see --allow-origin)");
            return self.refuse(Refusal::new(403, why), !req.keep_alive, ctx);
        };
        let mut out = Vec::with_capacity(320);
        let h = ResponseHead::new(&mut out, 204);
        cors::with_preflight_headers(h, origin, methods).finish_no_content(req.keep_alive);
        self.out.push_owned(out);
        self.finish_response(req, 204, ctx);
    }

    /// Counts a request under `t` (classifying the socket on its first one).
    pub(super) fn count_request(&mut self, t: Transport, ctx: &mut Ctx) {
        self.classify(t, ctx);
        let c = ctx.stats.of(t);
        c.requests += 1;
        if self.answered > 0 {
            c.requests_on_reused_socket += 1;
        }
    }

    /// Behind a trusted proxy: counts the connection under the client
    /// address the first request forwards (`--max-connections-per-ip`), or
    /// refuses it with `503` when that client already holds the limit.
    /// Returns false when refused.
    fn admit_forwarded(&mut self, head: &RequestHead, ctx: &mut Ctx) -> bool {
        let forwarded =
            clients::forwarded_client(head.header("forwarded"), head.header("x-forwarded-for"));
        let Some(client) = forwarded else {
            return true;
        };
        if !ctx.clients.admit(&client) {
            ctx.stats.connections_refused += 1;
            let why = "too many connections from your address";
            self.refuse(
                Refusal::new(503, why).with_header("Retry-After", "1"),
                true,
                ctx,
            );
            return false;
        }
        let (id, t) = (self.serial, self.transport);
        ctx.trace(id, t, "client", 0, || format!("forwarded for {client}"));
        self.client = Some(client);
        true
    }

    /// Token and topic checks that can be made from the head alone.
    fn check_publish(&self, head: &RequestHead, ctx: &Ctx) -> Result<Rc<str>, Refusal> {
        let query = Query::parse(head.query())?;
        let topic = match query.single_topic() {
            Ok(t) => t,
            // Without a valid topic there is nothing to authorize: the
            // credential is still checked first, as before topics existed.
            Err(e) => {
                auth::check_publish(head, &query, "", ctx)?;
                return Err(e.into());
            }
        };
        auth::check_publish(head, &query, &topic, ctx)?;
        Ok(topic)
    }

    fn publish(&mut self, head: &RequestHead, query: &Query, body: Vec<u8>, ctx: &mut Ctx) {
        let req = ReqInfo::of(head);
        let _ = query;
        let topic = match self.check_publish(head, ctx) {
            Ok(t) => t,
            Err(refusal) => return self.refuse(refusal, !req.keep_alive, ctx),
        };
        // docs/api.md § Binary messages: an octet-stream body is a binary
        // message, kept as its base64; any other body is text.
        let kind = if is_octet_stream(head.header("content-type")) {
            Kind::Binary
        } else {
            Kind::Text
        };
        let data = match kind {
            Kind::Binary => encode_binary(&body),
            Kind::Text => match String::from_utf8(body) {
                Ok(text) => text,
                Err(_) => {
                    let why = "message is not UTF-8 (send bytes as Content-Type: application/octet-stream)";
                    return self.refuse(Refusal::new(400, why), !req.keep_alive, ctx);
                }
            },
        };
        match ctx.hub.append(&topic, kind, &data, ctx.now) {
            Ok(ticket) => {
                // Answered when the message commits, with its id.
                ctx.appended.push(ticket);
                let pending = Pending {
                    ticket,
                    req,
                    cors: self.cors.take(),
                    len: data.len(),
                };
                self.state = State::Publishing(Box::new(Publishing::new(pending)));
            }
            Err(e) => self.refuse(e.into(), !req.keep_alive, ctx),
        }
    }

    /// While publishes wait for their commits: appends the next pipelined
    /// request too when it is a publish that would be taken as it is — its
    /// head and body whole in `input`, allowed, its message accepted by the
    /// log — so that a log committing later (a disk's group commit, a
    /// Redis round trip) commits a pipelining publisher's messages
    /// together instead of one per commit. Anything else (another request,
    /// a refusal to answer, a body still arriving, a chunked body) waits,
    /// unread, until every publish before it is answered, and is then read
    /// as usual: answers stay in request order. Returns whether a publish
    /// was taken.
    pub(super) fn step_pipelined_publish(&mut self, ctx: &mut Ctx) -> bool {
        let State::Publishing(publishing) = &self.state else {
            return false;
        };
        let last = publishing.queue.back();
        if !last.is_some_and(|p| p.req.keep_alive) || (self.behind_proxy && self.client.is_none()) {
            return false;
        }
        let room = ctx
            .config
            .max_pipelined_bytes
            .saturating_sub(publishing.bytes);
        let Some(next) = self.peek_publish(room.min(ctx.config.max_message), ctx) else {
            return false;
        };
        let Ok(ticket) = ctx.hub.append(&next.topic, next.kind, &next.data, ctx.now) else {
            // Refused by the log: answered in turn by the usual path.
            return false;
        };
        self.input.drain(..next.consumed);
        let head_len = next.consumed - next.data.len();
        let (id, t) = (self.serial, self.transport);
        ctx.trace(id, t, "request", head_len, || "POST /publish".to_string());
        self.count_request(Transport::Http, ctx);
        ctx.appended.push(ticket);
        let pending = Pending {
            ticket,
            req: ReqInfo::of(&next.head),
            cors: cors::allowed_origin(&next.head, &ctx.config.allow_origins),
            len: next.data.len(),
        };
        if let State::Publishing(publishing) = &mut self.state {
            publishing.push(pending);
        }
        true
    }

    /// The publish at the front of `input`, if it is whole, with a
    /// `Content-Length` body of at most `limit` bytes, and allowed as it is.
    /// Consumes nothing.
    fn peek_publish(&self, limit: usize, ctx: &Ctx) -> Option<Pipelined> {
        let HeadEnd::Complete(len) = find_head_end(&self.input, 0) else {
            return None;
        };
        if len > MAX_HEAD_BYTES {
            return None;
        }
        let head = parse_head(&self.input[..len]).ok()?;
        let BodyFraming::ContentLength(body_len) = head.framing else {
            return None;
        };
        let body_len = usize::try_from(body_len).ok()?;
        if head.expect_continue
            || body_len > limit
            || self.input.len() - len < body_len
            || route(&head.method, head.path()) != Routed::Found(Route::Publish)
            || !ctx.hub.log().is_ready()
        {
            return None;
        }
        let topic = self.check_publish(&head, ctx).ok()?;
        let body = &self.input[len..len + body_len];
        let (kind, data) = if is_octet_stream(head.header("content-type")) {
            (Kind::Binary, encode_binary(body))
        } else {
            (Kind::Text, std::str::from_utf8(body).ok()?.to_string())
        };
        Some(Pipelined {
            consumed: len + body_len,
            head,
            topic,
            kind,
            data,
        })
    }

    /// The message of the pending `POST /publish` committed (its id is the
    /// answer) or was refused by the log.
    pub(super) fn publish_committed(
        &mut self,
        outcome: &Result<Rc<Message>, HubError>,
        ctx: &mut Ctx,
    ) {
        let waiting = State::Head {
            scanned: 0,
            deadline: None,
        };
        let mut publishing = match std::mem::replace(&mut self.state, waiting) {
            State::Publishing(publishing) => publishing,
            other => {
                self.state = other;
                return;
            }
        };
        let Some(Pending { req, cors, .. }) = publishing.pop() else {
            return;
        };
        self.cors = cors;
        match outcome {
            Ok(msg) => {
                ctx.stats.messages_published += 1;
                let reply = json::publish_reply(&msg.topic, &msg.id);
                self.respond_bytes(req, 200, "application/json", &[], &reply, ctx);
            }
            Err(e) => self.refuse(e.clone().into(), !req.keep_alive, ctx),
        }
        // The publishes pipelined behind it go on waiting; the connection is
        // not idle meanwhile.
        if publishing.len() > 0 && self.lifecycle == Lifecycle::Open {
            self.state = State::Publishing(publishing);
            self.idle_deadline = None;
        }
    }

    /// The server is shutting down while a publish waits for its commit:
    /// its answer will close the connection.
    pub(super) fn publishing_then_close(&mut self) {
        if let State::Publishing(publishing) = &mut self.state {
            if let Some(last) = publishing.queue.back_mut() {
                last.req.keep_alive = false;
            }
        }
    }

    /// Writes a response head for a body of `len` bytes (the caller pushes
    /// the body unless `req.head_only`).
    pub(super) fn respond_head(
        &mut self,
        req: ReqInfo,
        status: u16,
        content_type: &str,
        extra: &[(&str, &str)],
        len: usize,
    ) {
        let mut head = Vec::with_capacity(160);
        let mut h = ResponseHead::new(&mut head, status).header("Content-Type", content_type);
        for (name, value) in extra {
            h = h.header(name, value);
        }
        if let Some(origin) = &self.cors {
            h = cors::with_headers(h, origin);
        }
        h.finish(len, req.keep_alive);
        self.out.push_owned(head);
    }

    /// A whole response with a body copied from `body`.
    pub(super) fn respond_bytes(
        &mut self,
        req: ReqInfo,
        status: u16,
        content_type: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        ctx: &mut Ctx,
    ) {
        self.respond_head(req, status, content_type, extra, body.len());
        if !req.head_only {
            self.out.push_slice(body);
        }
        self.finish_response(req, status, ctx);
    }

    /// After a response: trace it and move on to the next request.
    pub(super) fn finish_response(&mut self, req: ReqInfo, status: u16, ctx: &mut Ctx) {
        let (id, t, queued) = (self.serial, self.transport, self.out.len());
        ctx.trace(id, t, "response", queued, || status.to_string());
        self.next_request(req.keep_alive, ctx);
    }

    /// Answers with a refusal: a plain-text error response. `close` ends
    /// the connection after it (always, when the request could not be
    /// framed).
    pub(super) fn refuse(&mut self, refusal: Refusal, close: bool, ctx: &mut Ctx) {
        ctx.stats.errors_sent += 1;
        let Refusal {
            status,
            reason: why,
            header,
        } = refusal;
        let pair = header.as_ref().map(|(n, v)| (*n, v.as_ref()));
        let extra: &[(&str, &str)] = match &pair {
            Some(h) => std::slice::from_ref(h),
            None => &[],
        };
        let body = error_body(status, &why);
        let req = ReqInfo {
            keep_alive: !close,
            head_only: self.head_only,
        };
        self.respond_head(req, status, "text/plain; charset=utf-8", extra, body.len());
        // RFC 9110 §9.3.2: the server MUST NOT send content in the response
        // to HEAD — error or not, or the client reads the body as the start
        // of the next response.
        if !req.head_only {
            self.out.push_owned(body.into_bytes());
        }
        let (id, t) = (self.serial, self.transport);
        // The status only: `why` may quote what the client sent.
        ctx.trace(id, t, "response", 0, || status.to_string());
        if close {
            self.state = State::Head {
                scanned: 0,
                deadline: None,
            };
            self.lifecycle = Lifecycle::Closing;
            self.input = Vec::new();
            self.answered += 1;
        } else {
            self.next_request(true, ctx);
        }
    }
}

/// The body of an error response: `<status> <reason>: <why>` and a newline.
/// `why` may quote what the client sent (a topic, a cursor, decoded from
/// `%0D%0A` and the like): every control character in it is written as an
/// escape (`\u{d}`), so no line of the body is one the client chose.
pub(super) fn error_body(status: u16, why: &str) -> String {
    use std::fmt::Write as _;
    let mut body = String::with_capacity(why.len() + 32);
    let _ = write!(body, "{status} {}: ", http1::reason(status));
    for c in why.chars() {
        if c.is_control() {
            let _ = write!(body, "{}", c.escape_unicode());
        } else {
            body.push(c);
        }
    }
    body.push('\n');
    body
}

#[cfg(test)]
mod tests {
    //! `POST /publish` of text and of bytes (docs/api.md § Binary messages),
    //! read back by a poll and a long poll on the same rig.

    use super::*;
    use crate::config::Config;
    use crate::hub::decode_binary;
    use crate::testkit::{split_head, Rig};

    #[test]
    fn only_application_octet_stream_is_binary_whatever_its_case_and_parameters() {
        for yes in [
            &b"application/octet-stream"[..],
            b"Application/Octet-Stream",
            b"application/octet-stream; charset=x",
            b" application/octet-stream ;a=b",
        ] {
            assert!(is_octet_stream(Some(yes)), "{yes:?}");
        }
        for no in [
            &b"text/plain"[..],
            b"application/json",
            b"application/octet-streams",
            b"application/octet",
            b"",
        ] {
            assert!(!is_octet_stream(Some(no)), "{no:?}");
        }
        assert!(!is_octet_stream(None));
    }

    /// Sends one request on a new session; returns its status and body once
    /// whatever it appended has committed.
    fn exchange(rig: &mut Rig, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = Session::new(1, rig.now, &rig.config);
        let mut input = head.as_bytes().to_vec();
        input.extend_from_slice(body);
        s.handle_input(&input, &mut rig.ctx());
        rig.commit_to(&mut s);
        let (head, body) = split_head(&s.output().take_all());
        (head[9..12].parse().unwrap(), body)
    }

    fn post(rig: &mut Rig, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "POST /publish?topic=a HTTP/1.1\r\nHost: t\r\n{content_type}Content-Length: {}\r\n\r\n",
            body.len()
        );
        exchange(rig, &head, body)
    }

    const BYTES: &[u8] = &[0xff, 0, b'"', 0xc3];

    #[test]
    fn an_octet_stream_body_is_published_as_bytes_and_polled_as_marked_base64() {
        let mut rig = Rig::new(Config::default());
        let (status, body) = post(
            &mut rig,
            "Content-Type: application/octet-stream\r\n",
            BYTES,
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let msg = rig.published[0].clone();
        assert_eq!((msg.kind, &*msg.id), (Kind::Binary, "e1-1"));
        assert_eq!(decode_binary(&msg.data).unwrap(), BYTES);
        // The same bytes as text are refused: not UTF-8.
        let (status, body) = post(&mut rig, "Content-Type: text/plain\r\n", BYTES);
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains("application/octet-stream"));
        // No content type: text, as ever.
        assert_eq!(post(&mut rig, "", b"plain").0, 200);
        assert_eq!(rig.published[1].kind, Kind::Text);

        let (status, body) = exchange(
            &mut rig,
            "GET /poll?topic=a&since=0 HTTP/1.1\r\nHost: t\r\n\r\n",
            b"",
        );
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["messages"],
            serde_json::json!([
                {"topic": "a", "id": "e1-1", "encoding": "base64", "data": "/wAiww=="},
                {"topic": "a", "id": "e1-2", "data": "plain"},
            ])
        );
        // The binary message's id is a cursor like any other.
        let (_, body) = exchange(
            &mut rig,
            "GET /poll?topic=a&since=e1-1 HTTP/1.1\r\nHost: t\r\n\r\n",
            b"",
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["messages"][0]["id"], "e1-2");
    }

    #[test]
    fn a_long_poll_released_by_a_binary_message_gets_it_marked() {
        let mut rig = Rig::new(Config::default());
        let mut s = Session::new(1, rig.now, &rig.config);
        let req = b"GET /long-poll?topic=a HTTP/1.1\r\nHost: t\r\n\r\n";
        s.handle_input(req, &mut rig.ctx());
        assert!(s.output().is_empty(), "held");
        let msg = rig.publish_binary("a", b"\x01\x02");
        s.handle_message(&msg, &mut rig.ctx());
        let (_, body) = split_head(&s.output().take_all());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["messages"],
            serde_json::json!([{"topic": "a", "id": "e1-1", "encoding": "base64", "data": "AQI="}])
        );
        assert_eq!(v["next"], "e1-1");
    }

    #[test]
    fn max_message_counts_the_raw_bytes_of_a_binary_publish() {
        let mut rig = Rig::new(Config {
            max_message: 4,
            ..Config::default()
        });
        let octets = "Content-Type: application/octet-stream\r\n";
        assert_eq!(post(&mut rig, octets, BYTES).0, 200);
        assert_eq!(rig.published[0].data.len(), 8, "kept as base64");
        assert_eq!(post(&mut rig, octets, b"12345").0, 413);
    }
}

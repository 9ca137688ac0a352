//! One connection's state machine, with no I/O: bytes, time and published
//! messages come in through `handle_*` methods; bytes go out through the
//! connection's [`OutQueue`]; the hub, the counters and the trace are reached
//! through a [`Ctx`] the caller lends for the duration of each call.
//!
//! This file owns every transition of a connection's life:
//!
//! ```text
//!            ┌────────────── keep-alive ───────────────┐
//!            v                                         │
//! accept → Head ─→ Body ─→ (route) ─→ answer at once ──┤
//!            │                  ├──→ LongPoll (held) ───┘  on message / timeout
//!            │                  ├──→ Sse        (until close)
//!            │                  └──→ WebSocket  (until close)
//!            └─ error / Connection: close ─→ Closing ─→ Lingering ─→ Closed
//! ```
//!
//! House rules, in the manner of h11:
//! - Requests on one socket are answered strictly in order. While a long poll
//!   is held, pipelined bytes behind it wait in `input` (bounded).
//! - A request that cannot be framed (bad head, bad body) is answered and the
//!   connection closed: the server no longer knows where the next one starts.
//!   Errors in a well-framed request (404, 405, bad parameter) keep it open.
//!   Either way an error answer is a [`Refusal`] (status, reason, header),
//!   written by one method, `Session::refuse`.
//! - After a response that closes the connection, the server half-closes and
//!   drains what the client still sends for a moment ([`Lifecycle::Lingering`]),
//!   so the client reads the response instead of a reset.
//! - While output is pending, the connection's deadline is about *write
//!   progress*: it is closed when the client accepts none of it for
//!   `--send-timeout` (open, streaming or closing alike). The idle and
//!   request-head deadlines wait meanwhile and start over once the queue is
//!   written out: a slow but steady reader is never cut mid-answer.
//! - A client may shut its write side after its last request and still read
//!   (`printf … | nc -N`): every complete request received before the EOF is
//!   answered, including those waiting behind a full output queue, then the
//!   connection closes. A long poll or stream that such a request would open
//!   is dropped, as one whose client hangs up.
//!
//! Call protocol for the event loop (see `server/`):
//! 1. feed [`Session::handle_input`] / [`Session::handle_eof`] /
//!    [`Session::handle_message`] / [`Session::handle_timeout`];
//! 2. write [`Session::output`], report each write attempt with
//!    [`Session::handle_written`] (bytes the kernel took, 0 on `WouldBlock`),
//!    then call [`Session::handle_flushed`] when the queue is empty;
//! 3. re-arm the timer at [`Session::next_deadline`]; stop reading while
//!    [`Session::wants_read`] is false; drop the connection when
//!    [`Session::lifecycle`] is [`Lifecycle::Closed`] (after
//!    [`Session::handle_close`]).

pub mod assembly;
pub mod auth;
pub mod cors;
pub mod deflate;
pub mod encoded;
pub mod http;
pub mod long_poll;
pub mod output;
pub mod refusal;
pub mod routing;
pub mod short_poll;
pub mod sse;
pub mod subscription;
pub mod trace;
pub mod websocket;

#[cfg(test)]
mod expiry_tests;
#[cfg(test)]
mod lifecycle_tests;

use std::rc::Rc;
use std::time::Duration;

use crate::clients::Clients;
use crate::config::Config;
use crate::hub::{Hub, HubError, Message, Notice, SubscriberId, Ticket};
use crate::stats::{Stats, TraceEvent, Tracer, Transport};
use crate::timers::Instant;
use crate::wire::http1::{BodyDecoder, RequestHead};
pub use refusal::Refusal;
pub use subscription::Subscription;

pub use assembly::Assembly;
pub use deflate::Deflate;
pub use output::OutQueue;

/// How long a closing connection keeps draining client bytes after its
/// last response, so the response is not lost to a TCP reset.
pub const LINGER: Duration = Duration::from_secs(2);

/// What a session may use while it handles one input. Lent by the event loop.
pub struct Ctx<'a> {
    /// The time of this loop turn.
    pub now: Instant,
    pub config: &'a Config,
    pub hub: &'a mut Hub,
    pub stats: &'a mut Stats,
    pub tracer: &'a mut Tracer,
    /// Tickets of the messages appended to the log during the call: the
    /// engine hands each commit back to the connection that appended it
    /// ([`Session::handle_commit`]) and fans out what committed.
    pub appended: &'a mut Vec<Ticket>,
    /// The server-wide budget for messages being assembled.
    pub assembly: &'a mut Assembly,
    /// The server's permessage-deflate compressors.
    pub deflate: &'a mut Deflate,
    /// When the server started (for `/stats` uptime).
    pub started: Instant,
    /// Connections per client address (`--max-connections-per-ip`).
    pub clients: &'a mut Clients,
    /// The Unix time, in milliseconds, of [`Instant::ZERO`]: tokens'
    /// `exp`/`nbf`/`iat` are Unix times. Read from the OS clock by the
    /// shell once, at start; tests choose it.
    pub wall_origin_ms: u64,
}

impl Ctx<'_> {
    /// The Unix time of this turn, in seconds.
    pub fn unix_secs(&self) -> u64 {
        (self.wall_origin_ms + self.now.as_micros() / 1000) / 1000
    }

    /// The instant at which Unix time `unix` (seconds) arrives:
    /// [`Instant::ZERO`] for a time before it, and far in the future (not
    /// an overflow) for a token whose `exp` is near `u64::MAX`.
    pub fn instant_of_unix(&self, unix: u64) -> Instant {
        let ms = unix
            .saturating_mul(1000)
            .saturating_sub(self.wall_origin_ms);
        Instant::from_micros(ms.saturating_mul(1000))
    }

    /// What the server holds against its memory budgets, for `/stats`.
    pub fn memory(&self) -> crate::stats::Memory {
        crate::stats::Memory {
            history: self.hub.usage(),
            assembling_bytes: self.assembly.used(),
            assembly_limit: self.assembly.limit(),
            assembly_refusals: self.assembly.refusals(),
        }
    }

    /// Records a trace event for `conn`.
    pub fn trace(
        &mut self,
        conn: u64,
        transport: Transport,
        kind: &'static str,
        bytes: usize,
        detail: impl FnOnce() -> String,
    ) {
        let now = self.now;
        self.tracer.record(|| TraceEvent {
            at: now,
            conn,
            transport,
            kind,
            bytes,
            detail: detail(),
        });
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Reading requests / streaming.
    Open,
    /// Close once the output queue is flushed.
    Closing,
    /// Output sent and write side shut; draining input until EOF or timeout.
    Lingering,
    /// Drop the socket now.
    Closed,
}

/// The send timeout of a connection with output pending.
#[derive(Clone, Copy, Debug)]
struct WriteStall {
    /// When the timer fires (not moved by every write; see
    /// [`Session::handle_written`]).
    deadline: Instant,
    /// The last write that moved bytes, or the first attempt.
    progress_at: Instant,
}

/// What the connection is doing.
pub(crate) enum State {
    /// Waiting for (the rest of) a request head.
    Head {
        /// Bytes of `input` already scanned for the end of the head.
        scanned: usize,
        /// Deadline for the head: set when its first byte arrives (or at
        /// accept). `None` while an idle keep-alive connection waits.
        deadline: Option<Instant>,
    },
    /// Reading a request body.
    Body {
        head: Box<RequestHead>,
        decoder: BodyDecoder,
        body: Vec<u8>,
        deadline: Instant,
    },
    /// A long poll is parked.
    LongPoll(long_poll::Hold),
    /// An SSE stream: the response never ends.
    Sse(Box<sse::Stream>),
    /// A WebSocket after the handshake.
    WebSocket(Box<websocket::WsConn>),
    /// `GET /trace`: an SSE stream of socket events.
    Trace(trace::Watch),
    /// `POST /publish` appended its message: the answer waits for the
    /// log's commit ([`Session::handle_commit`]). Publishes pipelined
    /// behind it are appended too (so a log that commits later, as on disk
    /// or in Redis, commits them together); any other request waits.
    Publishing(Box<http::Publishing>),
}

/// One client connection.
pub struct Session {
    /// The connection's slot in the engine's table; also its hub subscriber
    /// id. Reused after the connection closes.
    pub id: SubscriberId,
    /// The connection's serial number, never reused: its name in the trace
    /// (`/trace`, `--trace`, the demo timeline).
    pub serial: u64,
    opened_at: Instant,
    /// The transport the socket counts under: that of its first
    /// transport-bearing request.
    transport: Transport,
    /// The transport of the request being served now. A keep-alive socket
    /// can serve several (browsers hand idle sockets from one `fetch` to
    /// another), so bytes are counted under this one, per request.
    serving: Transport,
    /// Requests answered on this socket.
    answered: u64,
    /// Unconsumed request bytes; empty (unallocated) when nothing is partial.
    input: Vec<u8>,
    out: OutQueue,
    state: State,
    lifecycle: Lifecycle,
    /// Idle keep-alive deadline (waiting for the first byte of a request).
    /// Waits while output is being written; restarted once it is written out.
    idle_deadline: Option<Instant>,
    linger_deadline: Option<Instant>,
    /// The send timeout, while output is pending and the loop has tried to
    /// write it (see [`Session::handle_written`]).
    write_stall: Option<WriteStall>,
    /// The peer shut its write side.
    peer_eof: bool,
    /// The peer is a trusted proxy (`--trust-proxy`): the client is the
    /// address its first request forwards.
    pub behind_proxy: bool,
    /// That forwarded client address, once counted in [`Ctx::clients`].
    client: Option<Box<str>>,
    /// The `Origin` to echo in CORS headers of the response to the current
    /// request ([`cors::allowed_origin`]); `None` (nothing allocated) for a
    /// same-origin request or when `--allow-origin` is not set.
    cors: Option<cors::Allowed>,
    /// Bytes this connection's partial message holds against
    /// `--assembly-memory` ([`Assembly::charge`]).
    assembling: usize,
    /// The request being answered is `HEAD`: its response, error or not,
    /// has no body (RFC 9110 §9.3.2).
    head_only: bool,
    /// What the token of the current subscribing request granted (`None`:
    /// no token was needed); a stream keeps it for its life.
    grants: Option<Box<crate::auth::Grants>>,
}

impl Session {
    /// A new connection accepted at `now`.
    pub fn new(id: SubscriberId, now: Instant, config: &Config) -> Session {
        Session {
            id,
            serial: id as u64,
            opened_at: now,
            transport: Transport::Http,
            serving: Transport::Http,
            answered: 0,
            input: Vec::new(),
            out: OutQueue::new(),
            // A fresh connection must send its first head in time: a client
            // that connects and says nothing holds a slot for head_timeout only.
            state: State::Head {
                scanned: 0,
                deadline: Some(now + config.head_timeout),
            },
            lifecycle: Lifecycle::Open,
            idle_deadline: None,
            linger_deadline: None,
            write_stall: None,
            peer_eof: false,
            behind_proxy: false,
            client: None,
            cors: None,
            assembling: 0,
            head_only: false,
            grants: None,
        }
    }

    /// The transport this socket counts under.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The transport of the request being served: the one the loop counts
    /// the bytes it reads and writes under.
    pub fn serving(&self) -> Transport {
        self.serving
    }

    /// When the connection was accepted.
    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    /// Where the connection is in its life.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// Pending output, for the event loop to write.
    pub fn output(&mut self) -> &mut OutQueue {
        &mut self.out
    }

    /// Whether the event loop should read from the socket. False while
    /// enough pipelined input or output is waiting (back-pressure):
    /// `max_pipelined_bytes` of input received and not yet answered
    /// (`--max-pipelined-bytes`).
    pub fn wants_read(&self, max_pipelined_bytes: usize) -> bool {
        match self.lifecycle {
            Lifecycle::Open => {}
            Lifecycle::Lingering => return true,
            Lifecycle::Closing | Lifecycle::Closed => return false,
        }
        if let State::WebSocket(ws) = &self.state {
            // Back-pressure: a peer that sends faster than it reads the
            // answers (echoes, pongs) is not read until they are written.
            return !self.peer_eof && ws.wants_read(self.out.len());
        }
        !self.peer_eof && self.input.len() < max_pipelined_bytes
    }

    /// The earliest instant at which [`Session::handle_timeout`] must run.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.state_deadline(),
            self.idle_deadline(),
            self.stall_deadline(),
            self.linger_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether output is pending and the loop has tried to write it: then
    /// the send timeout is the connection's deadline, and the idle and
    /// request deadlines wait. (Until that first attempt — the end of the
    /// turn that queued the output — they stay as they are, so a queue
    /// written out at once changes no deadline and costs no timer update.)
    fn is_writing(&self) -> bool {
        self.write_stall.is_some() && !self.out.is_empty()
    }

    /// The idle deadline, which waits while output is being written.
    fn idle_deadline(&self) -> Option<Instant> {
        self.idle_deadline.filter(|_| !self.is_writing())
    }

    /// The send timeout's deadline, only while output is being written.
    fn stall_deadline(&self) -> Option<Instant> {
        self.write_stall
            .filter(|_| !self.out.is_empty())
            .map(|w| w.deadline)
    }

    /// The loop tried to write the output queue at `now` and the kernel took
    /// `n` bytes of it (0: `WouldBlock`). Call after every write attempt,
    /// then re-arm the timer when output remains.
    ///
    /// The first attempt on a queue that was empty starts the send timeout;
    /// each later one that moves bytes only notes the progress. The timer is
    /// not moved per write: when it fires, [`Session::handle_timeout`] pushes
    /// it to `send_timeout` after the last progress, or closes the
    /// connection when there was none. A slow reader costs one timer update
    /// per `send_timeout`, a fast one none.
    pub fn handle_written(&mut self, n: usize, now: Instant, config: &Config) {
        if self.out.is_empty() {
            self.write_stall = None;
            return;
        }
        match &mut self.write_stall {
            Some(stall) if n > 0 => stall.progress_at = now,
            Some(_) => {}
            None => {
                self.write_stall = Some(WriteStall {
                    deadline: now + config.send_timeout,
                    progress_at: now,
                })
            }
        }
    }

    /// Bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], ctx: &mut Ctx) {
        match self.lifecycle {
            Lifecycle::Open => {}
            // Draining after the last response: the bytes are discarded.
            Lifecycle::Lingering | Lifecycle::Closing | Lifecycle::Closed => return,
        }
        if data.is_empty() {
            return;
        }
        match self.state {
            // An SSE client has nothing to say; what it sends is dropped.
            State::Sse(_) | State::Trace(_) => return,
            State::WebSocket(_) => {
                self.ws_input(data, ctx);
                return self.charge_assembly(ctx);
            }
            _ => {}
        }
        self.idle_deadline = None;
        if let State::Head { deadline, .. } = &mut self.state {
            if deadline.is_none() {
                *deadline = Some(ctx.now + ctx.config.head_timeout);
            }
        }
        self.input.extend_from_slice(data);
        self.process_input(ctx);
        self.charge_assembly(ctx);
    }

    /// Bytes held by a message being assembled: a publish body being read,
    /// a WebSocket message being reassembled.
    fn assembling_bytes(&self) -> usize {
        match &self.state {
            State::Body { body, .. } => body.capacity(),
            State::WebSocket(ws) => ws.assembling_bytes(),
            _ => 0,
        }
    }

    /// Charges what the partial message holds to `--assembly-memory`; past
    /// the budget, refuses the message: `503` for a publish body (and
    /// close: the rest of the body cannot be told from a next request),
    /// close `1013` (try again later) for a WebSocket. A message that is
    /// complete, or refused, holds nothing.
    fn charge_assembly(&mut self, ctx: &mut Ctx) {
        let held = self.assembling_bytes();
        if ctx.assembly.charge(&mut self.assembling, held) {
            return;
        }
        let why = "the server is receiving too many large messages; try again later";
        match self.state {
            State::Body { .. } => {
                let refusal = Refusal::new(503, why).with_header("Retry-After", "1");
                self.refuse(refusal, true, ctx)
            }
            State::WebSocket(_) => self.ws_refuse_message(why, ctx),
            _ => {}
        }
        let held = self.assembling_bytes();
        ctx.assembly.charge(&mut self.assembling, held);
    }

    /// The peer closed its write side (read returned 0).
    pub fn handle_eof(&mut self, ctx: &mut Ctx) {
        self.peer_eof = true;
        match self.lifecycle {
            Lifecycle::Lingering => {
                self.lifecycle = Lifecycle::Closed;
                return;
            }
            Lifecycle::Closing | Lifecycle::Closed => return,
            Lifecycle::Open => {}
        }
        match &self.state {
            // The publish is answered when it commits, then the connection
            // finishes (`process_input` ends with `finish_after_eof`).
            State::Publishing(_) => {}
            // A parked client that hangs up is gone: drop the hold.
            State::LongPoll(_) => {
                self.end_hold_dropped(ctx);
                self.lifecycle = Lifecycle::Closed;
            }
            // A streaming client that hangs up is gone.
            State::Sse(_) | State::WebSocket(_) | State::Trace(_) => {
                self.lifecycle = Lifecycle::Closed;
            }
            // Half-close after requests: answer every complete one, even
            // those waiting for room in the output queue, then close
            // (`process_input` ends with `finish_after_eof`).
            State::Head { .. } | State::Body { .. } => self.process_input(ctx),
        }
    }

    /// A message was published on a topic this connection subscribes to.
    pub fn handle_message(&mut self, msg: &Rc<Message>, ctx: &mut Ctx) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        match self.state {
            State::LongPoll(_) => {
                self.release_hold(long_poll::Release::Message, ctx);
                self.process_input(ctx);
            }
            State::Sse(_) => self.sse_message(msg, ctx),
            State::WebSocket(_) => self.ws_message(msg, ctx),
            State::Head { .. } | State::Body { .. } | State::Trace(_) | State::Publishing(_) => {}
        }
    }

    /// A break in the log's continuity, told to every connection: a
    /// stream writes it in place (`reset`: the new epoch's messages follow
    /// from its first; `missed`: how many can never be read), a held long
    /// poll is answered at once from its own cursor (the read reports the
    /// reset or the gap). Other states have nothing to tell.
    pub fn handle_notice(&mut self, notice: &Notice, ctx: &mut Ctx) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        match self.state {
            State::LongPoll(_) => {
                self.release_hold(long_poll::Release::Message, ctx);
                self.process_input(ctx);
            }
            State::Sse(_) => self.sse_notice(notice, ctx),
            State::WebSocket(_) => self.ws_notice(notice, ctx),
            State::Head { .. } | State::Body { .. } | State::Trace(_) | State::Publishing(_) => {}
        }
    }

    /// The log answered `ticket`, an append this connection made: a
    /// `POST /publish` gets its response now and the requests pipelined
    /// behind it go on; a `/ws` message that failed to commit closes the
    /// WebSocket (`1013`: try again later).
    pub fn handle_commit(
        &mut self,
        ticket: Ticket,
        outcome: &Result<Rc<Message>, HubError>,
        ctx: &mut Ctx,
    ) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        match &self.state {
            State::Publishing(p) if p.front_ticket() == Some(ticket) => {
                self.publish_committed(outcome, ctx);
                self.process_input(ctx);
            }
            State::WebSocket(_) => self.ws_commit(outcome, ctx),
            _ => {}
        }
    }

    /// Called when `ctx.now` has reached [`Session::next_deadline`].
    pub fn handle_timeout(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        if let Some(stall) = self.write_stall.filter(|w| now >= w.deadline) {
            let due = stall.progress_at + ctx.config.send_timeout;
            if self.out.is_empty() {
                self.write_stall = None;
            } else if now < due {
                // The client read something since the timer was armed.
                self.write_stall = Some(WriteStall {
                    deadline: due,
                    ..stall
                });
            } else {
                // Like nginx's `send_timeout`: nothing written for that long.
                ctx.stats.of(self.transport).send_timeouts += 1;
                let (id, t, queued) = (self.serial, self.transport, self.out.len());
                ctx.trace(id, t, "timeout", 0, || {
                    format!("send: client read nothing, {queued} bytes pending")
                });
                self.lifecycle = Lifecycle::Closed;
                return;
            }
        }
        if self.linger_deadline.is_some_and(|d| now >= d) {
            self.lifecycle = Lifecycle::Closed;
            return;
        }
        if self.idle_deadline().is_some_and(|d| now >= d) {
            // RFC 9112 §9.5: a server may close an idle connection at any time.
            self.idle_deadline = None;
            ctx.trace(self.serial, self.transport, "timeout", 0, || "idle".into());
            self.lifecycle = Lifecycle::Closed;
            return;
        }
        if self.state_deadline().is_some_and(|d| now >= d) {
            if let State::Sse(_) = self.state {
                self.sse_timeout(ctx);
            } else if let State::WebSocket(_) = self.state {
                self.ws_timeout(ctx);
            } else if let State::Trace(_) = self.state {
                self.trace_heartbeat(ctx);
            } else if let State::LongPoll(_) = self.state {
                self.release_hold(long_poll::Release::Timeout, ctx);
                self.process_input(ctx);
            } else {
                ctx.trace(self.serial, self.transport, "timeout", 0, || {
                    "request head/body".into()
                });
                self.input = Vec::new();
                // A fresh connection that never sent a byte gets the 408 too:
                // RFC 9110 §15.5.9 allows it, and it tells the client why.
                self.refuse(Refusal::new(408, "request not received in time"), true, ctx);
            }
        }
    }

    fn state_deadline(&self) -> Option<Instant> {
        match &self.state {
            // Once closing, no request is read any more: its deadline must
            // not fire (a 408 after the last response, or after shutdown).
            State::Head { .. } | State::Body { .. } if self.lifecycle != Lifecycle::Open => None,
            // While answers are being written the send timeout rules; a
            // request waiting behind them may be complete already. The
            // deadline starts over when the queue is written out.
            State::Head { .. } | State::Body { .. } if self.is_writing() => None,
            State::Head { deadline, .. } => *deadline,
            State::Body { deadline, .. } => Some(*deadline),
            State::LongPoll(hold) => Some(hold.deadline),
            // The log times out what it cannot commit.
            State::Publishing(_) => None,
            State::Sse(stream) => stream.next_deadline(),
            State::WebSocket(ws) => ws.next_deadline(),
            State::Trace(watch) => Some(watch.heartbeat_at),
        }
    }

    /// The output queue was flushed completely. A closing connection moves
    /// to lingering: the loop shuts the write side and keeps reading. An open
    /// one answers the pipelined requests held back by a full queue, so the
    /// loop treats this call like any other (fan-out, write, re-arm).
    /// Returns true when the loop should shut down the write side now.
    pub fn handle_flushed(&mut self, ctx: &mut Ctx) -> bool {
        self.write_stall = None;
        if self.lifecycle == Lifecycle::Closing {
            if self.peer_eof {
                self.lifecycle = Lifecycle::Closed;
                return false;
            }
            self.lifecycle = Lifecycle::Lingering;
            self.linger_deadline = Some(ctx.now + LINGER);
            return true;
        }
        // Back-pressure released: go on with the requests that waited for
        // the output to drain (nothing else would wake them).
        if self.lifecycle == Lifecycle::Open {
            self.restart_read_deadlines(ctx);
            self.process_input(ctx);
            self.charge_assembly(ctx);
        }
        false
    }

    /// The output is written out: the idle and request deadlines, which
    /// waited meanwhile, count from now. (When the queue drains in the turn
    /// it was filled — the common case — they do not change.)
    fn restart_read_deadlines(&mut self, ctx: &Ctx) {
        let now = ctx.now;
        if let Some(idle) = &mut self.idle_deadline {
            *idle = now + ctx.config.idle_timeout;
        }
        match &mut self.state {
            State::Head {
                deadline: Some(deadline),
                ..
            }
            | State::Body { deadline, .. } => *deadline = now + ctx.config.head_timeout,
            _ => {}
        }
    }

    /// The server is shutting down: answer held requests now and finish.
    pub fn handle_shutdown(&mut self, ctx: &mut Ctx) {
        match self.state {
            State::LongPoll(_) => self.release_hold(long_poll::Release::Shutdown, ctx),
            State::WebSocket(_) => self.ws_shutdown(ctx),
            State::Publishing(_) => {
                // Answered when it commits (within the shutdown grace),
                // then the connection closes.
                self.publishing_then_close();
                return;
            }
            _ => {}
        }
        if self.lifecycle == Lifecycle::Open {
            self.lifecycle = if self.out.is_empty() {
                Lifecycle::Closed
            } else {
                Lifecycle::Closing
            };
        }
    }

    /// The connection is being dropped, for whatever reason: leave the hub,
    /// count the socket's lifetime.
    pub fn handle_close(&mut self, ctx: &mut Ctx) {
        match self.state {
            State::LongPoll(_) => self.end_hold_dropped(ctx),
            State::Sse(_) => self.sse_close(ctx),
            State::WebSocket(_) => self.ws_close(ctx),
            State::Trace(_) => self.trace_close(ctx),
            _ => {}
        }
        ctx.assembly.release(&mut self.assembling);
        if let Some(client) = self.client.take() {
            ctx.clients.release(&client);
        }
        let lifetime = ctx.now - self.opened_at;
        ctx.stats.socket_closed(self.transport, lifetime);
        let id = self.serial;
        let t = self.transport;
        ctx.trace(id, t, "close", 0, || {
            format!("lifetime_ms={}", lifetime.as_millis())
        });
        self.lifecycle = Lifecycle::Closed;
        self.out.clear();
        self.input = Vec::new();
    }

    /// The connection is refused at accept (`--max-connections`,
    /// `--max-connections-per-ip`): answer `refusal` whatever the client
    /// sends, then half-close and drain, so a client that already sent its
    /// request reads the answer, not a reset (RFC 9112 §9.6).
    pub fn handle_refused(&mut self, refusal: Refusal, ctx: &mut Ctx) {
        self.refuse(refusal, true, ctx);
    }

    /// Cut as a slow consumer: its queue passed `--max-queued-bytes`.
    pub fn handle_overflow(&mut self, ctx: &mut Ctx) {
        ctx.stats.of(self.transport).slow_consumer_cuts += 1;
        let (id, t, queued) = (self.serial, self.transport, self.out.len());
        ctx.trace(id, t, "close", 0, || {
            format!("slow consumer, {queued} bytes queued")
        });
        self.out.clear();
        self.lifecycle = Lifecycle::Closed;
    }

    /// Counts this socket under `t` from its first transport-bearing request.
    fn classify(&mut self, t: Transport, ctx: &mut Ctx) {
        self.serving = t;
        if self.transport == Transport::Http && t != Transport::Http {
            ctx.stats.reclassify(Transport::Http, t);
            self.transport = t;
        }
    }

    /// Parses and answers as many complete requests as `input` holds.
    fn process_input(&mut self, ctx: &mut Ctx) {
        // The common call: a subscriber's output was written out and it
        // has sent nothing (every flush of a fan-out comes here).
        if self.input.is_empty()
            && !self.peer_eof
            && !matches!(self.state, State::Head { .. } | State::Body { .. })
        {
            return;
        }
        let mut held_back = false;
        while self.lifecycle == Lifecycle::Open {
            // Back-pressure: a client that pipelines requests but does not
            // read the answers stops being served until it does.
            if self.out.len() > ctx.config.max_queued_bytes {
                held_back = true;
                break;
            }
            let progressed = match self.state {
                State::Head { .. } => self.step_head(ctx),
                State::Body { .. } => self.step_body(ctx),
                State::LongPoll(_) | State::Sse(_) | State::WebSocket(_) | State::Trace(_) => false,
                State::Publishing(_) => self.step_pipelined_publish(ctx),
            };
            if !progressed {
                break;
            }
        }
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = Vec::new();
        }
        if self.peer_eof && !held_back {
            self.finish_after_eof(ctx);
        }
    }

    /// The peer has shut its write side and no request waits for room in the
    /// output queue: nothing more can arrive (what is left of `input` is a
    /// request cut short), so finish with what is queued. A hold or stream
    /// that the last request opened is dropped, as in [`Session::handle_eof`].
    fn finish_after_eof(&mut self, ctx: &mut Ctx) {
        if self.lifecycle != Lifecycle::Open {
            return;
        }
        if let State::Publishing(_) = self.state {
            // The answer comes with the commit; finish after it.
            return;
        }
        if let State::LongPoll(_) = self.state {
            self.end_hold_dropped(ctx);
        }
        self.lifecycle = if self.out.is_empty() {
            Lifecycle::Closed
        } else {
            Lifecycle::Closing
        };
    }

    /// Returns to reading the next request after a response.
    fn next_request(&mut self, keep_alive: bool, ctx: &mut Ctx) {
        self.answered += 1;
        self.cors = None;
        self.head_only = false;
        if !keep_alive {
            self.lifecycle = Lifecycle::Closing;
            self.input = Vec::new();
            return;
        }
        let deadline = if self.input.is_empty() {
            self.idle_deadline = Some(ctx.now + ctx.config.idle_timeout);
            None
        } else {
            Some(ctx.now + ctx.config.head_timeout)
        };
        self.state = State::Head {
            scanned: 0,
            deadline,
        };
    }
}

#[cfg(test)]
mod tests {
    //! Regressions found by the `session` fuzz target (see docs/testing.md).

    use super::*;
    use crate::hub::Hub;
    use crate::testkit::Rig;

    /// A rig whose hub keeps 8 messages a topic, tracing off.
    fn rig(config: Config) -> Rig {
        let mut rig = Rig::new(config);
        rig.hub = Hub::memory("e1", 8, rig.config.history_ttl);
        rig.tracer = Tracer::default();
        rig
    }

    /// The client of closing `s` reads nothing for two head timeouts: the
    /// deadlines that pass add nothing to the answer, and it stays closing.
    fn unread_past_the_head_timeout(rig: &mut Rig, s: &mut Session) {
        let answer = s.output().to_vec();
        rig.advance(s, Instant::ZERO + rig.config.head_timeout * 2);
        assert_eq!(s.output().to_vec(), answer, "nothing added to the answer");
        assert_eq!(s.lifecycle(), Lifecycle::Closing);
    }

    /// Fuzz crash: a client pipelines two requests; the first answer fills
    /// the output queue, so the second waits. Once the queue is written, the
    /// second must be answered, not left until the head timeout sends a 408.
    /// With `--max-queued-bytes 0` nothing at all was ever answered.
    #[test]
    fn pipelined_requests_behind_a_full_queue_are_answered_once_it_drains() {
        for max_queued_bytes in [0, 10] {
            let mut rig = rig(Config {
                max_queued_bytes,
                ..Config::default()
            });
            let mut s = Session::new(1, Instant::ZERO, &rig.config);
            let req = b"GET /poll?topic=a HTTP/1.1\r\nHost: t\r\n\r\n";
            let two = [&req[..], &req[..]].concat();
            rig.now = Instant::from_millis(1);
            let mut c = rig.ctx();
            s.handle_input(&two, &mut c);
            let first = s.output().take_all();
            assert!(first.starts_with(b"HTTP/1.1 200 OK"), "{max_queued_bytes}");
            assert!(!s.handle_flushed(&mut c));
            let second = s.output().take_all();
            assert!(second.starts_with(b"HTTP/1.1 200 OK"), "{max_queued_bytes}");
            assert!(!s.handle_flushed(&mut c));
            assert!(s.output().is_empty());
            assert_eq!(s.lifecycle(), Lifecycle::Open);
        }
    }

    /// Fuzz crash: `100 Continue` alone filled the queue, so an empty
    /// publish body (`Content-Length: 0`) was never read and the request
    /// got a 408 instead of its answer.
    #[test]
    fn an_empty_body_behind_100_continue_is_read_once_the_queue_drains() {
        let mut rig = rig(Config {
            max_queued_bytes: 1,
            ..Config::default()
        });
        let mut s = Session::new(1, Instant::ZERO, &rig.config);
        let req = b"POST /publish?topic=c HTTP/1.1\r\nHost: t\r\n\
                    Expect: 100-continue\r\nContent-Length: 0\r\n\r\n";
        s.handle_input(req, &mut rig.ctx());
        assert_eq!(s.output().take_all(), crate::wire::http1::CONTINUE);
        assert!(!s.handle_flushed(&mut rig.ctx()));
        rig.commit_to(&mut s);
        let answer = s.output().take_all();
        assert!(answer.starts_with(b"HTTP/1.1 200 OK"), "{answer:?}");
    }

    /// Fuzz crashes: after a response that closes the connection (HTTP/1.0)
    /// or a shutdown, a client slow to read got a `408` appended when the
    /// head deadline of a request passed, and the session went from
    /// lingering back to closing.
    #[test]
    fn no_408_follows_a_response_that_closes_the_connection() {
        let mut rig = rig(Config::default());
        let mut s = Session::new(1, Instant::ZERO, &rig.config);
        let mut c = rig.ctx();
        s.handle_input(b"GET /poll?topic=a HTTP/1.0\r\n\r\n", &mut c);
        assert_eq!(s.lifecycle(), Lifecycle::Closing);
        unread_past_the_head_timeout(&mut rig, &mut s);
        s.output().take_all();
        assert!(s.handle_flushed(&mut rig.ctx()));
        assert_eq!(s.lifecycle(), Lifecycle::Lingering);
        rig.now = s.next_deadline().expect("the linger deadline");
        s.handle_timeout(&mut rig.ctx());
        assert!(s.output().is_empty());
        assert_eq!(s.lifecycle(), Lifecycle::Closed);
    }

    #[test]
    fn no_408_follows_a_shutdown_while_a_request_is_half_sent() {
        let mut rig = rig(Config::default());
        let mut s = Session::new(1, Instant::ZERO, &rig.config);
        let mut c = rig.ctx();
        s.handle_input(
            b"GET /poll?topic=a HTTP/1.1\r\nHost: t\r\n\r\nGET /po",
            &mut c,
        );
        s.handle_shutdown(&mut c);
        assert_eq!(s.lifecycle(), Lifecycle::Closing);
        unread_past_the_head_timeout(&mut rig, &mut s);
    }
}

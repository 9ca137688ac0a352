//! The lab's subscribers, one sans-I/O machine per transport. Like the
//! server's sessions they never touch a socket or the clock: the event loop
//! (`lab/driver.rs`) feeds them bytes, end-of-stream and time, and carries
//! out the [`Command`]s they queue.
//!
//! Call protocol:
//! 1. [`Client::handle_start`] once, then [`Client::handle_begin`] when the
//!    measured run starts (short polling arms its interval there);
//! 2. feed [`Client::handle_input`] (the bytes of the current socket, with the
//!    instant they were read), [`Client::handle_eof`] (that socket ended, or
//!    could not connect) and [`Client::handle_timer`] (the instant asked for
//!    with [`Command::WakeAt`] has come);
//! 3. after every call, take [`Client::poll_command`] until `None` and carry
//!    each out, in order;
//! 4. [`Client::handle_stop`] ends the run; the client is finished when
//!    [`Client::is_done`].
//!
//! | transport | machine | what it does, as a browser would |
//! | --- | --- | --- |
//! | short polling | [`poll::PollClient`] | `setInterval(fetch("/poll?since=…"))`, skipping a tick while the last request is still out |
//! | long polling | [`poll::PollClient`] | `fetch("/long-poll?since=next")` again as soon as an answer arrives |
//! | SSE | [`sse::SseClient`] | `EventSource`: WHATWG parser, reconnects after `retry` with `Last-Event-ID` |
//! | WebSocket | [`ws::WsClient`] | handshake, masked frames, pong, closing handshake; reconnects with `since=` (the application's job: browsers do not) |

pub mod poll;
pub mod sse;
pub mod ws;

use std::collections::VecDeque;

use crate::stats::Transport;
use crate::timers::Instant;

use super::http::encode_request;
use super::updates::Update;
use super::Column;

/// What a machine asks the event loop to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Open a new socket to the server (closing the current one, if any).
    Connect,
    /// Write these bytes on the current socket (queued until it connects).
    Send(Vec<u8>),
    /// Close the current socket.
    Close,
    /// Call [`Client::handle_timer`] at this instant (replaces the previous).
    WakeAt(Instant),
    /// Forget the pending [`Command::WakeAt`].
    CancelWake,
}

/// One update received, and whether it came on a socket that had already
/// carried an earlier response or frame (the "same socket reused" row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub update: Update,
    pub reused: bool,
}

/// Where to subscribe: the `Host` header, a path prefix (from `--url`) and
/// the run's topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub prefix: String,
    pub topic: String,
}

/// What a machine counts about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests written, handshakes included.
    pub requests: u64,
    /// Responses read (a stream counts once, at its head).
    pub responses: u64,
    /// Poll responses that carried no message.
    pub empty_responses: u64,
    /// Sockets the server ended while the client still wanted them.
    pub reconnects: u64,
    /// Short polling: ticks skipped because the previous request was out.
    pub skipped_ticks: u64,
    /// WebSocket + deflate: messages that arrived compressed (RSV1).
    pub compressed: u64,
    /// WebSocket + deflate: handshakes whose permessage-deflate offer the
    /// server declined (the connection then goes on uncompressed).
    pub deflate_declined: u64,
    /// Protocol errors; the first is kept.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Counters {
    /// Adds `other` (for a transport's total).
    pub fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.responses += other.responses;
        self.empty_responses += other.empty_responses;
        self.reconnects += other.reconnects;
        self.skipped_ticks += other.skipped_ticks;
        self.compressed += other.compressed;
        self.deflate_declined += other.deflate_declined;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// The state every machine shares: its command queue, counters and the
/// socket bookkeeping the "reused" flag needs.
#[derive(Debug, Default)]
pub(crate) struct Base {
    commands: VecDeque<Command>,
    pub counters: Counters,
    /// A socket is open or being opened.
    pub open: bool,
    /// Responses and frames received on the current socket.
    pub exchanges: u64,
    pub stopping: bool,
    pub failed: bool,
}

impl Base {
    pub fn push(&mut self, c: Command) {
        self.commands.push_back(c);
    }

    pub fn connect(&mut self) {
        self.push(Command::Connect);
        self.open = true;
        self.exchanges = 0;
    }

    /// Sends `GET target` (RFC 9112 request, no body) and counts it.
    pub fn send_get(
        &mut self,
        target: &str,
        host: &str,
        headers: &[(&str, &str)],
        keep_alive: bool,
    ) {
        let mut req = Vec::with_capacity(200);
        encode_request(&mut req, "GET", target, host, headers, b"", keep_alive);
        self.push(Command::Send(req));
        self.counters.requests += 1;
    }

    /// Closes the current socket; false when none was open.
    pub fn close(&mut self) -> bool {
        if !self.open {
            return false;
        }
        self.push(Command::Close);
        self.open = false;
        true
    }

    /// A delivery on the current socket: counts it as an exchange.
    pub fn deliver(&mut self, update: Update, out: &mut Vec<Delivery>) {
        out.push(Delivery {
            update,
            reused: self.exchanges > 0,
        });
        self.exchanges += 1;
    }

    /// A rule of the protocol was broken: count it, close, stop for good.
    pub fn fail(&mut self, why: String) {
        self.counters.errors += 1;
        if self.counters.first_error.is_none() {
            self.counters.first_error = Some(why);
        }
        self.failed = true;
        self.push(Command::CancelWake);
        self.close();
    }

    pub fn is_done(&self) -> bool {
        !self.open && (self.stopping || self.failed)
    }
}

/// A subscriber of any transport.
#[derive(Debug)]
pub enum Client {
    Poll(poll::PollClient),
    Sse(sse::SseClient),
    Ws(ws::WsClient),
}

impl Client {
    /// A subscriber of `column` (not [`Transport::Http`]).
    pub fn new(column: Column, endpoint: Endpoint, opts: &ClientOptions, seed: u64) -> Client {
        match column.transport {
            Transport::Poll => Client::Poll(poll::PollClient::new(
                poll::Mode::Short {
                    interval: opts.poll_interval,
                },
                endpoint,
                opts.keep_alive,
            )),
            Transport::LongPoll => Client::Poll(poll::PollClient::new(
                poll::Mode::Long {
                    timeout: opts.long_poll_timeout,
                },
                endpoint,
                opts.keep_alive,
            )),
            Transport::Sse => Client::Sse(sse::SseClient::new(endpoint)),
            Transport::Ws | Transport::Http => {
                let mut c = ws::WsClient::new(endpoint, opts.ws_max_message, seed);
                c.offer_deflate(column.deflate);
                Client::Ws(c)
            }
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Client::Poll(c) => c.transport(),
            Client::Sse(_) => Transport::Sse,
            Client::Ws(_) => Transport::Ws,
        }
    }

    /// The table column this subscriber counts in.
    pub fn column(&self) -> Column {
        match self {
            Client::Ws(c) if c.offers_deflate() => Column::WS_DEFLATE,
            _ => Column::plain(self.transport()),
        }
    }

    pub fn handle_start(&mut self, now: Instant) {
        match self {
            Client::Poll(c) => c.handle_start(now),
            Client::Sse(c) => c.handle_start(now),
            Client::Ws(c) => c.handle_start(now),
        }
    }

    /// The measured run starts at `t0`; `phase` spreads the short-polling
    /// ticks of many clients over one interval.
    pub fn handle_begin(&mut self, t0: Instant, phase: std::time::Duration) {
        if let Client::Poll(c) = self {
            c.handle_begin(t0, phase);
        }
    }

    pub fn handle_input(&mut self, data: &[u8], now: Instant, out: &mut Vec<Delivery>) {
        match self {
            Client::Poll(c) => c.handle_input(data, now, out),
            Client::Sse(c) => c.handle_input(data, now, out),
            Client::Ws(c) => c.handle_input(data, now, out),
        }
    }

    pub fn handle_eof(&mut self, now: Instant) {
        match self {
            Client::Poll(c) => c.handle_eof(now),
            Client::Sse(c) => c.handle_eof(now),
            Client::Ws(c) => c.handle_eof(now),
        }
    }

    pub fn handle_timer(&mut self, now: Instant) {
        match self {
            Client::Poll(c) => c.handle_timer(now),
            Client::Sse(c) => c.handle_timer(now),
            Client::Ws(c) => c.handle_timer(now),
        }
    }

    pub fn handle_stop(&mut self, now: Instant) {
        match self {
            Client::Poll(c) => c.handle_stop(now),
            Client::Sse(c) => c.handle_stop(now),
            Client::Ws(c) => c.handle_stop(now),
        }
    }

    fn base(&self) -> &Base {
        match self {
            Client::Poll(c) => &c.base,
            Client::Sse(c) => &c.base,
            Client::Ws(c) => &c.base,
        }
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        match self {
            Client::Poll(c) => c.base.commands.pop_front(),
            Client::Sse(c) => c.base.commands.pop_front(),
            Client::Ws(c) => c.base.commands.pop_front(),
        }
    }

    /// Subscribed: the first answer, the stream's head or the `101` came
    /// (a long poll: its first request is out).
    pub fn is_ready(&self) -> bool {
        match self {
            Client::Poll(c) => c.is_ready(),
            Client::Sse(c) => c.is_ready(),
            Client::Ws(c) => c.is_ready(),
        }
    }

    pub fn is_failed(&self) -> bool {
        self.base().failed
    }

    pub fn is_done(&self) -> bool {
        self.base().is_done()
    }

    pub fn counters(&self) -> &Counters {
        &self.base().counters
    }
}

/// The settings every client of a run shares.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub poll_interval: std::time::Duration,
    pub long_poll_timeout: std::time::Duration,
    pub keep_alive: bool,
    pub ws_max_message: usize,
}

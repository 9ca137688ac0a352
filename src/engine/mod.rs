//! The whole server as one sans-I/O value: every session, their timers, the
//! hub and the fan-out, driven by events and answering with what the shell
//! must do. No socket, no clock, no file: time comes in with every input.
//!
//! Modelled on smoltcp's `Interface::poll(timestamp, device, sockets)` and
//! quinn-proto's `Endpoint`. Inputs are `handle_*` calls (or one
//! [`Input`] value, an owned form of the same calls that can be stored and
//! fed again to a fresh engine); the effects reach the sockets through an
//! [`Io`] the shell lends to each call, as smoltcp's `poll` is lent a
//! `Device`: "write these slices to this connection", "shut its write
//! side", "close it", "wake me when it is writable". The engine decides
//! *when* to write — that is where the performance lives — and the shell
//! only performs the syscall and reports what the kernel said
//! ([`Written`]).
//!
//! # Call protocol for a shell (see `server/`)
//!
//! Each loop turn, with the `now` it read from the clock once:
//! 1. accept: [`Engine::handle_accept`] gives the new connection's id (or a
//!    refusal to write before closing);
//! 2. read each readable connection while [`Engine::wants_read`], feeding
//!    [`Engine::handle_read`] / [`Engine::handle_eof`] /
//!    [`Engine::handle_reset`]; report [`Engine::handle_read_stopped`] when
//!    reading stops before `WouldBlock`, and [`Engine::handle_read_drained`]
//!    at `WouldBlock`; then read again each of [`Engine::take_unread`]
//!    (connections cut short by the per-turn budget, or waiting for room);
//! 3. report writable sockets with [`Engine::handle_writable`];
//! 4. [`Engine::handle_timeout`] fires due deadlines and expires history;
//! 5. [`Engine::end_turn`] writes each connection with pending output once
//!    and streams the turn's trace;
//! 6. wait until [`Engine::poll_at`] (or a socket event); stop once
//!    [`Engine::is_finished`] after [`Engine::handle_shutdown`].
//!
//! What happens inside, in order, after any session call
//! ([`Engine::after_session_call`]): the messages it published are fanned out
//! to their topics' subscribers (a refcount bump each), the publisher's
//! answer written first, each released long poll written at once; the
//! connection's write is scheduled for the end of the turn; its timer
//! re-armed; reading resumed or the connection closed.

mod conns;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod notice_tests;

use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;
use std::time::Duration;

use crate::clients::Clients;
use crate::config::{Config, MAX_IOVECS, MAX_REFUSING, SHUTDOWN_GRACE};
use crate::file_log::log::FileLog;
use crate::hub::{
    Commit, History, Hub, HubError, Kind, Log, LogEvent, LogOutput, MemoryLog, Message, Notice,
    Ticket,
};
use crate::redis::log::{RedisLog, RedisSettings};
use crate::session::{Assembly, Ctx, Deflate, Lifecycle, Refusal, Session};
use crate::stats::{Stats, TraceEvent, Tracer, Transport};
use crate::timers::{Instant, Timers};
use conns::{Conn, Conns};

pub use conns::ConnId;

/// Output that a connection's own input produced and that is written at
/// once rather than at the end of the turn ([`Engine::handle_read`]).
pub const EAGER_WRITE_BYTES: usize = 32 * 1024;

/// How often kept history is swept for messages past `--history-ttl`.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// What the kernel said to one write attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// It took this many bytes (from the front of the slices).
    Bytes(usize),
    /// The send buffer is full: wait for the socket to become writable.
    WouldBlock,
    /// A signal interrupted the call: nothing was written, try again.
    Interrupted,
    /// Broken pipe, reset: the peer is gone.
    Failed,
}

/// The shell's side of the engine's decisions: the syscalls, performed at
/// the moment the engine makes them.
pub trait Io {
    /// One vectored write of `bufs` to `conn`.
    fn write(&mut self, conn: ConnId, bufs: &[IoSlice<'_>]) -> Written;
    /// Whether `conn` should be woken when its socket becomes writable
    /// (output is waiting). Returns false if that could not be arranged;
    /// the engine then closes the connection.
    fn want_writable(&mut self, conn: ConnId, on: bool) -> bool;
    /// Shut the write side: the client reads EOF after the last response,
    /// while the shell keeps reading (draining) what the client sends.
    fn shutdown_write(&mut self, conn: ConnId);
    /// Drop the connection's socket; `conn` may be reused after this.
    /// `unsent`: bytes of output that will never be written (a client cut
    /// for not reading, say).
    fn close(&mut self, conn: ConnId, unsent: usize);
    /// `--trace`: print the turn's socket events.
    fn print_trace(&mut self, events: &[TraceEvent]) {
        let _ = events;
    }
}

/// The address of an accepted connection's peer, as text (`192.0.2.7`,
/// `2001:db8::1`: what `IpAddr::to_string` writes); the shell makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub ip: Box<str>,
}

/// Every input of the engine as owned data, with its instant: what a
/// recording stores and a replay feeds back into a fresh engine (with the
/// same config and epoch, and an [`Io`] that returns the recorded
/// [`Written`] values in order). [`Engine::handle`] dispatches one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A connection was accepted (its id is the engine's to choose).
    Accepted { peer: Peer },
    /// `accept` failed for want of resources.
    AcceptError,
    /// Bytes read from `conn`; `drained`: the read was short and the socket
    /// is empty ([`Engine::handle_read`]).
    Read {
        conn: ConnId,
        bytes: Vec<u8>,
        drained: bool,
    },
    /// `read` said `WouldBlock`.
    ReadDrained { conn: ConnId },
    /// Reading stopped before `WouldBlock`: the session wanted no more, or
    /// the per-turn budget was spent (`budget`).
    ReadStopped { conn: ConnId, budget: bool },
    /// `read` returned 0: the peer shut its write side.
    Eof { conn: ConnId },
    /// A read failed (reset): the connection is gone.
    Reset { conn: ConnId },
    /// The socket can take more output.
    Writable { conn: ConnId },
    /// Time passed: fire due deadlines.
    Timeout,
    /// The end of a loop turn: write what is pending.
    EndTurn,
    /// SIGINT, SIGTERM or a [`crate::server::Handle`]: finish gracefully.
    Shutdown,
    /// The log's I/O driver reported (a shared log's reply, a disk
    /// writer's fsync): [`Engine::handle_log_event`].
    Log(LogEvent),
}

/// What the fan-out delivers, in the log's order.
enum FanOut {
    /// A committed message, to its topic's subscribers.
    Message(Rc<Message>),
    /// A break in the log's continuity, to every connection.
    Notice(Notice),
}

/// The server's state, without I/O.
pub struct Engine {
    config: Config,
    hub: Hub,
    stats: Stats,
    tracer: Tracer,
    conns: Conns,
    timers: Timers<ConnId>,
    started: Instant,
    /// The Unix time (ms) of `Instant::ZERO`; see [`Engine::set_wall_origin`].
    wall_origin_ms: u64,
    /// Connections with output to write this turn.
    dirty: Vec<ConnId>,
    /// Connections whose reads were cut short (budget) or are waiting to
    /// read again now that they want to.
    unread: Vec<ConnId>,
    /// Tickets appended during the current session call.
    appended: Vec<Ticket>,
    /// Appends waiting for their commit, in ticket order: the connection
    /// (slot and serial number, since slots are reused) to hand it to.
    /// Logs commit local appends in the order they were made, so the
    /// commit's ticket is at the front (a queue, not a map: a push and a
    /// pop per publish).
    pending: VecDeque<(Ticket, ConnId, u64)>,
    /// Bytes held by messages being assembled (`--assembly-memory`).
    assembly: Assembly,
    /// permessage-deflate compressors, shared by every connection.
    deflate: Deflate,
    fanout: VecDeque<FanOut>,
    /// A fan-out is running: a session call made from inside it (a write
    /// that answers a pipelined publish, say) queues what it publishes and
    /// leaves the fanning out to the running loop, so every subscriber
    /// still sees the messages in publish order.
    fanning_out: bool,
    subscribers: Vec<usize>,
    next_expiry: Instant,
    shutdown_deadline: Option<Instant>,
    /// The serial number of the last connection accepted: connections are
    /// named by it in the trace, since their slots are reused.
    serial: u64,
    /// Connections per client address.
    clients: Clients,
    /// Connections open (not counting those being refused).
    open: usize,
    /// Connections being refused (answered `503`, then closed).
    refusing: usize,
}

impl Engine {
    /// The same engine, told the Unix time (ms) of `Instant::ZERO`, which
    /// token expiry is checked against (0 until told).
    pub fn with_wall_origin(mut self, unix_ms: u64) -> Engine {
        self.wall_origin_ms = unix_ms;
        self
    }

    /// An engine started at `now` whose hub ids begin with `epoch` (the
    /// shell chooses it, so that a replay can give the same one).
    ///
    /// With `--data-dir` in `config` the log is a [`FileLog`] that starts
    /// empty (what a replay of a recording made on an empty directory
    /// needs; the server gives its engine the log it read back instead).
    pub fn new(config: Config, epoch: &str, now: Instant) -> Engine {
        let history = History::of_config(&config);
        let seed = history.hash_key();
        Engine::with_log(config, epoch, history, seed, now)
    }

    /// [`Engine::new`] with the hub's hash key given rather than random:
    /// what `--record` writes down and a replay gives back. It also seeds
    /// the Redis log (`--redis`).
    pub fn new_keyed(config: Config, epoch: &str, hash_key: u64, now: Instant) -> Engine {
        let mut history = History::of_config(&config);
        history.set_hash_key(hash_key);
        Engine::with_log(config, epoch, history, hash_key, now)
    }

    /// The log `config` asks for, on `history`.
    fn with_log(config: Config, epoch: &str, history: History, seed: u64, now: Instant) -> Engine {
        let log: Box<dyn Log> = if let Some(redis) = RedisSettings::from_config(&config) {
            Box::new(RedisLog::new(redis, epoch, history, seed))
        } else if config.data_dir.is_some() {
            Box::new(FileLog::new(epoch, history, 1, 0))
        } else {
            Box::new(MemoryLog::new(epoch, history))
        };
        let hub = Hub::new(log, config.max_topics);
        Engine::with_hub(config, hub, now)
    }

    /// An engine on a hub made by the caller.
    pub fn with_hub(config: Config, hub: Hub, now: Instant) -> Engine {
        let tracer = Tracer {
            enabled: config.trace,
            ..Tracer::default()
        };
        Engine {
            hub,
            stats: Stats::default(),
            tracer,
            conns: Conns::default(),
            timers: Timers::new(),
            started: now,
            wall_origin_ms: 0,
            dirty: Vec::new(),
            unread: Vec::new(),
            appended: Vec::new(),
            pending: VecDeque::new(),
            assembly: Assembly::new(config.assembly_memory),
            deflate: Deflate::default(),
            fanout: VecDeque::new(),
            fanning_out: false,
            subscribers: Vec::new(),
            next_expiry: now,
            shutdown_deadline: None,
            serial: 0,
            clients: Clients::new(config.max_connections_per_ip),
            open: 0,
            refusing: 0,
            config,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The hub, for a log driver's events (then [`Engine::handle_log`])
    /// and for tests.
    pub fn hub_mut(&mut self) -> &mut Hub {
        &mut self.hub
    }

    /// The budget for messages being assembled (`--assembly-memory`).
    pub fn assembly(&self) -> &Assembly {
        &self.assembly
    }

    /// A connection's session, for inspection (tests, the fuzz harness).
    pub fn session(&mut self, conn: ConnId) -> Option<&mut Session> {
        self.conns.get_mut(conn).map(|c| &mut c.session)
    }

    /// The deadline armed for `conn` (when the engine next needs a turn
    /// for it).
    pub fn deadline(&self, conn: ConnId) -> Option<Instant> {
        self.timers.deadline(conn)
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Feeds one recorded input (see [`Input`]).
    pub fn handle(&mut self, now: Instant, input: Input, io: &mut impl Io) {
        match input {
            Input::Accepted { peer } => {
                self.handle_accept(now, &peer);
            }
            Input::AcceptError => self.handle_accept_error(),
            Input::Read {
                conn,
                bytes,
                drained,
            } => self.handle_read(now, conn, &bytes, drained, io),
            Input::ReadDrained { conn } => self.handle_read_drained(conn),
            Input::ReadStopped { conn, budget } => self.handle_read_stopped(conn, budget),
            Input::Eof { conn } => self.handle_eof(now, conn, io),
            Input::Reset { conn } => self.handle_reset(now, conn, io),
            Input::Writable { conn } => self.handle_writable(conn),
            Input::Timeout => self.handle_timeout(now, io),
            Input::EndTurn => self.end_turn(now, io),
            Input::Shutdown => self.handle_shutdown(now, io),
            Input::Log(event) => self.handle_log_event(now, event, io),
        }
    }

    /// The id the next accepted connection gets.
    pub fn vacant(&self) -> ConnId {
        self.conns.vacant()
    }

    /// A connection from `peer` was accepted; the shell has registered its
    /// socket as [`Engine::vacant`]. Returns that id — also for a connection
    /// refused by `--max-connections` or `--max-connections-per-ip`, which
    /// is answered `503` (whatever it sends), half-closed and drained like
    /// any closing connection, so that a client that already sent its
    /// request reads the answer rather than a reset (RFC 9112 §9.6). `None`
    /// when even the refusals are at [`MAX_REFUSING`]: the shell closes the
    /// socket at once.
    pub fn handle_accept(&mut self, now: Instant, peer: &Peer) -> Option<ConnId> {
        let trusted = self.config.trust_proxy.iter().any(|p| **p == *peer.ip);
        let refusal = if self.open >= self.config.max_connections {
            Some("the server is at its connection limit")
        } else if !trusted && !self.clients.admit(&peer.ip) {
            Some("too many connections from your address")
        } else {
            None
        };
        if refusal.is_some() {
            self.stats.connections_refused += 1;
            if self.refusing >= MAX_REFUSING {
                return None;
            }
        }
        let id = self.conns.vacant();
        self.serial += 1;
        let serial = self.serial;
        let mut session = Session::new(id, now, &self.config);
        session.serial = serial;
        session.behind_proxy = trusted;
        let c = self.stats.of(Transport::Http);
        c.sockets_opened += 1;
        c.sockets_open += 1;
        // The peer's address; behind a trusted proxy, the client's comes
        // with its first request ("client" event).
        self.tracer.record(|| TraceEvent {
            at: now,
            conn: serial,
            transport: Transport::Http,
            kind: "accept",
            bytes: 0,
            detail: if trusted {
                format!("from {} (trusted proxy)", peer.ip)
            } else {
                format!("from {}", peer.ip)
            },
        });
        let mut conn = Conn::new(session);
        conn.refusing = refusal.is_some();
        conn.client = (refusal.is_none() && !trusted).then(|| peer.ip.clone());
        let inserted = self.conns.insert(conn);
        debug_assert_eq!(inserted, id);
        if let Some(why) = refusal {
            self.refusing += 1;
            let refusal = Refusal::new(503, why).with_header("Retry-After", "1");
            self.with_session(id, now, |s, ctx| s.handle_refused(refusal, ctx));
            self.mark_dirty(id);
        } else {
            self.open += 1;
        }
        self.sync_timer(id);
        Some(id)
    }

    /// `accept` failed for want of resources (EMFILE, ENOBUFS, …); the shell
    /// stops listening for a moment.
    pub fn handle_accept_error(&mut self) {
        self.stats.accept_errors += 1;
    }

    /// Whether the shell should read `conn` now. False while the session
    /// holds enough unanswered input or output (back-pressure).
    pub fn wants_read(&self, conn: ConnId) -> bool {
        let limit = self.config.max_pipelined_bytes;
        self.conns
            .get(conn)
            .is_some_and(|c| c.session.wants_read(limit))
    }

    /// Reading `conn` stopped before `WouldBlock`: the session wanted no
    /// more (the edge will not fire again, so the engine remembers to read
    /// it once the session wants to), or `budget`: the per-turn read budget
    /// was spent (read it again after the others, this turn).
    pub fn handle_read_stopped(&mut self, conn: ConnId, budget: bool) {
        if budget {
            self.unread.push(conn);
        } else if let Some(c) = self.conns.get_mut(conn) {
            c.read_pending = true;
        }
    }

    /// `read` said `WouldBlock`: the next readiness event will come.
    pub fn handle_read_drained(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.read_pending = false;
        }
    }

    /// Connections to read again this turn (see [`Engine::handle_read_stopped`]).
    pub fn take_unread(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.unread)
    }

    /// Bytes read from `conn`. `drained`: the read returned less than asked
    /// and the event that woke the shell reported no hang-up, so the socket
    /// is empty and the next bytes (or FIN) raise a new edge.
    ///
    /// Output this input made that is large (a big echo) is written at
    /// once: the bytes are still in the CPU's cache, while at the end of a
    /// turn that read many such connections they would have to come back
    /// from memory. Small answers wait for the end of the turn, so what the
    /// turn adds to them leaves in one write.
    pub fn handle_read(
        &mut self,
        now: Instant,
        conn: ConnId,
        bytes: &[u8],
        drained: bool,
        io: &mut impl Io,
    ) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if drained {
            c.read_pending = false;
        }
        self.with_session(conn, now, |s, ctx| s.handle_input(bytes, ctx));
        // Counted under the request these bytes carried.
        if let Some(c) = self.conns.get_mut(conn) {
            let t = c.session.serving();
            self.stats.of(t).bytes_in += bytes.len() as u64;
        }
        self.after_session_call(conn, now, io);
        let large = self
            .conns
            .get_mut(conn)
            .is_some_and(|c| c.session.output().len() >= EAGER_WRITE_BYTES);
        if large {
            self.write_now(conn, now, io);
        }
    }

    /// `read` returned 0: the peer shut its write side.
    pub fn handle_eof(&mut self, now: Instant, conn: ConnId, io: &mut impl Io) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.read_pending = false;
        }
        self.with_session(conn, now, |s, ctx| s.handle_eof(ctx));
        self.after_session_call(conn, now, io);
    }

    /// A read failed (reset or another hard error): the connection is gone.
    pub fn handle_reset(&mut self, now: Instant, conn: ConnId, io: &mut impl Io) {
        self.close_conn(conn, now, io);
    }

    /// `conn`'s socket can take more: write it at the end of the turn.
    pub fn handle_writable(&mut self, conn: ConnId) {
        self.mark_dirty(conn);
    }

    /// What the log's I/O driver heard: commits it brings are answered and
    /// fanned out now.
    pub fn handle_log_event(&mut self, now: Instant, event: LogEvent, io: &mut impl Io) {
        self.hub.log_mut().handle_event(event, now);
        self.handle_log(now, io);
    }

    /// What the log's I/O driver must do next, if anything (call until
    /// `None` after every turn).
    pub fn poll_log_output(&mut self) -> Option<LogOutput> {
        self.hub.log_mut().poll_output()
    }

    /// A message published from outside any connection (tests, tools):
    /// appended to the log and fanned out when it commits, like a
    /// connection's publish.
    pub fn handle_publish(
        &mut self,
        now: Instant,
        topic: &str,
        kind: Kind,
        data: &str,
        io: &mut impl Io,
    ) -> Result<Ticket, HubError> {
        let ticket = self.hub.append(topic, kind, data, now)?;
        self.handle_log(now, io);
        Ok(ticket)
    }

    /// The log may have commits to hand out (its driver fed it, or a
    /// publish appended): answer their publishers, fan them out, and write.
    pub fn handle_log(&mut self, now: Instant, io: &mut impl Io) {
        self.collect_commits(now, io);
        if !self.fanning_out {
            self.run_fan_out(now, io);
        }
    }

    /// Hands every commit the log has to the connection that appended it
    /// (if it is still there) and queues the committed messages for the
    /// fan-out, in id order.
    fn collect_commits(&mut self, now: Instant, io: &mut impl Io) {
        loop {
            if let Some(notice) = self.hub.poll_notice() {
                self.fanout.push_back(FanOut::Notice(notice));
                continue;
            }
            let Some(Commit { ticket, outcome }) = self.hub.poll_commit() else {
                break;
            };
            // Queued before its publisher is answered: answering may write,
            // and a write that empties the output goes on to the requests
            // behind it and to the fan-out, taking the log's later commits
            // (a shared or durable log commits several at once) — they
            // must queue behind this one, or subscribers would see them
            // first and then skip this one as already seen.
            if let Ok(msg) = &outcome {
                self.fanout.push_back(FanOut::Message(msg.clone()));
            }
            let publisher = ticket.and_then(|t| self.take_pending(t));
            if let Some((ticket, conn, serial)) = publisher {
                let answered = self
                    .with_session(conn, now, |s, ctx| {
                        if s.serial != serial {
                            return false;
                        }
                        s.handle_commit(ticket, &outcome, ctx);
                        true
                    })
                    .unwrap_or(false);
                if answered {
                    // Its answer may have let pipelined requests append more.
                    self.take_appended(conn);
                    self.settle(conn, now, io);
                    if !self.fanning_out && outcome.is_ok() {
                        // The publisher's answer goes first, not after a
                        // large release.
                        self.write_now(conn, now, io);
                    }
                }
            }
        }
    }

    /// Who appended `ticket` (usually the front of the queue).
    fn take_pending(&mut self, ticket: Ticket) -> Option<(Ticket, ConnId, u64)> {
        if self.pending.front().is_some_and(|p| p.0 == ticket) {
            return self.pending.pop_front();
        }
        let at = self.pending.iter().position(|p| p.0 == ticket)?;
        self.pending.remove(at)
    }

    /// Notes who appended the tickets of the last session call.
    fn take_appended(&mut self, conn: ConnId) {
        if self.appended.is_empty() {
            return;
        }
        let serial = self.conns.get(conn).map_or(0, |c| c.session.serial);
        for ticket in self.appended.drain(..) {
            self.pending.push_back((ticket, conn, serial));
        }
    }

    /// Fires every deadline due at `now`, and sweeps expired history once
    /// a second.
    pub fn handle_timeout(&mut self, now: Instant, io: &mut impl Io) {
        while let Some(conn) = self.timers.pop_expired(now) {
            if let Some(c) = self.conns.get_mut(conn) {
                c.armed = None;
            }
            self.with_session(conn, now, |s, ctx| s.handle_timeout(ctx));
            self.after_session_call(conn, now, io);
        }
        if now >= self.next_expiry {
            self.hub.expire(now);
            self.next_expiry = now + EXPIRY_INTERVAL;
        }
        if self.hub.log().poll_at().is_some_and(|at| now >= at) {
            self.hub.log_mut().handle_timeout(now);
            self.handle_log(now, io);
        }
    }

    /// Asks every session to finish (held requests answered, WebSockets
    /// closed); the shell stops accepting and runs until
    /// [`Engine::is_finished`].
    pub fn handle_shutdown(&mut self, now: Instant, io: &mut impl Io) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
        for conn in self.conns.ids() {
            self.with_session(conn, now, |s, ctx| s.handle_shutdown(ctx));
            self.after_session_call(conn, now, io);
        }
    }

    /// After a shutdown: every connection is done, or the grace has passed.
    pub fn is_finished(&self, now: Instant) -> bool {
        self.shutdown_deadline
            .is_some_and(|d| self.conns.is_empty() || now >= d)
    }

    /// The end of a loop turn: one write per connection with pending output,
    /// then the turn's trace events.
    pub fn end_turn(&mut self, now: Instant, io: &mut impl Io) {
        for conn in std::mem::take(&mut self.dirty) {
            self.write_now(conn, now, io);
        }
        self.emit_trace(now, io);
    }

    /// When the engine next needs a turn without any socket event: now if
    /// work is waiting, else the earliest deadline.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.unread.is_empty() || !self.dirty.is_empty() {
            return Some(Instant::ZERO);
        }
        [
            self.timers.next_deadline(),
            self.shutdown_deadline,
            Some(self.next_expiry),
            self.hub.log().poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Gives a session the context it needs for one call.
    fn with_session<R>(
        &mut self,
        conn: ConnId,
        now: Instant,
        f: impl FnOnce(&mut Session, &mut Ctx) -> R,
    ) -> Option<R> {
        let c = self.conns.get_mut(conn)?;
        let mut ctx = Ctx {
            now,
            config: &self.config,
            hub: &mut self.hub,
            stats: &mut self.stats,
            tracer: &mut self.tracer,
            appended: &mut self.appended,
            assembly: &mut self.assembly,
            deflate: &mut self.deflate,
            started: self.started,
            clients: &mut self.clients,
            wall_origin_ms: self.wall_origin_ms,
        };
        Some(f(&mut c.session, &mut ctx))
    }

    /// After any session call: fan out what it published, schedule its
    /// write, re-arm its deadline, close it if it is done.
    ///
    /// Streams (SSE, WebSocket) are written at the end of the turn, so
    /// everything published in one turn leaves in one write per subscriber.
    /// A parked long poll released by a message is written at once instead:
    /// its response is complete (nothing later can join it), and writing
    /// while the rest of a large release is still being built gets the first
    /// responses out without waiting for the last to be made.
    fn after_session_call(&mut self, conn: ConnId, now: Instant, io: &mut impl Io) {
        self.take_appended(conn);
        self.settle(conn, now, io);
        self.collect_commits(now, io);
        if self.fanning_out {
            return;
        }
        self.run_fan_out(now, io);
    }

    /// Delivers every queued message to its topic's subscribers, in publish
    /// order. A session call made inside the loop (a write that answers a
    /// pipelined publish, say) only queues what it publishes.
    fn run_fan_out(&mut self, now: Instant, io: &mut impl Io) {
        self.fanning_out = true;
        while let Some(next) = self.fanout.pop_front() {
            let msg = match next {
                FanOut::Message(msg) => msg,
                FanOut::Notice(notice) => {
                    self.tell_everyone(&notice, now, io);
                    continue;
                }
            };
            self.subscribers.clear();
            self.hub.subscribers(&msg.topic, &mut self.subscribers);
            let subs = std::mem::take(&mut self.subscribers);
            for &sub in &subs {
                let parked = self
                    .with_session(sub, now, |s, ctx| {
                        let parked = s.is_parked();
                        s.handle_message(&msg, ctx);
                        parked
                    })
                    .unwrap_or(false);
                // A released long poll may answer a pipelined publish: its
                // commit joins the queue (only then is the log asked).
                let appended = !self.appended.is_empty();
                self.take_appended(sub);
                self.settle(sub, now, io);
                if appended {
                    self.collect_commits(now, io);
                }
                if parked {
                    self.write_now(sub, now, io);
                }
            }
            self.subscribers = subs;
            // Every subscriber has its bytes: the message keeps no encoding.
            crate::session::encoded::release(&msg);
        }
        self.fanning_out = false;
    }

    /// A break in the log's continuity reaches every connection: streams
    /// write the notice, held long polls answer (see
    /// `Session::handle_notice`). Rare (a shared log's store lost its data,
    /// or trimmed what this node had not read), so a walk over all.
    fn tell_everyone(&mut self, notice: &Notice, now: Instant, io: &mut impl Io) {
        for conn in self.conns.ids() {
            let parked = self
                .with_session(conn, now, |s, ctx| {
                    let parked = s.is_parked();
                    s.handle_notice(notice, ctx);
                    parked
                })
                .unwrap_or(false);
            self.take_appended(conn);
            self.settle(conn, now, io);
            self.collect_commits(now, io);
            if parked {
                self.write_now(conn, now, io);
            }
        }
    }

    /// Schedules the write, re-arms the timer, resumes reading or closes.
    fn settle(&mut self, conn: ConnId, now: Instant, io: &mut impl Io) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.session.lifecycle() == Lifecycle::Closed {
            self.close_conn(conn, now, io);
            return;
        }
        if !c.session.output().is_empty() {
            self.mark_dirty(conn);
        } else if c.session.lifecycle() == Lifecycle::Closing {
            // Nothing left to write: go straight to the half-close.
            self.after_flushed(conn, now, io);
        }
        self.resume_reading(conn);
        self.sync_timer(conn);
    }

    /// A connection that stopped reading for back-pressure and wants to
    /// read again is read again this turn (no edge would wake it).
    fn resume_reading(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn) {
            if c.read_pending
                && c.session.wants_read(self.config.max_pipelined_bytes)
                && !self.unread.contains(&conn)
            {
                self.unread.push(conn);
            }
        }
    }

    /// Re-arms `conn`'s timer at its session's next deadline. The deadline
    /// armed last is kept on the connection, so the common case — a fan-out
    /// that changes no deadline — costs a comparison, not a timer lookup.
    fn sync_timer(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return self.timers.cancel(conn);
        };
        let deadline = c.session.next_deadline();
        if deadline != c.armed {
            c.armed = deadline;
            self.timers.set(conn, deadline);
        }
    }

    /// Schedules one write of `conn` at the end of this turn.
    fn mark_dirty(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(conn);
            }
        }
    }

    /// Writes a connection scheduled for this turn now. Its id stays in the
    /// dirty list; with the flag cleared, the end of the turn skips it.
    fn write_now(&mut self, conn: ConnId, now: Instant, io: &mut impl Io) {
        if let Some(c) = self.conns.get_mut(conn) {
            if c.dirty {
                c.dirty = false;
                self.write_conn(conn, now, io);
            }
        }
    }

    /// One vectored write of the connection's pending output.
    fn write_conn(&mut self, conn: ConnId, now: Instant, io: &mut impl Io) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let out = c.session.output();
        if out.is_empty() {
            return;
        }
        let mut slices = Vec::with_capacity(16);
        out.io_slices(&mut slices, MAX_IOVECS);
        let offered: usize = slices.iter().map(|s| s.len()).sum();
        let result = io.write(conn, &slices);
        drop(slices);
        // Whether the kernel may still have room. Then no WRITABLE edge will
        // come (epoll is edge-triggered), so the rest goes out next turn.
        let mut room_left = false;
        let mut written = 0;
        match result {
            Written::Bytes(n) => {
                let t = c.session.serving();
                c.session.output().consume(n);
                self.stats.of(t).bytes_out += n as u64;
                room_left = n == offered;
                written = n;
            }
            Written::WouldBlock => {}
            Written::Interrupted => room_left = true,
            Written::Failed => return self.close_conn(conn, now, io),
        }
        // Starts or feeds the session's send timeout (write progress).
        c.session.handle_written(written, now, &self.config);
        let remaining = !c.session.output().is_empty();
        if room_left && remaining {
            return self.mark_dirty(conn);
        }
        if !io.want_writable(conn, remaining) {
            return self.close_conn(conn, now, io);
        }
        if remaining {
            // Output stays queued: arm the send timeout.
            self.sync_timer(conn);
        } else {
            self.after_flushed(conn, now, io);
        }
    }

    /// The output queue is empty: let the session decide what that means.
    fn after_flushed(&mut self, conn: ConnId, now: Instant, io: &mut impl Io) {
        let shut = self
            .with_session(conn, now, |s, ctx| s.handle_flushed(ctx))
            .unwrap_or(false);
        if shut {
            // Half-close: the client sees EOF after the response, and the
            // shell keeps draining its input so the kernel sends no RST.
            io.shutdown_write(conn);
        }
        match self.conns.get(conn).map(|c| c.session.lifecycle()) {
            Some(Lifecycle::Closed) => self.close_conn(conn, now, io),
            Some(_) => {
                // Reading may have stopped for want of room in the output
                // (back-pressure); now that it is written, read again.
                self.resume_reading(conn);
                // `handle_flushed` may have answered pipelined requests that
                // waited behind the output: fan out, write, re-arm.
                self.after_session_call(conn, now, io)
            }
            None => {}
        }
    }

    fn close_conn(&mut self, conn: ConnId, now: Instant, io: &mut impl Io) {
        let unsent = self
            .with_session(conn, now, |s, ctx| {
                let unsent = s.output().len();
                s.handle_close(ctx);
                unsent
            })
            .unwrap_or(0);
        self.timers.cancel(conn);
        if let Some(c) = self.conns.remove(conn) {
            if c.refusing {
                self.refusing -= 1;
            } else {
                self.open -= 1;
            }
            if let Some(client) = c.client {
                self.clients.release(&client);
            }
            io.close(conn, unsent);
        }
    }

    /// Hands the turn's socket events to `--trace` and streams them to the
    /// `/trace` watchers, each event encoded once.
    fn emit_trace(&mut self, now: Instant, io: &mut impl Io) {
        if self.tracer.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.tracer.events);
        if self.config.trace {
            io.print_trace(&events);
        }
        if self.tracer.watchers.is_empty() {
            return;
        }
        let encoded: Vec<(u64, Rc<[u8]>)> = events
            .iter()
            .map(|e| {
                let mut bytes = Vec::with_capacity(160);
                crate::wire::sse::encode_event(&mut bytes, None, Some(e.kind), &e.to_json());
                (e.conn, Rc::from(bytes))
            })
            .collect();
        for (conn, _) in self.tracer.watchers.clone() {
            self.with_session(conn, now, |s, ctx| s.handle_trace(&encoded, ctx));
            self.settle(conn, now, io);
        }
    }
}

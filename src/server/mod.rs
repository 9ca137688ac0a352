//! The only I/O in pushlab: one `mio::Poll`, the listening socket, the
//! connection table, signals and the clock.
//!
//! Each loop turn reads the clock once and then, in this order:
//! 1. waits in `poll` until a socket is ready or the earliest deadline;
//! 2. accepts until `WouldBlock`; reads each ready socket until `WouldBlock`
//!    (or a per-turn budget, for fairness) and hands the bytes to its session;
//! 3. fans every message published during the turn out to the subscribers'
//!    sessions (a refcount bump per subscriber);
//! 4. fires expired deadlines;
//! 5. writes each connection with pending output once, with one vectored
//!    write, registering WRITABLE only while output remains.
//!
//! Everything a connection *means* lives in `session/`; this file only moves
//! bytes and time in and out.

mod conns;

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::{Config, ACCEPT_BACKOFF, MAX_IOVECS, READ_CHUNK, SHUTDOWN_GRACE};
use crate::hub::{Hub, MemoryHub, Message};
use crate::session::{Ctx, Lifecycle, Session};
use crate::stats::{Stats, TraceEvent, Tracer, Transport};
use crate::timers::{Instant, Timers};
use conns::{Conn, Conns};

/// The listening socket's token.
const LISTENER: Token = Token(0);
/// Signals (SIGINT, SIGTERM) arrive as readiness on this token.
const SIGNALS: Token = Token(1);
/// The [`Handle`]'s waker.
const WAKER: Token = Token(2);

/// Output that a connection's own input produced and that is written at
/// once rather than at the end of the turn ([`Server::write_if_large`]).
const EAGER_WRITE_BYTES: usize = 32 * 1024;

/// Reads per connection per turn before moving on to the others (× 64 KiB).
const READS_PER_TURN: usize = 16;

/// The response a connection over `--max-connections` gets before closing.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nServer: pushlab\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nRetry-After: 1\r\nConnection: close\r\n\r\n503 Service Unavailable: busy\r\n\r\n";

/// Stops a running server from another thread.
#[derive(Clone)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Handle {
    /// Starts a graceful shutdown, as SIGTERM does.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// The event loop and everything it owns.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    conns: Conns,
    config: Config,
    hub: Box<dyn Hub>,
    stats: Stats,
    tracer: Tracer,
    timers: Timers<Token>,
    clock: std::time::Instant,
    started: Instant,
    read_buf: Vec<u8>,
    /// Connections with output to write this turn.
    dirty: Vec<Token>,
    /// Connections whose reads were cut short by the per-turn budget.
    unread: Vec<Token>,
    published: Vec<Rc<Message>>,
    fanout: VecDeque<Rc<Message>>,
    /// A fan-out is running: a session call made from inside it (a write
    /// that answers a pipelined publish, say) queues what it publishes and
    /// leaves the fanning out to the running loop, so every subscriber
    /// still sees the messages in publish order.
    fanning_out: bool,
    subscribers: Vec<usize>,
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    next_expiry: Instant,
}

/// A new hub epoch: the start time in milliseconds, base 36.
fn new_epoch() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    crate::hub::base36(ms)
}

impl Server {
    /// Binds the listening socket and prepares the loop (nothing runs yet).
    pub fn bind(config: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.addr)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let hub = MemoryHub::new(&new_epoch(), config.history, config.history_ttl);
        let tracer = Tracer {
            enabled: config.trace,
            ..Tracer::default()
        };
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            signals: None,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            conns: Conns::new(config.max_connections),
            hub: Box::new(hub),
            stats: Stats::default(),
            tracer,
            timers: Timers::new(),
            clock: std::time::Instant::now(),
            started: Instant::ZERO,
            read_buf: vec![0; READ_CHUNK],
            dirty: Vec::new(),
            unread: Vec::new(),
            published: Vec::new(),
            fanout: VecDeque::new(),
            fanning_out: false,
            subscribers: Vec::new(),
            accept_paused_until: None,
            shutdown_deadline: None,
            next_expiry: Instant::ZERO,
            config,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that can stop the loop from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            stop: self.stop.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Turns SIGINT and SIGTERM into a graceful shutdown.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.clock.elapsed().as_micros() as u64)
    }

    /// Runs until a signal or [`Handle::shutdown`] and every in-flight
    /// response has been written (or [`SHUTDOWN_GRACE`] has passed).
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = self.now();
            let timeout = self.poll_timeout(now);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                // A signal arrived during the wait: just go round again.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = self.now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(now),
                    SIGNALS => self.read_signals(now),
                    WAKER => {
                        if self.stop.load(Ordering::SeqCst) {
                            self.begin_shutdown(now);
                        }
                    }
                    token => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            // Without a hang-up in the event, a short read
                            // means the socket is drained (see read_conn).
                            let closing = event.is_read_closed() || event.is_error();
                            self.read_conn(token, now, !closing);
                        }
                        if event.is_writable() {
                            self.mark_dirty(token);
                        }
                    }
                }
            }
            for token in std::mem::take(&mut self.unread) {
                self.read_conn(token, now, false);
            }
            self.fire_timers(now);
            if now >= self.next_expiry {
                self.hub.expire(now);
                self.next_expiry = now + Duration::from_secs(1);
            }
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.resume_accepting(now);
            }
            self.flush_dirty(now);
            self.emit_trace(now);
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || now >= deadline {
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.unread.is_empty() || !self.dirty.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.timers.next_deadline(),
            self.accept_paused_until,
            self.shutdown_deadline,
            Some(self.next_expiry),
        ]
        .into_iter()
        .flatten()
        .min()
        // Round up so the loop does not wake a few µs early and spin.
        .map(|at| at.saturating_since(now) + Duration::from_micros(999))
        .map(|d| Duration::from_millis(d.as_millis() as u64))
    }

    fn accept_all(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut socket, _peer)) => {
                    if self.conns.is_full() {
                        // Over --max-connections: say so and close. The write
                        // goes into an empty send buffer, so it fits at once.
                        self.stats.connections_refused += 1;
                        let _ = socket.write(REFUSED);
                        continue;
                    }
                    let _ = socket.set_nodelay(true);
                    let token = self.conns.vacant_token();
                    if let Err(_e) =
                        self.poll
                            .registry()
                            .register(&mut socket, token, Interest::READABLE)
                    {
                        continue;
                    }
                    let session = Session::new(token.0, now, &self.config);
                    let c = self.stats.of(Transport::Http);
                    c.sockets_opened += 1;
                    c.sockets_open += 1;
                    self.tracer.record(|| TraceEvent {
                        at: now,
                        conn: token.0,
                        transport: Transport::Http,
                        kind: "accept",
                        bytes: 0,
                        detail: String::new(),
                    });
                    self.conns.insert(token, Conn::new(socket, session));
                    self.sync_timer(token);
                }
                // Accepted everything that was waiting.
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // Interrupted by a signal: try again.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // The client gave up between SYN and accept: nothing to do.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                // EMFILE / ENFILE / ENOBUFS / ENOMEM: the listener stays
                // readable, so retrying now would spin. Stop listening for a
                // moment; connections wait in the backlog meanwhile.
                Err(_e) => {
                    self.stats.accept_errors += 1;
                    self.pause_accepting(now);
                    return;
                }
            }
        }
    }

    fn pause_accepting(&mut self, now: Instant) {
        if let Some(listener) = &mut self.listener {
            let _ = self.poll.registry().deregister(listener);
        }
        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
    }

    fn resume_accepting(&mut self, now: Instant) {
        self.accept_paused_until = None;
        if let Some(listener) = &mut self.listener {
            let _ = self
                .poll
                .registry()
                .register(listener, LISTENER, Interest::READABLE);
            self.accept_all(now);
        }
    }

    fn read_signals(&mut self, now: Instant) {
        let Some(signals) = &mut self.signals else {
            return;
        };
        if signals.pending().next().is_some() {
            self.begin_shutdown(now);
        }
    }

    /// Stops accepting and asks every session to finish.
    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accept_paused_until = None;
        for token in self.conns.tokens() {
            self.with_session(token, now, |s, ctx| s.handle_shutdown(ctx));
            self.after_session_call(token, now);
        }
    }

    /// Reads `token` until `WouldBlock`, the per-turn budget, or the
    /// session stops wanting input.
    ///
    /// With `short_read_drains`, a read that returns less than the buffer
    /// also ends it: the kernel handed over everything it had, and bytes (or
    /// a FIN) arriving later raise a new edge, so the `read` that would only
    /// say `WouldBlock` is saved — one syscall in three for a small
    /// request/response. Not when the event already reported a hang-up:
    /// then the EOF is waiting behind the data and no new edge will come.
    fn read_conn(&mut self, token: Token, now: Instant, short_read_drains: bool) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if !conn.session.wants_read() {
                // Back-pressure: leave the bytes in the kernel. The edge will
                // not fire again, so remember to come back.
                conn.read_pending = true;
                return;
            }
            match conn.socket.read(&mut self.read_buf) {
                // The peer shut its write side (or the connection is gone).
                Ok(0) => {
                    conn.read_pending = false;
                    self.with_session(token, now, |s, ctx| s.handle_eof(ctx));
                    self.after_session_call(token, now);
                    return;
                }
                Ok(n) => {
                    let drained = short_read_drains && n < self.read_buf.len();
                    if drained {
                        conn.read_pending = false;
                    }
                    let buf = std::mem::take(&mut self.read_buf);
                    self.with_session(token, now, |s, ctx| s.handle_input(&buf[..n], ctx));
                    self.read_buf = buf;
                    // Counted under the request these bytes carried.
                    if let Some(conn) = self.conns.get_mut(token) {
                        let t = conn.session.serving();
                        self.stats.of(t).bytes_in += n as u64;
                    }
                    self.after_session_call(token, now);
                    self.write_if_large(token, now);
                    if drained {
                        return;
                    }
                }
                // Drained the socket: wait for the next readiness event.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.read_pending = false;
                    return;
                }
                // Interrupted by a signal: read again.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Reset or another hard error: the connection is gone.
                Err(_e) => {
                    self.close_conn(token, now);
                    return;
                }
            }
        }
        // Budget spent with bytes possibly left: come back after the others.
        self.unread.push(token);
    }

    /// Gives a session the context it needs for one call.
    fn with_session<R>(
        &mut self,
        token: Token,
        now: Instant,
        f: impl FnOnce(&mut Session, &mut Ctx) -> R,
    ) -> Option<R> {
        let conn = self.conns.get_mut(token)?;
        let mut ctx = Ctx {
            now,
            config: &self.config,
            hub: &mut *self.hub,
            stats: &mut self.stats,
            tracer: &mut self.tracer,
            published: &mut self.published,
            started: self.started,
        };
        Some(f(&mut conn.session, &mut ctx))
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
    fn after_session_call(&mut self, token: Token, now: Instant) {
        self.fanout.extend(self.published.drain(..));
        self.settle(token, now);
        if self.fanning_out {
            return;
        }
        self.fanning_out = true;
        if !self.fanout.is_empty() {
            // The publisher's answer goes first, not after a large release.
            self.write_now(token, now);
        }
        while let Some(msg) = self.fanout.pop_front() {
            self.subscribers.clear();
            self.hub.subscribers(&msg.topic, &mut self.subscribers);
            let subs = std::mem::take(&mut self.subscribers);
            for &sub in &subs {
                let sub = Token(sub);
                let parked = self
                    .with_session(sub, now, |s, ctx| {
                        let parked = s.is_parked();
                        s.handle_message(&msg, ctx);
                        parked
                    })
                    .unwrap_or(false);
                self.fanout.extend(self.published.drain(..));
                self.settle(sub, now);
                if parked {
                    self.write_now(sub, now);
                }
            }
            self.subscribers = subs;
        }
        self.fanning_out = false;
    }

    /// Schedules the write, re-arms the timer, resumes reading or closes.
    fn settle(&mut self, token: Token, now: Instant) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if conn.session.lifecycle() == Lifecycle::Closed {
            self.close_conn(token, now);
            return;
        }
        if !conn.session.output().is_empty() {
            self.mark_dirty(token);
        } else if conn.session.output().is_empty() && conn.session.lifecycle() == Lifecycle::Closing
        {
            // Nothing left to write: go straight to the half-close.
            self.after_flushed(token, now);
        }
        if let Some(conn) = self.conns.get_mut(token) {
            if conn.read_pending && conn.session.wants_read() && !self.unread.contains(&token) {
                self.unread.push(token);
            }
        }
        self.sync_timer(token);
    }

    /// Re-arms `token`'s timer at its session's next deadline. The deadline
    /// armed last is kept on the connection, so the common case — a fan-out
    /// that changes no deadline — costs a comparison, not a timer lookup.
    fn sync_timer(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token) else {
            return self.timers.cancel(token);
        };
        let deadline = conn.session.next_deadline();
        if deadline != conn.armed {
            conn.armed = deadline;
            self.timers.set(token, deadline);
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(token) = self.timers.pop_expired(now) {
            if let Some(conn) = self.conns.get_mut(token) {
                conn.armed = None;
            }
            self.with_session(token, now, |s, ctx| s.handle_timeout(ctx));
            self.after_session_call(token, now);
        }
    }

    /// Schedules one write of `token` at the end of this turn.
    fn mark_dirty(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(token) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(token);
            }
        }
    }

    fn flush_dirty(&mut self, now: Instant) {
        for token in std::mem::take(&mut self.dirty) {
            self.write_now(token, now);
        }
    }

    /// Writes a connection's output at once when its own input made a lot
    /// of it (a large echo): written now, the bytes are still in the CPU's
    /// cache; at the end of a turn that read many such connections, they
    /// would have to come back from memory. Small answers still wait for the
    /// end of the turn, so what a turn adds to them leaves in one write.
    fn write_if_large(&mut self, token: Token, now: Instant) {
        let large = self
            .conns
            .get_mut(token)
            .is_some_and(|c| c.session.output().len() >= EAGER_WRITE_BYTES);
        if large {
            self.write_now(token, now);
        }
    }

    /// Writes a connection scheduled for this turn now. Its token stays in
    /// the dirty list; with the flag cleared, the end of the turn skips it.
    fn write_now(&mut self, token: Token, now: Instant) {
        if let Some(conn) = self.conns.get_mut(token) {
            if conn.dirty {
                conn.dirty = false;
                self.write_conn(token, now);
            }
        }
    }

    /// One vectored write of the connection's pending output.
    fn write_conn(&mut self, token: Token, now: Instant) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let out = conn.session.output();
        if out.is_empty() {
            return;
        }
        let mut slices = Vec::with_capacity(16);
        out.io_slices(&mut slices, MAX_IOVECS);
        let offered: usize = slices.iter().map(|s| s.len()).sum();
        let result = conn.socket.write_vectored(&slices);
        drop(slices);
        // Whether the kernel may still have room. Then no WRITABLE edge will
        // come (epoll is edge-triggered), so the rest goes out next turn.
        let mut room_left = false;
        let mut written = 0;
        match result {
            Ok(n) => {
                let t = conn.session.serving();
                conn.session.output().consume(n);
                self.stats.of(t).bytes_out += n as u64;
                room_left = n == offered;
                written = n;
            }
            // The send buffer is full: wait for the WRITABLE edge.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            // Interrupted by a signal: try again next turn.
            Err(e) if e.kind() == ErrorKind::Interrupted => room_left = true,
            // Broken pipe, reset: the peer is gone.
            Err(_e) => return self.close_conn(token, now),
        }
        // Starts or feeds the session's send timeout (write progress).
        conn.session.handle_written(written, now, &self.config);
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if room_left && !conn.session.output().is_empty() {
            return self.mark_dirty(token);
        }
        let remaining = !conn.session.output().is_empty();
        if remaining != conn.want_writable {
            conn.want_writable = remaining;
            let interest = if remaining {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.socket, token, interest)
                .is_err()
            {
                return self.close_conn(token, now);
            }
        }
        if remaining {
            // Output stays queued: arm the send timeout.
            self.sync_timer(token);
        } else {
            self.after_flushed(token, now);
        }
    }

    /// The output queue is empty: let the session decide what that means.
    fn after_flushed(&mut self, token: Token, now: Instant) {
        let shut = self
            .with_session(token, now, |s, ctx| s.handle_flushed(ctx))
            .unwrap_or(false);
        if shut {
            if let Some(conn) = self.conns.get_mut(token) {
                // Half-close: the client sees EOF after the response, and we
                // keep draining its input so the kernel does not send a RST.
                let _ = conn.socket.shutdown(Shutdown::Write);
            }
        }
        match self.conns.get_mut(token).map(|c| c.session.lifecycle()) {
            Some(Lifecycle::Closed) => self.close_conn(token, now),
            Some(_) => {
                // Reading may have stopped for want of room in the output
                // (back-pressure); now that it is written, read again.
                if let Some(conn) = self.conns.get_mut(token) {
                    if conn.read_pending
                        && conn.session.wants_read()
                        && !self.unread.contains(&token)
                    {
                        self.unread.push(token);
                    }
                }
                // `handle_flushed` may have answered pipelined requests that
                // waited behind the output: fan out, write, re-arm.
                self.after_session_call(token, now)
            }
            None => {}
        }
    }

    fn close_conn(&mut self, token: Token, now: Instant) {
        self.with_session(token, now, |s, ctx| s.handle_close(ctx));
        self.timers.cancel(token);
        if let Some(mut conn) = self.conns.remove(token) {
            let _ = self.poll.registry().deregister(&mut conn.socket);
        }
    }

    /// Prints the turn's socket events (`--trace`) and streams them to the
    /// `/trace` watchers, each event encoded once.
    fn emit_trace(&mut self, now: Instant) {
        if self.tracer.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.tracer.events);
        if self.config.trace {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            for e in &events {
                let _ = writeln!(out, "{}", e.to_line());
            }
            let _ = out.flush();
        }
        if self.tracer.watchers.is_empty() {
            return;
        }
        let encoded: Vec<(usize, Rc<[u8]>)> = events
            .iter()
            .map(|e| {
                let mut bytes = Vec::with_capacity(160);
                crate::wire::sse::encode_event(&mut bytes, None, Some(e.kind), &e.to_json());
                (e.conn, Rc::from(bytes))
            })
            .collect();
        for token in self.tracer.watchers.clone() {
            let token = Token(token);
            self.with_session(token, now, |s, ctx| s.handle_trace(&encoded, ctx));
            self.settle(token, now);
        }
    }
}

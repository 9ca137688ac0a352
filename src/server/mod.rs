//! The only I/O in pushlab: one `mio::Poll`, the listening socket, the
//! connection sockets, signals and the clock — a shell around the
//! sans-I/O [`Engine`], which decides everything else.
//!
//! Each loop turn reads the clock once and then, in this order:
//! 1. waits in `poll` until a socket is ready or [`Engine::poll_at`];
//! 2. accepts until `WouldBlock`; reads each ready socket until `WouldBlock`
//!    (or a per-turn budget, for fairness) and hands the bytes to the engine,
//!    which runs the session and fans out what it published;
//! 3. lets the engine fire expired deadlines;
//! 4. lets the engine write each connection with pending output once, with
//!    one vectored write ([`Net`] performs it).
//!
//! With `--record FILE` ([`Server::record`]) every input given to the engine
//! and every effect it asked for go to a file as well (`record.rs`), for
//! `pushlab replay`.
//!
//! Beside this file: `bind.rs` sets the server up, `net.rs` performs the
//! engine's writes and closes, `logs.rs` carries the reports and requests
//! of a log that needs I/O (`disk.rs`: `--data-dir`'s writer thread;
//! `redis.rs`: `--redis`'s sockets), `record.rs` writes recordings.

mod bind;
mod disk;
mod logs;
mod net;
mod record;
mod redis;

use std::io::{self, ErrorKind, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::ACCEPT_BACKOFF;
use crate::engine::{Engine, Input, Peer};
use crate::record::Header;
use crate::timers::Instant;
use net::Net;
use record::Recorder;

/// The listening socket's token.
const LISTENER: Token = Token(0);
/// Signals (SIGINT, SIGTERM) arrive as readiness on this token.
const SIGNALS: Token = Token(1);
/// The [`Handle`]'s waker.
const WAKER: Token = Token(2);

/// Reads per connection per turn before moving on to the others (× 64 KiB).
const READS_PER_TURN: usize = 16;

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

/// The event loop and the sockets it owns.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    engine: Engine,
    net: Net,
    clock: std::time::Instant,
    read_buf: Vec<u8>,
    accept_paused_until: Option<Instant>,
    /// The hub's epoch and hash key (a recording's header holds them).
    epoch: String,
    hash_key: u64,
    /// The Unix time (ms) of `Instant::ZERO`, given to the engine.
    wall_origin: u64,
    /// The clock reads this much at start (see [`disk::clock_offset`]).
    clock_offset: Duration,
    /// `--data-dir`: the file log's writer.
    disk: Option<disk::Disk>,
    /// `--redis`: the Redis log's sockets.
    redis: Option<redis::Redis>,
}

impl Server {
    /// `--record FILE`: from now on, every input and effect of the engine
    /// also goes to `path` (see [`crate::record`] for the format), which a
    /// replay reads with the configuration made from `args` (the command
    /// line after the program name). At most `limit` bytes. Call it before
    /// [`Server::run`].
    pub fn record(&mut self, path: &Path, args: Vec<String>, limit: u64) -> io::Result<()> {
        let started_unix_ms = self.wall_origin;
        let header = Header {
            epoch: self.epoch.clone(),
            hash_key: self.hash_key,
            started_unix_ms,
            args,
        };
        self.net.recorder = Some(Recorder::create(path, &header, limit)?);
        Ok(())
    }

    /// Writes `input` to the recording, if there is one.
    fn record_input(&mut self, now: Instant, input: Input) {
        if let Some(r) = &mut self.net.recorder {
            r.input(now, &input);
        }
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
        Instant::ZERO + self.clock_offset + self.clock.elapsed()
    }

    /// Runs until a signal or [`Handle::shutdown`] and every in-flight
    /// response has been written (or the shutdown grace has passed).
    pub fn run(&mut self) -> io::Result<()> {
        let result = self.run_loop();
        if let Some(r) = &mut self.net.recorder {
            r.finish();
        }
        result
    }

    fn run_loop(&mut self) -> io::Result<()> {
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
                    token if redis::link_of(token).is_some() => {
                        self.drive_redis(token, event, now);
                    }
                    token => {
                        let Some(id) = net::conn_id(token) else {
                            continue;
                        };
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            // Without a hang-up in the event, a short read
                            // means the socket is drained (see read_conn).
                            let closing = event.is_read_closed() || event.is_error();
                            self.read_conn(id, now, !closing);
                        }
                        if event.is_writable() {
                            self.record_input(now, Input::Writable { conn: id });
                            self.engine.handle_writable(id);
                        }
                    }
                }
            }
            for id in self.engine.take_unread() {
                self.read_conn(id, now, false);
            }
            self.drive_disk(now);
            self.record_input(now, Input::Timeout);
            self.engine.handle_timeout(now, &mut self.net);
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.resume_accepting(now);
            }
            self.record_input(now, Input::EndTurn);
            self.engine.end_turn(now, &mut self.net);
            self.flush_log(now);
            if let Some(r) = &mut self.net.recorder {
                r.tick(now);
            }
            if self.engine.is_finished(now) {
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        [self.engine.poll_at(), self.accept_paused_until]
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
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let id = self.engine.vacant();
                    if self.net.insert(id, socket).is_err() {
                        continue;
                    }
                    if let Some(r) = &mut self.net.recorder {
                        r.accepted(now, id, &peer.to_string());
                    }
                    let peer = Peer {
                        ip: peer.ip().to_string().into(),
                    };
                    // Refused ones are answered 503 by the engine, unless
                    // even the refusals are at their limit: closed at once.
                    if self.engine.handle_accept(now, &peer).is_none() {
                        // The shell's own close, not the engine's: kept out
                        // of a recording, where the replay would not find it.
                        self.net.drop_socket(id);
                    }
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
                    self.record_input(now, Input::AcceptError);
                    self.engine.handle_accept_error();
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

    /// Stops accepting and lets the engine finish every session.
    fn begin_shutdown(&mut self, now: Instant) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accept_paused_until = None;
        self.record_input(now, Input::Shutdown);
        self.engine.handle_shutdown(now, &mut self.net);
    }

    /// Reads connection `id` until `WouldBlock`, the per-turn budget, or
    /// the engine stops wanting its input.
    ///
    /// With `short_read_drains`, a read that returns less than the buffer
    /// also ends it: the kernel handed over everything it had, and bytes (or
    /// a FIN) arriving later raise a new edge, so the `read` that would only
    /// say `WouldBlock` is saved — one syscall in three for a small
    /// request/response. Not when the event already reported a hang-up:
    /// then the EOF is waiting behind the data and no new edge will come.
    fn read_conn(&mut self, id: usize, now: Instant, short_read_drains: bool) {
        for _ in 0..READS_PER_TURN {
            if !self.engine.wants_read(id) {
                // Back-pressure: leave the bytes in the kernel. The edge will
                // not fire again, so the engine remembers to come back.
                self.record_input(
                    now,
                    Input::ReadStopped {
                        conn: id,
                        budget: false,
                    },
                );
                self.engine.handle_read_stopped(id, false);
                return;
            }
            let Some(stream) = self.net.stream(id) else {
                return;
            };
            match stream.read(&mut self.read_buf) {
                // The peer shut its write side (or the connection is gone).
                Ok(0) => {
                    self.record_input(now, Input::Eof { conn: id });
                    return self.engine.handle_eof(now, id, &mut self.net);
                }
                Ok(n) => {
                    let drained = short_read_drains && n < self.read_buf.len();
                    let bytes = &self.read_buf[..n];
                    if let Some(r) = &mut self.net.recorder {
                        r.read(now, id, bytes, drained);
                    }
                    self.engine
                        .handle_read(now, id, bytes, drained, &mut self.net);
                    if drained {
                        return;
                    }
                }
                // Drained the socket: wait for the next readiness event.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.record_input(now, Input::ReadDrained { conn: id });
                    return self.engine.handle_read_drained(id);
                }
                // Interrupted by a signal: read again.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Reset or another hard error: the connection is gone.
                Err(_e) => {
                    self.record_input(now, Input::Reset { conn: id });
                    return self.engine.handle_reset(now, id, &mut self.net);
                }
            }
        }
        // Budget spent with bytes possibly left: come back after the others.
        self.record_input(
            now,
            Input::ReadStopped {
                conn: id,
                budget: true,
            },
        );
        self.engine.handle_read_stopped(id, true);
    }
}

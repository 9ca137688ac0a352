//! The lab's only I/O: one `mio::Poll` driving every subscriber of every
//! transport and the publisher, like `server/` on the other side of the
//! socket. Each socket belongs to a *slot* (its token); a slot keeps its
//! token across reconnections.
//!
//! Each turn reads the clock, waits in `poll` until a socket is ready or the
//! next deadline, then:
//! 1. finishes connects (a non-blocking connect reports WRITABLE, then
//!    `take_error`/`peer_addr` tell how it went);
//! 2. writes pending output until `WouldBlock`, reads until `WouldBlock`,
//!    handing the bytes to the slot's machine with the instant they were
//!    read (the latency clock);
//! 3. fires expired deadlines (poll ticks, reconnection waits, publishing);
//! 4. after every machine call, carries out its commands in order.
//!
//! Every byte a client socket writes or reads is counted here, headers,
//! handshakes and close frames included: that is the "bytes on the wire"
//! row. What the run asks the loop between turns is in `status.rs`.

mod status;

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::client::{Client, Command, Delivery};
use super::Column;

use super::measure::{Tally, Tracker};
use super::payload::{self, Stamp};
use super::publisher::{PublishConn, Schedule};
use crate::stats::Transport;
use crate::timers::{Instant, Timers};

/// The timer key of the publishing schedule.
const PUBLISH: usize = usize::MAX;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// Index of a column's [`Tally`]: the transports in [`Transport::ALL`]
/// order (the `Http` one is the publisher's), then WebSocket + deflate.
pub fn tally_index(c: Column) -> usize {
    if c.deflate {
        return Transport::ALL.len();
    }
    Transport::ALL
        .iter()
        .position(|&x| x == c.transport)
        .unwrap_or(4)
}

/// What a slot is for.
#[derive(Debug)]
pub enum Role {
    Subscriber {
        client: Box<Client>,
        tracker: Tracker,
    },
    Publisher(PublishConn),
}

/// One open socket.
struct Link {
    stream: TcpStream,
    /// Bytes waiting to be written (queued before the connect completes,
    /// or left by a short write).
    out: Vec<u8>,
    connected: bool,
    /// Registered for WRITABLE.
    writable: bool,
    opened_at: Instant,
}

/// A subscriber or publishing connection, with its socket if one is open.
pub struct Slot {
    addr: SocketAddr,
    link: Option<Link>,
    /// Bumped at each new socket, so a read loop notices a replacement.
    generation: u64,
    pub role: Role,
}

impl Slot {
    fn transport(&self) -> Transport {
        self.column().transport
    }

    fn column(&self) -> Column {
        match &self.role {
            Role::Subscriber { client, .. } => client.column(),
            Role::Publisher(_) => Column::plain(Transport::Http),
        }
    }
}

/// The event loop and everything it measures.
pub struct Driver {
    poll: Poll,
    events: Events,
    ready: Vec<(usize, bool, bool)>,
    clock: std::time::Instant,
    pub slots: Vec<Slot>,
    timers: Timers<usize>,
    /// Per column, by [`tally_index`]: [`Transport::ALL`] order (the
    /// publisher's is `Http`), then WebSocket + deflate.
    pub tallies: [Tally; 6],
    buf: Vec<u8>,
    deliveries: Vec<Delivery>,
    pub schedule: Option<Schedule>,
    /// Messages published so far (each to every publishing connection).
    pub sent: u64,
    /// When the last message was written.
    pub last_sent_at: Option<Instant>,
    size: usize,
    payload: payload::Kind,
    /// The first publishing failure; the run stops on it.
    pub publish_error: Option<String>,
    stopping: bool,
}

impl Driver {
    /// An empty loop publishing messages of `size` bytes of `payload`.
    pub fn new(size: usize, payload: payload::Kind) -> io::Result<Driver> {
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            ready: Vec::new(),
            clock: std::time::Instant::now(),
            slots: Vec::new(),
            timers: Timers::new(),
            tallies: Default::default(),
            buf: vec![0; READ_CHUNK],
            deliveries: Vec::new(),
            schedule: None,
            sent: 0,
            last_sent_at: None,
            size,
            payload,
            publish_error: None,
            stopping: false,
        })
    }

    /// Time since the lab started (the clock of every stamp).
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.clock.elapsed().as_micros() as u64)
    }

    pub fn add(&mut self, addr: SocketAddr, role: Role) -> usize {
        self.slots.push(Slot {
            addr,
            link: None,
            generation: 0,
            role,
        });
        self.slots.len() - 1
    }

    /// Starts every subscriber and connects every publisher.
    pub fn start_all(&mut self) {
        let now = self.now();
        for i in 0..self.slots.len() {
            match &mut self.slots[i].role {
                Role::Subscriber { client, .. } => client.handle_start(now),
                Role::Publisher(_) => {
                    self.open_link(i, now);
                }
            }
            self.apply(i, now);
        }
    }

    /// The measured run starts at `t0`: short polls spread their ticks over
    /// one `interval`; the publisher follows `schedule`.
    ///
    /// Poll `k` of `n` ticks at `t0 + interval × (k + ½) / n`: evenly spread,
    /// and never on `t0` itself, where the first publish is; a tick that
    /// coincided with a publish would make the race between the two (decided
    /// by the order of timers in one turn) part of the measured latency.
    pub fn begin(&mut self, t0: Instant, interval: Duration, schedule: Schedule) {
        let pollers = self
            .slots
            .iter()
            .filter(|s| s.transport() == Transport::Poll)
            .count()
            .max(1);
        let mut k = 0;
        for i in 0..self.slots.len() {
            if let Role::Subscriber { client, .. } = &mut self.slots[i].role {
                let phase = if client.transport() == Transport::Poll {
                    k += 1;
                    interval.mul_f64((k as f64 - 0.5) / pollers as f64)
                } else {
                    Duration::ZERO
                };
                client.handle_begin(t0, phase);
            }
            self.apply(i, t0);
        }
        self.schedule = Some(schedule);
        self.timers.set(PUBLISH, Some(schedule.start));
    }

    /// Ends the run: subscribers stop (and close), publishers close.
    pub fn stop_all(&mut self) {
        self.stopping = true;
        self.timers.cancel(PUBLISH);
        let now = self.now();
        for i in 0..self.slots.len() {
            match &mut self.slots[i].role {
                Role::Subscriber { client, .. } => client.handle_stop(now),
                Role::Publisher(_) => self.close_link(i, now),
            }
            self.apply(i, now);
        }
    }

    /// Closes whatever is still open (after the stop's grace period).
    pub fn force_close_all(&mut self) {
        let now = self.now();
        for i in 0..self.slots.len() {
            self.close_link(i, now);
        }
    }

    /// One turn of the loop, waiting at most until `until`.
    pub fn turn(&mut self, until: Instant) -> io::Result<()> {
        let now = self.now();
        let deadline = self.timers.next_deadline().map_or(until, |d| d.min(until));
        // Round up so the loop does not wake a few µs early and spin.
        let wait = deadline.saturating_since(now) + Duration::from_micros(999);
        let wait = Duration::from_millis(wait.as_millis() as u64);
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            // A signal arrived during the wait: just go round again.
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.ready.clear();
        for e in self.events.iter() {
            let readable = e.is_readable() || e.is_read_closed() || e.is_error();
            self.ready.push((e.token().0, readable, e.is_writable()));
        }
        for k in 0..self.ready.len() {
            let (slot, readable, writable) = self.ready[k];
            self.on_event(slot, readable, writable);
        }
        let now = self.now();
        while let Some(key) = self.timers.pop_expired(now) {
            if key == PUBLISH {
                self.publish_due(now);
                continue;
            }
            if let Role::Subscriber { client, .. } = &mut self.slots[key].role {
                client.handle_timer(now);
            }
            self.apply(key, now);
        }
        Ok(())
    }

    fn on_event(&mut self, slot: usize, readable: bool, writable: bool) {
        let now = self.now();
        let Some(link) = self.slots.get_mut(slot).and_then(|s| s.link.as_mut()) else {
            return;
        };
        if !link.connected {
            // mio: after WRITABLE (or an error), `take_error` says whether
            // the connect failed and `peer_addr` whether it is done.
            match link.stream.take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return self.lose(slot, now),
            }
            match link.stream.peer_addr() {
                Ok(_) => {
                    link.connected = true;
                    let _ = link.stream.set_nodelay(true);
                }
                // Still connecting: wait for the next event.
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => return self.lose(slot, now),
            }
            return self.after_connect(slot, now);
        }
        if writable {
            self.flush(slot, now);
        }
        if readable {
            self.read(slot);
        }
    }

    fn after_connect(&mut self, slot: usize, now: Instant) {
        self.flush(slot, now);
        // Bytes may have arrived with the connect.
        self.read(slot);
    }

    /// Reads until `WouldBlock`, the end of the stream, or a new socket.
    fn read(&mut self, slot: usize) {
        let generation = self.slots[slot].generation;
        loop {
            let s = &mut self.slots[slot];
            if s.generation != generation {
                return;
            }
            let Some(link) = s.link.as_mut() else {
                return;
            };
            match link.stream.read(&mut self.buf) {
                // The server ended the connection (or shut its write side).
                Ok(0) => return self.lose(slot, self.now()),
                Ok(n) => {
                    let c = s.column();
                    let now = self.now();
                    self.tallies[tally_index(c)].bytes_down += n as u64;
                    self.feed(slot, n, now);
                }
                // Drained the socket: wait for the next readiness event.
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // Interrupted by a signal: read again.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Reset or another hard error: the connection is gone.
                Err(_) => return self.lose(slot, self.now()),
            }
        }
    }

    /// Hands `buf[..n]` to the slot's machine.
    fn feed(&mut self, slot: usize, n: usize, now: Instant) {
        let buf = std::mem::take(&mut self.buf);
        match &mut self.slots[slot].role {
            Role::Subscriber { client, tracker } => {
                client.handle_input(&buf[..n], now, &mut self.deliveries);
                let tally = &mut self.tallies[tally_index(client.column())];
                for d in self.deliveries.drain(..) {
                    tally.record(tracker, &d, now.as_micros());
                }
            }
            Role::Publisher(p) => {
                if let Err(e) = p.handle_input(&buf[..n]) {
                    self.publish_error.get_or_insert(e);
                }
            }
        }
        self.buf = buf;
        self.apply(slot, now);
    }

    /// The socket ended or failed: drop it and tell the machine.
    fn lose(&mut self, slot: usize, now: Instant) {
        self.close_link(slot, now);
        match &mut self.slots[slot].role {
            Role::Subscriber { client, .. } => {
                client.handle_eof(now);
                self.apply(slot, now);
            }
            Role::Publisher(p) => {
                if p.outstanding > 0 && !self.stopping {
                    self.publish_error.get_or_insert_with(|| {
                        "the server closed the publishing connection".into()
                    });
                }
            }
        }
    }

    /// Carries out the slot's queued commands, in order.
    fn apply(&mut self, slot: usize, now: Instant) {
        loop {
            let mut lost = false;
            loop {
                let cmd = match &mut self.slots[slot].role {
                    Role::Subscriber { client, .. } => client.poll_command(),
                    Role::Publisher(_) => None,
                };
                let Some(cmd) = cmd else {
                    break;
                };
                match cmd {
                    Command::Connect => {
                        self.close_link(slot, now);
                        lost |= !self.open_link(slot, now);
                    }
                    Command::Send(bytes) => lost |= !self.send(slot, &bytes, now),
                    Command::Close => self.close_link(slot, now),
                    Command::WakeAt(at) => self.timers.set(slot, Some(at)),
                    Command::CancelWake => self.timers.cancel(slot),
                }
            }
            if !lost {
                return;
            }
            // A connect or a write failed: the machine learns it as an end
            // of stream (it will wait before trying again).
            self.close_link(slot, now);
            if let Role::Subscriber { client, .. } = &mut self.slots[slot].role {
                client.handle_eof(now);
            }
        }
    }

    /// Opens a new socket for `slot`; false when the connect failed at once.
    fn open_link(&mut self, slot: usize, now: Instant) -> bool {
        let s = &mut self.slots[slot];
        let Ok(mut stream) = TcpStream::connect(s.addr) else {
            return false;
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(&mut stream, Token(slot), interest)
            .is_err()
        {
            return false;
        }
        s.generation += 1;
        s.link = Some(Link {
            stream,
            out: Vec::new(),
            connected: false,
            writable: true,
            opened_at: now,
        });
        let c = s.column();
        self.tallies[tally_index(c)].sockets_opened += 1;
        true
    }

    fn close_link(&mut self, slot: usize, now: Instant) {
        let s = &mut self.slots[slot];
        if let Some(mut link) = s.link.take() {
            let _ = self.poll.registry().deregister(&mut link.stream);
            let c = s.column();
            self.tallies[tally_index(c)].socket_closed(now.saturating_since(link.opened_at));
        }
    }

    /// Queues `bytes` and writes what the socket takes; false when the
    /// socket is gone.
    fn send(&mut self, slot: usize, bytes: &[u8], now: Instant) -> bool {
        let Some(link) = self.slots[slot].link.as_mut() else {
            return false;
        };
        link.out.extend_from_slice(bytes);
        if link.connected {
            return self.flush(slot, now);
        }
        true
    }

    /// Writes until the queue is empty or `WouldBlock`; registers WRITABLE
    /// only while output remains. False (and the socket lost) on an error.
    fn flush(&mut self, slot: usize, now: Instant) -> bool {
        let s = &mut self.slots[slot];
        let c = s.column();
        let Some(link) = s.link.as_mut() else {
            return false;
        };
        let mut written = 0;
        let mut failed = false;
        while written < link.out.len() {
            match link.stream.write(&link.out[written..]) {
                Ok(n) => written += n,
                // The send buffer is full: wait for the WRITABLE edge.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // Interrupted by a signal: write again.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Broken pipe, reset: the server is gone.
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        link.out.drain(..written);
        self.tallies[tally_index(c)].bytes_up += written as u64;
        if failed {
            return false;
        }
        let want = !link.out.is_empty();
        if want != link.writable {
            link.writable = want;
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut link.stream, Token(slot), interest)
                .is_err()
            {
                self.lose(slot, now);
                return false;
            }
        }
        true
    }

    /// Publishes every message that is due, each to every publishing
    /// connection, stamped with the instant it is written.
    fn publish_due(&mut self, now: Instant) {
        let Some(schedule) = self.schedule else {
            return;
        };
        let due = schedule.due_by(now);
        while self.sent < due {
            self.sent += 1;
            for i in 0..self.slots.len() {
                let stamp = Stamp {
                    seq: self.sent,
                    published_us: self.now().as_micros(),
                };
                let Role::Publisher(p) = &mut self.slots[i].role else {
                    continue;
                };
                let req = p.request(&payload::encode_as(self.payload, stamp, self.size));
                if self.slots[i].link.is_none() {
                    // The server closed an idle keep-alive connection.
                    self.open_link(i, now);
                }
                if !self.send(i, &req, now) {
                    self.publish_error
                        .get_or_insert_with(|| "cannot write to the server".into());
                }
            }
            self.last_sent_at = Some(self.now());
        }
        if self.sent < schedule.total {
            self.timers.set(PUBLISH, Some(schedule.due_at(self.sent)));
        }
    }
}

//! A connection's deadlines while its output is being written, with a
//! virtual clock: the send timeout (write progress, open or closing), the
//! idle and head deadlines counted from the last write, and a peer EOF
//! while requests wait behind a full output queue.
//!
//! [`Conn`] calls the session the way `server/mod.rs` does: one write
//! attempt reported with `handle_written` (`write_conn`), `handle_flushed`
//! when the queue is empty (`after_flushed`), `handle_timeout` when the
//! clock passes `next_deadline` (`fire_timers`), `handle_close` once closed.

use std::time::Duration;

use super::*;
use crate::testkit::{ms as millis, Rig};

const POLL_BIG: &[u8] = b"GET /poll?topic=big&since=0 HTTP/1.1\r\nHost: t\r\n\r\n";
const POLL_A: &[u8] = b"GET /poll?topic=a HTTP/1.1\r\nHost: t\r\n\r\n";

/// One session and its world, driven like the event loop drives it.
struct Conn {
    /// Config, hub (8 messages a topic), counters, trace (off), clock.
    rig: Rig,
    s: Session,
    /// Everything the client has read.
    read: Vec<u8>,
    /// `handle_close` was called.
    closed: bool,
    /// `handle_flushed` asked for the half-close.
    write_shut: bool,
}

impl Conn {
    fn new(config: Config) -> Conn {
        let rig = Rig::new(config).with_history(8).untraced();
        let s = Session::new(1, Instant::ZERO, &rig.config);
        Conn {
            rig,
            s,
            read: Vec::new(),
            closed: false,
            write_shut: false,
        }
    }

    /// A connection with `--send-timeout 5s`, the rest by default.
    fn send_timeout_5s() -> Conn {
        Conn::new(Config {
            send_timeout: Duration::from_secs(5),
            ..Config::default()
        })
    }

    /// A message of `len` bytes on topic `big`, published before the test.
    fn with_big_message(mut self, len: usize) -> Conn {
        self.rig.publish("big", &"x".repeat(len));
        self
    }

    fn call<R>(&mut self, f: impl FnOnce(&mut Session, &mut Ctx) -> R) -> R {
        f(&mut self.s, &mut self.rig.ctx())
    }

    /// After a call, as `settle`: close, or half-close with nothing queued.
    fn settle(&mut self) {
        if self.closed {
            return;
        }
        match self.s.lifecycle() {
            Lifecycle::Closed => {
                self.call(|s, ctx| s.handle_close(ctx));
                self.closed = true;
            }
            Lifecycle::Closing if self.s.output().is_empty() => self.flushed(),
            _ => {}
        }
    }

    fn flushed(&mut self) {
        if self.call(|s, ctx| s.handle_flushed(ctx)) {
            self.write_shut = true;
        }
        if !self.s.output().is_empty() {
            // Answers to requests that waited for the queue to drain: the
            // loop tries to write them at once (its next turn), and the
            // kernel, just filled, takes nothing yet.
            self.s.handle_written(0, self.rig.now, &self.rig.config);
        }
        self.settle();
    }

    fn input(&mut self, bytes: &[u8]) {
        assert!(
            self.s.wants_read(self.rig.config.max_pipelined_bytes),
            "the session does not read"
        );
        self.call(|s, ctx| s.handle_input(bytes, ctx));
        self.settle();
    }

    fn eof(&mut self) {
        self.call(|s, ctx| s.handle_eof(ctx));
        self.settle();
    }

    /// One write attempt in which the kernel takes at most `n` bytes (0:
    /// `WouldBlock`), as `write_conn` makes it.
    fn write(&mut self, n: usize) {
        if self.closed || self.s.output().is_empty() {
            return;
        }
        let out = self.s.output();
        let take = n.min(out.len());
        self.read.extend_from_slice(&out.to_vec()[..take]);
        out.consume(take);
        self.s.handle_written(take, self.rig.now, &self.rig.config);
        if self.s.output().is_empty() {
            self.flushed();
        }
        self.settle();
    }

    /// Writes until nothing is queued (answers to waiting requests too).
    fn write_all(&mut self) {
        for _ in 0..1000 {
            if self.closed || self.s.output().is_empty() {
                return;
            }
            self.write(usize::MAX);
        }
        panic!("the output never drains");
    }

    /// The clock moves to `at`; due deadlines fire, as `fire_timers` does.
    fn advance_to(&mut self, at: Instant) {
        self.rig.now = at;
        for _ in 0..100 {
            match self.s.next_deadline() {
                Some(d) if !self.closed && d <= at => {
                    self.call(|s, ctx| s.handle_timeout(ctx));
                    self.settle();
                }
                _ => return,
            }
        }
        panic!("a deadline keeps firing");
    }

    fn responses(&self, status: &str) -> usize {
        let line = format!("HTTP/1.1 {status}");
        self.read
            .windows(line.len())
            .filter(|w| *w == line.as_bytes())
            .count()
    }

    fn send_timeouts(&self) -> u64 {
        Transport::ALL
            .iter()
            .map(|&t| self.rig.stats.get(t).send_timeouts)
            .sum()
    }
}

fn secs(s: u64) -> Instant {
    millis(s * 1000)
}

/// A client reading one large answer a little at a time, for far longer
/// than `--idle-timeout`, gets all of it: while output is pending the
/// deadline is write progress, and the idle timeout runs from the moment the
/// queue became empty.
#[test]
fn a_slow_steady_reader_of_a_large_answer_outlives_the_idle_timeout() {
    let mut c = Conn::new(Config {
        idle_timeout: Duration::from_secs(1),
        send_timeout: Duration::from_secs(5),
        ..Config::default()
    })
    .with_big_message(200 * 1024);
    c.input(POLL_BIG);
    let answer = c.s.output().len();
    assert!(answer > 200 * 1024);
    // 4 KiB every 500 ms: about 25 s for the whole answer.
    let mut t = 0;
    while !c.s.output().is_empty() {
        c.write(4096);
        assert!(
            !c.closed,
            "cut at {t} ms with {} bytes left",
            c.s.output().len()
        );
        t += 500;
        c.advance_to(millis(t));
    }
    assert_eq!(c.read.len(), answer);
    assert_eq!(c.responses("200 OK"), 1);
    assert_eq!(c.s.lifecycle(), Lifecycle::Open);
    assert_eq!(c.send_timeouts(), 0);
    // Written out at `t - 500`: idle from then on.
    let flushed_at = millis(t - 500);
    assert_eq!(
        c.s.next_deadline(),
        Some(flushed_at + Duration::from_secs(1))
    );
    c.advance_to(flushed_at + Duration::from_secs(1));
    assert!(c.closed, "closed by the idle timeout");
}

/// A client that stops reading is cut `--send-timeout` after its last
/// progress. Write attempts that move nothing (`WouldBlock`) are not
/// progress; the timer is pushed back lazily, when it fires.
#[test]
fn a_reader_that_stops_is_cut_one_send_timeout_after_its_last_progress() {
    let mut c = Conn::send_timeout_5s().with_big_message(64 * 1024);
    c.input(POLL_BIG);
    c.write(4096);
    assert_eq!(
        c.s.next_deadline(),
        Some(secs(5)),
        "armed at the first write"
    );
    c.rig.now = secs(3);
    c.write(4096);
    // Progress does not move the timer (no re-arm per write)...
    assert_eq!(c.s.next_deadline(), Some(secs(5)));
    c.rig.now = secs(4);
    c.write(0);
    // ...until it fires: then it moves to 5 s after the last progress.
    c.advance_to(secs(5));
    assert!(!c.closed);
    assert_eq!(c.s.next_deadline(), Some(secs(8)));
    c.advance_to(millis(7_999));
    assert!(!c.closed);
    c.advance_to(secs(8));
    assert!(c.closed, "cut after 5 s without progress");
    assert_eq!(c.rig.stats.get(Transport::Poll).send_timeouts, 1);
}

/// A response that closes the connection (`Connection: close`, HTTP/1.0,
/// an error) gets the same write-progress deadline: a client that never
/// reads it does not hold its slot forever.
#[test]
fn a_closing_connection_whose_client_never_reads_is_closed_by_the_send_timeout() {
    for request in [
        &b"GET /poll?topic=big&since=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
        b"GET /poll?topic=big&since=0 HTTP/1.0\r\n\r\n",
    ] {
        let mut c = Conn::send_timeout_5s().with_big_message(64 * 1024);
        c.rig.now = secs(1);
        c.input(request);
        assert_eq!(c.s.lifecycle(), Lifecycle::Closing);
        c.write(0);
        assert_eq!(c.s.next_deadline(), Some(secs(6)));
        c.advance_to(secs(6));
        assert!(c.closed);
        assert!(!c.write_shut, "no half-close: the answer was not written");
        assert_eq!(c.send_timeouts(), 1);
    }
}

/// The other way round: a closing connection whose client reads slowly
/// finishes normally and lingers.
#[test]
fn a_closing_connection_read_slowly_is_written_out_then_lingers() {
    let mut c = Conn::send_timeout_5s().with_big_message(64 * 1024);
    c.input(b"GET /poll?topic=big&since=0 HTTP/1.0\r\n\r\n");
    let mut t = 0;
    loop {
        c.write(4096);
        if c.s.output().is_empty() {
            break;
        }
        t += 4_000;
        c.advance_to(millis(t));
    }
    assert!(c.write_shut);
    assert_eq!(c.s.lifecycle(), Lifecycle::Lingering);
    assert_eq!(c.send_timeouts(), 0);
}

/// Queueing more output is not progress: an SSE subscriber whose socket
/// takes nothing is cut once, however many messages keep arriving.
#[test]
fn messages_queued_for_a_stream_that_takes_nothing_do_not_feed_the_send_timeout() {
    let config = Config {
        send_timeout: Duration::from_secs(5),
        heartbeat: Duration::from_secs(60),
        ..Config::default()
    };
    let mut c = Conn::new(config.clone());
    c.input(b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n");
    c.write_all();
    let heartbeat = c.s.next_deadline();
    for i in 0..10 {
        c.rig.now = millis(10_000 + 400 * i);
        let msg = c.rig.publish("a", "hello");
        c.call(|s, ctx| s.handle_message(&msg, ctx));
        c.write(0);
    }
    assert_eq!(c.s.next_deadline(), Some(secs(15)));
    c.advance_to(secs(15));
    assert!(c.closed);
    assert_eq!(c.rig.stats.get(Transport::Sse).send_timeouts, 1);
    // Once written out, a stream has no send deadline at all.
    let mut d = Conn::new(config);
    d.input(b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n");
    d.write(1);
    d.write_all();
    assert_eq!(d.s.next_deadline(), heartbeat);
}

/// A request waiting behind an answer that is being read slowly may be
/// complete already: the head timeout does not send it a 408 meanwhile.
#[test]
fn a_request_waiting_behind_a_slowly_read_answer_gets_no_408() {
    let mut c = Conn::new(Config {
        max_queued_bytes: 1024,
        send_timeout: Duration::from_secs(5),
        head_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .with_big_message(64 * 1024);
    c.input(&[POLL_BIG, POLL_A].concat());
    let mut t = 0;
    while !c.s.output().is_empty() && t < 60_000 {
        c.write(2048);
        t += 1_000;
        c.advance_to(millis(t));
    }
    assert_eq!(c.responses("200 OK"), 2);
    assert_eq!(c.responses("408"), 0);
    assert_eq!(c.s.lifecycle(), Lifecycle::Open);
}

/// A head cut short behind a slowly read answer still gets its 408, a head
/// timeout after the answer is written out.
#[test]
fn a_partial_head_behind_a_written_answer_times_out_from_the_flush() {
    let mut c = Conn::new(Config {
        head_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .with_big_message(16 * 1024);
    c.input(&[POLL_BIG, b"GET /po"].concat());
    c.write(1024);
    c.advance_to(secs(10));
    let pending = String::from_utf8_lossy(&c.s.output().to_vec()).into_owned();
    assert!(!pending.contains("408"), "no 408 while the answer is read");
    c.write_all();
    assert_eq!(c.s.next_deadline(), Some(secs(12)));
    c.advance_to(secs(12));
    c.write_all();
    assert_eq!(c.responses("408"), 1);
}

/// `printf 'GET …GET …GET …' | nc -N`: the client pipelines, then shuts its
/// write side while the answers wait behind a full output queue. Every
/// complete request received before the EOF is answered, then the
/// connection closes; a request cut short by the EOF is not (and gets no
/// 408).
#[test]
fn requests_pipelined_before_a_half_close_are_answered_behind_a_full_queue() {
    for max_queued_bytes in [0, 100] {
        let mut c = Conn::new(Config {
            max_queued_bytes,
            ..Config::default()
        });
        c.input(&[POLL_A, POLL_A, POLL_A, b"GET /poll?top"].concat());
        let queued = String::from_utf8_lossy(&c.s.output().to_vec()).into_owned();
        assert_eq!(queued.matches("HTTP/1.1 200").count(), 1, "the others wait");
        c.eof();
        assert!(!c.s.wants_read(c.rig.config.max_pipelined_bytes));
        assert!(!c.closed);
        c.write_all();
        assert_eq!(c.responses("200 OK"), 3, "{max_queued_bytes}");
        assert_eq!(c.responses("408"), 0);
        assert!(c.closed, "closed once the answers are written");
        assert!(!c.write_shut, "the peer shut first: no linger");
    }
}

/// The same while the client reads the answers slowly: the waiting
/// requests are neither dropped nor timed out.
#[test]
fn requests_behind_a_half_close_survive_a_slow_reader() {
    let mut c = Conn::new(Config {
        max_queued_bytes: 1024,
        head_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        send_timeout: Duration::from_secs(5),
        ..Config::default()
    })
    .with_big_message(16 * 1024);
    c.input(&[POLL_BIG, POLL_BIG, POLL_A].concat());
    c.eof();
    let mut t = 0;
    while !c.closed && t < 600_000 {
        c.write(1024);
        t += 2_000;
        c.advance_to(millis(t));
    }
    assert!(c.closed);
    assert_eq!(c.responses("200 OK"), 3);
    assert_eq!(c.send_timeouts(), 0);
}

/// A long poll pipelined before the EOF is dropped, as one whose client
/// hangs up while it is held; the answers queued before it are still sent.
#[test]
fn a_long_poll_pipelined_before_a_half_close_is_dropped_after_the_answers_before_it() {
    let mut c = Conn::new(Config {
        max_queued_bytes: 0,
        ..Config::default()
    });
    c.input(
        &[
            POLL_A,
            b"GET /long-poll?topic=a HTTP/1.1\r\nHost: t\r\n\r\n",
        ]
        .concat(),
    );
    c.eof();
    c.write_all();
    assert!(c.closed);
    assert_eq!(c.responses("200 OK"), 1);
    let lp = c.rig.stats.get(Transport::LongPoll);
    assert_eq!((lp.holds_started, lp.holds_dropped_by_client), (1, 1));
    assert_eq!(lp.holds_active, 0);
}

/// The hot path: an answer or a fanned-out message that the kernel takes in
/// the turn it was queued leaves `next_deadline` exactly as it was at every
/// step, so the loop's cached deadline (`conn.armed`) saves the timer update.
#[test]
fn a_queue_written_out_at_once_changes_no_deadline() {
    let mut c = Conn::new(Config::default());
    c.rig.now = secs(1);
    c.input(POLL_A);
    let idle = Some(secs(61));
    assert_eq!(c.s.next_deadline(), idle, "queued");
    c.write_all();
    assert_eq!(c.s.next_deadline(), idle, "written");

    c.input(b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n");
    c.write_all();
    let heartbeat = c.s.next_deadline();
    for i in 0..3 {
        c.rig.now = secs(2 + i);
        let msg = c.rig.publish("a", "hello");
        c.call(|s, ctx| s.handle_message(&msg, ctx));
        assert_eq!(c.s.next_deadline(), heartbeat, "queued");
        c.write_all();
        assert_eq!(c.s.next_deadline(), heartbeat, "written");
    }
}

/// `--max-pipelined-bytes`: requests pipelined behind a held long poll wait
/// unanswered in the input; past the limit the socket is not read (TCP
/// pushes back on the client), and once the held request is answered the
/// ones behind it are, and reading resumes.
#[test]
fn past_max_pipelined_bytes_behind_a_held_request_the_socket_is_not_read() {
    let held: &[u8] = b"GET /long-poll?topic=a HTTP/1.1\r\nHost: t\r\n\r\n";
    let behind = POLL_A.repeat(500);
    assert!(behind.len() > 16 * 1024 && behind.len() < 64 * 1024);
    for (limit, reads) in [
        (16 * 1024, false),
        (crate::config::DEFAULT_MAX_PIPELINED_BYTES, true),
    ] {
        let mut c = Conn::new(Config {
            max_pipelined_bytes: limit,
            ..Config::default()
        });
        c.input(&[held, &behind].concat());
        c.write_all();
        assert_eq!(c.responses("200 OK"), 0, "all wait behind the held poll");
        assert_eq!(c.s.wants_read(limit), reads, "limit {limit}");
        // The poll's hold ends (30 s by default): it and the 500 behind it
        // are answered, and the socket is read again.
        c.advance_to(secs(31));
        c.write_all();
        assert_eq!(c.responses("200 OK"), 501, "limit {limit}");
        assert!(c.s.wants_read(limit), "limit {limit}");
    }
}

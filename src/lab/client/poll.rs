//! Short and long polling clients: the same request/response loop, with a
//! different rule for when the next request goes out.
//!
//! - Short polling is `setInterval`: a tick every `--poll-interval`, on a
//!   fixed schedule that does not drift with response times. A tick that
//!   finds the previous request still unanswered is skipped (counted), as a
//!   careful page does instead of stacking requests.
//! - Long polling (RFC 6202 §2) asks again the moment an answer arrives,
//!   with `since=next`, so there is always a request parked at the server.
//!   After an error it waits [`RETRY_AFTER`] first, as the usual client code
//!   (`.catch(() => setTimeout(longPoll, …))`) does.
//!
//! Both carry the cursor from one response to the next (`since=next`), so
//! nothing is lost between requests. `keep_alive` off sends
//! `Connection: close` and opens a new socket per request — the setting the
//! classic "new connection per update" rows silently assume.

use std::time::Duration;

use super::{Base, Command, Delivery, Endpoint};
use crate::lab::http::{Decoded, ResponseReader};
use crate::lab::updates::decode_poll_body;
use crate::stats::Transport;
use crate::timers::Instant;

/// How long a long-polling client waits before asking again after its
/// request failed (the socket ended without an answer).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Short { interval: Duration },
    Long { timeout: Duration },
}

/// A polling subscriber.
#[derive(Debug)]
pub struct PollClient {
    mode: Mode,
    endpoint: Endpoint,
    keep_alive: bool,
    /// `since=` of the next request: `0` (all kept, the run's topic is
    /// fresh) and then each response's `next`.
    cursor: String,
    reader: ResponseReader,
    in_flight: bool,
    next_tick: Option<Instant>,
    pub(crate) base: Base,
}

impl PollClient {
    pub fn new(mode: Mode, endpoint: Endpoint, keep_alive: bool) -> PollClient {
        PollClient {
            mode,
            endpoint,
            keep_alive,
            cursor: "0".into(),
            reader: ResponseReader::new(),
            in_flight: false,
            next_tick: None,
            base: Base::default(),
        }
    }

    pub fn transport(&self) -> Transport {
        match self.mode {
            Mode::Short { .. } => Transport::Poll,
            Mode::Long { .. } => Transport::LongPoll,
        }
    }

    /// The path and query of the next request.
    pub fn target(&self) -> String {
        let Endpoint { prefix, topic, .. } = &self.endpoint;
        match self.mode {
            Mode::Short { .. } => format!("{prefix}/poll?topic={topic}&since={}", self.cursor),
            Mode::Long { timeout } => format!(
                "{prefix}/long-poll?topic={topic}&since={}&timeout={}ms",
                self.cursor,
                timeout.as_millis()
            ),
        }
    }

    fn send_request(&mut self) {
        if !self.base.open {
            self.base.connect();
            self.reader = ResponseReader::new();
        }
        let target = self.target();
        self.base
            .send_get(&target, &self.endpoint.host, &[], self.keep_alive);
        self.in_flight = true;
    }

    pub fn handle_start(&mut self, _now: Instant) {
        self.send_request();
    }

    /// Short polling: the first tick comes `phase` after `t0`.
    pub fn handle_begin(&mut self, t0: Instant, phase: Duration) {
        if let Mode::Short { .. } = self.mode {
            let at = t0 + phase;
            self.next_tick = Some(at);
            self.base.push(Command::WakeAt(at));
        }
    }

    pub fn handle_input(&mut self, data: &[u8], _now: Instant, out: &mut Vec<Delivery>) {
        if !self.base.open || self.base.failed {
            return;
        }
        self.reader.feed(data);
        loop {
            match self.reader.next_response() {
                Ok(Decoded::Incomplete) => return,
                Ok(Decoded::Response(r)) => {
                    self.in_flight = false;
                    self.base.counters.responses += 1;
                    if r.head.status != 200 {
                        let body = String::from_utf8_lossy(&r.body).into_owned();
                        let why = format!("{} → {} {}", self.target(), r.head.status, body.trim());
                        return self.base.fail(why);
                    }
                    let body = match decode_poll_body(&r.body) {
                        Ok(b) => b,
                        Err(e) => return self.base.fail(e.to_string()),
                    };
                    if body.is_empty() {
                        self.base.counters.empty_responses += 1;
                    }
                    let reused = self.base.exchanges > 0;
                    self.base.exchanges += 1;
                    for update in body.updates {
                        out.push(Delivery { update, reused });
                    }
                    self.cursor = body.next;
                    if !self.keep_alive || r.head.close || self.base.stopping {
                        self.base.close();
                    }
                    if self.base.stopping {
                        return;
                    }
                    if let Mode::Long { .. } = self.mode {
                        self.send_request();
                    }
                    if !self.base.open {
                        return;
                    }
                }
                Ok(Decoded::Stream(head)) => {
                    return self.base.fail(format!(
                        "{} → {} without a length",
                        self.target(),
                        head.status
                    ))
                }
                Err(e) => return self.base.fail(e.to_string()),
            }
        }
    }

    /// The socket ended (or never connected).
    pub fn handle_eof(&mut self, now: Instant) {
        if !self.base.close() {
            return;
        }
        let was_in_flight = std::mem::take(&mut self.in_flight);
        if self.base.stopping || self.base.failed {
            return;
        }
        // The server ended a socket the client still meant to use.
        self.base.counters.reconnects += 1;
        if was_in_flight {
            if let Mode::Long { .. } = self.mode {
                self.base.push(Command::WakeAt(now + RETRY_AFTER));
            }
        }
    }

    pub fn handle_timer(&mut self, now: Instant) {
        if self.base.stopping || self.base.failed {
            return;
        }
        match self.mode {
            Mode::Short { interval } => {
                if self.in_flight {
                    self.base.counters.skipped_ticks += 1;
                } else {
                    self.send_request();
                }
                let mut next = self.next_tick.unwrap_or(now) + interval;
                // A loop that fell far behind does not fire a burst.
                while next <= now {
                    next = next + interval;
                }
                self.next_tick = Some(next);
                self.base.push(Command::WakeAt(next));
            }
            Mode::Long { .. } => {
                if !self.in_flight {
                    self.send_request();
                }
            }
        }
    }

    /// Stop asking. A short poll in flight is awaited (so its answer is
    /// counted on both sides); a parked long poll is hung up on.
    pub fn handle_stop(&mut self, _now: Instant) {
        self.base.stopping = true;
        self.base.push(Command::CancelWake);
        let wait = matches!(self.mode, Mode::Short { .. }) && self.in_flight;
        if !wait {
            self.in_flight = false;
            self.base.close();
        }
    }

    /// Subscribed: a short poll has its first answer, a long poll its first
    /// request out.
    pub fn is_ready(&self) -> bool {
        match self.mode {
            Mode::Short { .. } => self.base.counters.responses > 0,
            Mode::Long { .. } => self.base.counters.requests > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::updates::Update;

    fn endpoint() -> Endpoint {
        Endpoint {
            host: "h".into(),
            prefix: String::new(),
            topic: "t".into(),
        }
    }

    /// A client of `endpoint()` after `handle_start` at zero.
    fn started(mode: Mode, keep_alive: bool) -> PollClient {
        let mut c = PollClient::new(mode, endpoint(), keep_alive);
        c.handle_start(Instant::ZERO);
        c
    }

    /// A long-polling client that asks for 30 s holds, started.
    fn started_long_poll(keep_alive: bool) -> PollClient {
        let timeout = Duration::from_secs(30);
        started(Mode::Long { timeout }, keep_alive)
    }

    fn commands(c: &mut PollClient) -> Vec<Command> {
        std::iter::from_fn(|| c.base.commands.pop_front()).collect()
    }

    fn response(body: &str, connection: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    const EMPTY: &str = r#"{"messages":[],"next":"E-3","missed":0,"reset":false}"#;
    const ONE: &str = r#"{"messages":[{"topic":"t","id":"E-4","data":"m"}],"next":"E-4","missed":0,"reset":false}"#;

    #[test]
    fn a_long_poll_asks_again_at_once_with_the_new_cursor_on_the_same_socket() {
        let mut c = started_long_poll(true);
        let first = commands(&mut c);
        assert_eq!(first[0], Command::Connect);
        let Command::Send(req) = &first[1] else {
            panic!("{first:?}")
        };
        assert!(req.starts_with(b"GET /long-poll?topic=t&since=0&timeout=30000ms HTTP/1.1\r\n"));
        let mut out = Vec::new();
        c.handle_input(&response(ONE, "keep-alive"), Instant::ZERO, &mut out);
        assert_eq!(
            out,
            [Delivery {
                update: Update::Message {
                    id: "E-4".into(),
                    data: "m".into()
                },
                reused: false
            }]
        );
        let next = commands(&mut c);
        assert_eq!(next.len(), 1, "no new socket: {next:?}");
        let Command::Send(req) = &next[0] else {
            panic!("{next:?}")
        };
        assert!(req.starts_with(b"GET /long-poll?topic=t&since=E-4&"));
    }

    #[test]
    fn without_keep_alive_every_request_gets_its_own_socket() {
        let mut c = started_long_poll(false);
        let first = commands(&mut c);
        let Command::Send(req) = &first[1] else {
            panic!()
        };
        assert!(String::from_utf8_lossy(req).contains("Connection: close\r\n"));
        c.handle_input(&response(ONE, "close"), Instant::ZERO, &mut Vec::new());
        let next = commands(&mut c);
        assert_eq!(next[0], Command::Close);
        assert_eq!(next[1], Command::Connect);
        assert!(matches!(next[2], Command::Send(_)));
    }

    #[test]
    fn short_polling_ticks_on_a_fixed_schedule_and_skips_while_in_flight() {
        let ms = Duration::from_millis;
        let mut c = started(Mode::Short { interval: ms(100) }, true);
        c.handle_input(
            &response(EMPTY, "keep-alive"),
            Instant::ZERO,
            &mut Vec::new(),
        );
        assert!(c.is_ready());
        assert_eq!(c.base.counters.empty_responses, 1);
        commands(&mut c);
        c.handle_begin(Instant::ZERO, ms(30));
        assert_eq!(
            commands(&mut c),
            [Command::WakeAt(Instant::from_millis(30))]
        );
        c.handle_timer(Instant::from_millis(31));
        let cmds = commands(&mut c);
        assert!(
            matches!(&cmds[0], Command::Send(r) if r.starts_with(b"GET /poll?topic=t&since=E-3 "))
        );
        assert_eq!(cmds[1], Command::WakeAt(Instant::from_millis(130)));
        // The answer is late: the next tick is skipped, not stacked.
        c.handle_timer(Instant::from_millis(130));
        assert_eq!(c.base.counters.skipped_ticks, 1);
        assert_eq!(
            commands(&mut c),
            [Command::WakeAt(Instant::from_millis(230))]
        );
    }

    #[test]
    fn a_stopped_short_poll_waits_for_its_answer_then_closes() {
        let mut c = started(
            Mode::Short {
                interval: Duration::from_secs(1),
            },
            true,
        );
        commands(&mut c);
        c.handle_stop(Instant::ZERO);
        assert!(!c.base.is_done());
        c.handle_input(
            &response(EMPTY, "keep-alive"),
            Instant::ZERO,
            &mut Vec::new(),
        );
        assert!(c.base.is_done());
        assert_eq!(commands(&mut c), [Command::CancelWake, Command::Close]);
    }

    #[test]
    fn an_error_status_fails_the_client_with_the_reason() {
        let mut c = started(
            Mode::Short {
                interval: Duration::from_secs(1),
            },
            true,
        );
        c.handle_input(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad",
            Instant::ZERO,
            &mut Vec::new(),
        );
        assert!(c.base.failed);
        assert!(c
            .base
            .counters
            .first_error
            .as_deref()
            .unwrap()
            .contains("400 bad"));
    }
}

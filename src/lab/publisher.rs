//! The lab's publisher: `--rate` messages a second, `--size` bytes each, to
//! the run's topic, over one keep-alive `POST /publish` connection per
//! server. The schedule is fixed in advance (message `i` is due at
//! `start + i / rate`) so a slow turn of the loop sends the overdue messages
//! at once instead of stretching the run.

use std::time::Duration;

use super::client::Endpoint;
use super::http::{encode_request, Decoded, ResponseReader};
use crate::timers::Instant;

/// When each message is due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub start: Instant,
    /// Messages per second.
    pub rate: f64,
    /// Messages in the run.
    pub total: u64,
}

impl Schedule {
    /// `rate` messages a second for `duration`, at least one message.
    pub fn new(start: Instant, rate: f64, duration: Duration) -> Schedule {
        let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
        Schedule { start, rate, total }
    }

    /// When message `i` (0-based) is due.
    pub fn due_at(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many messages are due by `now`.
    pub fn due_by(&self, now: Instant) -> u64 {
        if now < self.start {
            return 0;
        }
        let elapsed = now.saturating_since(self.start).as_secs_f64();
        let n = (elapsed * self.rate).floor() as u64 + 1;
        // Rounding may put the boundary a hair late: trust `due_at`.
        let n = n.min(self.total);
        if n < self.total && self.due_at(n) <= now {
            n + 1
        } else {
            n
        }
    }
}

/// One publishing connection: writes requests, counts the answers.
#[derive(Debug)]
pub struct PublishConn {
    endpoint: Endpoint,
    token: Option<String>,
    reader: ResponseReader,
    /// Requests written and not answered yet.
    pub outstanding: u64,
    /// `200` answers.
    pub accepted: u64,
}

impl PublishConn {
    pub fn new(endpoint: Endpoint, token: Option<String>) -> PublishConn {
        PublishConn {
            endpoint,
            token,
            reader: ResponseReader::new(),
            outstanding: 0,
            accepted: 0,
        }
    }

    /// The request publishing `data`.
    pub fn request(&mut self, data: &str) -> Vec<u8> {
        let Endpoint {
            host,
            prefix,
            topic,
        } = &self.endpoint;
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "text/plain; charset=utf-8")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let mut req = Vec::with_capacity(data.len() + 160);
        let target = format!("{prefix}/publish?topic={topic}");
        encode_request(
            &mut req,
            "POST",
            &target,
            host,
            &headers,
            data.as_bytes(),
            true,
        );
        self.outstanding += 1;
        req
    }

    /// Reads answers; an answer other than `200` is an error of the run.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), String> {
        self.reader.feed(data);
        loop {
            match self.reader.next_response() {
                Ok(Decoded::Incomplete) => return Ok(()),
                Ok(Decoded::Response(r)) if r.head.status == 200 => {
                    self.outstanding = self.outstanding.saturating_sub(1);
                    self.accepted += 1;
                }
                Ok(Decoded::Response(r)) => {
                    let body = String::from_utf8_lossy(&r.body).into_owned();
                    return Err(format!("publish → {} {}", r.head.status, body.trim()));
                }
                Ok(Decoded::Stream(head)) => {
                    return Err(format!("publish → {} without a length", head.status))
                }
                Err(e) => return Err(format!("publish: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spreads_messages_evenly_and_catches_up() {
        let s = Schedule::new(Instant::from_millis(1000), 4.0, Duration::from_secs(2));
        assert_eq!(s.total, 8);
        assert_eq!(s.due_by(Instant::from_millis(999)), 0);
        assert_eq!(s.due_by(Instant::from_millis(1000)), 1);
        assert_eq!(s.due_by(Instant::from_millis(1249)), 1);
        assert_eq!(s.due_by(Instant::from_millis(1250)), 2);
        assert_eq!(s.due_by(Instant::from_millis(9000)), 8);
        assert_eq!(s.due_at(4), Instant::from_millis(2000));
    }

    #[test]
    fn a_slow_rate_still_publishes_one_message() {
        let s = Schedule::new(Instant::ZERO, 0.01, Duration::from_secs(1));
        assert_eq!(s.total, 1);
    }

    #[test]
    fn answers_are_counted_and_a_refusal_is_an_error() {
        let mut p = PublishConn::new(
            Endpoint {
                host: "h".into(),
                prefix: String::new(),
                topic: "t".into(),
            },
            Some("k".into()),
        );
        let req = String::from_utf8(p.request("hi")).unwrap();
        assert!(req.starts_with("POST /publish?topic=t HTTP/1.1\r\n"));
        assert!(req.contains("Authorization: Bearer k\r\n"));
        assert!(req.ends_with("\r\n\r\nhi"));
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        p.handle_input(ok).unwrap();
        assert_eq!((p.accepted, p.outstanding), (1, 0));
        let no = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\n\r\nno!";
        assert!(p.handle_input(no).unwrap_err().contains("401"));
    }
}

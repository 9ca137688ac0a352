//! An `EventSource`, as WHATWG HTML §9.2 "Server-sent events" describes it
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>): one
//! `GET /events` whose response never ends, parsed by
//! [`crate::wire::sse::Parser`]. When the stream ends, wait the reconnection
//! time (the server's `retry:`, else [`DEFAULT_RETRY`]) and ask again with
//! `Last-Event-ID` (§9.2.3 "reestablish the connection"), so the server
//! resumes exactly after the last event received.
//!
//! Left out, as pushlab's server never needs them: CORS, redirects, and the
//! §9.2.3 rule that a non-200 answer or a wrong `Content-Type` fails the
//! connection for good — here too, but counted as an error of the run.

use std::time::Duration;

use super::{Base, Command, Delivery, Endpoint};
use crate::lab::http::{Decoded, ResponseReader};
use crate::lab::updates::decode_sse_event;
use crate::timers::Instant;
use crate::wire::sse::{self, Parser};

/// The reconnection time before a `retry:` field sets one. The spec leaves
/// it to the user agent; browsers use a few seconds.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(3);

/// An SSE subscriber.
#[derive(Debug)]
pub struct SseClient {
    endpoint: Endpoint,
    reader: ResponseReader,
    parser: Parser,
    /// The head has come; bytes go to the parser.
    streaming: bool,
    ready: bool,
    pub(crate) base: Base,
}

impl SseClient {
    pub fn new(endpoint: Endpoint) -> SseClient {
        SseClient {
            endpoint,
            reader: ResponseReader::new(),
            parser: Parser::new(),
            streaming: false,
            ready: false,
            base: Base::default(),
        }
    }

    fn connect(&mut self) {
        self.base.connect();
        self.reader = ResponseReader::new();
        self.streaming = false;
        let Endpoint {
            host,
            prefix,
            topic,
        } = &self.endpoint;
        // The URL stays the same on every connection, as an EventSource's
        // does; on a reconnection `Last-Event-ID` takes precedence over it.
        let target = format!("{prefix}/events?topic={topic}&since=0");
        let last = self.parser.last_event_id().to_string();
        let mut headers = vec![
            ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"),
        ];
        if !last.is_empty() {
            headers.push(("Last-Event-ID", &last));
        }
        self.base.send_get(&target, host, &headers, true);
    }

    pub fn handle_start(&mut self, _now: Instant) {
        self.connect();
    }

    pub fn handle_input(&mut self, data: &[u8], _now: Instant, out: &mut Vec<Delivery>) {
        if !self.base.open || self.base.failed {
            return;
        }
        if self.streaming {
            self.parser.feed(data);
        } else {
            self.reader.feed(data);
            match self.reader.next_response() {
                Ok(Decoded::Incomplete) => return,
                Ok(Decoded::Stream(head)) => {
                    let is_stream = head
                        .header("content-type")
                        .is_some_and(|v| v.starts_with(b"text/event-stream"));
                    if head.status != 200 || !is_stream {
                        return self
                            .base
                            .fail(format!("/events → {} without an event stream", head.status));
                    }
                    self.base.counters.responses += 1;
                    self.base.exchanges += 1;
                    self.streaming = true;
                    self.ready = true;
                    let rest = self.reader.take_rest();
                    self.parser.feed(&rest);
                }
                Ok(Decoded::Response(r)) => {
                    let body = String::from_utf8_lossy(&r.body).into_owned();
                    return self
                        .base
                        .fail(format!("/events → {} {}", r.head.status, body.trim()));
                }
                Err(e) => return self.base.fail(e.to_string()),
            }
        }
        loop {
            match self.parser.next_event() {
                Ok(sse::Decoded::Incomplete) => return,
                Ok(sse::Decoded::Event(event)) => match decode_sse_event(&event) {
                    Ok(Some(update)) => self.base.deliver(update, out),
                    Ok(None) => {}
                    Err(e) => return self.base.fail(e.to_string()),
                },
                Err(e) => return self.base.fail(e.to_string()),
            }
        }
    }

    /// The stream ended: §9.2.3, wait the reconnection time, then reconnect.
    pub fn handle_eof(&mut self, now: Instant) {
        if !self.base.close() {
            return;
        }
        self.parser.end_of_stream();
        self.streaming = false;
        if self.base.stopping || self.base.failed {
            return;
        }
        self.base.counters.reconnects += 1;
        let wait = self
            .parser
            .retry()
            .map_or(DEFAULT_RETRY, Duration::from_millis);
        self.base.push(Command::WakeAt(now + wait));
    }

    pub fn handle_timer(&mut self, _now: Instant) {
        if !self.base.open && !self.base.stopping && !self.base.failed {
            self.connect();
        }
    }

    /// `EventSource.close()`.
    pub fn handle_stop(&mut self, _now: Instant) {
        self.base.stopping = true;
        self.base.push(Command::CancelWake);
        self.base.close();
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The id a reconnection would resume after.
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::updates::Update;

    fn commands(c: &mut SseClient) -> Vec<Command> {
        std::iter::from_fn(|| c.base.commands.pop_front()).collect()
    }

    const HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";

    #[test]
    fn events_are_delivered_and_a_reconnection_resumes_after_the_last_id() {
        let mut c = SseClient::new(Endpoint {
            host: "h".into(),
            prefix: String::new(),
            topic: "t".into(),
        });
        c.handle_start(Instant::ZERO);
        let first = commands(&mut c);
        assert_eq!(first[0], Command::Connect);
        let mut stream = HEAD.to_vec();
        stream
            .extend_from_slice(b"retry: 250\n\nid: E-1\ndata: one\n\n: ping\n\nid: E-2\ndata: tw");
        let mut out = Vec::new();
        // Split inside the head, to check the head/stream hand-over.
        c.handle_input(&stream[..20], Instant::ZERO, &mut out);
        c.handle_input(&stream[20..], Instant::ZERO, &mut out);
        assert_eq!(
            out,
            [Delivery {
                update: Update::Message {
                    id: "E-1".into(),
                    data: "one".into()
                },
                reused: true
            }]
        );
        commands(&mut c);
        c.handle_eof(Instant::from_millis(1000));
        assert_eq!(c.base.counters.reconnects, 1);
        assert_eq!(
            commands(&mut c),
            [Command::Close, Command::WakeAt(Instant::from_millis(1250))]
        );
        c.handle_timer(Instant::from_millis(1250));
        let again = commands(&mut c);
        let Command::Send(req) = &again[1] else {
            panic!("{again:?}")
        };
        assert!(String::from_utf8_lossy(req).contains("\r\nLast-Event-ID: E-1\r\n"));
    }

    #[test]
    fn a_refused_stream_is_an_error_not_a_reconnection_loop() {
        let mut c = SseClient::new(Endpoint {
            host: "h".into(),
            prefix: String::new(),
            topic: "t".into(),
        });
        c.handle_start(Instant::ZERO);
        c.handle_input(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope",
            Instant::ZERO,
            &mut Vec::new(),
        );
        assert!(c.base.failed);
        assert!(c.base.is_done());
    }
}

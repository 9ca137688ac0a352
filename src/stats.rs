//! Socket counters per transport (docs/api.md § `/stats`), and the socket events that
//! `--trace` prints and `GET /trace` streams.
//!
//! Every counter is a plain integer updated by the sans-I/O sessions; the
//! event loop adds the byte counts it reads and writes. `/stats` renders them
//! as JSON, `/metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::time::Duration;

use crate::hub::BrokerStatus;
use crate::timers::Instant;

/// What a socket is used for, decided by the first request that names a
/// transport (a keep-alive socket that only publishes or reads `/stats`
/// stays [`Transport::Http`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Poll,
    LongPoll,
    Sse,
    Ws,
    /// Publishing, the page, `/stats`: plain request/response traffic.
    Http,
}

impl Transport {
    /// Every transport, in the order the tables show them.
    pub const ALL: [Transport; 5] = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Sse,
        Transport::Ws,
        Transport::Http,
    ];

    /// The name used in `/stats`, `/metrics` and traces.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::LongPoll => "long_poll",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::Http => "http",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one transport.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub sockets_opened: u64,
    pub sockets_open: u64,
    pub sockets_closed: u64,
    /// Sum of the lifetimes of closed sockets, in microseconds.
    pub lifetime_micros: u64,
    pub requests: u64,
    /// Requests answered on a socket that had already answered one.
    pub requests_on_reused_socket: u64,
    pub empty_responses: u64,
    pub messages_delivered: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Long poll: requests parked.
    pub holds_started: u64,
    pub holds_released_by_message: u64,
    pub holds_released_by_timeout: u64,
    pub holds_dropped_by_client: u64,
    /// Sum of hold durations, in microseconds.
    pub hold_micros: u64,
    pub holds_active: u64,
    /// SSE: heartbeat comments sent.
    pub heartbeats: u64,
    /// SSE: streams ended by `--sse-max-lifetime`.
    pub max_lifetime_closes: u64,
    /// SSE: streams ended because the token they were opened with expired
    /// (a `/ws` connection counts under its close code, 4401).
    pub token_expiry_closes: u64,
    /// SSE/WS/long poll: subscriptions that came with a cursor.
    pub resumes: u64,
    /// Subscribers cut because their queue passed `--max-queued-bytes`.
    pub slow_consumer_cuts: u64,
    /// Connections closed because the client accepted none of their pending
    /// output for `--send-timeout`.
    pub send_timeouts: u64,
    /// Gap notices (`missed`) and resets sent.
    pub gaps_reported: u64,
    pub resets_reported: u64,
    /// WebSocket frames each way, pings sent, pongs received.
    pub frames_in: u64,
    pub frames_out: u64,
    pub pings_sent: u64,
    pub pongs_received: u64,
    /// permessage-deflate: compressed data frames sent, and their payload
    /// bytes before and after compression.
    pub deflate_frames_out: u64,
    pub deflate_bytes_before: u64,
    pub deflate_bytes_after: u64,
    /// Compressed messages received (and inflated).
    pub deflate_messages_in: u64,
    /// Closes by code (WebSocket) — code and count.
    pub close_codes: Vec<(u16, u64)>,
}

impl Counters {
    /// Mean lifetime of closed sockets.
    pub fn mean_lifetime(&self) -> Duration {
        Duration::from_micros(
            self.lifetime_micros
                .checked_div(self.sockets_closed)
                .unwrap_or(0),
        )
    }

    /// Records a WebSocket close code.
    pub fn count_close_code(&mut self, code: u16) {
        match self.close_codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => self.close_codes.push((code, 1)),
        }
    }
}

/// What the server holds in memory against its server-wide budgets: kept
/// history (`--history-memory`) and messages being assembled
/// (`--assembly-memory`). Read from the hub and the budget at each request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub history: crate::hub::Usage,
    pub assembling_bytes: usize,
    pub assembly_limit: usize,
    /// Messages refused because `--assembly-memory` was spent.
    pub assembly_refusals: u64,
}

impl Memory {
    fn to_json(self) -> serde_json::Value {
        let h = self.history;
        serde_json::json!({
            "history_bytes": h.history_bytes,
            "history_limit": h.history_limit,
            "kept_messages": h.kept_messages,
            "topics_kept": h.topics_kept,
            "topics_subscribed": h.topics_subscribed,
            "assembling_bytes": self.assembling_bytes,
            "assembly_limit": self.assembly_limit,
            "assembly_refusals": self.assembly_refusals,
        })
    }

    fn write_prometheus(self, s: &mut String) {
        let h = self.history;
        for (name, kind, v) in [
            ("history_bytes", "gauge", h.history_bytes as u64),
            ("history_limit_bytes", "gauge", h.history_limit as u64),
            ("kept_messages", "gauge", h.kept_messages as u64),
            ("topics_kept", "gauge", h.topics_kept as u64),
            ("topics_subscribed", "gauge", h.topics_subscribed as u64),
            ("assembling_bytes", "gauge", self.assembling_bytes as u64),
            ("assembly_limit_bytes", "gauge", self.assembly_limit as u64),
            ("assembly_refusals_total", "counter", self.assembly_refusals),
        ] {
            let _ = writeln!(s, "# TYPE pushlab_{name} {kind}\npushlab_{name} {v}");
        }
    }
}

/// Counters of every transport, plus server-wide ones.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    per: [Counters; 5],
    /// Connections refused at `--max-connections` (503).
    pub connections_refused: u64,
    /// `accept` failures for lack of descriptors (EMFILE/ENFILE).
    pub accept_errors: u64,
    pub messages_published: u64,
    /// Requests refused with a 4xx/5xx status.
    pub errors_sent: u64,
}

impl Stats {
    /// The counters of `t`.
    pub fn of(&mut self, t: Transport) -> &mut Counters {
        &mut self.per[t.index()]
    }

    /// The counters of `t`, read-only.
    pub fn get(&self, t: Transport) -> &Counters {
        &self.per[t.index()]
    }

    /// Moves a socket from one transport to another (first classifying
    /// request), keeping "open" counts right.
    pub fn reclassify(&mut self, from: Transport, to: Transport) {
        if from == to {
            return;
        }
        let f = self.of(from);
        f.sockets_opened = f.sockets_opened.saturating_sub(1);
        f.sockets_open = f.sockets_open.saturating_sub(1);
        let t = self.of(to);
        t.sockets_opened += 1;
        t.sockets_open += 1;
    }

    /// A socket of transport `t` closed after living `lifetime`.
    pub fn socket_closed(&mut self, t: Transport, lifetime: Duration) {
        let c = self.of(t);
        c.sockets_open = c.sockets_open.saturating_sub(1);
        c.sockets_closed += 1;
        c.lifetime_micros += lifetime.as_micros() as u64;
    }

    /// `/stats` as JSON.
    pub fn to_json(
        &self,
        epoch: &str,
        head: u64,
        uptime: Duration,
        memory: Memory,
        broker: Option<&BrokerStatus>,
    ) -> Vec<u8> {
        let mut transports = serde_json::Map::new();
        for t in Transport::ALL {
            let c = self.get(t);
            let mut v = serde_json::json!({
                "sockets_opened": c.sockets_opened,
                "sockets_open": c.sockets_open,
                "sockets_closed": c.sockets_closed,
                "mean_socket_lifetime_ms": micros_as_ms(c.mean_lifetime().as_micros() as u64),
                "requests": c.requests,
                "requests_on_reused_socket": c.requests_on_reused_socket,
                "empty_responses": c.empty_responses,
                "messages_delivered": c.messages_delivered,
                "bytes_in": c.bytes_in,
                "bytes_out": c.bytes_out,
                "slow_consumer_cuts": c.slow_consumer_cuts,
                "send_timeouts": c.send_timeouts,
                "resumes": c.resumes,
                "gaps_reported": c.gaps_reported,
                "resets_reported": c.resets_reported,
            });
            let obj = v.as_object_mut().expect("object");
            match t {
                Transport::LongPoll => {
                    obj.insert("holds_started".into(), c.holds_started.into());
                    obj.insert("holds_active".into(), c.holds_active.into());
                    obj.insert(
                        "holds_released_by_message".into(),
                        c.holds_released_by_message.into(),
                    );
                    obj.insert(
                        "holds_released_by_timeout".into(),
                        c.holds_released_by_timeout.into(),
                    );
                    obj.insert(
                        "holds_dropped_by_client".into(),
                        c.holds_dropped_by_client.into(),
                    );
                    let ended = c.holds_released_by_message
                        + c.holds_released_by_timeout
                        + c.holds_dropped_by_client;
                    let mean = micros_as_ms(c.hold_micros.checked_div(ended).unwrap_or(0));
                    obj.insert("mean_hold_ms".into(), mean.into());
                }
                Transport::Sse => {
                    obj.insert("heartbeats".into(), c.heartbeats.into());
                    obj.insert("max_lifetime_closes".into(), c.max_lifetime_closes.into());
                    obj.insert("token_expiry_closes".into(), c.token_expiry_closes.into());
                }
                Transport::Ws => {
                    obj.insert("frames_in".into(), c.frames_in.into());
                    obj.insert("frames_out".into(), c.frames_out.into());
                    obj.insert("pings_sent".into(), c.pings_sent.into());
                    obj.insert("pongs_received".into(), c.pongs_received.into());
                    obj.insert("deflate_frames_out".into(), c.deflate_frames_out.into());
                    obj.insert("deflate_bytes_before".into(), c.deflate_bytes_before.into());
                    obj.insert("deflate_bytes_after".into(), c.deflate_bytes_after.into());
                    obj.insert("deflate_messages_in".into(), c.deflate_messages_in.into());
                    let codes: serde_json::Map<String, serde_json::Value> = c
                        .close_codes
                        .iter()
                        .map(|(code, n)| (code.to_string(), (*n).into()))
                        .collect();
                    obj.insert("close_codes".into(), codes.into());
                }
                _ => {}
            }
            transports.insert(t.name().into(), v);
        }
        let mut doc = serde_json::json!({
            "epoch": epoch,
            "head": format!("{epoch}-{head}"),
            "uptime_s": uptime.as_millis() as f64 / 1000.0,
            "messages_published": self.messages_published,
            "connections_refused": self.connections_refused,
            "accept_errors": self.accept_errors,
            "errors_sent": self.errors_sent,
            "memory": memory.to_json(),
            "transports": transports,
        });
        if let (Some(b), Some(obj)) = (broker, doc.as_object_mut()) {
            obj.insert("broker".into(), broker_json(b));
        }
        let mut body = serde_json::to_vec(&doc).unwrap_or_default();
        // docs/api.md § JSON bodies: every JSON body ends with a newline.
        body.push(b'\n');
        body
    }

    /// `/metrics` in the Prometheus text exposition format.
    pub fn to_prometheus(&self, memory: Memory, broker: Option<&BrokerStatus>) -> Vec<u8> {
        let mut s = String::new();
        let series: [Series; 25] = [
            ("sockets_opened_total", "Sockets opened", |c| {
                c.sockets_opened
            }),
            ("sockets_open", "Sockets open now", |c| c.sockets_open),
            ("sockets_closed_total", "Sockets closed", |c| {
                c.sockets_closed
            }),
            (
                "socket_lifetime_microseconds_total",
                "Summed lifetime of closed sockets, in microseconds",
                |c| c.lifetime_micros,
            ),
            ("requests_total", "HTTP requests", |c| c.requests),
            (
                "requests_on_reused_socket_total",
                "Requests on a socket that served one before",
                |c| c.requests_on_reused_socket,
            ),
            (
                "empty_responses_total",
                "Responses that carried no message",
                |c| c.empty_responses,
            ),
            (
                "messages_delivered_total",
                "Messages delivered to clients",
                |c| c.messages_delivered,
            ),
            ("bytes_in_total", "Bytes read from clients", |c| c.bytes_in),
            ("bytes_out_total", "Bytes written to clients", |c| {
                c.bytes_out
            }),
            ("holds_started_total", "Long polls parked", |c| {
                c.holds_started
            }),
            (
                "holds_released_by_message_total",
                "Long polls answered by a message",
                |c| c.holds_released_by_message,
            ),
            (
                "holds_released_by_timeout_total",
                "Long polls answered empty at their timeout",
                |c| c.holds_released_by_timeout,
            ),
            (
                "holds_dropped_by_client_total",
                "Long polls whose client went away",
                |c| c.holds_dropped_by_client,
            ),
            ("heartbeats_total", "SSE heartbeat comments sent", |c| {
                c.heartbeats
            }),
            (
                "slow_consumer_cuts_total",
                "Subscribers cut at the queue limit",
                |c| c.slow_consumer_cuts,
            ),
            (
                "send_timeouts_total",
                "Connections closed when the client read nothing for --send-timeout",
                |c| c.send_timeouts,
            ),
            (
                "resumes_total",
                "Subscriptions resumed from a cursor",
                |c| c.resumes,
            ),
            ("frames_in_total", "WebSocket frames received", |c| {
                c.frames_in
            }),
            ("frames_out_total", "WebSocket frames sent", |c| {
                c.frames_out
            }),
            ("pings_sent_total", "WebSocket pings sent", |c| c.pings_sent),
            (
                "deflate_frames_out_total",
                "Compressed WebSocket frames sent (permessage-deflate)",
                |c| c.deflate_frames_out,
            ),
            (
                "deflate_bytes_before_total",
                "Payload bytes of compressed frames before compression",
                |c| c.deflate_bytes_before,
            ),
            (
                "deflate_bytes_after_total",
                "Payload bytes of compressed frames after compression",
                |c| c.deflate_bytes_after,
            ),
            (
                "deflate_messages_in_total",
                "Compressed WebSocket messages received",
                |c| c.deflate_messages_in,
            ),
        ];
        for (name, help, get) in series {
            let _ = writeln!(s, "# HELP pushlab_{name} {help}");
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(s, "# TYPE pushlab_{name} {kind}");
            for t in Transport::ALL {
                let _ = writeln!(
                    s,
                    "pushlab_{name}{{transport=\"{}\"}} {}",
                    t.name(),
                    get(self.get(t))
                );
            }
        }
        for (name, v) in [
            ("messages_published_total", self.messages_published),
            ("connections_refused_total", self.connections_refused),
            ("accept_errors_total", self.accept_errors),
            ("errors_sent_total", self.errors_sent),
        ] {
            let _ = writeln!(s, "# TYPE pushlab_{name} counter\npushlab_{name} {v}");
        }
        memory.write_prometheus(&mut s);
        if let Some(b) = broker {
            for (name, kind, v) in [
                ("broker_healthy", "gauge", u64::from(b.problem.is_none())),
                (
                    "broker_append_connected",
                    "gauge",
                    u64::from(b.append_connected),
                ),
                (
                    "broker_tail_connected",
                    "gauge",
                    u64::from(b.tail_connected),
                ),
                ("broker_pending", "gauge", b.pending as u64),
                ("broker_tail_lag_messages", "gauge", b.tail_lag_messages),
                ("broker_tail_silent_milliseconds", "gauge", b.tail_silent_ms),
                ("broker_reconnects_total", "counter", b.reconnects),
                ("broker_resets_total", "counter", b.resets),
                ("broker_missed_total", "counter", b.missed),
            ] {
                let _ = writeln!(s, "# TYPE pushlab_{name} {kind}\npushlab_{name} {v}");
            }
        }
        s.into_bytes()
    }
}

/// A shared log's state as the `broker` object of `/stats`.
fn broker_json(b: &BrokerStatus) -> serde_json::Value {
    serde_json::json!({
        "healthy": b.problem.is_none(),
        "problem": b.problem,
        "append_connected": b.append_connected,
        "tail_connected": b.tail_connected,
        "pending": b.pending,
        "tail_lag_messages": b.tail_lag_messages,
        "tail_silent_ms": b.tail_silent_ms,
        "reconnects": b.reconnects,
        "resets": b.resets,
        "missed": b.missed,
    })
}

/// `GET /healthz`: `200 {"ok":true}` when the node can publish and reads
/// its log live (always, for a local log), else `503 {"ok":false,"why":…}`;
/// with a shared log, its state too.
pub fn health_json(broker: Option<&BrokerStatus>) -> (u16, Vec<u8>) {
    let problem = broker.and_then(|b| b.problem.as_deref());
    let mut doc = match problem {
        None => serde_json::json!({ "ok": true }),
        Some(why) => serde_json::json!({ "ok": false, "why": why }),
    };
    if let (Some(b), Some(obj)) = (broker, doc.as_object_mut()) {
        obj.insert("broker".into(), broker_json(b));
    }
    let mut body = serde_json::to_vec(&doc).unwrap_or_default();
    // docs/api.md § JSON bodies: every JSON body ends with a newline.
    body.push(b'\n');
    (if problem.is_some() { 503 } else { 200 }, body)
}

/// Whole microseconds as milliseconds with three decimals: an integer
/// divided by 1000 is the double nearest to that decimal, so it prints as
/// `1164.92`, not the `1164.9199999999998` of `secs_f64 * 1000`.
fn micros_as_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// A Prometheus series: name, help text, and how to read it from [`Counters`].
type Series = (&'static str, &'static str, fn(&Counters) -> u64);

/// One socket event, for `--trace` and `GET /trace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    pub at: Instant,
    /// The connection's serial number (never reused).
    pub conn: u64,
    pub transport: Transport,
    /// accept, request, hold, response, frame, heartbeat, timeout, close, …
    pub kind: &'static str,
    pub bytes: usize,
    pub detail: String,
}

impl TraceEvent {
    /// One line of `--trace` output.
    pub fn to_line(&self) -> String {
        format!(
            "{:>10.3} conn={} {} {} bytes={}{}{}",
            self.at.as_micros() as f64 / 1e6,
            self.conn,
            self.transport.name(),
            self.kind,
            self.bytes,
            if self.detail.is_empty() { "" } else { " " },
            self.detail
        )
    }

    /// The event as a JSON object (the data of a `/trace` SSE event).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "t_ms": self.at.as_micros() as f64 / 1000.0,
            "conn": self.conn,
            "transport": self.transport.name(),
            "kind": self.kind,
            "bytes": self.bytes,
            "detail": self.detail,
        })
        .to_string()
    }
}

/// Collects trace events when someone is watching; costs a branch otherwise.
#[derive(Debug, Default)]
pub struct Tracer {
    /// `--trace`: the loop prints every event.
    pub enabled: bool,
    /// Connections streaming `GET /trace`. Their own events are never
    /// recorded, so the stream does not trace itself.
    /// `(slot, serial)` of each.
    pub watchers: Vec<(usize, u64)>,
    pub events: Vec<TraceEvent>,
}

impl Tracer {
    /// Whether anyone wants events.
    pub fn is_on(&self) -> bool {
        self.enabled || !self.watchers.is_empty()
    }

    /// Records an event built by `make`, only when someone is watching.
    pub fn record(&mut self, make: impl FnOnce() -> TraceEvent) {
        if self.is_on() {
            let event = make();
            if !self.watchers.iter().any(|w| w.1 == event.conn) {
                self.events.push(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/stats` printed `1164.9199999999998` for a mean lifetime of
    /// 1 164 920 µs; means and uptime are plain decimals now, and the body
    /// ends its line.
    #[test]
    fn stats_print_means_without_float_noise() {
        let mut stats = Stats::default();
        let c = stats.of(Transport::Poll);
        c.sockets_closed = 1;
        c.lifetime_micros = 1_164_920;
        let l = stats.of(Transport::LongPoll);
        l.holds_released_by_message = 3;
        l.hold_micros = 3 * 1_164_920;
        let uptime = Duration::from_micros(1_164_920_123);
        let body = stats.to_json("e", 0, uptime, Memory::default(), None);
        let text = String::from_utf8(body).unwrap();
        assert!(text.ends_with("}\n"), "{text}");
        assert!(
            text.contains("\"mean_socket_lifetime_ms\":1164.92,"),
            "{text}"
        );
        assert!(text.contains("\"mean_hold_ms\":1164.92"), "{text}");
        assert!(text.contains("\"uptime_s\":1164.92"), "{text}");
        assert!(!text.contains("99999"), "{text}");
    }
}

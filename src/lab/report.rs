//! The result of a run and its three renderings: an aligned text table, a
//! Markdown table (the classic comparison's shape: one row per claim, one
//! column per technique) and JSON (every number, for scripts and tests).
//!
//! "Per update" always divides by the updates delivered: one message
//! reaching one subscriber. Counts cover the whole run, connecting and
//! closing included, so a handshake is spread over the updates it served.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::measure::Latency;
use super::payload;
use super::Column;
use crate::stats::Transport;

/// The options the run was made with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--url`, or `None` for embedded servers.
    pub target: Option<String>,
    pub subscribers: usize,
    pub rate: f64,
    pub size: usize,
    pub payload: payload::Kind,
    pub duration: Duration,
    pub poll_interval: Duration,
    pub keep_alive: bool,
    pub long_poll_timeout: Duration,
    pub sse_max_lifetime: Option<Duration>,
    pub sse_retry: Option<Duration>,
    pub topic: String,
}

/// How the lab's counts compare with the server's `/stats` for the run.
#[derive(Clone, Debug)]
pub struct Check {
    /// Counters compared.
    pub compared: usize,
    /// The server's mean lifetime of the transport's sockets.
    pub server_mean_socket_lifetime: Option<Duration>,
    pub server_requests_on_reused_socket: u64,
    /// One line per counter that differs.
    pub mismatches: Vec<String>,
}

/// Everything measured for one column: a transport, or WebSocket with
/// permessage-deflate.
#[derive(Clone, Debug)]
pub struct Row {
    pub transport: Transport,
    /// The WebSocket clients offered permessage-deflate (RFC 7692).
    pub deflate: bool,
    /// Messages that arrived compressed.
    pub compressed: u64,
    /// Handshakes whose permessage-deflate offer the server declined.
    pub deflate_declined: u64,
    pub subscribers: u64,
    /// Messages published × subscribers.
    pub expected: u64,
    /// Updates that reached their subscriber (first arrivals).
    pub delivered: u64,
    /// Arrivals, duplicates included.
    pub received: u64,
    pub latency: Option<Latency>,
    pub requests: u64,
    pub empty_responses: u64,
    pub sockets_opened: u64,
    pub mean_socket_lifetime: Option<Duration>,
    /// Arrivals on a socket that had already carried a response or frame.
    pub reused: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// CPU time of this transport's server thread (embedded servers only).
    pub server_cpu: Option<Duration>,
    /// The same, less the baseline server's (the cost of the publishes).
    pub server_cpu_net: Option<Duration>,
    pub lost: u64,
    pub duplicates: u64,
    /// Messages that arrived after a newer one.
    pub out_of_order: u64,
    pub missed_messages: u64,
    pub resets: u64,
    pub reconnects: u64,
    pub skipped_ticks: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub check: Option<Check>,
}

impl Row {
    /// The row's column.
    pub fn column(&self) -> Column {
        Column {
            transport: self.transport,
            deflate: self.deflate,
        }
    }

    /// How the row is named in tables.
    pub fn name(&self) -> &'static str {
        self.column().display_name()
    }

    fn per_update(&self, n: u64) -> Option<f64> {
        (self.delivered > 0).then(|| n as f64 / self.delivered as f64)
    }

    /// Fraction of arrivals on an already used socket.
    pub fn reuse_fraction(&self) -> Option<f64> {
        (self.received > 0).then(|| self.reused as f64 / self.received as f64)
    }

    /// Net server CPU time per delivered update.
    pub fn cpu_per_update(&self) -> Option<Duration> {
        let cpu = self.server_cpu_net?;
        (self.delivered > 0).then(|| cpu / self.delivered as u32)
    }

    /// Which way data flows on the transport's own connection.
    pub fn direction(&self) -> &'static str {
        match self.transport {
            Transport::Sse => "server→client",
            Transport::Ws => "both ways",
            _ => "server→client, per request",
        }
    }

    fn reconnect_cell(&self) -> String {
        let how = match self.transport {
            Transport::Poll => "new request each tick",
            Transport::LongPoll => "re-asks at once, since=next",
            Transport::Sse => "automatic, Last-Event-ID",
            _ => "by the page's code, since=",
        };
        format!("{} ({how})", self.reconnects)
    }
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct Report {
    pub settings: Settings,
    /// Messages published.
    pub published: u64,
    /// From the first publish until every subscriber was up to date.
    pub measured: Duration,
    /// CPU time of the publish-only server (embedded servers only).
    pub baseline_cpu: Option<Duration>,
    pub cores: usize,
    pub rows: Vec<Row>,
}

/// `x` with about three significant digits.
pub fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else if x.abs() >= 1.0 {
        2
    } else {
        (2 - x.abs().log10().floor() as i32).clamp(2, 6) as usize
    };
    format!("{x:.digits$}")
}

/// A duration in the unit that suits it.
pub fn dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{} µs", num(us))
    } else if us < 1e6 {
        format!("{} ms", num(us / 1000.0))
    } else {
        format!("{} s", num(us / 1e6))
    }
}

fn ms(d: Duration) -> String {
    num(d.as_secs_f64() * 1000.0)
}

fn or_na(v: Option<String>) -> String {
    v.unwrap_or_else(|| "n/a".into())
}

/// The table's rows: the claim, then one cell per transport.
fn lines(r: &Report) -> Vec<(&'static str, Vec<String>)> {
    let cells = |f: &dyn Fn(&Row) -> String| r.rows.iter().map(f).collect::<Vec<_>>();
    vec![
        (
            "latency mean (ms)",
            cells(&|row| or_na(row.latency.map(|l| ms(l.mean)))),
        ),
        (
            "latency p50 / p99 / max (ms)",
            cells(&|row| {
                or_na(
                    row.latency
                        .map(|l| format!("{} / {} / {}", ms(l.p50), ms(l.p99), ms(l.max))),
                )
            }),
        ),
        (
            "requests per update",
            cells(&|row| or_na(row.per_update(row.requests).map(num))),
        ),
        (
            "empty responses per update",
            cells(&|row| match row.transport {
                Transport::Poll | Transport::LongPoll => {
                    or_na(row.per_update(row.empty_responses).map(num))
                }
                _ => "— (no responses)".into(),
            }),
        ),
        (
            "sockets opened per update",
            cells(&|row| or_na(row.per_update(row.sockets_opened).map(num))),
        ),
        (
            "mean socket lifetime",
            cells(&|row| or_na(row.mean_socket_lifetime.map(dur))),
        ),
        (
            "same socket reused",
            cells(&|row| {
                or_na(row.reuse_fraction().map(|f| {
                    let yes = if f >= 0.5 { "yes" } else { "no" };
                    format!("{yes} ({}%)", num(f * 100.0))
                }))
            }),
        ),
        (
            "bytes per update, down + up",
            cells(&|row| {
                or_na(
                    row.per_update(row.bytes_down)
                        .zip(row.per_update(row.bytes_up))
                        .map(|(down, up)| {
                            format!("{} + {} = {}", num(down), num(up), num(down + up))
                        }),
                )
            }),
        ),
        (
            "server CPU per update",
            cells(&|row| or_na(row.cpu_per_update().map(dur))),
        ),
        (
            "lost / duplicated / out of order",
            cells(&|row| format!("{} / {} / {}", row.lost, row.duplicates, row.out_of_order)),
        ),
        ("direction", cells(&|row| row.direction().into())),
        ("reconnections", cells(&|row| row.reconnect_cell())),
        (
            "agrees with GET /stats",
            cells(&|row| match &row.check {
                None => "n/a".into(),
                Some(c) if c.mismatches.is_empty() => format!("yes ({} counters)", c.compared),
                Some(c) => format!("NO: {}", c.mismatches.join("; ")),
            }),
        ),
    ]
}

impl Report {
    /// One line saying what was run.
    pub fn title(&self) -> String {
        let s = &self.settings;
        let target = s
            .target
            .clone()
            .unwrap_or_else(|| "embedded servers".into());
        format!(
            "pushlab compare: {} subscribers per transport, {} msg/s × {} B{} for {}, {} messages; \
             poll every {}, keep-alive {}; {target}, {} cores",
            s.subscribers,
            num(s.rate),
            s.size,
            if s.payload == payload::Kind::Json {
                " of JSON"
            } else {
                ""
            },
            dur(s.duration),
            self.published,
            dur(s.poll_interval),
            if s.keep_alive { "on" } else { "off" },
            self.cores
        )
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for row in &self.rows {
            if row.errors > 0 {
                notes.push(format!(
                    "{}: {} error(s), first: {}",
                    row.name(),
                    row.errors,
                    row.first_error.as_deref().unwrap_or("?")
                ));
            }
            if row.skipped_ticks > 0 {
                notes.push(format!(
                    "{}: {} poll ticks skipped (previous request still out)",
                    row.name(),
                    row.skipped_ticks
                ));
            }
            if row.missed_messages > 0 || row.resets > 0 {
                notes.push(format!(
                    "{}: server reported {} missed, {} resets",
                    row.name(),
                    row.missed_messages,
                    row.resets
                ));
            }
        }
        for row in self.rows.iter().filter(|r| r.deflate) {
            if row.deflate_declined > 0 {
                notes.push(format!(
                    "{}: the server declined permessage-deflate in {} handshake(s); \
                     those messages came uncompressed",
                    row.name(),
                    row.deflate_declined
                ));
            }
            notes.push(format!(
                "{}: {} of {} messages arrived compressed and were inflated by the client",
                row.name(),
                row.compressed,
                row.received
            ));
            if self.settings.payload == payload::Kind::Padding {
                notes.push(format!(
                    "{}: the padded data (`x` repeated) compresses far better than real \
                     messages; `--payload json` measures a realistic one",
                    row.name()
                ));
            }
        }
        if self.settings.target.is_none() {
            if let Some(b) = self.baseline_cpu {
                notes.push(format!(
                    "server CPU: each transport has its own server thread; the publish-only \
                     baseline thread used {} and is subtracted",
                    dur(b)
                ));
            }
        } else {
            notes.push("server CPU: n/a for --url (not this process)".into());
        }
        notes
    }

    /// The aligned text table.
    pub fn to_table(&self) -> String {
        let lines = lines(self);
        let mut header = vec![String::new()];
        header.extend(self.rows.iter().map(|r| r.name().to_string()));
        let mut grid: Vec<Vec<String>> = vec![header];
        for (label, cells) in lines {
            let mut line = vec![label.to_string()];
            line.extend(cells);
            grid.push(line);
        }
        let cols = grid[0].len();
        let width: Vec<usize> = (0..cols)
            .map(|c| grid.iter().map(|l| l[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!("{}\n\n", self.title());
        for line in &grid {
            for (c, cell) in line.iter().enumerate() {
                let pad = width[c] - cell.chars().count();
                if c + 1 == cols {
                    out.push_str(cell);
                } else {
                    let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
                }
            }
            out.push('\n');
        }
        for n in self.notes() {
            let _ = writeln!(out, "\n* {n}");
        }
        out
    }

    /// The Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("{}\n\n|  |", self.title());
        for r in &self.rows {
            let _ = write!(out, " {} |", r.name());
        }
        out.push_str("\n| --- |");
        for _ in &self.rows {
            out.push_str(" --- |");
        }
        out.push('\n');
        for (label, cells) in lines(self) {
            let _ = write!(out, "| {label} |");
            for c in cells {
                let _ = write!(out, " {} |", c.replace('|', "\\|"));
            }
            out.push('\n');
        }
        for n in self.notes() {
            let _ = write!(out, "\n* {n}");
        }
        if !self.notes().is_empty() {
            out.push('\n');
        }
        out
    }

    /// Every number, as JSON.
    pub fn to_json(&self) -> Value {
        let s = &self.settings;
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        let us = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6);
        let mut transports = serde_json::Map::new();
        for r in &self.rows {
            let check = r.check.as_ref().map(|c| {
                json!({
                    "agrees": c.mismatches.is_empty(),
                    "compared": c.compared,
                    "mismatches": c.mismatches,
                    "server_mean_socket_lifetime_ms": ms(c.server_mean_socket_lifetime),
                    "server_requests_on_reused_socket": c.server_requests_on_reused_socket,
                })
            });
            let per = |n: u64| r.per_update(n);
            transports.insert(
                r.column().key().into(),
                json!({
                    "name": r.name(),
                    "deflate": r.deflate,
                    "compressed_messages": r.compressed,
                    "deflate_declined": r.deflate_declined,
                    "subscribers": r.subscribers,
                    "expected": r.expected,
                    "delivered": r.delivered,
                    "received": r.received,
                    "latency_ms": r.latency.map(|l| json!({
                        "mean": l.mean.as_secs_f64() * 1000.0,
                        "p50": l.p50.as_secs_f64() * 1000.0,
                        "p99": l.p99.as_secs_f64() * 1000.0,
                        "max": l.max.as_secs_f64() * 1000.0,
                    })),
                    "requests": r.requests,
                    "requests_per_update": per(r.requests),
                    "empty_responses": r.empty_responses,
                    "empty_responses_per_update": per(r.empty_responses),
                    "sockets_opened": r.sockets_opened,
                    "sockets_per_update": per(r.sockets_opened),
                    "mean_socket_lifetime_s": secs(r.mean_socket_lifetime),
                    "reused_fraction": r.reuse_fraction(),
                    "bytes_up": r.bytes_up,
                    "bytes_down": r.bytes_down,
                    "bytes_up_per_update": per(r.bytes_up),
                    "bytes_down_per_update": per(r.bytes_down),
                    "bytes_per_update": per(r.bytes_up + r.bytes_down),
                    "server_cpu_ms": ms(r.server_cpu),
                    "server_cpu_net_ms": ms(r.server_cpu_net),
                    "server_cpu_us_per_update": us(r.cpu_per_update()),
                    "lost": r.lost,
                    "duplicates": r.duplicates,
                    "out_of_order": r.out_of_order,
                    "missed_reported": r.missed_messages,
                    "resets_reported": r.resets,
                    "direction": r.direction(),
                    "reconnects": r.reconnects,
                    "skipped_ticks": r.skipped_ticks,
                    "errors": r.errors,
                    "first_error": r.first_error,
                    "stats_check": check,
                }),
            );
        }
        json!({
            "settings": {
                "target": s.target.clone().unwrap_or_else(|| "embedded".into()),
                "subscribers": s.subscribers,
                "rate": s.rate,
                "size": s.size,
                "payload": s.payload.name(),
                "duration_s": s.duration.as_secs_f64(),
                "poll_interval_s": s.poll_interval.as_secs_f64(),
                "keep_alive": s.keep_alive,
                "long_poll_timeout_s": s.long_poll_timeout.as_secs_f64(),
                "sse_max_lifetime_s": secs(s.sse_max_lifetime),
                "sse_retry_s": secs(s.sse_retry),
                "topic": s.topic,
            },
            "cores": self.cores,
            "published": self.published,
            "measured_s": self.measured.as_secs_f64(),
            "baseline_cpu_ms": ms(self.baseline_cpu),
            "transports": transports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_about_three_significant_digits() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.0512), "0.0512");
        assert_eq!(num(0.5), "0.500");
        assert_eq!(num(3.456), "3.46");
        assert_eq!(num(42.42), "42.4");
        assert_eq!(num(1234.4), "1234");
        assert_eq!(dur(Duration::from_micros(12)), "12.0 µs");
        assert_eq!(dur(Duration::from_millis(1500)), "1.50 s");
    }
}

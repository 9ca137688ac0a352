//! `pushlab compare`: the client side. Runs real subscribers of all four
//! transports against one steady stream of messages and measures, from the
//! sockets, every row the usual comparison tables only assert.
//!
//! | module | what it is | touches I/O? |
//! | --- | --- | --- |
//! | [`payload`] | the message: sequence number, publish instant, padding | no |
//! | [`http`] | the client half of HTTP/1.1: requests out, responses in | no |
//! | [`updates`] | poll bodies, SSE events, WS frames → one [`updates::Update`] | no |
//! | [`client`] | one sans-I/O subscriber machine per transport | no |
//! | [`publisher`] | the publishing schedule and connection | no |
//! | [`measure`] | per-subscriber loss/duplicate tracking, per-transport tallies | no |
//! | [`report`] | the table, Markdown and JSON renderings; [`svg`] the chart | no |
//! | [`driver`] | the lab's `mio` loop: sockets, clock, byte counts | **yes** |
//! | [`embedded`] | in-process servers, their CPU time, `GET /stats` | **yes** |
//! | [`run`](mod@run) | the phases of a run, start to report | **yes** |
//!
//! A run, in order: start one server per transport (plus a publish-only
//! baseline) or use `--url`; open every subscriber (all subscribe with
//! `since=0` to a topic made for this run, so none can miss the start); wait
//! until all are subscribed; publish `--rate` messages a second for
//! `--duration`; wait until every subscriber has every message (or a drain
//! deadline); close everything properly; read `/stats` and the servers' CPU
//! time; build the [`report::Report`].
//!
//! Start reading at [`run::run`], then [`client`].

pub mod client;
pub mod driver;
pub mod embedded;
pub mod http;
pub mod measure;
pub mod payload;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod run;
pub mod svg;
pub mod updates;

use std::fmt;
use std::time::Duration;

use crate::stats::Transport;

pub use report::Report;
pub use run::run;

/// The four transports, in the order the tables show them.
pub const TRANSPORTS: [Transport; 4] = [
    Transport::Poll,
    Transport::LongPoll,
    Transport::Sse,
    Transport::Ws,
];

/// Reads a `--transports` list: `poll,long-poll,sse,ws` (also `long_poll`,
/// `longpoll`, `websocket`, `all`), in table order, without repeats.
pub fn parse_transports(s: &str) -> Result<Vec<Transport>, String> {
    let mut chosen = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let t: &[Transport] = match name.to_ascii_lowercase().as_str() {
            "poll" | "short-poll" | "polling" => &[Transport::Poll],
            "long-poll" | "long_poll" | "longpoll" => &[Transport::LongPoll],
            "sse" | "events" => &[Transport::Sse],
            "ws" | "websocket" | "websockets" => &[Transport::Ws],
            "all" => &TRANSPORTS,
            other => {
                return Err(format!(
                    "unknown transport `{other}` (use poll, long-poll, sse, ws)"
                ))
            }
        };
        chosen.extend_from_slice(t);
    }
    if chosen.is_empty() {
        return Err("no transport given".into());
    }
    Ok(TRANSPORTS
        .into_iter()
        .filter(|t| chosen.contains(t))
        .collect())
}

/// One column of the tables: a transport, and for WebSocket whether its
/// clients negotiate permessage-deflate (RFC 7692) and inflate what they get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Column {
    pub transport: Transport,
    pub deflate: bool,
}

impl Column {
    /// The uncompressed column of `transport`.
    pub fn plain(transport: Transport) -> Column {
        Column {
            transport,
            deflate: false,
        }
    }

    /// The compressed WebSocket column.
    pub const WS_DEFLATE: Column = Column {
        transport: Transport::Ws,
        deflate: true,
    };

    /// How the column is named in tables.
    pub fn display_name(self) -> &'static str {
        if self.deflate {
            "WebSocket + deflate"
        } else {
            display_name(self.transport)
        }
    }

    /// Its key in the JSON output (`/stats` names, and `ws_deflate`).
    pub fn key(self) -> &'static str {
        if self.deflate {
            "ws_deflate"
        } else {
            self.transport.name()
        }
    }

    /// The columns of a run: `transports` in table order, and after `ws`
    /// the compressed WebSocket when `ws_deflate` is on.
    pub fn of_run(transports: &[Transport], ws_deflate: bool) -> Vec<Column> {
        let mut cols = Vec::new();
        for &t in transports {
            cols.push(Column::plain(t));
            if t == Transport::Ws && ws_deflate {
                cols.push(Column::WS_DEFLATE);
            }
        }
        cols
    }
}

/// How a transport is named in tables.
pub fn display_name(t: Transport) -> &'static str {
    match t {
        Transport::Poll => "short poll",
        Transport::LongPoll => "long poll",
        Transport::Sse => "SSE",
        Transport::Ws => "WebSocket",
        Transport::Http => "HTTP",
    }
}

/// Everything a run needs; the CLI fills it (docs/api.md § Command line).
#[derive(Clone, Debug)]
pub struct Options {
    /// A running server (`http://host:port[/prefix]`); `None` starts
    /// embedded ones.
    pub url: Option<String>,
    /// Subscribers per transport.
    pub subscribers: usize,
    /// Messages published per second.
    pub rate: f64,
    /// Bytes of data per message.
    pub size: usize,
    /// How long the publisher publishes.
    pub duration: Duration,
    /// Short polling's interval.
    pub poll_interval: Duration,
    /// Keep-alive for the polling transports (off: `Connection: close`).
    pub keep_alive: bool,
    /// `timeout=` of each long poll.
    pub long_poll_timeout: Duration,
    pub transports: Vec<Transport>,
    /// With `ws` among the transports, also a "WebSocket + deflate" column:
    /// clients that negotiate permessage-deflate (`--ws-deflate`).
    pub ws_deflate: bool,
    /// What the messages' data looks like (`--payload`).
    pub payload: payload::Kind,
    /// Embedded servers: end SSE streams after this long (shows the SSE
    /// reconnection with `Last-Event-ID`).
    pub sse_max_lifetime: Option<Duration>,
    /// Embedded servers: the SSE `retry:` advice (how long an `EventSource`
    /// waits before reconnecting); the server's default when `None`.
    pub sse_retry: Option<Duration>,
    /// `Authorization: Bearer` for publishing to a `--url` server.
    pub publish_token: Option<String>,
    /// Topic to use; default: a new one per run.
    pub topic: Option<String>,
    /// Print a progress line on stderr.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: None,
            subscribers: 10,
            rate: 2.0,
            size: 128,
            duration: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            keep_alive: true,
            long_poll_timeout: Duration::from_secs(30),
            transports: TRANSPORTS.to_vec(),
            ws_deflate: true,
            payload: payload::Kind::Padding,
            sse_max_lifetime: None,
            sse_retry: None,
            publish_token: None,
            topic: None,
            progress: false,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabError(pub String);

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

impl From<std::io::Error> for LabError {
    fn from(e: std::io::Error) -> Self {
        LabError(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_lists_read_in_table_order_without_repeats() {
        assert_eq!(
            parse_transports("ws, poll,ws").unwrap(),
            [Transport::Poll, Transport::Ws]
        );
        assert_eq!(parse_transports("all").unwrap(), TRANSPORTS);
        assert!(parse_transports("carrier-pigeon").is_err());
        assert!(parse_transports("").is_err());
    }

    #[test]
    fn the_compressed_websocket_column_follows_the_plain_one() {
        let cols = Column::of_run(&TRANSPORTS, true);
        let names: Vec<&str> = cols.iter().map(|c| c.key()).collect();
        assert_eq!(names, ["poll", "long_poll", "sse", "ws", "ws_deflate"]);
        assert_eq!(Column::of_run(&TRANSPORTS, false).len(), 4);
        assert_eq!(Column::of_run(&[Transport::Sse], true).len(), 1);
    }
}

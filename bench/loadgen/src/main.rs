//! pushlab's bench-only load generator: one thread, one `mio` loop, many
//! connections. It prints one JSON line per run; `bench/compare.py` collects
//! the lines of every server into the comparison table.
//!
//! ```text
//! loadgen echo    --addr A --path /echo --conns 100 --size 16 --depth 1 --duration 10
//! loadgen fanout  --addr A --server pushlab|nchan|node --transport sse|ws|longpoll
//!                 --subs 1000 --duration 10 [--window 8] [--size 64] [--messages M]
//!                 [--sub-addrs A,B] [--rate R] [--pids P,Q] [--publishers K]
//!                 [--deflate 1] [--body pad|json] [--warmup K] [--give-up S]
//! loadgen idle    --addr A --server pushlab|nchan --transport sse|ws --conns 10000 --pid P [--deflate 1]
//! loadgen floor   --addr A          (a bare release server: the kernel's share, floor.rs)
//! loadgen publish --addr A --conns 64 --depth 1 --size 100 --duration 10 [--topics 1]
//! ```
//!
//! Every published message is `@seq@micros@` padded to `--size`: the
//! publish time (this process's clock) travels inside the message, so each
//! delivery's latency is measured where it arrives, whatever the framing
//! (SSE data line, WebSocket JSON, poll body).

mod deflate;
mod echo;
mod fanout;
mod floor;
mod idle;
mod net;
mod publish;

use std::collections::HashMap;
use std::net::SocketAddr;

/// Flags as `--name value` pairs.
pub struct Args(HashMap<String, String>);

impl Args {
    fn parse(it: impl Iterator<Item = String>) -> Args {
        let mut map = HashMap::new();
        let mut it = it.peekable();
        while let Some(k) = it.next() {
            let k = k
                .strip_prefix("--")
                .unwrap_or_else(|| panic!("expected --flag, got {k}"));
            let v = it.next().unwrap_or_else(|| panic!("--{k} needs a value"));
            map.insert(k.to_string(), v);
        }
        Args(map)
    }

    pub fn str(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    pub fn num(&self, k: &str, default: f64) -> f64 {
        self.0
            .get(k)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("--{k}: not a number: {v}"))
            })
            .unwrap_or(default)
    }

    pub fn addr(&self) -> SocketAddr {
        self.str("addr", "127.0.0.1:8080")
            .parse()
            .expect("--addr host:port")
    }
}

/// Which server's URL scheme and long-poll cursor to use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Server {
    Pushlab,
    Nchan,
    /// `bench/node/fanout.js`: pushlab's paths (`/ws?topic=`, `POST
    /// /publish?topic=`), WebSocket only.
    Node,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    Sse,
    Ws,
    LongPoll,
}

impl Args {
    pub fn server(&self) -> Server {
        match self.str("server", "pushlab").as_str() {
            "pushlab" => Server::Pushlab,
            "nchan" => Server::Nchan,
            "node" => Server::Node,
            s => panic!("--server pushlab|nchan|node, not {s}"),
        }
    }

    pub fn transport(&self) -> Transport {
        match self.str("transport", "ws").as_str() {
            "sse" => Transport::Sse,
            "ws" => Transport::Ws,
            "longpoll" => Transport::LongPoll,
            s => panic!("--transport sse|ws|longpoll, not {s}"),
        }
    }
}

/// The subscribe request of `transport` on `server` (without a cursor).
pub fn subscribe_request(server: Server, t: Transport, topic: &str) -> Vec<u8> {
    let path = match (server, t) {
        (Server::Pushlab, Transport::Sse) => format!("/events?topic={topic}"),
        (Server::Pushlab | Server::Node, Transport::Ws) => format!("/ws?topic={topic}"),
        (Server::Pushlab, Transport::LongPoll) => format!("/long-poll?topic={topic}&timeout=110"),
        (Server::Node, _) => panic!("the Node fan-out server has WebSocket subscribers only"),
        (Server::Nchan, _) => format!("/sub?id={topic}"),
    };
    match t {
        Transport::Ws => net::ws_upgrade(&path),
        Transport::Sse => {
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
                .into_bytes()
        }
        Transport::LongPoll => {
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
        }
    }
}

/// Builds a JSON object from `(key, value)` pairs of numbers and strings.
pub fn json(pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let is_num = v.parse::<f64>().is_ok();
            if is_num {
                format!("\"{k}\":{v}")
            } else {
                format!("\"{k}\":\"{}\"", v.replace('"', "'"))
            }
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

fn main() {
    net::now_us();
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().unwrap_or_default();
    let args = Args::parse(argv);
    let line = match mode.as_str() {
        "echo" => echo::run(&args),
        "fanout" => fanout::run(&args),
        "idle" => idle::run(&args),
        "floor" => floor::run(&args),
        "publish" => publish::run(&args),
        _ => {
            eprintln!(
                "usage: loadgen echo|fanout|idle|floor|publish --flag value …  (see src/main.rs)"
            );
            std::process::exit(2);
        }
    };
    println!("{line}");
}

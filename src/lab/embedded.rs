//! Servers the lab runs in its own process, and what it reads about them:
//! their CPU time and their `GET /stats`.
//!
//! Without `--url`, each transport gets its own [`crate::server::Server`] on
//! `127.0.0.1:0`, in its own thread, plus one *baseline* server that only
//! receives the publishes. Every server's thread therefore does the work of
//! one transport, so its CPU time belongs to that transport; the baseline's
//! CPU time is the cost of receiving the publishes, which every server
//! pays, and is subtracted.
//!
//! CPU time comes from `/proc/self/task/<tid>/schedstat` (time on CPU in
//! nanoseconds, Linux ≥ 2.6.23 with schedstats), else `…/stat`'s `utime` +
//! `stime` (clock ticks, assumed to be 100 a second, the value of `USER_HZ`
//! on every mainstream Linux). The thread learns its own id by reading the
//! `/proc/thread-self` link. Elsewhere than Linux, CPU time is "n/a".

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{encode_request, Decoded, ResponseReader};
use crate::config::Config;
use crate::server::{Handle, Server};
use crate::stats::Transport;

/// A server running in a thread of this process; stopped when dropped.
pub struct Embedded {
    pub name: String,
    pub addr: SocketAddr,
    /// The server thread's kernel thread id, when `/proc` tells it.
    pub tid: Option<u32>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Embedded {
    /// Starts a server with `config` (its address should use port 0).
    pub fn start(name: &str, config: Config) -> io::Result<Embedded> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("pushlab-{name}"))
            .spawn(move || {
                let mut server = match Server::bind(config) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let tid = own_tid();
                let _ = tx.send(Ok((server.local_addr(), server.handle(), tid)));
                if let Err(e) = server.run() {
                    eprintln!("pushlab compare: embedded server failed: {e}");
                }
            })?;
        let (addr, handle, tid) = rx
            .recv()
            .map_err(|_| io::Error::other("embedded server thread died"))??;
        Ok(Embedded {
            name: name.to_string(),
            addr,
            tid,
            handle,
            thread: Some(thread),
        })
    }

    /// CPU time the server thread has used so far.
    pub fn cpu(&self) -> Option<Duration> {
        self.tid.and_then(thread_cpu)
    }

    /// Stops the server and waits for its thread.
    pub fn stop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The calling thread's kernel id: `/proc/thread-self` links to
/// `<pid>/task/<tid>`.
fn own_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time used by thread `tid` of this process.
pub fn thread_cpu(tid: u32) -> Option<Duration> {
    let dir = format!("/proc/self/task/{tid}");
    if let Ok(s) = std::fs::read_to_string(format!("{dir}/schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return Some(Duration::from_nanos(ns));
        }
    }
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    cpu_from_stat(&stat)
}

/// `utime` + `stime` (fields 14 and 15 of proc(5)'s `stat`) at 100 ticks a
/// second. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from its last `)`.
fn cpu_from_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// `GET {prefix}/stats` on a fresh connection, as JSON.
pub fn fetch_stats(addr: SocketAddr, host: &str, prefix: &str) -> Result<Value, String> {
    let timeout = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut req = Vec::new();
    let target = format!("{prefix}/stats");
    encode_request(&mut req, "GET", &target, host, &[], b"", false);
    s.write_all(&req).map_err(|e| e.to_string())?;
    let mut reader = ResponseReader::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.next_response().map_err(|e| e.to_string())? {
            Decoded::Response(r) if r.head.status == 200 => {
                return serde_json::from_slice(&r.body).map_err(|e| e.to_string())
            }
            Decoded::Response(r) => return Err(format!("/stats → {}", r.head.status)),
            Decoded::Stream(_) => return Err("/stats answered with a stream".into()),
            Decoded::Incomplete => {}
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("/stats: connection closed early".into());
        }
        reader.feed(&buf[..n]);
    }
}

/// One transport's counters in a `/stats` document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerCounters {
    pub sockets_opened: u64,
    pub sockets_open: u64,
    pub sockets_closed: u64,
    /// Summed lifetime of the closed sockets, in ms.
    pub lifetime_ms: f64,
    pub requests: u64,
    pub requests_on_reused_socket: u64,
    pub empty_responses: u64,
    pub messages_delivered: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub holds_active: u64,
}

impl ServerCounters {
    /// Reads transport `t` of a `/stats` document (missing fields are 0).
    pub fn of(doc: &Value, t: Transport) -> ServerCounters {
        let v = &doc["transports"][t.name()];
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let closed = n("sockets_closed");
        ServerCounters {
            sockets_opened: n("sockets_opened"),
            sockets_open: n("sockets_open"),
            sockets_closed: closed,
            lifetime_ms: v["mean_socket_lifetime_ms"].as_f64().unwrap_or(0.0) * closed as f64,
            requests: n("requests"),
            requests_on_reused_socket: n("requests_on_reused_socket"),
            empty_responses: n("empty_responses"),
            messages_delivered: n("messages_delivered"),
            bytes_in: n("bytes_in"),
            bytes_out: n("bytes_out"),
            holds_active: n("holds_active"),
        }
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &ServerCounters) -> ServerCounters {
        ServerCounters {
            sockets_opened: self.sockets_opened.saturating_sub(before.sockets_opened),
            sockets_open: self.sockets_open,
            sockets_closed: self.sockets_closed.saturating_sub(before.sockets_closed),
            lifetime_ms: (self.lifetime_ms - before.lifetime_ms).max(0.0),
            requests: self.requests.saturating_sub(before.requests),
            requests_on_reused_socket: self
                .requests_on_reused_socket
                .saturating_sub(before.requests_on_reused_socket),
            empty_responses: self.empty_responses.saturating_sub(before.empty_responses),
            messages_delivered: self
                .messages_delivered
                .saturating_sub(before.messages_delivered),
            bytes_in: self.bytes_in.saturating_sub(before.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(before.bytes_out),
            holds_active: self.holds_active,
        }
    }

    /// Mean lifetime of the sockets closed in this delta.
    pub fn mean_lifetime(&self) -> Option<Duration> {
        (self.sockets_closed > 0).then(|| {
            Duration::from_secs_f64(self.lifetime_ms / 1000.0 / self.sockets_closed as f64)
        })
    }
}

/// Fetches `/stats` until `done` holds or `timeout` passes; the last
/// document read.
pub fn stats_when(
    addr: SocketAddr,
    host: &str,
    prefix: &str,
    timeout: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Result<Value, String> {
    let start = Instant::now();
    loop {
        let doc = fetch_stats(addr, host, prefix)?;
        if done(&doc) || start.elapsed() >= timeout {
            return Ok(doc);
        }
        // The server's counters change on its own thread; nothing here can
        // wait for them as an event, so look again shortly.
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_from_stat(stat), Some(Duration::from_millis(3000)));
        assert_eq!(cpu_from_stat("garbage"), None);
    }

    #[test]
    fn this_thread_can_read_its_own_cpu_time() {
        if let Some(tid) = own_tid() {
            let mut x = 0u64;
            for i in 0..200_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            assert!(x != 1);
            assert!(thread_cpu(tid).is_some());
        }
    }

    #[test]
    fn counters_are_read_per_transport_and_subtracted() {
        let doc = serde_json::json!({"transports":{"poll":{"requests":5,"sockets_closed":2,"mean_socket_lifetime_ms":10.0}}});
        let before = serde_json::json!({"transports":{"poll":{"requests":2}}});
        let d = ServerCounters::of(&doc, Transport::Poll)
            .since(&ServerCounters::of(&before, Transport::Poll));
        assert_eq!(d.requests, 3);
        assert_eq!(d.mean_lifetime(), Some(Duration::from_millis(10)));
        assert_eq!(
            ServerCounters::of(&doc, Transport::Ws),
            ServerCounters::default()
        );
    }
}

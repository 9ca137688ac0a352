//! Sockets, buffers and the small parsers the load generator needs: HTTP/1.1
//! response heads (httparse), SSE event blocks, WebSocket frames (pushlab's
//! own `decode_header`) and the `@seq@micros@` marker every message carries.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::Instant;

use mio::net::TcpStream;
use pushlab::wire::websocket::{decode_header, Decoded, FrameHeader};
use socket2::{Domain, Socket, Type};

/// Connections per client address: the ephemeral port range holds ~28k.
const CONNS_PER_SOURCE_IP: usize = 25_000;

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the load generator started: the clock that publish
/// times are written in and deliveries are measured against.
pub fn now_us() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Starts a non-blocking connect of client number `i`, from 127.0.0.1 for the
/// first 25,000 and from 127.0.0.2, .3, … after that.
pub fn connect(addr: SocketAddr, i: usize) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    let ip_index = i / CONNS_PER_SOURCE_IP;
    if ip_index > 0 {
        let src = Ipv4Addr::new(127, 0, 0, 1 + ip_index as u8);
        s.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())?;
    }
    match s.connect(&addr.into()) {
        Ok(()) => {}
        // EINPROGRESS: the handshake goes on; WRITABLE tells when it is done.
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// What reading a socket until `WouldBlock` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read_ {
    /// Bytes (maybe none) were appended; the socket is drained.
    Drained,
    /// The peer closed or reset the connection.
    Closed,
}

/// One client connection's buffers.
pub struct Io {
    pub sock: TcpStream,
    /// Received bytes not yet parsed, from `at`.
    pub inbuf: Vec<u8>,
    pub at: usize,
    /// Bytes read from the socket so far (bytes on the wire, TCP payload).
    pub bytes_in: u64,
    out: Vec<u8>,
    out_at: usize,
}

impl Io {
    pub fn new(sock: TcpStream) -> Io {
        Io {
            sock,
            inbuf: Vec::new(),
            at: 0,
            bytes_in: 0,
            out: Vec::new(),
            out_at: 0,
        }
    }

    /// The bytes not yet parsed.
    pub fn unparsed(&self) -> &[u8] {
        &self.inbuf[self.at..]
    }

    /// Marks `n` more bytes as parsed.
    pub fn consume(&mut self, n: usize) {
        self.at += n;
        if self.at == self.inbuf.len() {
            self.inbuf.clear();
            self.at = 0;
        }
    }

    /// Reads until `WouldBlock`, appending to `inbuf`.
    pub fn fill(&mut self, scratch: &mut [u8]) -> Read_ {
        loop {
            match self.sock.read(scratch) {
                Ok(0) => return Read_::Closed,
                Ok(n) => {
                    self.bytes_in += n as u64;
                    if self.at > 0 && self.at == self.inbuf.len() {
                        self.inbuf.clear();
                        self.at = 0;
                    } else if self.at > 64 * 1024 {
                        self.inbuf.drain(..self.at);
                        self.at = 0;
                    }
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    if n < scratch.len() {
                        // A short read: the socket is very likely drained,
                        // and the next edge will say if it is not.
                        return Read_::Drained;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Read_::Drained,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Read_::Closed,
            }
        }
    }

    /// Queues `bytes` and writes what the socket takes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.out_at == self.out.len() {
            // Nothing queued: try the socket directly.
            self.out.clear();
            self.out_at = 0;
            match self.sock.write(bytes) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => self.out.extend_from_slice(&bytes[n..]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.out.extend_from_slice(bytes),
                Err(e) => return Err(e),
            }
            return Ok(());
        }
        self.out.extend_from_slice(bytes);
        self.flush()
    }

    /// Writes queued bytes (on WRITABLE).
    pub fn flush(&mut self) -> io::Result<()> {
        while self.out_at < self.out.len() {
            match self.sock.write(&self.out[self.out_at..]) {
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_at = 0;
        Ok(())
    }

    /// Whether everything queued has been written.
    pub fn is_flushed(&self) -> bool {
        self.out_at == self.out.len()
    }
}

/// The parts of a response head the load generator looks at.
#[derive(Debug, Default)]
pub struct ResponseHead {
    pub status: u16,
    pub head_len: usize,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub last_modified: Option<String>,
    pub etag: Option<String>,
    /// `Sec-WebSocket-Extensions` (the extensions the server agreed to).
    pub extensions: Option<String>,
}

/// Parses a response head at the start of `buf`; `None` until it is whole.
pub fn parse_response_head(buf: &[u8]) -> Option<ResponseHead> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(e) => panic!(
            "bad response head ({e}): {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(200)])
        ),
    };
    let mut head = ResponseHead {
        status: res.code.unwrap_or(0),
        head_len,
        ..ResponseHead::default()
    };
    for h in res.headers.iter() {
        let value = || String::from_utf8_lossy(h.value).into_owned();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = value().trim().parse().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value().to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("last-modified") {
            head.last_modified = Some(value());
        } else if h.name.eq_ignore_ascii_case("etag") {
            head.etag = Some(value());
        } else if h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
            head.extensions = Some(value());
        }
    }
    Some(head)
}

/// The length of a whole response (head + body) at the start of `buf`, or
/// `None` until it has arrived. Handles `Content-Length` and `chunked`.
pub fn whole_response(buf: &[u8]) -> Option<(ResponseHead, usize)> {
    let head = parse_response_head(buf)?;
    let start = head.head_len;
    if let Some(len) = head.content_length {
        return (buf.len() >= start + len).then_some((head, start + len));
    }
    if head.chunked {
        let end = find(&buf[start..], b"0\r\n\r\n")?;
        return Some((head, start + end + 5));
    }
    Some((head, start))
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A message's body: `@seq@micros@`, padded with `x` to `size` bytes.
pub fn message_body(seq: u64, at_us: u64, size: usize) -> Vec<u8> {
    let mut b = format!("@{seq}@{at_us}@").into_bytes();
    if b.len() < size {
        b.resize(size, b'x');
    }
    b
}

/// Calls `f(seq, published_at_us)` for every `@seq@micros@` marker in `buf`.
pub fn for_each_marker(buf: &[u8], mut f: impl FnMut(u64, u64)) {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'@') {
        i += off + 1;
        let Some((seq, n1)) = digits(&buf[i..]) else {
            continue;
        };
        if buf.get(i + n1) != Some(&b'@') {
            continue;
        }
        let Some((at, n2)) = digits(&buf[i + n1 + 1..]) else {
            continue;
        };
        if buf.get(i + n1 + 1 + n2) != Some(&b'@') {
            continue;
        }
        f(seq, at);
        i += n1 + 1 + n2 + 1;
    }
}

fn digits(buf: &[u8]) -> Option<(u64, usize)> {
    let n = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let mut v = 0u64;
    for &b in &buf[..n] {
        v = v * 10 + u64::from(b - b'0');
    }
    Some((v, n))
}

/// Splits complete SSE event blocks (ending in a blank line) off the front
/// of `buf`, calling `f` on each; returns the bytes consumed.
pub fn sse_blocks(buf: &[u8], mut f: impl FnMut(&[u8])) -> usize {
    let mut at = 0;
    while let Some(end) = find(&buf[at..], b"\n\n") {
        f(&buf[at..at + end]);
        at += end + 2;
    }
    at
}

/// Incremental reader of server (unmasked) WebSocket frames.
#[derive(Default)]
pub struct WsReader {
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// The frame being skipped, reported when its last byte arrives.
    skipping: Option<FrameHeader>,
}

impl WsReader {
    /// Parses frames at the front of `buf`. Frames with a payload up to
    /// `keep` bytes are reported with their payload once whole; larger ones
    /// are skipped as they arrive and reported (without payload) at their
    /// end. Returns the bytes consumed.
    pub fn parse(
        &mut self,
        buf: &[u8],
        keep: usize,
        mut f: impl FnMut(&FrameHeader, Option<&[u8]>),
    ) -> usize {
        let mut at = 0;
        loop {
            if let Some(h) = &self.skipping {
                let n = (self.skip as usize).min(buf.len() - at);
                at += n;
                self.skip -= n as u64;
                if self.skip > 0 {
                    return at;
                }
                f(h, None);
                self.skipping = None;
            }
            let (h, consumed) = match decode_header(&buf[at..]) {
                Ok(Decoded::Complete { value, consumed }) => (value, consumed),
                Ok(Decoded::Incomplete { .. }) => return at,
                Err(e) => panic!("bad frame from the server: {e}"),
            };
            let len = h.payload_len as usize;
            if len <= keep {
                if buf.len() - at - consumed < len {
                    return at;
                }
                f(&h, Some(&buf[at + consumed..at + consumed + len]));
                at += consumed + len;
            } else {
                at += consumed;
                self.skip = h.payload_len;
                self.skipping = Some(h);
            }
        }
    }
}

/// A WebSocket opening handshake for `path` (the key is RFC 6455's example).
pub fn ws_upgrade(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Samples(pub Vec<u32>);

impl Samples {
    pub fn add(&mut self, us: u64) {
        if self.0.len() < 50_000_000 {
            self.0.push(us.min(u64::from(u32::MAX)) as u32);
        }
    }

    /// (p50, p99, max) in microseconds.
    pub fn summary(&mut self) -> (u32, u32, u32) {
        if self.0.is_empty() {
            return (0, 0, 0);
        }
        self.0.sort_unstable();
        let at = |q: f64| self.0[((self.0.len() - 1) as f64 * q) as usize];
        (at(0.50), at(0.99), *self.0.last().unwrap())
    }
}

/// User + system CPU seconds of process `pid`, all threads (`/proc/PID/stat`).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, fields 14 and 15, in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

/// What the server spent during the measured phase of a run: CPU time, and
/// syscalls entered (counted by `perf stat` on the raw_syscalls tracepoint,
/// when `perf` is there). The CPU time is perf's `task-clock` (nanoseconds)
/// when perf runs, else `/proc` ticks (10 ms: too coarse for a 0.1 s run).
pub struct ServerMeter {
    pid: u32,
    cpu0: f64,
    perf: Option<std::process::Child>,
    out: String,
}

impl ServerMeter {
    /// Starts measuring `pid` (none when `pid` is 0).
    pub fn start(pid: u32) -> Option<ServerMeter> {
        if pid == 0 {
            return None;
        }
        let out = format!("/tmp/loadgen-perf-{}.csv", std::process::id());
        let perf = std::process::Command::new("perf")
            .args([
                "stat",
                "-e",
                "raw_syscalls:sys_enter,task-clock",
                "-x,",
                "-o",
                &out,
                "-p",
            ])
            .arg(pid.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        // perf needs a moment to attach.
        std::thread::sleep(std::time::Duration::from_millis(150));
        Some(ServerMeter {
            pid,
            cpu0: cpu_seconds(pid),
            perf,
            out,
        })
    }

    /// (CPU seconds, syscalls) since `start`.
    pub fn stop(self) -> (f64, Option<u64>) {
        let mut cpu = cpu_seconds(self.pid) - self.cpu0;
        let mut syscalls = None;
        if let Some(mut child) = self.perf {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            // CSV lines: value,unit,event,…
            for line in text.lines() {
                let f: Vec<&str> = line.split(',').collect();
                match (f.first().and_then(|v| v.parse::<f64>().ok()), f.get(2)) {
                    (Some(v), Some(e)) if e.starts_with("raw_syscalls") => {
                        syscalls = Some(v as u64)
                    }
                    (Some(ms), Some(e)) if e.starts_with("task-clock") => cpu = ms / 1e3,
                    _ => {}
                }
            }
            let _ = std::fs::remove_file(&self.out);
        }
        (cpu, syscalls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_json_sse_and_raw_bodies() {
        let mut got = Vec::new();
        let body = br#"{"messages":[{"topic":"t","id":"e-1","data":"@1@100@xx"},{"data":"@2@200@"}],"next":"e-2"}"#;
        for_each_marker(body, |s, t| got.push((s, t)));
        for_each_marker(b"id: 7\ndata: @3@300@xxxx", |s, t| got.push((s, t)));
        assert_eq!(got, [(1, 100), (2, 200), (3, 300)]);
    }
}

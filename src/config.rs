//! Every limit and timeout pushlab enforces, with its default and the reason
//! for it, in one place.
//!
//! The command line (`src/main.rs`) fills a [`Config`]; the sans-I/O core reads
//! it and never looks anywhere else for a number. Durations are written
//! `500ms`, `15s`, `2m`, `1h`; sizes in bytes with an optional unit (`KiB`, `MiB`, …, any case) ([`parse_duration`], [`parse_size`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest request head (request line + headers) accepted. Browsers send
/// well under 8 KiB; nginx's default `large_client_header_buffers` is 4 × 8 KiB.
/// A larger head gets `431 Request Header Fields Too Large`.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header fields in one request head (httparse needs a fixed array).
pub const MAX_HEADERS: usize = 64;

/// Most topics one subscriber may name in `topic=a,b,c` (docs/api.md § Topics and messages).
pub const MAX_TOPICS_PER_SUBSCRIBER: usize = 32;

/// Longest topic name in bytes (docs/api.md § Topics and messages).
pub const MAX_TOPIC_LEN: usize = 128;

/// Bytes read from a socket per `read` call; the buffer is owned by the event
/// loop and shared by all connections, so an idle connection holds none.
pub const READ_CHUNK: usize = 64 * 1024;

/// `--max-pipelined-bytes` by default: most request bytes a client may
/// pipeline behind a request that is still being answered (a held long
/// poll, say) — see [`Config::max_pipelined_bytes`].
pub const DEFAULT_MAX_PIPELINED_BYTES: usize = 64 * 1024;

/// Most `IoSlice`s handed to one `writev` (Linux's `IOV_MAX` is 1024).
pub const MAX_IOVECS: usize = 256;

/// Most connections being refused at once: each gets its `503`, a
/// half-close and up to [`crate::session::LINGER`] of draining, so a client
/// that already sent its request reads the answer rather than a reset
/// (RFC 9112 §9.6). Past it a refused connection is closed at once.
pub const MAX_REFUSING: usize = 256;

/// How long a shutdown waits for in-flight responses to flush before exiting.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long the listener is paused after `accept` fails with EMFILE/ENFILE, so
/// a full descriptor table does not spin the loop on a listener that stays
/// readable.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a browser may cache a CORS preflight answer
/// (`Access-Control-Max-Age`). Chromium caps it at 2 h, Firefox at 24 h;
/// 10 minutes spares a preflight per publish without pinning a changed
/// `--allow-origin` in browsers for long.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Bytes of a message being assembled (a publish body, a fragmented or
/// partly received WebSocket message) that one connection may hold without
/// counting against `--assembly-memory`, so that small messages split across
/// reads pass even when large ones have used the budget up. Times
/// `--max-connections` (10,000 × 16 KiB = 160 MiB at the defaults), it is
/// of the order of the other per-connection bounds
/// ([`Config::max_pipelined_bytes`]).
pub const ASSEMBLY_ALLOWANCE: usize = 16 * 1024;

/// Longest token accepted (`Authorization: Bearer`, the `pushlab_token`
/// cookie or `access_token`), checked before any decoding. Browsers keep
/// cookies of up to 4096 bytes (RFC 6265 §6.1); an RS256 token granting a
/// few dozen topics is 1–2 KiB; the request head may hold 16 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Everything the server needs to know, with documented defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on (`--addr`; port 0 picks a free port).
    pub addr: SocketAddr,
    /// Messages kept per topic (`--history`).
    pub history: usize,
    /// Longest a message is kept (`--history-ttl`).
    pub history_ttl: Duration,
    /// Most bytes of history kept over all topics (`--history-memory`);
    /// past it the oldest messages of the whole hub are evicted (readers
    /// are told how many they `missed`). See `hub::Message::kept_cost`.
    pub history_memory: usize,
    /// `--data-dir`: keep the log in this directory (the file log: a
    /// publish is answered once its record is on disk, and the history is
    /// read back at start). `None`: the log is in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// `--reuse-port`: listen with `SO_REUSEPORT`, so several processes
    /// (one per core) can share the port.
    pub reuse_port: bool,
    /// `--segment-size`: the file log starts a new segment past this many
    /// bytes.
    pub segment_size: u64,
    /// `--redis`: share one ordered log with other nodes in this Redis
    /// (docs/scaling.md). `None`: the log is this process's own.
    pub redis: Option<crate::redis::url::RedisUrl>,
    /// `--redis-prefix`: the log's keys are `<prefix>meta` and
    /// `<prefix>log`, so several deployments can share one Redis.
    pub redis_prefix: String,
    /// `--redis-max-pending`: publishes waiting for Redis at once; past it
    /// a publish gets `503` at once (memory stays bounded while Redis is
    /// slow).
    pub redis_max_pending: usize,
    /// `--redis-timeout`: longest wait for a Redis connection, its login,
    /// a reply, and a publish's commit; past it the publish gets `503` and
    /// the connection is made again.
    pub redis_timeout: Duration,
    /// Most topics with kept messages, and most with subscribers
    /// (`--max-topics`). A publish to a new topic past it evicts the oldest
    /// history; a subscription to a new topic past it gets `503`.
    pub max_topics: usize,
    /// Most bytes held server-wide by messages being assembled: publish
    /// bodies being read and WebSocket messages being reassembled
    /// (`--assembly-memory`). Past it a new large message is refused: `503`
    /// for a publish body, close `1013` (try again later) for a WebSocket.
    /// Each connection may hold [`ASSEMBLY_ALLOWANCE`] without counting.
    pub assembly_memory: usize,
    /// Largest published message in bytes (`--max-message`) → `413`.
    pub max_message: usize,
    /// Most open client connections (`--max-connections`) → `503`.
    pub max_connections: usize,
    /// Most open connections from one client address
    /// (`--max-connections-per-ip`) → `503`, so that one client cannot hold
    /// every slot. 256 leaves room for a whole office behind one NAT
    /// (browsers open six connections per origin).
    pub max_connections_per_ip: usize,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client
    /// (`--trust-proxy`, repeatable), as `IpAddr::to_string` writes them:
    /// their own address is not counted per client, the forwarded one is.
    pub trust_proxy: Vec<String>,
    /// Time allowed for a complete request head (`--head-timeout`) → `408`.
    pub head_timeout: Duration,
    /// Idle keep-alive connections are closed after this (`--idle-timeout`),
    /// counted from when the last response was written out, not queued.
    pub idle_timeout: Duration,
    /// A connection with output pending is closed when the client accepts
    /// none of it for this long (`--send-timeout`). Like nginx's
    /// `send_timeout`, it bounds the time between two successive writes that
    /// make progress, not the whole response: a slow but steady reader of a
    /// large answer is never cut, one that stops reading is, whether the
    /// connection is open, streaming or closing.
    pub send_timeout: Duration,
    /// Default hold of a long poll when the request names no `timeout`.
    pub long_poll_default: Duration,
    /// Longest hold a long poll may ask for (`--long-poll-max`).
    pub long_poll_max: Duration,
    /// SSE comment heartbeat interval (`--heartbeat`).
    pub heartbeat: Duration,
    /// SSE `retry:` advice sent first on every stream (`--sse-retry`).
    pub sse_retry: Duration,
    /// Optional maximum SSE stream lifetime, with jitter (`--sse-max-lifetime`).
    pub sse_max_lifetime: Option<Duration>,
    /// WebSocket ping interval (`--ws-ping`); a peer silent for two intervals
    /// is closed.
    pub ws_ping: Duration,
    /// Largest WebSocket message a client may send (`--ws-max-message`) → 1009.
    /// With permessage-deflate, the limit applies to the inflated message.
    pub ws_max_message: usize,
    /// Accept permessage-deflate (RFC 7692) offers (`--ws-deflate on|off`).
    pub ws_deflate: bool,
    /// Messages smaller than this go uncompressed even on a connection that
    /// negotiated compression (`--ws-deflate-threshold`): DEFLATE's block
    /// overhead makes tiny messages no smaller.
    pub ws_deflate_threshold: usize,
    /// Most bytes queued for one connection before it counts as a slow
    /// consumer and is disconnected (`--max-queued-bytes`).
    pub max_queued_bytes: usize,
    /// Most request bytes one connection may have received and not yet
    /// answered (`--max-pipelined-bytes`, at least [`MAX_HEAD_BYTES`] so a
    /// request head always fits): past it the server stops reading that
    /// socket until answers go out (TCP then pushes back on the client).
    /// Also bounds the messages of publishes pipelined behind one waiting
    /// for its commit, which are appended before it is answered.
    pub max_pipelined_bytes: usize,
    /// Bearer token required by `POST /publish` (`--publish-token`) → `401`.
    pub publish_token: Option<String>,
    /// Origins allowed to open WebSockets and to use the HTTP endpoints
    /// cross-origin (CORS) (`--allow-origin`; `*` allows any); empty means
    /// same-origin only.
    pub allow_origins: Vec<String>,
    /// Print one line per socket event (`--trace`).
    pub trace: bool,
    /// Who may subscribe and publish: the JWT key (`--jwt-secret-file`, or
    /// `--jwt-public-key-file` with `--jwt-algorithm`), `--jwt-audience`,
    /// `--jwt-leeway` and `--public-topic`. Default: no key, every topic
    /// open.
    pub auth: crate::auth::Policy,
    /// Accept a token in the `access_token` query parameter
    /// (`--allow-query-token`); URLs end up in logs and `Referer` headers.
    pub allow_query_token: bool,
    /// Bearer token for the operator endpoints (`--admin-token-file`).
    pub admin_token: Option<crate::auth::Secret>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            history: 1024,
            history_ttl: Duration::from_secs(3600),
            history_memory: crate::hub::DEFAULT_HISTORY_MEMORY,
            data_dir: None,
            reuse_port: false,
            segment_size: crate::file_log::disk::DEFAULT_SEGMENT_BYTES,
            redis: None,
            redis_prefix: crate::redis::log::DEFAULT_PREFIX.to_string(),
            redis_max_pending: crate::redis::log::DEFAULT_MAX_PENDING,
            redis_timeout: crate::redis::log::DEFAULT_TIMEOUT,
            max_topics: crate::hub::DEFAULT_MAX_TOPICS,
            assembly_memory: 64 * 1024 * 1024,
            max_message: 64 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            trust_proxy: Vec::new(),
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            long_poll_default: Duration::from_secs(30),
            long_poll_max: Duration::from_secs(120),
            heartbeat: Duration::from_secs(15),
            sse_retry: Duration::from_secs(2),
            sse_max_lifetime: None,
            ws_ping: Duration::from_secs(30),
            ws_max_message: 16 * 1024 * 1024,
            ws_deflate: true,
            ws_deflate_threshold: 128,
            max_queued_bytes: 1024 * 1024,
            max_pipelined_bytes: DEFAULT_MAX_PIPELINED_BYTES,
            publish_token: None,
            allow_origins: Vec::new(),
            trace: false,
            auth: crate::auth::Policy::default(),
            allow_query_token: false,
            admin_token: None,
        }
    }
}

/// A duration or size on the command line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Reads `500ms`, `15s`, `2m`, `1h` (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| ParseError(format!("`{s}` is not a duration like 500ms, 15s, 2m, 1h")))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => {
            return Err(ParseError(format!(
                "`{s}`: unknown duration unit `{unit}` (use ms, s, m or h)"
            )))
        }
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| ParseError(format!("`{s}` is too long a duration")))
}

/// The size units [`parse_size`] reads, for its error message.
const SIZE_UNITS: &str = "B, K/KB/KiB, M/MB/MiB, G/GB/GiB, in any case";

/// Reads `65536`, `64KiB`, `16MiB`. Units are case-insensitive and all
/// binary: `64kb`, `64K` and `64KiB` are 65536 bytes (a server limit is no
/// place for the 1000-versus-1024 distinction; docs/api.md § Command line).
pub fn parse_size(s: &str) -> Result<usize, ParseError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().map_err(|_| {
        ParseError(format!(
            "`{s}` is not a size like 65536, 64KiB, 16MiB (units: {SIZE_UNITS})"
        ))
    })?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => {
            return Err(ParseError(format!(
                "`{s}`: unknown size unit `{}` (units: {SIZE_UNITS})",
                unit.trim()
            )))
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| ParseError(format!("`{s}` is too large a size")))
}

/// Reads a listening address `HOST:PORT` (docs/api.md § Command line):
/// `HOST` is an IPv4 address, an IPv6 address in brackets, `localhost`, or
/// nothing. `localhost` and an empty host (`:8080`, `:0`) are 127.0.0.1:
/// an address that names no host listens on loopback only, the safe choice
/// for a lab server; every interface is asked for by name (`0.0.0.0:PORT`,
/// `[::]:PORT`). No name is resolved: host names other than `localhost` are
/// refused, so the address printed is the one typed.
pub fn parse_addr(s: &str) -> Result<SocketAddr, ParseError> {
    let s = s.trim();
    let usage = || {
        ParseError(format!(
            "`{s}` is not an address like 127.0.0.1:8080, :0, localhost:0, [::1]:8080 or 0.0.0.0:8080"
        ))
    };
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(usage)?;
    let port: u16 = port.parse().map_err(|_| usage())?;
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(usage())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_every_documented_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_read_units_in_any_case_and_name_them_when_wrong() {
        for s in ["64kb", "64KB", "64KiB", "64kib", "64k", "64K"] {
            assert_eq!(parse_size(s), Ok(65536), "{s}");
        }
        assert_eq!(parse_size("2mb"), Ok(2 << 20));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("7b"), Ok(7));
        let err = parse_size("64kB/s").unwrap_err().0;
        assert!(err.contains("KiB") && err.contains("MiB"), "{err}");
        let err = parse_size("lots").unwrap_err().0;
        assert!(err.contains("K/KB/KiB"), "{err}");
    }

    #[test]
    fn addresses_without_a_host_or_with_localhost_are_loopback() {
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(parse_addr(":0"), Ok(loopback(0)));
        assert_eq!(parse_addr(":8080"), Ok(loopback(8080)));
        assert_eq!(parse_addr("localhost:0"), Ok(loopback(0)));
        assert_eq!(parse_addr("LOCALHOST:9"), Ok(loopback(9)));
        assert_eq!(parse_addr("127.0.0.1:0"), Ok(loopback(0)));
        assert_eq!(
            parse_addr("0.0.0.0:80"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        assert_eq!(parse_addr("[::1]:0").map(|a| a.is_ipv6()), Ok(true));
        for bad in ["", "8080", "example.com:80", ":http", "localhost", ":99999"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_read_binary_suffixes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("-1").is_err());
    }
}

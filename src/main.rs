//! The `pushlab` command: `pushlab [serve]` runs the server; `pushlab
//! compare` measures the four transports against each other.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use pushlab::auth::{Algorithm, Key, Policy, Secret, TopicPattern, Verifier};
use pushlab::config::{parse_addr, parse_duration, parse_size, Config, MAX_HEAD_BYTES};
use pushlab::redis::url::RedisUrl;
use pushlab::server::Server;

#[derive(Parser)]
#[command(
    name = "pushlab",
    version,
    about = "Short polling, long polling, SSE and WebSockets from one mio event loop",
    // `pushlab --history 1 serve --history 2`: the later value wins.
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

// Parsed once at start: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Measure short polling, long polling, SSE and WebSockets side by side.
    Compare(CompareArgs),
    /// Run a fresh engine through a recording (`serve --record FILE`) and
    /// print every byte it writes, or check them against the recording.
    Replay(ReplayArgs),
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn size(s: &str) -> Result<usize, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// Why a zero is refused: a limit or interval of 0 gives a server that
/// refuses everyone, forgets everything at once, or spins.
const ZERO: &str = "must be more than 0 (0 would make the server useless)";

fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err(ZERO.into());
    }
    Ok(d)
}

fn positive_size(s: &str) -> Result<usize, String> {
    match size(s)? {
        0 => Err(ZERO.into()),
        n => Ok(n),
    }
}

/// `--max-pipelined-bytes`: below the largest request head, a connection
/// holding part of a head could stop being read and never finish it.
fn pipelined_size(s: &str) -> Result<usize, String> {
    let n = size(s)?;
    if n < MAX_HEAD_BYTES {
        return Err(format!(
            "must be at least {}KiB, the largest request head",
            MAX_HEAD_BYTES / 1024
        ));
    }
    Ok(n)
}

fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err(ZERO.into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

fn redis_url(s: &str) -> Result<RedisUrl, String> {
    RedisUrl::parse(s).map_err(|e| e.to_string())
}

fn addr(s: &str) -> Result<std::net::SocketAddr, String> {
    parse_addr(s).map_err(|e| e.to_string())
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, not {s:?}")),
    }
}

/// Every limit and timeout; defaults are those of `Config::default()`.
#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on: HOST:PORT, HOST an IP address, `[v6]`,
    /// `localhost`, or nothing (`:8080`, `:0`) for 127.0.0.1 — loopback;
    /// `0.0.0.0:PORT` listens on every interface. Port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = addr)]
    addr: std::net::SocketAddr,
    /// Messages kept per topic.
    #[arg(long, default_value = "1024", value_parser = positive_count)]
    history: usize,
    /// Longest a message is kept.
    #[arg(long, default_value = "1h", value_parser = positive_duration)]
    history_ttl: std::time::Duration,
    /// Most bytes of history kept over all topics; past it the oldest
    /// messages of the hub are evicted (reported as `missed`).
    #[arg(long, default_value = "256MiB", value_parser = positive_size)]
    history_memory: usize,
    /// Keep the message log in this directory: a publish is answered once
    /// its record is on disk (fdatasync), and the history survives a
    /// restart or a crash. Without it the log is in memory only.
    #[arg(long, value_name = "PATH")]
    data_dir: Option<std::path::PathBuf>,
    /// Listen with SO_REUSEPORT: several pushlab processes (one per core)
    /// may listen on the same port, and the kernel spreads connections
    /// among them. They share history only through a shared log.
    #[arg(long)]
    reuse_port: bool,
    /// With --data-dir: start a new segment file past this size.
    #[arg(long, default_value = "64MiB", value_parser = positive_size)]
    segment_size: usize,
    /// Share one ordered log with other pushlab nodes in this Redis:
    /// redis://[[user]:password@]host[:port][/db]. Ids and cursors then mean
    /// the same on every node (docs/scaling.md). Without it the log is this
    /// process's own.
    #[arg(long, value_name = "URL", value_parser = redis_url, conflicts_with = "data_dir")]
    redis: Option<RedisUrl>,
    /// With --redis: the log's keys are PREFIXmeta and PREFIXlog, so
    /// several deployments can share one Redis (`{name}:` keeps both in one
    /// Redis Cluster slot).
    #[arg(long, value_name = "PREFIX", default_value = pushlab::redis::log::DEFAULT_PREFIX)]
    redis_prefix: String,
    /// With --redis: most publishes waiting for Redis at once (past it →
    /// 503 at once).
    #[arg(long, default_value = "10000", value_parser = positive_count)]
    redis_max_pending: usize,
    /// With --redis: longest wait for a connection, a login, a reply or a
    /// publish's commit (past it → 503, and the connection is made again).
    #[arg(long, default_value = "2s", value_parser = positive_duration)]
    redis_timeout: std::time::Duration,
    /// Most topics with kept messages (past it the oldest history gives way)
    /// and most topics with subscribers (past it a new subscription → 503).
    #[arg(long, default_value = "100000", value_parser = positive_count)]
    max_topics: usize,
    /// Most bytes held server-wide by publish bodies being read and WebSocket
    /// messages being reassembled → 503 / close 1013 past it.
    #[arg(long, default_value = "64MiB", value_parser = positive_size)]
    assembly_memory: usize,
    /// Largest published message (bytes, KiB, MiB) → 413.
    #[arg(long, default_value = "64KiB", value_parser = positive_size)]
    max_message: usize,
    /// Most open client connections → 503.
    #[arg(long, default_value = "10000", value_parser = positive_count)]
    max_connections: usize,
    /// Most open connections from one client address → 503.
    #[arg(long, default_value = "256")]
    max_connections_per_ip: usize,
    /// A reverse proxy whose Forwarded / X-Forwarded-For header names the
    /// client (its own connections are then counted per forwarded client);
    /// repeatable.
    #[arg(long = "trust-proxy")]
    trust_proxy: Vec<std::net::IpAddr>,
    /// Time allowed for a complete request head → 408.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    head_timeout: std::time::Duration,
    /// Idle keep-alive connections are closed after this (from when the last
    /// response was written).
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    idle_timeout: std::time::Duration,
    /// A connection whose client reads none of its pending output for this
    /// long is closed (time between two writes, as nginx's send_timeout).
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    send_timeout: std::time::Duration,
    /// Longest hold a long poll may ask for with `timeout=`.
    #[arg(long, default_value = "120s", value_parser = positive_duration)]
    long_poll_max: std::time::Duration,
    /// SSE heartbeat comment interval.
    #[arg(long, default_value = "15s", value_parser = positive_duration)]
    heartbeat: std::time::Duration,
    /// SSE `retry:` advice sent first on every stream.
    #[arg(long, default_value = "2s", value_parser = duration)]
    sse_retry: std::time::Duration,
    /// Close SSE streams after this long (with up to 10 % jitter); off by default.
    #[arg(long, value_parser = positive_duration)]
    sse_max_lifetime: Option<std::time::Duration>,
    /// WebSocket ping interval; a peer silent for two intervals is closed.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    ws_ping: std::time::Duration,
    /// Largest WebSocket message a client may send → close 1009.
    #[arg(long, default_value = "16MiB", value_parser = positive_size)]
    ws_max_message: usize,
    /// WebSocket compression (RFC 7692 permessage-deflate): on or off.
    // `Set`: a `bool` field is otherwise a value-less flag (clap's
    // `SetTrue`), and `--ws-deflate off` would be refused.
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    ws_deflate: bool,
    /// Messages smaller than this go uncompressed on compressed WebSockets.
    #[arg(long, default_value = "128", value_parser = size)]
    ws_deflate_threshold: usize,
    /// Bytes queued for one subscriber before it is cut as a slow consumer.
    #[arg(long, default_value = "1MiB", value_parser = positive_size)]
    max_queued_bytes: usize,
    /// Request bytes one connection may have received and not yet answered
    /// (requests pipelined behind a held one) before its socket is not
    /// read; at least 16KiB, the largest request head.
    #[arg(long, default_value = "64KiB", value_parser = pipelined_size)]
    max_pipelined_bytes: usize,
    /// Require `Authorization: Bearer TOKEN` on POST /publish → 401.
    #[arg(long)]
    publish_token: Option<String>,
    /// Origins allowed to open WebSockets and to use /events, /poll,
    /// /long-poll, /publish and /stats from another origin (CORS); repeatable,
    /// `*` allows any; none = same-origin only.
    #[arg(long = "allow-origin")]
    allow_origin: Vec<String>,
    /// Print one line per socket event.
    #[arg(long)]
    trace: bool,
    /// HS256 secret for signed tokens (at least 32 bytes; one final newline
    /// is ignored). A file, so the secret never shows in `ps`.
    #[arg(long, value_name = "PATH", conflicts_with = "jwt_public_key_file")]
    jwt_secret_file: Option<PathBuf>,
    /// PEM public key for signed tokens (with --jwt-algorithm).
    #[arg(long, value_name = "PATH", requires = "jwt_algorithm")]
    jwt_public_key_file: Option<PathBuf>,
    /// Algorithm of --jwt-public-key-file: RS256 or ES256. Tokens naming any
    /// other `alg` are refused.
    #[arg(long, value_name = "ALG", requires = "jwt_public_key_file")]
    jwt_algorithm: Option<Algorithm>,
    /// Required `aud` of every token (string or one of an array).
    #[arg(long, value_name = "AUDIENCE")]
    jwt_audience: Option<String>,
    /// Clock skew allowed on a token's exp, nbf and iat (a token stays
    /// usable this long after it expires).
    #[arg(long, default_value = "30s", value_parser = duration)]
    jwt_leeway: std::time::Duration,
    /// Topics anyone may subscribe to without a token when a JWT key is
    /// set: a name or a prefix ending in `*` (`public.*`); repeatable.
    #[arg(long = "public-topic", value_name = "PATTERN")]
    public_topic: Vec<TopicPattern>,
    /// Also accept a token in the `access_token` query parameter (it ends up
    /// in access logs and Referer headers; prefer the cookie).
    #[arg(long)]
    allow_query_token: bool,
    /// Bearer token for /trace, /stats and /metrics, read from a file.
    #[arg(long, value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    /// Write every engine input and output to this file, for `pushlab
    /// replay` (docs/replay.md). It holds what clients sent, tokens included.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Largest recording; past it the recording ends and serving goes on.
    #[arg(long, default_value = "1GiB", value_parser = size)]
    record_limit: usize,
}

/// `pushlab replay`.
#[derive(Args, Clone)]
struct ReplayArgs {
    /// A file written by `pushlab serve --record FILE`.
    file: PathBuf,
    /// Compare every write with the recorded bytes instead of printing them;
    /// exit 1 at the first difference, saying where.
    #[arg(long, visible_alias = "check")]
    compare: bool,
}

impl ServeArgs {
    /// The configuration, with the key and token files read and checked.
    fn into_config(self) -> Result<Config, String> {
        let auth = self.auth_policy()?;
        let admin_token = match &self.admin_token_file {
            None => None,
            Some(path) => Some(
                Secret::from_file_bytes(&read_file("--admin-token-file", path)?).ok_or_else(
                    || format!("--admin-token-file {}: the file is empty", path.display()),
                )?,
            ),
        };
        // docs/durability.md § The record format: every message the server
        // accepts must fit one record.
        let stored = pushlab::file_log::format::MAX_STORED_MESSAGE;
        if self.data_dir.is_some() && self.max_message > stored {
            return Err(format!(
                "--max-message {} is more than --data-dir can store: at most {stored} bytes \
                 (a record holds 64 MiB, a binary message is stored as base64)",
                self.max_message
            ));
        }
        Ok(Config {
            auth,
            admin_token,
            allow_query_token: self.allow_query_token,
            addr: self.addr,
            history: self.history,
            history_ttl: self.history_ttl,
            history_memory: self.history_memory,
            data_dir: self.data_dir,
            reuse_port: self.reuse_port,
            segment_size: self.segment_size as u64,
            redis: self.redis,
            redis_prefix: self.redis_prefix,
            redis_max_pending: self.redis_max_pending,
            redis_timeout: self.redis_timeout,
            max_topics: self.max_topics,
            assembly_memory: self.assembly_memory,
            max_message: self.max_message,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            trust_proxy: self.trust_proxy.iter().map(|ip| ip.to_string()).collect(),
            head_timeout: self.head_timeout,
            idle_timeout: self.idle_timeout,
            send_timeout: self.send_timeout,
            long_poll_max: self.long_poll_max,
            heartbeat: self.heartbeat,
            sse_retry: self.sse_retry,
            sse_max_lifetime: self.sse_max_lifetime,
            ws_ping: self.ws_ping,
            ws_max_message: self.ws_max_message,
            ws_deflate: self.ws_deflate,
            ws_deflate_threshold: self.ws_deflate_threshold,
            max_queued_bytes: self.max_queued_bytes,
            max_pipelined_bytes: self.max_pipelined_bytes,
            publish_token: self.publish_token,
            allow_origins: self.allow_origin,
            trace: self.trace,
            ..Config::default()
        })
    }

    fn auth_policy(&self) -> Result<Policy, String> {
        let key = if let Some(path) = &self.jwt_secret_file {
            let bytes = read_file("--jwt-secret-file", path)?;
            Key::hs256(&bytes).map_err(|e| format!("--jwt-secret-file {}: {e}", path.display()))?
        } else if let (Some(path), Some(alg)) = (&self.jwt_public_key_file, self.jwt_algorithm) {
            let bytes = read_file("--jwt-public-key-file", path)?;
            Key::public_pem(alg, &bytes)
                .map_err(|e| format!("--jwt-public-key-file {}: {e}", path.display()))?
        } else {
            for (set, flag) in [
                (self.jwt_audience.is_some(), "--jwt-audience"),
                (!self.public_topic.is_empty(), "--public-topic"),
                (self.allow_query_token, "--allow-query-token"),
            ] {
                if set {
                    return Err(format!(
                        "{flag} needs a key: --jwt-secret-file, or --jwt-public-key-file \
                         with --jwt-algorithm (without one every topic is public)"
                    ));
                }
            }
            return Ok(Policy::default());
        };
        Ok(Policy {
            verifier: Some(Verifier::new(
                key,
                self.jwt_audience.clone(),
                self.jwt_leeway.as_secs(),
            )),
            public_topics: self.public_topic.clone(),
        })
    }
}

/// A key or token file's bytes, or an error naming the flag and the path.
fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

fn serve(args: ServeArgs) -> ExitCode {
    let (record, record_limit) = (args.record.clone(), args.record_limit);
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pushlab: {e}");
            return ExitCode::from(2);
        }
    };
    let mut server = match Server::bind(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pushlab: cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &record {
        // The whole command line: a replay parses it again for the config.
        let args = std::env::args().skip(1).collect();
        if let Err(e) = server.record(path, args, record_limit as u64) {
            eprintln!("pushlab: cannot record to {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = server.handle_signals() {
        eprintln!("pushlab: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    // The first line on stdout is the contract tests and scripts read.
    println!("pushlab listening on http://{}/", server.local_addr());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushlab: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Output of `pushlab compare`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Markdown,
    Json,
}

/// `pushlab compare --payload`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Payload {
    Padding,
    Json,
}

/// `on` / `off`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

/// `pushlab compare` (docs/api.md § Command line). Without `--url` it starts its own
/// servers in this process (one per transport) on 127.0.0.1.
#[derive(Args, Clone)]
struct CompareArgs {
    /// Measure a running server (http://host:port[/prefix]) instead.
    #[arg(long)]
    url: Option<String>,
    /// Subscribers per transport.
    #[arg(long, default_value = "10")]
    subscribers: usize,
    /// Messages published per second.
    #[arg(long, default_value = "2")]
    rate: f64,
    /// Bytes of data per message (64, 1KiB, …).
    #[arg(long, default_value = "128", value_parser = size)]
    size: usize,
    /// How long to publish.
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: std::time::Duration,
    /// Short polling's interval.
    #[arg(long, default_value = "1s", value_parser = duration)]
    poll_interval: std::time::Duration,
    /// HTTP keep-alive for the polling transports (off: a new socket per request).
    #[arg(long, value_enum, default_value = "on")]
    keep_alive: Switch,
    /// Same as `--keep-alive off`.
    #[arg(long)]
    no_keep_alive: bool,
    /// `timeout=` of each long poll.
    #[arg(long, default_value = "30s", value_parser = duration)]
    long_poll_timeout: std::time::Duration,
    /// Transports to measure, comma-separated: poll,long-poll,sse,ws.
    #[arg(long, default_value = "poll,long-poll,sse,ws")]
    transports: String,
    /// With ws: also a "WebSocket + deflate" column, clients that negotiate
    /// permessage-deflate and inflate every message.
    #[arg(long, value_enum, default_value = "on")]
    ws_deflate: Switch,
    /// The messages' data: the stamp padded with `x`, or a JSON dashboard
    /// update of --size bytes (what compression is measured with).
    #[arg(long, value_enum, default_value = "padding")]
    payload: Payload,
    /// Embedded servers end SSE streams after this long (shows reconnection).
    #[arg(long, value_parser = positive_duration)]
    sse_max_lifetime: Option<std::time::Duration>,
    /// Embedded servers' SSE `retry:` advice (the EventSource reconnection wait).
    #[arg(long, value_parser = duration)]
    sse_retry: Option<std::time::Duration>,
    /// Bearer token for publishing to a `--url` server.
    #[arg(long)]
    publish_token: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Also write the latency / bytes chart as SVG to this file.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
    /// No progress line on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn compare(args: CompareArgs) -> ExitCode {
    let transports = match pushlab::lab::parse_transports(&args.transports) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pushlab compare: --transports: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = pushlab::lab::Options {
        url: args.url,
        subscribers: args.subscribers,
        rate: args.rate,
        size: args.size,
        duration: args.duration,
        poll_interval: args.poll_interval,
        keep_alive: args.keep_alive == Switch::On && !args.no_keep_alive,
        long_poll_timeout: args.long_poll_timeout,
        transports,
        ws_deflate: args.ws_deflate == Switch::On,
        payload: match args.payload {
            Payload::Padding => pushlab::lab::payload::Kind::Padding,
            Payload::Json => pushlab::lab::payload::Kind::Json,
        },
        sse_max_lifetime: args.sse_max_lifetime,
        sse_retry: args.sse_retry,
        publish_token: args.publish_token,
        topic: None,
        progress: !args.quiet,
    };
    let report = match pushlab::lab::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pushlab compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.svg {
        if let Err(e) = std::fs::write(path, pushlab::lab::svg::render(&report)) {
            eprintln!("pushlab compare: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    match args.format {
        Format::Table => print!("{}", report.to_table()),
        Format::Markdown => print!("{}", report.to_markdown()),
        Format::Json => println!("{:#}", report.to_json()),
    }
    ExitCode::SUCCESS
}

/// The index of the subcommand `name` in `args`, if it is one: the first
/// `name` token such that what comes before it parses on its own (so a
/// `serve` that is the value of an option, `--publish-token serve`, is not
/// taken for the subcommand).
fn subcommand_at(args: &[OsString], name: &str) -> Option<usize> {
    (1..args.len()).find(|&i| {
        args[i] == name && Cli::try_parse_from(&args[..i]).is_ok_and(|c| c.command.is_none())
    })
}

/// `pushlab [OPTIONS] serve [OPTIONS]` is read as `pushlab serve [OPTIONS]
/// [OPTIONS]`: the server's options count wherever they are (the later of
/// two values wins). Options before `compare` are refused: they would be
/// the server's, and `compare` has options of its own.
fn server_options_anywhere(mut args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    if let Some(i) = subcommand_at(&args, "compare") {
        if i > 1 {
            return Err(
                "options before `compare` are the server's: put compare's options after it \
                 (`pushlab compare --help`)"
                    .into(),
            );
        }
    }
    if let Some(i) = subcommand_at(&args, "serve") {
        let serve = args.remove(i);
        args.insert(1, serve);
    }
    Ok(args)
}

fn replay(args: ReplayArgs) -> ExitCode {
    let fail = |what: String| {
        eprintln!("pushlab replay: {}: {what}", args.file.display());
        ExitCode::from(2)
    };
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => return fail(e.to_string()),
    };
    let rec = match pushlab::replay::Recording::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return fail(format!("not a readable recording: {e}")),
    };
    // The configuration, from the recorded command line.
    let argv = std::iter::once("pushlab".to_string()).chain(rec.header.args.iter().cloned());
    let serve_args = match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Some(Command::Serve(a)),
            ..
        }) => a,
        Ok(Cli {
            command: None,
            serve,
            ..
        }) => serve,
        Ok(_) => return fail("the recorded command line is not `pushlab serve`".into()),
        Err(e) => return fail(format!("the recorded command line does not parse: {e}")),
    };
    let config = match serve_args.into_config() {
        Ok(c) => c,
        Err(e) => return fail(format!("the recorded configuration: {e}")),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let opts = pushlab::replay::Options {
        compare: args.compare,
    };
    let result = pushlab::replay::run(&rec, config, opts, &mut out);
    let _ = out.flush();
    drop(out);
    match result {
        Ok(s) => {
            let verdict = if args.compare {
                "every write identical to the recording"
            } else {
                "replayed"
            };
            // Not println!: a closed pipe (`| head`) is no reason to panic.
            let _ = writeln!(
                std::io::stdout(),
                "replay: {verdict}: {} inputs, {} connections, {} writes, {} bytes{}",
                s.inputs,
                s.connections,
                s.writes,
                s.bytes,
                if s.cut {
                    " (the recording was cut short; replayed up to its end)"
                } else if rec.end == Some(pushlab::record::End::Limit) {
                    " (the recording ended at its --record-limit)"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(d) => {
            let _ = writeln!(std::io::stdout(), "replay: DIFFERENCE at {d}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = match server_options_anywhere(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("pushlab: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    match cli.command {
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Compare(args)) => compare(args),
        Some(Command::Replay(args)) => replay(args),
        None => serve(cli.serve),
    }
}

//! The `pushlab` command: `pushlab [serve]` runs the server; `pushlab
//! compare` measures the four transports against each other.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use pushlab::config::{parse_duration, parse_size, Config};
use pushlab::server::Server;

#[derive(Parser)]
#[command(
    name = "pushlab",
    version,
    about = "Short polling, long polling, SSE and WebSockets from one mio event loop"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Measure short polling, long polling, SSE and WebSockets side by side.
    Compare(CompareArgs),
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn size(s: &str) -> Result<usize, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// Every limit and timeout; defaults are those of `Config::default()`.
#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Messages kept per topic.
    #[arg(long, default_value = "1024")]
    history: usize,
    /// Longest a message is kept.
    #[arg(long, default_value = "1h", value_parser = duration)]
    history_ttl: std::time::Duration,
    /// Most bytes of history kept over all topics; past it the oldest
    /// messages of the hub are evicted (reported as `missed`).
    #[arg(long, default_value = "256MiB", value_parser = size)]
    history_memory: usize,
    /// Most topics with kept messages (past it the oldest history gives way)
    /// and most topics with subscribers (past it a new subscription → 503).
    #[arg(long, default_value = "100000")]
    max_topics: usize,
    /// Most bytes held server-wide by publish bodies being read and WebSocket
    /// messages being reassembled → 503 / close 1013 past it.
    #[arg(long, default_value = "64MiB", value_parser = size)]
    assembly_memory: usize,
    /// Largest published message (bytes, KiB, MiB) → 413.
    #[arg(long, default_value = "64KiB", value_parser = size)]
    max_message: usize,
    /// Most open client connections → 503.
    #[arg(long, default_value = "10000")]
    max_connections: usize,
    /// Time allowed for a complete request head → 408.
    #[arg(long, default_value = "10s", value_parser = duration)]
    head_timeout: std::time::Duration,
    /// Idle keep-alive connections are closed after this (from when the last
    /// response was written).
    #[arg(long, default_value = "60s", value_parser = duration)]
    idle_timeout: std::time::Duration,
    /// A connection whose client reads none of its pending output for this
    /// long is closed (time between two writes, as nginx's send_timeout).
    #[arg(long, default_value = "60s", value_parser = duration)]
    send_timeout: std::time::Duration,
    /// Longest hold a long poll may ask for with `timeout=`.
    #[arg(long, default_value = "120s", value_parser = duration)]
    long_poll_max: std::time::Duration,
    /// SSE heartbeat comment interval.
    #[arg(long, default_value = "15s", value_parser = duration)]
    heartbeat: std::time::Duration,
    /// SSE `retry:` advice sent first on every stream.
    #[arg(long, default_value = "2s", value_parser = duration)]
    sse_retry: std::time::Duration,
    /// Close SSE streams after this long (with up to 10 % jitter); off by default.
    #[arg(long, value_parser = duration)]
    sse_max_lifetime: Option<std::time::Duration>,
    /// WebSocket ping interval; a peer silent for two intervals is closed.
    #[arg(long, default_value = "30s", value_parser = duration)]
    ws_ping: std::time::Duration,
    /// Largest WebSocket message a client may send → close 1009.
    #[arg(long, default_value = "16MiB", value_parser = size)]
    ws_max_message: usize,
    /// Bytes queued for one subscriber before it is cut as a slow consumer.
    #[arg(long, default_value = "1MiB", value_parser = size)]
    max_queued_bytes: usize,
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
}

impl ServeArgs {
    fn into_config(self) -> Config {
        Config {
            addr: self.addr,
            history: self.history,
            history_ttl: self.history_ttl,
            history_memory: self.history_memory,
            max_topics: self.max_topics,
            assembly_memory: self.assembly_memory,
            max_message: self.max_message,
            max_connections: self.max_connections,
            head_timeout: self.head_timeout,
            idle_timeout: self.idle_timeout,
            send_timeout: self.send_timeout,
            long_poll_max: self.long_poll_max,
            heartbeat: self.heartbeat,
            sse_retry: self.sse_retry,
            sse_max_lifetime: self.sse_max_lifetime,
            ws_ping: self.ws_ping,
            ws_max_message: self.ws_max_message,
            max_queued_bytes: self.max_queued_bytes,
            publish_token: self.publish_token,
            allow_origins: self.allow_origin,
            trace: self.trace,
            ..Config::default()
        }
    }
}

fn serve(config: Config) -> ExitCode {
    let mut server = match Server::bind(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pushlab: cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
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

/// `on` / `off`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

/// `pushlab compare` (DESIGN.md §1b). Without `--url` it starts its own
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
    /// Embedded servers end SSE streams after this long (shows reconnection).
    #[arg(long, value_parser = duration)]
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve(args.into_config()),
        Some(Command::Compare(args)) => compare(args),
        None => serve(cli.serve.into_config()),
    }
}

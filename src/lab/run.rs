//! The phases of one `pushlab compare` run, start to report. See the
//! module map in [`crate::lab`] for the order and the reasons.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::client::Counters;
use super::client::{Client, ClientOptions, Endpoint};
use super::driver::{tally_index, Driver, Role};
use super::embedded::{fetch_stats, stats_when, Embedded, ServerCounters};
use super::measure::{latency, Tally, Tracker};
use super::progress::Progress;
use super::publisher::{PublishConn, Schedule};
use super::report::{Check, Report, Row, Settings};
use super::{Column, LabError, Options};
use crate::config::Config;
use crate::stats::Transport;
use crate::timers::Instant;

/// Longest wait for every subscriber to be subscribed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the closing handshakes at the end.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for a server's counters to show every socket closed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where some of the subscribers go.
struct Target {
    addr: SocketAddr,
    host: String,
    prefix: String,
    /// Index in the embedded servers.
    server: Option<usize>,
    columns: Vec<Column>,
}

impl Target {
    /// The server transports its columns use (WebSocket once, with or
    /// without deflate).
    fn transports(&self) -> Vec<Transport> {
        let mut ts: Vec<Transport> = Vec::new();
        for c in &self.columns {
            if !ts.contains(&c.transport) {
                ts.push(c.transport);
            }
        }
        ts
    }
}

/// `http://host[:port][/prefix]` → address, `Host` header, path prefix.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String), LabError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| LabError(format!("`{url}`: only http:// URLs are supported")))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err(LabError(format!("`{url}`: no host")));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| LabError(format!("`{authority}`: {e}")))?
        .next()
        .ok_or_else(|| LabError(format!("`{authority}`: no address")))?;
    Ok((
        addr,
        authority.to_string(),
        path.trim_end_matches('/').to_string(),
    ))
}

/// A topic no earlier run used: `lab-<ms since 1970, base 36>-<pid>`.
fn new_topic() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("lab-{}-{}", crate::hub::base36(ms), std::process::id())
}

/// The configuration of the embedded servers: defaults, with a history
/// long enough for the whole run (so a slow short poll never finds its
/// messages evicted) and the lab's SSE and long-poll settings.
fn embedded_config(opts: &Options, total: u64) -> Config {
    let d = Config::default();
    Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        history: usize::try_from(total + 64)
            .unwrap_or(usize::MAX)
            .clamp(d.history, 1 << 20),
        long_poll_max: d.long_poll_max.max(opts.long_poll_timeout),
        sse_max_lifetime: opts.sse_max_lifetime,
        sse_retry: opts.sse_retry.unwrap_or(d.sse_retry),
        // Every client of the lab comes from this machine.
        max_connections_per_ip: usize::MAX,
        ..d
    }
}

/// Runs until `done` holds or `deadline` passes; false on the deadline.
fn run_until(
    d: &mut Driver,
    deadline: Instant,
    progress: &mut Progress,
    t0: Instant,
    total: u64,
    done: impl Fn(&Driver) -> bool,
) -> Result<bool, LabError> {
    loop {
        if let Some(e) = &d.publish_error {
            return Err(LabError(e.clone()));
        }
        if done(d) {
            return Ok(true);
        }
        if d.now() >= deadline {
            return Ok(false);
        }
        let next = (d.now() + Duration::from_millis(250)).min(deadline);
        d.turn(next)?;
        progress.tick(d, t0, total);
    }
}

/// Runs the comparison described by `opts`.
pub fn run(opts: &Options) -> Result<Report, LabError> {
    if !(opts.rate > 0.0 && opts.rate.is_finite()) {
        return Err(LabError("--rate must be a positive number".into()));
    }
    if opts.subscribers == 0 || opts.transports.is_empty() {
        return Err(LabError("nothing to measure: no subscriber".into()));
    }
    if opts.poll_interval.is_zero() {
        return Err(LabError("--poll-interval must be above zero".into()));
    }
    let topic = opts.topic.clone().unwrap_or_else(new_topic);
    let total = Schedule::new(Instant::ZERO, opts.rate, opts.duration).total;
    let columns = Column::of_run(&opts.transports, opts.ws_deflate);

    // Servers and where each transport's subscribers go.
    let mut servers: Vec<Embedded> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    let mut baseline: Option<usize> = None;
    match &opts.url {
        Some(url) => {
            let (addr, host, prefix) = parse_url(url)?;
            targets.push(Target {
                addr,
                host,
                prefix,
                server: None,
                columns: columns.clone(),
            });
        }
        None => {
            let config = embedded_config(opts, total);
            for &c in &columns {
                // One server per column: its CPU time and `/stats` are the
                // column's alone.
                let s = Embedded::start(c.key(), config.clone())?;
                targets.push(Target {
                    addr: s.addr,
                    host: s.addr.to_string(),
                    prefix: String::new(),
                    server: Some(servers.len()),
                    columns: vec![c],
                });
                servers.push(s);
            }
            // Receives the publishes and nothing else.
            let s = Embedded::start("baseline", config)?;
            baseline = Some(servers.len());
            targets.push(Target {
                addr: s.addr,
                host: s.addr.to_string(),
                prefix: String::new(),
                server: Some(servers.len()),
                columns: Vec::new(),
            });
            servers.push(s);
        }
    }
    let endpoint = |t: &Target| Endpoint {
        host: t.host.clone(),
        prefix: t.prefix.clone(),
        topic: topic.clone(),
    };
    let stats = |t: &Target| {
        fetch_stats(t.addr, &t.host, &t.prefix)
            .map_err(|e| LabError(format!("GET {}/stats on {}: {e}", t.prefix, t.host)))
    };
    let before: Vec<Value> = targets.iter().map(stats).collect::<Result<_, _>>()?;
    let cpu_before: Vec<Option<Duration>> = servers.iter().map(Embedded::cpu).collect();

    // Every subscriber, then one publishing connection per server.
    let mut d = Driver::new(opts.size, opts.payload)?;
    let copts = ClientOptions {
        poll_interval: opts.poll_interval,
        long_poll_timeout: opts.long_poll_timeout,
        keep_alive: opts.keep_alive,
        ws_max_message: (opts.size * 8).max(1 << 20),
    };
    let mut seed = 1u64;
    for target in &targets {
        for &t in &target.columns {
            for _ in 0..opts.subscribers {
                seed += 1;
                let client = Box::new(Client::new(t, endpoint(target), &copts, seed));
                let tracker = Tracker::default();
                d.add(target.addr, Role::Subscriber { client, tracker });
            }
        }
    }
    for target in &targets {
        let conn = PublishConn::new(endpoint(target), opts.publish_token.clone());
        d.add(target.addr, Role::Publisher(conn));
    }

    let mut progress = Progress {
        on: opts.progress,
        live: std::io::stderr().is_terminal(),
        last: None,
        ticking: false,
    };
    progress.phase(&format!(
        "subscribing {} × {} clients…",
        opts.subscribers,
        columns.len()
    ));
    d.start_all();
    let now = d.now();
    if !run_until(
        &mut d,
        now + SUBSCRIBE_TIMEOUT,
        &mut progress,
        now,
        total,
        Driver::all_ready,
    )? {
        return Err(LabError(
            "not every subscriber could subscribe within 10 s".into(),
        ));
    }
    wait_for_parked_long_polls(&mut d, &targets, &before, opts.subscribers)?;

    // Publish.
    let t0 = d.now();
    let schedule = Schedule::new(t0, opts.rate, opts.duration);
    d.begin(t0, opts.poll_interval, schedule);
    progress.phase(&format!("publishing {total} messages…"));
    progress.ticking = true;
    let deadline = t0 + opts.duration + Duration::from_secs(10);
    if !run_until(
        &mut d,
        deadline,
        &mut progress,
        t0,
        total,
        Driver::publish_done,
    )? {
        return Err(LabError(format!(
            "publishing fell behind: {} of {total} messages acknowledged 10 s late",
            d.sent
        )));
    }
    // Drain: long enough for a short poll to come round twice and for an
    // SSE stream to reconnect.
    let retry = opts.sse_retry.unwrap_or(Config::default().sse_retry);
    let drain =
        opts.poll_interval * 2 + (retry + Duration::from_secs(1)).max(Duration::from_secs(3));
    let now = d.now();
    run_until(
        &mut d,
        now + drain,
        &mut progress,
        t0,
        total,
        Driver::all_complete,
    )?;
    let measured = d.now().saturating_since(t0);

    // Stop: polls finish, long polls hang up, streams close, WebSockets do
    // the closing handshake.
    progress.ticking = false;
    progress.end();
    progress.phase("closing…");
    d.stop_all();
    let now = d.now();
    run_until(
        &mut d,
        now + STOP_TIMEOUT,
        &mut progress,
        t0,
        total,
        Driver::all_done,
    )?;
    d.force_close_all();
    let cpu_after: Vec<Option<Duration>> = servers.iter().map(Embedded::cpu).collect();

    // The servers' view, once they have seen every socket close.
    let mut after = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let transports = target.transports();
        let open_before: Vec<u64> = transports
            .iter()
            .map(|&t| ServerCounters::of(&before[i], t).sockets_open)
            .collect();
        let doc = stats_when(
            target.addr,
            &target.host,
            &target.prefix,
            SETTLE_TIMEOUT,
            |doc| {
                transports
                    .iter()
                    .zip(&open_before)
                    .all(|(&t, &b)| ServerCounters::of(doc, t).sockets_open <= b)
            },
        )
        .map_err(|e| LabError(format!("GET /stats after the run: {e}")))?;
        after.push(doc);
    }
    if progress.on && progress.live {
        eprint!("\r\x1b[2K");
    }

    let cpu_used = |i: usize| match (cpu_before[i], cpu_after[i]) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let baseline_cpu = baseline.and_then(cpu_used);
    let mut rows = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        for &col in &target.columns {
            let t = col.transport;
            let mut tally = d.tallies[tally_index(col)].clone();
            let counters = d.counters(col);
            // `/stats` counts per transport: with `--url`, both WebSocket
            // columns are one server's `ws`, so they are compared summed.
            let (mut lab_tally, mut lab_counters) = (Tally::default(), Counters::default());
            for &other in target.columns.iter().filter(|c| c.transport == t) {
                lab_tally.add(&d.tallies[tally_index(other)]);
                lab_counters.add(&d.counters(other));
            }
            let server = ServerCounters::of(&after[i], t).since(&ServerCounters::of(&before[i], t));
            let gross = target.server.and_then(cpu_used);
            let net = gross.map(|g| g.saturating_sub(baseline_cpu.unwrap_or_default()));
            let lab_view = [
                (
                    "sockets opened",
                    lab_tally.sockets_opened,
                    server.sockets_opened,
                ),
                ("requests", lab_counters.requests, server.requests),
                (
                    "messages delivered",
                    lab_tally.received + lab_tally.foreign,
                    server.messages_delivered,
                ),
                ("bytes client→server", lab_tally.bytes_up, server.bytes_in),
                (
                    "bytes server→client",
                    lab_tally.bytes_down,
                    server.bytes_out,
                ),
            ];
            let mut mismatches: Vec<String> = lab_view
                .iter()
                .filter(|(_, lab, srv)| lab != srv)
                .map(|(what, lab, srv)| format!("{what}: lab {lab}, server {srv}"))
                .collect();
            if matches!(t, Transport::Poll | Transport::LongPoll)
                && lab_counters.empty_responses != server.empty_responses
            {
                mismatches.push(format!(
                    "empty responses: lab {}, server {}",
                    lab_counters.empty_responses, server.empty_responses
                ));
            }
            rows.push(Row {
                transport: t,
                deflate: col.deflate,
                compressed: counters.compressed,
                deflate_declined: counters.deflate_declined,
                subscribers: opts.subscribers as u64,
                expected: d.sent * opts.subscribers as u64,
                delivered: tally.distinct,
                received: tally.received,
                latency: latency(&mut tally.latencies_us),
                requests: counters.requests,
                empty_responses: counters.empty_responses,
                sockets_opened: tally.sockets_opened,
                mean_socket_lifetime: tally.mean_lifetime(),
                reused: tally.reused,
                bytes_up: tally.bytes_up,
                bytes_down: tally.bytes_down,
                server_cpu: gross,
                server_cpu_net: net,
                lost: d.lost(col),
                duplicates: tally.duplicates,
                out_of_order: tally.out_of_order,
                missed_messages: tally.missed_messages,
                resets: tally.resets,
                reconnects: counters.reconnects,
                skipped_ticks: counters.skipped_ticks,
                errors: counters.errors,
                first_error: counters.first_error.clone(),
                check: Some(Check {
                    compared: lab_view.len()
                        + usize::from(matches!(t, Transport::Poll | Transport::LongPoll)),
                    server_mean_socket_lifetime: server.mean_lifetime(),
                    server_requests_on_reused_socket: server.requests_on_reused_socket,
                    mismatches,
                }),
            });
        }
    }
    for s in &mut servers {
        s.stop();
    }
    Ok(Report {
        settings: Settings {
            target: opts.url.clone(),
            subscribers: opts.subscribers,
            rate: opts.rate,
            size: opts.size,
            payload: opts.payload,
            duration: opts.duration,
            poll_interval: opts.poll_interval,
            keep_alive: opts.keep_alive,
            long_poll_timeout: opts.long_poll_timeout,
            sse_max_lifetime: opts.sse_max_lifetime,
            sse_retry: opts.sse_retry,
            topic,
        },
        published: d.sent,
        measured,
        baseline_cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        rows,
    })
}

/// A long poll is only subscribed once the server has parked it; its
/// request being written is not enough. Turns the loop while asking
/// `/stats` until the long-polling server holds them all (at most 5 s).
fn wait_for_parked_long_polls(
    d: &mut Driver,
    targets: &[Target],
    before: &[Value],
    subscribers: usize,
) -> Result<(), LabError> {
    let Some((i, target)) = targets
        .iter()
        .enumerate()
        .find(|(_, t)| t.columns.contains(&Column::plain(Transport::LongPoll)))
    else {
        return Ok(());
    };
    let want =
        ServerCounters::of(&before[i], Transport::LongPoll).holds_active + subscribers as u64;
    let deadline = d.now() + Duration::from_secs(5);
    while d.now() < deadline {
        let doc = fetch_stats(target.addr, &target.host, &target.prefix).map_err(LabError)?;
        if ServerCounters::of(&doc, Transport::LongPoll).holds_active >= want {
            return Ok(());
        }
        let next = d.now() + Duration::from_millis(10);
        d.turn(next)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_address_host_and_prefix() {
        let (addr, host, prefix) = parse_url("http://127.0.0.1:8080/push/").unwrap();
        assert_eq!(addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(host, "127.0.0.1:8080");
        assert_eq!(prefix, "/push");
        let (addr, _, prefix) = parse_url("http://127.0.0.1").unwrap();
        assert_eq!(addr.port(), 80);
        assert_eq!(prefix, "");
        assert!(parse_url("https://example.com").is_err());
    }

    #[test]
    fn topics_are_valid_and_new() {
        let t = new_topic();
        assert!(crate::hub::is_valid_topic(&t), "{t}");
    }
}

//! Fan-out: one publisher, `--subs` subscribers of one topic over SSE,
//! WebSocket or long polling.
//!
//! The publisher POSTs `@seq@micros@…` messages over one keep-alive
//! connection, pipelined, keeping at most `--window` messages "in flight" (published
//! and not yet received by every live subscriber, or older than 10 s), for
//! `--duration` seconds or `--messages` messages. Deliveries/s is every
//! delivery counted once, over the time from the first publish to the last
//! delivery; latency is the delivery time minus the publish time written in
//! the message; lost is what live subscribers should have received and did
//! not by the end (10 s after the last publish at most; `--give-up S` for S
//! seconds).
//!
//! `--deflate 1` (WebSocket): subscribers offer permessage-deflate and
//! inflate every compressed frame (`deflate.rs`); `--body json` publishes a
//! realistic ~380-byte JSON update instead of the padded marker. Every
//! WebSocket message is compared with what was published: one that differs
//! (or does not inflate) counts as `corrupt`, and so as lost.
//! `wire_bytes_per_delivery` is what the subscriber sockets read (frame
//! headers and payloads, the TCP stream's bytes) over the measured phase,
//! divided by the deliveries.
//!
//! `--warmup K`: K messages are published one at a time before the measured
//! phase, each until every subscriber has it (or 120 s); none of them is
//! counted, and the server's CPU time starts after them. A server that sets
//! up per-connection state on a connection's first message (Node `ws`
//! creates a zlib stream per socket) is then measured in its steady state.
//!
//! Scale-out (bench/scaleout.py): `--sub-addrs A,B` spreads the subscribers
//! over several servers (subscriber `i` on address `i mod k`) while the
//! publisher posts to `--addr`; the latency of each address's deliveries is
//! reported apart (`p50_us_0`, `p99_us_1`, …), so "delivered on the other
//! node" is a column of its own. `--rate R` paces the publishes at R per
//! second instead of pipelining them as fast as the window allows, and
//! `--pids P,Q` adds each process's CPU seconds over the measured phase
//! (`cpu_s_0`, `cpu_s_1`, … from `/proc/PID/stat`). `--publishers K` posts
//! over K keep-alive connections in turn instead of one, up to one publish
//! per connection per loop turn, so what the window allows leaves together
//! as a busy publisher's would (with one connection, one per turn).
//!
//! `--messages 1 --transport longpoll` is the long-poll release test: every
//! subscriber parks a request, then one publish releases them all, and
//! `last_us` is the time from sending the publish to the last response read.

use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use pushlab::wire::websocket::Opcode;

use crate::deflate::{self, Inflate};
use crate::net::{self, now_us, Io, Read_, Samples, WsReader};
use crate::{json, subscribe_request, Args, Server, Transport};

/// A message older than this no longer holds the window open (`--give-up`
/// seconds changes it).
const GIVE_UP_US: u64 = 10_000_000;

/// How long a warm-up message may take to reach everyone.
const WARMUP_GIVE_UP_US: u64 = 120_000_000;

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Waiting,
    Connecting,
    /// Request sent, response head (SSE/WS) or response (long-poll) awaited.
    Head,
    /// Streaming (SSE/WS).
    Open,
    Dead,
}

struct Sub {
    io: Option<Io>,
    phase: Phase,
    ws: WsReader,
    last_seq: u64,
    /// Long-poll request flushed at least once (parked).
    parked: bool,
}

struct Counters {
    /// Messages up to this one are the warm-up's: tracked, not counted.
    warmup: u64,
    deliveries: u64,
    dup_or_old: u64,
    first_pub: u64,
    last_delivery: u64,
    latency: Samples,
    /// Latency of the deliveries to each `--sub-addrs` address.
    latency_by_addr: Vec<Samples>,
    counts: Vec<u32>,
    pub_times: Vec<u64>,
}

impl Counters {
    fn deliver(&mut self, sub: &mut Sub, group: usize, seq: u64, at: u64, now: u64) {
        if seq <= sub.last_seq || seq == 0 || seq as usize > self.counts.len() {
            self.dup_or_old += 1;
            return;
        }
        sub.last_seq = seq;
        self.counts[seq as usize - 1] += 1;
        if seq <= self.warmup {
            return;
        }
        self.deliveries += 1;
        self.last_delivery = now;
        self.latency.add(now.saturating_sub(at));
        self.latency_by_addr[group].add(now.saturating_sub(at));
    }
}

/// The long-poll request that follows a response.
fn next_long_poll(server: Server, topic: &str, head: &net::ResponseHead, body: &[u8]) -> Vec<u8> {
    match server {
        Server::Pushlab => {
            let next = net::find(body, b"\"next\":\"")
                .map(|i| {
                    let rest = &body[i + 8..];
                    let end = rest.iter().position(|&b| b == b'"').unwrap_or(0);
                    String::from_utf8_lossy(&rest[..end]).into_owned()
                })
                .expect("poll body without next");
            format!(
                "GET /long-poll?topic={topic}&timeout=110&since={next} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            .into_bytes()
        }
        Server::Nchan | Server::Node => {
            let mut req = format!("GET /sub?id={topic} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            if let Some(lm) = &head.last_modified {
                req += &format!("If-Modified-Since: {lm}\r\n");
            }
            if let Some(etag) = &head.etag {
                req += &format!("If-None-Match: {etag}\r\n");
            }
            req += "\r\n";
            req.into_bytes()
        }
    }
}

pub fn run(args: &Args) -> String {
    let addr = args.addr();
    let server = args.server();
    let transport = args.transport();
    let n = args.num("subs", 1000.0) as usize;
    let duration = args.num("duration", 10.0);
    let window = args.num("window", 8.0) as u64;
    let size = args.num("size", 64.0) as usize;
    let max_messages = args.num("messages", 1e12) as u64;
    let settle = args.num("settle", 0.5);
    // `--reissue 0`: a released long-poll subscriber does not ask again, so
    // the load generator's core only reads (the release test's second row).
    let reissue = args.num("reissue", 1.0) != 0.0;
    let max_connecting = args.num("ramp", 256.0) as usize;
    let topic = args.str("topic", &format!("bench{}", std::process::id()));
    let sub_addrs: Vec<std::net::SocketAddr> = match args.str("sub-addrs", "").as_str() {
        "" => vec![addr],
        list => list
            .split(',')
            .map(|a| a.parse().expect("--sub-addrs host:port,host:port"))
            .collect(),
    };
    // Paced publishing: the k-th publish is due `k / rate` seconds after the first.
    let rate = args.num("rate", 0.0);
    let pids: Vec<u32> = args
        .str("pids", "")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().expect("--pids P,Q"))
        .collect();
    let mut pids_cpu0 = vec![0.0; pids.len()];
    let use_deflate = args.num("deflate", 0.0) != 0.0;
    let json_body = match args.str("body", "pad").as_str() {
        "pad" => false,
        "json" => true,
        b => panic!("--body pad|json, not {b}"),
    };
    let mut request = subscribe_request(server, transport, &topic);
    if use_deflate {
        assert_eq!(transport, Transport::Ws, "--deflate 1 is for WebSocket");
        deflate::offer(&mut request);
    }
    let mut inflate = Inflate::default();
    let mut negotiated = 0u64;
    let mut compressed_frames = 0u64;
    let mut plain_frames = 0u64;
    let mut corrupt = 0u64;
    let mut wire_bytes_at_start: Option<u64> = None;
    let mut frames_at_start = (0u64, 0u64, 0u64);
    let pub_path = match server {
        Server::Pushlab | Server::Node => format!("/publish?topic={topic}"),
        Server::Nchan => format!("/pub?id={topic}"),
    };

    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let mut subs: Vec<Sub> = (0..n)
        .map(|_| Sub {
            io: None,
            phase: Phase::Waiting,
            ws: WsReader::default(),
            last_seq: 0,
            parked: false,
        })
        .collect();
    // Publisher `j` has token `n + j`.
    let n_pub = args.num("publishers", 1.0).max(1.0) as usize;
    // Connected once every subscriber is: a connection that says nothing
    // for long is rightly closed by the server (pushlab: 408 after
    // --head-timeout), and setting up 10,000 subscribers takes a while.
    let mut publishers: Vec<Io> = Vec::new();
    let mut publisher_up = vec![false; n_pub];
    // Publishes are pipelined on the keep-alive connection: the window, not
    // the round trip of each POST, limits how many are in flight.
    let mut pub_outstanding = 0u64;

    let mut scratch = vec![0u8; 256 * 1024];
    let mut next_connect = 0;
    let mut connecting = 0;
    let mut ready = 0; // subscribed (stream open or request parked)
    let mut dead = 0;
    let warmup = args.num("warmup", 0.0) as u64;
    let give_up_us = (args.num("give-up", GIVE_UP_US as f64 / 1e6) * 1e6) as u64;
    let mut c = Counters {
        warmup,
        deliveries: 0,
        dup_or_old: 0,
        first_pub: 0,
        last_delivery: 0,
        latency: Samples::default(),
        latency_by_addr: sub_addrs.iter().map(|_| Samples::default()).collect(),
        counts: Vec::new(),
        pub_times: Vec::new(),
    };
    let setup_deadline = now_us() + 120_000_000;
    let mut all_ready_at: Option<u64> = None;
    let mut end = u64::MAX;
    let mut done_upto = 0u64; // messages complete (or given up on)
    let mut published = 0u64;
    let mut publish_errors = 0u64;
    let mut reissued = 0u64;
    let pid = args.num("pid", 0.0) as u32;
    let mut meter = None;
    let metered;
    loop {
        let now = now_us();
        // Open more connections, a ramp at a time.
        while next_connect < n && connecting < max_connecting {
            let i = next_connect;
            next_connect += 1;
            let mut sock = net::connect(sub_addrs[i % sub_addrs.len()], i + 1).expect("connect");
            poll.registry()
                .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
                .expect("register");
            subs[i].io = Some(Io::new(sock));
            subs[i].phase = Phase::Connecting;
            connecting += 1;
        }
        if all_ready_at.is_none() && (ready + dead == n || now > setup_deadline) {
            all_ready_at = Some(now);
        }
        let publishing_from = all_ready_at.map(|t| t + (settle * 1e6) as u64);
        // Connect 100 ms before the first publish.
        if publishing_from.is_some_and(|t| now + 100_000 >= t) && publishers.is_empty() {
            for j in 0..n_pub {
                let mut io = Io::new(net::connect(addr, 0).expect("connect publisher"));
                poll.registry()
                    .register(
                        &mut io.sock,
                        Token(n + j),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .expect("register");
                publishers.push(io);
            }
        }
        // Advance the completed prefix.
        let alive = (ready - dead.min(ready)) as u32;
        while done_upto < published {
            let i = done_upto as usize;
            let give_up = if done_upto < warmup {
                WARMUP_GIVE_UP_US
            } else {
                give_up_us
            };
            if c.counts[i] >= alive || now - c.pub_times[i] > give_up {
                done_upto += 1;
            } else {
                break;
            }
        }
        // The measured phase starts once the warm-up messages (if any) have
        // reached every subscriber.
        if end == u64::MAX
            && publishing_from.is_some_and(|t| now >= t)
            && published >= warmup
            && done_upto >= warmup
            && (warmup == 0 || publisher_up.iter().all(|&up| up))
        {
            // The server's CPU time and syscalls count from here.
            meter = net::ServerMeter::start(pid);
            for (cpu0, &p) in pids_cpu0.iter_mut().zip(&pids) {
                *cpu0 = net::cpu_seconds(p);
            }
            wire_bytes_at_start = Some(subs.iter().flat_map(|s| &s.io).map(|io| io.bytes_in).sum());
            frames_at_start = (compressed_frames, plain_frames, corrupt);
            end = now_us() + (duration * 1e6) as u64;
        }
        let measuring = end != u64::MAX;
        let in_flight = if measuring { window } else { 1 };
        // Up to one publish per publishing connection per turn: with K
        // connections, what the window allows leaves together.
        for _ in 0..n_pub {
            let paced = (published - warmup.min(published)) as f64 * 1e6 / rate;
            let may_publish = publishing_from.is_some_and(|t| now >= t)
                && now < end
                && (measuring || published < warmup)
                && published < max_messages + warmup
                && publisher_up.iter().all(|&up| up)
                && publishers[published as usize % n_pub].is_flushed()
                && published - done_upto < in_flight
                && (rate <= 0.0 || now >= c.first_pub + paced as u64);
            if !may_publish {
                break;
            }
            let now = now_us();
            let seq = published + 1;
            let body = deflate::body(json_body, seq, now, size);
            let mut req = format!(
                "POST {pub_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&body);
            c.counts.push(0);
            c.pub_times.push(now);
            if c.first_pub == 0 && seq > warmup {
                c.first_pub = now;
            }
            let publisher = &mut publishers[published as usize % n_pub];
            published = seq;
            pub_outstanding += 1;
            publisher.send(&req).expect("publish");
        }
        let finished = published > warmup
            && (now >= end || published >= max_messages + warmup)
            && (done_upto == published || now > c.pub_times[published as usize - 1] + give_up_us);
        if finished {
            metered = meter.take().map_or((0.0, None), net::ServerMeter::stop);
            for (cpu0, &p) in pids_cpu0.iter_mut().zip(&pids) {
                *cpu0 = net::cpu_seconds(p) - *cpu0;
            }
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(1)))
            .expect("poll");
        let now = now_us();
        for ev in events.iter() {
            if ev.token().0 >= n {
                let j = ev.token().0 - n;
                let Some(publisher) = publishers.get_mut(j) else {
                    continue;
                };
                if ev.is_writable() {
                    publisher_up[j] = publisher.sock.peer_addr().is_ok();
                    assert!(publisher_up[j], "the publisher could not connect");
                    publisher.flush().expect("publisher write");
                }
                if ev.is_readable() {
                    let closed = publisher.fill(&mut scratch) == Read_::Closed;
                    while let Some((head, len)) = net::whole_response(publisher.unparsed()) {
                        if !(200..300).contains(&head.status) {
                            if publish_errors == 0 {
                                let text = String::from_utf8_lossy(&publisher.unparsed()[..len]);
                                eprintln!("publish refused: {}", text.trim_end());
                            }
                            publish_errors += 1;
                        }
                        publisher.consume(len);
                        pub_outstanding -= 1;
                    }
                    assert!(!closed, "the server closed the publisher's connection");
                }
                continue;
            }
            let i = ev.token().0;
            let sub = &mut subs[i];
            let Some(io) = sub.io.as_mut() else { continue };
            if sub.phase == Phase::Dead {
                continue;
            }
            if ev.is_writable() {
                if sub.phase == Phase::Connecting {
                    connecting -= 1;
                    if io.sock.peer_addr().is_err() {
                        sub.phase = Phase::Dead;
                        dead += 1;
                        continue;
                    }
                    sub.phase = Phase::Head;
                    let _ = io.send(&request);
                }
                if io.flush().is_err() {
                    sub.phase = Phase::Dead;
                    dead += 1;
                    continue;
                }
                if transport == Transport::LongPoll && !sub.parked && io.is_flushed() {
                    sub.parked = true;
                    ready += 1;
                }
            }
            if !(ev.is_readable() || ev.is_read_closed()) {
                continue;
            }
            let closed = io.fill(&mut scratch) == Read_::Closed;
            match transport {
                Transport::Sse | Transport::Ws => {
                    if sub.phase == Phase::Head {
                        if let Some(head) = net::parse_response_head(io.unparsed()) {
                            let ok = if transport == Transport::Ws { 101 } else { 200 };
                            assert_eq!(head.status, ok, "subscribe refused");
                            if use_deflate {
                                let agreed = deflate::agreed(head.extensions.as_deref());
                                if agreed.clone().unwrap_or_else(|e| panic!("{e}")) {
                                    negotiated += 1;
                                }
                            }
                            io.consume(head.head_len);
                            sub.phase = Phase::Open;
                            ready += 1;
                        }
                    }
                    if sub.phase == Phase::Open {
                        let Sub { io, ws, .. } = sub;
                        let io = io.as_mut().expect("connected");
                        let mut found: [(u64, u64); 64] = [(0, 0); 64];
                        let mut k = 0;
                        let mut overflow = Vec::new();
                        let mut on = |seq, at| {
                            if k < found.len() {
                                found[k] = (seq, at);
                                k += 1;
                            } else {
                                overflow.push((seq, at));
                            }
                        };
                        let used = if transport == Transport::Sse {
                            net::sse_blocks(io.unparsed(), |block| {
                                net::for_each_marker(block, &mut on)
                            })
                        } else {
                            ws.parse(io.unparsed(), 1 << 20, |h, payload| {
                                let Some(p) = payload else { return };
                                if !matches!(h.opcode, Opcode::Data(_)) {
                                    return;
                                }
                                let message = if h.rsv1 {
                                    compressed_frames += 1;
                                    if !inflate.message(p, 1 << 20) {
                                        corrupt += 1;
                                        return;
                                    }
                                    &inflate.out[..]
                                } else {
                                    plain_frames += 1;
                                    p
                                };
                                // Every message is checked against what
                                // was published.
                                let mut marks = 0;
                                net::for_each_marker(message, |seq, at| {
                                    marks += 1;
                                    let published = deflate::body(json_body, seq, at, size);
                                    if marks == 1 && deflate::carries(message, &published) {
                                        on(seq, at);
                                    } else {
                                        corrupt += 1;
                                    }
                                });
                                if marks == 0 {
                                    corrupt += 1;
                                }
                            })
                        };
                        io.consume(used);
                        for &(seq, at) in found[..k].iter().chain(&overflow) {
                            c.deliver(sub, i % sub_addrs.len(), seq, at, now);
                        }
                    }
                }
                Transport::LongPoll => {
                    let mut found = Vec::new();
                    let mut reqs = Vec::new();
                    while let Some((head, len)) = net::whole_response(io.unparsed()) {
                        let body = &io.unparsed()[head.head_len..len];
                        net::for_each_marker(body, |seq, at| found.push((seq, at)));
                        if reissue {
                            reqs.push(next_long_poll(server, &topic, &head, body));
                        }
                        io.consume(len);
                    }
                    for req in &reqs {
                        if io.send(req).is_err() {
                            sub.phase = Phase::Dead;
                            dead += 1;
                            break;
                        }
                        reissued += 1;
                    }
                    for (seq, at) in found {
                        c.deliver(sub, i % sub_addrs.len(), seq, at, now);
                    }
                }
            }
            if closed && sub.phase != Phase::Dead {
                sub.phase = Phase::Dead;
                dead += 1;
            }
        }
    }
    let wire_bytes = subs
        .iter()
        .flat_map(|s| &s.io)
        .map(|io| io.bytes_in)
        .sum::<u64>()
        - wire_bytes_at_start.unwrap_or(0);
    let body_bytes = deflate::body(json_body, 1, 1_000_000, size).len();
    let secs = (c.last_delivery.max(c.first_pub + 1) - c.first_pub) as f64 / 1e6;
    let expected = (published - warmup.min(published)) * ready as u64;
    let compressed_frames = compressed_frames - frames_at_start.0;
    let plain_frames = plain_frames - frames_at_start.1;
    let corrupt = corrupt - frames_at_start.2;
    let lost = expected.saturating_sub(c.deliveries);
    let last_us = c.last_delivery.saturating_sub(c.first_pub);
    let (p50, p99, max) = c.latency.summary();
    let name = match transport {
        Transport::Sse => "sse",
        Transport::Ws => "ws",
        Transport::LongPoll => "longpoll",
    };
    let mut extra = Vec::new();
    if rate > 0.0 {
        extra.push(("rate".to_string(), format!("{rate}")));
    }
    if n_pub > 1 {
        extra.push(("publishers".to_string(), n_pub.to_string()));
    }
    if sub_addrs.len() > 1 {
        for (k, samples) in c.latency_by_addr.iter_mut().enumerate() {
            let n = samples.0.len();
            let (p50, p99, max) = samples.summary();
            extra.push((format!("deliveries_{k}"), n.to_string()));
            extra.push((format!("p50_us_{k}"), p50.to_string()));
            extra.push((format!("p99_us_{k}"), p99.to_string()));
            extra.push((format!("max_us_{k}"), max.to_string()));
        }
    }
    for (k, cpu) in pids_cpu0.iter().enumerate() {
        extra.push((format!("cpu_s_{k}"), format!("{cpu:.3}")));
    }
    let mut pairs = vec![
        ("mode", "fanout".into()),
        ("label", args.str("label", "")),
        ("server", format!("{server:?}").to_lowercase()),
        ("transport", name.into()),
        ("subs", n.to_string()),
        ("ready", ready.to_string()),
        ("size", size.to_string()),
        ("body", if json_body { "json" } else { "pad" }.into()),
        ("body_bytes", body_bytes.to_string()),
        ("deflate", u8::from(use_deflate).to_string()),
        ("negotiated", negotiated.to_string()),
        ("compressed_frames", compressed_frames.to_string()),
        ("plain_frames", plain_frames.to_string()),
        ("corrupt", corrupt.to_string()),
        ("wire_bytes", wire_bytes.to_string()),
        (
            "wire_bytes_per_delivery",
            format!("{:.1}", wire_bytes as f64 / c.deliveries.max(1) as f64),
        ),
        ("window", window.to_string()),
        ("warmup", warmup.to_string()),
        ("published", published.to_string()),
        ("publish_errors", publish_errors.to_string()),
        ("publish_unanswered", pub_outstanding.to_string()),
        ("deliveries", c.deliveries.to_string()),
        ("seconds", format!("{secs:.3}")),
        (
            "deliveries_per_s",
            format!("{:.0}", c.deliveries as f64 / secs),
        ),
        ("p50_us", p50.to_string()),
        ("p99_us", p99.to_string()),
        ("max_us", max.to_string()),
        ("last_us", last_us.to_string()),
        ("lost", lost.to_string()),
        ("duplicates", c.dup_or_old.to_string()),
        ("disconnects", dead.to_string()),
        ("requests_reissued", reissued.to_string()),
        ("server_cpu_s", format!("{:.4}", metered.0)),
        (
            "server_syscalls",
            metered.1.map_or("-1".into(), |n: u64| n.to_string()),
        ),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.as_str(), v.clone())));
    json(&pairs)
}

//! Publish throughput: `--conns` keep-alive connections each keep `--depth`
//! `POST /publish` requests of `--size` bytes in flight (HTTP/1.1
//! pipelining) for `--duration` seconds; reports answered publishes per
//! second and the time from sending a publish to reading its `200`.
//!
//! With `--data-dir` on the server, the answer comes once the record is on
//! disk, so the latency includes the group commit's `fdatasync`.

use std::collections::VecDeque;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};

use crate::net::{self, now_us, Io, Read_, Samples};
use crate::{json, Args};

struct Conn {
    io: Io,
    open: bool,
    dead: bool,
    sent_at: VecDeque<u64>,
}

pub fn run(args: &Args) -> String {
    let addr = args.addr();
    let n = args.num("conns", 64.0) as usize;
    let size = args.num("size", 100.0) as usize;
    let depth = args.num("depth", 1.0) as usize;
    let duration = args.num("duration", 10.0);
    let topics = args.num("topics", 1.0).max(1.0) as usize;
    let pid = args.num("pid", 0.0) as u32;
    let host = addr.to_string();
    // One request per connection's topic, `depth` copies back to back.
    let requests: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut r = format!(
                "POST /publish?topic=bench{} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n",
                i % topics
            )
            .into_bytes();
            r.extend(std::iter::repeat_n(b'p', size));
            r
        })
        .collect();

    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    for i in 0..n {
        let mut sock = net::connect(addr, i).expect("connect");
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .expect("register");
        conns.push(Conn {
            io: Io::new(sock),
            open: false,
            dead: false,
            sent_at: VecDeque::new(),
        });
    }
    let mut scratch = vec![0u8; 256 * 1024];
    let (mut open, mut dead) = (0, 0);
    let setup_deadline = now_us() + 30_000_000;
    let (mut start, mut end) = (0u64, u64::MAX);
    let mut meter = None;
    let mut answered = 0u64;
    let mut refused = 0u64;
    let mut latency = Samples::default();
    loop {
        let now = now_us();
        if start == 0 && (open + dead == n || now > setup_deadline) {
            meter = net::ServerMeter::start(pid);
            start = now_us();
            end = start + (duration * 1e6) as u64;
            for (i, c) in conns.iter_mut().enumerate().filter(|(_, c)| c.open) {
                for _ in 0..depth {
                    c.sent_at.push_back(start);
                    if c.io.send(&requests[i]).is_err() {
                        c.dead = true;
                    }
                }
            }
        }
        if start > 0 && now >= end {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(5)))
            .expect("poll");
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            if c.dead {
                continue;
            }
            if ev.is_writable() {
                if !c.open {
                    if c.io.sock.peer_addr().is_err() {
                        c.dead = true;
                        dead += 1;
                        continue;
                    }
                    c.open = true;
                    open += 1;
                }
                if c.io.flush().is_err() {
                    c.dead = true;
                    dead += 1;
                    continue;
                }
            }
            if !(ev.is_readable() || ev.is_read_closed()) {
                continue;
            }
            if c.io.fill(&mut scratch) == Read_::Closed {
                c.dead = true;
                dead += 1;
                continue;
            }
            let now = now_us();
            let mut done = 0;
            while let Some((head, len)) = net::whole_response(c.io.unparsed()) {
                if head.status == 200 {
                    answered += 1;
                } else {
                    refused += 1;
                }
                if let Some(at) = c.sent_at.pop_front() {
                    latency.add(now - at);
                }
                c.io.consume(len);
                done += 1;
            }
            if start > 0 && now < end {
                for _ in 0..done {
                    c.sent_at.push_back(now);
                    if c.io.send(&requests[i]).is_err() {
                        c.dead = true;
                    }
                }
            }
        }
    }
    let (cpu, _) = meter.map_or((0.0, None), net::ServerMeter::stop);
    let secs = (end - start) as f64 / 1e6;
    let (p50, p99, max) = latency.summary();
    json(&[
        ("mode", "publish".into()),
        ("label", args.str("label", "")),
        ("conns", n.to_string()),
        ("open", open.to_string()),
        ("depth", depth.to_string()),
        ("size", size.to_string()),
        ("seconds", format!("{secs:.2}")),
        ("answered", answered.to_string()),
        ("refused", refused.to_string()),
        ("publishes_per_s", format!("{:.0}", answered as f64 / secs)),
        ("p50_us", p50.to_string()),
        ("p99_us", p99.to_string()),
        ("max_us", max.to_string()),
        ("dead", dead.to_string()),
        ("server_cpu_s", format!("{cpu:.4}")),
    ])
}

//! WebSocket echo: `--conns` connections each keep `--depth` masked text
//! messages of `--size` bytes in flight for `--duration` seconds; reports
//! echoed messages per second and the round-trip time.
//!
//! The frame is masked once, with a fixed key, and resent as is: the load
//! generator's cost per message is (a share of) one write and the header
//! decode of the echo, so that the server, not the client, is what is
//! measured. Whatever echoes one read brings back is answered with as many
//! new messages in one write; with `--depth 1` that is one message per
//! round trip, with a larger depth the client pipelines.

use std::collections::VecDeque;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use pushlab::wire::websocket::{encode_masked_frame, DataOpcode, Opcode};

use crate::net::{self, now_us, Io, Read_, Samples, WsReader};
use crate::{json, Args};

#[derive(PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshake,
    Open,
    Dead,
}

struct Conn {
    io: Io,
    phase: Phase,
    ws: WsReader,
    sent_at: VecDeque<u64>,
}

pub fn run(args: &Args) -> String {
    let addr = args.addr();
    let path = args.str("path", "/echo");
    let n = args.num("conns", 100.0) as usize;
    let size = args.num("size", 16.0) as usize;
    let depth = args.num("depth", 1.0) as usize;
    let duration = args.num("duration", 10.0);
    let payload = vec![b'a'; size];
    let mut frame = Vec::new();
    let text = Opcode::Data(DataOpcode::Text);
    encode_masked_frame(text, true, [0x37, 0xfa, 0x21, 0x3d], &payload, &mut frame);
    let upgrade = net::ws_upgrade(&path);
    // `depth` copies back to back: the most one connection ever sends at once.
    let frames = frame.repeat(depth);
    let pid = args.num("pid", 0.0) as u32;
    let mut meter = None;

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
            phase: Phase::Connecting,
            ws: WsReader::default(),
            sent_at: VecDeque::new(),
        });
    }
    let mut scratch = vec![0u8; 256 * 1024];
    let mut open = 0;
    let mut dead = 0;
    let setup_deadline = now_us() + 30_000_000;
    let mut start = 0u64;
    let mut end = u64::MAX;
    let mut echoed = 0u64;
    let mut bytes = 0u64;
    let mut rtt = Samples::default();
    loop {
        let now = now_us();
        if start == 0 && (open + dead == n || now > setup_deadline) {
            // Every connection is open: start the clock and the traffic.
            meter = net::ServerMeter::start(pid);
            start = now_us();
            end = start + (duration * 1e6) as u64;
            for c in conns.iter_mut().filter(|c| c.phase == Phase::Open) {
                c.sent_at.extend(std::iter::repeat_n(start, depth));
                if c.io.send(&frames[..depth * frame.len()]).is_err() {
                    c.phase = Phase::Dead;
                }
            }
        }
        if start > 0 && now >= end {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(5)))
            .expect("poll");
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.phase == Phase::Dead {
                continue;
            }
            if ev.is_writable() {
                if c.phase == Phase::Connecting {
                    if c.io.sock.peer_addr().is_err() {
                        c.phase = Phase::Dead;
                        dead += 1;
                        continue;
                    }
                    c.phase = Phase::Handshake;
                    let _ = c.io.send(&upgrade);
                }
                if c.io.flush().is_err() {
                    c.phase = Phase::Dead;
                    dead += 1;
                    continue;
                }
            }
            if !(ev.is_readable() || ev.is_read_closed()) {
                continue;
            }
            if c.io.fill(&mut scratch) == Read_::Closed {
                c.phase = Phase::Dead;
                dead += 1;
                continue;
            }
            if c.phase == Phase::Handshake {
                let Some(head) = net::parse_response_head(c.io.unparsed()) else {
                    continue;
                };
                assert_eq!(head.status, 101, "the echo server refused the upgrade");
                c.io.consume(head.head_len);
                c.phase = Phase::Open;
                open += 1;
            }
            if c.phase != Phase::Open {
                continue;
            }
            let now = now_us();
            let mut done = 0usize;
            let Conn {
                io, ws, sent_at, ..
            } = c;
            let used = ws.parse(io.unparsed(), 0, |h, _| {
                if h.opcode.is_control() {
                    return;
                }
                done += 1;
                bytes += h.payload_len;
                if let Some(at) = sent_at.pop_front() {
                    rtt.add(now - at);
                }
            });
            io.consume(used);
            if start > 0 && now < end && done > 0 {
                echoed += done as u64;
                // As many new messages as came back, in one write.
                sent_at.extend(std::iter::repeat_n(now, done));
                if io.send(&frames[..done * frame.len()]).is_err() {
                    c.phase = Phase::Dead;
                    dead += 1;
                }
            }
        }
    }
    let (cpu, syscalls) = meter.map_or((0.0, None), net::ServerMeter::stop);
    let secs = (end - start) as f64 / 1e6;
    let (p50, p99, max) = rtt.summary();
    json(&[
        ("mode", "echo".into()),
        ("label", args.str("label", "")),
        ("conns", n.to_string()),
        ("open", open.to_string()),
        ("size", size.to_string()),
        ("depth", depth.to_string()),
        ("seconds", format!("{secs:.2}")),
        ("messages", echoed.to_string()),
        ("messages_per_s", format!("{:.0}", echoed as f64 / secs)),
        (
            "mib_per_s",
            format!("{:.1}", bytes as f64 / secs / 1048576.0),
        ),
        ("p50_us", p50.to_string()),
        ("p99_us", p99.to_string()),
        ("max_us", max.to_string()),
        ("dead", dead.to_string()),
        ("server_cpu_s", format!("{cpu:.4}")),
        (
            "server_syscalls",
            syscalls.map_or("-1".into(), |n| n.to_string()),
        ),
    ])
}

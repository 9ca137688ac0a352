//! Idle connections: open `--conns` SSE streams or WebSockets, wait until
//! every one is subscribed, let the server settle, and report how much its
//! resident set (`/proc/PID/status` VmRSS of `--pid`) grew per connection.

use std::time::Duration;

use mio::{Events, Interest, Poll, Token};

use crate::net::{self, now_us, Io, Read_};
use crate::{json, subscribe_request, Args, Transport};

#[derive(PartialEq, Eq)]
enum Phase {
    Waiting,
    Connecting,
    Head,
    Open,
    Dead,
}

pub fn run(args: &Args) -> String {
    let addr = args.addr();
    let server = args.server();
    let transport = args.transport();
    let n = args.num("conns", 10_000.0) as usize;
    let pid = args.num("pid", 0.0) as u32;
    let settle = args.num("settle", 2.0);
    let max_connecting = args.num("ramp", 256.0) as usize;
    let topic = args.str("topic", &format!("idle{}", std::process::id()));
    let mut request = subscribe_request(server, transport, &topic);
    if args.num("deflate", 0.0) > 0.0 && transport == Transport::Ws {
        // Offer permessage-deflate as browsers do (`--deflate 1`).
        let offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
        request.truncate(request.len() - 2);
        request.extend_from_slice(offer);
    }
    let rss_before = net::rss_kib(pid);

    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let mut conns: Vec<(Option<Io>, Phase)> = (0..n).map(|_| (None, Phase::Waiting)).collect();
    let mut scratch = vec![0u8; 64 * 1024];
    let (mut next, mut connecting, mut open, mut dead) = (0, 0, 0, 0);
    let deadline = now_us() + 180_000_000;
    let started = now_us();
    let mut errors = String::new();
    while open + dead < n && now_us() < deadline {
        while next < n && connecting < max_connecting {
            match net::connect(addr, next) {
                Ok(mut sock) => {
                    poll.registry()
                        .register(
                            &mut sock,
                            Token(next),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .expect("register");
                    conns[next] = (Some(Io::new(sock)), Phase::Connecting);
                    connecting += 1;
                }
                Err(e) => {
                    if errors.is_empty() {
                        errors = e.to_string();
                    }
                    conns[next].1 = Phase::Dead;
                    dead += 1;
                }
            }
            next += 1;
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .expect("poll");
        for ev in events.iter() {
            let (io, phase) = &mut conns[ev.token().0];
            let Some(io) = io.as_mut() else { continue };
            if *phase == Phase::Dead {
                continue;
            }
            if ev.is_writable() && *phase == Phase::Connecting {
                if io.sock.peer_addr().is_err() {
                    *phase = Phase::Dead;
                    dead += 1;
                    connecting -= 1;
                    continue;
                }
                *phase = Phase::Head;
                let _ = io.send(&request);
            }
            if ev.is_readable() || ev.is_read_closed() {
                let closed = io.fill(&mut scratch) == Read_::Closed;
                if *phase == Phase::Head {
                    if let Some(head) = net::parse_response_head(io.unparsed()) {
                        connecting -= 1;
                        if head.status == 101 || head.status == 200 {
                            *phase = Phase::Open;
                            open += 1;
                        } else {
                            *phase = Phase::Dead;
                            dead += 1;
                            if errors.is_empty() {
                                errors = format!("status {}", head.status);
                            }
                        }
                    }
                }
                // Idle: whatever the server sends (retry, pings) is dropped.
                io.inbuf = Vec::new();
                io.at = 0;
                if closed && *phase != Phase::Dead {
                    if *phase == Phase::Head {
                        connecting -= 1;
                    } else {
                        open -= 1;
                    }
                    *phase = Phase::Dead;
                    dead += 1;
                }
            }
        }
    }
    let setup_s = (now_us() - started) as f64 / 1e6;
    let settle_until = now_us() + (settle * 1e6) as u64;
    while now_us() < settle_until {
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .expect("poll");
        for ev in events.iter() {
            if let (Some(io), _) = &mut conns[ev.token().0] {
                let _ = io.fill(&mut scratch);
                io.inbuf = Vec::new();
                io.at = 0;
            }
        }
    }
    let rss_after = net::rss_kib(pid);
    let per_conn = (rss_after.saturating_sub(rss_before) * 1024) as f64 / open.max(1) as f64;
    let name = if transport == Transport::Ws {
        "ws"
    } else {
        "sse"
    };
    json(&[
        ("mode", "idle".into()),
        ("label", args.str("label", "")),
        ("server", format!("{server:?}").to_lowercase()),
        ("transport", name.into()),
        ("conns", n.to_string()),
        ("open", open.to_string()),
        ("failed", dead.to_string()),
        ("setup_s", format!("{setup_s:.1}")),
        ("rss_before_kib", rss_before.to_string()),
        ("rss_after_kib", rss_after.to_string()),
        ("bytes_per_conn", format!("{per_conn:.0}")),
        ("first_error", errors),
    ])
}

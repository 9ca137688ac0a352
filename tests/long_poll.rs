//! Long polling over real loopback sockets: immediate answers, holds
//! released by a publish or by their timeout, a thousand parked requests
//! released by one publish, cursors that lose nothing across cycles, and
//! parked clients that hang up.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{raise_fd_limit, read_response, wait_until, Response, TestServer};
use pushlab::config::Config;

fn send(s: &mut TcpStream, path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
}

fn datas(r: &Response) -> Vec<String> {
    r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn answers_at_once_when_something_is_newer_than_the_cursor() {
    let srv = TestServer::default();
    srv.publish("a", "ready");
    let start = Instant::now();
    let r = srv.request("GET", "/long-poll?topic=a&since=0&timeout=30", b"");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(datas(&r), ["ready"]);
    assert_eq!(srv.stats()["transports"]["long_poll"]["holds_started"], 0);
}

#[test]
fn a_held_request_is_released_by_a_publish() {
    let srv = TestServer::default();
    let mut s = srv.connect();
    send(&mut s, "/long-poll?topic=a&timeout=30");
    wait_until("hold", || {
        srv.stats()["transports"]["long_poll"]["holds_active"] == 1
    });
    let published = Instant::now();
    let id = srv.publish("a", "wake");
    let r = read_response(&mut BufReader::new(s));
    let latency = published.elapsed();
    println!("publish → long-poll response latency (incl. publish round trip): {latency:?}");
    assert_eq!(datas(&r), ["wake"]);
    assert_eq!(r.json()["next"], id.as_str());
    let lp = &srv.stats()["transports"]["long_poll"];
    assert_eq!(lp["holds_released_by_message"], 1);
    assert_eq!(lp["holds_active"], 0);
}

#[test]
fn the_timeout_returns_the_empty_body_after_about_timeout() {
    let srv = TestServer::default();
    let start = Instant::now();
    let r = srv.request("GET", "/long-poll?topic=a&timeout=300ms", b"");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(2000), "{took:?}");
    assert_eq!(r.status, 200);
    assert!(datas(&r).is_empty());
    let lp = &srv.stats()["transports"]["long_poll"];
    assert_eq!(lp["holds_released_by_timeout"], 1);
    assert_eq!(lp["empty_responses"], 1);
}

#[test]
fn timeouts_are_capped_and_bad_ones_refused() {
    let srv = TestServer::start(Config {
        long_poll_max: Duration::from_millis(200),
        ..Config::default()
    });
    let start = Instant::now();
    let r = srv.request("GET", "/long-poll?topic=a&timeout=3600", b"");
    assert_eq!(r.status, 200);
    assert!(start.elapsed() < Duration::from_secs(3));
    let r = srv.request("GET", "/long-poll?topic=a&timeout=soon", b"");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("timeout"));
}

#[test]
fn a_request_pipelined_behind_a_held_one_is_answered_after_it() {
    let srv = TestServer::default();
    let mut s = srv.connect();
    s.write_all(b"GET /long-poll?topic=a&timeout=30 HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    wait_until("hold", || {
        srv.stats()["transports"]["long_poll"]["holds_active"] == 1
    });
    srv.publish("a", "first");
    let mut r = BufReader::new(s);
    assert_eq!(datas(&read_response(&mut r)), ["first"]);
    let stats = read_response(&mut r).json();
    assert!(stats["transports"].is_object());
}

#[test]
fn a_parked_client_that_hangs_up_leaves_no_hold_behind() {
    let srv = TestServer::default();
    let mut s = srv.connect();
    send(&mut s, "/long-poll?topic=gone&timeout=60");
    wait_until("hold", || {
        srv.stats()["transports"]["long_poll"]["holds_active"] == 1
    });
    drop(s);
    wait_until("the hold to be dropped", || {
        let lp = &srv.stats()["transports"]["long_poll"];
        lp["holds_active"] == 0 && lp["holds_dropped_by_client"] == 1
    });
    // Publishing afterwards writes to nobody and hurts nothing.
    srv.publish("gone", "x");
    assert_eq!(srv.stats()["transports"]["long_poll"]["sockets_open"], 0);
}

#[test]
fn keep_alive_reuses_the_socket_and_connection_close_does_not() {
    let srv = TestServer::default();
    let s = srv.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for i in 0..3 {
        send(&mut w, "/long-poll?topic=k&timeout=30");
        wait_until("hold", || {
            srv.stats()["transports"]["long_poll"]["holds_active"] == 1
        });
        srv.publish("k", &i.to_string());
        read_response(&mut r);
    }
    for i in 0..3 {
        let mut s = srv.connect();
        s.write_all(
            b"GET /long-poll?topic=k&timeout=30 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        wait_until("hold", || {
            srv.stats()["transports"]["long_poll"]["holds_active"] == 1
        });
        srv.publish("k", &i.to_string());
        let resp = read_response(&mut BufReader::new(s));
        assert_eq!(resp.header("connection"), Some("close"));
    }
    let lp = &srv.stats()["transports"]["long_poll"];
    assert_eq!(lp["requests"], 6);
    assert_eq!(
        lp["sockets_opened"], 4,
        "one reused socket + three fresh ones"
    );
    assert_eq!(lp["requests_on_reused_socket"], 2);
}

/// The `data` numbers, `next` and `missed` of a poll body, by scanning the
/// text (this test reads thousands of bodies; a JSON tree each is too slow
/// in an unoptimised test build).
fn scan_poll_body(body: &str) -> (Vec<u64>, String, u64) {
    let field = |from: &str, name: &str| -> Option<(String, usize)> {
        let key = format!("\"{name}\":");
        let at = from.find(&key)? + key.len();
        let rest = &from[at..];
        let (value, len) = match rest.strip_prefix('"') {
            Some(s) => {
                let end = s.find('"')?;
                (s[..end].to_string(), end + 2)
            }
            None => {
                let end = rest.find([',', '}']).unwrap_or(rest.len());
                (rest[..end].to_string(), end)
            }
        };
        Some((value, at + len))
    };
    let mut data = Vec::new();
    let list_end = body.rfind("],\"next\"").expect("a poll body");
    let mut rest = &body[..list_end];
    while let Some((v, used)) = field(rest, "data") {
        data.push(v.parse().expect("numbered messages"));
        rest = &rest[used..];
    }
    let tail = &body[list_end..];
    let next = field(tail, "next").expect("next").0;
    let missed = field(tail, "missed").expect("missed").0.parse().unwrap();
    (data, next, missed)
}

/// Reads one response from each client, in order.
fn read_all(readers: &mut [BufReader<TcpStream>]) -> Vec<Response> {
    readers.iter_mut().map(read_response).collect()
}

#[test]
fn a_thousand_parked_requests_are_all_released_by_one_publish() {
    raise_fd_limit();
    let n = 1000;
    // Every client comes from 127.0.0.1.
    let srv = TestServer::start(Config {
        max_connections_per_ip: n + 16,
        ..Config::default()
    });
    let mut clients: Vec<TcpStream> = (0..n).map(|_| srv.connect()).collect();
    for c in &mut clients {
        send(c, "/long-poll?topic=crowd&timeout=30");
    }
    wait_until("all parked", || {
        srv.stats()["transports"]["long_poll"]["holds_active"] == n
    });
    let published = Instant::now();
    let id = srv.publish("crowd", "everyone");
    let mut readers: Vec<_> = clients.into_iter().map(BufReader::new).collect();
    let responses = read_all(&mut readers);
    println!(
        "{n} parked long polls: last response read {:?} after the publish",
        published.elapsed()
    );
    for r in &responses {
        assert_eq!(datas(r), ["everyone"]);
        assert_eq!(r.json()["next"], id.as_str());
    }
    // Exactly once: no second response is waiting on any socket.
    for r in &mut readers {
        r.get_ref().set_nonblocking(true).unwrap();
        assert!(r.fill_buf().map(|b| b.is_empty()).unwrap_or(true));
    }
    let lp = &srv.stats()["transports"]["long_poll"];
    assert_eq!(lp["holds_released_by_message"], n);
    assert_eq!(lp["messages_delivered"], n);
}

#[test]
fn cursors_lose_and_duplicate_nothing_across_cycles_while_publishing_continuously() {
    raise_fd_limit();
    let clients: usize = std::env::var("PUSHLAB_LP_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let cycles: usize = std::env::var("PUSHLAB_LP_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let srv = TestServer::start(Config {
        history: 1_000_000,
        max_connections_per_ip: clients + 16,
        ..Config::default()
    });
    let first = srv.publish("stream", "0");
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let s = srv.connect();
        std::thread::spawn(move || {
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            let mut n = 1u64;
            while !stop.load(Ordering::SeqCst) {
                let body = n.to_string();
                let req = format!("POST /publish?topic=stream HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                w.write_all(req.as_bytes()).unwrap();
                assert_eq!(read_response(&mut r).status, 200);
                n += 1;
                // A steady 500 messages/s, whatever the machine's load.
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let mut conns: Vec<BufReader<TcpStream>> = (0..clients)
        .map(|_| BufReader::new(srv.connect()))
        .collect();
    let mut cursors = vec![first.clone(); clients];
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); clients];
    let start = Instant::now();
    for _ in 0..cycles {
        for (c, cursor) in conns.iter_mut().zip(&cursors) {
            send(
                c.get_mut(),
                &format!("/long-poll?topic=stream&since={cursor}&timeout=5"),
            );
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let (data, next, missed) = scan_poll_body(&read_response(c).text());
            assert_eq!(missed, 0);
            seen[i].extend(data);
            cursors[i] = next;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let published = publisher.join().unwrap() - 1;
    println!(
        "{clients} clients × {cycles} long-poll cycles in {:?}; {published} messages published",
        start.elapsed()
    );
    // Collect the tail each client has not seen yet, then compare.
    for (i, c) in conns.iter_mut().enumerate() {
        send(
            c.get_mut(),
            &format!("/long-poll?topic=stream&since={}&timeout=0", cursors[i]),
        );
        seen[i].extend(scan_poll_body(&read_response(c).text()).0);
        let expected: Vec<u64> = (1..=published).collect();
        assert_eq!(seen[i], expected, "client {i} lost or duplicated messages");
    }
}

#[test]
fn bytes_count_under_the_request_they_carry_when_a_socket_serves_two_transports() {
    let srv = TestServer::default();
    let s = srv.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    // One keep-alive socket: a short poll, then a long poll (as a browser
    // does when it hands an idle socket from one fetch to another).
    send(&mut w, "/poll?topic=mix");
    let poll = read_response(&mut r);
    send(&mut w, "/long-poll?topic=mix&timeout=100ms");
    let long = read_response(&mut r);
    let t = &srv.stats()["transports"];
    let wire_len = |resp: &Response| {
        let head: usize = resp
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        (head + resp.body.len()) as u64
    };
    let poll_out = t["poll"]["bytes_out"].as_u64().unwrap();
    let long_out = t["long_poll"]["bytes_out"].as_u64().unwrap();
    assert!(
        poll_out >= wire_len(&poll) && poll_out < wire_len(&poll) + 64,
        "{poll_out}"
    );
    assert!(
        long_out >= wire_len(&long) && long_out < wire_len(&long) + 64,
        "{long_out}"
    );
    // The socket itself counts once, under its first transport.
    assert_eq!(t["poll"]["sockets_opened"], 1);
    assert_eq!(t["long_poll"]["sockets_opened"], 0);
}

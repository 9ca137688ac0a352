//! `GET /trace` over real loopback sockets: restricted whenever publishing
//! is, and showing nothing of what other clients wrote (query strings,
//! unknown paths, error texts, WebSocket close reasons).

mod common;

use std::io::{BufReader, Read, Write};

use common::{read_head, TestServer};
use pushlab::config::Config;
use pushlab::wire::sse::{Decoded, Parser};

/// Opens `/trace` with `auth` (a whole header line or nothing); the status
/// and the reader.
fn open_trace(srv: &TestServer, auth: &str) -> (u16, BufReader<std::net::TcpStream>) {
    let mut s = srv.connect();
    let req = format!("GET /trace HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let (status, _) = read_head(&mut r);
    (status, r)
}

#[test]
fn trace_needs_the_publish_token_when_one_is_set() {
    let srv = TestServer::start(Config {
        publish_token: Some("s3cret".into()),
        ..Config::default()
    });
    assert_eq!(open_trace(&srv, "").0, 401);
    assert_eq!(open_trace(&srv, "Authorization: Bearer nope\r\n").0, 401);
    assert_eq!(open_trace(&srv, "Authorization: bearer s3cret\r\n").0, 200);
    let open = TestServer::default();
    assert_eq!(open_trace(&open, "").0, 200, "no token, no restriction");
}

/// A WebSocket client on `/ws` that closes with a reason of its own.
fn ws_close_with_reason(srv: &TestServer, reason: &str) {
    let mut s = srv.connect();
    s.write_all(
        b"GET /ws?topic=room HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_head(&mut r).0, 101);
    // A masked close frame (mask key 0: the payload as is), code 1000.
    let mut payload = vec![0x03, 0xe8];
    payload.extend_from_slice(reason.as_bytes());
    let mut frame = vec![0x88, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(&payload);
    s.write_all(&frame).unwrap();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
}

#[test]
fn trace_shows_paths_and_counts_but_nothing_a_client_wrote() {
    let srv = TestServer::default();
    let (status, mut trace) = open_trace(&srv, "");
    assert_eq!(status, 200);

    srv.request("POST", "/publish?topic=room&note=secret-note", b"hi");
    srv.request("GET", "/poll?topic=room&since=0&x=secret-query", b"");
    srv.request("GET", "/secret-path", b"");
    srv.request("GET", "/poll?topic=secret%0Atopic!", b"");
    srv.request("SECRETMETHOD", "/poll", b"");
    ws_close_with_reason(&srv, "secret-reason");

    let mut parser = Parser::new();
    let mut events = Vec::new();
    let mut buf = [0u8; 8192];
    while !events.iter().any(|d: &String| d.contains("in close 1000")) {
        let n = trace.get_mut().read(&mut buf).unwrap();
        assert!(n > 0, "trace stream ended");
        parser.feed(&buf[..n]);
        while let Ok(Decoded::Event(e)) = parser.next_event() {
            events.push(e.data);
        }
    }
    let all = events.join("\n");
    assert!(!all.to_lowercase().contains("secret"), "{all}");
    let details: Vec<String> = events
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap()["detail"].to_string())
        .collect();
    for want in [
        "\"POST /publish\"",
        "\"GET /poll\"",
        "\"GET ?\"",
        "\"other /poll\"",
        "\"404\"",
        "\"400\"",
    ] {
        assert!(details.iter().any(|d| d == want), "{want} in {details:?}");
    }
}

/// Reads trace events until one's detail contains `until`; every detail.
fn details_until(trace: &mut BufReader<std::net::TcpStream>, until: &str) -> Vec<String> {
    let mut parser = Parser::new();
    let mut details = Vec::new();
    let mut buf = [0u8; 8192];
    while !details.iter().any(|d: &String| d.contains(until)) {
        let n = trace.get_mut().read(&mut buf).unwrap();
        assert!(n > 0, "trace stream ended");
        parser.feed(&buf[..n]);
        while let Ok(Decoded::Event(e)) = parser.next_event() {
            let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            details.push(v["detail"].as_str().unwrap_or_default().to_string());
        }
    }
    details
}

/// A request that says it was forwarded for 203.0.113.9.
fn forwarded_request(srv: &TestServer) {
    let mut s = srv.connect();
    s.write_all(
        b"GET /poll?topic=a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\
          Connection: close\r\n\r\n",
    )
    .unwrap();
    let _ = read_head(&mut BufReader::new(s));
}

#[test]
fn the_client_address_comes_from_the_proxy_only_when_the_proxy_is_trusted() {
    let trusting = TestServer::start(Config {
        trust_proxy: vec!["127.0.0.1".into()],
        ..Config::default()
    });
    let (_, mut trace) = open_trace(&trusting, "");
    forwarded_request(&trusting);
    let details = details_until(&mut trace, "forwarded for");
    assert!(
        details
            .iter()
            .any(|d| d == "from 127.0.0.1 (trusted proxy)"),
        "{details:?}"
    );
    assert!(details.iter().any(|d| d == "forwarded for 203.0.113.9"));

    // Without --trust-proxy the header is the client's word: not shown.
    let plain = TestServer::default();
    let (_, mut trace) = open_trace(&plain, "");
    forwarded_request(&plain);
    let details = details_until(&mut trace, "GET /poll");
    assert!(details.iter().any(|d| d == "from 127.0.0.1"), "{details:?}");
    assert!(
        !details.iter().any(|d| d.contains("203.0.113.9")),
        "{details:?}"
    );
}

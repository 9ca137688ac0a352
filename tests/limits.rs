//! Connection limits over real loopback sockets: the `503` past
//! `--max-connections` and `--max-connections-per-ip` is a well-formed
//! response that a client which already sent its request reads whole (no
//! reset, RFC 9112 §9.6), and behind a trusted proxy (`--trust-proxy`) the
//! per-address limit counts the forwarded client, not the proxy.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;

use common::{read_head, read_response, wait_until, Response, TestServer};
use pushlab::config::Config;

/// A connection that sends `GET /events?topic=t` (forwarded for `client`,
/// if any) and reads the answer's head: a stream that holds its slot, or
/// a refusal.
fn stream(srv: &TestServer, client: Option<&str>) -> (u16, BufReader<TcpStream>) {
    let mut s = srv.connect();
    let xff = client.map_or(String::new(), |c| format!("X-Forwarded-For: {c}\r\n"));
    write!(s, "GET /events?topic=t HTTP/1.1\r\nHost: x\r\n{xff}\r\n").unwrap();
    let mut r = BufReader::new(s);
    let (status, _) = read_head(&mut r);
    (status, r)
}

/// Reads one whole response and then the end of the stream: the refusal
/// is complete, declares its length right, and no reset follows.
fn refused_whole(s: TcpStream) -> Response {
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .expect("EOF after the refusal, not a reset");
    assert!(rest.is_empty(), "bytes after the declared body: {rest:?}");
    resp
}

#[test]
fn clients_over_max_connections_that_already_sent_a_request_read_a_whole_503() {
    let srv = TestServer::start(Config {
        max_connections: 1,
        ..Config::default()
    });
    let (status, _held) = stream(&srv, None);
    assert_eq!(status, 200);
    // Each sends its request before the server accepts it, then reads.
    let clients: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = srv.connect();
            s.write_all(
                b"POST /publish?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            )
            .unwrap();
            s
        })
        .collect();
    for s in clients {
        let r = refused_whole(s);
        assert_eq!(r.status, 503);
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.text().contains("connection limit"), "{}", r.text());
    }
}

#[test]
fn one_address_cannot_hold_more_than_max_connections_per_ip() {
    let srv = TestServer::start(Config {
        max_connections_per_ip: 2,
        ..Config::default()
    });
    let (a, _a) = stream(&srv, None);
    let (b, b_conn) = stream(&srv, None);
    assert_eq!((a, b), (200, 200));
    let r = refused_whole(srv.connect());
    assert_eq!(r.status, 503);
    assert!(r.text().contains("from your address"), "{}", r.text());
    // A slot given back is free again.
    drop(b_conn);
    wait_until("the slot to be free", || stream(&srv, None).0 == 200);
    assert!(srv.stats()["connections_refused"].as_u64().unwrap() >= 1);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_is_counted_not_the_proxy() {
    let srv = TestServer::start(Config {
        max_connections_per_ip: 1,
        trust_proxy: vec!["127.0.0.1".into()],
        ..Config::default()
    });
    // Three clients through one proxy address: the proxy itself is not
    // counted, each client is.
    let (a, _a) = stream(&srv, Some("198.51.100.1"));
    let (b, _b) = stream(&srv, Some("198.51.100.2"));
    let (c, _c) = stream(&srv, Some("10.0.0.9, 198.51.100.3"));
    assert_eq!((a, b, c), (200, 200, 200));
    // A second stream of the first client is refused; a spoofed entry
    // before the proxy's own does not help.
    let (again, _) = stream(&srv, Some("198.51.100.1"));
    assert_eq!(again, 503);
    let (spoofed, _) = stream(&srv, Some("198.51.100.9, 198.51.100.2"));
    assert_eq!(spoofed, 503);
}

#[test]
fn forwarded_addresses_from_an_untrusted_peer_are_ignored() {
    let srv = TestServer::start(Config {
        max_connections_per_ip: 1,
        ..Config::default()
    });
    let (a, _a) = stream(&srv, Some("198.51.100.1"));
    assert_eq!(a, 200);
    // Another "client" by its header, the same peer by its socket.
    let r = refused_whole(srv.connect());
    assert_eq!(r.status, 503);
}

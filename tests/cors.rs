//! CORS over real loopback sockets: what a browser on another origin sees
//! when `--allow-origin` lets it use the HTTP endpoints (raw requests with
//! an `Origin` header, as `fetch` and `EventSource` send them).

mod common;

use std::io::{BufReader, Write};

use common::{read_head, read_response, Response, TestServer};
use pushlab::config::Config;

const APP: &str = "http://app.test:3000";

fn server(allow: &[&str]) -> TestServer {
    TestServer::start(Config {
        allow_origins: allow.iter().map(|s| s.to_string()).collect(),
        ..Config::default()
    })
}

/// Sends `head` (without its blank line) and `body` on a new connection.
fn send(server: &TestServer, head: &str, body: &str) -> Response {
    let mut s = server.connect();
    let req = format!("{head}Host: test\r\nConnection: close\r\n\r\n{body}");
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut BufReader::new(s))
}

fn assert_cors(r: &Response, origin: &str) {
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some(origin),
        "{r:?}"
    );
    assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(r.header("Vary"), Some("Origin"));
}

fn assert_no_cors(r: &Response) {
    for (name, _) in &r.headers {
        assert!(!name.starts_with("Access-Control-"), "{r:?}");
        assert_ne!(name, "Vary", "{r:?}");
    }
}

#[test]
fn a_listed_origin_can_publish_and_poll() {
    let server = server(&[APP]);
    let r = send(
        &server,
        &format!("POST /publish?topic=t HTTP/1.1\r\nOrigin: {APP}\r\nContent-Length: 2\r\n"),
        "hi",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_cors(&r, APP);
    for target in [
        "/poll?topic=t&since=0",
        "/long-poll?topic=t&since=0",
        "/stats",
    ] {
        let r = send(
            &server,
            &format!("GET {target} HTTP/1.1\r\nOrigin: {APP}\r\n"),
            "",
        );
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_cors(&r, APP);
    }
    let target = format!("GET /poll?topic=t&since=0 HTTP/1.1\r\nOrigin: {APP}\r\n");
    let r = send(&server, &target, "");
    assert!(r.text().contains("\"data\":\"hi\""), "{}", r.text());
}

/// `--allow-origin '*'`: any origin, `null` included, without credentials
/// (Fetch §3.2.5) — the wildcard, never the origin echoed with
/// `Access-Control-Allow-Credentials`, on answers and preflights alike.
#[test]
fn star_allows_any_origin_without_credentials() {
    let server = server(&["*"]);
    for origin in ["https://a.example", "http://localhost:8000", "null"] {
        let r = send(
            &server,
            &format!("GET /poll?topic=t HTTP/1.1\r\nOrigin: {origin}\r\n"),
            "",
        );
        assert_eq!(r.status, 200);
        assert_wildcard(&r);
        let preflight = format!(
            "OPTIONS /publish?topic=t HTTP/1.1\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: authorization\r\n"
        );
        let r = send(&server, &preflight, "");
        assert_eq!(r.status, 204, "{origin}");
        assert_wildcard(&r);
        assert_eq!(r.header("Access-Control-Allow-Methods"), Some("POST"));
    }
}

/// A star beside named origins: the named ones keep their credentials.
#[test]
fn a_named_origin_beside_a_star_keeps_its_credentials() {
    let server = server(&["*", APP]);
    let r = send(
        &server,
        &format!("GET /poll?topic=t HTTP/1.1\r\nOrigin: {APP}\r\n"),
        "",
    );
    assert_cors(&r, APP);
    let r = send(
        &server,
        "GET /poll?topic=t HTTP/1.1\r\nOrigin: http://other.test\r\n",
        "",
    );
    assert_wildcard(&r);
    assert_eq!(r.header("Vary"), Some("Origin"));
}

fn assert_wildcard(r: &Response) {
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"), "{r:?}");
    assert_eq!(r.header("Access-Control-Allow-Credentials"), None, "{r:?}");
}

#[test]
fn an_origin_not_listed_gets_no_cors_headers() {
    let server = server(&[APP]);
    let r = send(
        &server,
        "GET /poll?topic=t HTTP/1.1\r\nOrigin: http://evil.test\r\n",
        "",
    );
    assert_eq!(r.status, 200);
    assert_no_cors(&r);
    let preflight = "OPTIONS /publish?topic=t HTTP/1.1\r\nOrigin: http://evil.test\r\n\
                     Access-Control-Request-Method: POST\r\n";
    let r = send(&server, preflight, "");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_no_cors(&r);
}

#[test]
fn without_allow_origin_nothing_is_cross_origin() {
    let server = TestServer::default();
    let r = send(
        &server,
        &format!("GET /poll?topic=t HTTP/1.1\r\nOrigin: {APP}\r\n"),
        "",
    );
    assert_eq!(r.status, 200);
    assert_no_cors(&r);
    let preflight = format!(
        "OPTIONS /poll HTTP/1.1\r\nOrigin: {APP}\r\nAccess-Control-Request-Method: GET\r\n"
    );
    let r = send(&server, &preflight, "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert_no_cors(&r);
}

#[test]
fn a_preflight_names_methods_headers_and_max_age() {
    let server = server(&[APP]);
    let preflight = format!(
        "OPTIONS /publish?topic=t HTTP/1.1\r\nOrigin: {APP}\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: authorization, content-type\r\n"
    );
    let r = send(&server, &preflight, "");
    assert_eq!(r.status, 204);
    assert_cors(&r, APP);
    assert_eq!(r.header("Access-Control-Allow-Methods"), Some("POST"));
    let headers = r.header("Access-Control-Allow-Headers").unwrap();
    for h in ["Authorization", "Content-Type", "Last-Event-ID"] {
        assert!(headers.contains(h), "{headers}");
    }
    assert_eq!(r.header("Access-Control-Max-Age"), Some("600"));
    // RFC 9110 §8.6: no Content-Length on a 204.
    assert_eq!(r.header("Content-Length"), None);
    assert!(r.body.is_empty());
}

#[test]
fn a_preflight_then_the_request_on_one_keep_alive_socket() {
    let server = server(&[APP]);
    let mut s = server.connect();
    let req = format!(
        "OPTIONS /events HTTP/1.1\r\nHost: test\r\nOrigin: {APP}\r\n\
         Access-Control-Request-Method: GET\r\n\r\n\
         GET /poll?topic=t HTTP/1.1\r\nHost: test\r\nOrigin: {APP}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let pre = read_response(&mut r);
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("Access-Control-Allow-Methods"), Some("GET"));
    let poll = read_response(&mut r);
    assert_eq!(poll.status, 200);
    assert_cors(&poll, APP);
}

#[test]
fn an_event_stream_head_carries_the_cors_headers() {
    let server = server(&[APP]);
    let mut s = server.connect();
    let req = format!(
        "GET /events?topic=t HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\
         Origin: {APP}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let (status, headers) = read_head(&mut BufReader::new(s));
    let r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/event-stream"));
    assert_cors(&r, APP);
}

#[test]
fn a_400_is_readable_cross_origin() {
    let server = server(&[APP]);
    let r = send(
        &server,
        &format!("GET /events?topic=bad%20topic HTTP/1.1\r\nOrigin: {APP}\r\n"),
        "",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_cors(&r, APP);
    let r = send(
        &server,
        &format!("GET /poll HTTP/1.1\r\nOrigin: {APP}\r\n"),
        "",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_cors(&r, APP);
}

#[test]
fn same_origin_requests_are_untouched() {
    let server = server(&["*", APP]);
    let r = send(&server, "GET /poll?topic=t HTTP/1.1\r\n", "");
    assert_eq!(r.status, 200);
    assert_no_cors(&r);
    let r = send(&server, &format!("GET / HTTP/1.1\r\nOrigin: {APP}\r\n"), "");
    assert_eq!(r.status, 200);
    assert_no_cors(&r);
}

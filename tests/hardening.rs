//! Requests a hostile client sends, over real loopback sockets: error
//! answers to `HEAD` that must stay bodiless (so pipelined responses keep
//! their framing and no forged response can be planted), `Host` fields that
//! must be refused, the `Authorization` scheme in any case, and JSON
//! replies that end their line.

mod common;

use std::io::{BufReader, Read, Write};

use common::{read_head, read_response, read_to_end, TestServer};
use pushlab::config::Config;

/// Sends `raw` on a new connection and reads until the server closes it.
fn exchange(srv: &TestServer, raw: &[u8]) -> String {
    let mut s = srv.connect();
    s.write_all(raw).unwrap();
    String::from_utf8_lossy(&read_to_end(&mut s)).into_owned()
}

/// RFC 9110 §9.3.2: an error answer to `HEAD` is a head only, so the next
/// pipelined response starts right after it.
#[test]
fn error_answers_to_head_have_no_body_and_keep_pipelining_framed() {
    let srv = TestServer::default();
    srv.publish("a", "hello");
    for (first, status) in [
        ("HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("HEAD /publish?topic=a HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("HEAD /poll HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (
            "HEAD /poll?topic=a&since=later HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
    ] {
        let mut s = srv.connect();
        let second = "GET /poll?topic=a&since=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        s.write_all(format!("{first}{second}").as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let (got, headers) = read_head(&mut r);
        assert_eq!(got, status, "{first:?}");
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().unwrap());
        assert!(len.is_some_and(|n| n > 0), "the length a GET would get");
        // The very next bytes are the poll's response.
        let poll = read_response(&mut r);
        assert_eq!(poll.status, 200, "{first:?}");
        assert_eq!(poll.json()["messages"][0]["data"], "hello");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "{first:?}: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

/// A head refused as a whole (here for its two `Host` lines) still says
/// `HEAD`: the `400` has no body.
#[test]
fn a_refused_head_request_gets_a_bodiless_400() {
    let srv = TestServer::default();
    let raw = exchange(&srv, b"HEAD / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert!(raw.ends_with("\r\n\r\n"), "no body after the head: {raw:?}");
}

/// The attack of the hardening issue: a `HEAD` whose decoded topic holds
/// CR LF and a whole response, pipelined before a real poll. The client must
/// read exactly two responses, the second being the real one, and no error
/// body (on `GET` either) may contain a line the client wrote.
#[test]
fn a_decoded_crlf_cannot_plant_a_forged_response() {
    let srv = TestServer::default();
    srv.publish("a", "real");
    let forged = "x%0D%0AHTTP/1.1%20200%20OK%0D%0AContent-Length:%206%0D%0A%0D%0Aforged";
    let raw = exchange(
        &srv,
        format!(
            "HEAD /poll?topic={forged} HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /poll?topic=a&since=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(raw.matches("HTTP/1.1 ").count(), 2, "{raw}");
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert!(!raw.contains("forged"), "{raw}");
    let mut r = BufReader::new(raw.as_bytes());
    read_head(&mut r);
    let poll = read_response(&mut r);
    assert_eq!(poll.json()["messages"][0]["data"], "real");

    // On GET the body says why, with the client's CR LF escaped.
    let get = srv.request("GET", &format!("/poll?topic={forged}"), b"");
    assert_eq!(get.status, 400);
    let body = get.text();
    assert_eq!(body.lines().count(), 1, "one line: {body:?}");
    assert!(!body.contains('\r'), "{body:?}");
    assert!(body.contains("\\u{d}\\u{a}HTTP/1.1 200 OK"), "{body:?}");
}

/// RFC 9112 §3.2: a missing (HTTP/1.1), repeated or invalid `Host` is a 400,
/// and the connection is closed.
#[test]
fn a_missing_repeated_or_invalid_host_is_400() {
    let srv = TestServer::default();
    for raw in [
        "GET /stats HTTP/1.1\r\n\r\n",
        "GET /stats HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /stats HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        "GET /stats HTTP/1.1\r\nHost: a b/c\r\n\r\n",
        "GET /stats HTTP/1.0\r\nHost: a b/c\r\n\r\n",
    ] {
        let answer = exchange(&srv, raw.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400 "), "{raw:?} → {answer}");
        assert!(
            answer.contains("Host"),
            "the body names the field: {answer}"
        );
    }
    let ok = exchange(
        &srv,
        b"GET /stats HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
    );
    assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
}

/// RFC 9110 §11.1: the authentication scheme is case-insensitive.
#[test]
fn the_bearer_scheme_is_accepted_in_any_case() {
    let srv = TestServer::start(Config {
        publish_token: Some("s3cret".into()),
        ..Config::default()
    });
    for (auth, status) in [
        ("bearer s3cret", 200),
        ("BEARER s3cret", 200),
        ("Bearer  s3cret", 200),
        ("bearer s3cre", 401),
        ("bearer s3cret-and-more", 401),
        ("Basic s3cret", 401),
    ] {
        let raw = format!(
            "POST /publish?topic=a HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             Content-Length: 1\r\nConnection: close\r\n\r\nx"
        );
        let answer = exchange(&srv, raw.as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{auth:?} → {answer}"
        );
    }
}

/// A new user's `curl`: every JSON reply ends with a newline, so the shell
/// prompt does not run into it (docs/api.md § JSON bodies).
#[test]
fn json_replies_end_with_a_newline() {
    let srv = TestServer::default();
    let publish = srv.request("POST", "/publish?topic=nl", b"hello");
    let poll = srv.request("GET", "/poll?topic=nl&since=0", b"");
    let empty = srv.request("GET", "/poll?topic=nl", b"");
    let long = srv.request("GET", "/long-poll?topic=nl&since=0&timeout=1", b"");
    let stats = srv.request("GET", "/stats", b"");
    for r in [&publish, &poll, &empty, &long, &stats] {
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(text.ends_with("}\n"), "{text:?}");
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        r.json();
    }
}

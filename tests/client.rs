//! `GET /pushlab.js`: the browser client (client/pushlab.js, docs/client.md)
//! is served from the binary, byte for byte, as JavaScript.

mod common;

use std::io::Write;

use common::{read_to_end, TestServer};

#[test]
fn the_client_library_is_served_as_javascript_byte_for_byte() {
    let srv = TestServer::default();
    let r = srv.request("GET", "/pushlab.js", b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/client/pushlab.js")).unwrap();
    assert_eq!(
        r.body, file,
        "the served client differs from client/pushlab.js"
    );
    assert_eq!(r.header("content-length"), Some(&*file.len().to_string()));
}

#[test]
fn head_of_the_client_library_has_its_length_and_no_body() {
    let srv = TestServer::default();
    let mut s = srv.connect();
    s.write_all(b"HEAD /pushlab.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let raw = String::from_utf8(read_to_end(&mut s)).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let len = std::fs::metadata(concat!(env!("CARGO_MANIFEST_DIR"), "/client/pushlab.js"))
        .unwrap()
        .len();
    assert!(
        head.contains(&format!("Content-Length: {len}\r\n")),
        "{head}"
    );
    assert_eq!(body, "", "HEAD carries no body");
    let r = srv.request("POST", "/pushlab.js", b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

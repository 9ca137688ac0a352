//! RFC 6455 §4.2.1 opening handshake: `validate_request` with fuzzed
//! method, version and headers; `origin_allowed`; `encode_response`.
//!
//! Oracle: accepted with the §4.2.2 accept key of the one key sent, or one
//! `HandshakeError` with the status the docs name.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pushlab::wire::websocket::handshake::{
    accept_key, encode_response, origin_allowed, validate_request, HandshakeError,
};

const NAMES: [&str; 8] = [
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Key",
    "Origin",
    "Host",
    "sec-websocket-key",
    "X-Other",
];

#[derive(Arbitrary, Debug)]
struct Input {
    get: bool,
    http11: bool,
    headers: Vec<(u8, Option<String>, Vec<u8>)>,
    allow: Vec<String>,
}

fuzz_target!(|input: Input| {
    let headers: Vec<(String, Vec<u8>)> = input
        .headers
        .iter()
        .take(32)
        .map(|(i, name, value)| {
            let name = name
                .clone()
                .unwrap_or_else(|| NAMES[usize::from(*i) % NAMES.len()].to_string());
            (name, value.clone())
        })
        .collect();
    let pairs = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
    let method = if input.get { "GET" } else { "POST" };
    match validate_request(method, input.http11, pairs) {
        Ok(hs) => {
            assert!(input.get && input.http11);
            let keys: Vec<&[u8]> = headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
                .map(|(_, v)| v.trim_ascii())
                .collect();
            assert_eq!(keys.len(), 1);
            assert_eq!(hs.accept, accept_key(keys[0]));
            assert_eq!(hs.accept.len(), 28);
            let mut out = Vec::new();
            encode_response(&hs.accept, &mut out);
            let mut h = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut h);
            assert_eq!(resp.parse(&out), Ok(httparse::Status::Complete(out.len())));
            assert_eq!(resp.code, Some(101));
            let _ = origin_allowed(hs.origin.as_deref(), hs.host.as_deref(), &input.allow);
            let _ = origin_allowed(hs.origin.as_deref(), hs.host.as_deref(), &[]);
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 405 | 426), "{e:?}");
            if e == HandshakeError::MethodNotGet {
                assert!(!input.get);
            }
            let _ = (e.to_string(), e.response_header());
        }
    }
    // The origin policy on arbitrary values.
    if let [(_, _, a), (_, _, b), ..] = input.headers.as_slice() {
        let _ = origin_allowed(Some(a), Some(b), &input.allow);
        let _ = origin_allowed(Some(a), Some(b), &[]);
        let _ = origin_allowed(Some(a), None, &[]);
    }
});

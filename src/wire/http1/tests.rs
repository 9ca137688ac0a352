//! Request-head and body vectors from RFC 9112, and property tests: the same
//! bytes split anywhere give the same requests.

use super::*;
use proptest::prelude::*;

fn head_of(raw: &[u8]) -> Result<RequestHead, HeadError> {
    match find_head_end(raw, 0) {
        HeadEnd::Complete(n) => parse_head(&raw[..n]),
        HeadEnd::Incomplete { .. } => panic!("incomplete head"),
    }
}

#[test]
fn the_rfc_9112_example_request_parses() {
    // RFC 9112 §2.1 (the example request line and fields).
    let raw = b"GET /hello.txt HTTP/1.1\r\nUser-Agent: curl/7.64.1\r\nHost: www.example.com\r\nAccept-Language: en, mi\r\n\r\n";
    let h = head_of(raw).unwrap();
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.target, "/hello.txt");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.header("host"), Some(&b"www.example.com"[..]));
    assert_eq!(h.framing, BodyFraming::None);
    assert!(h.keep_alive);
}

#[test]
fn the_end_of_a_head_is_found_with_crlf_or_bare_lf() {
    assert_eq!(
        find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest", 0),
        HeadEnd::Complete(27)
    );
    assert_eq!(
        find_head_end(b"GET / HTTP/1.1\nHost: a\n\nrest", 0),
        HeadEnd::Complete(24)
    );
    assert_eq!(
        find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0),
        HeadEnd::Incomplete { scanned: 25 }
    );
}

#[test]
fn a_terminator_split_across_reads_is_found_when_resuming() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut scanned = 0;
    for end in 1..=raw.len() {
        match find_head_end(&raw[..end], scanned) {
            HeadEnd::Complete(n) => {
                assert_eq!((n, end), (raw.len(), raw.len()));
                return;
            }
            HeadEnd::Incomplete { scanned: s } => scanned = s,
        }
    }
    panic!("never found");
}

#[test]
fn persistence_follows_rfc_9112_section_9_3() {
    let h = head_of(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
    assert!(!h.keep_alive);
    let h = head_of(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(!h.keep_alive);
    let h = head_of(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
    assert!(h.keep_alive);
    let h = head_of(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n").unwrap();
    assert!(!h.keep_alive);
}

#[test]
fn body_framing_is_read_from_content_length_or_chunked() {
    let h = head_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap();
    assert_eq!(h.framing, BodyFraming::ContentLength(5));
    let h =
        head_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
    assert_eq!(h.framing, BodyFraming::ContentLength(5));
    let h = head_of(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    assert_eq!(h.framing, BodyFraming::Chunked);
}

#[test]
fn conflicting_or_unsupported_framing_is_refused_with_its_status() {
    let cases: &[(&[u8], u16)] = &[
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
        (b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400),
        (b"G\0T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ];
    for (raw, status) in cases {
        let err = head_of(raw).unwrap_err();
        assert_eq!(
            err.status(),
            *status,
            "{:?}: {err}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn too_many_headers_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        raw.extend(format!("X-{i}: v\r\n").as_bytes());
    }
    raw.extend(b"\r\n");
    assert_eq!(head_of(&raw).unwrap_err().status(), 431);
}

#[test]
fn expect_100_continue_is_noted_for_http11_only() {
    let h =
        head_of(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
            .unwrap();
    assert!(h.expect_continue);
    let h =
        head_of(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").unwrap();
    assert!(!h.expect_continue);
}

#[test]
fn path_and_query_split_at_the_question_mark() {
    let h = head_of(b"GET /poll?topic=a&since=0 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!((h.path(), h.query()), ("/poll", "topic=a&since=0"));
    let h = head_of(b"GET http://example.com/poll?x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!((h.path(), h.query()), ("/poll", "x"));
}

#[test]
fn a_url_in_the_query_of_an_origin_form_target_is_not_a_scheme() {
    let h = head_of(b"GET /poll?next=http://example.com/x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(h.path(), "/poll");
    assert_eq!(h.query(), "next=http://example.com/x");
}

#[test]
fn header_fields_keep_names_values_and_order() {
    let h =
        head_of(b"GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nx-one: two\r\nEmpty:\r\n\r\n").unwrap();
    let fields: Vec<(&str, &[u8])> = h.headers.iter().collect();
    assert_eq!(
        fields,
        [
            ("Host", &b"a"[..]),
            ("X-One", b"1"),
            ("x-one", b"two"),
            ("Empty", b"")
        ]
    );
    assert_eq!(h.headers.len(), 4);
    assert_eq!(h.header("x-ONE"), Some(&b"1"[..]));
    assert_eq!(
        h.header_values("X-One").collect::<Vec<_>>(),
        [&b"1"[..], b"two"]
    );
}

fn decode_all(
    framing: BodyFraming,
    limit: usize,
    pieces: &[&[u8]],
) -> Result<(Vec<u8>, usize), BodyError> {
    let mut d = BodyDecoder::new(framing, limit)?;
    let mut body = Vec::new();
    let mut used = 0;
    for p in pieces {
        match d.decode(p, &mut body)? {
            BodyStatus::Complete { consumed } => return Ok((body, used + consumed)),
            BodyStatus::Incomplete => used += p.len(),
        }
    }
    panic!("body incomplete")
}

#[test]
fn the_rfc_9112_chunked_example_decodes() {
    // Chunks with an extension and a trailer field.
    let raw = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nNEXT";
    let (body, used) = decode_all(BodyFraming::Chunked, 1024, &[raw]).unwrap();
    assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(&raw[used..], b"NEXT");
}

#[test]
fn bad_chunks_and_large_bodies_are_refused() {
    assert_eq!(
        decode_all(BodyFraming::Chunked, 10, &[b"zz\r\n"])
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        decode_all(BodyFraming::Chunked, 10, &[b"2\r\nabc\r\n"])
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        decode_all(BodyFraming::Chunked, 10, &[b"b\r\n"])
            .unwrap_err()
            .status(),
        413
    );
    assert_eq!(
        decode_all(BodyFraming::Chunked, 10, &[b"6\r\nabcdef\r\n6\r\n"])
            .unwrap_err()
            .status(),
        413
    );
    assert_eq!(
        BodyDecoder::new(BodyFraming::ContentLength(11), 10)
            .unwrap_err()
            .status(),
        413
    );
}

#[test]
fn a_response_head_carries_length_and_connection() {
    let mut out = Vec::new();
    ResponseHead::new(&mut out, 405)
        .header("Allow", "GET, HEAD")
        .finish(3, false);
    assert_eq!(
        out,
        b"HTTP/1.1 405 Method Not Allowed\r\nServer: pushlab\r\nAllow: GET, HEAD\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
    );
}

/// Splits `raw` at the given cut points (sorted, deduplicated, in range).
fn split<'a>(raw: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (raw.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.push(&raw[last..c]);
        last = c;
    }
    out.push(&raw[last..]);
    out
}

/// Parses a stream of pipelined requests fed in pieces, as a session does:
/// the (method, target, body) of each.
fn parse_stream(pieces: &[&[u8]]) -> Vec<(String, String, Vec<u8>)> {
    let mut buf: Vec<u8> = Vec::new();
    let mut scanned = 0;
    let mut out = Vec::new();
    let mut body_state: Option<(RequestHead, BodyDecoder, Vec<u8>)> = None;
    for p in pieces {
        buf.extend_from_slice(p);
        loop {
            if let Some((head, mut dec, mut body)) = body_state.take() {
                match dec.decode(&buf, &mut body).unwrap() {
                    BodyStatus::Complete { consumed } => {
                        buf.drain(..consumed);
                        out.push((head.method.as_str().to_string(), head.target.clone(), body));
                        continue;
                    }
                    BodyStatus::Incomplete => {
                        buf.clear();
                        body_state = Some((head, dec, body));
                        break;
                    }
                }
            }
            match find_head_end(&buf, scanned) {
                HeadEnd::Incomplete { scanned: s } => {
                    scanned = s;
                    break;
                }
                HeadEnd::Complete(n) => {
                    let head = parse_head(&buf[..n]).unwrap();
                    buf.drain(..n);
                    scanned = 0;
                    let dec = BodyDecoder::new(head.framing, 1 << 20).unwrap();
                    body_state = Some((head, dec, Vec::new()));
                }
            }
        }
    }
    if let Some((head, dec, body)) = body_state {
        assert!(dec.is_empty_body(), "unfinished body");
        out.push((head.method.as_str().to_string(), head.target.clone(), body));
    }
    out
}

fn request_strategy() -> impl Strategy<Value = (Vec<u8>, (String, String, Vec<u8>))> {
    (
        "[a-z]{1,8}",
        proptest::collection::vec(any::<u8>(), 0..300),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(path, body, kind, crlf)| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let target = format!("/{path}?topic=t");
            let mut raw = Vec::new();
            match kind {
                0 => {
                    raw.extend(format!("GET {target} HTTP/1.1{nl}Host: x{nl}{nl}").as_bytes());
                    (raw, ("GET".into(), target, Vec::new()))
                }
                1 => {
                    raw.extend(format!("POST {target} HTTP/1.1{nl}Host: x{nl}Content-Length: {}{nl}{nl}", body.len()).as_bytes());
                    raw.extend(&body);
                    (raw, ("POST".into(), target, body))
                }
                _ => {
                    raw.extend(format!("POST {target} HTTP/1.1{nl}Host: x{nl}Transfer-Encoding: chunked{nl}{nl}").as_bytes());
                    for chunk in body.chunks(7) {
                        raw.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
                        raw.extend(chunk);
                        raw.extend(b"\r\n");
                    }
                    raw.extend(b"0\r\n\r\n");
                    (raw, ("POST".into(), target, body))
                }
            }
        })
}

proptest! {
    /// Pipelined requests split at any byte positions parse to the same
    /// requests as the unsplit stream.
    #[test]
    fn pipelined_requests_parse_the_same_however_they_are_split(
        reqs in proptest::collection::vec(request_strategy(), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut raw = Vec::new();
        let mut expected = Vec::new();
        for (bytes, req) in reqs {
            raw.extend(bytes);
            expected.push(req);
        }
        prop_assert_eq!(&parse_stream(&[&raw]), &expected);
        prop_assert_eq!(&parse_stream(&split(&raw, &cuts)), &expected);
        let bytewise: Vec<&[u8]> = raw.chunks(1).collect();
        prop_assert_eq!(&parse_stream(&bytewise), &expected);
    }

    /// No byte sequence makes the head parser panic; it either finds a head
    /// or asks for more, and a found head parses or fails with a status.
    #[test]
    fn arbitrary_bytes_never_panic_the_head_parser(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let HeadEnd::Complete(n) = find_head_end(&raw, 0) {
            if let Err(e) = parse_head(&raw[..n]) {
                prop_assert!([400, 417, 431, 501].contains(&e.status()));
            }
        }
    }
}

/// RFC 9112 §3.2: no Host in HTTP/1.1, two Host lines, or a Host value that
/// is not `uri-host [ ":" port ]` → 400, in either version.
#[test]
fn host_must_be_single_and_valid() {
    let refused: &[(&[u8], HeadError)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", HeadError::MissingHost),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            HeadError::DuplicateHost,
        ),
        (
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            HeadError::DuplicateHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n",
            HeadError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            HeadError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
            HeadError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n",
            HeadError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a:http\r\n\r\n",
            HeadError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
            HeadError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n",
            HeadError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n",
            HeadError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.0\r\nHost: a\"b\r\n\r\n",
            HeadError::InvalidHost,
        ),
    ];
    for (raw, want) in refused {
        let err = head_of(raw).unwrap_err();
        assert_eq!(&err, want, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(err.status(), 400);
    }
    for host in [
        "a",
        "example.com:8080",
        "127.0.0.1:0",
        "[::1]:8080",
        "[::1]",
        "xn--bcher-kva.example",
        "a%20b",
        "",
        "host:",
    ] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert!(head_of(raw.as_bytes()).is_ok(), "Host: {host}");
    }
    assert!(
        head_of(b"GET / HTTP/1.0\r\n\r\n").is_ok(),
        "HTTP/1.0 may omit Host"
    );
}

//! RFC 9112 request heads: `find_head_end` + `parse_head`.
//!
//! Oracle: accepted, or rejected with a `HeadError` whose status is one the
//! docs name; the end of the head is found at the same place however the
//! bytes arrive; an accepted head keeps its invariants and, written out
//! again, parses to the same head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushlab::config::MAX_HEADERS;
use pushlab::wire::http1::{find_head_end, parse_head, BodyFraming, HeadEnd, Version};
use pushlab_fuzz::{control, split};

fuzz_target!(|data: &[u8]| {
    let (seed, input) = control(data);
    let whole = find_head_end(input, 0);

    // Chunking invariance: scanning as the bytes arrive finds the same end.
    let mut buf = Vec::new();
    let mut scanned = 0;
    let mut found = HeadEnd::Incomplete {
        scanned: input.len(),
    };
    for piece in split(seed, input) {
        buf.extend_from_slice(piece);
        match find_head_end(&buf, scanned) {
            HeadEnd::Incomplete { scanned: s } => {
                assert!(s <= buf.len());
                scanned = s;
            }
            complete => {
                found = complete;
                break;
            }
        }
    }
    assert_eq!(found, whole, "head end depends on how the bytes arrived");

    let HeadEnd::Complete(len) = whole else {
        return;
    };
    assert!(len <= input.len());
    let head = match parse_head(&input[..len]) {
        Ok(head) => head,
        Err(e) => {
            assert!(matches!(e.status(), 400 | 417 | 431 | 501), "{e:?}");
            let _ = e.to_string();
            return;
        }
    };
    assert!(!head.target.is_empty());
    let fields: Vec<(&str, &[u8])> = head.header_pairs().collect();
    assert!(fields.len() <= MAX_HEADERS);
    match head.framing {
        BodyFraming::Chunked => {
            assert_eq!(head.version, Version::Http11);
            assert!(head.header("content-length").is_none());
        }
        BodyFraming::ContentLength(n) => {
            assert!(head.header("transfer-encoding").is_none());
            assert!(head
                .header_values("content-length")
                .flat_map(|v| v.split(|&b| b == b','))
                .all(|v| std::str::from_utf8(v.trim_ascii())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    == Some(n)));
        }
        BodyFraming::None => {
            assert!(head.header("transfer-encoding").is_none());
        }
    }
    if head.expect_continue {
        assert_eq!(head.version, Version::Http11);
    }
    if head.version == Version::Http11 {
        assert!(head.header("host").is_some());
    }
    let _ = (head.path(), head.query());
    assert!(head.path().len() <= head.target.len());

    // Written out again, the head parses to the same thing.
    let mut again = Vec::new();
    let v = if head.version == Version::Http11 {
        1
    } else {
        0
    };
    again.extend_from_slice(
        format!("{} {} HTTP/1.{v}\r\n", head.method.as_str(), head.target).as_bytes(),
    );
    for (name, value) in &fields {
        again.extend_from_slice(name.as_bytes());
        again.extend_from_slice(b": ");
        again.extend_from_slice(value);
        again.extend_from_slice(b"\r\n");
    }
    again.extend_from_slice(b"\r\n");
    assert_eq!(find_head_end(&again, 0), HeadEnd::Complete(again.len()));
    let reparsed = parse_head(&again).expect("a head written from a parsed head parses");
    assert_eq!(reparsed.method, head.method);
    assert_eq!(reparsed.target, head.target);
    assert_eq!(reparsed.version, head.version);
    assert_eq!(reparsed.header_pairs().collect::<Vec<_>>(), fields);
    assert_eq!(reparsed.framing, head.framing);
    assert_eq!(reparsed.keep_alive, head.keep_alive);
    assert_eq!(reparsed.expect_continue, head.expect_continue);
});

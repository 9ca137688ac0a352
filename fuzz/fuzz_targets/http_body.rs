//! RFC 9112 §6–7 request bodies: `BodyDecoder` for `Content-Length` and
//! `chunked`.
//!
//! Oracle: the same body, the same bytes consumed and the same error
//! however the input is split; never more than the limit buffered; a
//! decoded chunked body, encoded again, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushlab::wire::http1::{BodyDecoder, BodyError, BodyFraming, BodyStatus};
use pushlab_fuzz::split;

/// Feeds `pieces` in order; returns the result and bytes consumed in total.
fn run(
    framing: BodyFraming,
    limit: usize,
    pieces: &[&[u8]],
) -> (Result<usize, BodyError>, Vec<u8>, bool) {
    let mut decoder = match BodyDecoder::new(framing, limit) {
        Ok(d) => d,
        Err(e) => return (Err(e), Vec::new(), false),
    };
    let mut body = Vec::new();
    let mut offset = 0;
    for piece in pieces {
        let r = decoder.decode(piece, &mut body);
        assert!(
            body.len() <= limit,
            "{} bytes buffered over a limit of {limit}",
            body.len()
        );
        match r {
            Ok(BodyStatus::Complete { consumed }) => {
                assert!(consumed <= piece.len());
                return (Ok(offset + consumed), body, true);
            }
            Ok(BodyStatus::Incomplete) => offset += piece.len(),
            Err(e) => {
                assert!(matches!(e.status(), 400 | 413));
                return (Err(e), body, false);
            }
        }
    }
    // An empty body is complete without any input.
    if decoder.is_empty_body() {
        return (Ok(0), body, true);
    }
    (Ok(offset), body, false)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (seed, mode, limit_byte, input) = (data[0], data[1], data[2], &data[3..]);
    let limit = match limit_byte {
        0 => 0,
        b => 1usize << (b % 17),
    };
    let framing = match mode % 3 {
        0 => BodyFraming::Chunked,
        1 => BodyFraming::ContentLength(u64::from(mode) * 7 % (limit as u64 + 3)),
        _ => BodyFraming::ContentLength(input.len() as u64 / 2),
    };

    let whole = run(framing, limit, &[input]);
    let pieces = split(seed, input);
    let parts = run(framing, limit, &pieces);
    // How much was consumed before an error is not part of the contract,
    // but the outcome, the body so far (on success) and the error are.
    assert_eq!(whole.2, parts.2, "complete in one case only");
    match (&whole.0, &parts.0) {
        (Ok(a), Ok(b)) if whole.2 => {
            assert_eq!(a, b, "consumed differs");
            assert_eq!(whole.1, parts.1, "body differs");
        }
        (Ok(_), Ok(_)) => assert_eq!(whole.1, parts.1, "partial body differs"),
        (Err(a), Err(b)) => assert_eq!(a, b, "error differs"),
        (a, b) => panic!("whole: {a:?}, split: {b:?}"),
    }

    if let BodyFraming::ContentLength(n) = framing {
        if whole.2 {
            assert_eq!(whole.1, &input[..n as usize]);
        }
    }
    // Round trip: the decoded body, written as chunks, decodes to itself.
    if framing == BodyFraming::Chunked && whole.2 {
        let body = &whole.1;
        let mut encoded = Vec::new();
        for chunk in body.chunks(usize::from(seed) + 1) {
            encoded.extend_from_slice(format!("{:X}\r\n", chunk.len()).as_bytes());
            encoded.extend_from_slice(chunk);
            encoded.extend_from_slice(b"\r\n");
        }
        encoded.extend_from_slice(b"0\r\n\r\n");
        let again = run(BodyFraming::Chunked, limit, &split(seed, &encoded));
        assert_eq!(again.0, Ok(encoded.len()));
        assert_eq!(&again.1, body);
    }
});

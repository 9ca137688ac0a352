//! RFC 7692 permessage-deflate: the inflate path (`Inflater`) fed arbitrary
//! compressed payloads in arbitrary chunks, and the offer parser
//! (`negotiate`) fed the same bytes as a `Sec-WebSocket-Extensions` value.
//!
//! Oracle: never a panic; an inflated message is at most the limit and the
//! output buffer never grows past the limit (a bomb costs no more memory);
//! the same result however the payload is split into frames; the same
//! result for a second message on an inflater without context takeover; a
//! message that inflates, compressed again by `Compressor`, inflates to
//! itself; an accepted offer's response names permessage-deflate and its
//! windows are in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushlab::wire::websocket::deflate::{
    negotiate, Compressor, DeflatePolicy, InflateError, Inflater,
};
use pushlab_fuzz::{control, split};

/// Inflates one message given as `pieces`; the buffer's capacity is checked
/// against the limit.
fn inflate(inflater: &mut Inflater, pieces: &[&[u8]], max: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    let mut result = Ok(());
    for piece in pieces {
        result = inflater.inflate(piece, &mut out, max);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = inflater.finish(&mut out, max);
    }
    assert!(out.capacity() <= (max + 1).max(16 * 1024), "buffer grew past the limit");
    result.map(|()| out)
}

fuzz_target!(|data: &[u8]| {
    let (seed, input) = control(data);
    // A small limit so TooBig is reachable; the seed picks it.
    let max = 1usize << (seed % 18);
    let window_bits = 9 + (seed >> 5) % 7;

    let whole = inflate(&mut Inflater::with(false), &[input], max);
    if let Ok(message) = &whole {
        assert!(message.len() <= max);
    }
    let parts = inflate(&mut Inflater::with(false), &split(seed, input), max);
    assert_eq!(whole, parts, "the result depends on how the payload was split");

    // Without context takeover a second message does not see the first.
    let mut inflater = Inflater::with(false);
    let first = inflate(&mut inflater, &[input], max);
    if first.is_ok() {
        assert_eq!(inflate(&mut inflater, &[input], max), first);
    }

    // With takeover, anything goes but a panic or an oversized buffer.
    let mut takeover = Inflater::with(true);
    if inflate(&mut takeover, &split(seed, input), max).is_ok() {
        let _ = inflate(&mut takeover, &[input], max);
    }

    // What inflates, compressed again, inflates to itself.
    if let Ok(message) = whole {
        let mut payload = Vec::new();
        Compressor::new(window_bits).compress(&message, &mut payload);
        let again = inflate(&mut Inflater::with(false), &[&payload], max);
        assert_eq!(again.as_deref(), Ok(&message[..]));
    }

    // The same bytes as offers.
    let policy = DeflatePolicy { client_context_takeover: seed & 1 == 1 };
    if let Some(agreed) = negotiate(split(seed, input).into_iter().take(4), &policy) {
        assert!((9..=15).contains(&agreed.server_max_window_bits));
        assert!((8..=15).contains(&agreed.client_max_window_bits));
        let mut value = Vec::new();
        agreed.response_value(&mut value);
        assert!(value.starts_with(b"permessage-deflate; server_no_context_takeover"));
    }
});

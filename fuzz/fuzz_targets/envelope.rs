//! The binary envelope of `/ws` (docs/api.md § Binary messages):
//! `wire::envelope::decode` on what a client's binary frame carries.
//!
//! Oracle: accepted, or refused with one of `EnvelopeError`'s reasons,
//! never a panic; an accepted envelope's bytes are the tail of the input,
//! and encoded again (with an id) it decodes to the same topic and bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushlab::wire::envelope::{decode, encode};

fuzz_target!(|payload: &[u8]| {
    let Ok(opened) = decode(payload) else {
        return;
    };
    assert!(payload.ends_with(opened.data), "the bytes are the input's tail");
    let mut again = Vec::new();
    encode(&opened.topic, "e1-1", opened.data, &mut again);
    let back = decode(&again).expect("an encoded envelope decodes");
    assert_eq!((back.topic.as_str(), back.data), (opened.topic.as_str(), opened.data));
});

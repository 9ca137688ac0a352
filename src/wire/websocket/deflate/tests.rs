use super::*;
use proptest::prelude::*;

const POLICY: DeflatePolicy = DeflatePolicy {
    client_context_takeover: false,
};
const TAKEOVER: DeflatePolicy = DeflatePolicy {
    client_context_takeover: true,
};

fn agree(headers: &[&str], policy: &DeflatePolicy) -> Option<Agreed> {
    negotiate(headers.iter().map(|h| h.as_bytes()), policy)
}

fn response(headers: &[&str], policy: &DeflatePolicy) -> Option<String> {
    agree(headers, policy).map(|agreed| {
        let mut out = Vec::new();
        agreed.response_value(&mut out);
        String::from_utf8(out).unwrap()
    })
}

fn offer(element: &str) -> Result<Agreed, Decline> {
    accept_offer(element.as_bytes(), &POLICY)
}

// ---- Negotiation (RFC 7692 §5, §7.1) ----

#[test]
fn a_bare_offer_gets_both_no_context_takeover_parameters() {
    assert_eq!(
        response(&["permessage-deflate"], &POLICY).as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
}

#[test]
fn with_client_takeover_allowed_only_the_server_side_is_declared() {
    assert_eq!(
        response(&["permessage-deflate"], &TAKEOVER).as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    // An offered client_no_context_takeover is echoed, so no state is kept.
    assert_eq!(
        response(
            &["permessage-deflate; client_no_context_takeover"],
            &TAKEOVER
        )
        .as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
}

#[test]
fn the_browser_offer_is_accepted_without_a_client_window() {
    // What Chromium and Firefox send.
    let agreed = agree(&["permessage-deflate; client_max_window_bits"], &POLICY).unwrap();
    assert_eq!(agreed.client_max_window_bits, 15);
    assert!(
        !agreed.client_window_in_response,
        "§7.1.2.2: no value, no parameter"
    );
    assert_eq!(agreed.server_max_window_bits, 15);
    assert!(!agreed.server_window_in_response);
}

#[test]
fn a_client_window_with_a_value_is_echoed() {
    let agreed = offer("permessage-deflate; client_max_window_bits=10").unwrap();
    assert_eq!(agreed.client_max_window_bits, 10);
    let mut out = Vec::new();
    agreed.response_value(&mut out);
    assert!(out.ends_with(b"; client_max_window_bits=10"));
    // 8 bits is fine for the client: the 15-bit inflater decodes it.
    let agreed = offer("permessage-deflate; client_max_window_bits=8").unwrap();
    assert_eq!(agreed.client_max_window_bits, 8);
}

#[test]
fn a_server_window_from_9_to_15_is_accepted_and_answered() {
    for bits in 9..=15u8 {
        let agreed = offer(&format!(
            "permessage-deflate; server_max_window_bits={bits}"
        ))
        .unwrap();
        assert_eq!(agreed.server_max_window_bits, bits);
        let mut out = Vec::new();
        agreed.response_value(&mut out);
        let expected = format!("; server_max_window_bits={bits}");
        assert!(
            out.ends_with(expected.as_bytes()),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn a_server_window_of_8_is_declined_and_the_next_offer_taken() {
    assert_eq!(
        offer("permessage-deflate; server_max_window_bits=8"),
        Err(Decline::UnsupportedWindow)
    );
    // Autobahn 13.7's offer list: the first is declined, the second taken.
    let agreed = agree(
        &["permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover, permessage-deflate"],
        &TAKEOVER,
    )
    .unwrap();
    assert_eq!(agreed.server_max_window_bits, 15);
    assert!(agreed.client_no_context_takeover);
}

#[test]
fn invalid_window_values_decline_the_offer() {
    for value in [
        "7", "16", "08", "0", "", "abc", "15.0", "1 5", "+9", "\"16\"",
    ] {
        for name in ["server_max_window_bits", "client_max_window_bits"] {
            let element = format!("permessage-deflate; {name}={value}");
            assert!(offer(&element).is_err(), "{element} should be declined");
        }
    }
    // §7.1.2.1: the server parameter needs a value in an offer.
    assert_eq!(
        offer("permessage-deflate; server_max_window_bits"),
        Err(Decline::InvalidValue)
    );
}

#[test]
fn quoted_values_are_unquoted_then_read_as_tokens() {
    let agreed = offer("permessage-deflate; client_max_window_bits=\"10\"").unwrap();
    assert_eq!(agreed.client_max_window_bits, 10);
    let agreed = offer("permessage-deflate; server_max_window_bits=\"1\\2\"").unwrap();
    assert_eq!(agreed.server_max_window_bits, 12);
    // A quoted value must be a token once unquoted (RFC 6455 §9.1).
    assert_eq!(
        offer("permessage-deflate; server_max_window_bits=\"1 2\""),
        Err(Decline::Malformed)
    );
}

#[test]
fn commas_and_semicolons_inside_quotes_do_not_split() {
    // The first offer is one element with an unknown parameter, declined;
    // the comma in its quoted value does not start an offer.
    let agreed = agree(
        &["permessage-deflate; x=\"a, permessage-deflate; y\", permessage-deflate; client_max_window_bits=9"],
        &POLICY,
    )
    .unwrap();
    assert_eq!(agreed.client_max_window_bits, 9);
}

#[test]
fn parameters_without_a_value_must_have_none() {
    assert_eq!(
        offer("permessage-deflate; server_no_context_takeover=1"),
        Err(Decline::InvalidValue)
    );
    assert_eq!(
        offer("permessage-deflate; client_no_context_takeover=\"\""),
        Err(Decline::Malformed)
    );
    assert!(offer("permessage-deflate; server_no_context_takeover").is_ok());
}

#[test]
fn repeated_and_unknown_parameters_decline_the_offer() {
    assert_eq!(
        offer("permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
        Err(Decline::DuplicateParameter)
    );
    assert_eq!(
        offer("permessage-deflate; client_max_window_bits; client_max_window_bits=10"),
        Err(Decline::DuplicateParameter)
    );
    assert_eq!(
        offer("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"),
        Err(Decline::DuplicateParameter)
    );
    assert_eq!(
        offer("permessage-deflate; level=9"),
        Err(Decline::UnknownParameter)
    );
}

#[test]
fn malformed_offers_are_declined_one_by_one() {
    for element in [
        "permessage-deflate;",
        "permessage-deflate; ; client_no_context_takeover",
        "permessage-deflate; =1",
        "permessage-deflate; a b",
        "\"permessage-deflate\"",
        "permessage deflate",
        "permessage-deflate; x=\"unterminated",
    ] {
        assert_eq!(offer(element), Err(Decline::Malformed), "{element}");
    }
    // The handshake goes on: a good offer after a bad one is taken.
    assert!(agree(&["permessage-deflate;;, permessage-deflate"], &POLICY).is_some());
    // An unterminated quote swallows the rest of its header line only.
    assert!(agree(
        &[
            "permessage-deflate; x=\"a, permessage-deflate",
            "permessage-deflate"
        ],
        &POLICY
    )
    .is_some());
    assert!(agree(&["permessage-deflate; x=\"a, permessage-deflate"], &POLICY).is_none());
}

#[test]
fn offers_spread_over_several_header_lines_are_read_in_order() {
    let agreed = agree(
        &[
            "x-webkit-deflate-frame",
            "permessage-deflate; client_max_window_bits=11",
            "permessage-deflate",
        ],
        &POLICY,
    )
    .unwrap();
    assert_eq!(agreed.client_max_window_bits, 11);
}

#[test]
fn other_extensions_and_empty_elements_are_ignored() {
    assert_eq!(offer("deflate-frame"), Err(Decline::OtherExtension));
    assert!(agree(
        &[" , ,\tPermessage-Deflate ;\tclient_max_window_bits , "],
        &POLICY
    )
    .is_some());
    assert!(agree(&["foo, bar; baz=1"], &POLICY).is_none());
    assert!(agree(&[], &POLICY).is_none());
}

#[test]
fn declines_read_as_sentences() {
    assert_eq!(
        Decline::UnsupportedWindow.to_string(),
        "server_max_window_bits=8 is not supported"
    );
    assert_eq!(
        InflateError::TooBig { max: 10 }.to_string(),
        "inflated message larger than 10 bytes"
    );
    assert_eq!(
        InflateError::TooBig { max: 10 }.close_code(),
        CloseCode::TOO_BIG
    );
    assert_eq!(
        InflateError::Corrupt.close_code(),
        CloseCode::INVALID_PAYLOAD
    );
}

// ---- The payload transformation: RFC 7692 §7.2.3 examples ----

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

fn inflate_message(
    inflater: &mut Inflater,
    chunks: &[&[u8]],
    max: usize,
) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    for chunk in chunks {
        inflater.inflate(chunk, &mut out, max)?;
    }
    inflater.finish(&mut out, max)?;
    Ok(out)
}

fn inflate_once(payload: &[u8]) -> Result<Vec<u8>, InflateError> {
    inflate_message(&mut Inflater::with(false), &[payload], 1 << 20)
}

fn compress(window_bits: u8, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Compressor::new(window_bits).compress(message, &mut out);
    out
}

#[test]
fn rfc_7692_7_2_3_1_hello_compresses_to_the_rfc_bytes() {
    assert_eq!(compress(15, b"Hello"), HELLO);
    assert_eq!(inflate_once(&HELLO).unwrap(), b"Hello");
}

#[test]
fn rfc_7692_7_2_3_1_a_compressed_message_split_into_fragments() {
    let mut inflater = Inflater::with(false);
    let out = inflate_message(
        &mut inflater,
        &[&[0xf2, 0x48, 0xcd], &[0xc9, 0xc9, 0x07, 0x00]],
        100,
    );
    assert_eq!(out.unwrap(), b"Hello");
}

#[test]
fn rfc_7692_7_2_3_2_the_second_hello_needs_context_takeover() {
    let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
    let mut takeover = Inflater::with(true);
    assert_eq!(
        inflate_message(&mut takeover, &[&HELLO], 100).unwrap(),
        b"Hello"
    );
    assert!(
        takeover.holds_state(),
        "the window is kept for the next message"
    );
    assert_eq!(
        inflate_message(&mut takeover, &[&second], 100).unwrap(),
        b"Hello"
    );
    // Without takeover the back-reference has nothing to refer to.
    let mut fresh = Inflater::with(false);
    assert_eq!(
        inflate_message(&mut fresh, &[&HELLO], 100).unwrap(),
        b"Hello"
    );
    assert!(!fresh.holds_state(), "no state between messages");
    assert_eq!(
        inflate_message(&mut fresh, &[&second], 100),
        Err(InflateError::Corrupt)
    );
}

#[test]
fn our_compressor_never_takes_the_context_over() {
    // §7.2.3.2 shows what a compressor with takeover sends the second time;
    // with server_no_context_takeover the second message is the first again.
    let mut compressor = Compressor::new(15);
    let mut first = Vec::new();
    compressor.compress(b"Hello", &mut first);
    let mut second = Vec::new();
    compressor.compress(b"Hello", &mut second);
    assert_eq!(
        (first.as_slice(), second.as_slice()),
        (&HELLO[..], &HELLO[..])
    );
}

#[test]
fn rfc_7692_7_2_3_3_a_stored_block() {
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(inflate_once(&stored).unwrap(), b"Hello");
}

#[test]
fn rfc_7692_7_2_3_4_a_block_with_bfinal_set() {
    let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(inflate_once(&last).unwrap(), b"Hello");
    // With takeover, the stream ended: the next message starts a new one.
    let mut takeover = Inflater::with(true);
    assert_eq!(
        inflate_message(&mut takeover, &[&last], 100).unwrap(),
        b"Hello"
    );
    assert_eq!(
        inflate_message(&mut takeover, &[&HELLO], 100).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc_7692_7_2_3_5_two_blocks_in_one_message() {
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(inflate_once(&two).unwrap(), b"Hello");
}

#[test]
fn rfc_7692_7_2_3_6_an_empty_fragment_ends_a_message() {
    // The first fragment keeps its sync-flush tail; the last one is the
    // single 0x00 octet of an empty stored block with its tail removed.
    let mut inflater = Inflater::with(false);
    let first = [
        0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff,
    ];
    assert_eq!(
        inflate_message(&mut inflater, &[&first, &[0x00]], 100).unwrap(),
        b"Hello"
    );
}

#[test]
fn an_empty_message_round_trips_and_an_empty_payload_is_an_empty_message() {
    let empty = compress(15, b"");
    assert_eq!(
        empty,
        [0x00],
        "§7.2.3.6: the empty stored block minus its tail"
    );
    assert_eq!(inflate_once(&empty).unwrap(), b"");
    let mut takeover = Inflater::with(true);
    assert_eq!(inflate_message(&mut takeover, &[], 100).unwrap(), b"");
    assert_eq!(
        inflate_message(&mut takeover, &[&HELLO], 100).unwrap(),
        b"Hello"
    );
}

/// Inflates `payload` (with the RFC 7692 tail) through a `bits` window,
/// one output byte per zlib call: zlib accepts a back-reference reaching
/// into the current call's output as well as the window, so a one-byte
/// output room makes the window check strict.
fn inflate_strictly(bits: u8, payload: &[u8]) -> Option<Vec<u8>> {
    let mut state = Decompress::new_with_window_bits(false, bits);
    let input = [payload, &TAIL[..]].concat();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let used = state.total_in() as usize;
        let before = state.total_out();
        state
            .decompress(&input[used..], &mut byte, FlushDecompress::Sync)
            .ok()?;
        if state.total_out() == before {
            return Some(out);
        }
        out.push(byte[0]);
    }
}

#[test]
fn the_compressor_keeps_within_its_window() {
    // A 2000-byte pattern repeated: back-references of 2000 bytes, beyond a
    // 9-bit (512-byte) window.
    let mut state = 1u32;
    let block: Vec<u8> = (0..2000)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect();
    let message = block.repeat(20);
    let small = compress(9, &message);
    assert_eq!(inflate_strictly(9, &small).as_deref(), Some(&message[..]));
    // The check has teeth: a 15-bit compressor's output needs a wider window.
    let wide = compress(15, &message);
    assert!(
        wide.len() < small.len() / 4,
        "{} vs {}",
        wide.len(),
        small.len()
    );
    assert_eq!(inflate_strictly(9, &wide), None);
    // The server's inflater has the widest window: both inflate, whole or
    // split, whatever window the client announced.
    for payload in [&small, &wide] {
        let bytes: Vec<&[u8]> = payload.chunks(7).collect();
        assert_eq!(
            inflate_message(&mut Inflater::with(false), &[payload], 1 << 20).unwrap(),
            message
        );
        assert_eq!(
            inflate_message(&mut Inflater::with(false), &bytes, 1 << 20).unwrap(),
            message
        );
    }
}

// ---- Limits and malformed data ----

#[test]
fn a_bomb_stops_at_the_limit_with_no_more_memory_than_the_limit() {
    let bomb = compress(15, &vec![0u8; 16 << 20]);
    assert!(
        bomb.len() < 32 * 1024,
        "16 MiB of zeros compress to {} bytes",
        bomb.len()
    );
    let max = 64 * 1024;
    for chunk in [bomb.len(), 1000, 7] {
        let mut inflater = Inflater::with(false);
        let mut out = Vec::new();
        let mut result = Ok(());
        for piece in bomb.chunks(chunk) {
            result = inflater.inflate(piece, &mut out, max);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = inflater.finish(&mut out, max);
        }
        assert_eq!(result, Err(InflateError::TooBig { max }));
        assert!(
            out.capacity() <= max + 1,
            "capacity {} over the limit",
            out.capacity()
        );
    }
}

#[test]
fn a_message_of_exactly_the_limit_inflates_and_one_more_byte_does_not() {
    let message = vec![b'a'; 5000];
    let payload = compress(15, &message);
    let mut inflater = Inflater::with(false);
    assert_eq!(
        inflate_message(&mut inflater, &[&payload], 5000).unwrap(),
        message
    );
    assert_eq!(
        inflate_message(&mut inflater, &[&payload], 4999),
        Err(InflateError::TooBig { max: 4999 })
    );
}

#[test]
fn malformed_deflate_data_is_corrupt() {
    // BTYPE 11 is reserved (RFC 1951 §3.2.3).
    assert_eq!(inflate_once(&[0x06]), Err(InflateError::Corrupt));
    // A stored block whose NLEN is not the complement of LEN.
    assert_eq!(
        inflate_once(&[0x00, 0x05, 0x00, 0x00, 0x00, b'H']),
        Err(InflateError::Corrupt)
    );
    // A distance before the start of the output.
    assert_eq!(
        inflate_once(&[0xf2, 0x00, 0x11, 0x00, 0x00]),
        Err(InflateError::Corrupt)
    );
}

#[test]
fn a_message_both_too_big_and_corrupt_fails_the_same_however_it_is_split() {
    // Found by the ws_inflate fuzz target: two literals, then invalid data.
    // Fed at once, zlib wrote past the limit and met the invalid data in one
    // call; fed a byte at a time, the limit was passed first. The limit is
    // now checked before zlib's verdict, so both say TooBig.
    let payload = [0xf2, 0xcd, 0x04, 0x1c, 0xc9, 0xc9, 0x69];
    let whole = inflate_message(&mut Inflater::with(false), &[&payload], 1);
    let bytes: Vec<&[u8]> = payload.chunks(1).collect();
    let pieces = inflate_message(&mut Inflater::with(false), &bytes, 1);
    assert_eq!(whole, Err(InflateError::TooBig { max: 1 }));
    assert_eq!(pieces, whole);
}

proptest! {
    #[test]
    fn compress_then_inflate_is_the_identity_however_the_payload_is_split(
        message in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..3000),
            "[a-c{}\":,]{0,3000}".prop_map(String::into_bytes),
        ],
        window_bits in 9u8..=15,
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        takeover in any::<bool>(),
    ) {
        let payload = compress(window_bits, &message);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&payload[start..point]);
            start = point;
        }
        chunks.push(&payload[start..]);
        let mut inflater = Inflater::with(takeover);
        // Twice on one inflater: the second message must not depend on the first.
        for _ in 0..2 {
            prop_assert_eq!(&inflate_message(&mut inflater, &chunks, message.len()).unwrap(), &message);
        }
    }

    #[test]
    fn arbitrary_payloads_fail_or_inflate_the_same_however_they_are_split(
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        max in 0usize..64,
        piece in 1usize..8,
    ) {
        let whole = inflate_message(&mut Inflater::with(false), &[&payload], max);
        let pieces: Vec<&[u8]> = payload.chunks(piece).collect();
        let split = inflate_message(&mut Inflater::with(false), &pieces, max);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn arbitrary_payloads_inflate_or_fail_within_the_limit(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        max in 0usize..4096,
        takeover in any::<bool>(),
    ) {
        let mut inflater = Inflater::with(takeover);
        let mut out = Vec::new();
        let result = inflater
            .inflate(&payload, &mut out, max)
            .and_then(|()| inflater.finish(&mut out, max));
        prop_assert!(out.capacity() <= max + 1 || out.capacity() <= INFLATE_STEP);
        if result.is_ok() {
            prop_assert!(out.len() <= max);
        }
    }
}

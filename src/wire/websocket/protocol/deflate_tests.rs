//! The connection machine with permessage-deflate (RFC 7692 §6, §7.2):
//! RSV1 rules, inflating as frames arrive, limits on the inflated size.

use super::*;
use crate::wire::websocket::deflate::{accept_offer, Compressor, DeflatePolicy};
use crate::wire::websocket::frame::encode_header;
use proptest::prelude::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

fn agreed(offer: &str, client_context_takeover: bool) -> Agreed {
    let policy = DeflatePolicy {
        client_context_takeover,
    };
    accept_offer(offer.as_bytes(), &policy).unwrap()
}

fn deflate_server(max: usize) -> Protocol {
    let mut server = Protocol::new(Role::Server, max);
    server.enable_deflate(&agreed("permessage-deflate", false));
    server
}

/// A masked client frame with the given RSV1 bit.
fn frame(opcode: Opcode, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mut header = FrameHeader::new(opcode, fin, Some(KEY), payload.len() as u64);
    header.rsv1 = rsv1;
    let mut out = Vec::new();
    encode_header(&header, &mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY, 0);
    out
}

const TEXT: Opcode = Opcode::Data(DataOpcode::Text);
const BINARY: Opcode = Opcode::Data(DataOpcode::Binary);
const CONTINUE: Opcode = Opcode::Data(DataOpcode::Continue);
const PING: Opcode = Opcode::Control(ControlOpcode::Ping);

fn receive(server: &mut Protocol, bytes: &[u8]) -> (Vec<Event>, Option<ProtocolError>) {
    server.receive_data(bytes);
    let mut events = Vec::new();
    loop {
        match server.next_event() {
            Ok(Event::NeedData) => return (events, None),
            Ok(event) => events.push(event),
            Err(err) => return (events, Some(err)),
        }
    }
}

fn compress(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Compressor::new(15).compress(message, &mut out);
    out
}

fn hello() -> Event {
    Event::Text("Hello".to_owned())
}

#[test]
fn rfc_7692_7_2_3_1_a_compressed_hello_is_a_text_message() {
    let mut server = deflate_server(1024);
    assert_eq!(
        receive(&mut server, &frame(TEXT, true, true, &HELLO)),
        (vec![hello()], None)
    );
}

#[test]
fn rfc_7692_7_2_3_1_a_compressed_hello_in_two_fragments() {
    let mut server = deflate_server(1024);
    let mut bytes = frame(TEXT, false, true, &HELLO[..3]);
    bytes.extend(frame(CONTINUE, true, false, &HELLO[3..]));
    assert_eq!(receive(&mut server, &bytes), (vec![hello()], None));
}

#[test]
fn uncompressed_messages_still_pass_once_deflate_is_enabled() {
    let mut server = deflate_server(1024);
    let mut bytes = frame(TEXT, true, false, b"plain");
    bytes.extend(frame(BINARY, true, true, &HELLO));
    bytes.extend(frame(BINARY, true, false, b"raw"));
    let (events, err) = receive(&mut server, &bytes);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            Event::Text("plain".into()),
            Event::Binary(b"Hello".to_vec()),
            Event::Binary(b"raw".to_vec())
        ]
    );
}

#[test]
fn rsv1_without_negotiation_is_still_a_protocol_error() {
    let mut server = Protocol::new(Role::Server, 1024);
    let (_, err) = receive(&mut server, &frame(TEXT, true, true, &HELLO));
    assert_eq!(err, Some(ProtocolError::ReservedBitsSet));
    assert_eq!(err.unwrap().close_code(), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn rsv1_on_a_continuation_frame_fails_with_1002() {
    let mut server = deflate_server(1024);
    let mut bytes = frame(TEXT, false, true, &HELLO[..3]);
    bytes.extend(frame(CONTINUE, true, true, &HELLO[3..]));
    let (_, err) = receive(&mut server, &bytes);
    assert_eq!(err, Some(ProtocolError::CompressedNotFirstFrame));
    assert_eq!(err.unwrap().close_code(), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn rsv1_on_a_control_frame_fails_with_1002() {
    let mut server = deflate_server(1024);
    let (_, err) = receive(&mut server, &frame(PING, true, true, b""));
    assert_eq!(err, Some(ProtocolError::CompressedNotFirstFrame));
}

#[test]
fn rsv2_and_rsv3_stay_forbidden_with_deflate() {
    for bit in [0x20, 0x10] {
        let mut bytes = frame(TEXT, true, true, &HELLO);
        bytes[0] |= bit;
        let (_, err) = receive(&mut deflate_server(1024), &bytes);
        assert_eq!(err, Some(ProtocolError::ReservedBitsSet));
    }
}

#[test]
fn a_compression_bomb_fails_with_1009_and_the_buffer_stays_within_the_limit() {
    let max = 64 * 1024;
    let bomb = compress(&vec![b'a'; 8 << 20]);
    let mut server = deflate_server(max);
    let bytes = frame(TEXT, true, true, &bomb);
    for piece in bytes.chunks(4096) {
        server.receive_data(piece);
        assert!(server.payload.capacity() <= max + 1);
    }
    let (_, err) = receive(&mut server, &[]);
    assert_eq!(err, Some(ProtocolError::MessageTooBig { max }));
    assert_eq!(err.unwrap().close_code(), CloseCode::TOO_BIG);
}

#[test]
fn an_inflated_message_of_exactly_the_limit_passes() {
    let message = "x".repeat(3000);
    let mut server = deflate_server(3000);
    let (events, err) = receive(
        &mut server,
        &frame(TEXT, true, true, &compress(message.as_bytes())),
    );
    assert_eq!((events, err), (vec![Event::Text(message)], None));
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let mut server = deflate_server(1024);
    let (_, err) = receive(&mut server, &frame(TEXT, true, true, &[0x06, 0x01]));
    assert_eq!(err, Some(ProtocolError::InvalidCompressedData));
    assert_eq!(err.unwrap().close_code(), CloseCode::INVALID_PAYLOAD);
}

#[test]
fn inflated_text_that_is_not_utf8_fails_with_1007() {
    let mut server = deflate_server(1024);
    let (_, err) = receive(
        &mut server,
        &frame(TEXT, true, true, &compress(b"ok \xff no")),
    );
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    // Text ending inside a character fails at the message's end.
    let mut server = deflate_server(1024);
    let (_, err) = receive(&mut server, &frame(TEXT, true, true, &compress(b"caf\xc3")));
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn rfc_7692_7_2_3_2_context_takeover_is_honoured_only_when_agreed() {
    let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
    let mut bytes = frame(TEXT, true, true, &HELLO);
    bytes.extend(frame(TEXT, true, true, &second));
    let mut takeover = Protocol::new(Role::Server, 1024);
    takeover.enable_deflate(&agreed("permessage-deflate", true));
    assert_eq!(
        receive(&mut takeover, &bytes),
        (vec![hello(), hello()], None)
    );
    // Declined (client_no_context_takeover in the response): the
    // back-reference has no history to point into.
    let (events, err) = receive(&mut deflate_server(1024), &bytes);
    assert_eq!(
        (events, err),
        (vec![hello()], Some(ProtocolError::InvalidCompressedData))
    );
}

#[test]
fn a_compressed_frame_sent_by_the_server_is_received_by_a_client() {
    let mut server = deflate_server(1024);
    let mut wire = Vec::new();
    server.send_compressed(DataOpcode::Text, &compress(b"Hello"), &mut wire);
    // RFC 7692 §7.2.3.1's frame: FIN, RSV1, text, 7 bytes.
    assert_eq!(wire[..2], [0xc1, 0x07]);
    assert_eq!(wire[2..], HELLO);
    let mut client = Protocol::new(Role::Client, 1024);
    client.enable_deflate(&agreed("permessage-deflate", false));
    assert_eq!(receive(&mut client, &wire), (vec![hello()], None));
}

#[test]
fn no_inflate_state_is_held_between_messages_without_takeover() {
    let mut server = deflate_server(1024);
    receive(&mut server, &frame(TEXT, true, true, &HELLO));
    assert!(!server.inflate.as_ref().unwrap().inflater.holds_state());
    assert_eq!(server.payload.capacity(), 0);
}

proptest! {
    #[test]
    fn compressed_messages_decode_the_same_however_split(
        messages in proptest::collection::vec(("[a-z{}\":, é]{0,600}", any::<bool>(), 1usize..4), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (text, compressed, fragments) in &messages {
            let payload = if *compressed { compress(text.as_bytes()) } else { text.as_bytes().to_vec() };
            let step = payload.len() / fragments + 1;
            let pieces: Vec<&[u8]> = if payload.is_empty() { vec![&[]] } else { payload.chunks(step).collect() };
            for (i, piece) in pieces.iter().enumerate() {
                let opcode = if i == 0 { TEXT } else { CONTINUE };
                wire.extend(frame(opcode, i + 1 == pieces.len(), *compressed && i == 0, piece));
            }
            expected.push(Event::Text(text.clone()));
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        let mut server = deflate_server(1 << 16);
        let mut events = Vec::new();
        let mut start = 0;
        for point in points.into_iter().chain([wire.len()]) {
            let (got, err) = receive(&mut server, &wire[start..point]);
            prop_assert_eq!(err, None);
            events.extend(got);
            start = point;
        }
        prop_assert_eq!(events, expected);
    }
}

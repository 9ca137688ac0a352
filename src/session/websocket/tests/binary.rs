//! Binary messages on `/ws` (docs/websocket.md § Binary messages): a binary
//! frame publishes bytes; every subscriber gets one binary frame holding the
//! envelope (topic and id, then the bytes), shared like a text frame.

use super::*;
use crate::hub::{decode_binary, Kind};
use crate::wire::envelope;
use crate::wire::websocket::deflate::Inflater;

/// The header (parsed) and the bytes of a binary frame's envelope.
fn opened(e: &Event) -> (serde_json::Value, Vec<u8>) {
    let Event::Binary(payload) = e else {
        panic!("expected binary, got {e:?}")
    };
    envelope_parts(payload)
}

fn envelope_parts(payload: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
    let header = serde_json::from_slice(&payload[2..2 + n]).unwrap();
    (header, payload[2 + n..].to_vec())
}

/// A client's envelope naming `topic`.
fn client_envelope(topic: &str, data: &[u8]) -> Vec<u8> {
    let header = format!(r#"{{"topic":"{topic}"}}"#);
    let mut p = (header.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(header.as_bytes());
    p.extend_from_slice(data);
    p
}

const BYTES: &[u8] = &[0, 0xff, b'\n', b'{', 0x80];

#[test]
fn a_binary_message_on_ws_is_published_and_comes_back_as_one_binary_frame_with_its_envelope() {
    let mut rig = Rig::new(Config::default());
    let mut a = rig.open(1, "/ws?topic=news");
    let mut b = rig.open(2, "/ws?topic=news");
    rig.send(&mut a, &client(BINARY, BYTES));
    assert_eq!(a.lifecycle(), Lifecycle::Open);
    assert_eq!(rig.published.len(), 1);
    let msg = rig.published[0].clone();
    assert_eq!((msg.kind, &*msg.data), (Kind::Binary, "AP8Ke4A="));
    assert_eq!(rig.stats.messages_published, 1);
    rig.fan_out(&mut [&mut a, &mut b]);
    for s in [&mut a, &mut b] {
        let got = output_events(s);
        assert_eq!(got.len(), 1, "one frame: {got:?}");
        let (header, data) = opened(&got[0]);
        assert_eq!(header, serde_json::json!({"topic": "news", "id": "e1-1"}));
        assert_eq!(data, BYTES);
    }
    // One frame made for both, as for text.
    let frame = msg.encoded.ws_frame.get().expect("encoded once");
    assert_eq!(frame[0], 0x82, "FIN, binary");
    assert_eq!(rig.ws().messages_delivered, 2);
}

#[test]
fn text_and_binary_messages_share_one_sequence_of_ids_and_cursors() {
    let mut rig = Rig::new(Config::default());
    rig.publish("a", "1");
    rig.publish_binary("a", &[2]);
    rig.publish("a", "3");
    let mut s = rig.request(1, "/ws?topic=a&since=e1-1", &[], "", b"");
    let (_, _, rest) = split_head(&s.output().take_all());
    let got = events(&rest);
    assert_eq!(got.len(), 2, "{got:?}");
    let (header, data) = opened(&got[0]);
    assert_eq!((header["id"].as_str(), data), (Some("e1-2"), vec![2]));
    assert_eq!(json(&got[1])["id"], "e1-3");
    // The binary message's id is a cursor like any other.
    let mut s = rig.request(2, "/ws?topic=a&since=e1-2", &[], "", b"");
    let (_, _, rest) = split_head(&s.output().take_all());
    assert_eq!(
        events(&rest),
        [text(r#"{"topic":"a","id":"e1-3","data":"3"}"#)]
    );
    // A live binary message after the replay.
    rig.publish_to("a", "late", &mut [&mut s]);
    let msg = rig.publish_binary("a", b"live");
    s.handle_message(&msg, &mut rig.ctx());
    let got = output_events(&mut s);
    assert_eq!(opened(&got[1]).1, b"live");
}

#[test]
fn several_topics_take_a_binary_envelope_naming_one_of_them() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/ws?topic=a,b");
    rig.send(&mut s, &client(BINARY, &client_envelope("b", BYTES)));
    assert_eq!(s.lifecycle(), Lifecycle::Open);
    let msg = rig.published[0].clone();
    assert_eq!((&*msg.topic, msg.kind), ("b", Kind::Binary));
    assert_eq!(decode_binary(&msg.data).unwrap(), BYTES);
    // What a client received can be sent back as it is: the id is ignored.
    rig.fan_out(&mut [&mut s]);
    let Event::Binary(received) = output_events(&mut s).remove(0) else {
        panic!("a binary frame")
    };
    rig.send(&mut s, &client(BINARY, &received));
    assert_eq!(rig.published.len(), 1);
    assert_eq!(decode_binary(&rig.published[0].data).unwrap(), BYTES);
    for (bad, why) in [
        (
            Vec::new(),
            "binary envelope without its 2-byte header length",
        ),
        (
            b"\x00\x09{}".to_vec(),
            "binary envelope header longer than the frame",
        ),
        (
            b"raw bytes".to_vec(),
            "binary envelope header longer than the frame",
        ),
        (
            b"\x00\x02{}".to_vec(),
            "binary envelope header has no \"topic\" string",
        ),
        (
            client_envelope("c", b"x"),
            "the envelope's topic is not one of the connection's",
        ),
    ] {
        let mut s = rig.open(2, "/ws?topic=a,b");
        rig.send(&mut s, &client(BINARY, &bad));
        assert_eq!(output_events(&mut s), [close_event(1008, why)], "{bad:?}");
        assert_eq!(s.lifecycle(), Lifecycle::Closing);
    }
    assert_eq!(rig.hub.head(), 2, "only the good ones were published");
}

#[test]
fn a_binary_publish_needs_the_same_right_as_a_text_one() {
    let mut rig = Rig::new(Config {
        publish_token: Some("s3cret".into()),
        ..Config::default()
    });
    let mut reader = rig.open(1, "/ws?topic=a");
    rig.send(&mut reader, &client(BINARY, b"x"));
    assert_eq!(
        output_events(&mut reader),
        [close_event(1008, "publishing needs the publish token")]
    );
    assert_eq!(rig.hub.head(), 0);
}

#[test]
fn max_message_counts_the_raw_bytes_not_their_base64() {
    let mut rig = Rig::new(Config {
        max_message: 6,
        ..Config::default()
    });
    let mut s = rig.open(1, "/ws?topic=a");
    // 6 bytes are 8 in base64: still within the limit.
    rig.send(&mut s, &client(BINARY, b"\xff\xfe\xfd\xfc\xfb\xfa"));
    assert_eq!(rig.published.len(), 1);
    assert_eq!(rig.published[0].data.len(), 8);
    rig.send(&mut s, &client(BINARY, b"1234567"));
    assert_eq!(close_code_of(&output_events(&mut s)), Some(1009));
    assert_eq!(rig.hub.head(), 1);
}

#[test]
fn a_binary_message_is_compressed_once_for_every_connection_that_negotiated_it() {
    let mut rig = Rig::new(Config::default());
    let ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    let mut subs: Vec<Session> = (1..=2)
        .map(|id| {
            let mut s = rig.request(id, "/ws?topic=a", &[], ext, b"");
            s.output().take_all();
            s
        })
        .collect();
    let data = vec![7u8; 4096];
    let msg = rig.publish_binary("a", &data);
    let mut frames = Vec::new();
    for s in &mut subs {
        s.handle_message(&msg, &mut rig.ctx());
        frames.push(s.output().take_all());
    }
    assert_eq!(frames[0], frames[1]);
    let frame = &frames[0];
    assert_eq!(frame[0], 0xc2, "FIN, RSV1, binary");
    assert!(frame.len() < 200, "{} bytes", frame.len());
    let shared = msg.encoded.ws_deflate_frame.get().expect("compressed once");
    assert_eq!(&shared[..], &frame[..]);
    assert_eq!(rig.ws().deflate_frames_out, 2);
    // It inflates to the envelope of the plain frame.
    let mut payload = Vec::new();
    let mut inflater = Inflater::with(false);
    let start = frame.len() - crate::session::deflate::payload_len(frame);
    inflater
        .inflate(&frame[start..], &mut payload, 1 << 20)
        .unwrap();
    inflater.finish(&mut payload, 1 << 20).unwrap();
    let (header, bytes) = envelope_parts(&payload);
    assert_eq!(header, serde_json::json!({"topic": "a", "id": "e1-1"}));
    assert_eq!(bytes, data);
    let plain = crate::session::encoded::ws_frame(&msg);
    assert_eq!(&plain[plain.len() - payload.len()..], &payload[..]);
    // The envelope the server writes is the one `wire::envelope` reads.
    let back = envelope::decode(&payload).unwrap();
    assert_eq!((back.topic.as_str(), back.data), ("a", &data[..]));
}

#[test]
fn binary_frames_in_and_out_are_traced_with_their_kind() {
    let mut rig = Rig::new(Config::default());
    let mut s = rig.open(1, "/ws?topic=a");
    rig.send(&mut s, &client(BINARY, b"x"));
    rig.fan_out(&mut [&mut s]);
    let details: Vec<_> = rig
        .tracer
        .events
        .iter()
        .filter(|e| e.kind == "frame")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(details, ["in binary", "out binary e1-1"]);
}

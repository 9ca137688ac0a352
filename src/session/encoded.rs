//! Every per-message wire form in one place: the JSON object (poll bodies,
//! WebSocket frames, multi-topic SSE data), the poll-list item, the SSE
//! events for one topic and for several, and the WebSocket frame.
//!
//! # Text and binary messages (docs/api.md § Binary messages)
//!
//! A binary message ([`Kind::Binary`]) keeps its bytes as base64 in its
//! data, and every form but one carries that base64: its JSON object gains
//! `"encoding":"base64"`, its SSE events are of type `binary`. Its
//! WebSocket frame is a binary frame whose payload is the envelope of
//! [`crate::wire::envelope`] (topic and id, then the raw bytes); its
//! compressed frame compresses that payload. A text message's forms are
//! what they are without binary messages, byte for byte.
//!
//! # Encode once, keep nothing
//!
//! A message is encoded once per transport for its fan-out: the first
//! subscriber (or released long poll) that needs a form makes it, the others
//! share it (`Rc`), and the event loop calls [`release`] when the message has
//! been handed to every subscriber. From then on a form is made for the one
//! reader that asks (a poll, a resume's replay) and not kept.
//!
//! So a kept message costs its data and a fixed overhead
//! ([`crate::hub::Message::kept_cost`]) whatever its content, although its
//! forms can be several times larger than it (at most [`MAX_FORM_FACTOR`]
//! times its data plus [`MAX_FORM_OVERHEAD`] bytes each: a control character
//! is 6 bytes in JSON, `\u0001`; a lone newline is a 6-byte `data:` line in
//! SSE). Queued output holding a form is bounded per connection by
//! `--max-queued-bytes`, not by the history.

use std::rc::Rc;

use super::deflate::{payload_len, Deflate};
use super::sse::EVENT_BINARY;
use crate::hub::{Kind, Message, Slot};
use crate::wire::envelope;
use crate::wire::json;
use crate::wire::sse::encode_event;
use crate::wire::websocket::{encode_frame, DataOpcode, Opcode};

/// The largest growth of a message's data in any one form: JSON writes a
/// control character as `\uXXXX` (6 bytes for 1), and SSE writes an empty
/// line of a message as `data:` and a line feed (6 bytes for 1). The
/// multi-topic SSE event is JSON inside one `data:` line, so no worse.
pub const MAX_FORM_FACTOR: usize = 6;

/// Bytes a form adds beyond its data's growth: topic, id, field names,
/// `id:` line, frame header.
pub const MAX_FORM_OVERHEAD: usize = 2 * crate::config::MAX_TOPIC_LEN + 128;

/// Makes the form in `slot` with `make`, or shares the one made during the
/// fan-out.
fn form(msg: &Message, slot: &Slot, make: impl FnOnce() -> Vec<u8>) -> Rc<[u8]> {
    if let Some(bytes) = slot.get() {
        return bytes;
    }
    let bytes: Rc<[u8]> = make().into();
    if !msg.encoded.sealed.get() {
        slot.set(bytes.clone());
    }
    bytes
}

/// The message's JSON object `{"topic":…,"id":…,"data":…}`, with
/// `"encoding":"base64"` before the data of a binary message.
pub fn json(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.json, || match msg.kind {
        Kind::Text => json::encode_message(&msg.topic, &msg.id, &msg.data),
        Kind::Binary => json::encode_binary_message(&msg.topic, &msg.id, &msg.data),
    })
}

/// The SSE event type of a message: none (`message`) for text, `binary`
/// for binary.
fn sse_event_type(msg: &Message) -> Option<&'static str> {
    msg.kind.is_binary().then_some(EVENT_BINARY)
}

/// `,` and the message's JSON object: how every message but the first
/// appears in a poll body, so the separator travels in the shared bytes
/// instead of costing an iovec of its own.
pub fn json_list_item(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.json_list_item, || {
        let json = json(msg);
        let mut item = Vec::with_capacity(json.len() + 1);
        item.push(b',');
        item.extend_from_slice(&json);
        item
    })
}

/// The message as a single-topic SSE event: `id: E-N` then `data:` lines
/// (for a binary message, `event: binary` and one line of base64).
pub fn sse_single(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.sse_single, || {
        let mut out = Vec::new();
        encode_event(&mut out, Some(&msg.id), sse_event_type(msg), &msg.data);
        out
    })
}

/// The message as a multi-topic SSE event: `id: E-N` and one `data:` line
/// holding its JSON object (which contains no line ending); `event:
/// binary` first for a binary message.
pub fn sse_multi(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.sse_multi, || {
        let json = json(msg);
        let json = String::from_utf8_lossy(&json);
        let mut out = Vec::new();
        encode_event(&mut out, Some(&msg.id), sse_event_type(msg), &json);
        out
    })
}

/// The message as one unfragmented, unmasked WebSocket frame: a text frame
/// holding its JSON object, or for a binary message a binary frame holding
/// its envelope ([`envelope::encode`]: topic and id, then the bytes).
pub fn ws_frame(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.ws_frame, || {
        let mut out = Vec::new();
        match msg.kind {
            Kind::Text => {
                let json = json(msg);
                encode_frame(Opcode::Data(DataOpcode::Text), true, &json, &mut out);
            }
            Kind::Binary => {
                let mut payload = Vec::new();
                envelope::encode(&msg.topic, &msg.id, &msg.bytes(), &mut payload);
                encode_frame(Opcode::Data(DataOpcode::Binary), true, &payload, &mut out);
            }
        }
        out
    })
}

/// The payload length of the message's WebSocket frame (what
/// `--ws-deflate-threshold` is compared with, and what compression starts
/// from).
pub fn ws_payload_len(msg: &Message) -> usize {
    match msg.kind {
        Kind::Text => json(msg).len(),
        Kind::Binary => payload_len(&ws_frame(msg)),
    }
}

/// The message's WebSocket frame compressed with permessage-deflate
/// (RSV1 set), for a connection whose server window is `window_bits`.
///
/// Compressed once for every subscriber: the server never takes its context
/// over (RFC 7692 §7.1.1.1), so one compressed message is valid on every
/// connection. The shared form uses a 15-bit window; a connection that asked
/// for a smaller one (`server_max_window_bits`) shares it too when the JSON
/// fits in that window (no back-reference can then reach further), and
/// otherwise gets its own, not kept. When compression would not make the
/// payload smaller, this is the plain [`ws_frame`].
pub fn ws_deflate_frame(msg: &Message, window_bits: u8, deflate: &mut Deflate) -> Rc<[u8]> {
    // The payload to compress: the JSON of a text message, the envelope of
    // a binary one (read from its plain frame, past the header).
    let (opcode, source) = match msg.kind {
        Kind::Text => (DataOpcode::Text, json(msg)),
        Kind::Binary => (DataOpcode::Binary, ws_frame(msg)),
    };
    let payload = &source[source.len() - payload_len_of(msg.kind, &source)..];
    if window_bits >= 15 || payload.len() <= 1 << window_bits {
        let frame = form(msg, &msg.encoded.ws_deflate_frame, || {
            deflate.frame(opcode, payload, 15, true).unwrap_or_default()
        });
        if frame.is_empty() {
            return ws_frame(msg);
        }
        return frame;
    }
    match deflate.frame(opcode, payload, window_bits, true) {
        Some(frame) => frame.into(),
        None => ws_frame(msg),
    }
}

/// The length of the payload at the end of `source`: all of a text
/// message's JSON, the payload of a binary message's frame.
fn payload_len_of(kind: Kind, source: &[u8]) -> usize {
    match kind {
        Kind::Text => source.len(),
        Kind::Binary => payload_len(source),
    }
}

/// The fan-out of `msg` is over: drop its forms (queued output keeps what
/// it shares) and keep none made from now on.
pub fn release(msg: &Message) {
    msg.encoded.sealed.set(true);
    cached_bytes_clear(msg);
}

fn cached_bytes_clear(msg: &Message) {
    let e = &msg.encoded;
    for slot in [
        &e.json,
        &e.json_list_item,
        &e.sse_single,
        &e.sse_multi,
        &e.ws_frame,
        &e.ws_deflate_frame,
    ] {
        slot.clear();
    }
}

/// Bytes of forms the message holds now.
pub fn cached_bytes(msg: &Message) -> usize {
    let e = &msg.encoded;
    [
        &e.json,
        &e.json_list_item,
        &e.sse_single,
        &e.sse_multi,
        &e.ws_frame,
        &e.ws_deflate_frame,
    ]
    .iter()
    .map(|s| s.len())
    .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use crate::timers::Instant;
    use std::time::Duration;

    fn hostile() -> String {
        // Control characters (6× in JSON) and newlines (6× in SSE).
        (0..4096u32)
            .map(|i| if i % 2 == 0 { '\u{1}' } else { '\n' })
            .collect()
    }

    fn every_form(msg: &Message) -> Vec<Rc<[u8]>> {
        vec![
            json(msg),
            json_list_item(msg),
            sse_single(msg),
            sse_multi(msg),
            ws_frame(msg),
        ]
    }

    #[test]
    fn forms_are_shared_during_the_fan_out() {
        let mut hub = Hub::memory("e1", 8, Duration::from_secs(60));
        let msg = hub.publish("a", "hi\nthere", Instant::ZERO).unwrap();
        let first = every_form(&msg);
        let again = every_form(&msg);
        for (a, b) in first.iter().zip(&again) {
            assert!(Rc::ptr_eq(a, b), "encoded once, shared");
        }
        assert!(cached_bytes(&msg) > 0);
    }

    #[test]
    fn the_compressed_frame_is_made_once_shared_and_released() {
        let mut hub = Hub::memory("e1", 8, Duration::from_secs(60));
        let msg = hub
            .publish("a", &"hello, compressed world ".repeat(20), Instant::ZERO)
            .unwrap();
        let mut deflate = Deflate::default();
        let first = ws_deflate_frame(&msg, 15, &mut deflate);
        assert_eq!(first[0], 0xc1, "FIN, RSV1, text");
        assert!(first.len() < ws_frame(&msg).len() / 3);
        assert!(Rc::ptr_eq(
            &first,
            &ws_deflate_frame(&msg, 15, &mut deflate)
        ));
        // A smaller server window shares it when the JSON fits the window…
        assert!(Rc::ptr_eq(
            &first,
            &ws_deflate_frame(&msg, 10, &mut deflate)
        ));
        // …and gets its own when it does not.
        let own = ws_deflate_frame(&msg, 9, &mut deflate);
        assert!(!Rc::ptr_eq(&first, &own) && own[0] == 0xc1);
        release(&msg);
        assert_eq!(cached_bytes(&msg), 0);
        // A message compression cannot shrink goes as the plain frame.
        let tiny = hub.publish("a", "x", Instant::ZERO).unwrap();
        assert_eq!(ws_deflate_frame(&tiny, 15, &mut deflate), ws_frame(&tiny));
    }

    #[test]
    fn no_form_is_kept_after_the_fan_out_whatever_the_content() {
        let mut hub = Hub::memory("e1", 8, Duration::from_secs(60));
        let data = hostile();
        let msg = hub.publish("a", &data, Instant::ZERO).unwrap();
        let forms = every_form(&msg);
        for f in &forms {
            assert!(
                f.len() <= MAX_FORM_FACTOR * data.len() + MAX_FORM_OVERHEAD,
                "{} bytes for {}",
                f.len(),
                data.len()
            );
        }
        // The hostile content does grow several-fold in its forms…
        assert!(cached_bytes(&msg) > 20 * data.len());
        release(&msg);
        assert_eq!(cached_bytes(&msg), 0);
        // …but after the fan-out, reads make their own and keep none.
        let batch = hub.read(&["a".into()], &crate::hub::Cursor::All, Instant::ZERO);
        let again = every_form(&batch.messages[0]);
        assert_eq!(again[2], forms[2], "the same bytes");
        assert_eq!(cached_bytes(&msg), 0);
        // What the hub accounts for it is its size plus a fixed overhead.
        let usage = hub.usage();
        assert!(usage.history_bytes <= data.len() + crate::hub::MESSAGE_OVERHEAD + 512);
        assert!(msg.kept_cost() < data.len() + 512);
    }

    #[test]
    fn a_text_message_s_forms_carry_no_binary_marker() {
        let mut hub = Hub::memory("e1", 8, Duration::from_secs(60));
        let msg = hub.publish("a", "AP8=", Instant::ZERO).unwrap();
        let json_text = br#"{"topic":"a","id":"e1-1","data":"AP8="}"#;
        assert_eq!(&*json(&msg), json_text);
        assert_eq!(&*sse_single(&msg), b"id: e1-1\ndata: AP8=\n\n");
        let multi = [&b"id: e1-1\ndata: "[..], json_text, b"\n\n"].concat();
        assert_eq!(&*sse_multi(&msg), multi);
        let frame = [&[0x81, json_text.len() as u8][..], json_text].concat();
        assert_eq!(&*ws_frame(&msg), frame);
    }

    #[test]
    fn a_binary_message_s_forms_carry_base64_with_a_marker_and_its_frame_the_bytes() {
        let mut hub = Hub::memory("e1", 8, Duration::from_secs(60));
        let msg = hub
            .publish_binary("a", &[0, 0xff, b'\n'], Instant::ZERO)
            .unwrap();
        assert_eq!(&*msg.data, "AP8K");
        let json_binary = br#"{"topic":"a","id":"e1-1","encoding":"base64","data":"AP8K"}"#;
        assert_eq!(&*json(&msg), json_binary);
        assert_eq!(&*json_list_item(&msg), [&b","[..], json_binary].concat());
        assert_eq!(
            &*sse_single(&msg),
            b"event: binary\nid: e1-1\ndata: AP8K\n\n"
        );
        let multi = [
            &b"event: binary\nid: e1-1\ndata: "[..],
            json_binary,
            b"\n\n",
        ]
        .concat();
        assert_eq!(&*sse_multi(&msg), multi);
        // One binary frame: the envelope's header, then the raw bytes.
        let header = br#"{"topic":"a","id":"e1-1"}"#;
        let payload = [&[0, header.len() as u8][..], header, &[0, 0xff, b'\n']].concat();
        let frame = [&[0x82, payload.len() as u8][..], &payload].concat();
        assert_eq!(&*ws_frame(&msg), frame);
        assert_eq!(ws_payload_len(&msg), payload.len());
        // Shared during the fan-out, dropped after it, like a text message's.
        assert!(Rc::ptr_eq(&ws_frame(&msg), &ws_frame(&msg)));
        release(&msg);
        assert_eq!(cached_bytes(&msg), 0);
        assert_eq!(&*ws_frame(&msg), frame);
        assert_eq!(cached_bytes(&msg), 0);
    }

    #[test]
    fn a_binary_message_s_forms_stay_within_the_documented_growth() {
        let mut hub = Hub::memory("e1", 8, Duration::from_secs(60));
        let bytes: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let msg = hub.publish_binary("a", &bytes, Instant::ZERO).unwrap();
        assert_eq!(msg.data.len(), 4096 / 3 * 4 + 4, "kept as base64");
        for f in every_form(&msg) {
            assert!(f.len() <= MAX_FORM_FACTOR * msg.data.len() + MAX_FORM_OVERHEAD);
        }
        // The frame carries the bytes, smaller than the base64 kept.
        assert!(ws_frame(&msg).len() < msg.data.len());
        assert_eq!(
            msg.kept_cost(),
            msg.data.len() + msg.id.len() + crate::hub::MESSAGE_OVERHEAD
        );
    }

    proptest::proptest! {
        /// Any bytes published come back whole from every form: decoded
        /// from the JSON's and the SSE events' base64, sliced from the
        /// frame's envelope.
        #[test]
        fn any_bytes_round_trip_through_every_form(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let mut hub = Hub::memory("e1", 8, Duration::from_secs(60));
            let msg = hub.publish_binary("t", &bytes, Instant::ZERO).unwrap();
            proptest::prop_assert_eq!(msg.kind, crate::hub::Kind::Binary);
            proptest::prop_assert_eq!(&*msg.bytes(), &bytes[..]);
            let obj: serde_json::Value = serde_json::from_slice(&json(&msg)).unwrap();
            proptest::prop_assert_eq!(&obj["encoding"], "base64");
            let data = crate::hub::decode_binary(obj["data"].as_str().unwrap()).unwrap();
            proptest::prop_assert_eq!(&data, &bytes);
            let event = sse_single(&msg);
            let event = std::str::from_utf8(&event).unwrap();
            let line = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            proptest::prop_assert_eq!(crate::hub::decode_binary(line).unwrap(), bytes.clone());
            let frame = ws_frame(&msg);
            let payload = &frame[frame.len() - payload_len(&frame)..];
            let opened = envelope::decode(payload).unwrap();
            proptest::prop_assert_eq!(opened.topic.as_str(), "t");
            proptest::prop_assert_eq!(opened.data, &bytes[..]);
        }
    }
}

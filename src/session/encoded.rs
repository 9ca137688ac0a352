//! Every per-message wire form in one place: the JSON object (poll bodies,
//! WebSocket frames, multi-topic SSE data), the poll-list item, the SSE
//! events for one topic and for several, and the WebSocket text frame.
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

use super::deflate::Deflate;
use crate::hub::{Message, Slot};
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

/// The message's JSON object `{"topic":…,"id":…,"data":…}`.
pub fn json(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.json, || {
        json::encode_message(&msg.topic, &msg.id, &msg.data)
    })
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

/// The message as a single-topic SSE event: `id: E-N` then `data:` lines.
pub fn sse_single(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.sse_single, || {
        let mut out = Vec::new();
        encode_event(&mut out, Some(&msg.id), None, &msg.data);
        out
    })
}

/// The message as a multi-topic SSE event: `id: E-N` and one `data:` line
/// holding its JSON object (which contains no line ending).
pub fn sse_multi(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.sse_multi, || {
        let json = json(msg);
        let json = String::from_utf8_lossy(&json);
        let mut out = Vec::new();
        encode_event(&mut out, Some(&msg.id), None, &json);
        out
    })
}

/// The message as one unfragmented, unmasked WebSocket text frame holding
/// its JSON object.
pub fn ws_frame(msg: &Message) -> Rc<[u8]> {
    form(msg, &msg.encoded.ws_frame, || {
        let json = json(msg);
        let mut out = Vec::new();
        encode_frame(Opcode::Data(DataOpcode::Text), true, &json, &mut out);
        out
    })
}

/// The message's WebSocket text frame compressed with permessage-deflate
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
    let json = json(msg);
    if window_bits >= 15 || json.len() <= 1 << window_bits {
        let frame = form(msg, &msg.encoded.ws_deflate_frame, || {
            deflate.text_frame(&json, 15).unwrap_or_default()
        });
        if frame.is_empty() {
            return ws_frame(msg);
        }
        return frame;
    }
    match deflate.text_frame(&json, window_bits) {
        Some(frame) => frame.into(),
        None => ws_frame(msg),
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
}

//! WHATWG event-stream parser (`sse::Parser`) and encoder.
//!
//! Oracle: the same events, ids, retry and error however the bytes are
//! split; memory bounded by the limits; and an event encoded with
//! `encode_event` parses back to itself (CR and CRLF in the data read as
//! LF, as the module documents).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushlab::wire::sse::{
    encode_comment, encode_event, encode_retry, Decoded, Event, Parser, SseError,
};
use pushlab_fuzz::{control, split};

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<SseError>,
    last_event_id: String,
    retry: Option<u64>,
    comments: u64,
}

fn run(max_line: usize, max_event: usize, pieces: &[&[u8]]) -> Outcome {
    let mut p = Parser::with_limits(max_line, max_event);
    let mut events = Vec::new();
    let mut error = None;
    'feed: for piece in pieces {
        p.feed(piece);
        loop {
            match p.next_event() {
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Event(ev)) => {
                    assert!(ev.data.len() <= max_event);
                    events.push(ev);
                }
                Err(e) => {
                    assert_eq!(p.next_event(), Err(e), "failed for good");
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    Outcome {
        events,
        error,
        last_event_id: p.last_event_id().to_string(),
        retry: p.retry(),
        comments: p.comments(),
    }
}

fuzz_target!(|data: &[u8]| {
    let (seed, input) = control(data);
    let (max_line, max_event) = if seed & 0x80 != 0 {
        (
            usize::from(seed & 0x3f) + 1,
            usize::from(seed & 0x7f) * 3 + 1,
        )
    } else {
        (1 << 20, 1 << 20)
    };
    let whole = run(max_line, max_event, &[input]);
    let parts = run(max_line, max_event, &split(seed, input));
    assert_eq!(whole, parts, "events depend on how the bytes arrived");

    // Round trip: encode a message made from the input, parse it back.
    let text = String::from_utf8_lossy(input);
    let (head, data_part) =
        text.split_at(text.char_indices().nth(8).map_or(text.len(), |(i, _)| i));
    let clean = |s: &str| s.replace(['\r', '\n', '\0'], "");
    let id = (seed & 1 != 0).then(|| clean(head));
    let event = (seed & 2 != 0).then(|| clean(&head.chars().rev().collect::<String>()));
    let mut wire = Vec::new();
    encode_retry(&mut wire, u64::from(seed) * 100);
    encode_comment(&mut wire, data_part);
    encode_event(&mut wire, id.as_deref(), event.as_deref(), data_part);
    let got = run(usize::MAX, usize::MAX, &split(seed, &wire));
    assert_eq!(got.error, None);
    assert_eq!(got.retry, Some(u64::from(seed) * 100));
    let expected = Event {
        event_type: match event.as_deref() {
            None | Some("") => "message".to_string(),
            Some(e) => e.to_string(),
        },
        data: data_part.replace("\r\n", "\n").replace('\r', "\n"),
        last_event_id: id.unwrap_or_default(),
    };
    assert_eq!(got.events, vec![expected]);
});

//! What a subscriber receives, whatever the transport: a message, a gap
//! notice or a reset (docs/api.md § Wire formats). Decodes the poll body, the WebSocket
//! text frame and the SSE event into the same [`Update`].

use std::fmt;

use serde_json::Value;

use crate::wire::sse;

/// One thing a subscriber was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// A message: its id (the cursor after it) and its data.
    Message { id: String, data: String },
    /// `missed`: this many messages were evicted before the client got them.
    Missed(u64),
    /// `reset`: the cursor was from another epoch or the future.
    Reset,
}

/// A body or frame that is not what docs/api.md § Wire formats promises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

fn bad(what: &str, raw: &[u8]) -> DecodeError {
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
    DecodeError(format!("{what}: {shown}"))
}

/// A poll or long-poll body: the updates in order and the next cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollBody {
    pub updates: Vec<Update>,
    pub next: String,
}

impl PollBody {
    /// Whether the response carried no message (an "empty response").
    pub fn is_empty(&self) -> bool {
        !self
            .updates
            .iter()
            .any(|u| matches!(u, Update::Message { .. }))
    }
}

/// `{"messages":[{"topic","id","data"}…],"next","missed","reset"}`. The gap
/// and reset notices come before the messages, as they concern what came
/// before them.
pub fn decode_poll_body(body: &[u8]) -> Result<PollBody, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| bad("poll body is not JSON", body))?;
    let next = v["next"]
        .as_str()
        .ok_or_else(|| bad("poll body without `next`", body))?
        .to_string();
    let messages = v["messages"]
        .as_array()
        .ok_or_else(|| bad("poll body without `messages`", body))?;
    let mut updates = Vec::with_capacity(messages.len() + 2);
    if v["reset"].as_bool() == Some(true) {
        updates.push(Update::Reset);
    }
    match v["missed"].as_u64() {
        Some(0) | None => {}
        Some(n) => updates.push(Update::Missed(n)),
    }
    for m in messages {
        updates.push(message_of(m).ok_or_else(|| bad("poll message", body))?);
    }
    Ok(PollBody { updates, next })
}

fn message_of(m: &Value) -> Option<Update> {
    Some(Update::Message {
        id: m["id"].as_str()?.to_string(),
        data: m["data"].as_str()?.to_string(),
    })
}

/// One `/ws` text frame: a message object, `{"missed":n}` or
/// `{"reset":true}`.
pub fn decode_ws_text(text: &str) -> Result<Update, DecodeError> {
    let v: Value =
        serde_json::from_str(text).map_err(|_| bad("ws frame is not JSON", text.as_bytes()))?;
    if let Some(n) = v["missed"].as_u64() {
        return Ok(Update::Missed(n));
    }
    if v["reset"].as_bool() == Some(true) {
        return Ok(Update::Reset);
    }
    message_of(&v).ok_or_else(|| bad("ws frame", text.as_bytes()))
}

/// One SSE event of a single-topic `/events` stream: a `message` whose data
/// is the message and whose last event ID is its id, `missed` (data: the
/// count) or `reset`. Other event types are not pushlab's: `None`.
pub fn decode_sse_event(event: &sse::Event) -> Result<Option<Update>, DecodeError> {
    match event.event_type.as_str() {
        "message" => Ok(Some(Update::Message {
            id: event.last_event_id.clone(),
            data: event.data.clone(),
        })),
        "missed" => event
            .data
            .trim()
            .parse()
            .map(|n| Some(Update::Missed(n)))
            .map_err(|_| bad("missed event", event.data.as_bytes())),
        "reset" => Ok(Some(Update::Reset)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_poll_body_decodes() {
        let body = br#"{"messages":[{"topic":"T","id":"E-41","data":"a"},{"topic":"T","id":"E-42","data":"b"}],"next":"E-42","missed":0,"reset":false}"#;
        let p = decode_poll_body(body).unwrap();
        assert_eq!(p.next, "E-42");
        assert_eq!(
            p.updates,
            [
                Update::Message {
                    id: "E-41".into(),
                    data: "a".into()
                },
                Update::Message {
                    id: "E-42".into(),
                    data: "b".into()
                }
            ]
        );
        assert!(!p.is_empty());
    }

    #[test]
    fn an_empty_poll_body_with_a_gap_reports_it() {
        let p =
            decode_poll_body(br#"{"messages":[],"next":"E-9","missed":3,"reset":true}"#).unwrap();
        assert_eq!(p.updates, [Update::Reset, Update::Missed(3)]);
        assert!(p.is_empty());
        assert!(decode_poll_body(b"{}").is_err());
    }

    #[test]
    fn ws_frames_decode_to_the_three_kinds() {
        assert_eq!(
            decode_ws_text(r#"{"topic":"T","id":"E-42","data":"b"}"#),
            Ok(Update::Message {
                id: "E-42".into(),
                data: "b".into()
            })
        );
        assert_eq!(decode_ws_text(r#"{"missed":3}"#), Ok(Update::Missed(3)));
        assert_eq!(decode_ws_text(r#"{"reset":true}"#), Ok(Update::Reset));
        assert!(decode_ws_text("nope").is_err());
    }

    #[test]
    fn sse_events_decode_by_type() {
        let ev = |t: &str, data: &str| sse::Event {
            event_type: t.into(),
            data: data.into(),
            last_event_id: "E-5".into(),
        };
        assert_eq!(
            decode_sse_event(&ev("message", "x")),
            Ok(Some(Update::Message {
                id: "E-5".into(),
                data: "x".into()
            }))
        );
        assert_eq!(
            decode_sse_event(&ev("missed", "4")),
            Ok(Some(Update::Missed(4)))
        );
        assert_eq!(
            decode_sse_event(&ev("reset", "true")),
            Ok(Some(Update::Reset))
        );
        assert_eq!(decode_sse_event(&ev("other", "")), Ok(None));
    }
}

//! The JSON bodies of docs/api.md § Wire formats: one message object, the poll body, the
//! publish reply. Strings are escaped by `serde_json` (RFC 8259 §7).
//!
//! A poll body is built from pieces so that each message's JSON, made once
//! per message, is shared by every response that carries it:
//! [`POLL_OPEN`], the messages joined by `,`, then [`poll_close`].

pub use crate::ids::push_decimal;

/// `{"topic":"T","id":"E-N","data":"..."}` for one text message.
pub fn encode_message(topic: &str, id: &str, data: &str) -> Vec<u8> {
    encode_object(topic, id, None, data)
}

/// `{"topic":"T","id":"E-N","encoding":"base64","data":"..."}` for one
/// binary message, `base64` being its bytes' standard base64 (docs/api.md
/// § Binary messages).
pub fn encode_binary_message(topic: &str, id: &str, base64: &str) -> Vec<u8> {
    encode_object(topic, id, Some("base64"), base64)
}

fn encode_object(topic: &str, id: &str, encoding: Option<&str>, data: &str) -> Vec<u8> {
    let extra = encoding.map_or(0, |e| e.len() + 14);
    let mut out = Vec::with_capacity(data.len() + topic.len() + id.len() + 32 + extra);
    out.extend_from_slice(b"{\"topic\":");
    push_string(&mut out, topic);
    out.extend_from_slice(b",\"id\":");
    push_string(&mut out, id);
    if let Some(encoding) = encoding {
        out.extend_from_slice(b",\"encoding\":");
        push_string(&mut out, encoding);
    }
    out.extend_from_slice(b",\"data\":");
    push_string(&mut out, data);
    out.push(b'}');
    out
}

/// Appends `s` as a JSON string literal.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a &str always serialises.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The start of a poll body, before the first message.
pub const POLL_OPEN: &[u8] = b"{\"messages\":[";

/// The end of a poll body: closes the list and adds the cursor fields,
/// `next` being the id `epoch-next_seq` (written in place: no id string is
/// made for it).
pub fn poll_close(epoch: &str, next_seq: u64, missed: u64, reset: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + epoch.len());
    out.extend_from_slice(b"],\"next\":");
    push_id(&mut out, epoch, next_seq);
    out.extend_from_slice(b",\"missed\":");
    push_decimal(&mut out, missed);
    // The body ends with a newline, as every JSON body does (docs/api.md
    // § JSON bodies): `curl` output then ends its line.
    out.extend_from_slice(if reset {
        b",\"reset\":true}\n"
    } else {
        b",\"reset\":false}\n"
    });
    out
}

/// Appends the id `epoch-seq` as a JSON string literal.
pub fn push_id(out: &mut Vec<u8>, epoch: &str, seq: u64) {
    if epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
        // Nothing to escape: the epochs the hubs make.
        out.push(b'"');
        out.extend_from_slice(epoch.as_bytes());
        out.push(b'-');
        push_decimal(out, seq);
        out.push(b'"');
    } else {
        push_string(out, &format!("{epoch}-{seq}"));
    }
}

/// `{"topic":"T","id":"E-N"}` and a newline, the publish reply.
pub fn publish_reply(topic: &str, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + topic.len() + id.len());
    out.extend_from_slice(b"{\"topic\":");
    push_string(&mut out, topic);
    out.extend_from_slice(b",\"id\":");
    push_string(&mut out, id);
    out.extend_from_slice(b"}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_body_assembled_from_pieces_is_the_documented_json() {
        let mut body = POLL_OPEN.to_vec();
        body.extend(encode_message("T", "E-41", "a"));
        body.push(b',');
        body.extend(encode_message("T", "E-42", "b\"\n"));
        body.extend(poll_close("E", 42, 0, false));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"messages":[{"topic":"T","id":"E-41","data":"a"},
                {"topic":"T","id":"E-42","data":"b\"\n"}],"next":"E-42","missed":0,"reset":false})
        );
    }

    #[test]
    fn a_binary_message_object_names_its_encoding_before_its_data() {
        assert_eq!(
            encode_binary_message("T", "E-1", "AP8="),
            br#"{"topic":"T","id":"E-1","encoding":"base64","data":"AP8="}"#
        );
        // A text message's object has no such member.
        assert_eq!(
            encode_message("T", "E-1", "AP8="),
            br#"{"topic":"T","id":"E-1","data":"AP8="}"#
        );
    }

    #[test]
    fn ids_are_written_as_the_json_of_their_string() {
        for (epoch, seq) in [
            ("mi8dfxmo", 0),
            ("E", 42),
            ("e1", u64::MAX),
            ("a\"b", 7),
            ("é", 1),
        ] {
            let mut out = Vec::new();
            push_id(&mut out, epoch, seq);
            let mut expected = Vec::new();
            push_string(&mut expected, &format!("{epoch}-{seq}"));
            assert_eq!(out, expected, "{epoch}");
        }
        let v: serde_json::Value =
            serde_json::from_slice(&[POLL_OPEN, &poll_close("x", 3, 2, true)[..]].concat())
                .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"messages":[],"next":"x-3","missed":2,"reset":true})
        );
    }

    #[test]
    fn the_publish_reply_names_topic_and_id() {
        let v: serde_json::Value = serde_json::from_slice(&publish_reply("T", "E-1")).unwrap();
        assert_eq!(v, serde_json::json!({"topic":"T","id":"E-1"}));
    }
}

//! The envelope of a binary message on `/ws` (docs/websocket.md § Binary
//! messages): one WebSocket binary frame (RFC 6455 §5.6, opcode %x2) whose
//! payload names the message's topic and id, then carries its bytes as
//! they were published.
//!
//! ```text
//! payload = header length n (2, big-endian) | header (n bytes) | data (the rest)
//! header  = a JSON object: {"topic":T,"id":I} from the server;
//!           at least {"topic":T} from a client (other members are ignored)
//! ```
//!
//! Why this shape: a text frame holds a message's JSON object, but JSON
//! cannot hold raw bytes, and a binary frame alone cannot say which topic
//! and id its bytes belong to. A prefix of known length keeps the whole
//! message in one frame (nothing to pair up across frames, no state in the
//! client), leaves the bytes untouched after it (no escaping, no base64:
//! a client slices them out), and the header is the JSON a client already
//! parses for text messages, so it can grow members without a new format.
//! Two bytes of length are enough: a topic is at most 128 bytes
//! (`config::MAX_TOPIC_LEN`) and an id a few dozen; big-endian as every
//! length in RFC 6455's own framing.
//!
//! Left out: a header that is not an object, or whose `topic` is not a
//! string, is refused ([`EnvelopeError`]); nothing else of it is checked.

use std::fmt;

use super::json::push_string;

/// Bytes before the header: its length.
pub const LENGTH_BYTES: usize = 2;

/// Longest header a 2-byte length can announce.
pub const MAX_HEADER_LEN: usize = u16::MAX as usize;

/// Appends the envelope of a message (`topic`, `id`, `data`) to `out`.
///
/// # Panics
///
/// When the header is longer than [`MAX_HEADER_LEN`] (a topic and an id
/// are hundreds of bytes at most).
pub fn encode(topic: &str, id: &str, data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(LENGTH_BYTES + topic.len() + id.len() + 20 + data.len());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(b"{\"topic\":");
    push_string(out, topic);
    out.extend_from_slice(b",\"id\":");
    push_string(out, id);
    out.push(b'}');
    let header_len = out.len() - start - LENGTH_BYTES;
    let n = u16::try_from(header_len).expect("an envelope header fits in 64 KiB");
    out[start..start + LENGTH_BYTES].copy_from_slice(&n.to_be_bytes());
    out.extend_from_slice(data);
}

/// An envelope read from a client's binary frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The header's `topic`.
    pub topic: String,
    /// The message's bytes.
    pub data: &'a [u8],
}

/// Why a payload is not an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Fewer than 2 bytes: no header length.
    NoLength,
    /// The header length points past the end of the payload.
    HeaderPastEnd,
    /// The header is not a JSON object.
    HeaderNotObject,
    /// The header has no `topic` string.
    NoTopic,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnvelopeError::NoLength => "binary envelope without its 2-byte header length",
            EnvelopeError::HeaderPastEnd => "binary envelope header longer than the frame",
            EnvelopeError::HeaderNotObject => "binary envelope header is not a JSON object",
            EnvelopeError::NoTopic => "binary envelope header has no \"topic\" string",
        })
    }
}

impl std::error::Error for EnvelopeError {}

/// Reads the envelope of a binary frame's `payload`.
pub fn decode(payload: &[u8]) -> Result<Opened<'_>, EnvelopeError> {
    let Some((length, rest)) = payload.split_first_chunk::<LENGTH_BYTES>() else {
        return Err(EnvelopeError::NoLength);
    };
    let n = usize::from(u16::from_be_bytes(*length));
    if n > rest.len() {
        return Err(EnvelopeError::HeaderPastEnd);
    }
    let (header, data) = rest.split_at(n);
    let Ok(serde_json::Value::Object(mut header)) = serde_json::from_slice(header) else {
        return Err(EnvelopeError::HeaderNotObject);
    };
    let Some(serde_json::Value::String(topic)) = header.remove("topic") else {
        return Err(EnvelopeError::NoTopic);
    };
    Ok(Opened { topic, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_envelope_is_laid_out_as_documented() {
        let mut out = Vec::new();
        encode("t", "e1-7", &[0, 0xff, b'\n'], &mut out);
        let header = br#"{"topic":"t","id":"e1-7"}"#;
        assert_eq!(&out[..2], &(header.len() as u16).to_be_bytes());
        assert_eq!(&out[2..2 + header.len()], header);
        assert_eq!(&out[2 + header.len()..], &[0, 0xff, b'\n']);
        assert_eq!(
            decode(&out).unwrap(),
            Opened {
                topic: "t".into(),
                data: &[0, 0xff, b'\n'],
            }
        );
    }

    #[test]
    fn a_client_envelope_needs_only_the_topic() {
        let mut p = vec![0, 13];
        p.extend_from_slice(br#"{"topic":"a"}"#);
        p.extend_from_slice(b"raw");
        let opened = decode(&p).unwrap();
        assert_eq!((opened.topic.as_str(), opened.data), ("a", &b"raw"[..]));
        // An empty message, and a header with more members.
        let mut p = vec![0, 23];
        p.extend_from_slice(br#"{"id":"x","topic":"b"} "#);
        assert_eq!(decode(&p).unwrap().data, b"");
    }

    #[test]
    fn what_is_not_an_envelope_is_refused_with_its_reason() {
        for (payload, why) in [
            (&b""[..], EnvelopeError::NoLength),
            (b"\x00", EnvelopeError::NoLength),
            (b"\x00\x05{}", EnvelopeError::HeaderPastEnd),
            (b"\x00\x02[]", EnvelopeError::HeaderNotObject),
            (b"\x00\x03{\"a", EnvelopeError::HeaderNotObject),
            (b"\x00\x00raw", EnvelopeError::HeaderNotObject),
            (b"\x00\x02{}", EnvelopeError::NoTopic),
            (b"\x00\x0b{\"topic\":1}", EnvelopeError::NoTopic),
        ] {
            assert_eq!(decode(payload), Err(why), "{payload:?}");
        }
    }

    proptest! {
        /// Any bytes under any topic and id come back out unchanged.
        #[test]
        fn any_bytes_round_trip(
            topic in "[A-Za-z0-9._~-]{1,128}",
            id in "[a-z0-9]{1,12}-[0-9]{1,19}",
            data in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut out = Vec::new();
            encode(&topic, &id, &data, &mut out);
            let opened = decode(&out).unwrap();
            prop_assert_eq!(opened.topic, topic);
            prop_assert_eq!(opened.data, &data[..]);
        }

        /// Decoding never panics, whatever the payload.
        #[test]
        fn any_payload_is_an_envelope_or_a_reason(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = decode(&payload);
        }
    }
}

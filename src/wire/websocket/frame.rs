//! The base framing protocol, RFC 6455 §5.2.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! This file only turns header bytes into a [`FrameHeader`] and back. Which
//! headers are *allowed* (masking by role, RSV bits, control-frame limits,
//! fragmentation order) is decided in `protocol.rs`, which owns every rule.
//!
//! Simplification: a received length that is not minimally encoded (say 5
//! written in the 16-bit form) is accepted; §5.2's "the minimal number of
//! bytes MUST be used" is enforced on output only.

use super::error::ProtocolError;
use super::mask::apply_mask;

/// The longest header: 2 fixed bytes, 8 bytes of length, 4 of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// RFC 6455 §5.5: "All control frames MUST have a payload length of 125
/// bytes or less".
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The opcodes of data frames, RFC 6455 §5.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataOpcode {
    /// %x0 denotes a continuation frame.
    Continue,
    /// %x1 denotes a text frame.
    Text,
    /// %x2 denotes a binary frame.
    Binary,
}

/// The opcodes of control frames, RFC 6455 §5.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlOpcode {
    /// %x8 denotes a connection close.
    Close,
    /// %x9 denotes a ping.
    Ping,
    /// %xA denotes a pong.
    Pong,
}

/// A frame's opcode: data or control is in the type (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// %x0-2: continuation, text, binary.
    Data(DataOpcode),
    /// %x8-A: close, ping, pong.
    Control(ControlOpcode),
    /// %x3-7 are reserved for further non-control frames, %xB-F for further
    /// control frames. The value is the 4-bit opcode.
    Reserved(u8),
}

impl Opcode {
    /// The opcode in the low 4 bits of `bits` (the high bits are ignored).
    pub fn from_bits(bits: u8) -> Opcode {
        match bits & 0x0f {
            0x0 => Opcode::Data(DataOpcode::Continue),
            0x1 => Opcode::Data(DataOpcode::Text),
            0x2 => Opcode::Data(DataOpcode::Binary),
            0x8 => Opcode::Control(ControlOpcode::Close),
            0x9 => Opcode::Control(ControlOpcode::Ping),
            0xa => Opcode::Control(ControlOpcode::Pong),
            other => Opcode::Reserved(other),
        }
    }

    /// The 4-bit value on the wire.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Data(DataOpcode::Continue) => 0x0,
            Opcode::Data(DataOpcode::Text) => 0x1,
            Opcode::Data(DataOpcode::Binary) => 0x2,
            Opcode::Control(ControlOpcode::Close) => 0x8,
            Opcode::Control(ControlOpcode::Ping) => 0x9,
            Opcode::Control(ControlOpcode::Pong) => 0xa,
            Opcode::Reserved(bits) => bits & 0x0f,
        }
    }

    /// RFC 6455 §5.5: "Control frames are identified by opcodes where the
    /// most significant bit of the opcode is 1."
    pub fn is_control(self) -> bool {
        self.bits() & 0x08 != 0
    }
}

/// Everything before the payload of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// "Indicates that this is the final fragment in a message."
    pub fin: bool,
    /// Reserved for extensions; must be 0 when none is negotiated.
    pub rsv1: bool,
    /// Reserved for extensions.
    pub rsv2: bool,
    /// Reserved for extensions.
    pub rsv3: bool,
    /// "Defines the interpretation of the Payload data."
    pub opcode: Opcode,
    /// The masking key; `Some` exactly when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes, at most 2^63 - 1.
    pub payload_len: u64,
}

impl FrameHeader {
    /// A header for an unfragmented, unmasked frame without RSV bits.
    pub fn new(opcode: Opcode, fin: bool, mask: Option<[u8; 4]>, payload_len: u64) -> Self {
        FrameHeader {
            fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len,
        }
    }

    /// How many bytes [`encode_header`] writes for this header.
    pub fn encoded_len(&self) -> usize {
        let length = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + length + if self.mask.is_some() { 4 } else { 0 }
    }
}

/// The result of an incremental decode: the name says which case it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A whole value, taken from the first `consumed` bytes of the input.
    Complete {
        /// The decoded value.
        value: T,
        /// How many input bytes it took.
        consumed: usize,
    },
    /// Not enough input: call again once the buffer holds at least `needed`
    /// bytes in total.
    Incomplete {
        /// The input length (from the start) to call again with.
        needed: usize,
    },
}

/// Decodes a frame header from the start of `buf`.
///
/// Never reads past `buf` and never past the header: the payload that may
/// follow is left to the caller. Returns [`Decoded::Incomplete`] with the
/// total length needed so far (2, then the full header length once the
/// second byte is known).
///
/// # Errors
///
/// [`ProtocolError::LengthMsbSet`] when a 64-bit length has its most
/// significant bit set.
pub fn decode_header(buf: &[u8]) -> Result<Decoded<FrameHeader>, ProtocolError> {
    let (first, second) = match buf {
        [first, second, ..] => (*first, *second),
        _ => return Ok(Decoded::Incomplete { needed: 2 }),
    };
    let masked = second & 0x80 != 0;
    let (length_len, short_len) = match second & 0x7f {
        126 => (2, None),
        127 => (8, None),
        len => (0, Some(u64::from(len))),
    };
    let header_len = 2 + length_len + if masked { 4 } else { 0 };
    if buf.len() < header_len {
        return Ok(Decoded::Incomplete { needed: header_len });
    }
    let payload_len = match short_len {
        Some(len) => len,
        None => {
            let mut bytes = [0u8; 8];
            bytes[8 - length_len..].copy_from_slice(&buf[2..2 + length_len]);
            let len = u64::from_be_bytes(bytes);
            // RFC 6455 §5.2: "the most significant bit MUST be 0".
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthMsbSet);
            }
            len
        }
    };
    let mask = if masked {
        let at = 2 + length_len;
        Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
    } else {
        None
    };
    Ok(Decoded::Complete {
        value: FrameHeader {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            rsv2: first & 0x20 != 0,
            rsv3: first & 0x10 != 0,
            opcode: Opcode::from_bits(first),
            mask,
            payload_len,
        },
        consumed: header_len,
    })
}

/// Appends the header's bytes to `out`, with the shortest length encoding.
pub fn encode_header(h: &FrameHeader, out: &mut Vec<u8>) {
    let first = (u8::from(h.fin) << 7)
        | (u8::from(h.rsv1) << 6)
        | (u8::from(h.rsv2) << 5)
        | (u8::from(h.rsv3) << 4)
        | h.opcode.bits();
    let mask_bit = if h.mask.is_some() { 0x80 } else { 0 };
    out.push(first);
    // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the
    // length".
    match h.payload_len {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(key) = h.mask {
        out.extend_from_slice(&key);
    }
}

/// Appends a whole unmasked frame to `out`, as a server sends it.
///
/// RFC 6455 §5.1: "A server MUST NOT mask any frames that it sends to the
/// client."
pub fn encode_frame(opcode: Opcode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader::new(opcode, fin, None, payload.len() as u64);
    out.reserve(header.encoded_len() + payload.len());
    encode_header(&header, out);
    out.extend_from_slice(payload);
}

/// Appends a whole unmasked frame whose payload is a compressed message
/// (permessage-deflate), RSV1 set: RFC 7692 §6 marks a compressed message
/// by the "Per-Message Compressed" bit on its first frame, and an
/// unfragmented message is its own first frame.
pub fn encode_compressed_frame(opcode: DataOpcode, payload: &[u8], out: &mut Vec<u8>) {
    let mut header = FrameHeader::new(Opcode::Data(opcode), true, None, payload.len() as u64);
    header.rsv1 = true;
    out.reserve(header.encoded_len() + payload.len());
    encode_header(&header, out);
    out.extend_from_slice(payload);
}

/// Appends a whole frame masked with `key` to `out`, as a client sends it.
///
/// RFC 6455 §5.3 wants the key "derived from a strong source of entropy";
/// choosing it is the caller's business.
pub fn encode_masked_frame(
    opcode: Opcode,
    fin: bool,
    key: [u8; 4],
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let header = FrameHeader::new(opcode, fin, Some(key), payload.len() as u64);
    out.reserve(header.encoded_len() + payload.len());
    encode_header(&header, out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT: Opcode = Opcode::Data(DataOpcode::Text);
    const BINARY: Opcode = Opcode::Data(DataOpcode::Binary);
    const CONTINUE: Opcode = Opcode::Data(DataOpcode::Continue);
    const PING: Opcode = Opcode::Control(ControlOpcode::Ping);
    const PONG: Opcode = Opcode::Control(ControlOpcode::Pong);

    fn frame(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(opcode, fin, payload, &mut out);
        out
    }

    fn masked(opcode: Opcode, fin: bool, key: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_masked_frame(opcode, fin, key, payload, &mut out);
        out
    }

    // RFC 6455 §5.7 examples.

    #[test]
    fn rfc_single_frame_unmasked_text() {
        assert_eq!(
            frame(TEXT, true, b"Hello"),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
    }

    #[test]
    fn rfc_single_frame_masked_text() {
        assert_eq!(
            masked(TEXT, true, [0x37, 0xfa, 0x21, 0x3d], b"Hello"),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn rfc_fragmented_unmasked_text() {
        assert_eq!(frame(TEXT, false, b"Hel"), [0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert_eq!(frame(CONTINUE, true, b"lo"), [0x80, 0x02, 0x6c, 0x6f]);
    }

    #[test]
    fn rfc_unmasked_ping_and_masked_pong() {
        assert_eq!(
            frame(PING, true, b"Hello"),
            [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            masked(PONG, true, [0x37, 0xfa, 0x21, 0x3d], b"Hello"),
            [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn rfc_256_byte_binary_uses_16_bit_length() {
        let bytes = frame(BINARY, true, &[0u8; 256]);
        assert_eq!(bytes[..4], [0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(bytes.len(), 4 + 256);
    }

    #[test]
    fn rfc_64_kib_binary_uses_64_bit_length() {
        let bytes = frame(BINARY, true, &vec![0u8; 65536]);
        assert_eq!(
            bytes[..10],
            [0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
        assert_eq!(bytes.len(), 10 + 65536);
    }

    #[test]
    fn decoding_the_rfc_masked_hello_header() {
        let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f];
        assert_eq!(
            decode_header(&bytes),
            Ok(Decoded::Complete {
                value: FrameHeader::new(TEXT, true, Some([0x37, 0xfa, 0x21, 0x3d]), 5),
                consumed: 6,
            })
        );
    }

    #[test]
    fn partial_header_is_incomplete_and_names_the_bytes_needed() {
        assert_eq!(decode_header(&[]), Ok(Decoded::Incomplete { needed: 2 }));
        assert_eq!(
            decode_header(&[0x82]),
            Ok(Decoded::Incomplete { needed: 2 })
        );
        assert_eq!(
            decode_header(&[0x82, 0x7f, 0, 0]),
            Ok(Decoded::Incomplete { needed: 10 })
        );
        assert_eq!(
            decode_header(&[0x82, 0xfe, 0, 1, 0xaa]),
            Ok(Decoded::Incomplete { needed: 8 })
        );
    }

    #[test]
    fn length_with_most_significant_bit_set_is_rejected() {
        let bytes = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(decode_header(&bytes), Err(ProtocolError::LengthMsbSet));
    }

    #[test]
    fn reserved_opcodes_and_rsv_bits_decode_faithfully() {
        let Ok(Decoded::Complete { value, .. }) = decode_header(&[0x7b, 0x00]) else {
            panic!("two bytes are a whole header");
        };
        assert!(!value.fin && value.rsv1 && value.rsv2 && value.rsv3);
        assert_eq!(value.opcode, Opcode::Reserved(0xb));
        assert!(value.opcode.is_control());
    }

    fn any_opcode() -> impl Strategy<Value = Opcode> {
        (0u8..16).prop_map(Opcode::from_bits)
    }

    fn boundary_len() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(125),
            Just(126),
            Just(65535),
            Just(65536),
            Just(u64::MAX >> 1),
            0u64..=(u64::MAX >> 1),
        ]
    }

    proptest! {
        #[test]
        fn header_encode_then_decode_round_trips(
            fin in any::<bool>(),
            rsv in any::<[bool; 3]>(),
            opcode in any_opcode(),
            mask in any::<Option<[u8; 4]>>(),
            payload_len in boundary_len(),
            trailing in proptest::collection::vec(any::<u8>(), 0..4),
        ) {
            let header = FrameHeader {
                fin, rsv1: rsv[0], rsv2: rsv[1], rsv3: rsv[2], opcode, mask, payload_len,
            };
            let mut bytes = Vec::new();
            encode_header(&header, &mut bytes);
            prop_assert_eq!(bytes.len(), header.encoded_len());
            let header_len = bytes.len();
            // Every strict prefix is incomplete, never an error.
            for cut in 0..header_len {
                let is_incomplete =
                    matches!(decode_header(&bytes[..cut]), Ok(Decoded::Incomplete { needed }) if needed > cut);
                prop_assert!(is_incomplete);
            }
            // Payload bytes after the header are not consumed.
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(
                decode_header(&bytes),
                Ok(Decoded::Complete { value: header, consumed: header_len })
            );
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = decode_header(&bytes);
        }
    }
}

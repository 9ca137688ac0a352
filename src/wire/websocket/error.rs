//! What can go wrong on a WebSocket connection, and the close code (RFC 6455
//! §7.4) that tells the peer: [`ProtocolError`], one variant per violated
//! rule, and [`CloseCode`].
//!
//! This file imports nothing, so the frame codec (`frame.rs`), the close body
//! (`close.rs`) and the connection machine (`protocol.rs`) all report errors
//! without importing each other.

use std::fmt;

/// A close status code, RFC 6455 §7.4.1, with the names of the IANA
/// "WebSocket Close Code Number Registry".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the endpoint terminates the connection due to a protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a type of data the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code was present. Never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame. Never sent on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data within a message was not consistent with its type
    /// (non-UTF-8 data within a text message).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message is too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client) the server did not negotiate a required extension.
    pub const MANDATORY_EXT: CloseCode = CloseCode(1010);
    /// 1011: (server) an unexpected condition prevented fulfilling the request.
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// 1013 (IANA registry, "Try Again Later"): the server is overloaded
    /// for now; the client may reconnect later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether a peer may put this code in a close frame.
    ///
    /// RFC 6455 §7.4.1 and §7.4.2 with the IANA registry:
    ///
    /// | codes | on the wire |
    /// | --- | --- |
    /// | 0–999 | invalid: "not used" |
    /// | 1000–1003 | valid |
    /// | 1004 | invalid: reserved |
    /// | 1005, 1006 | invalid: "MUST NOT be set as a status code in a Close control frame" |
    /// | 1007–1011 | valid |
    /// | 1012–1014 | valid: registered by IANA (Service Restart, Try Again Later, Bad Gateway) |
    /// | 1015 | invalid: TLS handshake failure, never sent |
    /// | 1016–2999 | invalid: reserved for this protocol and its extensions, unregistered |
    /// | 3000–4999 | valid: libraries, frameworks and applications |
    /// | 5000 and up | invalid: outside every range the RFC defines |
    ///
    /// Autobahn case 7.7.* expects 1000–1003, 1007–1011, 3000, 3999, 4000
    /// and 4999 to be accepted; case 7.9.* expects 0, 999, 1004–1006, 1016,
    /// 1100, 2000 and 2999 to fail the connection with 1002. It sends neither
    /// 1012–1014 nor 1015, so for those the registry decides.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A violated rule of RFC 6455, each with its close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// §5.1: "The server MUST close the connection upon receiving a frame
    /// that is not masked."
    UnmaskedFrame,
    /// §5.1: "A client MUST close a connection if it detects a masked frame."
    MaskedFrame,
    /// §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated" (RSV1 is
    /// permessage-deflate's, RFC 7692 §6, when it was negotiated).
    ReservedBitsSet,
    /// §5.2: "If an unknown opcode is received, the receiving endpoint MUST
    /// _Fail the WebSocket Connection_." The value is the opcode.
    ReservedOpcode(u8),
    /// §5.2: a 64-bit length's "most significant bit MUST be 0".
    LengthMsbSet,
    /// §5.5: "Control frames themselves MUST NOT be fragmented."
    FragmentedControlFrame,
    /// §5.5: "All control frames MUST have a payload length of 125 bytes or
    /// less". The value is the announced length.
    ControlFrameTooLong(u64),
    /// §5.4: a continuation frame with no fragmented message to continue.
    UnexpectedContinuation,
    /// §5.4: a new text or binary frame while a fragmented message is still
    /// open ("fragments of one message MUST NOT be interleaved").
    ExpectedContinuation,
    /// §10.4: the message is larger than this endpoint accepts.
    MessageTooBig {
        /// The limit the message went over.
        max: usize,
    },
    /// §8.1: a text message is not valid UTF-8.
    InvalidUtf8,
    /// §5.5.1: a close body of one byte cannot hold the 2-byte status code.
    CloseCodeTruncated,
    /// §7.4: the close status code may not be sent on the wire.
    InvalidCloseCode(u16),
    /// §5.5.1 and §8.1: the close reason is not valid UTF-8.
    InvalidCloseReason,
    /// RFC 7692 §6: the "Per-Message Compressed" bit (RSV1) MUST NOT be set
    /// on control frames nor on the non-first fragments of a data message,
    /// and a receiver MUST fail the connection on such a frame.
    CompressedNotFirstFrame,
    /// RFC 7692 §7.2.2: the payload of a compressed message is not valid
    /// DEFLATE data (or refers to history the agreed parameters drop): the
    /// message's data is "not consistent with the type of the message".
    InvalidCompressedData,
}

impl ProtocolError {
    /// The code of the close frame the caller sends before closing TCP.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            ProtocolError::MessageTooBig { .. } => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnmaskedFrame => f.write_str("client frame is not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame is masked"),
            ProtocolError::ReservedBitsSet => f.write_str("RSV bits set without an extension"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::LengthMsbSet => f.write_str("payload length has its top bit set"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::ControlFrameTooLong(len) => {
                write!(f, "control frame payload of {len} bytes (max 125)")
            }
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message to continue")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::MessageTooBig { max } => {
                write!(f, "message larger than {max} bytes")
            }
            ProtocolError::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            ProtocolError::CloseCodeTruncated => f.write_str("close frame body of one byte"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            ProtocolError::CompressedNotFirstFrame => {
                f.write_str("RSV1 set on a control frame or a continuation frame")
            }
            ProtocolError::InvalidCompressedData => f.write_str("invalid compressed data"),
        }
    }
}

impl std::error::Error for ProtocolError {}

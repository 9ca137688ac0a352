//! The WebSocket protocol, [RFC 6455](https://www.rfc-editor.org/rfc/rfc6455),
//! as pure codecs: bytes in, values or events out, and back. No socket, no
//! clock: the session layer owns those.
//!
//! | file | RFC 6455 | what |
//! | --- | --- | --- |
//! | `handshake.rs` | §4.2.1, §4.2.2, §4.4, §10.2 | validate the client's opening handshake, `Sec-WebSocket-Accept`, the `101` head, the origin policy |
//! | `frame.rs` | §5.2, §5.5, §5.6, §5.7 | frame headers: opcodes (data / control / reserved), lengths, masking key |
//! | `mask.rs` | §5.3 | (un)masking a payload, a word at a time, chunk by chunk |
//! | `error.rs` | §7.4 | every violated rule as a [`ProtocolError`], and the close status codes ([`CloseCode`]) that report them |
//! | `close.rs` | §5.5.1 | the close frame body |
//! | `deflate.rs` | RFC 7692 §5, §7 | permessage-deflate: the offers and the response, compressing and inflating a message |
//! | `protocol.rs` | §5.1, §5.4, §5.5, §7, §8.1, §10.4 | the connection machine: masking rules, fragmentation, control frames, UTF-8, size limit, closing handshake |
//!
//! Start with [`Protocol`]: its doc states what the caller must do after each
//! event.
//!
//! Left out:
//!
//! - Extensions (§9) other than permessage-deflate (RFC 7692, `deflate.rs`,
//!   enabled on a [`Protocol`] by [`Protocol::enable_deflate`]): RSV2 and
//!   RSV3, and RSV1 without permessage-deflate, fail the connection.
//! - Subprotocols (§1.9, `Sec-WebSocket-Protocol`): the server never selects
//!   one; the request header is ignored and the response carries none.
//! - The client's opening handshake (§4.1): only the client's framing is
//!   here ([`encode_masked_frame`], [`Role::Client`]), for test and load
//!   clients.
//! - TLS (`wss://`, §10.6) and timeouts (the closing handshake's wait):
//!   the server's business.
//!
//! Departures from the RFC are marked `Simplification:` where they happen.

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod protocol;

pub use close::{decode_close_payload, encode_close_payload};
pub use error::{CloseCode, ProtocolError};
pub use frame::{
    decode_header, encode_compressed_frame, encode_frame, encode_header, encode_masked_frame,
    ControlOpcode, DataOpcode, Decoded, FrameHeader, Opcode,
};
pub use handshake::{
    accept_key, encode_response, encode_response_with_extensions, origin_allowed, validate_request,
    Handshake, HandshakeError,
};
pub use mask::apply_mask;
pub use protocol::{Event, Protocol, Role, State};

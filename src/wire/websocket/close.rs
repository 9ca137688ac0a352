//! Close frames: the close payload (RFC 6455 §5.5.1) around a status code
//! ([`CloseCode`], §7.4, defined in `error.rs` beside the errors it reports).
//!
//! "If there is a body, the first two bytes of the body MUST be a 2-byte
//! unsigned integer (in network byte order) representing a status code with
//! value /code/ defined in Section 7.4. Following the 2-byte integer, the
//! body MAY contain UTF-8-encoded data with value /reason/".

use super::error::{CloseCode, ProtocolError};
use super::frame::MAX_CONTROL_PAYLOAD;

/// The longest reason that fits a control frame after the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Reads the payload of a received close frame.
///
/// An empty payload gives `(None, "")`: the peer sent no status code (the
/// API-level code is then [`CloseCode::NO_STATUS`]).
///
/// # Errors
///
/// - one byte: [`ProtocolError::CloseCodeTruncated`] (1002);
/// - a code not [`CloseCode::is_valid_on_wire`]: [`ProtocolError::InvalidCloseCode`] (1002);
/// - a reason that is not UTF-8: [`ProtocolError::InvalidCloseReason`] (1007).
pub fn decode_close_payload(payload: &[u8]) -> Result<(Option<CloseCode>, &str), ProtocolError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(ProtocolError::CloseCodeTruncated),
        [high, low, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*high, *low]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            // RFC 6455 §5.5.1: the reason is "UTF-8-encoded data"; §8.1:
            // invalid UTF-8 fails the connection.
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok((Some(code), reason))
        }
    }
}

/// Appends a close payload (`code` then `reason`) to `out`.
///
/// Simplification: a reason longer than [`MAX_CLOSE_REASON`] bytes is cut at
/// the last character boundary that fits, so the frame stays a valid control
/// frame; callers wanting the whole text must keep it short.
pub fn encode_close_payload(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(truncate_reason(reason).as_bytes());
}

fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_close_payload_has_no_code() {
        assert_eq!(decode_close_payload(&[]), Ok((None, "")));
    }

    #[test]
    fn one_byte_close_payload_is_a_protocol_error() {
        let err = decode_close_payload(&[0x03]).unwrap_err();
        assert_eq!(err, ProtocolError::CloseCodeTruncated);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn code_and_reason_decode() {
        assert_eq!(
            decode_close_payload(b"\x03\xe8bye"),
            Ok((Some(CloseCode::NORMAL), "bye"))
        );
    }

    #[test]
    fn codes_autobahn_calls_valid_are_accepted() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let payload = u16::to_be_bytes(code);
            assert_eq!(
                decode_close_payload(&payload),
                Ok((Some(CloseCode(code)), "")),
                "{code}"
            );
        }
    }

    #[test]
    fn codes_autobahn_calls_invalid_fail_with_protocol_error() {
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let err = decode_close_payload(&u16::to_be_bytes(code)).unwrap_err();
            assert_eq!(err, ProtocolError::InvalidCloseCode(code));
            assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn iana_registered_codes_1012_to_1014_are_accepted() {
        for code in 1012..=1014 {
            assert!(CloseCode(code).is_valid_on_wire());
        }
    }

    #[test]
    fn reason_that_is_not_utf8_is_invalid_payload() {
        let err = decode_close_payload(
            b"\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
        )
        .unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCloseReason);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn encoded_payload_decodes_back() {
        let mut out = Vec::new();
        encode_close_payload(CloseCode::GOING_AWAY, "restart", &mut out);
        assert_eq!(
            decode_close_payload(&out),
            Ok((Some(CloseCode::GOING_AWAY), "restart"))
        );
    }

    #[test]
    fn long_reason_is_cut_on_a_character_boundary() {
        let reason = "é".repeat(100); // 200 bytes, 2 per character
        let mut out = Vec::new();
        encode_close_payload(CloseCode::NORMAL, &reason, &mut out);
        assert!(out.len() <= MAX_CONTROL_PAYLOAD);
        let (_, decoded) = decode_close_payload(&out).unwrap();
        assert_eq!(decoded, "é".repeat(61));
    }
}

//! RFC 6455 §5.2 frame headers, §5.3 masking and §5.5.1 close payloads.
//!
//! Oracle: `decode_header` never reads past the header and answers
//! Complete, Incomplete (with a `needed` beyond the input) or
//! `LengthMsbSet`; a decoded header encodes and decodes to itself; the
//! word-at-a-time mask equals the RFC's byte-at-a-time definition; a close
//! payload that decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushlab::wire::websocket::frame::{decode_header, encode_header, Decoded, MAX_HEADER_LEN};
use pushlab::wire::websocket::mask::{apply_mask, apply_mask_bytewise};
use pushlab::wire::websocket::{decode_close_payload, encode_close_payload, ProtocolError};

fuzz_target!(|data: &[u8]| {
    match decode_header(data) {
        Ok(Decoded::Complete { value, consumed }) => {
            assert!(consumed <= data.len() && consumed <= MAX_HEADER_LEN);
            assert!(value.payload_len >> 63 == 0);
            // A shorter prefix is incomplete and asks for exactly this much.
            assert_eq!(
                decode_header(&data[..consumed - 1]).ok(),
                Some(Decoded::Incomplete {
                    needed: if consumed - 1 < 2 { 2 } else { consumed }
                })
            );
            let mut again = Vec::new();
            encode_header(&value, &mut again);
            assert_eq!(again.len(), value.encoded_len());
            // Only a non-minimal length encoding comes out shorter.
            assert!(again.len() <= consumed);
            assert_eq!(
                decode_header(&again),
                Ok(Decoded::Complete {
                    value,
                    consumed: again.len()
                })
            );
        }
        Ok(Decoded::Incomplete { needed }) => {
            assert!(needed > data.len() && needed <= MAX_HEADER_LEN);
        }
        Err(e) => assert_eq!(e, ProtocolError::LengthMsbSet),
    }

    // Masking: fast path equals the definition, at any offset and alignment.
    if data.len() >= 6 {
        let key = [data[0], data[1], data[2], data[3]];
        let offset = usize::from(data[4]);
        let start = usize::from(data[5] % 8).min(data.len() - 6);
        let mut fast = data[6..].to_vec();
        let mut slow = fast.clone();
        apply_mask(&mut fast[start..], key, offset);
        apply_mask_bytewise(&mut slow[start..], key, offset);
        assert_eq!(fast, slow);
        apply_mask(&mut fast[start..], key, offset);
        assert_eq!(&fast[..], &data[6..]);
    }

    // Close payloads.
    let payload = &data[..data.len().min(125)];
    match decode_close_payload(payload) {
        Ok((code, reason)) => {
            let mut again = Vec::new();
            match code {
                Some(code) => encode_close_payload(code, reason, &mut again),
                None => assert!(payload.is_empty()),
            }
            assert_eq!(again, payload);
        }
        Err(e) => assert!(matches!(e.close_code().0, 1002 | 1007)),
    }
});

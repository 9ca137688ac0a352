//! permessage-deflate (RFC 7692) for the sessions: the server's
//! compressors, one per window size and made on first use, lent to every
//! connection through `Ctx`. The codec is `wire::websocket::deflate`; which
//! frames are compressed is decided in `websocket.rs` and `encoded.rs`.
//!
//! Memory: a compressor holds zlib's deflate state (about 256 KiB for the
//! usual 15-bit window), once for the whole server, however many
//! connections compress; a connection holds only what it agreed
//! ([`Agreed`](crate::wire::websocket::deflate::Agreed), a few bytes).

use crate::wire::websocket::deflate::{Compressor, MAX_WINDOW_BITS, MIN_ZLIB_WINDOW_BITS};
use crate::wire::websocket::{encode_compressed_frame, DataOpcode};

/// The server's compressors, indexed by window size.
#[derive(Debug, Default)]
pub struct Deflate {
    compressors: [Option<Box<Compressor>>; 7],
    scratch: Vec<u8>,
}

impl Deflate {
    /// The compressor for `window_bits` (9..=15), made on first use.
    pub fn compressor(&mut self, window_bits: u8) -> &mut Compressor {
        let bits = window_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS);
        let slot = &mut self.compressors[usize::from(bits - MIN_ZLIB_WINDOW_BITS)];
        slot.get_or_insert_with(|| Box::new(Compressor::new(bits)))
    }

    /// A whole compressed text frame (RSV1 set) for `payload`, or `None`
    /// when compression would not make the payload smaller.
    pub fn text_frame(&mut self, payload: &[u8], window_bits: u8) -> Option<Vec<u8>> {
        self.frame(DataOpcode::Text, payload, window_bits, true)
    }

    /// A whole compressed data frame (RSV1 set) for `payload`; with
    /// `only_if_smaller`, `None` when compression would not make the
    /// payload smaller.
    pub fn frame(
        &mut self,
        opcode: DataOpcode,
        payload: &[u8],
        window_bits: u8,
        only_if_smaller: bool,
    ) -> Option<Vec<u8>> {
        let mut compressed = std::mem::take(&mut self.scratch);
        compressed.clear();
        self.compressor(window_bits)
            .compress(payload, &mut compressed);
        let frame = (!only_if_smaller || compressed.len() < payload.len()).then(|| {
            let mut frame = Vec::with_capacity(compressed.len() + 10);
            encode_compressed_frame(opcode, &compressed, &mut frame);
            frame
        });
        // Keep the scratch buffer unless a large message made it large.
        if compressed.capacity() <= 64 * 1024 {
            self.scratch = compressed;
        }
        frame
    }
}

/// The payload length of an unmasked frame made by [`Deflate::frame`] (its
/// header is 2, 4 or 10 bytes, RFC 6455 §5.2).
pub fn payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.len().saturating_sub(header)
}

/// Whether a frame has RSV1 set (it carries a compressed message).
pub fn is_compressed(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 0x40 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::websocket::deflate::Inflater;

    #[test]
    fn a_text_frame_is_the_rfc_hello_frame_and_inflates_back() {
        let mut deflate = Deflate::default();
        let json = br#"{"topic":"t","id":"e-1","data":"hello hello hello hello"}"#;
        let frame = deflate.text_frame(json, 15).unwrap();
        assert!(is_compressed(&frame));
        assert_eq!(frame[0], 0xc1, "FIN, RSV1, text");
        let mut out = Vec::new();
        let mut inflater = Inflater::with(false);
        inflater.inflate(&frame[2..], &mut out, 1 << 20).unwrap();
        inflater.finish(&mut out, 1 << 20).unwrap();
        assert_eq!(out, json);
        assert_eq!(payload_len(&frame), frame.len() - 2);
    }

    #[test]
    fn incompressible_payloads_are_not_compressed() {
        let mut deflate = Deflate::default();
        assert_eq!(deflate.text_frame(b"ab", 15), None);
    }

    #[test]
    fn one_compressor_per_window_is_made_once() {
        let mut deflate = Deflate::default();
        let first: *const Compressor = deflate.compressor(10);
        let again: *const Compressor = deflate.compressor(10);
        assert_eq!(first, again);
        assert_eq!(deflate.compressor(8).window_bits(), 9);
        assert_eq!(deflate.compressor(15).window_bits(), 15);
    }
}
